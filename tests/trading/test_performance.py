"""Ordinary work is not slowed: the engine time of these layers for Bash and Edit calls, measured in-process."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.trading.conftest import CRYPTO, Desk, crypto, guard_layers, order_response
from ultramax.safety.engine import SafetyEngine

CALLS = 3000


def per_call_us(desk: Desk, engine: SafetyEngine, tool: str, tool_input: dict[str, object]) -> list[float]:
    requests = [desk.request(tool, tool_input, mode="development", session=f"s{i % 50}") for i in range(CALLS)]
    timings = []
    for request in requests:
        t0 = time.perf_counter_ns()
        engine.evaluate(request)
        timings.append((time.perf_counter_ns() - t0) / 1000)
    return timings[CALLS // 10 :]  # after warm-up


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        ("Bash", {"command": "npm test -- auth", "description": "Run auth tests"}),
        ("Edit", {"file_path": "/w/src/app.py", "old_string": "a = 1", "new_string": "a = 2"}),
    ],
)
def test_these_layers_add_well_under_a_third_of_a_millisecond_to_an_ordinary_call(
    desk: Desk, tool: str, tool_input: dict[str, object]
) -> None:
    desk.set(sessionCallsPerMinute=0)
    mine = SafetyEngine([layer for layer in guard_layers() if layer.name != "kill_switch"])
    baseline = SafetyEngine([])
    ours = per_call_us(desk, mine, tool, tool_input)
    empty = per_call_us(desk, baseline, tool, tool_input)
    p50 = statistics.median(ours) - statistics.median(empty)
    p99 = statistics.quantiles(ours, n=100)[98]
    print(f"\n{tool}: layers 1-3, 5-9, 12-16 p50 +{p50:.1f} us, p99 {p99:.1f} us per call")
    assert p50 < 300, f"{tool}: {p50:.1f} us"


def test_an_order_is_judged_and_booked_in_milliseconds(desk: Desk) -> None:
    engine = SafetyEngine(guard_layers())
    engine.evaluate(desk.request(CRYPTO, crypto(qty="0.0001")))  # the first order imports nothing heavy: crypto
    pre, post = [], []
    for i in range(20):
        order = crypto(qty="0.0001", client_order_id=f"perf-{i}")
        t0 = time.perf_counter()
        decision = engine.evaluate(desk.request(CRYPTO, order))
        pre.append(time.perf_counter() - t0)
        assert decision.permission == "allow", decision.reason
        t0 = time.perf_counter()
        engine.evaluate(
            desk.request(
                CRYPTO,
                order,
                phase="post",
                response=order_response("BTC/USD", "buy", "0.0001", "60000", order_id=f"p{i}"),
            )
        )
        post.append(time.perf_counter() - t0)
    pre_ms, post_ms = statistics.median(pre) * 1000, statistics.median(post) * 1000
    print(f"\norder: pre-trade p50 {pre_ms:.2f} ms, post-trade p50 {post_ms:.2f} ms")
    assert statistics.median(pre) < 0.05 and statistics.median(post) < 0.05
