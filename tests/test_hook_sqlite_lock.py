"""A SQLite lock held by another process cannot make the in-process hook overrun its time.

SQLite waits for a lock inside C (its busy timeout, up to 10 s), where the fallback's SIGALRM cannot cut in:
the signal's Python handler runs only once the wait is over. So every SQLite wait on the fallback's path takes
its length from the time the hook has left, the store gives up in time, and the event is decided without it
-- a stage failure like any other, audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import UltramaxEnv, hook_payload, run_hook_process
from ultramax.audit import verify
from ultramax.memory.store import SQLiteStore, database_path

# Python start-up and ultramax's imports come on top of the budget; the old overrun was 10 s.
MARGIN_S = 3.0

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another process holds the database's write lock (a real ``BEGIN IMMEDIATE`` on the real file)."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline() == "locked\n"  # EOF, were the holder to fail
            yield
        finally:
            proc.stdin.close()
            assert proc.wait(timeout=20) == 0


def audit_records(umx: UltramaxEnv) -> list[dict[str, Any]]:
    lines = umx.paths.audit_log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_memory_database_locked_by_another_process_cannot_make_the_in_process_hook_overrun(
    umx: UltramaxEnv,
) -> None:
    project = umx.project("acme-api")
    store = SQLiteStore.open(umx.paths)  # a user whose memory already exists, project and all
    store.project_for_dir(project)
    store.close()
    payload = hook_payload("UserPromptSubmit", session_id="locked-out", cwd=str(project))

    with write_lock_held(database_path(umx.paths)):
        run = run_hook_process("UserPromptSubmit", payload, timeout_ms=1000, project_dir=project)

    assert run.elapsed < 1.0 + MARGIN_S, f"the hook took {run.elapsed:.1f} s"
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr
    [record] = audit_records(umx)
    assert (record["session"], record["event"], record["decision"]) == ("locked-out", "UserPromptSubmit", "continue")
    assert record["fallback"].startswith("FileNotFoundError")  # no daemon: no socket at all
    assert "memory_sync:error" in record["stages"], record
    assert verify(umx.paths.audit_log).ok
