"""A server that starts but never answers its handshake, next to a healthy official server, behind the gateway.

The others' tools are listed within the bounded handshake wait, the hung server is reported (status, log) and
retried in the background with backoff, its tools arrive with ``list_changed`` once it answers, and neither a
hung nor a stubborn server (deaf to EOF and SIGTERM) holds the gateway's shutdown past about two seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mcp_types as types

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import Gateway, Servers, process_gone, write_pools
from ultramax.mcp.control import query_gateway

HUNG_SERVER = Path(__file__).with_name("hung_server.py")


def hung(record: Path, *, answer_when: Path | None = None) -> dict[str, Any]:
    """A pool entry for ``hung_server.py``, recording the pid of each start in ``record``."""
    args = [str(HUNG_SERVER), *(["--answer-when", str(answer_when)] if answer_when is not None else [])]
    return {"command": sys.executable, "args": args, "env": {"HUNG_RECORD": str(record)}}


def pids(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()] if record.exists() else []


def test_a_server_that_never_answers_its_handshake_holds_up_neither_the_listing_nor_the_shutdown(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    record = umx.root / "hung.pids"
    pool = {"startup_timeout_ms": 5000, "servers": {"everything": servers.everything(), "hung": hung(record)}}
    write_pools(umx, {"pools": {"primary": pool}})
    with Gateway(umx, project) as gw:
        asked = time.monotonic()
        names = {t.name for t in gw.tools()}
        listed_in = time.monotonic() - asked
        assert "everything__echo" in names and not any(n.startswith("hung__") for n in names)
        assert listed_in < 10.0, "the healthy server's tools come within the handshake wait, not after 20 s"
        assert gw.text("everything__echo", {"message": "hi"}) == "Echo: hi"

        hung_status = gw.server("hung")
        assert hung_status["status"] == "unhealthy"
        assert hung_status["error"] == "no answer to the handshake within 5 s"
        [failed, *_] = [e for e in gw.status()["events"] if e["event"] == "start failed"]
        assert failed["server"] == "hung" and failed["next_timeout_s"] == 10, "the next start gets longer"
        health = subprocess.run(
            [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "health"],
            capture_output=True, text=True, env=umx.environ(HOME=str(umx.home), ULTRAMAX_HOME=str(umx.ultramax_home)),
            timeout=60, check=False,
        )  # fmt: skip
        assert health.returncode == 1, health.stderr
        [line] = [ln for ln in health.stdout.splitlines() if ln.strip().startswith("hung ")]
        assert "unhealthy" in line and "(no answer to the handshake within 5 s)" in line
        logged = [json.loads(line) for line in (umx.paths.logs_dir / "mcp_gateway.log").read_text().splitlines()]
        assert any(e["msg"].startswith("mcp server hung did not start (no answer to the handshake within 5 s)")
                   for e in logged), logged  # fmt: skip

        started = len(pids(record))  # a retry is waiting on its handshake; a restart asked for now starts over now
        assert query_gateway(gw.info(), {"op": "restart", "server": "hung"})["restarted"] == ["hung"]
        wait_for(lambda: len(pids(record)) > started, 5, "the restart not to wait for the hung handshake")
        gateway_pid = gw.info().pid
        closing = time.monotonic()
    stopped_in = time.monotonic() - closing
    assert stopped_in < 2.0, "the gateway is gone before its client's 2 s of patience run out, hung server or not"
    assert process_gone(gateway_pid)
    assert pids(record) and all(process_gone(pid) for pid in pids(record)), "the hung server was killed"


def test_a_server_whose_handshake_timed_out_is_retried_and_its_tools_arrive_with_list_changed(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    record = umx.root / "hung.pids"
    ready = umx.root / "answer-now"
    pools = {"primary": {"startup_timeout_ms": 1000, "servers": {
        "everything": servers.everything(), "hung": hung(record, answer_when=ready)}}}  # fmt: skip
    write_pools(umx, {"pools": pools})
    with Gateway(umx, project) as gw:
        assert not any(t.name.startswith("hung__") for t in gw.tools())
        wait_for(lambda: len(pids(record)) >= 2, 15, "the hung server to be started again")
        assert gw.server("hung")["status"] == "unhealthy" and gw.server("hung")["restarts"] >= 1

        ready.touch()  # the next start answers
        wait_for(lambda: any(isinstance(n, types.ToolListChangedNotification) for n in gw.notifications), 30,
                 "notifications/tools/list_changed once the server answers")  # fmt: skip
        assert "hung__pong" in {t.name for t in gw.tools()}
        assert gw.text("hung__pong").startswith("pong from")
        recovered = gw.server("hung")
        assert recovered["status"] == "healthy" and recovered["error"] is None
        assert recovered["startup_timeout_s"] == 1.0, "a start that succeeds resets the startup timeout"
    assert all(process_gone(pid) for pid in pids(record))


def test_a_server_deaf_to_eof_and_sigterm_is_killed_when_the_gateway_stops_not_waited_for(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    record = umx.root / "stubborn.pids"
    ready = umx.root / "answer-now"
    ready.touch()  # it answers from the start, and ignores its stdin closing and SIGTERM
    write_pools(umx, {"pools": {"primary": {"servers": {
        "everything": servers.everything(), "stubborn": hung(record, answer_when=ready)}}}})  # fmt: skip
    with Gateway(umx, project) as gw:
        assert gw.text("stubborn__pong").startswith("pong from")
        gateway_pid = gw.info().pid
        closing = time.monotonic()
    stopped_in = time.monotonic() - closing
    assert stopped_in < 2.0, "the gateway is gone before its client's 2 s of patience run out"
    assert process_gone(gateway_pid)
    assert pids(record) and all(process_gone(pid) for pid in pids(record))


def test_a_restart_asked_for_while_a_crashing_server_waits_out_its_backoff_starts_it_at_once(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    record = umx.root / "crash.pids"
    script = "import os; open(os.environ['REC'], 'a').write(f'{os.getpid()}\\n')"  # then exit at once
    crash = {"command": sys.executable, "args": ["-c", script], "env": {"REC": str(record)}}
    write_pools(umx, {"pools": {"primary": {"servers": {"everything": servers.everything(), "crash": crash}}}})
    with Gateway(umx, project) as gw:
        # backoff doubles from 0.2 s: after six exits the next wait is 12.8 s
        wait_for(lambda: len(pids(record)) >= 6, 30, "the crashing server to be started six times")
        started = len(pids(record))
        asked = time.monotonic()
        assert query_gateway(gw.info(), {"op": "restart", "server": "crash"})["restarted"] == ["crash"]
        wait_for(lambda: len(pids(record)) > started, 5, "a start right after the restart was asked for")
        assert time.monotonic() - asked < 5.0
