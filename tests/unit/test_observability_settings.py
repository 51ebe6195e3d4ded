"""The observability switches do what their help text says."""

from __future__ import annotations

import json

from tests.conftest import PayloadFactory, UltramaxEnv
from ultramax.observability import Metrics
from ultramax.runtime import Runtime


def _run_pre_tool_use(umx: UltramaxEnv, make_payload: PayloadFactory) -> tuple[Metrics, dict[str, object]]:
    metrics = Metrics()
    runtime = Runtime(umx.paths, metrics=metrics)
    runtime.handle("PreToolUse", json.dumps(make_payload("PreToolUse")).encode())
    record = json.loads((umx.ultramax_home / "audit.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    return metrics, record


def test_with_defaults_metrics_are_collected_and_audit_records_carry_stage_times(
    umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    metrics, record = _run_pre_tool_use(umx, make_payload)
    assert 'ultramax_hook_duration_seconds_count{event="PreToolUse"} 1.0' in metrics.exposition().decode()
    stage_ms = record["stage_ms"]
    assert isinstance(stage_ms, dict) and {"auth_validation", "safety"} <= set(stage_ms)


def test_switching_telemetry_and_tracing_off_stops_metrics_and_stage_times(
    umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    umx.update_user_settings({"observability": {"telemetryEnabled": False, "tracingEnabled": False}})
    metrics, record = _run_pre_tool_use(umx, make_payload)
    assert "ultramax_hook_duration_seconds_count" not in metrics.exposition().decode()
    assert "stage_ms" not in record
