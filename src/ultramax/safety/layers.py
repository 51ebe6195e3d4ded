"""The safety layer contract: the safety stage runs its layers in order; the first verdict decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ultramax.pipeline.stage import HookContext

__all__ = ["READ_ONLY_TOOLS", "LayerVerdict", "SafetyLayer"]

READ_ONLY_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "NotebookRead", "TodoWrite", "TaskList", "TaskGet"})
"""Built-in tools that only read (allowed through the kill switch outside trading mode)."""


@dataclass(frozen=True, slots=True)
class LayerVerdict:
    """A layer's decision with the layer and rule that made it."""

    permission: Literal["deny", "ask"]
    reason: str
    layer: str
    rule: str


class SafetyLayer(Protocol):
    """One of the seed's 16 layers. ``order`` is its number in the seed."""

    name: str
    order: int

    def check(self, ctx: HookContext) -> LayerVerdict | None: ...
