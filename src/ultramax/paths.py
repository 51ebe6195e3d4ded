"""Where ultramax reads and writes on a user's machine.

The seed's locations are the user's contract (``~/.claude/settings.json``, ``~/.claude/KILL_SWITCH``,
``~/.claude/logs/`` ...). ultramax's own state lives in ``~/.claude/ultramax/`` unless ``ULTRAMAX_HOME``
says otherwise; ``CLAUDE_CONFIG_DIR`` relocates the Claude directory exactly as it does for Claude Code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ultramax.errors import ConfigError
from ultramax.fsutil import private_dir

__all__ = ["Paths", "project_settings_files"]


@dataclass(frozen=True)
class Paths:
    """Every file location ultramax uses, resolved once from the environment."""

    claude_dir: Path
    home: Path

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        user_home = Path(env.get("HOME") or Path.home())
        claude_dir = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else user_home / ".claude"
        home = Path(env["ULTRAMAX_HOME"]) if env.get("ULTRAMAX_HOME") else claude_dir / "ultramax"
        return cls(claude_dir=claude_dir.expanduser(), home=home.expanduser())

    # Claude Code's files -------------------------------------------------------------------------
    @cached_property
    def user_settings(self) -> Path:
        return self.claude_dir / "settings.json"

    @cached_property
    def kill_switch(self) -> Path:
        return self.claude_dir / "KILL_SWITCH"

    @cached_property
    def override(self) -> Path:
        return self.claude_dir / "OVERRIDE"

    @cached_property
    def logs_dir(self) -> Path:
        return self.claude_dir / "logs"

    # ultramax's own state ----------------------------------------------------------------------
    @cached_property
    def socket(self) -> Path:
        return self.home / "daemon.sock"

    @cached_property
    def pid_file(self) -> Path:
        return self.home / "daemon.pid"

    @cached_property
    def lock_file(self) -> Path:
        return self.home / "daemon.lock"

    @cached_property
    def daemon_info(self) -> Path:
        return self.home / "daemon.json"

    @cached_property
    def audit_log(self) -> Path:
        return self.home / "audit.jsonl"

    @cached_property
    def audit_head(self) -> Path:
        return self.home / "audit.head"

    @cached_property
    def projects_file(self) -> Path:
        return self.home / "projects.json"

    @cached_property
    def backups_dir(self) -> Path:
        return self.home / "backups"

    def check_folders(self) -> None:
        """ConfigError if the Claude directory or ULTRAMAX_HOME is, or lies under, something that is not a folder
        (a variable pointing at a file): every command would otherwise fail on it in its own way, some with a
        traceback."""
        for path, what in (
            (self.claude_dir, "the Claude directory ($CLAUDE_CONFIG_DIR, default ~/.claude)"),
            (self.home, "ultramax's state folder ($ULTRAMAX_HOME, default ~/.claude/ultramax)"),
        ):
            there = next((p for p in (path, *path.parents) if p.exists()), None)
            if there is not None and not there.is_dir():
                where = "is" if there == path else f"lies under {there}, which is"
                raise ConfigError(f"{what} {path} {where} not a folder; point the variable at a folder")

    def ensure_home(self) -> Path:
        """Create ULTRAMAX_HOME private to the user (it holds the socket and the audit log)."""
        private_dir(self.home)
        return self.home


def project_settings_files(project_dir: Path) -> tuple[Path, Path]:
    """The project's shared and local Claude Code settings files, lowest precedence first."""
    claude = project_dir / ".claude"
    return claude / "settings.json", claude / "settings.local.json"
