"""The learned tier model for Claude Code's prompts: what it reads, how it loads, and what it was trained on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ultramax.memory import embed
from ultramax.memory.models import MemoryStoreError
from ultramax.routing import Router, RouterConfig, analyze_prompt, load_catalog, tier_model
from ultramax.routing.analyzer import forget_analyses, pattern_signals
from ultramax.routing.difficulty import word_pieces
from ultramax.routing.neighbours import neighbour_features, quantize
from ultramax.routing.tier_model import (
    CONTEXT_DIM,
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
DEV_SET = ROOT / "tests" / "routing" / "data" / "claude_code_dev.jsonl"
BOUNDARIES = ROOT / "bench" / "data" / "claude_code_holdout_boundaries.jsonl"
THIRD = ROOT / "bench" / "data" / "claude_code_holdout_third.jsonl"

TRACE = (
    "which line does this fail on?\nTraceback (most recent call last):\n"
    + "".join(f'  File "app/m{i}.py", line {7 * i}, in handler{i}\n    result = step{i}(payload)\n' for i in range(30))
    + "KeyError: 'user_id'\n"
)


def _prompts(path: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture
def fresh_estimates() -> Iterator[None]:
    """Tier estimates computed afresh in the test, and none of its own left cached for others."""
    forget_analyses()
    yield
    forget_analyses()


@pytest.fixture
def embedding_calls(monkeypatch: pytest.MonkeyPatch, fresh_estimates: None) -> list[str]:
    """Each ask the sentence embedding runs on during the test (it still runs)."""
    calls: list[str] = []
    real = tier_model.ask_embedding

    def counting(ask: str) -> tuple[float, ...] | None:
        calls.append(ask)
        return real(ask)

    monkeypatch.setattr(tier_model, "ask_embedding", counting)
    return calls


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
    assert model.main.cuts[0] < model.main.cuts[1] and model.fallback.cuts[0] < model.fallback.cuts[1]
    assert "labelled Claude Code prompts" in model.trained_on and "holdout" not in model.trained_on
    assert SHIPPED.stat().st_size < 200_000


@pytest.mark.parametrize(("holdout", "size"), [(HOLDOUT, 147), (BOUNDARIES, 688), (THIRD, 161)])
def test_no_training_prompt_shares_half_its_words_with_a_holdout_prompt(holdout: Path, size: int) -> None:
    """The holdouts are scored by ``route eval``; a near-copy in the training files would flatter the score."""
    held = [_words(p) for p in _prompts(holdout)]
    assert len(held) == size and TRAINING
    for path in [*TRAINING, DEV_SET]:
        for prompt in _prompts(path):
            words = _words(prompt)
            overlap = max(len(words & h) / max(1, len(words | h)) for h in held)
            assert overlap < 0.5, f"{path.name}: {prompt!r} is a near-copy of a prompt in {holdout.name}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format=99), "format 99"),
        (lambda d: d.update(feature_names=d["feature_names"][:-1]), "features are not the ones"),
        (lambda d: d["main"].update(cuts=[1.0, 0.5]), "main.cuts: expected two ascending cut points"),
        (lambda d: d["main"]["output"].update(pieces="!!"), "not base64"),
        (
            lambda d: d["main"]["output"].update(shape=[0.0] * len(FEATURE_NAMES)),
            f"main.output.shape: {len(FEATURE_NAMES)} weights for {len(FEATURE_NAMES) + CONTEXT_DIM + 4} features",
        ),
        (lambda d: d["fallback"]["output"].update(shape=[0.0]), f"1 weights for {len(FEATURE_NAMES)} features"),
        (lambda d: d.update(context_dim=768), "sentence embedding of 768 values"),
        (lambda d: d.pop("gate"), "missing 'gate'"),
        (lambda d: d.pop("fallback"), "missing 'fallback'"),
    ],
)
def test_corrupt_tier_weights_give_a_clear_error_naming_the_file(tmp_path: Path, edit: object, message: str) -> None:
    bad = _copy_shipped(tmp_path)
    data = json.loads(bad.read_text(encoding="utf-8"))
    assert callable(edit)
    edit(data)
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TierModelError, match=re.escape(message)) as info:
        read_tier_model(bad)
    assert str(bad) in str(info.value) and "router_tier_train" in str(info.value)


def _copy_shipped(tmp_path: Path) -> Path:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    bank = SHIPPED.parent / data["neighbours"]["file"]
    (tmp_path / bank.name).write_bytes(bank.read_bytes())
    weights = tmp_path / "tiers.json"
    weights.write_text(json.dumps(data), encoding="utf-8")
    return weights


def test_a_missing_or_corrupt_neighbour_bank_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    weights = _copy_shipped(tmp_path)
    assert read_tier_model(weights).bank.k >= 1
    bank = tmp_path / "tier_neighbours.npz"
    bank.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TierModelError, match=r"neighbour bank .*tier_neighbours\.npz is unreadable") as info:
        read_tier_model(weights)
    assert "reinstall ultramax" in str(info.value)
    np.savez(bank, vectors=np.zeros((4, CONTEXT_DIM), dtype=np.float32), tiers=np.zeros(4, dtype=np.uint8))
    with pytest.raises(TierModelError, match="vectors: expected int8 rows of 384"):
        read_tier_model(weights)
    np.savez(bank, vectors=np.zeros((4, CONTEXT_DIM), dtype=np.int8), tiers=np.full(4, 7, dtype=np.uint8))
    with pytest.raises(TierModelError, match="tiers: expected 4 uint8 labels 0-2"):
        read_tier_model(weights)
    bank.unlink()
    with pytest.raises(TierModelError, match=r"neighbour bank .* is missing"):
        read_tier_model(weights)
    data = json.loads(weights.read_text(encoding="utf-8"))
    data["neighbours"]["file"] = "../elsewhere.npz"
    weights.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TierModelError, match="not a file name beside the weights"):
        read_tier_model(weights)


def test_neighbour_features_weigh_the_nearest_labelled_prompts_most() -> None:
    rng = np.random.default_rng(7)
    easy, hard = rng.normal(size=CONTEXT_DIM), rng.normal(size=CONTEXT_DIM)
    bank = quantize(
        np.vstack([easy + 0.1 * rng.normal(size=(20, CONTEXT_DIM)), hard + 0.1 * rng.normal(size=(20, CONTEXT_DIM))])
    )
    tiers = np.array([0] * 20 + [2] * 20, dtype=np.uint8)
    near_easy, near_hard = neighbour_features(quantize(np.vstack([easy, hard])), bank, tiers, k=30)
    p_haiku, p_opus, mean_tier, similarity = near_easy
    assert p_haiku > 0.9 and p_opus < 0.1 and mean_tier < 0.2 and similarity > 0.5
    assert near_hard[1] > 0.9 and near_hard[2] > 1.8
    assert np.allclose(neighbour_features(bank[:1], bank, tiers, k=1)[0], [1.0, 0.0, 0.0, 1.0], atol=0.01)


def test_missing_or_unreadable_tier_weights_say_to_reinstall(tmp_path: Path) -> None:
    with pytest.raises(TierModelError, match=r"missing.*reinstall"):
        read_tier_model(tmp_path / "absent.json")
    garbage = tmp_path / "tiers.json"
    garbage.write_bytes(b"\xff\xfe not json")
    with pytest.raises(TierModelError, match="unusable"):
        read_tier_model(garbage)


def test_software_prompts_read_the_sentence_embedding_and_general_chat_never_runs_it(
    embedding_calls: list[str],
) -> None:
    work = estimate_tier(*_split_for_model("why does our retry loop double-charge a card when the gateway times out"))
    chat = estimate_tier(*_split_for_model("Write a limerick about a cat who loves rainy Sundays"))
    assert work.contextual and work.software >= 0.5
    assert not chat.contextual and chat.software < 0.5
    assert embedding_calls == ["why does our retry loop double-charge a card when the gateway times out"]


@pytest.mark.usefixtures("fresh_estimates")
def test_without_the_embedding_model_the_fallback_routes_and_explain_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path, fresh_estimates: None
) -> None:
    model = tmp_path / "model"
    model.mkdir()  # the router's session finds no model file here
    monkeypatch.setattr(embed, "model_dir", lambda: model)
    monkeypatch.setattr(tier_model, "_EMBEDDERS", [])
    monkeypatch.setattr(tier_model, "_EMBEDDING_FAILED", [])
    prompts = [
        "our redis lock (SET NX PX) sometimes lets two workers into the critical section at once",
        "fix the typo in the README's install section",
    ]
    decisions = [Router(load_catalog(), RouterConfig(budget_per_hour=0)).explain_prompt(p) for p in prompts]
    analyses = [analyze_prompt(p) for p in prompts]
    assert [a.learned_tier for a in analyses] == ["opus", "haiku"]
    assert not any(a.learned_contextual for a in analyses)
    assert [d.tier for d in decisions] == ["opus", "haiku"]
    assert all(any("fallback" in r for r in d.reasons) for d in decisions)
    warnings = [r for r in caplog.records if "sentence embedding is unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "model.onnx" in warnings[0].getMessage()
    assert "reinstall" in warnings[0].getMessage()


def test_a_corrupt_embedding_model_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    (tmp_path / "tokenizer.json").write_bytes((embed.model_dir() / "tokenizer.json").read_bytes())
    with pytest.raises(MemoryStoreError, match=r"cannot be loaded \(InvalidProtobuf.*reinstall ultramax"):
        embed.OnnxEmbedder(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(MemoryStoreError, match=r"missing: .*tokenizer\.json"):
        embed.OnnxEmbedder(tmp_path)


def test_a_turns_repeated_requests_run_the_sentence_embedding_once(embedding_calls: list[str]) -> None:
    prompt = "refactor the invoice exporter so the CSV and PDF writers share one formatter"
    analyses = [analyze_prompt(prompt) for _ in range(3)]
    assert embedding_calls == [prompt]
    assert all(a.learned_contextual and a.learned_tier == analyses[0].learned_tier for a in analyses)


def test_with_the_sentence_embedding_switched_off_no_transformer_runs_and_explain_says_why(
    embedding_calls: list[str],
) -> None:
    router = Router(load_catalog(), RouterConfig(budget_per_hour=0, sentence_embedding=False))
    decision = router.explain_prompt("our redis lock (SET NX PX) sometimes lets two workers in at once under load")
    assert embedding_calls == []
    assert decision.tier == "opus"
    assert any("routing.sentenceEmbedding is off" in r for r in decision.reasons)


def test_claude_codes_background_requests_never_run_the_sentence_embedding(embedding_calls: list[str]) -> None:
    prompt = "why does our kafka consumer sometimes process a message twice after a rebalance"
    body = {"model": load_catalog().top.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}
    decision = Router(load_catalog(), RouterConfig(budget_per_hour=0)).route(
        body, {"user-agent": "claude-cli/2.1.240 (external, cli)"}, raw_size=400
    )
    assert decision.tier == "haiku" and embedding_calls == []


def test_whatever_claude_code_sends_is_scored_by_the_tier_model_and_the_gate_decides_for_other_clients() -> None:
    prompt = "what is the capital of France"  # the gate calls it chat
    ask, pasted = split_prompt(prompt)
    assert estimate_tier(ask, pattern_signals(ask).values(), pasted).software < 0.5
    assert analyze_prompt(prompt).learned_tier == ""
    assert analyze_prompt(prompt, claude_code=True).learned_tier in {"haiku", "sonnet", "opus"}
    router = Router(load_catalog(), RouterConfig(budget_per_hour=0))
    body = {"model": "claude-opus-5", "messages": [{"role": "user", "content": prompt}], "tools": [{"name": "Bash"}]}
    from_claude_code = router.route(body, {"user-agent": "claude-cli/2.1.240 (external, cli)"}, raw_size=500)
    from_another_client = router.route(body, {"user-agent": "my-app/1.0"}, raw_size=500)
    assert from_claude_code.analysis is not None and from_claude_code.analysis.learned_tier
    assert from_another_client.analysis is not None and not from_another_client.analysis.learned_tier


def test_a_claude_code_prompt_with_numbers_is_not_taken_for_a_maths_word_problem() -> None:
    prompt = (
        "p99 on /checkout went from 40ms to 900ms after we scaled from 3 to 12 pods, but only for about 5% of "
        "requests. How many connections does each pod open to postgres, and why would that matter?"
    )
    assert analyze_prompt(prompt).prompt_kind == "word_problem"  # how a benchmark question would be read
    analysis = analyze_prompt(prompt, claude_code=True)
    assert analysis.learned_tier in {"sonnet", "opus"} and analysis.learned_head in {"main", "confident"}


def test_the_fallback_decides_alone_only_where_it_is_far_from_both_cut_points(embedding_calls: list[str]) -> None:
    model = load_tier_model()
    assert model.confident_margin is not None
    prompts = [
        "fix the typo in the README's install section",
        "rename the helper parse_cfg to parse_config everywhere",
        "why does our kafka consumer sometimes process a message twice after a rebalance",
        "add a created_at column to the orders table and backfill it",
        "design how tenants' data is isolated in the new analytics service",
        "why does the login page flash white before the theme loads",
        "bump the version in package.json to 2.4.1",
        "our redis lock (SET NX PX) sometimes lets two workers into the critical section at once",
    ]
    sure: list[str] = []
    unsure: list[str] = []
    for prompt in prompts:
        ask, patterns, pasted = _split_for_model(prompt)
        features = tier_model.tier_features(ask, patterns, pasted)
        score = model.fallback.estimate(features, *word_pieces(ask))[0]
        (sure if model.fallback.margin(score) >= model.confident_margin else unsure).append(ask)
    assert sure and unsure  # the list spans both sides, or it tests nothing
    heads = {ask: estimate_tier(ask, *_split_for_model(ask)[1:], gated=False).head for ask in prompts}
    assert embedding_calls == unsure
    assert {a for a, h in heads.items() if h == "confident"} == set(sure)
    assert {a for a, h in heads.items() if h == "main"} == set(unsure)


def test_explain_says_when_the_tier_model_was_sure_without_the_sentence_embedding(embedding_calls: list[str]) -> None:
    decision = Router(load_catalog(), RouterConfig(budget_per_hour=0)).explain_prompt(
        "bump the version in package.json to 2.4.1"
    )
    assert decision.tier == "haiku" and embedding_calls == []
    assert decision.analysis is not None and decision.analysis.learned_head == "confident"
    assert any("sure without the sentence embedding" in r for r in decision.reasons)


@pytest.mark.parametrize("margin", [-1, "far", float("nan"), True])
def test_a_bad_confident_margin_in_the_weights_is_a_clear_error(tmp_path: Path, margin: object) -> None:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["fallback"]["confident_margin"] = margin
    (tmp_path / "tiers.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "tier_neighbours.npz").write_bytes((SHIPPED.parent / "tier_neighbours.npz").read_bytes())
    with pytest.raises(TierModelError, match="confident_margin"):
        read_tier_model(tmp_path / "tiers.json")
    del data["fallback"]["confident_margin"]  # weights from before it: the main model always decides
    (tmp_path / "tiers.json").write_text(json.dumps(data), encoding="utf-8")
    assert read_tier_model(tmp_path / "tiers.json").confident_margin is None
