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

from ultramax.errors import UltramaxError
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers import READ_ONLY_TOOLS

__all__ = ["KillSwitch", "KillSwitchError", "KillSwitchLayer"]


class KillSwitchError(UltramaxError):
    """The switch file cannot be written or removed (a folder of that name, a read-only ``~/.claude``)."""


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
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            # anything at that path engages the switch: say so, or the user may think nothing is stopped
            state = "the switch is on anyway (anything at that path engages it)" if self.engaged else "it is off"
            raise KillSwitchError(f"cannot write the kill switch {self.path} ({exc.strerror or exc}); {state}") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)

    def release(self) -> bool:
        """Remove the switch; True if it was on."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except IsADirectoryError:  # made by hand with mkdir: an empty folder goes as the file would
            try:
                self.path.rmdir()
            except OSError as exc:
                raise self._stuck(exc) from exc
        except OSError as exc:
            raise self._stuck(exc) from exc
        return True

    def _stuck(self, exc: OSError) -> KillSwitchError:
        return KillSwitchError(
            f"cannot remove the kill switch {self.path} ({exc.strerror or exc}): it stays ON; remove it by hand"
        )

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
