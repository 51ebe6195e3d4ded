"""Stage 6: telemetry. Per-event and per-stage latency histograms, decisions by outcome, a JSON log line."""

from __future__ import annotations

import logging
import time
from typing import Literal

from ultramax.observability import Metrics
from ultramax.pipeline.stage import HookContext, StageOutput

__all__ = ["TelemetryStage"]

log = logging.getLogger("ultramax.pipeline")
SLOW_SECONDS = 0.05
"""Events slower than this are logged at INFO even when nothing else about them is notable."""


class TelemetryStage:
    name = "telemetry"
    phase: Literal["decide", "record"] = "record"

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics

    def process(self, ctx: HookContext) -> StageOutput:
        elapsed = (time.perf_counter_ns() - ctx.started_ns) / 1e9 if ctx.started_ns else 0.0
        event = ctx.event_name
        if self.metrics is not None and ctx.settings.get("observability.telemetryEnabled"):
            self.metrics.observe_hook(event, elapsed, [(r.stage, r.ms / 1000) for r in ctx.trace], ctx.decision.outcome)
            for _ in ctx.errors:
                self.metrics.errors.labels("stage").inc()
        # every event is already in the audit log and the metrics: the log gets the ones worth reading
        notable = ctx.decision.outcome != "continue" or bool(ctx.errors) or elapsed > SLOW_SECONDS
        level = logging.INFO if notable else logging.DEBUG
        if not log.isEnabledFor(level):
            return StageOutput()
        log.log(
            level,
            "hook",
            extra={
                "fields": {
                    "event": event,
                    "session": ctx.event.session_id,
                    "tool": ctx.event.tool,
                    "mode": ctx.mode.name,
                    "decision": ctx.decision.outcome,
                    "ms": round(elapsed * 1000, 3),
                    "stages": {r.stage: round(r.ms, 3) for r in ctx.trace},
                    "audit_seq": ctx.metadata.get("audit_seq"),
                }
            },
        )
        return StageOutput()
