"""The router's learned difficulty: prompt kinds, word pieces, the shipped weights and how they load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from ultramax.memory.embed import model_dir
from ultramax.routing import analyze_prompt
from ultramax.routing.difficulty import (
    DifficultyModelError,
    estimate_difficulty,
    is_training_prompt,
    load_difficulty_model,
    read_difficulty_model,
)
from ultramax.routing.prompt_features import SHAPE_NAMES, prompt_kind, shape_features, wordpiece_ids

SHIPPED = Path(__file__).parents[2] / "src" / "ultramax" / "routing" / "data" / "difficulty.json"

ONE_STEP = "Tom has 3 apples and buys 2 more. How many apples does he have now?"
MULTI_STEP = (
    "A bakery sells muffins for $2.50 each and cookies at 3 for $4. On Monday it sold 48 muffins and 75 cookies; "
    "on Tuesday it sold 20% more muffins but a third fewer cookies than on Monday. The baker spends 40% of the "
    "revenue on ingredients and pays $85 a day in rent. How much profit, in dollars, did the bakery make over the "
    "two days?"
)
CHOICE = "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer:"


def test_each_kind_of_prompt_gets_its_own_head() -> None:
    assert prompt_kind(CHOICE) == "choice"
    assert prompt_kind(ONE_STEP) == "word_problem" and prompt_kind(MULTI_STEP) == "word_problem"
    assert prompt_kind("Fix the off-by-one error in parser.py: it drops the last 2 tokens. Why?") == "open"
    assert prompt_kind("Write a haiku about autumn leaves") == "open"


def test_the_learned_difficulty_ranks_a_multi_step_word_problem_above_a_one_step_one() -> None:
    hard, easy = estimate_difficulty(MULTI_STEP), estimate_difficulty(ONE_STEP)
    assert hard.gain > easy.gain and hard.percentile > easy.percentile + 0.05
    assert analyze_prompt(MULTI_STEP).complexity_score > analyze_prompt(ONE_STEP).complexity_score


def test_the_learned_estimate_moves_an_open_prompts_complexity_by_at_most_a_tenth() -> None:
    """Claude Code's prompts are open prompts: the seed's patterns stay decisive for them."""
    model = load_difficulty_model()
    assert model.heads["open"].weight <= 0.2
    for prompt in ("Refactor the session store to use SQLite", "What does this regex match?", "hi"):
        assert abs(estimate_difficulty(prompt).shift) <= 0.1


def test_the_shipped_weights_are_small_and_were_trained_on_the_training_half_only() -> None:
    model = load_difficulty_model()
    assert "training half" in model.trained_on
    assert SHIPPED.stat().st_size < 400_000
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert data["shape_names"] == list(SHAPE_NAMES)
    for kind, head in model.heads.items():
        assert 0.0 < head.weight <= 1.0, kind
        assert list(head.quantiles) == sorted(head.quantiles)
    d = estimate_difficulty("What is 2 + 2?")
    assert -1.0 < d.gain < 1.0 and 0.0 <= d.percentile <= 1.0


def test_the_split_is_the_parity_of_the_first_byte_of_the_prompts_sha256() -> None:
    # sha256("a") starts with byte 0xca (even: training), sha256("e") with 0x3f (odd: held out)
    assert is_training_prompt("a")
    assert not is_training_prompt("e")  # 0x3f
    share = sum(is_training_prompt(f"prompt {i}") for i in range(2000)) / 2000
    assert 0.45 < share < 0.55


@pytest.mark.parametrize(
    "text",
    [
        "Crème brûlée costs €4.50 — naïve café prices!",
        "Left ventricle → aorta → arteries; x² + y² = z²",
        "日本語のテキストと English mixed",
        "snake_case_name(foo, bar) == {'a': 1} // comment",
        "a" * 150 + " tail",
        "tab\tseparated\u200bzero-width\u0007bell",
    ],
)
def test_word_pieces_match_the_shipped_minilm_tokenizer(text: str) -> None:
    reference = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    assert wordpiece_ids(text, limit=10_000) == reference.encode(text, add_special_tokens=False).ids


def test_word_pieces_stop_at_the_limit() -> None:
    assert len(wordpiece_ids("word " * 2000)) == 512
    assert len(wordpiece_ids("word " * 2000, limit=10)) == 10


def test_shape_features_count_quantities_fractions_and_options() -> None:
    values = dict(zip(SHAPE_NAMES, shape_features(MULTI_STEP), strict=True))
    assert values["quantities"] > values["choices"] == 0.0
    assert values["percent"] > 0 and values["fraction"] > 0 and values["money"] > 0
    assert dict(zip(SHAPE_NAMES, shape_features(CHOICE), strict=True))["choices"] > 0


def _write(tmp_path: Path, mutate: object) -> Path:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "difficulty.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_loading_corrupt_weights_gives_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "difficulty.json"
    broken.write_text('{"format": 2, "heads": {', encoding="utf-8")
    with pytest.raises(DifficultyModelError, match=r"difficulty\.json are unusable .*retrain"):
        read_difficulty_model(broken)

    def truncate(d: dict[str, object]) -> None:
        heads = d["heads"]
        assert isinstance(heads, dict)
        heads["choice"]["outputs"]["weak_fails"]["pieces"] = "AAAA"

    with pytest.raises(DifficultyModelError, match=r"heads\.choice\.weak_fails\.pieces: 3 weights for a vocabulary"):
        read_difficulty_model(_write(tmp_path, truncate))

    def old_format(d: dict[str, object]) -> None:
        d["format"] = 1

    with pytest.raises(DifficultyModelError, match="format 1"):
        read_difficulty_model(_write(tmp_path, old_format))

    def no_open_head(d: dict[str, object]) -> None:
        heads = d["heads"]
        assert isinstance(heads, dict)
        del heads["open"]

    with pytest.raises(DifficultyModelError, match="missing 'open'"):
        read_difficulty_model(_write(tmp_path, no_open_head))


def test_missing_weights_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DifficultyModelError, match=r"missing: .*reinstall"):
        read_difficulty_model(tmp_path / "nowhere.json")


def test_a_turns_repeated_requests_reuse_the_first_estimate() -> None:
    prompt = "Summarise the design doc for the new cache layer, then list open questions"
    first = analyze_prompt(prompt)
    misses = estimate_difficulty.cache_info().misses
    assert analyze_prompt(prompt) is first
    assert analyze_prompt(prompt, sentence_embedding=False).learned_head != "main"  # its own entry
    assert estimate_difficulty.cache_info().misses == misses
