"""Random and hostile calls never make these layers raise: every answer is a decision with a named rule."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trading.conftest import Desk

TOOLS = st.sampled_from(
    [
        "mcp__alpaca__place_stock_order",
        "mcp__alpaca__place_crypto_order",
        "mcp__alpaca__place_option_order",
        "mcp__alpaca__replace_order_by_id",
        "mcp__alpaca__close_position",
        "mcp__alpaca__get_orders",
        "mcp__alpaca__update_account_config",
        "mcp__massive__call_api",
        "mcp__x__y",
        "Bash",
        "Write",
        "Edit",
    ]
) | st.text(max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "symbol",
        "side",
        "qty",
        "notional",
        "type",
        "limit_price",
        "legs",
        "order_id",
        "command",
        "file_path",
        "extended_hours",
        "time_in_force",
    ]
) | st.text(max_size=12)
INPUTS = st.dictionaries(KEYS, VALUES, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool=TOOLS, tool_input=INPUTS, phase=st.sampled_from(["pre", "post"]), response=VALUES | st.text(max_size=60))
def test_no_input_makes_a_layer_fail(
    desk: Desk, tool: str, tool_input: dict[str, Any], phase: str, response: Any
) -> None:
    decision = desk.call(tool, tool_input, phase=phase, response=response if phase == "post" else None)
    errors = [r for r in decision.trace if r.outcome == "error"]
    assert not errors, errors
    assert decision.permission in ("allow", "ask", "deny")
    if decision.permission != "allow":
        assert decision.layer and decision.rule and decision.reason
    json.dumps(decision.to_dict())
