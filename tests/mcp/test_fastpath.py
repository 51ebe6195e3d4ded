"""The gateway's raw ``tools/call`` path: taken when safe, giving what the SDK path gives, and left when not.

The calls go through a real ``ultramax mcp serve`` to real servers (server-everything; the tests' fixture server
in the handshake era as TypeScript servers are, and in the 2026-07-28 era as Python-SDK servers are; PyPI
``mcp-server-time``), from the official SDK client. A call with a progress
token always goes the SDK path, so the same call made with and without one compares the two paths. The
gateway's status counts the raw calls (``fast_path.taken``) and why others were left to the SDK path.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.lowlevel import Server
from mcp.server.runner import ServerRunner
from mcp.shared.exceptions import MCPError
from mcp_types import LOG_LEVEL_META_KEY

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import (
    Gateway,
    Servers,
    calls_by,
    make_env,
    records,
    require_servers,
    result_text,
    write_pools,
)
from ultramax.mcp.fastpath import face_result, upstream_result
from ultramax.mcp.process import RAW_ID_PREFIX, PipeWriter, RawLink, loads_line

MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"


@dataclass
class Raw:
    gw: Gateway
    env: UltramaxEnv
    record: Path
    modern_record: Path


def fast(gw: Gateway) -> dict[str, Any]:
    status: dict[str, Any] = gw.status()["fast_path"]
    return status


def fallbacks(gw: Gateway, why: str) -> int:
    return int(fast(gw)["fallbacks"].get(why, 0))


def audited(env: UltramaxEnv) -> list[dict[str, Any]]:
    if not env.paths.audit_log.exists():
        return []
    lines = env.paths.audit_log.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "McpGatewayCall"]


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


def via_sdk(gw: Gateway, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """The call on the SDK path: a progress token keeps it there."""
    return gw.call(name, arguments, progress_callback=_no_progress)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Raw]:
    servers = Servers(require_servers())
    env = make_env(tmp_path_factory.mktemp("fast"))
    record, modern_record = env.root / "fixture.jsonl", env.root / "modern.jsonl"
    write_pools(env, {
        "pools": {"primary": {"strategy": "priority", "health_check_interval_ms": 1000, "servers": {
            "everything": servers.everything(),
            "lab": servers.fixture("lab", handshake_only=True, env={"FIXTURE_RECORD": str(record)}),
            "modern": servers.fixture("modern", env={"FIXTURE_RECORD": str(modern_record)}),
            "time": servers.time(),
            "timed": servers.everything(timeout_ms=5000),
            "pinned": servers.fixture("pinned", protocol="legacy"),
            "gated": servers.everything(),
        }}},
        "routing": {"rules": [{"pattern": "gated:*", "require_safety_check": True}]},
    })  # fmt: skip
    project = env.root / "projects" / "webapp"
    project.mkdir(parents=True)
    with Gateway(env, project, mode="auto") as gw:
        for server in ("everything", "lab", "modern", "time", "timed", "pinned", "gated"):
            gw.wait_up(server)
        assert gw.text("everything__echo", {"message": "hello"}) == "Echo: hello", "the SDK serves the first call"
        yield Raw(gw, env, record, modern_record)


# -- with real servers ----------------------------------------------------------------------------------------
def test_calls_to_a_handshake_era_stdio_server_take_the_raw_path_and_answer_as_the_sdk_path_does(raw: Raw) -> None:
    gw = raw.gw
    calls: list[tuple[str, dict[str, Any]]] = [
        ("echo", {"message": 'héllo ✓ "quoted" \\ end'}),
        ("get-structured-content", {"location": "Chicago"}),
        ("get-sum", {"a": 2, "b": 3.5}),
        ("get-annotated-message", {"messageType": "error", "includeImage": True}),
        ("get-resource-links", {"count": 2}),
    ]
    before, ok_before = fast(gw), calls_by(gw, "everything")
    for tool, arguments in calls:
        raw_result = gw.call(f"everything__{tool}", arguments)
        sdk_result = via_sdk(gw, f"everything__{tool}", arguments)
        assert raw_result.model_dump() == sdk_result.model_dump(), tool
        assert (
            raw_result.meta is not None and raw_result.meta["io.modelcontextprotocol/serverInfo"]["name"] == "ultramax"
        )
    after = fast(gw)
    assert after["taken"] - before["taken"] == len(calls)
    assert f'mcp_gateway_fast_path_total{{decision="taken"}} {float(after["taken"])}' in gw.metrics()
    assert after["fallbacks"].get("progress", 0) - before["fallbacks"].get("progress", 0) == len(calls)
    assert calls_by(gw, "everything") - ok_before == 2 * len(calls), "each path counts its calls alike"
    assert after["pending"] == 0 and gw.server("everything")["inflight"] == 0


def test_an_unknown_tool_is_left_to_the_sdk_path_which_answers_it_with_a_tool_error(raw: Raw) -> None:
    before = fallbacks(raw.gw, "unknown tool")
    result = raw.gw.call("everything__no-such-tool", {})
    assert result.is_error and result_text(result) == "Unknown tool: everything__no-such-tool"
    assert fallbacks(raw.gw, "unknown tool") == before + 1


def sealed(dump: dict[str, Any]) -> dict[str, Any]:
    """A result's dump with an ``input_required`` request state (sealed by the server, fresh on each call) masked."""
    state = dump.get("request_state")
    if isinstance(state, str) and state.startswith("v1."):
        dump["request_state"] = "v1.<sealed>"
    return dump


def outcomes(gw: Gateway, name: str, arguments: dict[str, Any], **kwargs: Any) -> tuple[Any, Any]:
    """What the caller gets from one call on the raw path and the same call on the SDK path (a result's dump, or the
    JSON-RPC error); ``input_required`` results are returned, not answered."""
    session = gw.session

    def one(**extra: Any) -> Any:
        async def go() -> Any:
            return await session.call_tool(name, arguments, allow_input_required=True, **kwargs, **extra)

        try:
            return sealed(gw.run(go).model_dump())
        except MCPError as exc:
            return exc.error

    return one(), one(progress_callback=_no_progress)


def test_calls_to_a_2026_era_stdio_server_take_the_raw_path_and_answer_as_the_sdk_path_does(raw: Raw) -> None:
    gw = raw.gw
    calls: list[tuple[str, dict[str, Any]]] = [
        ("say", {"text": 'héllo ✓ "quoted" \\ end'}),
        ("weather", {"city": "Oslo"}),  # structured content
        ("fail", {"message": "no such city"}),  # a tool error
        ("refuse", {"message": "bad city"}),  # a JSON-RPC error
        ("weather", {"city": 3}),  # arguments the server rejects
        ("confirm_first", {}),  # an input_required result, relayed to the caller
    ]
    before, ok_before, error_before = fast(gw), calls_by(gw, "modern"), calls_by(gw, "modern", "error")
    for tool, arguments in calls:
        raw_outcome, sdk_outcome = outcomes(gw, f"modern__{tool}", arguments)
        assert raw_outcome == sdk_outcome, tool
    raw_outcome, _ = outcomes(gw, "modern__weather", {"city": "Oslo"})
    assert raw_outcome["structured_content"] == {"city": "Oslo", "celsius": 21.5}
    asked, _ = outcomes(gw, "modern__confirm_first", {})
    assert asked["result_type"] == "input_required" and asked["request_state"] == "v1.<sealed>"
    error, _ = outcomes(gw, "modern__refuse", {"message": "bad city"})
    assert error == types.ErrorData(code=types.INVALID_PARAMS, message="bad city", data={"why": "bad city"})
    after = fast(gw)
    assert after["taken"] - before["taken"] == len(calls) + 3
    assert after["fallbacks"].get("progress", 0) - before["fallbacks"].get("progress", 0) == len(calls) + 3
    assert after["fallbacks"].get("upstream era", 0) == before["fallbacks"].get("upstream era", 0)
    assert calls_by(gw, "modern") - ok_before == 2 * 5 and calls_by(gw, "modern", "error") - error_before == 2 * 2
    assert after["pending"] == 0 and gw.server("modern")["inflight"] == 0


def test_a_2026_era_servers_multi_round_trip_continues_on_the_raw_path_as_on_the_sdk_path(raw: Raw) -> None:
    gw = raw.gw
    session = gw.session
    answer = {"confirm": types.ElicitResult(action="accept", content={"ok": True})}

    def both_rounds(**extra: Any) -> str:
        async def go() -> str:
            asked = await session.call_tool("modern__confirm_first", {}, allow_input_required=True, **extra)
            assert isinstance(asked, types.InputRequiredResult), asked
            done = await session.call_tool("modern__confirm_first", {}, input_responses=answer,
                                           request_state=asked.request_state, **extra)  # fmt: skip
            assert isinstance(done, types.CallToolResult), done
            return result_text(done)

        text: str = gw.run(go)
        return text

    taken = fast(gw)["taken"]
    raw_text = both_rounds()
    assert fast(gw)["taken"] == taken + 2, "both rounds on the raw path"
    assert raw_text == both_rounds(progress_callback=_no_progress)
    assert raw_text == 'modern heard {"action": "accept", "content": {"ok": true}} with state asked-by-modern'
    assert fast(gw)["taken"] == taken + 2


def test_a_2026_era_server_gets_the_same_request_envelope_from_the_raw_path_as_from_the_sdk(raw: Raw) -> None:
    gw = raw.gw
    taken = fast(gw)["taken"]
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    raw_outcome, sdk_outcome = outcomes(gw, "modern__envelope", {}, meta=trace)
    assert fast(gw)["taken"] == taken + 1
    raw_meta = json.loads(raw_outcome["content"][0]["text"])
    sdk_meta = json.loads(sdk_outcome["content"][0]["text"])
    assert isinstance(sdk_meta.pop("progressToken"), int), "the SDK path's call carried a progress token"
    assert raw_meta == sdk_meta
    assert raw_meta["io.modelcontextprotocol/protocolVersion"] == MODERN
    assert raw_meta["io.modelcontextprotocol/clientInfo"]["name"] == "ultramax-gateway"
    assert "io.modelcontextprotocol/clientCapabilities" in raw_meta
    assert raw_meta["traceparent"] == trace["traceparent"], "the caller's own _meta keys are kept"


def test_calls_to_a_python_sdk_server_from_pypi_take_the_raw_path_and_answer_as_the_sdk_path_does(raw: Raw) -> None:
    gw = raw.gw
    assert gw.server("time")["protocol_version"] == MODERN
    taken = fast(gw)["taken"]
    calls: list[dict[str, Any]] = [
        {"source_timezone": "UTC", "time": "12:30", "target_timezone": "Asia/Tokyo"},
        {"source_timezone": "Nowhere/Else", "time": "12:30", "target_timezone": "UTC"},  # an error
    ]
    for arguments in calls:
        raw_outcome, sdk_outcome = outcomes(gw, "time__convert_time", arguments)
        assert raw_outcome == sdk_outcome, arguments
    assert fast(gw)["taken"] == taken + len(calls)


def test_calls_to_a_server_pinned_to_the_legacy_era_stay_on_the_sdk_path(raw: Raw) -> None:
    gw = raw.gw
    before = fast(gw)
    assert json.loads(gw.text("pinned__whoami"))["label"] == "pinned"
    assert json.loads(gw.text("modern__whoami"))["label"] == "modern"
    after = fast(gw)
    assert after["taken"] == before["taken"] + 1, "the 2026-07-28 server's call"
    assert after["fallbacks"]["pinned to legacy"] == before["fallbacks"].get("pinned to legacy", 0) + 1
    assert gw.server("modern")["protocol_version"] == MODERN and gw.server("lab")["protocol_version"] == HANDSHAKE
    assert gw.server("pinned")["protocol_version"] == HANDSHAKE


def test_a_2026_era_call_with_its_own_log_level_stays_on_the_sdk_path_which_relays_the_servers_log(raw: Raw) -> None:
    gw = raw.gw
    before = fallbacks(gw, "log level")
    result = gw.call("modern__say", {"text": "answered", "log": "logged for this call"},
                     meta={LOG_LEVEL_META_KEY: "info"})  # fmt: skip
    assert not result.is_error and result_text(result) == "answered"
    assert fallbacks(gw, "log level") == before + 1


def test_a_server_with_a_call_timeout_is_called_on_the_raw_path_when_it_answers_in_time(raw: Raw) -> None:
    before = fast(raw.gw)["taken"]
    assert raw.gw.text("timed__echo", {"message": "t"}) == "Echo: t"
    assert fast(raw.gw)["taken"] == before + 1
    assert raw.gw.server("timed")["inflight"] == 0


def test_the_health_report_counts_raw_calls_and_says_why_others_went_through_the_sdk(raw: Raw) -> None:
    env = {**os.environ, "HOME": str(raw.env.home), "ULTRAMAX_HOME": str(raw.env.ultramax_home)}
    out = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(raw.gw.project), "mcp", "health"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = fast(raw.gw)
    [line] = [ln.strip() for ln in out.stdout.splitlines() if "raw path" in ln]
    assert line.startswith(f"tools/call on the raw path: {status['taken']}; through the SDK (why): ")
    assert f"progress {status['fallbacks']['progress']}" in line


def test_a_rule_requiring_the_safety_check_still_decides_and_audits_each_raw_call(raw: Raw) -> None:
    gw, env = raw.gw, raw.env
    audited_before, taken_before = len(audited(env)), fast(gw)["taken"]
    assert gw.text("gated__echo", {"message": "allowed"}) == "Echo: allowed"
    env.paths.kill_switch.write_text("frozen for the test\n", encoding="utf-8")
    try:
        refused = gw.call("gated__echo", {"message": "refused"})
    finally:
        env.paths.kill_switch.unlink()
    assert refused.is_error and "ultramax safety gate refused gated__echo" in result_text(refused)
    assert "KILL SWITCH" in result_text(refused)
    assert refused.model_dump()["meta"] is not None, "shaped for the 2026-07-28 caller as the SDK path shapes it"
    decisions = audited(env)[audited_before:]
    assert [(r["tool"], r["decision"]) for r in decisions] == [
        ("mcp__ultramax__gated__echo", "allow"),
        ("mcp__ultramax__gated__echo", "deny"),
    ], "decided and audited once per call"
    assert fast(gw)["taken"] == taken_before + 2


@pytest.mark.parametrize("server", ["lab", "modern"])
def test_a_raw_call_the_caller_abandons_is_cancelled_upstream_under_the_servers_own_id(raw: Raw, server: str) -> None:
    gw = raw.gw
    record = raw.record if server == "lab" else raw.modern_record
    taken_before = fast(gw)["taken"]
    with pytest.raises(MCPError, match="timed out"):
        gw.call(f"{server}__sleep", {"seconds": 30}, read_timeout_seconds=0.5)
    assert fast(gw)["taken"] == taken_before + 1
    wait_for(lambda: any(r["event"] == "sleep-cancelled" for r in records(record)), 10,
             "the server to see its call cancelled")  # fmt: skip
    assert not any(r["event"] == "sleep-done" for r in records(record))
    wait_for(lambda: fast(gw)["pending"] == 0 and gw.server(server)["inflight"] == 0, 5, "the call to be dropped")
    assert gw.text(f"{server}__say", {"text": "still serving"}) == "still serving"


def test_a_handshake_era_caller_takes_the_raw_path_too_and_hears_the_servers_log(raw: Raw, tmp_path: Path) -> None:
    servers = Servers(require_servers())
    pools = tmp_path / "pools.json"
    pools.write_text(json.dumps({"pools": {"primary": {"servers": {
        "everything": servers.everything(), "lab": servers.fixture("lab", handshake_only=True)}}}}))  # fmt: skip
    project = raw.env.root / "projects" / "legacy"  # its own project: the status query finds this gateway
    project.mkdir(parents=True, exist_ok=True)
    with Gateway(raw.env, project, mode="legacy", args=("--pools", str(pools))) as gw:
        gw.wait_up("everything")
        gw.wait_up("lab")
        assert gw.client is not None and gw.client.protocol_version == HANDSHAKE
        for arguments in ({"location": "New York"}, {"location": "Los Angeles"}):
            assert (
                gw.call("everything__get-structured-content", arguments).model_dump()
                == via_sdk(gw, "everything__get-structured-content", arguments).model_dump()
            )
        assert gw.text("lab__say", {"text": "answered", "log": "logged on the way"}) == "answered"
        wait_for(
            lambda: any(isinstance(n, types.LoggingMessageNotification) and n.params.data == "logged on the way"
                        for n in gw.notifications), 10, "the server's log message")  # fmt: skip
        assert fast(gw)["taken"] == 3, "a handshake-era session is up from notifications/initialized on"


# -- failover ---------------------------------------------------------------------------------------------------
ERAS = pytest.mark.parametrize("handshake_only", [True, False], ids=["handshake-era", "2026-era"])


def failover_pools(
    servers: Servers, record: Path, rules: list[dict[str, Any]], *, handshake_only: bool = True
) -> dict[str, Any]:
    env = {"FIXTURE_RECORD": str(record)}
    era: dict[str, Any] = {"handshake_only": handshake_only, "env": env}
    backup: dict[str, Any] = {**era, "for": "lab"}
    return {
        "pools": {
            "primary": {"strategy": "priority", "health_check_interval_ms": 200, "servers": {
                "lab": servers.fixture("primary", **era)}},
            "failover": {"health_check_interval_ms": 200, "servers": {
                "lab-backup": servers.fixture("backup", **backup)}},
        },
        "routing": {"rules": rules},
    }  # fmt: skip


def call_and_kill_the_server(gw: Gateway, record: Path) -> types.CallToolResult:
    """Start a 2-second raw call, kill its server once the call is running there, and return the answer."""
    assert json.loads(gw.text("lab__whoami"))["label"] == "primary"  # the SDK path: the session is up after it
    client = gw.client
    assert client is not None and gw.portal is not None

    async def go() -> types.CallToolResult:
        with anyio.fail_after(30):
            return await client.call_tool("lab__sleep", {"seconds": 2.0})

    future = gw.portal.start_task_soon(go)
    wait_for(lambda: fast(gw)["pending"] == 1 and any(r["event"] == "sleep-start" for r in records(record)), 10,
             "the raw call to reach the primary")  # fmt: skip
    gw.kill("lab")
    return future.result(timeout=30)


@ERAS
def test_a_raw_call_cut_off_by_its_servers_death_is_retried_on_the_backup(
    umx: UltramaxEnv, handshake_only: bool
) -> None:
    servers = Servers(require_servers())
    record = umx.root / "record.jsonl"
    write_pools(umx, failover_pools(servers, record, [], handshake_only=handshake_only))
    with Gateway(umx, umx.project("webapp"), mode="auto") as gw:
        gw.wait_up("lab")
        gw.wait_up("lab-backup")
        result = call_and_kill_the_server(gw, record)
        assert not result.is_error and result_text(result) == "slept 2.0 s"
        assert [r["label"] for r in records(record) if r["event"] == "sleep-done"] == ["backup"]
        assert fast(gw)["taken"] == 1 and fast(gw)["pending"] == 0
        assert [e["method"] for e in gw.status()["events"] if e["event"] == "retry" and e["server"] == "lab"] == [
            "tools/call"
        ]
        assert calls_by(gw, "lab-backup") == 1.0


@ERAS
def test_a_raw_call_past_its_servers_timeout_is_cancelled_there_and_fails_over_as_on_the_sdk_path(
    umx: UltramaxEnv, handshake_only: bool
) -> None:
    servers = Servers(require_servers())
    record = umx.root / "record.jsonl"
    pools = failover_pools(servers, record, [], handshake_only=handshake_only)
    pools["pools"]["primary"]["servers"]["lab"]["timeout_ms"] = 400
    pools["pools"]["failover"]["servers"]["lab-backup"]["timeout_ms"] = 400
    write_pools(umx, pools)
    with Gateway(umx, umx.project("webapp"), mode="auto") as gw:
        gw.wait_up("lab")
        gw.wait_up("lab-backup")
        assert json.loads(gw.text("lab__whoami"))["label"] == "primary"
        raw_result = gw.call("lab__sleep", {"seconds": 3})
        assert fast(gw)["taken"] == 1
        wait_for(lambda: sum(r["event"] == "sleep-cancelled" for r in records(record)) == 2, 10,
                 "both servers to see the call cancelled")  # fmt: skip
        sdk_result = via_sdk(gw, "lab__sleep", {"seconds": 3})
        assert raw_result.is_error and result_text(raw_result) == (
            "no server could answer lab: no answer within 0.4 s; no answer within 0.4 s"
        )
        assert raw_result.model_dump() == sdk_result.model_dump()
        wait_for(lambda: sum(r["event"] == "sleep-cancelled" for r in records(record)) == 4, 10,
                 "the SDK path's call cancelled alike")  # fmt: skip
        assert not any(r["event"] == "sleep-done" for r in records(record))
        retries = [e for e in gw.status()["events"] if e["event"] == "retry"]
        assert [e["server"] for e in retries] == ["lab", "lab-backup", "lab", "lab-backup"]
        assert fast(gw)["pending"] == 0 and gw.server("lab")["inflight"] == gw.server("lab-backup")["inflight"] == 0


@ERAS
def test_a_raw_call_not_safe_to_retry_gets_the_sdk_paths_error_when_its_server_dies(
    umx: UltramaxEnv, handshake_only: bool
) -> None:
    servers = Servers(require_servers())
    record = umx.root / "record.jsonl"
    write_pools(
        umx,
        failover_pools(servers, record, [{"pattern": "lab:sleep", "retry_safe": False}], handshake_only=handshake_only),
    )
    with Gateway(umx, umx.project("webapp"), mode="auto") as gw:
        gw.wait_up("lab")
        gw.wait_up("lab-backup")
        result = call_and_kill_the_server(gw, record)
        assert result.is_error
        assert result_text(result).startswith("lab failed during tools/call (connection closed); not retried")
        assert not any(r["event"] == "sleep-start" and r["label"] == "backup" for r in records(record))
        assert calls_by(gw, "lab", "failed") == 1.0 and calls_by(gw, "lab-backup") == 0.0
        assert fast(gw)["taken"] == 1 and fast(gw)["pending"] == 0


async def answer_yes(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"ok": True})


def outcome(get: Any) -> str:
    """What the caller got from ``get()``: the tool's text (marked when it is a tool error) or the JSON-RPC error."""
    try:
        result: types.CallToolResult = get()
    except MCPError as exc:
        return f"error: {exc}"
    return ("tool error: " if result.is_error else "") + result_text(result)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("legacy", "backup slept 1.0 s; the client said accept, ok=True"),
        (
            "auto",
            "error: Cannot send 'elicitation/create': this transport context has no back-channel for server-initiated"
            " requests.",
        ),
    ],
)
def test_a_raw_call_retried_on_a_pinned_backup_that_asks_a_question_reaches_its_caller_as_an_sdk_call_would(
    umx: UltramaxEnv, mode: str, expected: str
) -> None:
    servers = Servers(require_servers())
    record = umx.root / "record.jsonl"
    env = {"FIXTURE_RECORD": str(record)}
    pinned: dict[str, Any] = {"env": env, "protocol": "legacy"}  # so always on the SDK path
    write_pools(umx, {
        "pools": {
            "primary": {"strategy": "priority", "health_check_interval_ms": 200, "servers": {
                "lab": servers.fixture("primary", handshake_only=True, env=env),
                "asker": servers.fixture("backup", **pinned)}},  # what a caller gets from such a server
            "failover": {"health_check_interval_ms": 200, "servers": {
                "lab-backup": servers.fixture("backup", **(pinned | {"for": "lab"}))}},
        },
    })  # fmt: skip
    with Gateway(umx, umx.project("webapp"), mode=mode, elicitation_callback=answer_yes) as gw:
        for server in ("lab", "lab-backup", "asker"):
            gw.wait_up(server)
        client = gw.client
        assert client is not None and gw.portal is not None

        def ask(tool: str) -> Any:
            async def go() -> types.CallToolResult:
                with anyio.fail_after(30):
                    return await client.call_tool(tool, {"seconds": 1.0})

            return go

        portal = gw.portal
        sdk_path = outcome(lambda: portal.call(ask("asker__sleep_then_ask")))
        assert sdk_path == expected
        taken = fast(gw)["taken"]
        future = portal.start_task_soon(ask("lab__sleep_then_ask"))
        wait_for(lambda: fast(gw)["pending"] == 1 and any(r["event"] == "sleep-start" and r["label"] == "primary"
                                                          for r in records(record)), 10,
                 "the raw call to reach the primary")  # fmt: skip
        gw.kill("lab")
        assert outcome(lambda: future.result(timeout=30)) == sdk_path
        assert fast(gw)["taken"] == taken + 1 and fast(gw)["pending"] == 0
        started = [r["label"] for r in records(record) if r["event"] == "sleep-start"]
        assert started == ["backup", "primary", "backup"], "the SDK-path call, the raw call, its retry"


# -- the pieces, against the SDK's own ---------------------------------------------------------------------------
RESULTS: list[dict[str, Any]] = [
    {"content": [{"type": "text", "text": "plain"}]},
    {"content": [{"type": "text", "text": "x", "annotations": {"audience": ["user"]}}], "isError": False},
    {"content": [], "structuredContent": {"temperature": 22.5}, "isError": True},
    {"content": [{"type": "image", "data": "aGk=", "mimeType": "image/png"}], "_meta": {"trace": "abc"}},
    {"content": [{"type": "resource_link", "uri": "file:///a", "name": "a"}], "unknownField": 1},
    {"content": [{"type": "text", "text": "x"}], "_meta": None},
    {"content": "not a list"},
    {"content": [{"type": "no-such-type"}]},
    # as a 2026-07-28 upstream answers (its own resultType kept by forward())
    {"content": [{"type": "text", "text": "ok"}], "resultType": "complete", "structuredContent": {"a": 1}},
    {
        "resultType": "input_required",
        "requestState": "s",
        "inputRequests": {
            "confirm": {
                "method": "elicitation/create",
                "params": {"message": "go on?", "requestedSchema": {"type": "object", "properties": {}}},
            }
        },
    },
    {"resultType": "input_required"},
    {"resultType": "vendor.example/deferred", "ticket": 7},
]


@pytest.mark.parametrize("version", [HANDSHAKE, MODERN])
@pytest.mark.parametrize("result", RESULTS)
def test_a_result_is_shaped_for_the_caller_exactly_as_the_sdk_servers_runner_shapes_it(
    version: str, result: dict[str, Any]
) -> None:
    server: Server[Any] = Server("ultramax", version="9.9")
    runner = ServerRunner(server, connection=None, lifespan_state=None)  # type: ignore[arg-type]
    forwarded = dict(result)
    if version == MODERN:
        forwarded.setdefault("resultType", "complete")  # as forward() hands it
    try:
        expected: Any = runner._serialize("tools/call", version, forwarded)
    except MCPError as exc:
        expected = exc.error
    try:
        got: Any = face_result(server, version, dict(result))
    except MCPError as exc:
        got = exc.error
    assert got == expected


def test_an_upstream_result_is_validated_and_trimmed_for_its_era_as_the_sdk_client_does() -> None:
    up: Any = SimpleNamespace(id="lab", protocol_version=HANDSHAKE)
    stamped = {
        "content": [{"type": "text", "text": "ok"}],
        "ttlMs": 5,
        "resultType": "complete",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "up", "version": "1"}, "trace": "t"},
    }
    assert upstream_result(up, stamped) == {
        "content": [{"type": "text", "text": "ok"}],
        "ttlMs": 5,  # not a tools/call field in any revision: left for the caller's sieve, as the SDK client does
        "_meta": {"trace": "t"},
    }, "2026-07-28's resultType and the upstream's envelope stamp are dropped"
    with pytest.raises(MCPError) as caught:
        upstream_result(up, {"content": "not a list"})
    assert caught.value.error.code == types.INTERNAL_ERROR
    assert caught.value.error.message.startswith("lab returned an invalid tools/call result: ")


def test_a_2026_era_upstreams_result_keeps_its_result_type_and_is_validated_for_that_era() -> None:
    up: Any = SimpleNamespace(id="modern", protocol_version=MODERN)
    asked = {
        "resultType": "input_required",
        "requestState": "s",
        "inputRequests": {"confirm": {"method": "elicitation/create", "params": {
            "message": "go on?", "requestedSchema": {"type": "object", "properties": {}}}}},
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "up", "version": "1"}},
    }  # fmt: skip
    assert upstream_result(up, dict(asked)) == {k: v for k, v in asked.items() if k != "_meta"}
    done = {"content": [{"type": "text", "text": "ok"}], "resultType": "complete", "ttlMs": -5}
    assert upstream_result(up, done) == {"content": [{"type": "text", "text": "ok"}], "resultType": "complete",
                                         "ttlMs": 0}, "a negative ttl floored as the SDK client floors it"  # fmt: skip
    with pytest.raises(MCPError) as caught:
        upstream_result(up, {"resultType": "input_required", "inputRequests": "not a map"})
    assert caught.value.error.message.startswith("modern returned an invalid tools/call result: ")


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


class _Waiter:
    def __init__(self) -> None:
        self.upstream_id = ""
        self.answers: list[tuple[Any, Any]] = []
        self.lost_count = 0

    def answered(self, result: dict[str, Any] | None, error: types.ErrorData | None) -> None:
        self.answers.append((result, error))

    def lost(self) -> None:
        self.lost_count += 1


def test_a_link_keeps_only_the_answers_to_its_own_requests_and_tells_the_waiting_ones_when_it_ends() -> None:
    transport = _Transport()
    can_write = asyncio.Event()
    can_write.set()
    link = RawLink(PipeWriter(transport, can_write))  # type: ignore[arg-type]
    first, second, third = _Waiter(), _Waiter(), _Waiter()
    for waiter in (first, second, third):
        link.issue(waiter, "tools/call", {"name": "echo", "arguments": {"message": "m"}})
    sent = [json.loads(line) for line in transport.written]
    assert [m["id"] for m in sent] == [f"{RAW_ID_PREFIX}1", f"{RAW_ID_PREFIX}2", f"{RAW_ID_PREFIX}3"]
    assert sent[0] == {"jsonrpc": "2.0", "id": f"{RAW_ID_PREFIX}1", "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"message": "m"}}}  # fmt: skip

    assert not link.on_line(b'{"jsonrpc":"2.0","id":1,"result":{}}'), "the SDK client's own ids pass on"
    assert not link.on_line(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info",'
                            b'"data":"' + RAW_ID_PREFIX.encode() + b'1"}}')  # fmt: skip
    assert link.on_line(b'{"result":{"content":[]},"jsonrpc":"2.0","id":"' + RAW_ID_PREFIX.encode() + b'1"}')
    assert first.answers == [({"content": []}, None)]
    error = b'{"jsonrpc":"2.0","id":"' + RAW_ID_PREFIX.encode() + b'2","error":{"code":-32602,"message":"bad"}}'
    assert link.on_line(error)
    assert second.answers == [(None, types.ErrorData(code=-32602, message="bad"))]
    assert not link.on_line(error), "an id is answered once"

    link.cancel(third)
    assert json.loads(transport.written[-1]) == {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                 "params": {"requestId": f"{RAW_ID_PREFIX}3",
                                                            "reason": "caller cancelled"}}  # fmt: skip
    fourth = _Waiter()
    link.issue(fourth, "tools/call", {"name": "echo"})
    link.end()
    link.end()
    assert (third.lost_count, fourth.lost_count) == (0, 1), "a cancelled call is not waiting any more"
    assert not link.writable()


@pytest.mark.parametrize(
    "line",
    [
        b'{"a": NaN}',
        b'{"a": 1e400}',
        b'{"a": "\\ud800 unpaired"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_line_the_sdks_parser_would_judge_otherwise_is_left_to_it(line: bytes) -> None:
    with pytest.raises(ValueError):
        loads_line(line)


def test_a_paired_surrogate_and_ordinary_numbers_are_read_as_json() -> None:
    assert loads_line(b'{"a": "\\ud83d\\ude00", "b": 1.5e300, "c": 12345678901234567890}') == {
        "a": "\U0001f600",
        "b": 1.5e300,
        "c": 12345678901234567890,
    }


def test_an_answer_only_the_sdks_parser_reads_still_reaches_its_raw_call() -> None:
    can_write = asyncio.Event()
    can_write.set()
    link = RawLink(PipeWriter(_Transport(), can_write))  # type: ignore[arg-type]
    waiter = _Waiter()
    link.issue(waiter, "tools/call", {"name": "n"})
    assert link.on_line(b'{"jsonrpc":"2.0","id":"' + RAW_ID_PREFIX.encode() + b'1","result":{"x":1e400}}')
    assert waiter.answers == [({"x": float("inf")}, None)]
