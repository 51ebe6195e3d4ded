"""Child MCP server processes: an allow-listed environment, their own process group, no orphans, stdio framing.

A server runs in a new session (its own process group), so stopping it reaches every process it started; on
Linux it also gets ``PR_SET_PDEATHSIG`` (SIGKILL), so if the gateway itself is killed the server dies with it.
Stopping is graceful first (close stdin and wait, as the MCP lifecycle says), then SIGTERM to the group, then
SIGKILL. The process's exit is seen the moment it happens (``process_exited``), not when its pipes close, which
is what makes failover detection immediate.

The transport speaks newline-delimited JSON-RPC over the child's stdin/stdout and yields the
``(read_stream, write_stream)`` pair the SDK's ``ClientSession`` runs on; stderr goes to a log file, redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

import anyio
import mcp_types as types
from mcp.shared.message import SessionMessage

from ultramax.fsutil import private_dir
from ultramax.redact import redact

__all__ = [
    "DEFAULT_ENV_ALLOWLIST",
    "RAW_ID_PREFIX",
    "ChildProcess",
    "Inbox",
    "PipeWriter",
    "RawLink",
    "RawWaiter",
    "StderrLog",
    "child_environment",
    "dumps_line",
    "loads_line",
    "spawn_stdio_server",
]

log = logging.getLogger("ultramax.mcp")

DEFAULT_ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
)
"""Variables of the gateway's environment a server inherits; anything else (API keys, tokens) must be named in
the server's ``env`` (``"GITHUB_TOKEN": "${GITHUB_TOKEN}"``) or in ``ultramax.mcpEnvAllowlist``."""

GRACE_S = 1.0
"""How long a server gets to exit after its stdin closes, and again after SIGTERM."""

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _libc = ctypes.CDLL(None, use_errno=True)
        _prctl = _libc.prctl


def child_environment(
    allow: Iterable[str] = (), extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a server process gets: allow-listed names (globs allowed) of ``source``, then ``extra``."""
    env = os.environ if source is None else source
    patterns = (*DEFAULT_ENV_ALLOWLIST, *allow)
    out = {k: v for k, v in env.items() if any(fnmatchcase(k, p) for p in patterns) and not v.startswith("() {")}
    out.update(extra or {})
    return out


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the gateway died before prctl took effect
        os._exit(1)


def complete_lines(buffer: bytearray, data: bytes) -> list[bytes]:
    """Append ``data`` to ``buffer`` and take out its complete, non-blank lines (newline-delimited JSON-RPC);
    a partial last line stays in ``buffer`` for the next call."""
    if not buffer and data.endswith(b"\n"):  # the usual read: whole messages, nothing pending; no copies
        return [line for line in data.split(b"\n") if line.strip()]
    buffer += data
    if b"\n" not in data:
        return []
    *lines, rest = buffer.split(b"\n")
    buffer[:] = rest
    return [bytes(line) for line in lines if line.strip()]


class _Framer:
    """Splits the server's stdout into lines and hands each JSON-RPC message to the session's read stream.

    ``intercept`` (the gateway's raw tools/call path) sees each line first and keeps the ones it answers for;
    ``on_end`` hears when the stream ends, at the moment the session's read stream does.
    """

    def __init__(self, inbox: Inbox, name: str) -> None:
        self.inbox = inbox
        self.name = name
        self.buffer = bytearray()
        self.bad_lines = 0
        self.intercept: Callable[[bytes], bool] | None = None
        self.on_end: Callable[[], None] | None = None

    def end(self) -> None:
        self.inbox.end()
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()

    def feed(self, data: bytes) -> None:
        intercept = self.intercept
        for line in complete_lines(self.buffer, data):
            if intercept is not None and intercept(line):
                continue
            try:
                message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except ValueError:
                self.bad_lines += 1
                shown = redact(bytes(line[:400]).decode("utf-8", "replace"))[:200]  # a server may print a secret
                log.warning("mcp server %s wrote a non-JSON-RPC line to stdout: %r", self.name, shown)
                continue
            self.inbox.put(SessionMessage(message))


class StderrLog:
    """A server's stderr, appended to its log file a line at a time with secrets redacted: servers print their
    configuration and their errors there, tokens included. ``known`` are values to redact whatever they look like
    (what the server's ``env`` gave it: ``token abc123`` is a secret no pattern recognises). The file is the
    user's alone."""

    MAX_LINE = 64 * 1024
    """A longer run without a newline is written (redacted) as it is, not held."""

    def __init__(self, path: Path, known: Iterable[str] = ()) -> None:
        private_dir(path.parent)
        _rotate(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a log an earlier version wrote 0644
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._known = sorted((k for k in set(known) if len(k) >= 6), key=len, reverse=True)
        self._pending = bytearray()

    def _write(self, data: bytes) -> None:
        text = data.decode("utf-8", "surrogateescape")
        for value in self._known:
            text = text.replace(value, "[REDACTED:env]")
        with contextlib.suppress(OSError):  # a full disk loses log lines, never the server
            self._file.write(redact(text).encode("utf-8", "surrogateescape"))

    def feed(self, data: bytes) -> None:
        self._pending += data
        end = self._pending.rfind(b"\n") + 1
        if end == 0 and len(self._pending) > self.MAX_LINE:
            end = len(self._pending)
        if end:
            self._write(bytes(self._pending[:end]))
            del self._pending[:end]

    def close(self) -> None:
        if self._file.closed:
            return
        if self._pending:
            self._write(bytes(self._pending))
            self._pending.clear()
        self._file.close()


class _Protocol(asyncio.SubprocessProtocol):
    """Reports the process's exit the moment it happens (not when its pipes close); its stderr goes to
    ``stderr_log``."""

    def __init__(self, framer: _Framer, stderr_log: StderrLog | None = None) -> None:
        self.framer = framer
        self.exited = anyio.Event()
        self.stderr_log = stderr_log

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2 and self.stderr_log is not None:
            self.stderr_log.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 2 and self.stderr_log is not None:
            self.stderr_log.close()

    def process_exited(self) -> None:
        self.exited.set()
        self.framer.end()


class _Stdio(asyncio.Protocol):
    """The server's stdin and stdout: one end of a socket pair (the other end is fds 0 and 1 of the server)."""

    def __init__(self, framer: _Framer) -> None:
        self.framer = framer
        self.can_write = asyncio.Event()
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.framer.feed(data)

    def eof_received(self) -> bool:
        self.framer.end()
        return True  # keep our write side open: the server may still be reading its requests

    def connection_lost(self, exc: Exception | None) -> None:
        self.framer.end()
        self.can_write.set()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()


@dataclass(slots=True)
class ChildProcess:
    """A running server process: its pid, its exit, and how to stop it (with everything it started)."""

    name: str
    pid: int
    argv: tuple[str, ...]
    started: float
    transport: asyncio.SubprocessTransport
    protocol: _Protocol
    io: asyncio.Transport
    stderr_path: Path | None = None
    stopping: bool = field(default=False)
    closed: bool = field(default=False)  # stopped and reaped: its pid may belong to another process now
    grace: float = GRACE_S  # set lower for a server that stopped answering: it will not exit politely

    @property
    def framer(self) -> _Framer:
        return self.protocol.framer

    @property
    def exited(self) -> anyio.Event:
        return self.protocol.exited

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode()

    def alive(self) -> bool:
        return not self.protocol.exited.is_set()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the server and anything it started)."""
        if self.closed:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float | None = None) -> None:
        """Close stdin and wait, then SIGTERM the group and wait, then SIGKILL; always reaps and closes."""
        grace = self.grace if grace is None else grace
        self.stopping = True
        try:
            with anyio.CancelScope(shield=True):
                if not self.io.is_closing() and self.io.can_write_eof():
                    self.io.write_eof()  # the server reads EOF on stdin: the MCP way to ask it to exit
                if self.alive():
                    with anyio.move_on_after(grace):
                        await self.exited.wait()
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    if not _group_alive(self.pid) and not self.alive():
                        break
                    self.kill(sig)
                    with anyio.move_on_after(grace):
                        while self.alive() or _group_alive(self.pid):
                            await anyio.sleep(0.01)
        finally:
            self.closed = True
            self.io.close()
            self.transport.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # members may all be zombies that init has not reaped yet; treat a group of zombies as gone
    return any(_state(pid) not in ("Z", "X", "") for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members: list[int] = []
    try:
        entries = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return [pgid]
    for entry in entries:
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


class Inbox:
    """The read half of a pipe transport: the messages its protocol decoded, in order, for one SDK reader.

    Satisfies the SDK's ``ReadStream``. Unlike an anyio memory stream it hands over a message that is already
    waiting without first yielding to the event loop (a loop turn per message, twice per forwarded call);
    when none is waiting it parks on a future that ``put`` resolves. ``end`` is the pipe's end: what was
    received is still delivered, then ``EndOfStream``; after ``aclose`` a receive raises
    ``ClosedResourceError``.
    """

    def __init__(self) -> None:
        self._items: deque[SessionMessage | Exception] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._ended = False
        self._closed = False

    def put(self, item: SessionMessage | Exception) -> None:
        if not (self._ended or self._closed):
            self._items.append(item)
            self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def receive(self) -> SessionMessage | Exception:
        while not self._items:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._ended:
                raise anyio.EndOfStream
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self._items.popleft()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Inbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class PipeWriter:
    """The write half of a stdio transport, writing each message straight to the pipe (no task in between).

    Satisfies the SDK's ``WriteStream[SessionMessage]``; a closed or broken pipe raises ``BrokenResourceError``,
    which the SDK's dispatcher reports as a closed connection.
    """

    def __init__(self, transport: asyncio.WriteTransport | asyncio.Transport, can_write: asyncio.Event) -> None:
        self.transport = transport
        self.can_write = can_write

    async def send(self, item: SessionMessage, /) -> None:
        if self.transport.is_closing():
            raise anyio.BrokenResourceError
        self.transport.write(item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
        if not self.can_write.is_set():
            await self.can_write.wait()

    async def aclose(self) -> None:
        self.transport.close()

    async def __aenter__(self) -> PipeWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


RAW_ID_PREFIX = "ultramax-raw-"
"""Ids of requests the gateway writes to a server itself (the SDK client's ids are integers)."""
_RAW_ID_BYTES = RAW_ID_PREFIX.encode()
_RESPONSE_KEYS = frozenset({"jsonrpc", "id", "result"})


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} overflows a float")
    return value


def loads_line(line: bytes) -> Any:
    """One JSON-RPC line as plain JSON values; ValueError for anything the SDK's parser would judge otherwise
    (NaN / Infinity, a float that overflows, an unpaired surrogate), which is then left to that parser."""
    try:
        value = json.loads(line, parse_constant=_no_constants, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if b"\\ud" in line or b"\\uD" in line:
        json.dumps(value, ensure_ascii=False).encode()  # UnicodeEncodeError (a ValueError) if unpaired
    return value


def dumps_line(message: dict[str, Any]) -> bytes:
    """One message as a JSON-RPC line (ValueError for a non-finite float, which JSON cannot carry)."""
    try:  # UTF-8 as it is: escaping every non-ASCII character made "ü" 6 bytes and slowed big answers 10x
        return json.dumps(message, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode() + b"\n"
    except UnicodeEncodeError:  # half a surrogate pair has no UTF-8 form: escape, as JSON allows
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class RawWaiter(Protocol):
    """A request written raw to a server, waiting for its answer."""

    upstream_id: str

    def answered(self, result: dict[str, Any] | None, error: types.ErrorData | None) -> None: ...

    def lost(self) -> None: ...


class RawLink:
    """One upstream process's pipe, shared with its SDK client session: raw calls out, their answers back.

    Its framer hands every line here first; only answers to ids this link issued are kept (and only lines
    that mention such an id are parsed twice). When the pipe ends every waiting call hears it.
    """

    def __init__(self, writer: PipeWriter) -> None:
        self.writer = writer
        self.pending: dict[str, RawWaiter] = {}
        self.open = True
        self._next = 0

    def writable(self) -> bool:
        return self.open and not self.writer.transport.is_closing() and self.writer.can_write.is_set()

    def issue(self, call: RawWaiter, method: str, params: dict[str, Any]) -> None:
        self._next += 1
        call.upstream_id = f"{RAW_ID_PREFIX}{self._next}"
        self.pending[call.upstream_id] = call
        request = {"jsonrpc": "2.0", "id": call.upstream_id, "method": method, "params": params}
        self.writer.transport.write(dumps_line(request))

    def cancel(self, call: RawWaiter, reason: str = "caller cancelled") -> None:
        """Forget the call and tell the server, as the SDK does for a request it abandons."""
        if self.pending.pop(call.upstream_id, None) is not None and self.writable():
            notice = {"requestId": call.upstream_id, "reason": reason}
            self.writer.transport.write(dumps_line({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                "params": notice}))  # fmt: skip

    def on_line(self, line: bytes) -> bool:
        if not self.pending or _RAW_ID_BYTES not in line:
            return False
        try:
            message = loads_line(line)
        except ValueError:
            message = None
        if type(message) is dict:
            call = self.pending.get(message["id"]) if type(message.get("id")) is str else None
            if call is None:
                return False
            if message.keys() == _RESPONSE_KEYS and message["jsonrpc"] == "2.0" and type(message["result"]) is dict:
                del self.pending[call.upstream_id]
                call.answered(message["result"], None)
                return True
        # anything less usual is judged by the SDK's own message model, as the SDK path would judge it
        try:
            parsed = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValueError:
            return False  # the framer logs and drops it, as it does for any malformed line
        if not isinstance(parsed, types.JSONRPCResponse | types.JSONRPCError) or not isinstance(parsed.id, str):
            return False
        call = self.pending.pop(parsed.id, None)
        if call is None:
            return False
        if isinstance(parsed, types.JSONRPCResponse):
            call.answered(parsed.result, None)
        else:
            call.answered(None, parsed.error)
        return True

    def end(self) -> None:
        if not self.open:
            return
        self.open = False
        calls, self.pending = list(self.pending.values()), {}
        for call in calls:
            call.lost()


@asynccontextmanager
async def spawn_stdio_server(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    stderr_path: Path | None = None,
    secrets: Iterable[str] = (),
) -> AsyncIterator[tuple[ChildProcess, Inbox, PipeWriter]]:
    """Start ``argv`` as an MCP stdio server; yield the process and the stream pair; stop it on exit. Its stderr
    goes to ``stderr_path`` redacted, ``secrets`` (values it was given) included (see ``StderrLog``).

    Raises OSError when the command cannot be started (not found, not executable).
    """
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    framer = _Framer(inbox, name)
    # read through the gateway rather than handed to the server as the file: only so can it be redacted
    stderr_log = StderrLog(stderr_path, secrets) if stderr_path is not None else None
    parent = os.getpid()
    # a socket pair rather than two pipes: on the machines measured, a message costs less than half the time
    ours, theirs = socket.socketpair()
    try:
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(framer, stderr_log),
                *argv,
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=asyncio.subprocess.DEVNULL if stderr_log is None else asyncio.subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent),
            )
        finally:
            theirs.close()
        io, stdio = await loop.create_unix_connection(lambda: _Stdio(framer), sock=ours)
    except BaseException:
        ours.close()
        inbox.close()
        if stderr_log is not None:
            stderr_log.close()
        raise
    child = ChildProcess(name, transport.get_pid(), tuple(argv), time.monotonic(), transport, protocol, io,
                         stderr_path)  # fmt: skip
    writer = PipeWriter(io, stdio.can_write)
    try:
        yield child, inbox, writer
    finally:
        with anyio.CancelScope(shield=True):
            await child.stop()
            inbox.close()


def _rotate(path: Path, limit: int = 1 << 20) -> None:
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_suffix(path.suffix + ".1"))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.debug("cannot rotate %s: %s", path, exc)
