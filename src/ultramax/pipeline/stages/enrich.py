"""Stage 4: context enrichment.

At session start the model is told, in a few lines, which guardrails it works under: the project's mode,
the safety level and failure policy, what needs confirmation, what is blocked, and whether the kill switch
is engaged -- so it plans around them instead of discovering them one denial at a time. Other engines
(memory, skills) add their own context through their own stages.
"""

from __future__ import annotations

from typing import Literal

from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.safety.killswitch import KillSwitch

__all__ = ["EnrichmentStage"]

BRIEFED_SOURCES = frozenset({"startup", "resume", "clear", "compact", "fork"})


class EnrichmentStage:
    name = "enrichment"
    phase: Literal["decide", "record"] = "decide"

    def process(self, ctx: HookContext) -> StageOutput:
        if ctx.event_name != "SessionStart":
            return StageOutput()
        source = getattr(ctx.event, "source", None) or "startup"
        if source not in BRIEFED_SOURCES:
            return StageOutput()
        return StageOutput(context=briefing(ctx), metadata={"briefing": True})


def briefing(ctx: HookContext) -> str:
    mode = ctx.mode
    policy = "denies when in doubt" if mode.strict else "asks when in doubt"
    explicit = ctx.settings.sources["safety.level"] != "default"
    level = ctx.settings.get("safety.level") if explicit else mode.safety_level
    lines = [
        f"[ultramax] This project runs in {mode.name} mode ({mode.description}); safety level {level}, "
        f"failure policy: {policy}. Tool calls pass ultramax's safety gate and are audited.",
    ]
    confirm = list(dict.fromkeys([*mode.require_confirmation, *ctx.settings.get("safety.requireConfirmation")]))
    if confirm:
        lines.append("Needs explicit user confirmation: " + ", ".join(confirm) + ".")
    if mode.blocked_operations:
        lines.append("Never attempt: " + ", ".join(mode.blocked_operations) + ".")
    if KillSwitch(ctx.paths.kill_switch).engaged:
        scope = "all tool calls" if mode.strict else "all tool calls except reads"
        lines.append(f"The KILL SWITCH is engaged: {scope} will be denied until the user runs `ultramax kill off`.")
    return "\n".join(lines)
