"""``ultramax memory mcp``: the real stdio server, driven by the official MCP client."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.conftest import UltramaxEnv
from ultramax.memory.store import SQLiteStore, database_path

SLACK = "xoxb-" + "2048-1337-Qw3rTy8uIoPa"


def call_tools(umx: UltramaxEnv, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[dict[str, Any]]]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ultramax.cli.main", "memory", "mcp", "--project", "acme"],
        env=umx.environ(),
        cwd=str(umx.root),
    )

    async def session() -> tuple[list[str], list[dict[str, Any]]]:
        with anyio.fail_after(60):
            return await talk()

    async def talk() -> tuple[list[str], list[dict[str, Any]]]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = [t.name for t in (await client.list_tools()).tools]
            results = []
            for name, args in calls:
                result = await client.call_tool(name, args)
                text = result.content[0].text  # type: ignore[union-attr]
                results.append({"error": text} if result.is_error else json.loads(text))
            return tools, results

    return anyio.run(session)


def test_the_model_can_save_search_and_edit_blocks_through_mcp(umx: UltramaxEnv) -> None:
    tools, results = call_tools(
        umx,
        [
            ("memory_save", {"content": f"billing listens on port 8123; slack {SLACK}", "kind": "decision"}),
            ("memory_search", {"query": "what port does billing use", "limit": 3}),
            ("memory_block_update", {"label": "project_context", "value": "billing: port 8123", "mode": "replace"}),
            ("memory_block_update", {"label": "project_context", "value": "auth: port 9000", "mode": "append"}),
            ("memory_block_read", {"label": "project_context"}),
            ("memory_block_update", {"label": "human", "value": "x" * 5001}),
        ],
    )
    assert set(tools) == {"memory_search", "memory_save", "memory_block_read", "memory_block_update"}
    saved, search, _, appended, read, too_long = results
    assert isinstance(saved["saved"], int)
    assert search["results"][0]["content"] == "billing listens on port 8123; slack [REDACTED:slack-token]"
    assert appended["version"] == 3
    assert read["blocks"][0]["value"] == "billing: port 8123\nauth: port 9000"
    assert "limit is 5,000" in too_long["error"]
    store = SQLiteStore(database_path(umx.paths))
    try:
        assert store.block("acme", "human").value == "", "nothing written past the limit"
    finally:
        store.close()


def test_tool_failures_are_mcp_errors_and_a_typo_creates_nothing(umx: UltramaxEnv) -> None:
    _, results = call_tools(
        umx,
        [
            ("memory_block_update", {"label": "learnigns", "value": "use uv, not pip"}),
            ("memory_search", {"query": "billing", "project": "acmee"}),
            ("memory_block_read", {"label": "learnigns"}),
            ("memory_save", {"content": "billing listens on 8123", "kind": "decisoin"}),
            ("memory_block_update", {"label": "runbook", "value": "restart with make restart", "create": True}),
        ],
    )
    update, search, read, save, created = results
    assert "has no block 'learnigns'" in update["error"] and "create=true" in update["error"]
    assert "no memory project named 'acmee'" in search["error"] and "acme" in search["error"]
    assert "has no block 'learnigns'" in read["error"]
    assert "decisoin" in save["error"]
    assert created["label"] == "runbook" and created["version"] == 1
    store = SQLiteStore(database_path(umx.paths))
    try:
        assert [p.name for p in store.list_projects()] == ["acme"]
        assert "learnigns" not in {b.label for b in store.blocks("acme")}
    finally:
        store.close()


def test_the_server_uses_the_memory_db_put_in_place_while_it_runs(umx: UltramaxEnv) -> None:
    """A restored backup replaces memory.db under a running session: reads and saves must reach the new file."""
    path = database_path(umx.paths)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ultramax.cli.main", "memory", "mcp", "--project", "acme"],
        env=umx.environ(),
        cwd=str(umx.root),
    )

    def replace_the_file() -> None:
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                old.rename(path.with_name(path.name + ".old" + suffix))
        store = SQLiteStore(path)
        try:
            store.ensure_project("acme")
            store.write_block("acme", "project_context", "restored: deploys go through make ship", source="test")
        finally:
            store.close()

    async def talk() -> str:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            await client.call_tool("memory_block_update", {"label": "project_context", "value": "before the move"})
            await anyio.to_thread.run_sync(replace_the_file)
            read_back = await client.call_tool("memory_block_read", {"label": "project_context"})
            await client.call_tool("memory_block_update", {"label": "human", "value": "prefers short answers"})
            return read_back.content[0].text  # type: ignore[union-attr]

    async def session() -> str:
        with anyio.fail_after(60):
            return await talk()

    read_back = anyio.run(session)
    assert json.loads(read_back)["blocks"][0]["value"] == "restored: deploys go through make ship"
    store = SQLiteStore(path)
    try:
        assert store.block("acme", "human").value == "prefers short answers", "the save reached the new file"
    finally:
        store.close()


def test_two_appends_to_one_block_at_once_both_land(umx: UltramaxEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(database_path(umx.paths))
    store.ensure_project("acme")
    both_read = threading.Barrier(2)
    real_write = SQLiteStore.write_block

    def write_once_both_have_read(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        # where a lost update happens: each call has read the block and is about to write what it read plus
        # its line; with the read inside the write lock the second caller cannot get here before the first
        # has written, so the barrier gives up waiting (as it should) instead of releasing both
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=1.0)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(SQLiteStore, "write_block", write_once_both_have_read)
    threads = [
        threading.Thread(
            target=store.update_block,
            args=("acme", "learnings", line),
            kwargs={"mode": "append", "source": "test", "create": False},
        )
        for line in ("uses pytest -q", "deploys on Fridays never")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    monkeypatch.undo()
    value = store.block("acme", "learnings").value
    store.close()
    assert "uses pytest -q" in value and "deploys on Fridays never" in value
