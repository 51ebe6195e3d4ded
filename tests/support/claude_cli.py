"""Run the real Claude Code CLI headless (``claude -p``) against a local model server.

The CLI gets a clean environment: a scratch HOME, the stand-in server as ANTHROPIC_BASE_URL, a fake API
key, and the switches that stop it from reaching anything else. Nothing from the caller's environment
leaks in except PATH (hooks and the Bash tool need it), so a developer's real credentials, proxies or
Claude settings can never reach or change a test run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

#: Set to the ``claude`` executable to use; wins over every other place.
CLAUDE_BIN_ENV = "ULTRAMAX_CLAUDE_BIN"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where ``scripts/install-claude-code.sh`` installs the pinned CLI by default.
DEFAULT_INSTALL_DIR = REPO_ROOT / ".cache" / "claude-code"
#: Any non-empty string works: the stand-in server does not check it.
FAKE_API_KEY = "sk-ant-ultramax-test-not-a-real-key"
DEFAULT_TIMEOUT_S = 180.0


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_claude() -> Path | None:
    """The ``claude`` executable to test with, or None when there is none.

    Order: ``$ULTRAMAX_CLAUDE_BIN``, the repo's ``.cache/claude-code`` install, then PATH. A set but wrong
    ``$ULTRAMAX_CLAUDE_BIN`` raises instead of returning None, so a misconfigured CI fails rather than
    quietly skipping every end-to-end test.
    """
    configured = os.environ.get(CLAUDE_BIN_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not _is_executable(path):
            raise FileNotFoundError(f"{CLAUDE_BIN_ENV}={configured!r} is not an executable file")
        return path
    local = DEFAULT_INSTALL_DIR / "node_modules" / ".bin" / "claude"
    if _is_executable(local):
        return local
    on_path = shutil.which("claude")
    return Path(on_path) if on_path else None


def claude_env(*, home: Path, base_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment a test run of the CLI gets."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        # Also stops the startup HEAD /api/hello and other non-model calls.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class ClaudeRun:
    """The outcome of one ``claude -p ... --output-format json`` run."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    result: JsonObject | None
    """The parsed JSON result object (``type: result``), or None when stdout held none."""
    duration_s: float

    @property
    def text(self) -> str | None:
        """The final assistant text (``result.result``)."""
        value = (self.result or {}).get("result")
        return value if isinstance(value, str) else None

    @property
    def permission_denials(self) -> list[JsonObject]:
        """Tool calls that were not run: each has ``tool_name``, ``tool_use_id`` and ``tool_input``."""
        value = (self.result or {}).get("permission_denials")
        return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.result is not None and self.result.get("is_error") is False

    def describe(self) -> str:
        return (
            f"claude exited {self.returncode} after {self.duration_s:.1f}s\n"
            f"args: {list(self.args)}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def check(self) -> ClaudeRun:
        """Self, or AssertionError with the full output when the run failed."""
        if not self.ok:
            raise AssertionError(self.describe())
        return self


class ClaudeTimeoutError(TimeoutError):
    def __init__(self, args: Sequence[str], timeout: float, stdout: str, stderr: str) -> None:
        super().__init__(
            f"claude did not finish within {timeout}s\nargs: {list(args)}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
        self.stdout = stdout
        self.stderr = stderr


def parse_result(stdout: str) -> JsonObject | None:
    """The result object from ``--output-format json`` output (one JSON object, possibly after noise)."""
    candidates = [stdout.strip(), *reversed([line for line in stdout.splitlines() if line.startswith("{")])]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_claude(
    prompt: str,
    *,
    cwd: Path,
    home: Path,
    base_url: str,
    allowed_tools: Iterable[str],
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    claude: Path | None = None,
) -> ClaudeRun:
    """Run ``claude -p PROMPT --output-format json --allowedTools ...`` in ``cwd`` and wait for it.

    ``allowed_tools`` pre-approves tools; ``--dangerously-skip-permissions`` would be simpler but the CLI
    refuses it when run as root, which CI and dev containers are. ``env`` adds to (or overrides) the clean
    environment from ``claude_env``.
    """
    executable = claude or find_claude()
    if executable is None:
        raise FileNotFoundError(f"no claude executable; set {CLAUDE_BIN_ENV} or run scripts/install-claude-code.sh")
    home.mkdir(parents=True, exist_ok=True)
    tools = list(allowed_tools)
    args = [str(executable), "-p", "--output-format", "json", *extra_args]
    if tools:
        args += ["--allowedTools", *tools]
    # "--" ends the variadic --allowedTools list and lets a prompt start with "-".
    args += ["--", prompt]
    started = time.monotonic()
    # Own session so a timeout can kill the CLI together with the shells and hooks it started.
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=claude_env(home=home, base_url=base_url, extra=env),
        stdin=subprocess.DEVNULL,  # -p reads a piped stdin as extra prompt; never let it wait on ours
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise ClaudeTimeoutError(args, timeout, stdout, stderr) from None
    return ClaudeRun(
        args=tuple(args),
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
        result=parse_result(stdout),
        duration_s=time.monotonic() - started,
    )


def command_hook(command: str, *, matcher: str | None = None, timeout: int | None = None) -> JsonObject:
    """One matcher group for a hook event in settings.json, running a single shell ``command``."""
    handler: JsonObject = {"type": "command", "command": command}
    if timeout is not None:
        handler["timeout"] = timeout
    group: JsonObject = {"hooks": [handler]}
    if matcher is not None:
        group["matcher"] = matcher
    return group


def write_project_settings(project: Path, settings: Mapping[str, Any]) -> Path:
    """Write ``<project>/.claude/settings.json`` (``-p`` trusts the folder, so its hooks run)."""
    path = project / ".claude" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


__all__ = [
    "CLAUDE_BIN_ENV",
    "DEFAULT_INSTALL_DIR",
    "DEFAULT_TIMEOUT_S",
    "FAKE_API_KEY",
    "REPO_ROOT",
    "ClaudeRun",
    "ClaudeTimeoutError",
    "claude_env",
    "command_hook",
    "find_claude",
    "parse_result",
    "run_claude",
    "write_project_settings",
]
