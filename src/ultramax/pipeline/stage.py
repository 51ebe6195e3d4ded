"""The stage contract (seed section 5): each stage continues, blocks, modifies or skips, with metadata.

A stage is anything with a ``name``, a ``phase`` and ``process(ctx) -> StageOutput``. ``decide`` stages run
in order until one blocks or skips; ``record`` stages (audit, telemetry) always run afterwards and see the
final decision, so every decision -- including blocks -- is recorded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from ultramax.config import Settings
from ultramax.decisions import Decision
from ultramax.events import HookEvent
from ultramax.modes import ModeConfig
from ultramax.paths import Paths

__all__ = ["HookContext", "Stage", "StageOutput", "StageRecord", "StageResult", "TransientStageError"]


class StageResult(enum.StrEnum):
    CONTINUE = "continue"
    BLOCK = "block"
    MODIFY = "modify"
    SKIP = "skip"


@dataclass(slots=True)
class StageOutput:
    """What one stage did. ``permission`` says how a BLOCK is rendered (deny, or ask the user)."""

    result: StageResult = StageResult.CONTINUE
    message: str | None = None
    permission: Literal["deny", "ask"] = "deny"
    rule: str | None = None
    event: HookEvent | None = None  # the modified event, for MODIFY
    context: str | None = None  # additionalContext this stage contributes
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def block(
        cls,
        message: str,
        *,
        permission: Literal["deny", "ask"] = "deny",
        rule: str | None = None,
        **metadata: Any,
    ) -> StageOutput:
        return cls(StageResult.BLOCK, message=message, permission=permission, rule=rule, metadata=metadata)


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One line of the pipeline's trace: which stage ran, its result and how long it took."""

    stage: str
    result: str
    ms: float
    message: str | None = None


@dataclass(slots=True)
class HookContext:
    """Everything a stage may read about one hook event, and the decision being built."""

    event: HookEvent
    paths: Paths
    settings: Settings
    mode: ModeConfig
    mode_source: str
    project_dir: Path | None
    input_digest: str
    peer_uid: int | None = None
    decision: Decision = field(default_factory=Decision)
    metadata: dict[str, Any] = field(default_factory=dict)
    trace: list[StageRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started_ns: int = 0
    fallback: str | None = None
    """Why no daemon answered, when the hook client decides this event in-process (recorded in the audit log)."""

    @property
    def event_name(self) -> str:
        return self.event.hook_event_name


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage."""

    name: str
    phase: Literal["decide", "record"]

    def process(self, ctx: HookContext) -> StageOutput: ...


class TransientStageError(Exception):
    """Raised by a stage for a failure worth retrying (a busy database, a slow backend)."""
