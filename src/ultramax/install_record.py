"""What ``ultramax install`` last wrote to each settings file, and what the file held before it.

``ultramax uninstall`` gives a file back byte for byte -- from the backup install made -- only when the file is
still exactly what install wrote (same SHA-256): then nothing but ultramax's own change is undone. Any later
edit, by the user, Claude Code or another ultramax command, makes the hashes differ, and uninstall takes out
only ultramax's entries instead. Re-running install over its own unchanged output keeps the first original;
install over a file that already held ultramax's hooks (an older install with no record) has no clean original.

The records live in ``installs.json`` in ULTRAMAX_HOME (private), keyed by the settings file's real path.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultramax.audit import digest
from ultramax.fsutil import atomic_write_json
from ultramax.paths import Paths

__all__ = ["Restore", "forget_install", "record_file", "remember_install", "restorable"]


@dataclass(frozen=True, slots=True)
class Restore:
    """The file as it was before ``ultramax install``: ``data`` None if there was no file."""

    data: bytes | None
    backup: Path | None


def record_file(paths: Paths) -> Path:
    return paths.home / "installs.json"


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _load(paths: Paths) -> dict[str, Any]:
    try:
        data = json.loads(record_file(paths).read_bytes())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _save(paths: Paths, files: dict[str, Any]) -> None:
    # a record that cannot be written costs only the exact restore: uninstall then removes entries instead
    with contextlib.suppress(OSError):
        paths.ensure_home()
        atomic_write_json(record_file(paths), {"version": 1, "files": files}, mode=0o600)


def remember_install(
    paths: Paths, path: Path, *, before: bytes | None, backup: Path | None, held_ultramax: bool, written: bytes
) -> None:
    """Record that install turned ``before`` (None: no file; ``backup`` holds it) into ``written``."""
    files = _load(paths)
    prior = files.get(_key(path))
    if isinstance(prior, dict) and before is not None and prior.get("written_sha256") == digest(before):
        original = prior.get("original")  # install over its own unchanged output: the first original stands
    elif before is None:
        original = {"backup": None, "sha256": None}
    elif backup is not None and not held_ultramax:
        original = {"backup": str(backup), "sha256": digest(before)}
    else:
        original = None  # ultramax's hooks were in the file already: no version of it without them is known
    files[_key(path)] = {"written_sha256": digest(written), "original": original}
    _save(paths, files)


def forget_install(paths: Paths, path: Path) -> None:
    files = _load(paths)
    if files.pop(_key(path), None) is not None:
        _save(paths, files)


def restorable(paths: Paths, path: Path, current: bytes | None) -> tuple[Restore | None, str]:
    """The file before install if it may be given back as it was; else None and why not (for the user)."""
    record = _load(paths).get(_key(path))
    if not isinstance(record, dict):
        return None, "ultramax has no record of installing into it"
    if current is None or record.get("written_sha256") != digest(current):
        return None, "it changed since `ultramax install` wrote it"
    original = record.get("original")
    if not isinstance(original, dict):
        return None, "it already held ultramax hooks (an earlier install's) when `ultramax install` last wrote it"
    if original.get("backup") is None:
        return Restore(None, None), ""
    backup = Path(str(original["backup"]))
    try:
        data = backup.read_bytes()
    except OSError:
        return None, f"its backup {backup} is gone"
    if digest(data) != original.get("sha256"):
        return None, f"its backup {backup} has changed"
    return Restore(data, backup), ""
