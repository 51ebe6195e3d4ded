"""The audit log: a hash chain that names every kind of tampering, safe across threads and processes."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import ultramax.audit as audit_module
from tests.conftest import UltramaxEnv
from ultramax.audit import (
    GENESIS,
    AuditLog,
    canonical_json,
    deferred_records,
    digest,
    policy_record,
    spool_dir,
    verify,
)
from ultramax.cli.main import main
from ultramax.errors import AuditError


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


def fill(path: Path, n: int) -> list[dict[str, Any]]:
    log = AuditLog(path)
    return [log.append({"event": "PreToolUse", "session": f"s{i}", "decision": "allow"}) for i in range(1, n + 1)]


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_records_chain_from_genesis_and_the_log_verifies(log_path: Path) -> None:
    records = fill(log_path, 5)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    body = {k: v for k, v in records[2].items() if k != "hash"}
    assert records[2]["hash"] == digest(canonical_json(body))
    report = verify(log_path)
    assert report.ok, report.problems
    assert (report.records, report.last_seq) == (5, 5)
    assert log_path.with_suffix(".head").read_text(encoding="utf-8").split() == ["5", records[-1]["hash"]]


def test_the_log_and_its_directory_are_private(log_path: Path) -> None:
    fill(log_path, 1)
    assert log_path.stat().st_mode & 0o777 == 0o600
    assert log_path.parent.stat().st_mode & 0o777 == 0o700


def test_an_empty_or_missing_log_verifies(log_path: Path) -> None:
    assert verify(log_path).ok
    log_path.parent.mkdir()
    log_path.touch()
    assert verify(log_path).ok


def test_a_new_writer_continues_the_chain_of_an_existing_log(log_path: Path) -> None:
    fill(log_path, 3)
    record = AuditLog(log_path).append({"event": "Stop"})
    assert record["seq"] == 4
    assert verify(log_path).ok


def test_an_edited_record_is_reported_with_its_line(log_path: Path) -> None:
    fill(log_path, 5)
    lines = lines_of(log_path)
    lines[2] = lines[2].replace('"decision":"allow"', '"decision":"deny"')
    log_path.write_text("".join(lines), encoding="utf-8")
    report = verify(log_path)
    assert not report.ok
    assert report.problems == ["line 3: record seq 3 was edited (its hash does not match)"]


def test_an_edited_record_with_a_recomputed_hash_breaks_the_chain_at_the_next_record(log_path: Path) -> None:
    fill(log_path, 4)
    lines = lines_of(log_path)
    record = json.loads(lines[1])
    record["decision"] = "deny"
    record["hash"] = digest(canonical_json({k: v for k, v in record.items() if k != "hash"}))
    lines[1] = canonical_json(record) + "\n"
    log_path.write_text("".join(lines), encoding="utf-8")
    assert verify(log_path).problems == ["line 3: record seq 3 does not chain to record seq 2"]


def test_a_line_that_is_not_a_record_is_reported(log_path: Path) -> None:
    fill(log_path, 3)
    lines = lines_of(log_path)
    lines[1] = "garbage\n"
    log_path.write_text("".join(lines), encoding="utf-8")
    problems = verify(log_path).problems
    assert "line 2: not a valid audit record (edited or corrupted)" in problems
    assert "record(s) 2 were deleted" in problems


def test_deleted_records_are_named(log_path: Path) -> None:
    fill(log_path, 7)
    lines = lines_of(log_path)
    del lines[4]
    del lines[1:3]
    log_path.write_text("".join(lines), encoding="utf-8")
    assert verify(log_path).problems == ["record(s) 2-3, 5 were deleted"]


def test_reordered_records_are_named(log_path: Path) -> None:
    fill(log_path, 5)
    lines = lines_of(log_path)
    lines[1], lines[3] = lines[3], lines[1]
    log_path.write_text("".join(lines), encoding="utf-8")
    problems = verify(log_path).problems
    assert problems
    assert all("reordered" in p for p in problems)
    assert "line 3: record seq 3 comes after seq 4 (reordered)" in problems


def test_records_truncated_from_the_end_are_named(log_path: Path) -> None:
    fill(log_path, 6)
    lines = lines_of(log_path)
    log_path.write_text("".join(lines[:4]), encoding="utf-8")
    assert verify(log_path).problems == [
        "log ends at seq 4 but 6 records were written: record(s) 5-6 were truncated from the end"
    ]


def test_a_replaced_last_record_is_named(log_path: Path) -> None:
    records = fill(log_path, 3)
    lines = lines_of(log_path)
    forged = dict(records[-1], decision="deny")
    forged["hash"] = digest(canonical_json({k: v for k, v in forged.items() if k != "hash"}))
    lines[-1] = canonical_json(forged) + "\n"
    log_path.write_text("".join(lines), encoding="utf-8")
    assert verify(log_path).problems == ["the last record (seq 3) was replaced"]


def test_a_torn_last_line_is_reported_as_incomplete(log_path: Path) -> None:
    fill(log_path, 3)
    data = log_path.read_bytes()
    log_path.write_bytes(data + b'{"seq":4,"ts":"2026-')
    assert verify(log_path).problems == ["line 4: incomplete record at the end of the log (truncated mid-record)"]


def test_the_next_append_cuts_a_torn_last_line_and_the_chain_verifies_again(log_path: Path) -> None:
    fill(log_path, 3)
    with log_path.open("ab") as fh:
        fh.write(b'{"seq":4,"ts":"2026-')  # a crash mid-write: never acknowledged
    record = AuditLog(log_path).append({"event": "Stop"})
    assert record["seq"] == 4
    assert verify(log_path).ok
    assert len(lines_of(log_path)) == 4


def test_a_log_ending_in_a_damaged_record_is_not_appended_to(log_path: Path) -> None:
    fill(log_path, 2)
    with log_path.open("ab") as fh:
        fh.write(b"not json\n")
    with pytest.raises(AuditError, match="ends with a damaged record"):
        AuditLog(log_path).append({"event": "Stop"})


@pytest.mark.parametrize("shared", [True, False], ids=["one-writer", "a-writer-per-thread"])
def test_appends_from_eight_threads_lose_no_record_and_keep_the_chain(log_path: Path, shared: bool) -> None:
    per_thread = 25
    common = AuditLog(log_path)
    start = threading.Barrier(8)

    def work(t: int) -> None:
        log = common if shared else AuditLog(log_path)
        start.wait()
        for i in range(per_thread):
            log.append({"event": "PreToolUse", "session": f"t{t}-{i}"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(work, t) for t in range(8)]:
            future.result(timeout=30)  # re-raises a writer's error here
    report = verify(log_path)
    assert report.ok, report.problems
    sessions = [json.loads(line)["session"] for line in lines_of(log_path)]
    assert sorted(sessions) == sorted(f"t{t}-{i}" for t in range(8) for i in range(per_thread))


_WRITER = """
import sys
from pathlib import Path
from ultramax.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
sys.stdin.read()  # start together
for i in range(int(sys.argv[3])):
    log.append({"event": "PreToolUse", "session": f"{sys.argv[2]}-{i}"})
"""


def test_appends_from_four_processes_lose_no_record_and_keep_the_chain(log_path: Path) -> None:
    per_process = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(log_path), f"p{n}", str(per_process)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    outputs = [proc.communicate(b"go", timeout=60) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    report = verify(log_path)
    assert report.ok, report.problems
    assert report.records == 4 * per_process
    sessions = sorted(json.loads(line)["session"] for line in lines_of(log_path))
    assert sessions == sorted(f"p{n}-{i}" for n in range(4) for i in range(per_process))


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from ultramax.audit import AuditLog
from ultramax.errors import AuditError
path = Path(sys.argv[1])
log = AuditLog(path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG instead of killing us
size = path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, resource.RLIM_INFINITY))
try:
    log.append({"event": "PreToolUse", "summary": "x" * 400})
except AuditError as exc:
    print("AuditError:", exc)
else:
    print("appended")
"""


def test_a_failed_write_raises_audit_error_and_leaves_no_partial_record(log_path: Path) -> None:
    fill(log_path, 3)
    before = log_path.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(log_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("AuditError: cannot append to audit log"), proc.stdout
    assert "File too large" in proc.stdout
    assert log_path.read_bytes() == before, "the partly written record was rolled back"
    assert verify(log_path).ok
    record = AuditLog(log_path).append({"event": "Stop"})
    assert record["seq"] == 4
    assert verify(log_path).ok


def test_an_unwritable_log_location_is_an_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(AuditError, match="cannot open audit log"):
        AuditLog(blocker / "audit.jsonl").append({"event": "Stop"})


def test_text_with_a_lone_surrogate_is_stored_with_a_replacement_character(log_path: Path) -> None:
    # json.loads('"echo \\udc80"') is a valid Claude Code payload value that UTF-8 cannot encode
    record = AuditLog(log_path).append({"event": "PreToolUse", "summary": json.loads('"echo \\udc80 caf\\u00e9"')})
    assert record["summary"] == "echo \ufffd café"
    assert json.loads(lines_of(log_path)[0])["summary"] == "echo \ufffd café"
    assert verify(log_path).ok


def test_a_sequence_number_edited_to_a_huge_value_is_reported_at_once(log_path: Path) -> None:
    fill(log_path, 3)
    lines = lines_of(log_path)
    lines[1] = lines[1].replace('"seq":2,', '"seq":20000000000,', 1)
    log_path.write_text("".join(lines), encoding="utf-8")
    log_path.with_suffix(".head").write_text("90000000000 " + "0" * 64 + "\n", encoding="utf-8")
    problems = verify(log_path).problems
    assert "line 2: record seq 20000000000 was edited (its hash does not match)" in problems
    assert "record(s) 2, 4-19999999999 were deleted" in problems
    assert any(p.endswith("record(s) 20000000001-90000000000 were truncated from the end") for p in problems)


def test_the_cli_says_when_there_is_nothing_to_tail_and_counts_one_record_as_one(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "tail", "-n", "1"]) == 0
    assert capsys.readouterr().out.startswith("no audit records yet (")
    AuditLog(umx.paths.audit_log).append({"event": "PreToolUse", "session": "s1", "decision": "deny"})
    assert main(["audit", "tail", "-n", "1"]) == 0
    assert "PreToolUse" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("audit chain verified: 1 record, last seq 1")


@pytest.mark.parametrize("n", ["0", "-3"])
def test_tailing_fewer_than_one_record_is_refused_rather_than_showing_one(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], n: str
) -> None:
    AuditLog(umx.paths.audit_log).append({"event": "PreToolUse", "session": "s1", "decision": "deny"})
    with pytest.raises(SystemExit) as exited:
        main(["audit", "tail", "-n", n])
    out = capsys.readouterr()
    assert exited.value.code == 2 and out.out == ""
    assert f"argument -n: must be 1 or more, not {n}" in out.err


@pytest.mark.parametrize(
    ("argv", "extra", "usage"),
    [
        (
            ["audit", "verify", "--file", "copy.jsonl"],
            "--file copy.jsonl",
            "usage: ultramax audit verify [-h] [--json]",
        ),
        (["mcp", "import", "pools.json"], "pools.json", "usage: ultramax mcp import [-h]"),
    ],
)
def test_an_argument_a_command_does_not_take_is_reported_with_that_commands_usage(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], argv: list[str], extra: str, usage: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    command = usage.removeprefix("usage: ").split(" [")[0]
    assert exited.value.code == 2
    assert err.startswith(usage) and f"{command}: error: unrecognized arguments: {extra}\n" in err


def test_a_write_interrupted_by_a_signal_leaves_no_partial_record(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(log_path, 2)
    before = log_path.read_bytes()

    def half_then_interrupted(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt  # what a signal handler raises between two writes (the hook's deadline, ^C)

    with monkeypatch.context() as m:
        m.setattr(audit_module, "_write_all", half_then_interrupted)
        with pytest.raises(KeyboardInterrupt):
            AuditLog(log_path).append({"event": "PreToolUse", "summary": "x" * 400})
    assert log_path.read_bytes() == before
    assert verify(log_path).ok
    assert AuditLog(log_path).append({"event": "Stop"})["seq"] == 3


@contextlib.contextmanager
def lock_held(path: Path) -> Iterator[None]:
    """Another process's writer, stopped while it holds the log's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def test_a_record_that_cannot_wait_for_the_lock_is_deferred_and_chained_by_the_next_append(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.append({"event": "SessionStart"})
    with lock_held(log_path):
        spooled = log.append_or_defer({"event": "PreToolUse", "decision": "deny"}, wait=0.05)
        assert isinstance(spooled, Path) and spooled.parent == spool_dir(log_path)
        assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
        assert deferred_records(log_path) == 1 and len(lines_of(log_path)) == 1
    after = AuditLog(log_path).append({"event": "Stop"})  # any writer, any process
    records = [json.loads(line) for line in lines_of(log_path)]
    assert [(r["seq"], r["event"]) for r in records] == [(1, "SessionStart"), (2, "PreToolUse"), (3, "Stop")]
    assert records[1]["decision"] == "deny" and records[1]["decided_at"] <= records[1]["ts"]
    assert after["seq"] == 3 and deferred_records(log_path) == 0
    assert verify(log_path).ok


def test_a_writer_killed_after_chaining_a_deferred_record_never_gets_it_chained_twice(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(log_path)
    log.append({"event": "SessionStart"})
    with lock_held(log_path):
        spooled = log.append_or_defer({"event": "PreToolUse", "decision": "deny"}, wait=0.05)
    assert isinstance(spooled, Path)
    real_unlink = Path.unlink

    def killed_before_removing_the_spool_file(self: Path, missing_ok: bool = False) -> None:
        if self == spooled:
            raise KeyboardInterrupt  # the process dies here: the record is in the log, its spool file is not gone
        real_unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", killed_before_removing_the_spool_file)
        with pytest.raises(KeyboardInterrupt):
            AuditLog(log_path).append({"event": "Stop"})
    assert deferred_records(log_path) == 1  # left behind by the killed writer
    AuditLog(log_path).append({"event": "Stop"})  # the next writer, another process
    records = [json.loads(line) for line in lines_of(log_path)]
    assert [r["event"] for r in records] == ["SessionStart", "PreToolUse", "Stop"]
    assert records[1]["spooled_as"] == spooled.stem
    assert deferred_records(log_path) == 0
    assert verify(log_path).ok


def test_a_record_that_gets_the_lock_in_time_is_chained_at_once(log_path: Path) -> None:
    record = AuditLog(log_path).append_or_defer({"event": "PreToolUse"}, wait=0.05)
    assert isinstance(record, dict) and record["seq"] == 1
    assert deferred_records(log_path) == 0


def test_a_damaged_or_forged_spool_file_never_breaks_the_chain(log_path: Path) -> None:
    fill(log_path, 1)
    spool = spool_dir(log_path)
    spool.mkdir()
    (spool / "00000000000000000001-1-aaaa.json").write_text("{not json", encoding="utf-8")
    (spool / "00000000000000000002-1-bbbb.json").write_text(
        json.dumps({"event": "PreToolUse", "seq": 99, "prev": GENESIS, "hash": "0"}), encoding="utf-8"
    )
    AuditLog(log_path).append({"event": "Stop"})
    assert [json.loads(line)["seq"] for line in lines_of(log_path)] == [1, 2, 3]  # the log sets its own fields
    assert verify(log_path).ok
    assert [p.name for p in spool.iterdir()] == ["00000000000000000001-1-aaaa.damaged"]  # kept for a human


def test_audit_verify_says_how_many_records_wait_to_be_chained(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(umx.paths.audit_log, umx.paths.audit_head)
    log.append({"event": "Stop"})
    with lock_held(umx.paths.audit_log):
        log.append_or_defer({"event": "PreToolUse"}, wait=0.05)
    assert main(["audit", "verify"]) == 0
    assert "1 record deferred, to be chained by the next append" in capsys.readouterr().out
    assert main(["audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deferred"] == 1


def test_a_failure_policy_record_names_the_session_and_tool_of_input_that_is_json() -> None:
    raw = json.dumps({"session_id": "s-1", "tool_name": "Bash", "tool_input": {"command": "ls"}}).encode()
    entry = policy_record("PreToolUse", "continue", "fallback", "failure_policy.timeout", "late", raw=raw)
    assert (entry["session"], entry["tool"]) == ("s-1", "Bash")
    nested = b"[" * 100_000 + b"]" * 100_000
    for unjudgeable in (b"{not json", b"\xff\xfe", b"[1, 2]", nested):
        entry = policy_record("PreToolUse", "continue", "runtime", "failure_policy.input", "bad", raw=unjudgeable)
        assert "session" not in entry and entry["input_sha256"] == digest(unjudgeable)


@pytest.mark.parametrize("folder_in_place_of", ["audit.jsonl", "audit.head"])
def test_an_audit_file_that_cannot_be_read_is_named_by_verify_and_tail_and_reported_by_status(
    umx: UltramaxEnv, folder_in_place_of: str, capsys: pytest.CaptureFixture[str]
) -> None:
    AuditLog(umx.paths.audit_log).append({"event": "PreToolUse", "decision": "deny"})
    blocked = umx.paths.home / folder_in_place_of
    blocked.unlink()
    blocked.mkdir()  # a folder where the file was: reading it fails with EISDIR
    what = "the audit log" if folder_in_place_of == "audit.jsonl" else "the audit log's head"
    assert main(["audit", "verify"]) == 1
    assert f"cannot read {what} {blocked}: Is a directory" in capsys.readouterr().err
    if folder_in_place_of == "audit.jsonl":
        assert main(["audit", "tail"]) == 1
        assert f"cannot read the audit log {blocked}: Is a directory" in capsys.readouterr().err
    assert main(["status"]) == 0
    audit = json.loads(capsys.readouterr().out)["audit"]
    assert audit["verified"] is False and "Is a directory" in audit["error"]
