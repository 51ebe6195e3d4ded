"""The daemon process: an asyncio Unix-socket server running hook events through warm pipelines.

One per user: an exclusive ``flock`` on ``daemon.lock`` decides who serves; the socket is created mode 0600
in ULTRAMAX_HOME and the peer's uid is checked on every connection (``SO_PEERCRED``). Each connection is one
hook call (see ``ultramax.hook.client`` for the wire format) or a control request (``!status``, ``!stop``).
Pipelines run on a thread pool so a slow stage never stalls the accept loop; SIGTERM drains in-flight calls
before the socket is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ultramax import __version__
from ultramax.config import load_settings
from ultramax.daemon.control import socket_path_problem
from ultramax.decisions import HookReply
from ultramax.errors import DaemonError
from ultramax.fsutil import atomic_write_json
from ultramax.observability import Metrics, reset_logging
from ultramax.paths import Paths
from ultramax.runtime import Runtime

__all__ = ["DaemonServer", "main"]

log = logging.getLogger("ultramax.pipeline")
_PEERCRED = struct.Struct("3i")
_HEADER_MAX = 64 * 1024
_PAYLOAD_CEILING = 64 * 1024 * 1024
LOCK_PATIENCE_S = 0.5


class DaemonServer:
    """The daemon: owns the lock, the socket, the metrics endpoint and a Runtime."""

    def __init__(self, paths: Paths, *, metrics_port: int | None = None) -> None:
        self.paths = paths
        settings = load_settings(paths)
        self.workers = int(settings.get("ultramax.daemonWorkers"))
        self.max_payload = int(settings.get("ultramax.maxPayloadBytes"))
        self.metrics_host = str(settings.get("observability.metricsHost"))
        self.metrics_port = int(settings.get("observability.metricsPort")) if metrics_port is None else metrics_port
        self.metrics = Metrics()
        self.runtime: Runtime | None = None
        self.started = time.time()
        self.handled = 0
        self._lock_fd: int | None = None
        self._stop: asyncio.Event | None = None
        self.interrupted = False  # stopped by SIGINT (Ctrl-C in a terminal), not asked to stop
        self._open: set[_HookProtocol] = set()
        self._drained = asyncio.Event()
        self._http: ThreadingHTTPServer | None = None
        self._metrics_error = ""
        self._count_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the per-user lock; DaemonError if another daemon holds it."""
        self.paths.ensure_home()
        fd = os.open(self.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        # `daemon status`, `start` and doctor probe the lock by taking it for a moment: only a holder that keeps
        # it past LOCK_PATIENCE_S is a daemon
        deadline = time.monotonic() + LOCK_PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DaemonError(f"another ultramax daemon is already running for {self.paths.home}") from exc
                time.sleep(0.005)
        self._lock_fd = fd
        _write_private(self.paths.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        for path in (self.paths.socket, self.paths.pid_file, self.paths.daemon_info):
            if socket_path_problem(path) is not None:
                continue  # a directory: not ours to remove (serve() refused to start because of it)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def serve(self, ready: threading.Event | None = None) -> None:
        _check_socket_path(self.paths.socket)  # before anything starts that would have to be stopped again
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):  # not the main thread (tests)
                loop.add_signal_handler(sig, self._on_signal, sig)
        self.runtime = Runtime(self.paths, metrics=self.metrics)
        self.runtime.services.shared["daemon"] = True  # engines run their background work here (memory writer)
        # a stage whose files were replaced under it (memory.db restored) stops the daemon; the next hook starts
        # a fresh one (called from worker threads)
        self.runtime.services.shared["restart"] = lambda: loop.call_soon_threadsafe(self._restart_requested)
        try:  # build the default pipeline now: warm stages, and engines' background work starts with the daemon
            settings = self.runtime.settings_for(None)
            self.runtime.pipeline_for(self.runtime.mode_for(None, settings), settings)
        except Exception:  # the first hook builds it instead
            log.exception("warming the default pipeline failed")
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ultramax-pipeline")
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            server = await loop.create_unix_server(lambda: _HookProtocol(self, executor), path=str(self.paths.socket))
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        metrics_url = self._start_metrics()
        atomic_write_json(
            self.paths.daemon_info,
            {
                "pid": os.getpid(),
                "socket": str(self.paths.socket),
                "metrics_url": metrics_url,
                "version": __version__,
                "python": sys.executable,
                "package": str(Path(__file__).resolve().parents[1]),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            mode=0o600,
        )
        log.info("daemon started", extra={"fields": {"pid": os.getpid(), "metrics_url": metrics_url}})
        if ready is not None:
            ready.set()
        try:
            async with server:
                await self._stop.wait()
                server.close()
                await server.wait_closed()
                if self._open:  # graceful: finish the calls already accepted
                    self._drained.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._drained.wait(), timeout=10)
        finally:
            executor.shutdown(wait=True)
            _close_engines(self.runtime)
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
            log.info("daemon stopped", extra={"fields": {"handled": self.handled}})

    def _on_signal(self, sig: signal.Signals) -> None:
        self.interrupted = self.interrupted or sig == signal.SIGINT
        self.request_stop()

    def _restart_requested(self) -> None:
        log.warning("stopping: a file the daemon keeps open was replaced; the next hook starts a fresh daemon")
        self.request_stop()

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # -- connections ---------------------------------------------------------------------------------------
    def connection_opened(self, conn: _HookProtocol) -> None:
        self._open.add(conn)

    def connection_closed(self, conn: _HookProtocol) -> None:
        self._open.discard(conn)
        if not self._open:
            self._drained.set()

    def answer(self, conn: _HookProtocol, request: bytes, executor: ThreadPoolExecutor) -> None:
        """Decide one request and write the reply on ``conn`` (now, or when the worker thread is done)."""
        if conn.peer_uid is not None and conn.peer_uid != os.getuid():
            conn.reply(HookReply(0, "", f"ultramax: connection from uid {conn.peer_uid} refused\n").encode())
            return
        header, sep, payload = request.partition(b"\n")
        if not sep:
            conn.reply(HookReply(0, "", "ultramax: request has no header line; the event continues\n").encode())
            return
        event, _, project = header.decode("utf-8", "replace").partition("\t")
        if event.startswith("!"):
            conn.reply(self._control(event[1:]).encode())
            return
        runtime = self.runtime
        assert runtime is not None
        peer_uid = conn.peer_uid

        def decide() -> bytes:
            outcome = runtime.handle(event or None, payload, peer_uid=peer_uid, project_hint=project or None)
            with self._count_lock:
                self.handled += 1
            return outcome.reply.encode()

        # Fast pipelines run on the loop: a hand-off to a worker thread costs more CPU than the whole pipeline
        # (measured: 0.58 vs 1.11 ms per request). Pipelines with a blocking stage go to the pool.
        if not runtime.needs_worker(event or None):
            conn.reply(decide())
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, decide)
        future.add_done_callback(lambda f: conn.reply(f.result()) if not f.cancelled() else conn.abort())

    def _control(self, command: str) -> HookReply:
        if command == "status":
            return HookReply(0, json.dumps(self.status()) + "\n")
        if command == "stop":
            loop = asyncio.get_running_loop()
            loop.call_soon(self.request_stop)
            return HookReply(0, '{"stopping": true}\n')
        if command == "ping":
            return HookReply(0, '{"pong": true}\n')
        return HookReply(2, "", f"unknown control command {command!r}\n")

    def status(self) -> dict[str, Any]:
        breakers = self.runtime.breaker_snapshots() if self.runtime is not None else {}
        return {
            "pid": os.getpid(),
            "version": __version__,
            "python": sys.executable,
            "package": str(Path(__file__).resolve().parents[1]),
            "uptime_s": round(time.time() - self.started, 1),
            "handled": self.handled,
            "inflight": max(0, len(self._open) - 1),  # minus this status request
            "metrics_url": self._metrics_url(),
            "metrics_error": self._metrics_error,
            "circuit_breakers": breakers,
            "memory": _memory_status(self.runtime),
        }

    # -- metrics ---------------------------------------------------------------------------------------------
    def _metrics_url(self) -> str | None:
        if self._http is None:
            return None
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def _start_metrics(self) -> str | None:
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        try:
            self._http = ThreadingHTTPServer((self.metrics_host, self.metrics_port), Handler)
        except OSError as exc:
            self._metrics_error = f"port {self.metrics_port}: {exc.strerror or exc}"
            log.warning(
                "metrics endpoint not started",
                extra={
                    "fields": {
                        "error": str(exc),
                        "port": self.metrics_port,
                        "fix": "set observability.metricsPort to a free port (0 picks one)",
                    }
                },
            )
            return None
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="ultramax-metrics", daemon=True).start()
        return self._metrics_url()


class _HookProtocol(asyncio.Protocol):
    """One hook call: buffer the request (capped) until EOF, then answer and close."""

    def __init__(self, daemon: DaemonServer, executor: ThreadPoolExecutor) -> None:
        self.daemon, self.executor = daemon, executor
        # read past the user's limit (a project may raise it; the runtime judges each payload by its project's
        # limit and reports the real size), but never buffer without bound
        self.cap = _HEADER_MAX + max(daemon.max_payload, _PAYLOAD_CEILING) + 1
        self.chunks: list[bytes] = []
        self.size = 0
        self.peer_uid: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer_uid = _peer_uid(transport.get_extra_info("socket"))
        self.daemon.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.size < self.cap:  # past the cap the rest is read and dropped, so the client still gets an answer
            self.chunks.append(data[: self.cap - self.size])
        self.size += len(data)

    def eof_received(self) -> bool:
        self.daemon.answer(self, b"".join(self.chunks), self.executor)
        self.chunks = []
        return True  # keep the transport open for the reply

    def reply(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.daemon.connection_closed(self)


def _memory_status(runtime: Runtime | None) -> dict[str, Any] | None:
    """The memory engine's counters and per-tier search latency (p50/p95), if it runs in this daemon."""
    engine = runtime.services.shared.get("memory") if runtime is not None else None
    stats = getattr(engine, "stats", None)
    if not callable(stats):
        return None
    try:
        return dict(stats())
    except Exception as exc:  # noqa: BLE001 -- status must answer even if the store is busy or broken
        return {"error": f"{type(exc).__name__}: {exc}"}


def _close_engines(runtime: Runtime | None) -> None:
    """Stop engines with background threads (the memory writer) before the process exits."""
    engine = runtime.services.shared.get("memory") if runtime is not None else None
    close = getattr(engine, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # shutting down: log and go on
            log.exception("memory engine failed to close")


def _peer_uid(sock: Any) -> int | None:
    """The connecting process's uid, from the kernel (SO_PEERCRED): real authentication of the caller."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None
    return int(uid)


def _check_socket_path(path: Path) -> None:
    """Clear a stale socket (or a file) at ``path``; DaemonError if a directory is in the way: it may hold a
    user's files, so it is named, never removed."""
    problem = socket_path_problem(path)
    if problem is not None:
        raise DaemonError(f"cannot listen: {problem}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: we hold the lock, so nobody is serving it


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def main(argv: list[str]) -> int:
    """Entry point of ``python -m ultramax.daemon serve``."""
    if argv[:1] not in (["serve"], []):
        print("usage: python -m ultramax.daemon serve", flush=True)
        return 2
    paths = Paths.from_env()
    server = DaemonServer(paths)
    try:
        server.acquire()
    except DaemonError as exc:
        print(f"ultramax daemon: {exc}", flush=True)
        return 0  # not an error: the one that holds the lock is serving
    try:
        asyncio.run(server.serve())
    except DaemonError as exc:  # a set-up problem with its fix: one line, not a traceback
        print(f"ultramax daemon: {exc}", flush=True)
        return 1
    finally:
        server.release()
        reset_logging()
    return 130 if server.interrupted else 0  # Ctrl-C ends it as it ends any command; SIGTERM is a normal stop
