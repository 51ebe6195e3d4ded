"""The observability switches do what their help text says."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tests.conftest import PayloadFactory, UltramaxEnv
from ultramax.observability import JsonFormatter, Metrics, configure_logging, reset_logging
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


def test_a_log_line_is_redacted_in_its_message_fields_and_traceback() -> None:
    key = "sk-ant-api03-" + "Zq8mN3vR7tYw2KpL5xHc9Jd4"  # assembled: no scanner mistakes this file for a leak
    try:
        raise FileNotFoundError(f"/w/config/backup_{key}.txt")
    except FileNotFoundError as exc:
        record = logging.LogRecord("ultramax.pipeline", logging.ERROR, __file__, 1, "cannot read %s", (exc,), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.fields = {"path": f"/w/{key}", "nested": {"paths": [f"cache_{key}"]}, "count": 3}
    line = JsonFormatter().format(record)
    assert key not in line
    out = json.loads(line)
    assert out["msg"] == "cannot read /w/config/backup_[REDACTED:anthropic-key].txt"
    assert out["path"] == "/w/[REDACTED:anthropic-key]" and out["count"] == 3
    assert "FileNotFoundError" in out["exc"]


def test_the_log_files_and_their_folder_are_readable_by_the_user_alone(tmp_path: Path) -> None:
    logs = tmp_path / "claude" / "logs"
    logs.mkdir(parents=True, mode=0o755)
    (logs / "safety_audit.log").write_text("", encoding="utf-8")
    (logs / "safety_audit.log").chmod(0o644)  # as an earlier version left it
    configure_logging(tmp_path / "claude" / "logs")
    try:
        logging.getLogger("ultramax.pipeline").warning("settings problem")
        logging.getLogger("ultramax.safety").warning("denied")
    finally:
        reset_logging()
    for name in ("hooks_pipeline.log", "safety_audit.log"):
        assert (logs / name).stat().st_mode & 0o777 == 0o600, name
    fresh = tmp_path / "fresh" / "logs"
    configure_logging(fresh)
    reset_logging()
    assert fresh.stat().st_mode & 0o777 == 0o700 and fresh.parent.stat().st_mode & 0o777 == 0o700
