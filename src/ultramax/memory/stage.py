"""Stage 3, ``memory_sync`` (seed section 5): inject memory into the model's context, capture what happens.

- SessionStart: core blocks and the most useful recent passages of the project.
- UserPromptSubmit: memories relevant to the prompt (searched before the prompt itself is stored).
- UserPromptSubmit, PostToolUse(Failure), Stop, SubagentStop: capture (unless ``memory.captureEnabled`` is
  off for the project, or the project's capture switch is off).

In the daemon the stage runs on a worker thread (``blocking``); captured text is committed before the hook
is answered and embedded afterwards by the background writer. The module imports no numpy: in the hook
fallback the same stage stores text and searches with keywords only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ultramax.memory.capture import CAPTURED_EVENTS
from ultramax.memory.models import MemoryStoreError
from ultramax.memory.service import MemoryService
from ultramax.pipeline.stage import HookContext, StageOutput

__all__ = ["MemorySyncStage"]

log = logging.getLogger("ultramax.memory")

_INJECT_SOURCES = frozenset({"startup", "resume", "clear", "compact"})


class MemorySyncStage:
    name = "memory_sync"
    phase: Literal["decide", "record"] = "decide"
    blocking = True  # SQLite writes and (in the daemon) model inference: never on the event loop...
    blocking_events = frozenset({"SessionStart", *CAPTURED_EVENTS})  # ...but only these events do any
    critical = False  # a memory failure never blocks a tool call

    def __init__(self, service: MemoryService, restart: Callable[[], None] | None = None) -> None:
        self.service = service
        self.restart = restart  # the daemon's: stop, so that the next hook starts one on the file now in place

    def process(self, ctx: HookContext) -> StageOutput:
        name = ctx.event_name
        if name != "SessionStart" and name not in CAPTURED_EVENTS:
            return StageOutput()
        settings = ctx.settings
        if settings.get("memory.provider") != "embedded":
            return StageOutput(metadata={"memory": f"provider {settings.get('memory.provider')} is not built in"})
        if self.service.store_replaced():  # its connections and caches belong to the file moved away
            if self.restart is not None:
                self.restart()
            raise MemoryStoreError(
                f"{self.service.store.path} was moved or replaced while this process had it open; memory is "
                "skipped for this event and the daemon restarts to use the file now in place"
            )
        directory = ctx.project_dir or (Path(ctx.event.cwd) if ctx.event.cwd else None)
        project = self.service.project_for(directory, settings.get("memory.project") or None)
        if project is None:
            return StageOutput()
        budget = int(settings.get("memory.injectionBudgetChars"))
        context: str | None = None
        injected: list[int] = []
        if budget > 0 and name == "SessionStart":
            if (getattr(ctx.event, "source", None) or "startup") in _INJECT_SOURCES:
                context = self.service.session_start_context(project, budget)
        elif budget > 0 and name == "UserPromptSubmit" and int(settings.get("memory.recallLimit")) > 0:
            prompt = str(getattr(ctx.event, "prompt", "") or "")
            context, injected = self.service.prompt_context(
                project,
                ctx.event.session_id,
                prompt,
                budget,
                limit=int(settings.get("memory.recallLimit")),
                min_similarity=float(settings.get("memory.injectionMinSimilarity")),
                hierarchical=bool(settings.get("memory.hierarchicalTiers")),
            )
        captured: list[int] = []
        if name in CAPTURED_EVENTS and settings.get("memory.captureEnabled") and self.service.capture_allowed(project):
            captured = self.service.capture(project, ctx.event)
        return StageOutput(
            context=context,
            metadata={"memory_project": project.name, "memory_captured": captured, "memory_injected": injected},
        )


def build_stage(services: object) -> MemorySyncStage:
    """The registry's factory: one MemoryService per runtime, shared by every mode's pipeline."""
    from ultramax.pipeline.registry import StageServices

    assert isinstance(services, StageServices)
    service = services.shared.get("memory")
    if not isinstance(service, MemoryService):
        in_daemon = bool(services.shared.get("daemon"))
        service = MemoryService(services.paths, background=in_daemon, embeddings=in_daemon)
        services.shared["memory"] = service
    restart = services.shared.get("restart")
    return MemorySyncStage(service, restart if callable(restart) else None)
