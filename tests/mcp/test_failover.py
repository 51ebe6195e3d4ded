"""Failover with real processes: a primary killed, hung, or dying mid-call; its backup answering; no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import Gateway, Servers, process_gone, result_text, write_pools

INTERVAL_MS = 200


def pools(servers: Servers, *, rules: list[dict[str, Any]] | None = None, timeout_ms: int = 1000) -> dict[str, Any]:
    return {
        "version": "8.0",
        "pools": {
            "primary": {"strategy": "priority", "health_check_interval_ms": INTERVAL_MS, "timeout_ms": timeout_ms,
                        "servers": {"everything": servers.everything(env={"LABEL": "primary"})}},
            "failover": {"health_check_interval_ms": INTERVAL_MS, "timeout_ms": timeout_ms, "servers": {
                "everything-backup": servers.everything(env={"LABEL": "backup"}, **{"for": "everything"})}},
        },
        "routing": {"rules": rules or []},
    }  # fmt: skip


@pytest.fixture
def gw(umx: UltramaxEnv, project: Path, servers: Servers) -> Iterator[Gateway]:
    write_pools(umx, pools(servers))
    with Gateway(umx, project) as gateway:
        gateway.wait_up("everything")
        gateway.wait_up("everything-backup")
        yield gateway


def label(gw: Gateway) -> str:
    return str(json.loads(gw.text("everything__get-env"))["LABEL"])


def events(gw: Gateway, kind: str, server: str) -> list[dict[str, Any]]:
    return [e for e in gw.status()["events"] if e["event"] == kind and e["server"] == server]


def test_when_the_primary_is_killed_the_backup_answers_at_once_and_the_primary_is_restarted(gw: Gateway) -> None:
    assert label(gw) == "primary"
    killed_at = time.time()
    old = gw.kill("everything")

    assert label(gw) == "backup", "the very next call is answered, by the backup"
    wait_for(lambda: bool(events(gw, "down", "everything")), 5, "the gateway to record the failover")
    [down] = events(gw, "down", "everything")
    assert down["to"] == "everything-backup"
    assert down["t"] - killed_at <= INTERVAL_MS / 1000, "death detected within one health interval"

    new = gw.wait_up("everything", other_than=old)
    assert process_gone(old) and new != old
    assert label(gw) == "primary", "traffic returns to the restarted primary"
    metrics = gw.metrics()
    assert 'mcp_failover_total{from_server="everything",to_server="everything-backup"} 1.0' in metrics
    assert 'mcp_server_restarts_total{server_name="everything"} 1.0' in metrics


def test_the_restart_command_restarts_a_server_inside_the_running_gateway(gw: Gateway, umx: UltramaxEnv) -> None:
    old = gw.pid_of("everything")
    env = {**os.environ, "HOME": str(umx.home), "ULTRAMAX_HOME": str(umx.ultramax_home)}
    out = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(gw.project), "mcp", "restart", "everything"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert "restarting everything" in out.stdout
    assert gw.wait_up("everything", other_than=old) != old
    assert process_gone(old)
    assert label(gw) == "primary"


def test_a_read_only_call_cut_off_by_its_servers_death_is_retried_on_the_backup(gw: Gateway) -> None:
    progress: list[float] = []
    killed: list[int] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)
        if not killed:
            killed.append(gw.kill("everything"))

    result = gw.call("everything__trigger-long-running-operation", {"duration": 0.6, "steps": 3},
                     progress_callback=on_progress)  # fmt: skip
    assert not result.is_error, result
    assert "completed" in result_text(result).lower()
    assert killed, "the primary was killed while the call ran"
    assert progress == sorted(set(progress)), "progress only ever increases, across the retry"
    [retry] = events(gw, "retry", "everything")
    assert retry["method"] == "tools/call"


def test_a_call_not_safe_to_retry_is_not_replayed_on_the_backup(umx: UltramaxEnv, project: Path,
                                                                 servers: Servers) -> None:  # fmt: skip
    rule = {"pattern": "everything:trigger-long-running-operation", "retry_safe": False}
    write_pools(umx, pools(servers, rules=[rule]))
    with Gateway(umx, project) as gw:
        gw.wait_up("everything")
        gw.wait_up("everything-backup")
        killed: list[int] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            if not killed:
                killed.append(gw.kill("everything"))

        result = gw.call("everything__trigger-long-running-operation", {"duration": 0.6, "steps": 3},
                         progress_callback=on_progress)  # fmt: skip
        assert result.is_error
        assert "not retried on another server" in result_text(result)
        assert 'mcp_gateway_calls_total{outcome="ok",server_name="everything-backup"}' not in gw.metrics()
        assert events(gw, "retry", "everything") == []


def test_a_server_that_stops_answering_is_restarted_after_three_failed_probes(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    write_pools(umx, pools(servers, timeout_ms=300))
    with Gateway(umx, project) as gw:
        old = gw.wait_up("everything")
        gw.wait_up("everything-backup")
        stopped_at = time.monotonic()
        os.kill(old, signal.SIGSTOP)  # alive, holding its pipes, answering nothing
        try:
            wait_for(lambda: bool(events(gw, "down", "everything")), 10, "the hung server to be taken out")
            detected_in = time.monotonic() - stopped_at
            [down] = events(gw, "down", "everything")
            assert "3 consecutive failed probes" in down["reason"]
            assert detected_in < 3 * (INTERVAL_MS + 300) / 1000 + 1.0
            assert label(gw) == "backup"
            new = gw.wait_up("everything", other_than=old)
        finally:
            if not process_gone(old):
                os.kill(old, signal.SIGCONT)
        assert new != old
        wait_for(lambda: process_gone(old), 5, "the hung process to be killed")


def test_no_server_process_outlives_the_gateway_even_when_the_gateway_is_killed(gw: Gateway) -> None:
    children = [gw.pid_of("everything"), gw.pid_of("everything-backup")]
    gateway_pid = gw.info().pid
    os.kill(gateway_pid, signal.SIGKILL)
    wait_for(lambda: all(process_gone(pid) for pid in children), 10, "PR_SET_PDEATHSIG to take the servers down")


def test_stopping_the_gateway_stops_and_reaps_every_server_it_started(
    umx: UltramaxEnv, project: Path, servers: Servers
) -> None:
    write_pools(umx, pools(servers))
    with Gateway(umx, project) as gw:
        children = [gw.wait_up("everything"), gw.wait_up("everything-backup")]
        info = gw.info()
    assert all(process_gone(pid) for pid in children)
    assert process_gone(info.pid)
    assert not info.info_file.exists() and not Path(info.socket).exists(), "the control files are removed"
