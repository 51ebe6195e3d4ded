"""Memory test fixtures: a real SQLite store in the test user's ULTRAMAX_HOME, and services around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import UltramaxEnv
from ultramax.memory.embed import HashEmbedder
from ultramax.memory.service import MemoryService
from ultramax.memory.store import SQLiteStore, database_path


@pytest.fixture
def store(umx: UltramaxEnv) -> Iterator[SQLiteStore]:
    umx.paths.ensure_home()
    s = SQLiteStore(database_path(umx.paths))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def service(umx: UltramaxEnv) -> Iterator[MemoryService]:
    """A service with the deterministic test embedder: for tests that are not about embedding quality."""
    svc = MemoryService(umx.paths, embedder=HashEmbedder())
    try:
        yield svc
    finally:
        svc.close()
