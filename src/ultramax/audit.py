"""Append-only, hash-chained audit log (JSONL, canonical JSON).

Each record carries ``seq``, the previous record's hash (``prev``) and its own ``hash`` = SHA-256 of its
canonical JSON without ``hash``. A record is written with one ``write()`` under an exclusive ``flock`` --
so the daemon and an in-process hook never interleave -- before the decision it records is returned: once a
decision is out, its record survives any crash of the process. A head file remembers the last ``seq`` and
hash so that ``verify`` also notices records cut off the end. A failed or interrupted write (a full disk, a
signal such as the hook's own deadline) is rolled back to the last whole record: the log is never left with
half a record.

A writer that cannot wait for the lock (the hook's in-process fallback, out of time because a stopped daemon
holds it) defers its record instead (``append_or_defer``): the record is written whole to a file of its own
in the spool folder next to the log, and the next append -- by whichever process -- chains it before its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ultramax.errors import AuditError
from ultramax.fsutil import private_dir

__all__ = [
    "GENESIS",
    "AuditLockBusy",
    "AuditLog",
    "VerifyReport",
    "canonical_json",
    "deferred_records",
    "digest",
    "policy_record",
    "read_records",
    "spool_dir",
    "verify",
]

GENESIS = "0" * 64
_CHAIN_FIELDS = frozenset({"seq", "ts", "prev", "hash", "spooled_as"})


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(data: bytes | str) -> str:
    """SHA-256 hex digest of raw input, recorded instead of the input itself."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def policy_record(
    event: str,
    decision: str,
    stage: str,
    rule: str,
    message: str,
    *,
    raw: bytes,
    project: str | None = None,
    fallback: str | None = None,
) -> dict[str, Any]:
    """The audit record of a decision the failure policy made instead of the pipeline (input it could not
    judge, an in-process run out of time): the input as its digest, every text redacted, and its session and
    tool when the input is JSON that names them (so the decision can be found by session like any other)."""
    from ultramax.redact import redact, redact_path

    entry: dict[str, Any] = {"event": event}
    entry |= _named_in(raw)
    if project:
        entry["project"] = redact_path(project)
    entry |= {
        "decision": decision,
        "stage": stage,
        "rule": rule,
        "reason": redact(message)[:500],
        "input_sha256": digest(raw),
        "input_bytes": len(raw),
    }
    if fallback is not None:
        entry["fallback"] = redact(fallback)
    return entry


_NAMED_IN_MAX_BYTES = 1 << 20


def _named_in(raw: bytes) -> dict[str, str]:
    """``session`` and ``tool`` from a hook payload, if it is a JSON object holding them as short strings."""
    if len(raw) > _NAMED_IN_MAX_BYTES:
        return {}  # refused for its size, most likely: not worth parsing again
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # input that could not be judged may be anything, nested too deep too
        return {}
    if not isinstance(payload, dict):
        return {}
    named = {"session": payload.get("session_id"), "tool": payload.get("tool_name")}
    return {k: v for k, v in named.items() if isinstance(v, str) and 0 < len(v) <= 200}


def _record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return digest(canonical_json(body))


class AuditLockBusy(AuditError):
    """Another writer held the audit log's lock for longer than this one could wait."""


class AuditLog:
    """A writer for one audit log; safe across threads and processes."""

    def __init__(
        self, path: Path, head_path: Path | None = None, *, fsync: bool = False, lock_timeout: float = 5.0
    ) -> None:
        self.path = path
        self.head_path = head_path or path.with_suffix(".head")
        self.fsync = fsync
        self.lock_timeout = lock_timeout
        self._lock = threading.Lock()
        # cache of the chain's tail, valid while the file size is what we last saw
        self._tail: _Tail | None = None
        # descriptors stay open between appends: a long-running writer (the daemon) pays no open/close per record
        self._fd: int | None = None
        self._head_fd: int | None = None

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Chain ``entry`` onto the log and return the full record; raise AuditError if it cannot be stored."""
        return self._append(entry, self.lock_timeout)

    def append_or_defer(self, entry: dict[str, Any], *, wait: float) -> dict[str, Any] | Path:
        """Chain ``entry`` if the lock can be had within ``wait`` seconds; otherwise write it to the spool, from
        which the next append chains it. Returns the record, or the spool file holding it."""
        try:
            return self._append(entry, wait)
        except AuditLockBusy:
            return _defer(spool_dir(self.path), {**entry, "decided_at": _now()})

    def _append(self, entry: dict[str, Any], lock_timeout: float) -> dict[str, Any]:
        with self._lock, self._locked_fd(lock_timeout) as fd:
            self._chain_deferred(fd)
            return self._append_locked(fd, entry)

    def _append_locked(self, fd: int, entry: dict[str, Any]) -> dict[str, Any]:
        size, seq, prev, _ = self._tail_of(fd)
        record = {"seq": seq + 1, "ts": _now(), "prev": prev, **entry}
        try:
            record["hash"] = _record_hash(record)
        except UnicodeEncodeError:  # a lone surrogate (valid JSON from Claude Code) cannot be stored as UTF-8
            record = _utf8_safe(record)
            record["hash"] = _record_hash(record)
        line = (canonical_json(record) + "\n").encode()
        try:
            _write_all(fd, line)
            if self.fsync:
                os.fsync(fd)
        except BaseException as exc:  # an OSError, or a signal's exception (the hook's deadline) mid-write
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # never leave half a record behind
            self._tail = None
            if not isinstance(exc, OSError):
                raise
            hint = " (the disk is full: free space, then retry)" if exc.errno == errno.ENOSPC else ""
            raise AuditError(f"cannot append to audit log {self.path}: {exc.strerror}{hint}") from exc
        self._tail = _Tail(size + len(line), record["seq"], record["hash"], record.get("spooled_as"))
        self._write_head(record["seq"], record["hash"])
        return record

    def _chain_deferred(self, fd: int) -> None:
        """Chain the records other writers deferred (oldest first), each removed once it is in the log.

        A chained record names its spool file (``spooled_as``): a writer killed between chaining a file and
        removing it leaves that file behind, and the next writer, finding it named by the log's last record,
        removes it instead of chaining it twice."""
        for path in _spooled(spool_dir(self.path)):
            if self._tail_of(fd).spooled_as == path.stem:
                path.unlink(missing_ok=True)
                continue
            try:
                entry = json.loads(path.read_bytes())
            except FileNotFoundError:
                continue  # chained meanwhile by another writer of the same log
            except ValueError:
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".damaged"))  # kept for a human; never blocks the log
                continue
            if isinstance(entry, dict):  # the chain's own fields are the log's to set, never the file's
                fields = {k: v for k, v in entry.items() if k not in _CHAIN_FIELDS}
                self._append_locked(fd, {**fields, "spooled_as": path.stem})
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked_fd(self, lock_timeout: float) -> Iterator[int]:
        fd = self._fd
        if fd is None or not self._same_file(fd):
            self.close()
            try:
                private_dir(self.path.parent)
                fd = self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from exc
            self._tail = None
        self._lock_exclusive(fd, lock_timeout)  # other processes (an in-process hook) append to the same file
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_exclusive(self, fd: int, lock_timeout: float) -> None:
        """flock with a deadline: a writer stuck while holding the lock must not hang every hook behind it."""
        deadline = time.monotonic() + lock_timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AuditLockBusy(
                        f"audit log {self.path} has been locked by another writer for {lock_timeout:g} s "
                        "(a stopped or hung ultramax daemon?); run `ultramax daemon restart`"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)

    def _same_file(self, fd: int) -> bool:
        """False if the log was moved aside or deleted since we opened it (then a new chain starts)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def close(self) -> None:
        for attr in ("_fd", "_head_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, attr, None)

    def __del__(self) -> None:
        self.close()

    def _tail_of(self, fd: int) -> _Tail:
        size = os.fstat(fd).st_size
        if self._tail is not None and self._tail.size == size:
            return self._tail
        if size == 0:
            return _Tail(0, 0, GENESIS, None)
        # read back to the last complete line; a torn last line (crash mid-write, never acknowledged) is cut
        chunk = min(size, 65536)
        while True:
            data = os.pread(fd, chunk, size - chunk)
            end = data.rstrip(b"\n")
            complete = data.endswith(b"\n")
            if not complete:
                cut = data.rfind(b"\n")
                if cut < 0 and chunk < size:
                    chunk = min(size, chunk * 4)
                    continue
                new_size = size - chunk + cut + 1 if cut >= 0 else 0
                os.ftruncate(fd, new_size)
                return self._tail_of(fd)
            start = end.rfind(b"\n")
            if start < 0 and chunk < size:
                chunk = min(size, chunk * 4)
                continue
            last = end[start + 1 :]
            try:
                record = json.loads(last)
                spooled_as = record.get("spooled_as")
                return _Tail(
                    size, int(record["seq"]), str(record["hash"]), spooled_as if isinstance(spooled_as, str) else None
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditError(
                    f"audit log {self.path} ends with a damaged record; run `ultramax audit verify` and move the "
                    "file aside to start a new chain"
                ) from exc

    def _write_head(self, seq: int, hash_: str) -> None:
        # in place: seq only grows, so the text never gets shorter and no stale bytes remain
        if self._head_fd is None:
            self._head_fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.pwrite(self._head_fd, f"{seq} {hash_}\n".encode(), 0)


class _Tail(NamedTuple):
    """The chain's last record as an append needs it, at the log size it was read at."""

    size: int
    seq: int
    hash: str
    spooled_as: str | None  # the spool file the last record was chained from, if it was


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def spool_dir(log_path: Path) -> Path:
    """Where records wait that could not be chained when they were made (see ``AuditLog.append_or_defer``)."""
    return log_path.with_name(log_path.name + ".spool")


def _spooled(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json")  # oldest first: names start with the time
    except (FileNotFoundError, NotADirectoryError):
        return []  # the usual case: one failed system call per append


def _defer(folder: Path, entry: dict[str, Any]) -> Path:
    """Write ``entry`` whole into its own file in ``folder`` (a temporary name, renamed when complete)."""
    private_dir(folder)
    stem = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp, final = folder / f".{stem}.tmp", folder / f"{stem}.json"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(canonical_json(_utf8_safe(entry)).encode())
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
    except OSError as exc:
        raise AuditError(f"cannot defer an audit record to {folder}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return final


def deferred_records(log_path: Path) -> int:
    """How many records wait in the spool to be chained (by the next append)."""
    return len(_spooled(spool_dir(log_path)))


def _utf8_safe(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (lone surrogates become U+FFFD)."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    return value


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_records(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, raw line) for each line of the log."""
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, raw.decode("utf-8", errors="replace")
    except FileNotFoundError:
        return
    except OSError as exc:  # a folder in its place, an I/O error: say which file, not a traceback
        raise AuditError(f"cannot read the audit log {path}: {exc.strerror or exc}") from exc


@dataclass(slots=True)
class VerifyReport:
    """Outcome of ``verify``: ``ok`` and, if not, what is wrong and where."""

    records: int = 0
    last_seq: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, head_path: Path | None = None) -> VerifyReport:
    """Check the whole chain; name every edited, deleted, reordered or truncated record."""
    head_path = head_path or path.with_suffix(".head")
    report = VerifyReport()
    parsed: list[tuple[int, int, str, str]] = []  # (line, seq, prev, hash)
    for lineno, raw in read_records(path):
        if not raw.endswith("\n"):
            report.problems.append(f"line {lineno}: incomplete record at the end of the log (truncated mid-record)")
            break
        try:
            record = json.loads(raw)
            seq, prev, stated = int(record["seq"]), str(record["prev"]), str(record["hash"])
        except (ValueError, KeyError, TypeError):
            report.problems.append(f"line {lineno}: not a valid audit record (edited or corrupted)")
            continue
        report.records += 1
        if _record_hash(record) != stated:
            report.problems.append(f"line {lineno}: record seq {seq} was edited (its hash does not match)")
        parsed.append((lineno, seq, prev, stated))
    seqs = [seq for _line, seq, _prev, _hash in parsed]
    report.last_seq = max(seqs, default=0)
    missing = _gaps(seqs)  # as ranges: an edited seq of 10**12 must not make verify build a huge set
    if missing:
        report.problems.append(f"record(s) {_spans(missing)} were deleted")
    by_seq = {seq: h for _line, seq, _prev, h in parsed}
    last_seen = 0
    for lineno, seq, prev, _hash in parsed:
        if seq <= last_seen:
            report.problems.append(f"line {lineno}: record seq {seq} comes after seq {last_seen} (reordered)")
        else:
            last_seen = seq
        expected_prev = GENESIS if seq == 1 else by_seq.get(seq - 1)
        if expected_prev is not None and prev != expected_prev:
            report.problems.append(f"line {lineno}: record seq {seq} does not chain to record seq {seq - 1}")
    head = _read_head(head_path)
    if head is not None:
        head_seq, head_hash = head
        if head_seq > report.last_seq:
            report.problems.append(
                f"log ends at seq {report.last_seq} but {head_seq} records were written: "
                f"record(s) {_spans([(report.last_seq + 1, head_seq)])} were truncated from the end"
            )
        elif head_seq == report.last_seq and by_seq.get(head_seq, head_hash) != head_hash:
            report.problems.append(f"the last record (seq {head_seq}) was replaced")
    return report


def _gaps(seqs: list[int]) -> list[tuple[int, int]]:
    """The runs of sequence numbers from 1 to the highest seen that are absent, as (first, last) pairs."""
    out: list[tuple[int, int]] = []
    expected = 1
    for seq in sorted(set(seqs)):
        if seq > expected:
            out.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    return out


def _spans(spans: list[tuple[int, int]]) -> str:
    """Compact form of runs of integers: 3, 5-9, 12."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        text = path.read_text(encoding="utf-8").split()
        return int(text[0]), text[1]
    except (FileNotFoundError, IndexError, ValueError):
        return None
    except OSError as exc:
        raise AuditError(f"cannot read the audit log's head {path}: {exc.strerror or exc}") from exc
