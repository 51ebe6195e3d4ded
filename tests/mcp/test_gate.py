"""The safety gate of the gateway's call path, on its own: a warm engine, settings that follow their files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import UltramaxEnv
from ultramax.mcp.config import RoutingRule
from ultramax.mcp.gate import SafetyGate

RULE = RoutingRule("alt:*", ("alt",), require_safety_check=True)


def _gate(umx: UltramaxEnv) -> tuple[SafetyGate, Path]:
    project = umx.project("webapp")
    return SafetyGate(umx.paths, project, name="ultramax", prefix=True), project


def _set(project: Path, safety: dict[str, Any]) -> None:
    (project / ".claude").mkdir(exist_ok=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"safety": safety}), encoding="utf-8")


def _audited(umx: UltramaxEnv) -> list[dict[str, Any]]:
    lines = umx.paths.audit_log.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "McpGatewayCall"]


def test_the_gate_keeps_its_rate_limits_from_one_call_to_the_next(umx: UltramaxEnv) -> None:
    gate, project = _gate(umx)
    _set(project, {"operationCallsPerMinute": 2})
    try:
        outcomes = [gate.check("alt", "echo", RULE, {"message": str(n)}) for n in range(3)]
    finally:
        gate.close()
    assert outcomes[:2] == [None, None]
    assert outcomes[2] is not None and "rate limit: more than 2 calls of mcp__ultramax__alt__echo" in outcomes[2]
    assert [r["decision"] for r in _audited(umx)] == ["allow", "allow", "deny"]
    assert _audited(umx)[2]["rule"] == "rate_limit.operation"


def test_an_edited_setting_applies_to_the_next_gated_call_without_a_restart(umx: UltramaxEnv) -> None:
    gate, project = _gate(umx)
    try:
        assert gate.check("alt", "echo", RULE, {}) is None  # defaults: 60 calls a minute
        _set(project, {"operationCallsPerMinute": 1})
        assert gate.check("alt", "echo", RULE, {}) is None  # the new bucket's one token
        refused = gate.check("alt", "echo", RULE, {})
    finally:
        gate.close()
    assert refused is not None and "more than 1 calls" in refused


class _BrokenEngine:
    def evaluate(self, request: Any) -> Any:
        raise RuntimeError("boom")


def test_a_failing_engine_refuses_the_call_and_the_refusal_is_audited(umx: UltramaxEnv) -> None:
    gate, _ = _gate(umx)
    gate._engine = _BrokenEngine()
    try:
        refused = gate.check("alt", "echo", RULE, {"secret": "hunter2"})
    finally:
        gate.close()
    assert refused is not None and "safety check failed (RuntimeError: boom); the gateway fails closed" in refused
    record = _audited(umx)[-1]
    assert record["decision"] == "deny" and "hunter2" not in json.dumps(record)
