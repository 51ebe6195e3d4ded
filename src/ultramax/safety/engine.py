"""The safety engine: the seed's 16 layers over one request, free of hook types.

A ``SafetyRequest`` describes one tool call (or, after the call, its outcome) in plain terms -- tool name,
input, working directory, mode, settings -- so the same engine serves the PreToolUse hook, the MCP gateway
(fail-closed, in the call path) and ``ultramax safety check``. Layers run in their seed order; each may
return a verdict (deny / ask) with the rule that made it, or waive other layers' verdicts (the manual
override). The strictest unwaived verdict wins; a deny stops the evaluation early. A layer that raises is
handled by the failure policy: ask in lenient modes, deny in strict (trading) mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from ultramax.config import Settings
from ultramax.modes import ModeConfig
from ultramax.paths import Paths

__all__ = [
    "SEVERITY",
    "LayerResult",
    "LayerVerdict",
    "PostObserver",
    "SafetyDecision",
    "SafetyEngine",
    "SafetyLayer",
    "SafetyRequest",
]

Permission = Literal["allow", "ask", "deny"]
SEVERITY: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}


@dataclass(frozen=True, slots=True)
class SafetyRequest:
    """One tool call as the safety engine sees it.

    ``phase`` is ``pre`` before the call runs and ``post`` after it (then ``response`` or ``error`` say how
    it went). ``source`` says who asks: the hook, the MCP gateway or the CLI.
    """

    tool: str
    input: dict[str, Any]
    mode: ModeConfig
    settings: Settings
    paths: Paths
    cwd: Path | None = None
    home: Path | None = None
    project_dir: Path | None = None
    session_id: str | None = None
    principal: str | None = None
    phase: Literal["pre", "post"] = "pre"
    response: Any = None
    error: str | None = None
    source: Literal["hook", "gateway", "cli"] = "hook"
    now: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_mcp(self) -> bool:
        return self.tool.startswith("mcp__")


@dataclass(frozen=True, slots=True)
class LayerVerdict:
    """A layer's verdict with the layer and rule that made it.

    ``waives`` names layers whose verdicts this one lifts (only the manual override uses it).
    """

    permission: Permission
    reason: str
    layer: str
    rule: str
    risk: float = 0.0
    waives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LayerResult:
    """One line of the engine's trace."""

    layer: str
    order: int
    outcome: str  # allow | ask | deny | waive | error | skipped
    ms: float
    reason: str | None = None
    rule: str | None = None


@dataclass(slots=True)
class SafetyDecision:
    """The engine's answer: the permission, which layer and rule made it, why, and the full trace."""

    permission: Permission
    reason: str = ""
    layer: str | None = None
    rule: str | None = None
    risk: float = 0.0
    trace: list[LayerResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "permission": self.permission,
            "reason": self.reason,
            "layer": self.layer,
            "rule": self.rule,
            "risk": round(self.risk, 3),
            "trace": [
                {"layer": r.layer, "order": r.order, "outcome": r.outcome, "ms": round(r.ms, 3), "reason": r.reason,
                 "rule": r.rule}
                for r in self.trace
            ],
        }  # fmt: skip


class SafetyLayer(Protocol):
    """One of the seed's layers. ``order`` is its number (1-16) in the seed."""

    name: str
    order: int

    def check(self, request: SafetyRequest) -> LayerVerdict | None: ...


class PostObserver(Protocol):
    """A layer that also learns from what happened after a call (ledger, breaker, verification)."""

    def observe(self, request: SafetyRequest) -> LayerVerdict | None: ...


class SafetyEngine:
    """Runs the layers; thread-safe as long as each layer is."""

    def __init__(self, layers: Iterable[SafetyLayer]) -> None:
        self.layers = sorted(layers, key=lambda layer: layer.order)

    def evaluate(self, request: SafetyRequest) -> SafetyDecision:
        """Decide a ``pre`` request, or let the layers observe a ``post`` one. Never raises."""
        verdicts: list[LayerVerdict] = []
        trace: list[LayerResult] = []
        for layer in self.layers:
            t0 = time.perf_counter_ns()
            try:
                if request.phase == "post":
                    observe = getattr(layer, "observe", None)
                    verdict = observe(request) if observe is not None else None
                else:
                    verdict = layer.check(request)
            except Exception as exc:  # noqa: BLE001 -- a layer's bug must become the failure policy, not a crash
                permission: Permission = "deny" if request.mode.strict else "ask"
                verdict = LayerVerdict(
                    permission,
                    f"internal error in safety layer {layer.name} ({type(exc).__name__}: {exc}); failure policy: "
                    f"{permission}",
                    layer.name,
                    "failure_policy.layer_error",
                )
                trace.append(LayerResult(layer.name, layer.order, "error", _ms(t0), verdict.reason, verdict.rule))
            else:
                outcome = "allow" if verdict is None else ("waive" if verdict.waives else verdict.permission)
                trace.append(
                    LayerResult(layer.name, layer.order, outcome, _ms(t0), verdict and verdict.reason,
                                verdict and verdict.rule)
                )  # fmt: skip
            if verdict is None:
                continue
            verdicts.append(verdict)
            if verdict.permission == "deny" and not verdict.waives and not _waivable_later(self.layers, layer):
                break
        return _combine(verdicts, trace)


def _waivable_later(layers: list[SafetyLayer], current: SafetyLayer) -> bool:
    """Whether a later layer could still waive ``current``'s verdict (then we must keep evaluating)."""
    return any(current.name in getattr(layer, "can_waive", ()) for layer in layers if layer.order > current.order)


def _combine(verdicts: list[LayerVerdict], trace: list[LayerResult]) -> SafetyDecision:
    waived = {name for v in verdicts for name in v.waives}
    live = [v for v in verdicts if not v.waives and v.layer not in waived]
    risk = sum(v.risk for v in verdicts)
    if not live:
        return SafetyDecision("allow", "", None, None, risk, trace)
    worst = max(live, key=lambda v: SEVERITY[v.permission])
    return SafetyDecision(worst.permission, worst.reason, worst.layer, worst.rule, risk, trace)


def _ms(t0: int) -> float:
    return (time.perf_counter_ns() - t0) / 1e6
