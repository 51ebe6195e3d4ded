"""Metrics (Prometheus, loopback) and structured JSON logs in ``~/.claude/logs/`` (the seed's file names).

Metric names: ``ultramax_hook_duration_seconds{event}``, ``ultramax_stage_duration_seconds{stage,event}``,
``ultramax_decisions_total{event,outcome}``, ``ultramax_hook_errors_total{kind}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ultramax.fsutil import private_dir
from ultramax.redact import redact, redact_obj

__all__ = ["LOG_FILES", "JsonFormatter", "Metrics", "RedactingFormatter", "configure_logging"]

LOG_FILES = {
    "pipeline": "hooks_pipeline.log",
    "safety": "safety_audit.log",
    "memory": "memory_sync.log",
    "letta": "letta_v8.log",
    "mcp": "mcp_gateway.log",
}
"""Logger name suffix -> file in ``~/.claude/logs/`` (seed section 1 file structure)."""

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The daemon's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        # imported here: the hook's in-process fallback never builds metrics and should not pay for the import
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.hook_duration = Histogram(
            "ultramax_hook_duration_seconds",
            "Pipeline time per hook event",
            ["event"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.stage_duration = Histogram(
            "ultramax_stage_duration_seconds",
            "Time per pipeline stage",
            ["stage", "event"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.decisions = Counter(
            "ultramax_decisions_total",
            "Decisions by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ultramax_hook_errors_total",
            "Hook events that hit the failure policy",
            ["kind"],
            registry=self.registry,
        )

        # labelled children are looked up once: ``labels()`` costs more than the observation itself
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_hook(self, event: str, seconds: float, stages: list[tuple[str, float]], outcome: str) -> None:
        """Record one hook event: its total time, each stage's time and the decision's outcome."""
        self._child(self.hook_duration, event).observe(seconds)
        for stage, stage_seconds in stages:
            self._child(self.stage_duration, stage, event).observe(stage_seconds)
        self._child(self.decisions, event, outcome).inc()

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        result: bytes = generate_latest(self.registry)
        return result


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra={"fields": {...}}``.

    Every string in the line is redacted, the traceback too: an error message can quote a path or a value
    from a hook event, and a secret can be a file name."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(redact_obj(fields))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """A plain-text line (for a terminal: ``ultramax proxy``'s stderr) redacted whole, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _LogFileHandler(logging.handlers.WatchedFileHandler):
    """Reopens the file after logrotate moves it, checking at most once a second (not on every line). The file
    is the user's alone (0600): its lines are redacted, but they are the user's prompts, commands and paths, and
    redaction can only find the secrets it recognises."""

    _checked = 0.0

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)  # a log an earlier version created 0644
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def reopenIfNeeded(self) -> None:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            super().reopenIfNeeded()

    def emit(self, record: logging.LogRecord) -> None:
        # Opening or reopening the file happens outside logging's own error handling: a full disk, a log folder
        # made read-only or out of inodes would otherwise raise into whatever logged -- the safety gate's
        # failure handling included. A log line is never worth a decision.
        try:
            super().emit(record)
        except OSError:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the line quietly (logging would print a traceback to stderr, which Claude Code shows)."""
        global dropped_log_lines
        dropped_log_lines += 1


dropped_log_lines = 0
"""Log lines lost to a file that could not be written (a full disk, a read-only folder)."""
_configured: set[Path] = set()
_config_lock = threading.Lock()


def configure_logging(logs_dir: Path, level: str = "INFO") -> None:
    """Route ``ultramax.<area>`` loggers to their seed log files as JSON lines (idempotent per directory)."""
    with _config_lock:
        if logs_dir in _configured:
            return
        # no log folder (read-only, full disk): the handlers drop their lines; everything else goes on
        with contextlib.suppress(OSError):
            private_dir(logs_dir)
        for area, filename in LOG_FILES.items():
            logger = logging.getLogger(f"ultramax.{area}")
            for old in list(logger.handlers):
                if getattr(old, "_ultramax", False):
                    logger.removeHandler(old)
                    old.close()
            handler = _LogFileHandler(logs_dir / filename, encoding="utf-8", delay=True)
            handler.setFormatter(JsonFormatter())
            handler._ultramax = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
        _configured.add(logs_dir)


def reset_logging() -> None:
    """Close ultramax's log handlers (tests and daemon shutdown)."""
    with _config_lock:
        for area in LOG_FILES:
            logger = logging.getLogger(f"ultramax.{area}")
            for old in list(logger.handlers):
                if getattr(old, "_ultramax", False):
                    logger.removeHandler(old)
                    old.close()
        _configured.clear()
