"""Memory projects: one a working directory (or a name given), each with its own blocks and passages.

A project's path is registered redacted, and a new project is named after the redacted folder name: a secret can
be a folder name (``project_for_dir``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ultramax.memory.database import SQLiteDatabase
from ultramax.memory.models import MemoryStoreError, Project
from ultramax.redact import redact_path

__all__ = ["ProjectStore", "project_name_for", "valid_project_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")


def valid_project_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def project_name_for(path: Path) -> str:
    """A project name from a directory: its base name, reduced to the characters a name may hold."""
    name = re.sub(r"[^A-Za-z0-9._\-]+", "-", path.name).strip("-.") or "project"
    return name[:100]


class ProjectStore(SQLiteDatabase):
    """The projects table, and the name -> project lookup every other part of the store goes through."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._project_cache: dict[str, Project] = {}
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    def _rolled_back(self) -> None:
        self._project_cache.clear()  # a project made in the rolled-back transaction no longer exists

    def _seed(self, conn: sqlite3.Connection, project_id: int, now: float) -> None:
        """Write a new project's first rows in the other tables, in the transaction that creates it: none here;
        the store's core blocks part adds the seed's blocks."""

    def _project_row(self, row: Sequence[Any]) -> Project:
        return Project(id=row[0], name=row[1], path=row[2], created_at=row[3], capture=bool(row[4]))

    def get_project(self, name: str) -> Project | None:
        row = (
            self._conn()
            .execute("SELECT id, name, path, created_at, capture FROM projects WHERE name = ?", (name,))
            .fetchone()
        )
        return self._project_row(row) if row else None

    def _require(self, name: str) -> Project:
        cached = self._project_cache.get(name)
        if cached is not None:
            return cached
        project = self.get_project(name)
        if project is None:
            raise MemoryStoreError(f"no memory project named {name!r}; see `ultramax list-projects`")
        self._project_cache[name] = project
        return project

    def ensure_project(self, name: str, path: str | None = None, *, created_at: float | None = None) -> Project:
        """The project called ``name``, created (with the seed's core blocks) if it does not exist."""
        if not valid_project_name(name):
            raise MemoryStoreError(
                f"invalid project name {name!r}: use letters, digits, '.', '_' or '-' (up to 128, no leading symbol)"
            )
        existing = self.get_project(name)
        if existing is not None:
            return existing
        now = time.time() if created_at is None else created_at
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone() is None:
                cur = conn.execute(
                    "INSERT INTO projects (name, path, created_at, capture) VALUES (?, ?, ?, 1)", (name, path, now)
                )
                self._seed(conn, int(cur.lastrowid or 0), now)
        project = self.get_project(name)
        assert project is not None
        return project

    def project_of_dir(self, directory: Path) -> Project | None:
        """The project registered for a working directory, if any (never creates one)."""
        row = (
            self._conn()
            .execute("SELECT id, name, path, created_at, capture FROM projects WHERE path = ?", (str(directory),))
            .fetchone()
        )
        return self._project_row(row) if row else None

    def project_for_dir(self, directory: Path, name: str | None = None) -> Project:
        """The project of a working directory: an explicit ``name``, else the one registered for the path,
        else a new one named after the directory (suffixed if that name is taken by another path).

        The path is registered redacted, and the name made from the redacted folder name: a secret can be a
        folder name. A project registered under the unredacted path (before this was so) is moved to the
        redacted one when it is next used."""
        if name:
            return self.ensure_project(name)
        key = redact_path(str(directory))
        row = self._project_at(key)
        if row is None and key != str(directory):
            row = self._project_at(str(directory))
            if row is not None:
                with self._write() as conn:
                    conn.execute("UPDATE projects SET path = ? WHERE id = ?", (key, row[0]))
                self._project_cache.pop(row[1], None)
                row = self._project_at(key)
        if row:
            return self._project_row(row)
        base = project_name_for(Path(key))
        for n in range(1, 1000):
            candidate = base if n == 1 else f"{base}-{n}"
            existing = self.get_project(candidate)
            if existing is None:
                try:
                    return self.ensure_project(candidate, key)
                except MemoryStoreError as exc:  # another process registered the path at the same moment
                    if isinstance(exc.__cause__, sqlite3.IntegrityError):
                        return self.project_for_dir(directory)
                    raise
            if existing.path in (None, key):
                if existing.path is None:
                    with self._write() as conn:
                        conn.execute("UPDATE projects SET path = ? WHERE id = ? AND path IS NULL", (key, existing.id))
                return self.get_project(candidate) or existing
        raise MemoryStoreError(f"cannot name a memory project for {directory}")

    def _project_at(self, path: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = (
            self._conn()
            .execute("SELECT id, name, path, created_at, capture FROM projects WHERE path = ?", (path,))
            .fetchone()
        )
        return row

    def list_projects(self) -> list[Project]:
        rows = self._conn().execute("SELECT id, name, path, created_at, capture FROM projects ORDER BY name")
        return [self._project_row(r) for r in rows]

    def set_capture(self, name: str, enabled: bool) -> Project:
        project = self._require(name)
        with self._write() as conn:
            conn.execute("UPDATE projects SET capture = ? WHERE id = ?", (int(enabled), project.id))
        self._project_cache.pop(name, None)
        return self._require(name)
