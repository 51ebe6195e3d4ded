"""The router's policy: thresholds, ceiling, background work, features, max_cost, budget, health, stickiness."""

from __future__ import annotations

from typing import Any

import pytest

from ultramax.config import Settings
from ultramax.routing import Router, RouterConfig, Usage, load_catalog

CC = {"x-claude-code-session-id": "s-1", "user-agent": "claude-cli/2.1.328", "x-app": "cli"}
HARD = "Design the architecture of a distributed, fault-tolerant rate limiter and analyse the trade-offs"


def req(prompt: str, model: str = "claude-opus-5", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [{"name": "Bash"}],
        **extra,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def router(**config: Any) -> Router:
    return Router(load_catalog(), RouterConfig(**{"budget_per_hour": 0, **config}))


def test_simple_coding_and_architecture_prompts_go_to_the_cheap_middle_and_top_tiers() -> None:
    r = router()
    assert r.route(req("Fix the typo in README.md"), CC).model == "claude-haiku-4-5"
    assert r.route(req("Add pagination to the /orders endpoint with a unit test for it"), CC).model == "claude-sonnet-5"
    hard = r.route(req(HARD), CC)
    assert (hard.tier, hard.model, hard.changed) == ("opus", "claude-opus-5", False)
    assert hard.fallbacks == ["claude-sonnet-5", "claude-haiku-4-5"]


def test_the_requested_model_is_a_ceiling_never_an_upgrade() -> None:
    decision = router().route(req(HARD, model="claude-sonnet-4-6"), CC)
    assert (decision.tier, decision.model) == ("sonnet", "claude-sonnet-4-6"), "kept as asked, not upgraded"
    fable = router().route(req(HARD, model="claude-fable-5"), CC)
    assert (fable.tier, fable.model) == ("fable", "claude-fable-5"), "work for the top tier keeps the model asked for"
    assert fable.fallbacks[0] == "claude-opus-5" and "keeps fable" in fable.reasons[-1]
    easy = router().route(req("Fix the typo in README.md", model="claude-fable-5"), CC)
    assert easy.model == "claude-haiku-4-5" and "fable requested; haiku is enough" in easy.reasons


def test_a_prompt_the_router_cannot_read_gets_the_default_tier_not_a_guess() -> None:
    hard_in_japanese = (
        "分散型の注文システムのアーキテクチャを設計してください。マルチリージョンのフェイルオーバーを含めて"
    )
    decision = router().route(req(hard_in_japanese), CC)
    assert decision.tier == "sonnet" and "default tier" in decision.reasons[0]
    german = router().route(req("Entwirf die Architektur eines verteilten, fehlertoleranten Konsensdienstes"), CC)
    assert not any("default tier" in r for r in german.reasons), "Latin letters with accents are read as before"


def test_background_requests_go_to_the_cheapest_tier() -> None:
    title = {k: v for k, v in req(HARD).items() if k != "tools"}
    decision = router().route(title, CC)
    assert decision.tier == "haiku" and "auxiliary" in decision.reasons[0]
    assert router().route(req("anything", model="claude-haiku-4-5"), CC).model == "claude-haiku-4-5"


def test_a_request_using_adaptive_thinking_or_effort_never_goes_to_a_model_without_them() -> None:
    decision = router().route(req("Fix the typo", thinking={"type": "adaptive"}, output_config={"effort": "low"}), CC)
    assert decision.tier == "sonnet"
    assert "cannot take features adaptive-thinking, effort" in " ".join(decision.reasons)
    assert "claude-haiku-4-5" not in decision.fallbacks


def test_plan_mode_and_deep_thinking_raise_the_tier() -> None:
    plan = req("Fix the typo")
    plan["messages"][0]["content"] = "<system-reminder>Plan mode is active.</system-reminder>\nFix the typo"
    assert router().route(plan, CC).tier == "opus"
    assert router().route(req("Fix the typo", output_config={"effort": "high"}), CC).tier == "sonnet"


def test_max_cost_steps_down_a_tier_at_a_time() -> None:
    decision = router(max_cost=0.01).route(req(HARD), CC, raw_size=40_000)
    assert decision.tier in ("sonnet", "haiku") and any("max_cost" in r for r in decision.reasons)
    assert decision.estimated_cost <= 0.01 or decision.tier == "haiku"


def test_the_hourly_budget_downgrades_near_the_limit_refuses_when_spent_and_rolls_over() -> None:
    clock = Clock()
    r = Router(load_catalog(), RouterConfig(budget_per_hour=1.0), clock=clock)
    r.record_spend(0.999)
    near = r.route(req(HARD), CC)
    assert near.tier == "haiku" and "hourly budget" in near.reasons[-1]
    r.record_spend(0.01)
    spent = r.route(req(HARD), CC)
    assert "hourly model budget of $1.00 is spent" in spent.reject
    clock.now += 3601
    assert r.hourly_spend() == 0.0 and not r.route(req(HARD), CC).reject
    soft = Router(load_catalog(), RouterConfig(budget_per_hour=1.0, budget_hard_stop=False), clock=clock)
    soft.record_spend(5.0)
    assert soft.route(req(HARD), CC).tier == "haiku" and not soft.route(req(HARD), CC).reject


def test_a_spent_budget_also_stops_requests_the_router_passes_through() -> None:
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({}, CC, "acme-finetune-7"),  # not in the catalog
        ({}, {**CC, "x-ultramax-model": "claude-opus-5"}, "claude-opus-5"),  # an explicit override
        ({"enabled": False}, CC, "claude-opus-5"),  # routing off
    ]
    for config, headers, model in cases:
        r = Router(load_catalog(), RouterConfig(budget_per_hour=1.0, **config), clock=Clock())
        assert not r.route(req(HARD, model), headers).reject
        r.record_spend(1.0)
        decision = r.route(req(HARD, model), headers)
        assert not decision.routed and "hourly model budget of $1.00 is spent" in decision.reject, (config, headers)
    soft = Router(load_catalog(), RouterConfig(budget_per_hour=1.0, budget_hard_stop=False), clock=Clock())
    soft.record_spend(5.0)
    assert not soft.route(req(HARD, "acme-finetune-7"), CC).reject


def test_requests_in_flight_count_against_the_budget_until_their_answers_are_recorded() -> None:
    r = Router(load_catalog(), RouterConfig(budget_per_hour=1.0), clock=Clock())
    first = r.route(req(HARD), CC)
    assert first.tier == "opus" and first.estimated_cost > 0
    r.reserve(0.999)  # others routed a moment ago, not answered yet
    assert r.route(req(HARD + " For the EU region."), CC).tier == "haiku", "the budget sees what is in flight"
    r.settle(0.999)
    assert r.route(req(HARD + " For the US region."), CC).tier == "opus"


def test_retry_after_is_when_the_spend_falls_under_the_budget_not_when_the_oldest_spend_leaves() -> None:
    clock = Clock()
    r = Router(load_catalog(), RouterConfig(budget_per_hour=0.5), clock=clock)
    r.record_spend(0.0)  # an error row: nothing spent, nothing kept
    r.record_spend(0.05)
    clock.now += 58 * 60
    r.record_spend(0.60)
    clock.now += 60
    assert r.route(req(HARD), CC).reject
    assert r.budget_resets_in() == pytest.approx(59 * 60, abs=1), "the $0.60 must leave, not the $0.05"


def test_an_unhealthy_tier_hands_its_work_to_the_next_in_the_fallback_chain() -> None:
    r = router()
    for _ in range(10):
        r.record_outcome("opus", False, 900.0)
    decision = r.route(req(HARD), CC)
    assert decision.tier == "sonnet" and "opus is failing" in decision.reasons[-1]
    assert r.snapshot()["tiers"]["opus"]["success_rate"] < 0.5


def test_every_request_of_one_turn_stays_on_the_tier_of_its_first_request() -> None:
    r = router()
    first = req("Fix the typo in README.md")
    assert r.route(first, CC).tier == "haiku"
    loop = dict(first)
    loop["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x" * 100_000}]},
    ]
    again = r.route(loop, CC, raw_size=400_000)
    assert again.tier == "haiku" and "same turn" in again.reasons[0]


def test_a_resumed_session_asking_for_the_routed_model_keeps_its_original_ceiling() -> None:
    r = router()
    assert r.route(req("Fix the typo in README.md", model="claude-opus-5-5"), CC).model == "claude-haiku-4-5"
    resumed = r.route(req(HARD, model="claude-haiku-4-5"), CC)
    assert (resumed.tier, resumed.model) == ("opus", "claude-opus-5-5")
    other_session = r.route(req(HARD, model="claude-haiku-4-5"), {**CC, "x-claude-code-session-id": "s-2"})
    assert other_session.tier == "haiku", "a session that chose haiku itself keeps it"


def test_unknown_models_disabled_routing_and_explicit_overrides_pass_through() -> None:
    assert not router().route(req(HARD, model="gpt-4o"), CC).routed
    assert router(enabled=False).route(req("Fix the typo"), CC).model == "claude-opus-5"
    pinned = router().route(req("Fix the typo"), {**CC, "x-ultramax-model": "claude-opus-4-8"})
    assert (pinned.model, pinned.routed) == ("claude-opus-4-8", False)
    assert (
        router(allow_model_override=False)
        .route(req("Fix the typo"), {**CC, "x-ultramax-model": "claude-opus-4-8"})
        .model
        == "claude-haiku-4-5"
    )


def test_the_router_reads_its_settings() -> None:
    settings = Settings.defaults()
    assert settings.get("routing.defaultModel") == "sonnet-4-5"
    r = Router.from_settings(settings)
    assert (r.config.default_tier, r.config.opus_threshold, r.config.sonnet_threshold) == ("sonnet", 0.7, 0.3)
    assert r.config.budget_per_hour == 10.0 and r.config.fallback_chain == ("opus", "sonnet", "haiku")
    assert r.config.cache_aware and r.config.sticky_turns
    settings.values["routing.cacheAwareSwitching"] = False
    assert not Router.from_settings(settings).config.cache_aware


MIDDLE = "add a created_at column to the orders table and backfill it"


def conversation(clock: Clock, **config: Any) -> Router:
    return Router(load_catalog(), RouterConfig(**{"budget_per_hour": 0, **config}), clock=clock)


def test_a_new_turn_stays_on_the_warm_dearer_tier_when_re_writing_the_prompt_cache_costs_more_than_it_saves() -> None:
    clock = Clock()
    r = conversation(clock)
    assert router().route(req(MIDDLE), CC, raw_size=200_000).tier == "sonnet"  # on its own
    assert r.route(req(HARD), CC, raw_size=200_000).tier == "opus"
    clock.now += 60
    follow = r.route(req(MIDDLE), CC, raw_size=200_000)  # a 50k-token conversation, cached on opus
    assert follow.tier == "opus"
    assert any("prompt cache warm on opus" in why and "50k cached tokens" in why for why in follow.reasons)
    warm_opus = (50_000, clock.now)
    stay = r.turn_cost(r.catalog.tier("opus"), warm_opus, 50_000)
    assert 0 < stay < r.turn_cost(r.catalog.tier("sonnet"), None, 50_000)


def test_a_new_turn_moves_down_when_the_saving_beats_the_re_write_or_the_cache_has_gone_cold() -> None:
    clock = Clock()
    r = conversation(clock)
    r.route(req(HARD), CC, raw_size=40_000)
    clock.now += 60
    assert r.route(req(MIDDLE), CC, raw_size=40_000).tier == "sonnet"  # 10k tokens: cheap to re-write
    r.route(req(HARD), CC, raw_size=600_000)
    clock.now += 60
    assert r.route(req("Fix the typo in README.md"), CC, raw_size=600_000).tier == "haiku"  # haiku's write is cheap
    r.route(req(HARD), CC, raw_size=600_000)
    clock.now += 301  # past the cache's five minutes: nothing to keep
    assert r.route(req(MIDDLE), CC, raw_size=600_000).tier == "sonnet"


def test_cache_aware_switching_leaves_background_requests_subagents_and_a_switched_off_router_alone() -> None:
    clock = Clock()
    r = conversation(clock)
    r.route(req(HARD), CC, raw_size=600_000)
    clock.now += 30
    subagent = r.route(req(MIDDLE), {**CC, "x-claude-code-agent-id": "a-1"}, raw_size=600_000)
    assert subagent.tier == "sonnet", "a subagent's conversation has its own cache"
    background = {"model": "claude-opus-5", "max_tokens": 64, "messages": [{"role": "user", "content": MIDDLE}]}
    assert r.route(background, CC, raw_size=600_000).tier == "haiku"
    off = conversation(clock, cache_aware=False)
    off.route(req(HARD), CC, raw_size=600_000)
    clock.now += 30
    assert off.route(req(MIDDLE), CC, raw_size=600_000).tier == "sonnet"


def test_the_router_learns_how_long_turns_are_and_how_much_a_request_writes() -> None:
    clock = Clock()
    r = conversation(clock)
    first = req(MIDDLE)
    for _ in range(8):  # one turn of eight requests: the tool loop repeats its prompt
        r.route(first, CC, raw_size=40_000)
    r.route(req(HARD), CC, raw_size=40_000)  # the next turn closes the first
    assert r.turn_requests == pytest.approx(3.0 + 0.2 * (8 - 3.0))
    before = r.output_per_request
    r.record_usage(Usage(output_tokens=5_000))
    assert r.output_per_request == pytest.approx(before + 0.1 * (5_000 - before))
    assert r.cache_ttl == 300
    for _ in range(10):  # a client writing one-hour caches: its caches stay warm for an hour, at 2x input
        r.record_usage(Usage(output_tokens=100, cache_write_1h=4_000))
    assert r.one_hour_writes > 0.5 and r.cache_ttl == 3600
    opus = r.catalog.tier("opus")
    clock.now += 1_000
    assert r.turn_cost(opus, (50_000, clock.now - 1_000), 50_000) < r.turn_cost(opus, None, 50_000)


def test_what_routing_saved_counts_the_prompt_cache_a_switch_writes_anew() -> None:
    clock = Clock()
    r = conversation(clock)
    cat = r.catalog
    opus, haiku = cat.spec("claude-opus-5"), cat.spec("claude-haiku-4-5")
    assert opus is not None and haiku is not None
    talk = "s-1\x00"
    stayed = Usage(input_tokens=10, output_tokens=500, cache_write_5m=2_000, cache_read=98_000)
    assert r.usage_as_asked(talk, stayed, switched=False) == stayed  # never left opus: its own usage
    clock.now += 60
    switched = Usage(input_tokens=10, output_tokens=500, cache_write_5m=102_000)  # haiku's cache was cold
    as_asked = r.usage_as_asked(talk, switched, switched=True)
    assert (as_asked.cache_read, as_asked.cache_write_5m) == (100_010, 1_990)  # opus would have read the last prompt
    saved = opus.cost(as_asked) - haiku.cost(switched)
    assert saved < 0 < opus.cost(switched) - haiku.cost(switched)  # the naive figure would call it a saving
    clock.now += 60
    back = Usage(input_tokens=10, output_tokens=500, cache_write_5m=4_000, cache_read=100_010)
    assert (
        r.usage_as_asked(talk, back, switched=False).cache_read == 102_010
    )  # staying, opus would hold the last prompt too
    clock.now += 301
    late = Usage(input_tokens=10, output_tokens=500, cache_write_5m=110_000)
    assert r.usage_as_asked(talk, late, switched=True).cache_read == 0  # after five minutes nothing was warm
    assert r.usage_as_asked("", late, switched=True) == late  # background requests and sessionless clients


def test_max_cost_prices_a_request_with_the_prompt_cache_its_conversation_keeps_warm() -> None:
    clock = Clock()
    r = conversation(clock, max_cost=0.4)
    assert r.route(req(HARD), CC, raw_size=200_000).tier == "opus"  # 50k tokens, nothing cached yet
    clock.now += 10
    loop = r.route(req(HARD), CC, raw_size=248_000)  # the turn's next request: 12k tokens more, 50k cached
    assert loop.tier == "opus" and loop.estimated_cost < 0.4
    cold = conversation(clock, max_cost=0.4).route(req(HARD), CC, raw_size=248_000)
    assert cold.tier != "opus" and any("max_cost" in why for why in cold.reasons)


def test_a_fast_mode_request_goes_only_to_a_model_with_fast_mode_and_is_estimated_at_twice_its_price() -> None:
    fast = router().route(req("Fix the typo in README.md", speed="fast"), CC)
    assert fast.model == "claude-opus-5", "haiku and sonnet would refuse speed: fast"
    assert any("fast-mode" in why for why in fast.reasons)
    fast_hard, standard_hard = router().route(req(HARD, speed="fast"), CC), router().route(req(HARD), CC)
    assert fast_hard.tier == standard_hard.tier == "opus"
    assert fast_hard.estimated_cost == pytest.approx(2 * standard_hard.estimated_cost)


def test_an_inference_geo_request_never_goes_to_a_model_older_than_claude_4_6_and_is_estimated_at_its_price() -> None:
    us = router().route(req("Fix the typo in README.md", inference_geo="us"), CC)
    assert us.model == "claude-sonnet-5", "claude-haiku-4-5 answers inference_geo with a 400"
    us_hard, plain_hard = router().route(req(HARD, inference_geo="us"), CC), router().route(req(HARD), CC)
    assert us_hard.tier == plain_hard.tier == "opus"
    assert us_hard.estimated_cost == pytest.approx(1.1 * plain_hard.estimated_cost)
    both = router().route(req(HARD, inference_geo="us", speed="fast"), CC)
    assert both.estimated_cost == pytest.approx(2.2 * plain_hard.estimated_cost)
