"""Layers 12 (anomaly detection), 13 (manual override) and 14 (confirmation gate)."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trading.conftest import (
    CRYPTO,
    OPEN,
    STOCK,
    THANKSGIVING,
    Desk,
    crypto,
    order_response,
    paper_mcp,
    stock,
)
from ultramax.audit import read_records, verify
from ultramax.cli.main import main
from ultramax.safety.anomaly import AnomalyDetectionLayer
from ultramax.safety.confirm import confirmations_for
from ultramax.safety.engine import SafetyDecision, SafetyEngine
from ultramax.safety.killswitch import KillSwitch

WATCH = "mcp__alpaca__add_asset_to_watchlist_by_id"
QUOTE = "mcp__alpaca__get_stock_latest_quote"


def minutes(n: float) -> datetime:
    return OPEN + timedelta(minutes=n)


def anomaly(desk: Desk) -> Any:
    engine = SafetyEngine([AnomalyDetectionLayer()])

    def run(tool: str, when: datetime, session: str = "s", tool_input: dict[str, Any] | None = None) -> SafetyDecision:
        return engine.evaluate(desk.request(tool, tool_input or {}, now=when, session=session))

    return run


# -- anomaly detection --------------------------------------------------------------------------------------
def test_a_burst_far_above_the_learned_rate_is_asked_about_with_the_numbers(desk: Desk) -> None:
    run = anomaly(desk)
    for minute in range(12):  # a quiet baseline: one call a minute
        assert run(WATCH, minutes(minute)).permission == "allow"
    results = [run(WATCH, minutes(12.5)) for _ in range(6)]
    asked = [r for r in results if r.permission == "ask"]
    assert [r.permission for r in results[:4]] == ["allow"] * 4
    assert asked and asked[0].rule == "anomaly.rate"
    assert "baseline" in asked[0].reason and "z=" in asked[0].reason and "ref c-" in asked[0].reason


def test_ordinary_tools_and_reads_are_never_judged_by_anomaly_detection(desk: Desk) -> None:
    run = anomaly(desk)
    for minute in range(15):
        run("Bash", minutes(minute))
        run("mcp__alpaca__get_orders", minutes(minute))
    burst = [run(tool, minutes(15)) for tool in ("Bash", "mcp__alpaca__get_orders") for _ in range(50)]
    assert {r.permission for r in burst} == {"allow"}


def test_a_never_seen_transition_into_an_order_is_asked_about_once_the_model_is_warm(desk: Desk) -> None:
    run = anomaly(desk)
    for i in range(40):  # the habit: a quote, then an order; cancels are followed by a look at the orders
        run(QUOTE, minutes(30 * i), session=f"s{i}")
        run(CRYPTO, minutes(30 * i + 1), session=f"s{i}", tool_input=crypto())
        run("mcp__alpaca__cancel_all_orders", minutes(30 * i + 2), session=f"s{i}")
        run("mcp__alpaca__get_orders", minutes(30 * i + 3), session=f"s{i}")
    run(QUOTE, minutes(4000), session="habit")
    assert run(CRYPTO, minutes(4001), session="habit", tool_input=crypto()).permission == "allow"
    run("mcp__alpaca__cancel_all_orders", minutes(4100), session="novel")
    novel = run(CRYPTO, minutes(4101), session="novel", tool_input=crypto())
    assert (novel.permission, novel.rule) == ("ask", "anomaly.sequence")
    assert "trade:cancel_all_orders -> trade:place_crypto_order" in novel.reason


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([WATCH, CRYPTO, "Bash", QUOTE]), st.floats(0, 30)), max_size=60))
def test_anomaly_detection_only_ever_escalates_to_ask(desk: Desk, calls: list[tuple[str, float]]) -> None:
    run = anomaly(desk)
    for tool, minute in sorted(calls, key=lambda c: c[1]):
        assert run(tool, minutes(minute), tool_input=crypto()).permission in ("allow", "ask")


# -- manual override ----------------------------------------------------------------------------------------
def write_override(desk: Desk, **data: Any) -> None:
    desk.umx.paths.override.write_text(json.dumps(data), encoding="utf-8")


def test_an_override_lifts_named_layers_for_named_operations_and_is_audited(desk: Desk) -> None:
    desk.set(overrideMaxSeconds=30 * 86400)  # the file is written now; the request's clock is Thanksgiving
    closed = desk.call(STOCK, stock(), now=THANKSGIVING)
    assert closed.rule == "market_hours.closed", closed.to_dict()
    write_override(
        desk, allowed_operations=["trade:place_stock_order"], layers=["market_hours"], expires="2026-11-26T18:00:00Z",
        reason="holiday test",
    )  # fmt: skip
    decision = desk.call(STOCK, stock(), now=THANKSGIVING)
    assert decision.permission == "allow", decision.reason
    assert [r.outcome for r in decision.trace if r.layer == "manual_override"] == ["waive"]
    assert desk.call(CRYPTO, crypto(qty="NaN"), now=THANKSGIVING).rule == "input.order_invalid"  # not waivable
    records = [json.loads(raw) for _n, raw in read_records(desk.umx.paths.audit_log)]
    used = [r for r in records if r["event"] == "override"]
    assert used and used[0]["rule"] == "override.active" and "holiday test" in used[0]["reason"]
    assert verify(desk.umx.paths.audit_log, desk.umx.paths.audit_head).ok


def test_an_override_never_lifts_the_kill_switch(desk: Desk) -> None:
    write_override(desk, allowed_operations=["*"], expires="2026-11-24T16:00:00Z")
    KillSwitch(desk.umx.paths.kill_switch).engage("stop")
    decision = desk.call(CRYPTO, crypto())
    assert (decision.permission, decision.rule) == ("deny", "kill_switch.engaged")


def test_an_override_cannot_lift_paper_trading_or_permissions(desk: Desk) -> None:
    write_override(desk, allowed_operations=["*"], expires="2026-11-24T16:00:00Z")
    assert (
        desk.call("mcp__alpaca__update_account_config", {"suspend_trade": False}).rule == "permission.privileged_tool"
    )
    (desk.project / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"alpaca": {"env": {"ALPACA_PAPER_TRADE": "false"}}}}), encoding="utf-8"
    )
    assert desk.call(CRYPTO, crypto()).rule == "isolation.live_endpoint"
    write_override(desk, allowed_operations=["*"], layers=["execution_isolation"], expires="2026-11-24T16:00:00Z")
    assert desk.call(CRYPTO, crypto()).rule == "isolation.live_endpoint"


def test_an_override_lifts_everything_it_names_except_the_confirmation_of_a_live_order(desk: Desk) -> None:
    paper_mcp(desk.project, "false")
    desk.set(tradingMode="live")
    write_override(desk, allowed_operations=["trade:*"], expires="2026-11-24T16:00:00Z")  # the default layers
    live = desk.call(CRYPTO, crypto())
    assert (live.permission, live.rule) == ("ask", "confirm.required") and live.reason.startswith("live order")
    desk.set(maxOrderNotional=100.0)  # the other layers it names are still lifted
    assert desk.call(CRYPTO, crypto()).rule == "confirm.required"


def test_an_expired_endless_or_too_long_override_is_ignored(desk: Desk) -> None:
    ops = ["trade:place_stock_order"]
    for data in (
        {"allowed_operations": ops, "expires": "2026-11-26T15:00:00Z"},  # expired an hour before
        {"allowed_operations": ops},  # no expiry
        {"allowed_operations": ops, "expires": "2099-01-01T00:00:00Z"},  # beyond safety.overrideMaxSeconds
    ):
        write_override(desk, **data)
        assert desk.call(STOCK, stock(), now=THANKSGIVING).rule == "market_hours.closed"


def test_override_set_show_and_clear_through_the_cli(desk: Desk, ultramax: Cli) -> None:
    def cli(*args: str, **env: str) -> Ran:
        return ultramax(desk, *args, **env)

    done = cli(
        "override", "set", "trade:place_stock_order", "--for", "30m", "--layers", "market_hours", "--reason", "t"
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(desk.umx.paths.override.stat().st_mode) == 0o600
    shown = json.loads(cli("override", "show", "--json").stdout)
    assert shown["override"]["active"] and shown["override"]["layers"] == ["market_hours"]
    refused = cli("override", "set", "*", "--layers", "kill_switch")
    assert refused.returncode == 2 and "cannot lift kill_switch" in refused.stderr  # a usage error
    unreadable = cli("override", "set", "*", "--for", "soon")
    assert unreadable.returncode == 2 and "--for: cannot read duration 'soon'" in unreadable.stderr
    agent = cli("override", "set", "*", CLAUDECODE="1")
    assert agent.returncode == 1 and "not from inside a Claude Code session" in agent.stderr
    assert "override cleared" in cli("override", "clear").stdout
    assert not desk.umx.paths.override.exists()
    events = [json.loads(raw)["event"] for _n, raw in read_records(desk.umx.paths.audit_log)]
    assert events == ["override.set", "override.clear"]


# -- confirmation gate --------------------------------------------------------------------------------------
class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


class Cli(Protocol):
    def __call__(self, desk: Desk, *args: str, **env: str) -> Ran: ...


@pytest.fixture
def ultramax(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``ultramax ARGS`` run in-process (the real entry point, without a new interpreter per call)."""

    def run(desk: Desk, *args: str, **env: str) -> Ran:
        capsys.readouterr()
        with monkeypatch.context() as m:
            for name in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID"):
                m.delenv(name, raising=False)
            for name, value in env.items():
                m.setenv(name, value)
            code = main(["--project-dir", str(desk.project), *args])
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


@pytest.fixture
def confirm_cli(ultramax: Cli) -> Cli:
    def run(desk: Desk, *args: str, **env: str) -> Ran:
        return ultramax(desk, "confirm", *args, **env)

    return run


def test_a_paper_order_in_trading_mode_asks_and_a_redeemed_token_lets_exactly_that_call_run_once(
    desk: Desk, confirm_cli: Cli
) -> None:
    desk.set(confirmPaperOrders=True)
    # now=None: the calls read the wall clock, as the confirmation store and `ultramax confirm` do (a token made
    # at the desk's fixed clock would expire five minutes after it in real time); crypto trades at any hour
    asked = desk.call(CRYPTO, crypto(), now=None)
    assert (asked.permission, asked.layer, asked.rule) == ("ask", "confirmation_gate", "confirm.required")
    listing = json.loads(confirm_cli(desk, "--json").stdout)
    assert len(listing) == 1 and listing[0]["status"] == "pending"
    token, ref = listing[0]["token"], listing[0]["ref"]
    assert ref in asked.reason and token not in asked.reason
    assert desk.call(CRYPTO, crypto(), now=None).permission == "ask"  # the same record, not a second one
    assert len(confirmations_for(desk.umx.paths).open()) == 1
    approved = confirm_cli(desk, token)
    assert approved.returncode == 0 and ref in approved.stdout, approved.stderr
    assert desk.call(CRYPTO, crypto(qty="0.015"), now=None).permission == "ask"  # another call is not approved
    allowed = desk.call(CRYPTO, crypto(), now=None)
    assert (allowed.permission, [r.outcome for r in allowed.trace if r.layer == "confirmation_gate"]) == (
        "allow",
        ["waive"],
    )
    assert desk.call(CRYPTO, crypto(), now=None).permission == "ask"  # single use
    again = confirm_cli(desk, token)
    assert again.returncode == 1 and "no longer be approved" in again.stderr


def test_tokens_expire_and_are_never_logged(desk: Desk, confirm_cli: Cli) -> None:
    desk.set(confirmPaperOrders=True, confirmationTtlSeconds=60)
    desk.call(CRYPTO, crypto(), now=datetime.now().astimezone() - timedelta(seconds=120))
    assert json.loads(confirm_cli(desk, "--json").stdout) == []
    desk.call(CRYPTO, crypto(), now=None)
    token = json.loads(confirm_cli(desk, "--json").stdout)[0]["token"]
    assert confirm_cli(desk, token).returncode == 0
    audit = desk.umx.paths.audit_log.read_text(encoding="utf-8")
    assert token not in audit and "confirm.token_redeemed" in audit
    db = desk.umx.paths.home / "safety.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_claude_cannot_run_the_confirmation_command_itself(desk: Desk, confirm_cli: Cli) -> None:
    desk.set(confirmPaperOrders=True)
    desk.call(CRYPTO, crypto())
    refused = confirm_cli(desk, "--json", CLAUDECODE="1")
    assert refused.returncode == 1 and "not from inside a Claude Code session" in refused.stderr
    assert "token" not in refused.stdout


def test_an_unknown_token_is_refused_with_a_hint(desk: Desk, confirm_cli: Cli) -> None:
    out = confirm_cli(desk, "not-a-token")
    assert out.returncode == 1 and "ultramax confirm" in out.stderr


def test_a_call_approved_in_claude_codes_prompt_voids_its_pending_token(desk: Desk) -> None:
    desk.set(confirmPaperOrders=True)
    order = crypto()
    desk.call(CRYPTO, order, now=None)
    assert len(confirmations_for(desk.umx.paths).open()) == 1
    # the user said yes in the prompt; both calls on the wall clock, which confirmations are kept by
    desk.fill(CRYPTO, order, order_response("BTC/USD", "buy", "0.01", "60000"), now=None)
    assert confirmations_for(desk.umx.paths).open() == []


def test_paper_orders_within_limits_run_without_asking_when_so_configured(desk: Desk) -> None:
    desk.set(confirmPaperOrders=False)
    assert desk.call(CRYPTO, crypto()).permission == "allow"


def test_mode_patterns_ask_for_matching_mcp_tools_outside_trading(desk: Desk) -> None:
    decision = desk.call("mcp__notes__delete_note", {"id": "1"}, mode="development")
    gate = next(r for r in decision.trace if r.layer == "confirmation_gate")
    assert (decision.permission, gate.outcome, gate.rule) == ("ask", "ask", "confirm.required")
    assert gate.reason is not None and "delete_*" in gate.reason


def test_nothing_is_offered_for_confirmation_when_a_limit_refuses_the_call(desk: Desk) -> None:
    desk.set(confirmPaperOrders=True, maxOrderNotional=10.0)
    decision = desk.call(CRYPTO, crypto())
    assert decision.rule == "position_limits.order_notional"
    assert confirmations_for(desk.umx.paths).open() == []


def test_explaining_a_call_changes_no_state(desk: Desk) -> None:
    desk.set(confirmPaperOrders=True, orderRatePerMinute=1, sessionCallsPerMinute=1)
    for _ in range(5):  # ``ultramax safety check`` and ``safety eval`` judge calls that never run
        explained = desk.engine.evaluate(replace(desk.request(CRYPTO, crypto()), source="cli"))
        assert (explained.permission, explained.rule) == ("ask", "confirm.required")
        assert "Claude Code would ask" in explained.reason
    assert confirmations_for(desk.umx.paths).open() == []
    assert desk.call(CRYPTO, crypto()).permission == "ask"  # the real call still has its rate tokens
