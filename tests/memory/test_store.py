"""The embedded store: migrations, projects, core blocks with versions and limits, passages with dedup."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ultramax.memory import store as store_module
from ultramax.memory.fts import fts_query, identifier_terms
from ultramax.memory.migrations import MIGRATIONS, _statements, applied_migrations, migrate
from ultramax.memory.models import DEFAULT_BLOCKS, BlockLimitError, MemoryStoreError, NewPassage
from ultramax.memory.store import SQLiteStore, Store


def test_a_blank_database_is_migrated_to_the_latest_schema_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "blank.db", isolation_level=None)
    applied = migrate(conn)
    assert applied == [name for name, _ in MIGRATIONS]
    assert applied_migrations(conn) == applied
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
    assert {"projects", "blocks", "block_versions", "passages", "passages_fts", "capture_state"} <= tables
    assert migrate(conn) == [], "a second run applies nothing"


def test_a_database_written_by_a_newer_ultramax_is_refused_not_guessed_at(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "newer.db", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_from_the_future', 0)")
    with pytest.raises(MemoryStoreError, match="newer ultramax"):
        migrate(conn)


def test_the_store_runs_in_wal_mode_and_passes_its_integrity_check(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == []


def test_a_new_project_gets_the_seeds_five_core_blocks(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    blocks = store.blocks("acme")
    assert [(b.label, b.limit) for b in blocks] == [(s.label, s.limit) for s in DEFAULT_BLOCKS]
    assert [b.label for b in blocks] == ["human", "persona", "project_context", "learnings", "sleeptime_notes"]


def test_project_names_are_validated(store: SQLiteStore) -> None:
    with pytest.raises(MemoryStoreError, match="invalid project name"):
        store.ensure_project("../etc")


def test_a_project_name_or_block_label_with_a_trailing_newline_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(MemoryStoreError, match="invalid project name"):
        store.ensure_project("acme\n")
    store.ensure_project("acme")
    with pytest.raises(MemoryStoreError, match="invalid block label"):
        store.write_block("acme", "notes\n", "x", source="test")


def test_a_directory_maps_to_one_project_and_a_second_directory_with_the_same_name_gets_its_own(
    store: SQLiteStore, tmp_path: Path
) -> None:
    one = store.project_for_dir(tmp_path / "a" / "api")
    again = store.project_for_dir(tmp_path / "a" / "api")
    other = store.project_for_dir(tmp_path / "b" / "api")
    assert one.id == again.id and one.name == "api"
    assert other.name == "api-2"


GH_TOKEN = "ghp_" + "Xv7Lq2Nw9Rt4Ys6Kp3Mz8Bc5Df1Gh0Jk2Lm4"  # assembled: no scanner mistakes this file for a leak


def test_a_project_folder_named_after_a_secret_is_registered_with_a_redacted_path_and_name(
    store: SQLiteStore, tmp_path: Path
) -> None:
    folder = tmp_path / "cache" / GH_TOKEN
    project = store.project_for_dir(folder)
    assert GH_TOKEN not in project.name and GH_TOKEN not in str(project.path)
    assert project.path == f"{tmp_path}/cache/[REDACTED:github-token]"
    assert store.project_for_dir(folder).id == project.id  # the same folder finds the same project


def test_a_project_registered_under_its_unredacted_path_is_moved_to_the_redacted_one_when_next_used(
    store: SQLiteStore, tmp_path: Path
) -> None:
    folder = tmp_path / GH_TOKEN
    old = store.ensure_project("legacy", str(folder))  # as an ultramax that stored paths as they were did
    found = store.project_for_dir(folder)
    assert found.id == old.id and found.name == "legacy"
    assert [p.path for p in store.list_projects()] == [f"{tmp_path}/[REDACTED:github-token]"]


def test_every_block_change_is_a_version_that_can_be_diffed_and_undone_step_by_step(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    store.write_block("acme", "project_context", "FastAPI service", source="test")
    store.write_block("acme", "project_context", "FastAPI service on port 8000", source="test")
    history = store.block_history("acme", "project_context")
    assert [v.version for v in history] == [1, 2, 3]
    assert [v.parent for v in history] == [None, 1, 2]
    undone = store.undo_block("acme", "project_context")
    assert undone.value == "FastAPI service" and undone.version == 4
    undone = store.undo_block("acme", "project_context")
    assert undone.value == "" and undone.version == 5
    with pytest.raises(MemoryStoreError, match="no earlier version"):
        store.undo_block("acme", "project_context")


def test_an_undo_that_an_edit_from_another_process_overtakes_undoes_that_edit_not_a_stale_head(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ensure_project("acme")
    store.write_block("acme", "project_context", "port 8000", source="test")
    real_write = store._write
    other_process = SQLiteStore(store.path)

    @contextlib.contextmanager
    def overtaken_before_the_lock() -> Iterator[sqlite3.Connection]:
        other_process.write_block("acme", "project_context", "port 9000", source="other")  # commits first
        with real_write() as conn:
            yield conn

    monkeypatch.setattr(store, "_write", overtaken_before_the_lock)
    undone = store.undo_block("acme", "project_context")
    monkeypatch.undo()
    other_process.close()
    assert (undone.value, undone.version) == ("port 8000", 4)  # the undo of v3 (9000), made as v4
    assert [(v.version, v.parent) for v in store.block_history("acme", "project_context")][-2:] == [(3, 2), (4, 1)]


def test_a_block_write_over_the_limit_fails_and_writes_nothing(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    with pytest.raises(BlockLimitError, match="limit is 5,000"):
        store.write_block("acme", "learnings", "x" * 5001, source="test")
    block = store.block("acme", "learnings")
    assert block.value == "" and block.version == 1


def test_the_limit_holds_even_for_sql_that_bypasses_the_api(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE blocks SET value = ? WHERE label = 'human'", ("y" * 5001,))


def test_custom_blocks_are_created_with_their_own_limit(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    block = store.write_block("acme", "runbook", "restart with make restart", source="test", limit=100)
    assert (block.label, block.limit, block.version) == ("runbook", 100, 1)
    with pytest.raises(BlockLimitError):
        store.write_block("acme", "runbook", "z" * 101, source="test")


@pytest.mark.parametrize("limit", [0, -5])
def test_a_block_limit_below_one_character_is_refused_not_ignored(store: SQLiteStore, limit: int) -> None:
    store.ensure_project("acme")
    with pytest.raises(MemoryStoreError, match=f"invalid limit {limit} for block 'human'"):
        store.write_block("acme", "human", "", source="test", limit=limit)
    with pytest.raises(MemoryStoreError, match=f"invalid limit {limit} for block 'runbook'"):
        store.write_block("acme", "runbook", "", source="test", limit=limit)
    assert store.block("acme", "human").version == 1


def test_the_same_text_twice_is_stored_once_and_counted(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    first = store.add_passages("acme", [NewPassage("The billing service listens on port 8123", kind="decision")])
    again = store.add_passages("acme", [NewPassage("the billing  service listens on port 8123", kind="prompt")])
    assert first == again
    (passage,) = store.get_passages(first).values()
    assert passage.seen == 2 and passage.kind == "decision"


def test_a_passage_is_known_by_its_text_with_case_and_spacing_folded(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    store.add_passages("acme", [NewPassage("Billing listens on 8123")])
    assert store.has_passage("acme", "  billing   listens on 8123\n")
    assert not store.has_passage("acme", "billing listens on 8124")


def test_the_writes_of_a_failed_transaction_are_all_undone(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    with pytest.raises(MemoryStoreError, match="stop"), store.transaction():
        store.ensure_project("web")
        store.add_passages("web", [NewPassage("the frontend uses vite")])
        store.write_block("acme", "human", "likes tabs", source="test")
        raise MemoryStoreError("stop")
    assert store.get_project("web") is None and store.count() == 0
    assert store.block("acme", "human").version == 1
    with pytest.raises(MemoryStoreError, match="no memory project named 'web'"):
        store.count("web")  # not answered from a cache that still remembers the undone project


def test_a_write_whose_commit_fails_is_undone_and_the_next_write_is_committed(store: SQLiteStore) -> None:
    project = store.ensure_project("acme")
    with pytest.raises(sqlite3.IntegrityError), store._write() as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")  # the foreign key is checked by COMMIT, which fails
        conn.execute(
            "INSERT INTO capture_state (project_id, session_id, key, value, updated_at) VALUES (999, 's', 'k', '1', 0)"
        )
    store.set_state(project.id, "s", "k", 2)
    other = SQLiteStore(store.path, busy_timeout_ms=200)
    try:
        assert other.get_state(project.id, "s", "k") == 2, "committed, not left in the failed transaction"
        assert other.get_state(999, "s", "k") is None
        other.set_state(project.id, "s", "k", 3)  # the write lock was let go
    finally:
        other.close()


def test_a_write_that_sqlite_rolled_back_itself_reports_its_own_error(store: SQLiteStore) -> None:
    project = store.ensure_project("acme")
    store._conn().execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON capture_state BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"
    )
    with pytest.raises(MemoryStoreError, match="refused"):
        store.set_state(project.id, "s", "k", 1)
    store._conn().execute("DROP TRIGGER refuse")
    store.set_state(project.id, "s", "k", 2)
    assert store.get_state(project.id, "s", "k") == 2


def test_passages_carry_the_seeds_kinds_and_reject_unknown_ones(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    for kind in ("learning", "decision", "pattern", "bug_fix", "file_change", "code_review", "turn"):
        store.add_passages("acme", [NewPassage(f"a {kind} passage", kind=kind)])
    with pytest.raises(MemoryStoreError, match="unknown passage kind"):
        store.add_passages("acme", [NewPassage("x", kind="gossip")])


def test_keyword_search_ranks_by_bm25_within_a_project_and_a_time_range(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    store.ensure_project("other")
    ids = store.add_passages(
        "acme",
        [
            NewPassage("billing service port 8123", created_at=1000.0),
            NewPassage("the auth service talks to billing", created_at=2000.0),
            NewPassage("nothing relevant here", created_at=3000.0),
        ],
    )
    store.add_passages("other", [NewPassage("billing port in another project")])
    acme = store.get_project("acme")
    assert acme is not None
    found = store.keyword_search([acme.id], fts_query("billing port"), 10)
    assert [pid for pid, _ in found] == [ids[0], ids[1]]
    assert [pid for pid, _ in store.keyword_search([acme.id], fts_query("billing"), 10, start=1500.0)] == [ids[1]]


def test_a_project_added_by_another_process_never_lets_a_search_in_another_thread_see_its_passages(
    store: SQLiteStore,
) -> None:
    store.ensure_project("acme")
    [own] = store.add_passages("acme", [NewPassage("the billing port is 8123")])
    acme = store.get_project("acme")
    assert acme is not None
    assert [pid for pid, _ in store.keyword_search([acme.id], fts_query("billing port"), 10)] == [own]
    other_process = SQLiteStore(store.path)
    other_process.ensure_project("other")
    other_process.add_passages("other", [NewPassage("billing port of another client's project")])
    other_process.close()
    found: list[list[int]] = []
    worker = threading.Thread(
        target=lambda: found.append([pid for pid, _ in store.keyword_search([acme.id], fts_query("billing port"), 10)])
    )
    worker.start()
    worker.join(timeout=30)
    assert found == [[own]]


def test_an_identifier_is_found_by_its_words_and_words_joined_by_underscores_by_the_camel_case_name(
    store: SQLiteStore,
) -> None:
    store.ensure_project("acme")
    camel, snake, _ = store.add_passages(
        "acme",
        [
            NewPassage("InvoiceService retries with retryBackoffMs = 250"),
            NewPassage("the payment_gateway timeout is 30 s"),
            NewPassage("an unrelated note about lunch"),
        ],
    )
    assert [pid for pid, _ in store.keyword_search(None, fts_query("the invoice service"), 5)] == [camel]
    assert [pid for pid, _ in store.keyword_search(None, fts_query("retry backoff"), 5)] == [camel]
    assert [pid for pid, _ in store.keyword_search(None, fts_query("PaymentGateway timeout?"), 5)] == [snake]
    assert store.integrity_check() == []


def test_identifier_terms_split_camel_case_and_join_snake_case_and_leave_prose_alone() -> None:
    assert identifier_terms("restart InvoiceService") == "invoice service"
    assert identifier_terms("the HTTPServer in getHTTPResponse") == "http server get http response"
    assert identifier_terms("set retry_backoff_ms and max-retries") == "retrybackoffms maxretries"
    assert identifier_terms("Plain prose. The API is DOWN again") == ""


def test_a_store_from_before_identifier_terms_is_upgraded_in_place_and_finds_old_passages_by_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, step in MIGRATIONS[:2]:  # the schema an earlier ultramax wrote
        assert isinstance(step, str)
        for statement in _statements(step):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    conn.execute("INSERT INTO projects (name, created_at) VALUES ('acme', 0)")
    conn.execute(
        "INSERT INTO passages (project_id, kind, text, created_at, content_hash, last_seen) "
        "VALUES (1, 'learning', 'the OrderQueue drops messages on restart', 0, 'h1', 0)"
    )
    conn.close()
    store = SQLiteStore(path)
    try:
        assert [pid for pid, _ in store.keyword_search(None, fts_query("order queue"), 5)] == [1]
        assert [pid for pid, _ in store.keyword_search(None, fts_query("orderqueue restart"), 5)] == [1]
        assert store.integrity_check() == []
        assert store.forget(1) and store.keyword_search(None, fts_query("order queue"), 5) == []
    finally:
        store.close()


def test_forgetting_a_passage_removes_it_from_keyword_search(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    (pid,) = store.add_passages("acme", [NewPassage("deploy with make ship")])
    assert store.forget(pid)
    assert store.keyword_search(None, fts_query("deploy ship"), 5) == []
    assert not store.forget(pid)
    assert store.integrity_check() == []


def test_two_store_handles_on_one_file_see_each_others_writes(store: SQLiteStore) -> None:
    other = SQLiteStore(store.path)
    try:
        other.ensure_project("shared")
        other.add_passages("shared", [NewPassage("written by the other process")])
        assert store.count("shared") == 1
    finally:
        other.close()


def test_the_sqlite_store_is_a_store_so_another_backend_can_replace_it(store: SQLiteStore) -> None:
    backend: Store = store  # checked by mypy --strict: every protocol method exists with its signature
    assert backend.list_projects() == []


def test_a_word_in_most_passages_does_not_make_keyword_search_score_every_passage(store: SQLiteStore) -> None:
    store.ensure_project("acme")
    store.add_passages("acme", [NewPassage(f"service note number {i} about caching") for i in range(1200)])
    (rare,) = store.add_passages("acme", [NewPassage("service note about the billing port")])
    found = store.keyword_search(None, fts_query("service billing"), 10)
    assert [pid for pid, _ in found] == [rare], "'service' is in every passage: it was dropped, billing decides"


def test_an_io_error_on_a_full_disk_is_never_called_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "memory.db"
    io_error = sqlite3.OperationalError("disk I/O error")  # what SQLite says when it cannot create the -wal
    assert "damaged" not in str(store_module.database_problem(path, io_error)), "space left: not damage either"
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 1000, 0, 0, 0, 255))  # no block free
    monkeypatch.setattr(os, "statvfs", lambda _: full)
    message = str(store_module.database_problem(path, io_error))
    assert "the disk is full" in message and "move it aside" not in message
    assert "move it aside" in str(store_module.database_problem(path, sqlite3.DatabaseError("file is not a database")))


def test_a_connection_that_cannot_be_set_up_is_closed_and_the_error_says_why(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ultramax.memory import database

    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(database, "switch_to_wal", lambda conn, timeout_ms: "delete")
    errors: list[BaseException] = []

    def first_use_on_a_new_thread() -> None:
        try:
            store.blocks("acme")
        except MemoryStoreError as exc:
            errors.append(exc)

    worker = threading.Thread(target=first_use_on_a_new_thread)
    worker.start()
    worker.join(timeout=30)
    assert len(errors) == 1 and "cannot switch the memory database to WAL" in str(errors[0])
    assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_wal_left_behind_by_a_database_moved_away_is_kept_for_it_not_deleted_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    writer = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from ultramax.memory.models import NewPassage\n"
        "from ultramax.memory.store import SQLiteStore\n"
        "store = SQLiteStore(Path(sys.argv[1]))\n"
        "store.ensure_project('acme')\n"
        "store.add_passages('acme', [NewPassage('the ledger runs on postgres 15')])\n"
        "os._exit(0)  # as a killed daemon: no close, so the committed change is in the -wal only\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, timeout=60)
    wal = tmp_path / "memory.db-wal"
    assert wal.stat().st_size > 0
    path.rename(tmp_path / "memory.db.broken")  # the file alone, as the old advice said

    with pytest.raises(MemoryStoreError, match=f"{path} is missing but {wal} is still there"):
        SQLiteStore(path)
    assert not path.exists() and wal.stat().st_size > 0, "nothing was created, the -wal was not touched"

    wal.rename(tmp_path / "memory.db.broken-wal")  # what the message says to do
    moved = SQLiteStore(tmp_path / "memory.db.broken")
    try:
        assert moved.count("acme") == 1, "the moved database keeps its last change"
    finally:
        moved.close()
    fresh = SQLiteStore(path)
    try:
        assert fresh.list_projects() == []
    finally:
        fresh.close()


def test_the_advice_for_a_damaged_database_moves_its_wal_and_shm_with_it(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    message = str(store_module.database_problem(path, sqlite3.DatabaseError("database disk image is malformed")))
    assert "ultramax daemon stop" in message
    assert f"mv {path}$s {path}.broken$s" in message and "-wal -shm" in message
