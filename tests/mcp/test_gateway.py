"""The official MCP servers behind ``ultramax mcp serve``, driven by the official SDK client as Claude Code would.

One gateway serves the whole module (it only reads): server-everything, server-memory, server-filesystem
(npm), mcp-server-time (PyPI, a 2026-07-28 server) and the tests' own fixture server, in a project whose
settings ask for small list pages. Its client negotiates like Claude Code 2.1.328 does on stdio (``server/discover``
first: the 2026-07-28 era); a second, smaller gateway serves a handshake-era client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import Gateway, Servers, records, require_servers, result_text, write_pools

PAGE = 7


@dataclass
class Pooled:
    gw: Gateway
    env: UltramaxEnv
    project: Path
    record: Path
    files: Path
    small_pools: Path


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pooled]:
    servers = Servers(require_servers())
    root = tmp_path_factory.mktemp("g")
    env = UltramaxEnv(root=root, home=root / "user", claude_dir=root / "user" / ".claude", ultramax_home=root / "umx")
    env.claude_dir.mkdir(parents=True)
    env.user_settings.write_text(json.dumps({"ultramax": {"mcpPageSize": PAGE}}), encoding="utf-8")
    files = root / "files"
    files.mkdir()
    (files / "notes.txt").write_text("the gateway reads this through server-filesystem\n", encoding="utf-8")
    record = root / "fixture.jsonl"
    small = root / "small-pools.json"
    small.write_text(json.dumps({"pools": {"primary": {"servers": {
        "everything": servers.everything(), "lab": servers.fixture("lab2"), "time": servers.time()}}}}))  # fmt: skip
    write_pools(env, {
        "version": "8.0",
        "pools": {"primary": {"strategy": "round-robin", "health_check_interval_ms": 1000, "timeout_ms": 5000,
                              "servers": {
            "everything": servers.everything(env={"GREETING": "${UMX_GREETING:-hello}"}),
            "memory": servers.memory(root / "memory.jsonl"),
            "filesystem": servers.filesystem(files),
            "time": servers.time(),
            "lab": servers.fixture("lab", env={"FIXTURE_RECORD": str(record)}),
        }}},
    })  # fmt: skip
    project = root / "projects" / "webapp"
    project.mkdir(parents=True)
    with Gateway(env, project, mode="auto", env={"UMX_SECRET_TOKEN": "hunter2"}) as gw:
        yield Pooled(gw, env, project, record, files, small)


def test_every_pooled_servers_tools_are_listed_under_its_namespace(pooled: Pooled) -> None:
    tools = {t.name: t for t in pooled.gw.tools()}
    for name in ("everything__echo", "memory__read_graph", "filesystem__read_text_file", "time__get_current_time",
                 "lab__whoami"):  # fmt: skip
        assert name in tools, sorted(tools)
    assert len([n for n in tools if n.startswith("everything__")]) == 13
    echo = tools["everything__echo"]
    assert echo.annotations is not None and echo.annotations.read_only_hint is True, "annotations pass through"
    assert echo.input_schema["properties"]["message"]["type"] == "string"


def test_namespaced_calls_reach_each_official_server_and_return_its_answer(pooled: Pooled) -> None:
    gw = pooled.gw
    assert gw.text("everything__echo", {"message": "hi"}) == "Echo: hi"
    assert "the gateway reads this" in gw.text("filesystem__read_text_file", {"path": str(pooled.files / "notes.txt")})
    gw.text("memory__create_entities", {"entities": [{"name": "ultramax", "entityType": "project",
                                                      "observations": ["pools MCP servers"]}]})  # fmt: skip
    assert "pools MCP servers" in gw.text("memory__read_graph")
    assert json.loads(gw.text("time__get_current_time", {"timezone": "UTC"}))["timezone"] == "UTC"
    assert json.loads(gw.text("lab__whoami"))["label"] == "lab"


def test_each_upstream_is_spoken_to_in_its_own_protocol_era(pooled: Pooled) -> None:
    assert pooled.gw.client is not None and pooled.gw.client.protocol_version == "2026-07-28"
    eras = {s["server"]: s["protocol_version"] for s in pooled.gw.status()["servers"]}
    assert eras["time"] == "2026-07-28", "mcp-server-time answers server/discover"
    assert eras["everything"] == eras["memory"] == eras["filesystem"] == "2025-11-25", "TS servers: handshake"


def test_lists_come_in_pages_that_follow_the_cursor_and_a_bad_cursor_is_invalid_params(pooled: Pooled) -> None:
    gw = pooled.gw
    first = gw.run(gw.session.list_tools)
    assert len(first.tools) == PAGE and first.next_cursor
    assert len(gw.tools()) == len({t.name for t in gw.tools()}) > 4 * PAGE
    with pytest.raises(MCPError) as caught:
        gw.run(lambda: gw.session.list_tools(params=types.PaginatedRequestParams(cursor="not-a-cursor")))
    assert caught.value.error.code == types.INVALID_PARAMS


def test_progress_of_the_upstream_reaches_the_caller_with_the_callers_token(pooled: Pooled) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = pooled.gw.call("lab__sleep", {"seconds": 0.2}, progress_callback=on_progress)
    assert not result.is_error
    assert [p for p, _, _ in seen] == [float(i) for i in range(1, 11)]
    assert seen[-1] == (10.0, 10.0, "step 10")

    seen.clear()
    pooled.gw.call("everything__trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                   progress_callback=on_progress)  # fmt: skip
    assert [p for p, _, _ in seen] == [1.0, 2.0, 3.0], "a TypeScript server's progress is relayed too"


def test_a_call_the_caller_abandons_is_cancelled_upstream(pooled: Pooled) -> None:
    with pytest.raises(MCPError, match="timed out"):
        pooled.gw.call("lab__sleep", {"seconds": 30}, read_timeout_seconds=0.5)
    wait_for(lambda: any(r["event"] == "sleep-cancelled" for r in records(pooled.record)), 10,
             "the fixture server to see its call cancelled")  # fmt: skip
    assert not any(r["event"] == "sleep-done" and r.get("seconds") == 30 for r in records(pooled.record))
    wait_for(lambda: pooled.gw.server("lab")["inflight"] == 0, 5, "the gateway to drop the request")


def test_a_tool_added_upstream_reaches_a_listening_caller_as_list_changed(pooled: Pooled) -> None:
    gw = pooled.gw
    assert "lab__late_tool" not in {t.name for t in gw.tools()}
    client = gw.client
    assert client is not None

    async def add_and_listen() -> Any:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("lab__add_tool", {"name": "late_tool"})
            with anyio.fail_after(10):
                async for event in subscription:
                    return event
        return None

    assert type(gw.run(add_and_listen)).__name__ == "ToolsListChanged", "delivered on the subscriptions/listen stream"
    assert "lab__late_tool" in {t.name for t in gw.tools()}
    assert gw.text("lab__late_tool") == "late_tool answered by lab"


def test_a_tool_name_too_long_for_claude_code_after_namespacing_is_shortened_and_still_callable(
    pooled: Pooled,
) -> None:
    long_name = "add_pull_request_review_comment_to_pending_review"  # 49: fits Claude Code directly, not namespaced
    assert pooled.gw.text("lab__add_tool", {"name": long_name}) == f"added {long_name}"
    names: set[str] = set()

    def listed() -> bool:
        names.update(t.name for t in pooled.gw.tools())
        return any("add_pull_request" in n for n in names)

    wait_for(listed, 10, "the added tool to be listed")
    assert all(len(f"mcp__ultramax__{n}") <= 64 for n in names), "Claude Code refuses a session with a longer one"
    shortened = [n for n in names if n.startswith("lab__add_pull_request")]
    assert len(shortened) == 1 and shortened[0] != f"lab__{long_name}"
    assert pooled.gw.text(shortened[0]) == f"{long_name} answered by lab", "the call reaches the upstream name"


def test_a_handshake_era_client_is_served_the_same_way_and_hears_list_changes(pooled: Pooled) -> None:
    with Gateway(pooled.env, pooled.project, mode="legacy", args=("--pools", str(pooled.small_pools))) as gw:
        assert gw.client is not None and gw.client.protocol_version == "2025-11-25"
        assert gw.text("everything__echo", {"message": "old"}) == "Echo: old"
        assert json.loads(gw.text("time__get_current_time", {"timezone": "UTC"}))["timezone"] == "UTC", (
            "a handshake-era request reaches a 2026-07-28 server rebuilt for its era"
        )
        assert gw.text("lab__add_tool", {"name": "later"}) == "added later"
        wait_for(lambda: any(isinstance(n, types.ToolListChangedNotification) for n in gw.notifications), 10,
                 "notifications/tools/list_changed from the gateway")  # fmt: skip
        assert "lab__later" in {t.name for t in gw.tools()}


def test_resources_templates_and_prompts_are_aggregated_and_served(pooled: Pooled) -> None:
    gw = pooled.gw
    uris: list[str] = []
    cursor: str | None = None
    while True:
        resources = gw.run(lambda c=cursor: gw.session.list_resources(params=types.PaginatedRequestParams(cursor=c)))
        uris += [str(r.uri) for r in resources.resources]
        if not (cursor := resources.next_cursor):
            break
    assert "demo://resource/static/document/architecture.md" in uris
    read = gw.run(gw.session.read_resource, "demo://resource/static/document/architecture.md")
    assert "Everything Server" in json.dumps(read.model_dump(mode="json"))
    templated = gw.run(gw.session.read_resource, "demo://resource/dynamic/text/7")
    assert templated.contents, "a URI that only a template matches is routed by the template"

    prompts = {p.name for p in gw.run(gw.session.list_prompts).prompts}
    assert {"everything__simple-prompt", "everything__args-prompt"} <= prompts
    prompt = gw.run(lambda: gw.session.get_prompt("everything__args-prompt", {"city": "Oslo", "state": "NO"}))
    assert "Oslo" in json.dumps(prompt.model_dump(mode="json"))


def test_servers_get_only_allow_listed_variables_and_what_their_config_names(pooled: Pooled) -> None:
    env_text = pooled.gw.text("everything__get-env")
    assert "hunter2" not in env_text and "UMX_SECRET_TOKEN" not in env_text, "the gateway's secrets stay out"
    seen = json.loads(env_text)
    assert seen["GREETING"] == "hello", "${VAR:-default} expands when the server starts"
    assert seen["CLAUDE_PROJECT_DIR"] == str(pooled.project)
    assert seen["PATH"] == os.environ["PATH"]


def test_an_unknown_tool_is_a_tool_error_the_model_can_read(pooled: Pooled) -> None:
    result = pooled.gw.call("everything__nope")
    assert result.is_error and "Unknown tool: everything__nope" in result_text(result)


def test_health_cli_and_metrics_report_the_running_gateways_live_state(pooled: Pooled) -> None:
    env = {**os.environ, "HOME": str(pooled.env.home), "ULTRAMAX_HOME": str(pooled.env.ultramax_home)}
    out = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(pooled.project), "mcp", "health", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["healthy"] is True
    [live] = report["reports"]
    assert live["source"].startswith("gateway pid")
    by_name = {s["server"]: s for s in live["servers"]}
    assert set(by_name) == {"everything", "memory", "filesystem", "time", "lab"}
    assert all(s["status"] == "healthy" and s["latency_ms"] is not None and s["pid"] for s in by_name.values())

    metrics = pooled.gw.metrics()
    assert 'mcp_server_health{server_name="everything"} 1.0' in metrics
    assert 'mcp_server_latency_seconds_count{server_name="time"}' in metrics
    assert "mcp_failover_total" in metrics
