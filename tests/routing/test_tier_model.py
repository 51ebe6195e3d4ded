"""The learned tier model for Claude Code's prompts: what it reads, how it loads, and what it was trained on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ultramax.routing import Router, RouterConfig, analyze_prompt, load_catalog
from ultramax.routing.analyzer import pattern_signals
from ultramax.routing.tier_model import (
    FEATURE_NAMES,
    TierModelError,
    estimate_tier,
    load_tier_model,
    read_tier_model,
    split_prompt,
)

ROOT = Path(__file__).parents[2]
SHIPPED = ROOT / "src" / "ultramax" / "routing" / "data" / "tiers.json"
TRAINING = sorted((ROOT / "bench" / "data" / "router_tiers").glob("*.jsonl"))
HOLDOUT = ROOT / "bench" / "data" / "claude_code_holdout.jsonl"

TRACE = (
    "which line does this fail on?\nTraceback (most recent call last):\n"
    + "".join(f'  File "app/m{i}.py", line {7 * i}, in handler{i}\n    result = step{i}(payload)\n' for i in range(30))
    + "KeyError: 'user_id'\n"
)


def _prompts(path: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_what_was_pasted_is_split_from_what_was_asked() -> None:
    ask, pasted = split_prompt(TRACE)
    assert ask == "which line does this fail on?"
    assert "KeyError" in pasted and pasted.count("File ") == 30
    ask, pasted = split_prompt("review this diff\n```diff\n- a = 1\n+ a = 2\n```\nand say if it is fine")
    assert "review this diff" in ask and "say if it is fine" in ask and "a = 2" not in ask
    assert pasted.startswith("```diff")
    plain = "rename getUser to fetchUser in src/api.ts"
    assert split_prompt(plain) == (plain, "")


def test_a_long_paste_under_a_trivial_ask_stays_cheap_and_a_short_race_goes_to_the_top() -> None:
    trivial = analyze_prompt(TRACE)
    race = analyze_prompt("our redis lock (SET NX PX) sometimes lets two workers into the critical section at once")
    assert trivial.learned_tier == "haiku" and trivial.complexity_score <= 0.3
    assert race.learned_tier == "opus" and race.complexity_score > 0.7


def test_the_thresholds_still_move_the_learned_boundaries() -> None:
    prompt = "Add pagination to the /orders endpoint with a unit test for it"
    score = analyze_prompt(prompt).complexity_score
    assert 0.3 < score <= 0.7
    default = Router(load_catalog(), RouterConfig(budget_per_hour=0)).explain_prompt(prompt)
    raised = Router(load_catalog(), RouterConfig(budget_per_hour=0, sonnet_threshold=score)).explain_prompt(prompt)
    lowered = Router(load_catalog(), RouterConfig(budget_per_hour=0, opus_threshold=score - 0.01)).explain_prompt(
        prompt
    )
    assert (default.tier, raised.tier, lowered.tier) == ("sonnet", "haiku", "opus")


def test_general_chat_and_benchmark_prompts_keep_the_seed_patterns_and_the_learned_difficulty() -> None:
    choice = analyze_prompt("Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer:")
    assert choice.prompt_kind == "choice" and choice.learned_tier == ""
    poem = "Write a short poem about the first snow of winter for my grandmother's birthday card"
    chat = analyze_prompt(poem)
    assert chat.prompt_kind == "open" and chat.learned_tier == ""
    assert estimate_tier(*_split_for_model(poem)).software < 0.5
    work = "rename getUser to fetchUser in src/api/users.ts and update the callers"
    assert analyze_prompt(work).learned_tier in {"haiku", "sonnet"}
    assert estimate_tier(*_split_for_model(work)).software >= 0.5


def _split_for_model(prompt: str) -> tuple[str, tuple[float, ...], str]:
    ask, pasted = split_prompt(prompt)
    return ask, pattern_signals(ask).values(), pasted


def test_the_shipped_weights_load_and_name_what_they_were_trained_on() -> None:
    model = load_tier_model()
    assert model.cuts[0] < model.cuts[1]
    assert "labelled Claude Code prompts" in model.trained_on and "holdout" not in model.trained_on
    assert SHIPPED.stat().st_size < 100_000


def test_no_training_prompt_shares_half_its_words_with_a_holdout_prompt() -> None:
    """The holdout is scored by ``route eval``; a near-copy in the training files would flatter the score."""
    held = [_words(p) for p in _prompts(HOLDOUT)]
    assert len(held) == 150 and TRAINING
    for path in TRAINING:
        for prompt in _prompts(path):
            words = _words(prompt)
            overlap = max(len(words & h) / max(1, len(words | h)) for h in held)
            assert overlap < 0.5, f"{path.name}: {prompt!r} is a near-copy of a holdout prompt"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format=99), "format 99"),
        (lambda d: d.update(feature_names=d["feature_names"][:-1]), "features are not the ones"),
        (lambda d: d.update(cuts=[1.0, 0.5]), "two ascending cut points"),
        (lambda d: d["output"].update(pieces="!!"), "not base64"),
        (lambda d: d["output"].update(shape=[0.0]), f"1 weights for {len(FEATURE_NAMES)} features"),
        (lambda d: d.pop("gate"), "missing 'gate'"),
    ],
)
def test_corrupt_tier_weights_give_a_clear_error_naming_the_file(tmp_path: Path, edit: object, message: str) -> None:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert callable(edit)
    edit(data)
    bad = tmp_path / "tiers.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TierModelError, match=re.escape(message)) as info:
        read_tier_model(bad)
    assert str(bad) in str(info.value) and "router_tier_train" in str(info.value)


def test_missing_or_unreadable_tier_weights_say_to_reinstall(tmp_path: Path) -> None:
    with pytest.raises(TierModelError, match=r"missing.*reinstall"):
        read_tier_model(tmp_path / "absent.json")
    garbage = tmp_path / "tiers.json"
    garbage.write_bytes(b"\xff\xfe not json")
    with pytest.raises(TierModelError, match="unusable"):
        read_tier_model(garbage)
