"""Stage 2: safety. Turns the hook event into a SafetyRequest and asks the safety engine.

Before a call (PreToolUse, PermissionRequest) the engine decides; after it (PostToolUse,
PostToolUseFailure) the layers observe the outcome -- the exposure ledger, the circuit breaker and
post-execution verification learn from it -- and may flag a mismatch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.safety.engine import SafetyEngine, SafetyLayer, SafetyRequest
from ultramax.safety.killswitch import KillSwitchLayer

__all__ = ["SafetyStage", "request_from_context"]

PRE_EVENTS = frozenset({"PreToolUse", "PermissionRequest"})
POST_EVENTS = frozenset({"PostToolUse", "PostToolUseFailure"})


def default_layers() -> list[SafetyLayer]:
    from ultramax.safety.anomaly import AnomalyDetectionLayer
    from ultramax.safety.confirm import ConfirmationGateLayer
    from ultramax.safety.layers_core import (
        AuthenticationLayer,
        InputValidationLayer,
        PermissionLayer,
        RateLimitLayer,
        RiskAssessmentLayer,
    )
    from ultramax.safety.market_hours import MarketHoursLayer
    from ultramax.safety.override import ManualOverrideLayer
    from ultramax.safety.sanitize import SanitisationLayer
    from ultramax.safety.trading import (
        CircuitBreakerLayer,
        ExecutionIsolationLayer,
        PositionLimitLayer,
        PostExecutionVerificationLayer,
    )

    return [
        InputValidationLayer(),  # 1
        AuthenticationLayer(),  # 2
        RateLimitLayer(),  # 3
        SanitisationLayer(),  # 4
        PermissionLayer(),  # 5
        RiskAssessmentLayer(),  # 6
        PositionLimitLayer(),  # 7
        MarketHoursLayer(),  # 8
        CircuitBreakerLayer(),  # 9
        KillSwitchLayer(),  # 10
        AnomalyDetectionLayer(),  # 12
        ManualOverrideLayer(),  # 13
        ConfirmationGateLayer(),  # 14
        ExecutionIsolationLayer(),  # 15
        PostExecutionVerificationLayer(),  # 16
    ]


def request_from_context(ctx: HookContext) -> SafetyRequest | None:
    """The engine's view of a tool event, or None for events the engine does not judge."""
    name = ctx.event_name
    if name not in PRE_EVENTS and name not in POST_EVENTS:
        return None
    event: Any = ctx.event
    cwd = Path(event.cwd) if event.cwd else ctx.project_dir
    return SafetyRequest(
        tool=event.tool_name,
        input=event.tool_input if isinstance(event.tool_input, dict) else {},
        mode=ctx.mode,
        settings=ctx.settings,
        paths=ctx.paths,
        cwd=cwd,
        home=Path(os.environ.get("HOME") or Path.home()),
        project_dir=ctx.project_dir,
        session_id=event.session_id,
        principal=ctx.metadata.get("principal"),
        phase="pre" if name in PRE_EVENTS else "post",
        response=getattr(event, "tool_response", None),
        error=getattr(event, "error", None),
        source="hook",
    )


class SafetyStage:
    name = "safety"
    phase: Literal["decide", "record"] = "decide"
    critical = True

    def __init__(self, engine: SafetyEngine) -> None:
        self.engine = engine

    @classmethod
    def with_default_layers(cls) -> SafetyStage:
        return cls(SafetyEngine(default_layers()))

    def process(self, ctx: HookContext) -> StageOutput:
        request = request_from_context(ctx)
        if request is None:
            return StageOutput()
        decision = self.engine.evaluate(request)
        meta = {"safety": decision.to_dict()}
        if decision.permission == "allow":
            return StageOutput(metadata=meta)
        return StageOutput.block(
            decision.reason, permission=decision.permission, rule=decision.rule, layer=decision.layer, **meta
        )
