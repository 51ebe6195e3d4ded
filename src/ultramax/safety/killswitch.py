"""The kill switch (seed layer 10): the file ``~/.claude/KILL_SWITCH`` stops tool calls at once.

Its presence is checked on every tool event (a ``stat``, no caching), so creating the file by hand works
as well as ``ultramax kill on``. In trading mode everything is denied; elsewhere read-only tools still run
(configurable), so Claude can still look while nothing changes.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from pathlib import Path

from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers import READ_ONLY_TOOLS

__all__ = ["KillSwitch", "KillSwitchLayer"]


class KillSwitch:
    """The switch file: on, off, status."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def engaged(self) -> bool:
        return self.path.exists()

    def engage(self, reason: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = f"engaged {stamp} by {_user()}" + (f": {reason}" if reason else "") + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)

    def release(self) -> bool:
        """Remove the switch; True if it was on."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def note(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()[:300]
        except OSError:
            return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class KillSwitchLayer:
    """Layer 10."""

    name = "kill_switch"
    order = 10

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        switch = KillSwitch(request.paths.kill_switch)
        if not switch.engaged:
            return None
        strict = request.mode.strict
        if not strict and request.settings.get("safety.killSwitchAllowsReads") and request.tool in READ_ONLY_TOOLS:
            return None
        note = switch.note()
        scope = "all tool calls are" if strict else "all tool calls except reads are"
        return LayerVerdict(
            "deny",
            f"KILL SWITCH is on ({note or request.paths.kill_switch}): {scope} blocked. "
            "Run `ultramax kill off` (or delete the file) to resume.",
            self.name,
            "kill_switch.engaged",
        )
