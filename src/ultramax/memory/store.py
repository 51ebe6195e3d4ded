"""The memory store: a ``Store`` protocol and its embedded implementation on one SQLite file.

SQLite in WAL mode (a committed transaction survives ``kill -9`` of any process), FTS5 for keywords, and
embeddings as float32 BLOBs next to the text; the vector index itself lives in memory (``vectors.py``) and
is rebuilt from these BLOBs. Standard library only: the hook fallback and the CLI use it without numpy.

``SQLiteStore`` is assembled here from one part a concept, each on the connection layer of ``database.py``
(every process may open the file; every write is one short ``BEGIN IMMEDIATE`` transaction): ``projects``,
``blocks`` (core blocks and their versions), ``passages`` (archival passages and their embeddings),
``keyword_search`` (bm25) and ``session_state``. Every public method it ends up with raises SQLite's errors
as ``database_problem``. A PostgreSQL + pgvector backend implements the same protocol without touching callers.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ultramax.memory.blocks import BlockStore
from ultramax.memory.database import database_problem
from ultramax.memory.keyword_search import KeywordSearch
from ultramax.memory.models import Block, BlockVersion, NewPassage, Passage, Project
from ultramax.memory.passages import PassageStore, VectorRow
from ultramax.memory.session_state import SessionState
from ultramax.paths import Paths

__all__ = ["SQLiteStore", "Store", "database_path", "database_problem"]


def database_path(paths: Paths) -> Path:
    return paths.home / "memory.db"


class Store(Protocol):
    """What callers need from a memory backend."""

    # projects
    def ensure_project(self, name: str, path: str | None = None, *, created_at: float | None = None) -> Project: ...
    def project_of_dir(self, directory: Path) -> Project | None: ...
    def project_for_dir(self, directory: Path, name: str | None = None) -> Project: ...
    def get_project(self, name: str) -> Project | None: ...
    def list_projects(self) -> list[Project]: ...
    def set_capture(self, name: str, enabled: bool) -> Project: ...
    # core blocks
    def blocks(self, project: str) -> list[Block]: ...
    def block(self, project: str, label: str) -> Block: ...
    def write_block(
        self,
        project: str,
        label: str,
        value: str,
        *,
        source: str,
        limit: int | None = None,
        description: str | None = None,
    ) -> Block: ...
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
    ) -> Block: ...
    def block_history(self, project: str, label: str) -> list[BlockVersion]: ...
    def undo_block(self, project: str, label: str) -> Block: ...
    # passages
    def add_passages(self, project: str, passages: Sequence[NewPassage]) -> list[int]: ...
    def has_passage(self, project: str, text: str) -> bool: ...
    def get_passages(self, ids: Sequence[int]) -> dict[int, Passage]: ...
    def forget(self, passage_id: int) -> bool: ...
    def recent(
        self,
        project: str,
        *,
        kinds: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 20,
    ) -> list[Passage]: ...
    def keyword_search(
        self,
        project_ids: Sequence[int] | None,
        match: str,
        limit: int,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> list[tuple[int, float]]: ...
    def count(self, project: str | None = None) -> int: ...
    def counts_by_project(self) -> dict[str, int]: ...
    def iter_passages(self, project: str | None = None) -> Iterator[Passage]: ...
    def session_passage_ids(self, project_id: int, session_id: str) -> list[int]: ...
    def keyword_within(self, match: str, ids: Sequence[int], limit: int) -> list[tuple[int, float]]: ...
    def created_at_of(self, ids: Sequence[int]) -> dict[int, float]: ...
    def session_neighbours(self, ids: Sequence[int]) -> list[tuple[int, int | None, int | None, str]]: ...
    # capture state, change detection, lifecycle
    def get_state(self, project_id: int, session_id: str, key: str) -> Any: ...
    def set_state(self, project_id: int, session_id: str, key: str, value: Any) -> None: ...
    def change_token(self) -> tuple[int, int]: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def integrity_check(self) -> list[str]: ...
    def close(self) -> None: ...
    # embeddings
    def unembedded(self, limit: int) -> list[tuple[int, int, float, str]]: ...
    def set_embeddings(self, rows: Sequence[tuple[int, bytes]], model: str) -> None: ...
    def vectors_since(self, seq: int) -> Iterator[VectorRow]: ...


class SQLiteStore(BlockStore, PassageStore, KeywordSearch, SessionState):
    """The embedded store. Thread-safe: one connection per thread, writes serialised by SQLite's lock.

    Its parts share one ``__init__`` chain (each sets up its own state and passes the path on) and the
    connection layer; ``ProjectStore`` under ``BlockStore`` and ``PassageStore`` resolves project names."""

    @classmethod
    def open(cls, paths: Paths) -> SQLiteStore:
        paths.ensure_home()
        return cls(database_path(paths))


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    """Raise SQLite's errors from a public store method as ``database_problem`` (the seam to sqlite3)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: SQLiteStore, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise database_problem(self.path, exc) from exc

        return generator

    @functools.wraps(method)
    def call(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_problem(self.path, exc) from exc

    return call


for _name in sorted({name for cls in SQLiteStore.__mro__ for name in vars(cls)}):
    _member = inspect.getattr_static(SQLiteStore, _name)  # the method in force, from whichever part defines it
    if not _name.startswith("_") and inspect.isfunction(_member) and _name not in ("integrity_check", "close"):
        setattr(SQLiteStore, _name, _translating(_member))
