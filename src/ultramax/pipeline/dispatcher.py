"""The dispatcher: middleware, then decide stages in order, then record stages, under the failure policy.

Failure policy (ARCHITECTURE.md): a *critical* stage (validation, safety) that raises -- or whose circuit
breaker is open -- makes a permission decision ``ask`` with the error in the reason in lenient modes and
``deny`` in strict (trading) mode; a non-critical stage's failure is recorded and the event continues.
Record stages never change a decision, except that a failed audit write denies in strict mode (nothing
unaudited goes through when trading) and warns the user otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from ultramax.pipeline.middleware import CircuitBreaker, CircuitOpenError, RateLimiter, RetryPolicy
from ultramax.pipeline.stage import HookContext, Stage, StageOutput, StageRecord, StageResult

__all__ = ["Dispatcher"]

log = logging.getLogger("ultramax.pipeline")

PERMISSION_EVENTS = frozenset({"PreToolUse", "PermissionRequest"})


class Dispatcher:
    """Runs one mode's stages over a HookContext."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        breaker_threshold: int = 5,
        breaker_reset: float = 30.0,
        missing: Sequence[str] = (),
    ) -> None:
        self.decide = [s for s in stages if s.phase == "decide"]
        self.record = [s for s in stages if s.phase == "record"]
        self.missing = list(missing)
        self.rate_limiter = rate_limiter
        self.retry = retry or RetryPolicy()
        self.breakers = {s.name: CircuitBreaker(s.name, breaker_threshold, breaker_reset) for s in stages}

    def blocking_for(self, event: str) -> bool:
        """True if a stage may block on ``event`` (slow I/O, model inference): then it must not run on an event
        loop. A stage says so with ``blocking`` and narrows it with ``blocking_events``."""
        for stage in (*self.decide, *self.record):
            if getattr(stage, "blocking", False):
                events = getattr(stage, "blocking_events", None)
                if events is None or event in events:
                    return True
        return False

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in (*self.decide, *self.record)]

    def run(self, ctx: HookContext) -> HookContext:
        if ctx.started_ns == 0:
            ctx.started_ns = time.perf_counter_ns()
        if not self._admit(ctx):
            self._run_record_stages(ctx)
            return ctx
        for stage in self.decide:
            out = self._call(stage, ctx)
            if out is None:  # failed; the failure policy decided
                if ctx.decision.permission == "deny" or ctx.decision.block:
                    break
                continue
            if out.context:
                ctx.decision.additional_context.append(out.context)
            ctx.metadata.update(out.metadata)
            if out.result is StageResult.MODIFY and out.event is not None:
                ctx.event = out.event
            elif out.result is StageResult.BLOCK:
                self._block(ctx, stage.name, out)
                break
            elif out.result is StageResult.SKIP:
                break
        self._run_record_stages(ctx)
        return ctx

    # -- internals -------------------------------------------------------------------------------------
    def _admit(self, ctx: HookContext) -> bool:
        if self.rate_limiter is None:
            return True
        key = f"{ctx.event.session_id}:{ctx.event_name}"
        if self.rate_limiter.allow(key):
            return True
        message = (
            f"rate limit: more than {self.rate_limiter.rate:g} {ctx.event_name} events per minute in this session; "
            "wait a moment or raise safety.rateLimitPerMinute"
        )
        ctx.trace.append(StageRecord("rate_limiter", "block", 0.0, message))
        if ctx.event_name in PERMISSION_EVENTS:
            self._block(ctx, "rate_limiter", StageOutput.block(message, rule="middleware.rate_limit"))
        else:
            ctx.errors.append(message)
        return False

    def _call(self, stage: Stage, ctx: HookContext) -> StageOutput | None:
        """Run one stage behind its breaker and the retry policy; None if it failed (policy applied)."""
        t0 = time.perf_counter_ns()
        breaker = self.breakers[stage.name]
        try:
            out = breaker.call(lambda: self.retry.call(lambda: stage.process(ctx)))
        except CircuitOpenError as exc:
            self._trace(ctx, stage.name, "error", t0, str(exc))
            self._on_failure(ctx, stage, str(exc))
            return None
        except Exception as exc:  # a stage's bug must not crash Claude Code's session
            message = f"{type(exc).__name__}: {exc}"
            log.exception("stage failed", extra={"fields": {"stage": stage.name, "event": ctx.event_name}})
            self._trace(ctx, stage.name, "error", t0, message)
            self._on_failure(ctx, stage, message)
            return None
        self._trace(ctx, stage.name, out.result.value, t0, out.message)
        return out

    def _trace(self, ctx: HookContext, stage: str, result: str, t0: int, message: str | None) -> None:
        ctx.trace.append(StageRecord(stage, result, (time.perf_counter_ns() - t0) / 1e6, message))

    def _block(self, ctx: HookContext, stage: str, out: StageOutput) -> None:
        d = ctx.decision
        d.stage, d.rule, d.reason = stage, out.rule, out.message
        if ctx.event_name in PERMISSION_EVENTS:
            d.permission = out.permission
        else:
            d.block = out.permission == "deny"

    def _on_failure(self, ctx: HookContext, stage: Stage, message: str) -> None:
        ctx.errors.append(f"{stage.name}: {message}")
        strict = ctx.mode.strict
        if stage.phase == "record":
            if strict and ctx.event_name in PERMISSION_EVENTS:
                reason = f"ultramax: {stage.name} failed ({message}); trading mode denies what it cannot record"
                self._block(ctx, stage.name, StageOutput.block(reason, rule="failure_policy"))
            else:
                ctx.decision.system_message = f"ultramax warning: {stage.name} failed: {message}"
            return
        if ctx.event_name == "SessionStart" and ctx.decision.system_message is None:
            # once per session the user sees that something (memory, skills) is not working, and why
            ctx.decision.system_message = f"ultramax warning: {stage.name} failed: {message}; see `ultramax doctor`"
        if ctx.event_name not in PERMISSION_EVENTS or not getattr(stage, "critical", False):
            return
        verdict: Literal["deny", "ask"] = "deny" if strict else "ask"
        reason = f"ultramax: internal error in stage {stage.name} ({message}); failure policy: {verdict}"
        self._block(ctx, stage.name, StageOutput.block(reason, permission=verdict, rule="failure_policy"))

    def _run_record_stages(self, ctx: HookContext) -> None:
        for stage in self.record:
            out = self._call(stage, ctx)
            if out is not None:
                ctx.metadata.update(out.metadata)
