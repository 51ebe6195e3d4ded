"""Stage 2: safety. Hosts the safety layers in their seed order; the first layer with a verdict decides."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.safety.killswitch import KillSwitchLayer
from ultramax.safety.layers import SafetyLayer

__all__ = ["SafetyStage"]


class SafetyStage:
    name = "safety"
    phase: Literal["decide", "record"] = "decide"
    critical = True

    def __init__(self, layers: Iterable[SafetyLayer]) -> None:
        self.layers = sorted(layers, key=lambda layer: layer.order)

    @classmethod
    def with_default_layers(cls) -> SafetyStage:
        return cls([KillSwitchLayer()])

    def process(self, ctx: HookContext) -> StageOutput:
        for layer in self.layers:
            verdict = layer.check(ctx)
            if verdict is not None:
                return StageOutput.block(
                    verdict.reason, permission=verdict.permission, rule=verdict.rule, layer=verdict.layer
                )
        return StageOutput(metadata={"safety_layers": [layer.name for layer in self.layers]})
