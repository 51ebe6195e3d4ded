"""Prewarm: tell ``ultramax proxy`` the prompt just typed, so it is scored before Claude Code sends it.

A hint on a background thread (``routing.prewarm``); the hook's answer never waits on it and never depends on
it. See ``ultramax.prewarm`` for why and how.
"""

from __future__ import annotations

from typing import Literal

from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.prewarm import PrewarmSender

__all__ = ["PrewarmStage"]


class PrewarmStage:
    name = "route_prewarm"
    phase: Literal["decide", "record"] = "decide"

    def __init__(self, sender: PrewarmSender) -> None:
        self.sender = sender

    def process(self, ctx: HookContext) -> StageOutput:
        if ctx.event_name != "UserPromptSubmit" or ctx.decision.block:
            return StageOutput()
        if not ctx.settings.get("routing.prewarm") or not ctx.settings.get("routing.enabled"):
            return StageOutput()
        prompt = str(getattr(ctx.event, "prompt", "") or "")
        if self.sender.submit(prompt):
            return StageOutput(metadata={"route_prewarm": "sent"})
        return StageOutput()
