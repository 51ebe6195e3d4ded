"""Shared fixtures: an isolated user for every test, realistic hook payloads, the real daemon, the real client.

Every test runs as a fresh user: HOME, ULTRAMAX_HOME and the Claude directory live in a fresh temporary
directory (``umx.root``), CLAUDE_CONFIG_DIR and CLAUDE_PROJECT_DIR are unset, the client never starts a
daemon on its own (ULTRAMAX_NO_AUTOSTART=1) and the metrics endpoint picks a free port (9090 is taken on
the CI machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pytest

import ultramax.hook.client
from ultramax.audit import digest
from ultramax.config import Settings, load_settings
from ultramax.daemon import daemon_status, stop_daemon
from ultramax.events import parse_event
from ultramax.modes import get_mode
from ultramax.observability import reset_logging
from ultramax.paths import Paths
from ultramax.pipeline.stage import HookContext

CLIENT = str(Path(ultramax.hook.client.__file__).resolve())
"""The hook client script, run exactly as ``ultramax install`` writes it into settings.json."""

SESSION = "658ea207-91bb-41ad-88e9-9a85c21e6c99"
PROMPT_ID = "2f09b7db-020c-4e48-becb-41d60d104045"
DEFAULT_CWD = "/home/dev/work/demo"


# -- waiting without sleeping ------------------------------------------------------------------------------
def process_gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a parent that is not us counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    state = ""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat[stat.rfind(")") + 2 :].split()[0]
    return state == "Z"


def wait_for(condition: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        tick.wait(0.01)


# -- the isolated user -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UltramaxEnv:
    """Where this test's user lives."""

    root: Path
    home: Path
    claude_dir: Path
    ultramax_home: Path

    @property
    def paths(self) -> Paths:
        return Paths(claude_dir=self.claude_dir, home=self.ultramax_home)

    @property
    def user_settings(self) -> Path:
        return self.claude_dir / "settings.json"

    def update_user_settings(self, data: Mapping[str, Any]) -> None:
        """Merge ``data`` (section by section) into the user's settings.json."""
        current = json.loads(self.user_settings.read_text(encoding="utf-8"))
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
        self.user_settings.write_text(json.dumps(current, indent=2), encoding="utf-8")

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment a subprocess of this user gets (the test process's, plus ``extra``)."""
        env = dict(os.environ)
        env.update(extra)
        return env

    def project(self, name: str, settings: Mapping[str, Any] | None = None) -> Path:
        """A project directory called ``name`` (its path holds no other mode word), with optional settings."""
        path = self.root / "projects" / name
        path.mkdir(parents=True, exist_ok=True)
        if settings is not None:
            (path / ".claude").mkdir(exist_ok=True)
            (path / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        return path


@pytest.fixture(autouse=True)
def umx(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[UltramaxEnv]:
    """Every test gets its own user; ultramax's log handlers are closed afterwards."""
    # not tmp_path: its name is the test's name, and mode detection reads words like "trading" in paths
    root = tmp_path_factory.mktemp("u")
    home = root / "user"
    claude = home / ".claude"
    claude.mkdir(parents=True)
    (claude / "settings.json").write_text(json.dumps({"observability": {"metricsPort": 0}}), encoding="utf-8")
    env = UltramaxEnv(root=root, home=home, claude_dir=claude, ultramax_home=root / "umx")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ULTRAMAX_HOME", str(env.ultramax_home))
    monkeypatch.setenv("ULTRAMAX_NO_AUTOSTART", "1")
    for name in ("CLAUDE_CONFIG_DIR", "CLAUDE_PROJECT_DIR", "ULTRAMAX_HOOK_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    yield env
    reset_logging()


# -- payloads ---------------------------------------------------------------------------------------------
_EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "SessionStart": {"source": "startup"},
    "UserPromptSubmit": {"permission_mode": "default", "prompt": "fix the failing auth tests"},
    "PreToolUse": {
        "permission_mode": "default",
        "effort": {"level": "medium"},
        "tool_name": "Bash",
        "tool_input": {"command": "npm test -- auth", "description": "Run auth tests"},
        "tool_use_id": "toolu_01HXk3vQ9fzY2mW7r8sT4uLp",
    },
    "PermissionRequest": {
        "permission_mode": "default",
        "tool_name": "Bash",
        "tool_input": {"command": "rm -rf node_modules", "description": "Remove node_modules"},
    },
    "PostToolUse": {
        "permission_mode": "default",
        "effort": {"level": "medium"},
        "tool_name": "Bash",
        "tool_input": {"command": "npm test -- auth", "description": "Run auth tests"},
        "tool_response": {"stdout": "Tests: 42 passed", "stderr": "", "interrupted": False, "isImage": False},
        "tool_use_id": "toolu_01HXk3vQ9fzY2mW7r8sT4uLp",
        "duration_ms": 8123,
    },
    "Stop": {
        "permission_mode": "default",
        "effort": {"level": "medium"},
        "stop_hook_active": False,
        "last_assistant_message": "All 42 auth tests pass.",
        "background_tasks": [],
        "session_crons": [],
    },
    "SessionEnd": {"reason": "prompt_input_exit"},
}


def hook_payload(event: str, /, *, session_id: str = SESSION, cwd: str = DEFAULT_CWD, **fields: Any) -> dict[str, Any]:
    """A payload shaped like the ones Claude Code 2.1.x sends for ``event``; ``fields`` override or add."""
    data: dict[str, Any] = {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-work-demo/{session_id}.jsonl",
        "cwd": cwd,
    }
    if event not in ("SessionStart",):
        data["prompt_id"] = PROMPT_ID
    data["hook_event_name"] = event
    data.update(json.loads(json.dumps(_EVENT_FIELDS.get(event, {}))))
    data.update(fields)
    return data


class PayloadFactory(Protocol):
    def __call__(self, event: str, /, *, session_id: str = ..., cwd: str = ..., **fields: Any) -> dict[str, Any]: ...


@pytest.fixture
def make_payload() -> PayloadFactory:
    """Build a realistic hook payload: ``make_payload("PreToolUse", tool_name="Read", tool_input={...})``."""
    return hook_payload


class ContextFactory(Protocol):
    def __call__(
        self,
        event: str = ...,
        /,
        *,
        mode: str = ...,
        project_dir: Path | None = ...,
        settings: Settings | None = ...,
        **fields: Any,
    ) -> HookContext: ...


@pytest.fixture
def make_context(umx: UltramaxEnv) -> ContextFactory:
    """A pipeline context for one realistic event, as the Runtime would build it."""

    def build(
        event: str = "PreToolUse",
        /,
        *,
        mode: str = "development",
        project_dir: Path | None = None,
        settings: Settings | None = None,
        **fields: Any,
    ) -> HookContext:
        data = hook_payload(event, **fields)
        return HookContext(
            event=parse_event(data, event),
            paths=umx.paths,
            settings=settings if settings is not None else load_settings(umx.paths, project_dir),
            mode=get_mode(mode),
            mode_source="test",
            project_dir=project_dir,
            input_digest=digest(json.dumps(data)),
        )

    return build


def _find_captured() -> Path | None:
    here = Path(__file__).resolve().parent
    for parent in here.parents:
        candidate = parent.parent / "shared" / "claude-code" / "hook-events.jsonl"
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def captured_payloads() -> list[dict[str, Any]]:
    """Payloads captured from the real Claude Code CLI (``shared/`` next to the repository), else skip."""
    path = _find_captured()
    if path is None:
        pytest.skip("captured Claude Code payloads (shared/claude-code/hook-events.jsonl) are not present")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- the real hook client ---------------------------------------------------------------------------------
class HookRun(NamedTuple):
    code: int
    stdout: str
    stderr: str
    elapsed: float

    def json(self) -> dict[str, Any]:
        """stdout decoded; fails the test unless it is exactly one JSON object."""
        value = json.loads(self.stdout)
        assert isinstance(value, dict), self.stdout
        return value


class HookRunner(Protocol):
    def __call__(
        self,
        event: str,
        payload: bytes | Mapping[str, Any],
        *,
        timeout_ms: int = ...,
        project_dir: Path | None = ...,
        env: Mapping[str, str] | None = ...,
    ) -> HookRun: ...


def run_hook_process(
    event: str,
    payload: bytes | Mapping[str, Any],
    *,
    timeout_ms: int = 5000,
    project_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> HookRun:
    """Run the client as Claude Code does: ``python -I -S client.py EVENT --timeout-ms=N``, payload on stdin.

    The client gets the test's environment; ``env`` adds or overrides variables (remove one with monkeypatch).
    """
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    environ = dict(os.environ)
    if project_dir is not None:
        environ["CLAUDE_PROJECT_DIR"] = str(project_dir)
    environ.update(env or {})
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-I", "-S", CLIENT, event, f"--timeout-ms={timeout_ms}"],
        input=data,
        capture_output=True,
        env=environ,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    return HookRun(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), elapsed)


@pytest.fixture
def run_hook() -> HookRunner:
    """Run the real hook client; returns (exit code, stdout, stderr, elapsed seconds)."""
    return run_hook_process


# -- the real daemon --------------------------------------------------------------------------------------
@dataclass(slots=True)
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    paths: Paths
    output: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def spawn_daemon_process(env: UltramaxEnv, **environ: str) -> DaemonProcess:
    """Start ``python -m ultramax.daemon serve`` for this user (``environ`` added to its environment, e.g. a
    PYTHONPATH naming another copy of ultramax) and wait until it answers on its socket."""
    output = env.root / f"daemon-{time.monotonic_ns()}.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ultramax.daemon", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env.environ(**environ),
            cwd=env.root,
        )
    daemon = DaemonProcess(proc, env.paths, output)
    try:
        wait_for(lambda: proc.poll() is not None or daemon_status(env.paths).running, 20, "the daemon to answer")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.poll() is not None:
        pytest.fail(f"the daemon exited with {proc.returncode}:\n{daemon.log_text()}")
    return daemon


def finish_daemon(daemon: DaemonProcess) -> None:
    """Stop the daemon if it still runs; then nothing of it may remain."""
    if daemon.proc.poll() is None:
        stop_daemon(daemon.paths)
    try:
        code = daemon.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait()
        pytest.fail(f"the daemon (pid {daemon.pid}) did not exit after stop:\n{daemon.log_text()}")
    assert code in (0, -9), f"daemon exit code {code}:\n{daemon.log_text()}"
    assert not daemon_status(daemon.paths).running
    with pytest.raises(ProcessLookupError):
        os.kill(daemon.pid, 0)  # reaped: no orphan left behind


@pytest.fixture
def daemon(umx: UltramaxEnv) -> Iterator[DaemonProcess]:
    """The real daemon, running for this test's user; stopped (and checked gone) at teardown."""
    proc = spawn_daemon_process(umx)
    try:
        yield proc
    finally:
        finish_daemon(proc)
