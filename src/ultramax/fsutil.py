"""Small file-system helpers shared by every writer of user files."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "disk_is_full",
    "private_dir",
]


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing folder above it readable by the user alone (0700).

    ``Path.mkdir(parents=True, mode=...)`` gives the mode to the last folder only; the ones it creates above
    it get the umask's default (usually 0755), which would leave ``~/.claude/ultramax`` world-readable when a
    deeper folder such as its ``cache`` happens to be made first. Folders that already exist keep their mode.
    """
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: keep what it chose
            continue
    return path


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` in one rename so a crash or a full disk never leaves it half written.

    The new file keeps the old file's permissions unless ``mode`` is given.
    """
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """``atomic_write_text`` for bytes written exactly as given (a file restored from its backup)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, data: Any, *, mode: int | None = None) -> None:
    """Write ``data`` as indented JSON atomically (see ``atomic_write_text``)."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=mode)


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o600) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` in one rename when the block ends -- for output too large to hold
    as one string. If the block fails (a full disk, an error), the file is removed and ``path`` is untouched.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def disk_is_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has (almost) no space or no inodes left."""
    try:
        st = os.statvfs(path.parent if not path.is_dir() else path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 512 * 1024 or (st.f_files > 0 and st.f_favail == 0)
