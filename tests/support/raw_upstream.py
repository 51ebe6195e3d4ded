"""An upstream that answers each request with scripted raw bytes: the malformed, silent and rude answers a
proxy must survive, which a well-behaved stand-in never gives.

Each request (read whole, by its Content-Length) takes the next script entry:

- ``bytes``: written as the answer, and the connection is kept for the next request;
- ``HANG``: no answer; the server waits until the proxy closes the connection;
- ``CLOSE``: the connection is closed without an answer.

When the script runs out, every further request gets ``CLOSE``. Standard library only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

__all__ = ["CLOSE", "HANG", "RawUpstream", "run_raw_upstream", "sse_answer"]

HANG: Final = "hang"
CLOSE: Final = "close"
Step = bytes | str


def sse_answer(events: Sequence[bytes], *, newline: bytes = b"\n", headers: Sequence[bytes] = ()) -> bytes:
    """A 200 event stream, chunked, one chunk per event, with ``newline`` ending every line."""
    head = [b"HTTP/1.1 200 OK", b"Content-Type: text/event-stream", b"Transfer-Encoding: chunked", *headers]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (ev.replace(b"\n", newline) for ev in events))
    return b"\r\n".join(head) + b"\r\n\r\n" + body + b"0\r\n\r\n"


class RawUpstream:
    """The server, on its own event loop in a background thread."""

    def __init__(self, script: Sequence[Step]) -> None:
        self.script = list(script)
        self.connections = 0
        self.requests = 0
        self.closed = threading.Event()
        """Set each time a connection ends (by either side)."""
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="raw-upstream", daemon=True)
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                step = self.script.pop(0) if self.script else CLOSE
                if step == HANG:
                    await reader.read()  # until the proxy gives up on it
                    return
                if step == CLOSE or not isinstance(step, bytes):
                    return
                writer.write(step)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._conns.discard(task)
            writer.close()
            self.closed.set()


@contextmanager
def run_raw_upstream(script: Sequence[Step]) -> Iterator[RawUpstream]:
    server = RawUpstream(script)
    server.start()
    try:
        yield server
    finally:
        server.close()
