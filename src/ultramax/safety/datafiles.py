"""The safety gate's data files (``safety/data/*.toml``), parsed once and cached as JSON.

Parsing the TOML of the rule packs costs far more than reading the same data as JSON, and the hook's
in-process fallback pays it on every call. The parsed data is cached in ``ULTRAMAX_HOME/cache/`` under a key
made of ultramax's version and every data file's name, size and modification time; any change to a file, a
missing or broken cache, or an unwritable directory simply means parsing the TOML again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ultramax.fsutil import private_dir

__all__ = ["data_files", "load_data"]


def _files() -> list[Any]:
    base = resources.files("ultramax.safety").joinpath("data")
    return sorted((e for e in base.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)


def _key(entries: list[Any]) -> str:
    from ultramax import __version__

    parts = [__version__]
    for entry in entries:
        try:
            st = os.stat(str(entry))
            parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{entry.name}:{hashlib.sha256(entry.read_bytes()).hexdigest()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _cache_dir() -> Path | None:
    try:
        from ultramax.paths import Paths

        return Paths.from_env().home / "cache"
    except (KeyError, OSError, RuntimeError):
        return None


@cache
def data_files() -> dict[str, dict[str, Any]]:
    """Every data file's parsed content, by file name."""
    entries = _files()
    key = _key(entries)
    directory = _cache_dir()
    cached = directory / f"safety-data-{key}.json" if directory else None
    if cached is not None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cached.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("key") == key:
                return dict(data["files"])
    files = {entry.name: tomllib.loads(entry.read_text(encoding="utf-8")) for entry in entries}
    if cached is not None:
        _write(cached, {"key": key, "files": files})
    return files


def _write(path: Path, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, TypeError, ValueError):
        private_dir(path.parent)
        for old in path.parent.glob("safety-data-*.json"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
        fd, tmp = tempfile.mkstemp(prefix=".safety-data-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        Path(tmp).replace(path)


def load_data(name: str) -> dict[str, Any]:
    """One data file's parsed content (``paths.toml``, ``tools.toml``, a rule pack)."""
    return data_files()[name]
