"""The memory's records: projects, core blocks (with versions), archival passages and search hits.

Plain frozen dataclasses with no third-party imports, so every face (hook fallback included) can use them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ultramax.errors import UltramaxError

if TYPE_CHECKING:
    from ultramax.memory.timefilter import TimeRange

__all__ = [
    "CONVERSATION_KINDS",
    "DEFAULT_BLOCKS",
    "KINDS",
    "SEED_KINDS",
    "Block",
    "BlockLimitError",
    "BlockSpec",
    "BlockVersion",
    "MemoryStoreError",
    "NewPassage",
    "Passage",
    "Project",
    "SearchHit",
    "SearchResult",
    "Tier",
    "TierTiming",
    "iso_date",
    "kind_label",
]

SEED_KINDS = ("learning", "decision", "pattern", "bug_fix", "file_change", "code_review")
"""The seed's ``save_learning`` types (section 13), plus ``general`` for an untyped save."""
CONVERSATION_KINDS = ("prompt", "answer", "turn", "command", "test_run")
"""Captured conversation: user prompts, the model's final answers, dialog turns, shell commands, test runs."""
KINDS = (*SEED_KINDS, "general", *CONVERSATION_KINDS)


def kind_label(kind: str) -> str:
    """A kind as a person reads it: "bug fix", "test run"; an untyped (general) save is just "memory"."""
    return "memory" if kind == "general" else kind.replace("_", " ")


class MemoryStoreError(UltramaxError):
    """The memory store cannot be opened, read or written, or a request names something that is not there."""


class BlockLimitError(MemoryStoreError):
    """A core block write would exceed the block's character limit (Letta's 'Edit failed: Exceeds N')."""


@dataclass(frozen=True, slots=True)
class BlockSpec:
    label: str
    value: str
    limit: int
    description: str


DEFAULT_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec("human", "", 5000, "Who the developer is: preferences, conventions, how they like to work."),
    BlockSpec("persona", "", 5000, "How the assistant should behave in this project."),
    BlockSpec("project_context", "", 5000, "What the project is: stack, layout, services, how to build and test."),
    BlockSpec("learnings", "", 5000, "Lessons learned in past sessions: fixes, pitfalls, decisions."),
    BlockSpec("sleeptime_notes", "", 5000, "Notes written by background consolidation between sessions."),
)
"""The seed's five core blocks per project (section 13), 5,000 characters each."""


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    path: str | None
    created_at: float
    capture: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "created_at": iso_date(self.created_at, seconds=True),
            "capture": self.capture,
        }


@dataclass(frozen=True, slots=True)
class Block:
    project: str
    label: str
    value: str
    limit: int
    description: str
    read_only: bool
    version: int
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "label": self.label,
            "value": self.value,
            "limit": self.limit,
            "chars": len(self.value),
            "description": self.description,
            "read_only": self.read_only,
            "version": self.version,
            "updated_at": iso_date(self.updated_at, seconds=True),
        }


@dataclass(frozen=True, slots=True)
class BlockVersion:
    label: str
    version: int
    value: str
    limit: int
    created_at: float
    source: str
    parent: int | None


@dataclass(frozen=True, slots=True)
class NewPassage:
    """A passage to store. ``context`` is indexed with the text (search key) but never served."""

    text: str
    kind: str = "general"
    session_id: str | None = None
    created_at: float | None = None
    source_event: str | None = None
    source: str | None = None  # a file, a tool, a command: where it came from
    tags: tuple[str, ...] = ()
    context: str = ""
    external_id: str | None = None  # an id from elsewhere (an import, a dataset's dialog id)


@dataclass(frozen=True, slots=True)
class Passage:
    id: int
    project: str
    kind: str
    text: str
    created_at: float
    session_id: str | None = None
    source_event: str | None = None
    source: str | None = None
    tags: tuple[str, ...] = ()
    context: str = ""
    external_id: str | None = None
    seen: int = 1
    embedded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "kind": self.kind,
            "content": self.text,
            "created_at": iso_date(self.created_at, seconds=True),
            "session_id": self.session_id,
            "source_event": self.source_event,
            "source": self.source,
            "tags": list(self.tags),
            "external_id": self.external_id,
            "seen": self.seen,
        }


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: the passage, its fused score, the tier that answered and per-signal detail."""

    passage: Passage
    score: float
    tier: str = "L3"
    similarity: float | None = None  # cosine to the query, when vectors were used
    signals: dict[str, int] = field(default_factory=dict)  # rank per signal (bm25, vector), 1-based

    def to_dict(self) -> dict[str, Any]:
        out = self.passage.to_dict()
        out["score"] = round(self.score, 6)
        out["tier"] = self.tier
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        out["ranks"] = dict(self.signals)
        return out


class Tier(enum.IntEnum):
    L1 = 1
    L2 = 2
    L3 = 3
    L4 = 4

    @property
    def label(self) -> str:
        return f"L{int(self)}"


@dataclass(frozen=True, slots=True)
class TierTiming:
    tier: str
    ms: float
    hits: int

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "ms": round(self.ms, 3), "hits": self.hits}


@dataclass(slots=True)
class SearchResult:
    hits: list[SearchHit]
    tiers: list[TierTiming] = field(default_factory=list)
    answered_by: str = ""
    time_range: TimeRange | None = None
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "answered_by": self.answered_by,
            "time_range": None
            if self.time_range is None
            else {"phrase": self.time_range.phrase, "start": self.time_range.start, "end": self.time_range.end},
            "tiers": [t.to_dict() for t in self.tiers],
            "results": [h.to_dict() for h in self.hits],
        }


def iso_date(ts: float, *, seconds: bool = False) -> str:
    """A UTC timestamp as ``2026-11-20`` (or ``2026-11-20T14:03:11Z`` with ``seconds``)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else moment.strftime("%Y-%m-%d")
