"""The real daemon: one per user, private socket, control requests, load, crashes, graceful stop, metrics, logs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import ultramax.daemon.handover as handover_module
from tests.conftest import (
    CLIENT,
    DaemonProcess,
    HookRunner,
    PayloadFactory,
    UltramaxEnv,
    finish_daemon,
    process_gone,
    spawn_daemon_process,
    wait_for,
)
from ultramax.audit import verify
from ultramax.daemon import daemon_request, daemon_status, start_daemon, stop_daemon
from ultramax.daemon.handover import restart_command
from ultramax.doctor import run_doctor
from ultramax.errors import DaemonError
from ultramax.pipeline.stages.telemetry import SLOW_SECONDS
from ultramax.safety.killswitch import KillSwitch


def audit_records(umx: UltramaxEnv) -> list[dict[str, Any]]:
    """The records written so far (a line still being written while we poll is not one yet)."""
    try:
        lines = umx.paths.audit_log.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            assert line is lines[-1] and not line.endswith("\n"), f"damaged record in the middle: {line!r}"
    return records


def deny_reason(stdout: str) -> str:
    out = json.loads(stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    reason = out["permissionDecisionReason"]
    assert isinstance(reason, str)
    return reason


def handled(daemon: DaemonProcess) -> int:
    value = daemon_request(daemon.paths, "status")["handled"]
    assert isinstance(value, int)
    return value


def test_the_socket_and_the_ultramax_home_are_private_to_the_user(daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    sock = os.stat(umx.paths.socket)
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert sock.st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(umx.ultramax_home).st_mode) == 0o700
    assert umx.paths.pid_file.read_text(encoding="utf-8").strip() == str(daemon.pid)
    info = json.loads(umx.paths.daemon_info.read_text(encoding="utf-8"))
    assert info["pid"] == daemon.pid
    assert stat.S_IMODE(os.stat(umx.paths.daemon_info).st_mode) == 0o600


def test_a_second_daemon_exits_at_once_because_the_lock_is_held(daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "ultramax.daemon", "serve"],
        capture_output=True,
        text=True,
        env=umx.environ(),
        timeout=30,
        check=False,
    )
    assert second.returncode == 0
    assert (
        second.stdout.strip() == f"ultramax daemon: another ultramax daemon is already running for {umx.ultramax_home}"
    )
    status = daemon_status(umx.paths)
    assert status.running
    assert status.pid == daemon.pid, "the first daemon still serves"


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (its file descriptors, from /proc)."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if fd.readlink() == path:
                    return True
    return False


def test_a_daemon_starting_while_its_lock_is_probed_for_a_moment_still_serves(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    probe = os.open(umx.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(probe, fcntl.LOCK_EX)  # as `daemon status`, `daemon start` and doctor do to see if one runs
    output = umx.root / "daemon.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ultramax.daemon", "serve"], stdout=out, stderr=subprocess.STDOUT, env=umx.environ()
        )
    daemon = DaemonProcess(proc, umx.paths, output)
    try:
        try:
            wait_for(lambda: proc.poll() is not None or has_open(proc.pid, umx.paths.lock_file), 20, "the lock")
        finally:
            os.close(probe)  # the probe is over
        wait_for(lambda: proc.poll() is not None or daemon_status(umx.paths).running, 20, "the daemon to answer")
        assert proc.poll() is None, f"the daemon gave up on a lock only probed:\n{daemon.log_text()}"
    finally:
        finish_daemon(daemon)


def test_status_describes_the_daemon_and_stop_ends_it_cleanly(daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    status = daemon_status(umx.paths)
    assert status.running
    assert status.problem is None
    assert status.pid == daemon.pid
    assert status.socket == str(umx.paths.socket)
    assert status.detail["handled"] == 0
    assert status.detail["inflight"] == 0
    assert status.detail["version"]
    assert daemon_request(umx.paths, "ping") == {"pong": True}
    with pytest.raises(DaemonError, match="unknown control command 'reboot'"):
        daemon_request(umx.paths, "reboot")

    assert stop_daemon(umx.paths) is True
    assert daemon.proc.wait(timeout=20) == 0
    for leftover in (umx.paths.socket, umx.paths.pid_file, umx.paths.daemon_info):
        assert not leftover.exists(), leftover
    after = daemon_status(umx.paths)
    assert (after.running, after.pid, after.problem) == (False, None, None)
    assert stop_daemon(umx.paths) is False


def test_a_stale_socket_is_named_by_status_and_cleared_by_stop(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(umx.paths.socket))
    status = daemon_status(umx.paths)
    assert not status.running
    assert status.problem is not None
    assert status.problem.startswith(f"stale socket {umx.paths.socket}")
    assert stop_daemon(umx.paths) is False
    assert not umx.paths.socket.exists()


def test_a_stopped_daemon_is_stopped_gracefully_not_killed(daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    os.kill(daemon.pid, signal.SIGSTOP)  # hung: the control request gets no answer
    assert stop_daemon(umx.paths, timeout=10) is True
    assert daemon.proc.wait(timeout=20) == 0, daemon.log_text()
    assert not umx.paths.socket.exists() and not umx.paths.pid_file.exists(), "it cleaned up after itself"


def test_stop_never_signals_an_unrelated_process_that_a_stale_pid_file_names(
    daemon: DaemonProcess, umx: UltramaxEnv
) -> None:
    bystander = subprocess.Popen(["sleep", "120"])
    os.kill(daemon.pid, signal.SIGSTOP)  # hung: only a signal can stop it now
    try:
        umx.paths.pid_file.write_text(f"{bystander.pid}\n")  # the pid file names a process that is not the daemon
        assert stop_daemon(umx.paths, timeout=10) is True
        assert daemon.proc.wait(timeout=20) == 0, "the daemon itself was stopped"
        assert bystander.poll() is None, "stop signalled the process the pid file named, not the daemon"
    finally:
        bystander.kill()
        bystander.wait()


def test_fifty_hook_clients_at_once_are_all_answered_and_all_audited(
    daemon: DaemonProcess, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage("load test")
    project = umx.project("webapp")

    def one(i: int) -> tuple[int, Any]:
        if i % 2:
            payload = make_payload("PreToolUse", session_id=f"load-{i:02d}", tool_input={"command": f"echo {i}"})
        else:
            payload = make_payload(
                "PreToolUse", session_id=f"load-{i:02d}", tool_name="Read", tool_input={"file_path": f"/w/{i}.py"}
            )
        return i, run_hook("PreToolUse", payload, project_dir=project, timeout_ms=20000)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))

    for i, run in results:
        assert (run.code, run.stderr) == (0, ""), (i, run)
        if i % 2:
            assert "KILL SWITCH is on (engaged" in deny_reason(run.stdout)
        else:
            assert run.stdout == "", "reads pass the kill switch outside trading mode"
    assert handled(daemon) == 50, "every call was answered by the daemon, none in-process"
    records = audit_records(umx)
    assert sorted(r["session"] for r in records) == [f"load-{i:02d}" for i in range(50)]
    assert sorted(r["decision"] for r in records) == ["continue"] * 25 + ["deny"] * 25
    report = verify(umx.paths.audit_log)
    assert report.ok, report.problems
    assert report.records == 50


def test_killing_the_daemon_mid_load_loses_no_acknowledged_record(
    daemon: DaemonProcess, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    env = umx.environ(CLAUDE_PROJECT_DIR=str(umx.project("webapp")))

    def launch(i: int) -> tuple[str, subprocess.Popen[bytes]]:
        session = f"crash-{i:02d}"
        stdin = umx.root / f"{session}.json"
        stdin.write_text(json.dumps(make_payload("PreToolUse", session_id=session)), encoding="utf-8")
        with stdin.open("rb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", CLIENT, "PreToolUse", "--timeout-ms=20000"],
                stdin=fh,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        return session, proc

    clients = [launch(i) for i in range(16)]
    wait_for(lambda: len(audit_records(umx)) >= 4, 30, "the daemon to answer a few clients")
    os.kill(daemon.pid, signal.SIGKILL)
    assert daemon.proc.wait(timeout=10) == -signal.SIGKILL
    clients += [launch(i) for i in range(16, 24)]  # these find a dead daemon behind a stale socket

    acknowledged: list[str] = []
    for session, proc in clients:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err
        if out:
            assert "KILL SWITCH" in deny_reason(out.decode())
            acknowledged.append(session)
    assert len(acknowledged) == 24, "every client answered, by the daemon or in-process after the crash"
    recorded = {r["session"] for r in audit_records(umx)}
    assert set(acknowledged) <= recorded, f"lost: {sorted(set(acknowledged) - recorded)}"
    report = verify(umx.paths.audit_log)
    assert report.ok, report.problems


def test_sigterm_lets_an_in_flight_call_finish_before_the_daemon_exits(
    daemon: DaemonProcess, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    payload = json.dumps(make_payload("PreToolUse", session_id="in-flight")).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(umx.paths.socket))
        s.sendall(b"PreToolUse\t\n" + payload[:40])  # the call has started: Claude Code is still writing
        wait_for(lambda: daemon_request(umx.paths, "status")["inflight"] >= 1, 10, "the call to be in flight")

        daemon.proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            daemon.proc.wait(timeout=0.3)  # it waits for us instead of exiting

        s.sendall(payload[40:])
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    header, _, body = reply.partition(b"\n")
    code, length = (int(x) for x in header.split())
    assert code == 0
    assert "KILL SWITCH" in deny_reason(body[:length].decode())
    assert daemon.proc.wait(timeout=20) == 0
    assert not umx.paths.socket.exists()
    assert [r["session"] for r in audit_records(umx)] == ["in-flight"]


def test_a_large_payload_reaches_the_daemon_whole(
    daemon: DaemonProcess, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    content = "".join(f"line {i}: {'x' * 60}\n" for i in range(16_000))  # ~1 MB, a big Write
    raw = json.dumps(
        make_payload("PreToolUse", tool_name="Write", tool_input={"file_path": "/w/big.txt", "content": content})
    ).encode()
    assert len(raw) > 1_000_000
    run = run_hook("PreToolUse", raw)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    [record] = audit_records(umx)
    assert record["summary"] == "Write file_path=/w/big.txt"
    assert record["input_sha256"] == hashlib.sha256(raw).hexdigest(), "the daemon judged the whole payload"
    assert handled(daemon) == 1


def metrics_text(umx: UltramaxEnv) -> str:
    url = daemon_status(umx.paths).detail["metrics_url"]
    assert isinstance(url, str)
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port not in (None, 9090), "metricsPort 0 picks a free port"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def test_the_metrics_endpoint_exposes_hook_stage_and_decision_metrics(
    daemon: DaemonProcess, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    assert run_hook("PreToolUse", make_payload("PreToolUse")).stdout
    assert run_hook("SessionStart", make_payload("SessionStart")).code == 0
    text = metrics_text(umx)
    assert 'ultramax_hook_duration_seconds_count{event="PreToolUse"} 1.0' in text
    assert 'ultramax_hook_duration_seconds_count{event="SessionStart"} 1.0' in text
    assert 'ultramax_stage_duration_seconds_count{event="PreToolUse",stage="safety"} 1.0' in text
    assert 'ultramax_stage_duration_seconds_count{event="SessionStart",stage="enrichment"} 1.0' in text
    assert 'ultramax_decisions_total{event="PreToolUse",outcome="deny"} 1.0' in text
    assert 'ultramax_decisions_total{event="SessionStart",outcome="continue"} 1.0' in text


def test_notable_hook_events_are_logged_as_json_lines_in_the_pipeline_log(
    daemon: DaemonProcess, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    run_hook("PreToolUse", make_payload("PreToolUse", session_id="routine-session"))
    KillSwitch(umx.paths.kill_switch).engage()
    run_hook("PreToolUse", make_payload("PreToolUse", session_id="denied-session"))
    log_file = umx.home / ".claude" / "logs" / "hooks_pipeline.log"
    entries = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert entries[0]["msg"] == "daemon started"
    assert entries[0]["pid"] == daemon.pid
    hooks = {e["session"]: e for e in entries if e["msg"] == "hook"}
    if "routine-session" in hooks:  # a routine allow is only in the audit log, unless it was slow
        assert hooks["routine-session"]["ms"] > SLOW_SECONDS * 1000
    hook = hooks["denied-session"]
    assert hook["level"] == "INFO"
    assert hook["logger"] == "ultramax.pipeline"
    assert (hook["event"], hook["tool"], hook["mode"], hook["decision"]) == (
        "PreToolUse",
        "Bash",
        "development",
        "deny",
    )
    assert hook["audit_seq"] == 2
    assert {"auth_validation", "safety", "audit"} <= set(hook["stages"])


def test_a_daemon_started_by_the_fixture_can_be_started_again_after_a_stop(umx: UltramaxEnv) -> None:
    first = spawn_daemon_process(umx)
    finish_daemon(first)
    second = spawn_daemon_process(umx)
    try:
        assert daemon_status(umx.paths).pid == second.pid != first.pid
    finally:
        finish_daemon(second)


def test_a_metrics_port_already_taken_is_named_in_the_status_with_the_fix(umx: UltramaxEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        umx.update_user_settings({"observability": {"metricsPort": taken.getsockname()[1]}})
        proc = spawn_daemon_process(umx)
        try:
            detail = daemon_status(umx.paths).detail
            assert detail["metrics_url"] is None
            assert detail["metrics_error"].startswith(f"port {taken.getsockname()[1]}: ")
        finally:
            finish_daemon(proc)


def test_doctor_warns_when_the_running_daemon_is_another_install_of_ultramax(
    daemon: DaemonProcess, umx: UltramaxEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    [ours] = [c for c in run_doctor(umx.paths, umx.root, managed_settings=()) if c.name == "daemon"]
    assert ours.status == "ok"
    monkeypatch.setattr(handover_module, "__version__", "0.0.0-upgraded")  # as after an upgrade in place
    [check] = [c for c in run_doctor(umx.paths, umx.root, managed_settings=()) if c.name == "daemon"]
    assert check.status == "warn" and "hooks are answered by the other one" in check.message
    assert check.fix == f"ultramax install (it restarts the daemon), or {restart_command()}"


def test_a_daemon_that_dies_as_it_starts_is_reported_as_exited_with_its_output_not_as_slow(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    umx.paths.daemon_info.mkdir()  # the daemon cannot write daemon.json over a folder: it fails on its way up
    with pytest.raises(DaemonError) as failed:
        start_daemon(umx.paths)
    message = str(failed.value)
    assert message.startswith("the daemon exited as it started (status ") and "did not start within" not in message
    assert "daemon.json" in message  # its own output says why
    assert not daemon_status(umx.paths).running


def test_a_directory_where_the_socket_belongs_is_named_with_its_fix_and_left_as_it_is(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    umx.paths.socket.mkdir()
    (umx.paths.socket / "notes.txt").write_text("mine")
    started = subprocess.run(
        [sys.executable, "-m", "ultramax.daemon", "serve"],
        capture_output=True,
        text=True,
        env=umx.environ(),
        timeout=60,
        check=False,
    )
    problem = f"{umx.paths.socket} is a directory, not the daemon's socket: move it aside"
    assert started.returncode == 1
    assert started.stdout.startswith(f"ultramax daemon: cannot listen: {problem}")
    assert started.stdout.count("\n") == 1 and "Traceback" not in started.stdout + started.stderr
    assert (umx.paths.socket / "notes.txt").read_text() == "mine"
    status = daemon_status(umx.paths)
    assert not status.running and status.problem is not None and status.problem.startswith(problem)
    checks = {c.name: c for c in run_doctor(umx.paths, umx.root, managed_settings=())}
    assert checks["daemon"].status == "fail"
    assert checks["daemon"].fix == f"mv {umx.paths.socket} {umx.paths.socket}.old && ultramax daemon start"
    assert checks["permissions"].status == "ok"  # a directory's mode is not the socket's


def test_a_daemon_output_file_that_cannot_be_opened_does_not_keep_the_daemon_from_starting(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    (umx.paths.home / "daemon.out").mkdir()  # where start-up diagnostics go: not writable as a file
    started = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "daemon", "start"],
        capture_output=True,
        text=True,
        env=umx.environ(),
        timeout=60,
        check=False,
    )
    status = daemon_status(umx.paths)
    try:
        assert (started.returncode, started.stderr) == (0, "")
        assert status.running and started.stdout.startswith(f"daemon running: pid {status.pid}")
    finally:
        if status.pid is not None:
            stop_daemon(umx.paths)
            wait_for(lambda: process_gone(status.pid or 0), 20, "the daemon to exit")


def test_a_memory_database_replaced_under_the_daemon_gets_no_more_writes_and_the_daemon_restarts(
    daemon: DaemonProcess, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    project = umx.project("webapp")
    first = make_payload("UserPromptSubmit", cwd=str(project), prompt="the mail queue drains every five minutes")
    assert run_hook("UserPromptSubmit", first, project_dir=project).code == 0
    for suffix in ("", "-wal", "-shm"):  # set aside the way the advice for a damaged file says
        if (umx.paths.home / f"memory.db{suffix}").exists():
            (umx.paths.home / f"memory.db{suffix}").rename(umx.paths.home / f"memory.db.old{suffix}")

    second = make_payload("UserPromptSubmit", cwd=str(project), prompt="the billing worker listens on port 8123")
    run = run_hook("UserPromptSubmit", second, project_dir=project)
    assert (run.code, run.stderr) == (0, "")

    wait_for(lambda: daemon.proc.poll() is not None, 30, "the daemon to stop by itself")
    assert daemon.proc.returncode == 0, daemon.log_text()
    moved = sqlite3.connect(umx.paths.home / "memory.db.old")
    try:
        texts = [row[0] for row in moved.execute("SELECT text FROM passages")]
    finally:
        moved.close()
    assert any("mail queue" in t for t in texts) and not any("port 8123" in t for t in texts), texts
