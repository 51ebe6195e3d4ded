"""Trading through the real Claude Code CLI: paper orders to a stand-in Alpaca MCP server, guarded by ultramax.

The scratch project runs in alphaforge (trading) mode with ultramax installed and the stand-in order server
(``tests/support/order_mcp_server.py``) registered in its ``.mcp.json`` as ``alpaca`` on paper. The scripted
model places orders through ``mcp__alpaca__place_crypto_order`` (crypto trades around the clock, so the
test does not depend on the hour it runs at; market hours have tests of their own). What reached the
"broker" is read from the server's own log, not from anything ultramax says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonProcess, UltramaxEnv, wait_for
from tests.e2e.conftest import ultramax_cli
from tests.support.claude_cli import ClaudeRun, run_claude
from tests.support.model_server import ModelServer, run_model_server, text_turn, tool_turn
from ultramax.audit import read_records, verify

pytestmark = pytest.mark.e2e

ORDER_SERVER = Path(__file__).resolve().parents[1] / "support" / "order_mcp_server.py"
ORDER = "mcp__alpaca__place_crypto_order"
TOOLS = [ORDER, "mcp__alpaca__update_account_config", "mcp__alpaca__get_account_info"]
WITHIN = {"symbol": "BTC/USD", "side": "buy", "qty": "0.01", "type": "limit", "limit_price": "60000"}
BEYOND = {"symbol": "BTC/USD", "side": "buy", "qty": "0.01", "type": "limit", "limit_price": "61000"}


@pytest.fixture
def desk(umx: UltramaxEnv) -> Path:
    """An alphaforge project: ultramax installed, the stand-in Alpaca server on paper, a $1,000 exposure cap."""
    path = umx.project("desk")
    ultramax_cli("install", "--project", project=path)
    ultramax_cli("mode", "activate", "alphaforge", project=path)
    settings_file = path / ".claude" / "settings.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings["safety"] = {**settings.get("safety", {}), "maxTotalExposure": 1000, "maxOrderNotional": 1000}
    settings_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    server = {
        "command": sys.executable,
        "args": [str(ORDER_SERVER)],
        "env": {"ALPACA_PAPER_TRADE": "true", "ORDER_SERVER_LOG": str(umx.root / "broker.jsonl")},
    }
    (path / ".mcp.json").write_text(json.dumps({"mcpServers": {"alpaca": server}}, indent=2), encoding="utf-8")
    return path


def trade(claude_bin: Path, umx: UltramaxEnv, project: Path, server: ModelServer) -> ClaudeRun:
    return run_claude(
        "trade as scripted",
        cwd=project,
        home=umx.home,
        base_url=server.base_url,
        allowed_tools=TOOLS,
        env={"ULTRAMAX_HOME": str(umx.ultramax_home)},
        claude=claude_bin,
    ).check()


def broker_calls(umx: UltramaxEnv) -> list[dict[str, Any]]:
    log = umx.root / "broker.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def tool_results(server: ModelServer) -> list[dict[str, Any]]:
    requests = server.main_requests()
    return requests[-1].tool_results() if requests else []


def result_text(result: dict[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return str(content)


def audited(umx: UltramaxEnv) -> list[dict[str, Any]]:
    return [json.loads(raw) for _n, raw in read_records(umx.ultramax_home / "audit.jsonl")]


def test_a_paper_order_is_asked_then_runs_once_confirmed_and_an_order_over_the_exposure_limit_is_denied(
    claude_bin: Path, umx: UltramaxEnv, desk: Path, daemon: DaemonProcess
) -> None:
    # 1. the model places an order within every limit: trading mode puts it to the user; headless, it is not run
    with run_model_server([tool_turn(ORDER, WITHIN), text_turn("Waiting for your confirmation.")]) as server:
        asked = trade(claude_bin, umx, desk, server)
        results = tool_results(server)
    assert [d["tool_name"] for d in asked.permission_denials] == [ORDER]
    assert broker_calls(umx) == [], "an unconfirmed order must not reach the broker"
    reason = result_text(results[0])
    assert "needs your confirmation (ref c-" in reason and "ultramax confirm" in reason

    # 2. the user, at a terminal, reviews the pending call and approves it with its one-time token
    pending = json.loads(ultramax_cli("confirm", "--json", project=desk).stdout)
    assert [p["summary"] for p in pending] == ["place_crypto_order on alpaca: buy 0.01 BTC/USD limit @ 60000"]
    assert pending[0]["token"] not in reason, "the token must never reach the model"
    ultramax_cli("confirm", pending[0]["token"], project=desk)

    # 3. the same call now runs (once); the fill enters the exposure ledger; the next order would breach the cap
    script = [tool_turn(ORDER, WITHIN), tool_turn(ORDER, BEYOND), text_turn("One order filled, one refused.")]
    with run_model_server(script) as server:
        run = trade(claude_bin, umx, desk, server)
        results = tool_results(server)
    assert [d["tool_name"] for d in run.permission_denials] == [ORDER]
    assert run.permission_denials[0]["tool_input"]["limit_price"] == "61000"
    filled = broker_calls(umx)
    assert [(c["tool"], c["arguments"]["limit_price"], c["paper_trade"]) for c in filled] == [
        ("place_crypto_order", "60000", "true")
    ]
    assert '"status":"filled"' in result_text(results[0]).replace(" ", "")
    denial = result_text(results[1])
    assert "would take gross exposure to $1,220.00, over the limit of $1,000.00" in denial
    assert "safety.maxTotalExposure" in denial

    wait_for(lambda: any(r.get("rule") == "position_limits.total_exposure" for r in audited(umx)), 10, "the denial")
    records = audited(umx)
    assert any(r["event"] == "confirm" and r["decision"] == "approve" for r in records)
    assert verify(umx.ultramax_home / "audit.jsonl", umx.ultramax_home / "audit.head").ok
    again = json.loads(ultramax_cli("confirm", "--json", project=desk).stdout)
    assert again == [], "the confirmation was single-use"


def test_paper_orders_run_unasked_when_so_configured_and_the_account_settings_tool_is_always_refused(
    claude_bin: Path, umx: UltramaxEnv, desk: Path, daemon: DaemonProcess
) -> None:
    settings_file = desk / ".claude" / "settings.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings["safety"]["confirmPaperOrders"] = False
    settings_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    script = [
        tool_turn(ORDER, WITHIN),
        tool_turn("mcp__alpaca__update_account_config", {"suspend_trade": False}),
        tool_turn(ORDER, BEYOND),
        text_turn("Done."),
    ]
    with run_model_server(script) as server:
        run = trade(claude_bin, umx, desk, server)
        results = tool_results(server)
    assert [d["tool_name"] for d in run.permission_denials] == ["mcp__alpaca__update_account_config", ORDER]
    assert [c["tool"] for c in broker_calls(umx)] == ["place_crypto_order"]
    assert "privileged account tool" in result_text(results[1])
    assert "maxTotalExposure" in result_text(results[2])
