"""Core blocks: a project's always-in-context memory, each block a labelled value within a character limit.

Every change to a block is a new version (``block_versions``), so a block's history can be listed and an edit
undone; the limit is checked here with a helpful message and held by the schema's CHECK constraint as well.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ultramax.memory.models import DEFAULT_BLOCKS, Block, BlockLimitError, BlockVersion, MemoryStoreError
from ultramax.memory.projects import ProjectStore

__all__ = ["BlockStore", "valid_block_label"]

_LABEL = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def valid_block_label(label: str) -> bool:
    return _LABEL.fullmatch(label) is not None


class BlockStore(ProjectStore):
    """The blocks and block_versions tables: a new project's seed blocks, reads, versioned writes, undo."""

    def _seed(self, conn: sqlite3.Connection, project_id: int, now: float) -> None:
        for spec in DEFAULT_BLOCKS:
            self._insert_block(
                conn,
                project_id,
                label=spec.label,
                value=spec.value,
                limit=spec.limit,
                description=spec.description,
                now=now,
            )

    @staticmethod
    def _insert_block(
        conn: sqlite3.Connection,
        project_id: int,
        *,
        label: str,
        value: str,
        limit: int,
        description: str,
        now: float,
    ) -> None:
        cur = conn.execute(
            "INSERT INTO blocks (project_id, label, value, char_limit, description, version, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 1, ?)",
            (project_id, label, value, limit, description, now),
        )
        conn.execute(
            "INSERT INTO block_versions (block_id, version, value, char_limit, created_at, source, parent_version) "
            "VALUES (?, 1, ?, ?, ?, 'create', NULL)",
            (cur.lastrowid, value, limit, now),
        )

    def _block_row(self, project: str, row: Sequence[Any]) -> Block:
        return Block(
            project=project,
            label=row[0],
            value=row[1],
            limit=row[2],
            description=row[3],
            read_only=bool(row[4]),
            version=row[5],
            updated_at=row[6],
        )

    _BLOCK_COLS = "label, value, char_limit, description, read_only, version, updated_at"

    def blocks(self, project: str) -> list[Block]:
        p = self._require(project)
        rows = self._conn().execute(f"SELECT {self._BLOCK_COLS} FROM blocks WHERE project_id = ? ORDER BY id", (p.id,))
        return [self._block_row(project, r) for r in rows]

    def block(self, project: str, label: str) -> Block:
        p = self._require(project)
        row = (
            self._conn()
            .execute(f"SELECT {self._BLOCK_COLS} FROM blocks WHERE project_id = ? AND label = ?", (p.id, label))
            .fetchone()
        )
        if row is None:
            labels = ", ".join(b.label for b in self.blocks(project))
            raise MemoryStoreError(f"project {project!r} has no block {label!r} (blocks: {labels})")
        return self._block_row(project, row)

    def write_block(
        self,
        project: str,
        label: str,
        value: str,
        *,
        source: str,
        limit: int | None = None,
        description: str | None = None,
        create: bool = True,
    ) -> Block:
        """Set a block's value (creating a custom block if needed); every change is a new version.

        Raises BlockLimitError if the value is longer than the block's limit -- nothing is written then.
        """
        if not valid_block_label(label):
            raise MemoryStoreError(f"invalid block label {label!r}: letters, digits, '_' or '-', up to 64")
        if limit is not None and limit < 1:
            raise MemoryStoreError(f"invalid limit {limit} for block {label!r}: give a number of characters, 1 or more")
        p = self._require(project)
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT id, value, char_limit, version, read_only FROM blocks WHERE project_id = ? AND label = ?",
                (p.id, label),
            ).fetchone()
            if row is None:
                if not create:
                    raise MemoryStoreError(f"project {project!r} has no block {label!r}")
                new_limit = 5000 if limit is None else limit
                _check_limit(label, value, new_limit)
                self._insert_block(
                    conn, p.id, label=label, value=value, limit=new_limit, description=description or "", now=now
                )
            else:
                block_id, old, old_limit, version, read_only = row
                if read_only and source != "import":
                    raise MemoryStoreError(f"block {label!r} of {project!r} is read-only")
                new_limit = old_limit if limit is None else limit
                _check_limit(label, value, new_limit)
                if value == old and new_limit == old_limit and description is None:
                    return self.block(project, label)
                conn.execute(
                    "UPDATE blocks SET value = ?, char_limit = ?, description = COALESCE(?, description), "
                    "version = ?, updated_at = ? WHERE id = ?",
                    (value, new_limit, description, version + 1, now, block_id),
                )
                conn.execute(
                    "INSERT INTO block_versions "
                    "(block_id, version, value, char_limit, created_at, source, parent_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (block_id, version + 1, value, new_limit, now, source, version),
                )
        return self.block(project, label)

    def update_block(
        self,
        project: str,
        label: str,
        text: str,
        *,
        mode: str,
        source: str,
        old_text: str | None = None,
        create: bool = True,
        limit: int | None = None,
    ) -> Block:
        """Set (``replace``), add a line to (``append``) or change part of (``edit``: ``old_text`` becomes
        ``text``) a block. The read and the write are one transaction: two appends at once from two threads or
        processes must not both read the old value and lose one line."""
        if mode not in ("replace", "append", "edit"):
            raise MemoryStoreError(f"unknown mode {mode!r}: replace, append or edit")
        with self._write():
            current = ""
            if mode != "replace":
                try:
                    current = self.block(project, label).value
                except MemoryStoreError:
                    if not (create and mode == "append"):
                        raise
            if mode == "append":
                new = f"{current.rstrip()}\n{text}".strip()
            elif mode == "edit":
                if not old_text or old_text not in current:
                    raise MemoryStoreError(f"old_text not found in block {label!r}")
                new = current.replace(old_text, text, 1)
            else:
                new = text
            return self.write_block(project, label, new, source=source, create=create, limit=limit)

    def block_history(self, project: str, label: str) -> list[BlockVersion]:
        p = self._require(project)
        rows = self._conn().execute(
            "SELECT v.version, v.value, v.char_limit, v.created_at, v.source, v.parent_version "
            "FROM block_versions v JOIN blocks b ON b.id = v.block_id "
            "WHERE b.project_id = ? AND b.label = ? ORDER BY v.version",
            (p.id, label),
        )
        versions = [BlockVersion(label, *r) for r in rows]
        if not versions:
            self.block(project, label)  # raises the helpful error
        return versions

    def undo_block(self, project: str, label: str) -> Block:
        """Restore the value the current version replaced (as a new version; repeated undo walks back)."""
        p = self._require(project)
        now = time.time()
        # read under the write lock: an edit committed in between would otherwise be undone from a stale head
        with self._write() as conn:
            history = {v.version: v for v in self.block_history(project, label)}
            current = self.block(project, label)
            head = history[current.version]
            if head.parent is None:
                raise MemoryStoreError(f"block {label!r} of {project!r} has no earlier version to go back to")
            target = history[head.parent]
            block_id = conn.execute(
                "SELECT id FROM blocks WHERE project_id = ? AND label = ?", (p.id, label)
            ).fetchone()[0]
            _check_limit(label, target.value, target.limit)
            conn.execute(
                "UPDATE blocks SET value = ?, char_limit = ?, version = ?, updated_at = ? WHERE id = ?",
                (target.value, target.limit, current.version + 1, now, block_id),
            )
            conn.execute(
                "INSERT INTO block_versions (block_id, version, value, char_limit, created_at, source, parent_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    block_id,
                    current.version + 1,
                    target.value,
                    target.limit,
                    now,
                    f"undo of v{head.version}",
                    target.parent,
                ),
            )
        return self.block(project, label)


def _check_limit(label: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise BlockLimitError(
            f"Edit failed: block {label!r} would hold {len(value):,} characters; its limit is {limit:,}. "
            f"Shorten the value or raise the limit explicitly: `ultramax memory blocks edit {label} --limit N`."
        )
