"""One small exception hierarchy: every error ultramax raises on purpose is an ``UltramaxError``.

Third-party errors are translated at the seam (``raise ConfigError(...) from exc``) so callers and the CLI
only ever need to catch this family; the message always says what is wrong and how to fix it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AuditError",
    "ConfigError",
    "DaemonError",
    "HookInputError",
    "InstallError",
    "ModeError",
    "PipelineError",
    "SettingError",
    "UltramaxError",
    "UsageError",
    "describe_json",
    "json_problem",
]


class UltramaxError(Exception):
    """Base of every error ultramax raises deliberately."""

    def details(self) -> dict[str, Any]:
        """Structured detail beside the message (a command's ``--json`` error object carries it)."""
        return {}


class UsageError(UltramaxError):
    """The command line itself is wrong (an option's value is malformed, a name it gives is unknown): the CLI
    exits 2, as for argparse's own errors, so a script can tell a typo from a failure or a finding (exit 1)."""


class ConfigError(UltramaxError):
    """A settings file is unreadable, not JSON, or holds a bad value."""


class SettingError(ConfigError):
    """One setting's value is well-formed but cannot be used (it names a tier, model or file that is not there);
    ``key`` is the setting, so a caller can point at the file that set it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class HookInputError(UltramaxError):
    """A hook payload from Claude Code is empty, malformed, oversized or of the wrong shape."""


class AuditError(UltramaxError):
    """The audit log cannot be written or read."""


class DaemonError(UltramaxError):
    """The daemon cannot be started, reached or stopped."""


class ModeError(UltramaxError):
    """An unknown mode or a broken mode definition."""


class PipelineError(UltramaxError):
    """A pipeline stage failed in a way the failure policy has to handle."""


class InstallError(UltramaxError):
    """Claude Code's settings cannot be changed safely."""


def json_problem(exc: json.JSONDecodeError) -> str:
    """Where and why JSON failed to parse, as a phrase: "Expecting value at line 1 column 9". The decoder's
    own message for a raw control character already ends in "at", which would read "at at line ..."."""
    return f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}"


def describe_json(value: Any) -> str:
    """A JSON value as a person reads it in an error: null, true, the number 5, the string "abc", a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {json.dumps(value[:60], ensure_ascii=False)}"
    return "a list" if isinstance(value, list) else "an object"
