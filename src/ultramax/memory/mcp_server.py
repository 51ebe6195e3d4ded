"""``ultramax memory mcp``: memory tools for the model, as a stdio MCP server (official ``mcp`` SDK 2.x).

Tools: ``memory_search``, ``memory_save``, ``memory_block_read``, ``memory_block_update`` -- so Claude can
recall and record deliberately, not only through automatic capture. Saves pass the same private-span
stripping and secret redaction as captured text; block updates respect each block's character limit
(the error says by how much a value is over).

Register it with Claude Code: ``claude mcp add ultramax-memory -- ultramax memory mcp``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from ultramax.memory.models import KINDS, MemoryStoreError
from ultramax.memory.service import MemoryService
from ultramax.paths import Paths

__all__ = ["LiveService", "build_server", "serve"]


class LiveService:
    """The service over the memory.db now in place. The server lives as long as the Claude Code session: when
    the file is moved aside and replaced (restored from a backup, set aside as damaged), the open connections
    would go on reading and writing the old file wherever it now is, so the next call reopens instead."""

    def __init__(self, open_service: Callable[[], MemoryService]) -> None:
        self._open = open_service
        self._service = open_service()
        self._lock = threading.Lock()

    def current(self) -> MemoryService:
        with self._lock:
            if self._service.store_replaced():
                old, self._service = self._service, self._open()
                old.close()
            return self._service

    def close(self) -> None:
        with self._lock:
            self._service.close()


def build_server(live: LiveService, default_project: str) -> MCPServer:
    server: MCPServer = MCPServer(
        name="ultramax-memory",
        instructions=(
            "Long-term memory of this project across Claude Code sessions. Search it before answering questions "
            "about past decisions, fixes and conventions; save decisions and lessons worth keeping; keep the core "
            "blocks (human, persona, project_context, learnings) short and current."
        ),
    )

    def project_of(project: str | None, *, create: bool = False) -> str:
        """The project a call is about; only a save may create one (a typo in a read must not)."""
        service = live.current()
        name = project or default_project
        if name == default_project or create:
            service.store.ensure_project(name)
        elif service.store.get_project(name) is None:
            known = ", ".join(p.name for p in service.store.list_projects()) or "none yet"
            raise ToolError(f"no memory project named {name!r} (projects: {known})")
        return name

    @server.tool(description="Search memory (keywords + meaning, newest context first when tied). Returns dated items.")
    def memory_search(
        query: str, limit: int = 5, project: str | None = None, all_projects: bool = False
    ) -> dict[str, Any]:
        from ultramax.memory.tiers import Tier

        result = live.current().search(
            query,
            project=project_of(project),
            limit=max(1, min(limit, 50)),
            max_tier=Tier.L4 if all_projects else Tier.L3,
        )
        return {
            "results": [
                {
                    k: v
                    for k, v in h.to_dict().items()
                    if k in ("id", "project", "kind", "content", "created_at", "source")
                }
                for h in result.hits
            ],
            "tiers": [t.to_dict() for t in result.tiers],
        }

    @server.tool(description=f"Save a memory. kind is one of: {', '.join(KINDS)}.")
    def memory_save(content: str, kind: str = "learning", project: str | None = None) -> dict[str, Any]:
        try:
            ids = live.current().save(project_of(project, create=True), content, kind=kind, source="memory tool")
        except MemoryStoreError as exc:
            raise ToolError(str(exc)) from exc
        return {"saved": ids[0]} if len(ids) == 1 else {"saved": ids[0], "passages": ids}

    @server.tool(description="Read core memory blocks (all, or one label) with their size and limit.")
    def memory_block_read(label: str | None = None, project: str | None = None) -> dict[str, Any]:
        name = project_of(project)
        store = live.current().store
        try:
            blocks = [store.block(name, label)] if label else store.blocks(name)
        except MemoryStoreError as exc:
            raise ToolError(str(exc)) from exc
        return {"blocks": [b.to_dict() for b in blocks]}

    @server.tool(
        description=(
            "Update a core memory block: mode 'replace' sets the whole value, 'append' adds a line, "
            "'edit' replaces old_text with value. Fails (nothing written) past the block's character limit. "
            "A label that does not exist yet is an error unless create is true (a new custom block)."
        )
    )
    def memory_block_update(
        label: str,
        value: str,
        *,
        mode: str = "replace",
        old_text: str | None = None,
        project: str | None = None,
        create: bool = False,
    ) -> dict[str, Any]:
        from ultramax.memory.capture import clean

        name = project_of(project)
        store = live.current().store
        text = clean(value, max_chars=None) if value.strip() else ""
        try:
            block = store.update_block(
                name, label, text, mode=mode, source="memory tool", old_text=old_text, create=create
            )
        except MemoryStoreError as exc:
            message = str(exc) + ("; pass create=true to make a new custom block" if "has no block" in str(exc) else "")
            raise ToolError(message) from exc
        return {"label": block.label, "version": block.version, "chars": len(block.value), "limit": block.limit}

    return server


def serve(paths: Paths, project_dir: Path, project: str | None = None) -> int:
    live = LiveService(lambda: MemoryService(paths, embeddings=True))
    chosen = project or live.current().store.project_for_dir(project_dir).name
    try:
        build_server(live, chosen).run("stdio")
    finally:
        live.close()
    return 0
