"""Routing rules, round-robin replicas, the safety gate in the call path, and servers that follow the mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from tests.mcp.harness import Gateway, Servers, calls_by, make_env, require_servers, result_text, write_pools


@dataclass
class Routed:
    gw: Gateway
    env: UltramaxEnv
    project: Path


def pools(servers: Servers) -> dict[str, Any]:
    return {
        "version": "8.0",
        "pools": {
            "primary": {"strategy": "round-robin", "servers": {
                "everything": servers.everything(env={"LABEL": "main"}, replicas=2),
                "alt": servers.everything(env={"LABEL": "alt"}),
            }},
            "project-specific": {"servers": {
                "alpaca": servers.everything(env={"LABEL": "alpaca"}, disabled=True, projects=["alphaforge"]),
            }},
        },
        "routing": {"rules": [
            {"pattern": "everything:get-env", "servers": ["alt"]},
            {"pattern": "trade:*", "servers": ["alt", "alpaca"], "require_safety_check": True},
        ]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    servers = Servers(require_servers())
    env = make_env(tmp_path_factory.mktemp("r"))
    write_pools(env, pools(servers))
    project = env.root / "projects" / "webapp"
    project.mkdir(parents=True)
    with Gateway(env, project) as gw:
        for server in ("everything#1", "everything#2", "alt"):
            gw.wait_up(server)
        yield Routed(gw, env, project)


def gateway_records(env: UltramaxEnv) -> list[dict[str, Any]]:
    if not env.paths.audit_log.exists():
        return []
    records = [json.loads(line) for line in env.paths.audit_log.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["event"] == "McpGatewayCall"]


def test_replicas_in_a_round_robin_pool_take_turns(routed: Routed) -> None:
    before = calls_by(routed.gw, "everything#1"), calls_by(routed.gw, "everything#2")
    for i in range(10):
        assert routed.gw.text("everything__echo", {"message": str(i)}) == f"Echo: {i}"
    after = calls_by(routed.gw, "everything#1"), calls_by(routed.gw, "everything#2")
    assert (after[0] - before[0], after[1] - before[1]) == (5.0, 5.0)


def test_a_routing_rule_sends_a_tool_to_the_servers_it_names(routed: Routed) -> None:
    assert json.loads(routed.gw.text("everything__get-env"))["LABEL"] == "alt", "everything:get-env -> alt"
    assert routed.gw.text("everything__echo", {"message": "x"}) == "Echo: x", "other tools stay with everything"


def test_a_rule_requiring_a_safety_check_puts_the_engine_in_the_call_path_fail_closed(routed: Routed) -> None:
    gw, env = routed.gw, routed.env
    audited_before = len(gateway_records(env))
    assert gw.text("alt__echo", {"message": "before"}) == "Echo: before"
    env.paths.kill_switch.write_text("e2e freeze\n", encoding="utf-8")
    try:
        refused = gw.call("alt__echo", {"message": "during"})
        assert refused.is_error
        assert "ultramax safety gate refused alt__echo" in result_text(refused)
        assert "KILL SWITCH" in result_text(refused)
        landing = gw.call("everything__get-env")
        assert landing.is_error and "KILL SWITCH" in result_text(landing), (
            "routed by another rule onto a gated server: the gate still applies"
        )
        assert gw.text("everything__echo", {"message": "ungated"}) == "Echo: ungated"
    finally:
        env.paths.kill_switch.unlink()
    assert gw.text("alt__echo", {"message": "after"}) == "Echo: after"

    gateway = gateway_records(env)[audited_before:]
    assert [r["decision"] for r in gateway] == ["allow", "deny", "deny", "allow"]
    assert gateway[1]["tool"] == "mcp__ultramax__alt__echo" and gateway[1]["rule"] == "kill_switch.engaged"
    assert all(len(r["input_sha256"]) == 64 and "during" not in json.dumps(r) for r in gateway)


def test_project_specific_servers_follow_the_projects_mode(routed: Routed) -> None:
    assert not any(t.name.startswith("alpaca__") for t in routed.gw.tools()), "development mode: no alpaca"
    inactive = routed.gw.status()["inactive"]
    assert "not in mode development's servers" in inactive["alpaca"]

    trading = routed.env.root / "projects" / "quant"
    trading.mkdir()
    env = {**os.environ, "HOME": str(routed.env.home), "ULTRAMAX_HOME": str(routed.env.ultramax_home)}
    subprocess.run([sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(trading), "mode", "activate",
                    "alphaforge"], check=True, env=env, capture_output=True, timeout=60)  # fmt: skip
    with Gateway(routed.env, trading) as gw:
        gw.wait_up("alpaca")
        assert "alpaca__echo" in {t.name for t in gw.tools()}
        # a call through the gateway is judged as a call to the trading server itself: one that ultramax's risk
        # table does not know is refused in trading mode, as it would be called directly
        refused = gw.call("alpaca__get-env")
        assert refused.is_error and "not in ultramax's risk table" in result_text(refused)
