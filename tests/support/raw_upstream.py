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

from tests.support.loop_server import LoopServer

__all__ = ["CLOSE", "HANG", "RawUpstream", "run_raw_upstream", "sse_answer"]

HANG: Final = "hang"
CLOSE: Final = "close"
Step = bytes | str


def sse_answer(events: Sequence[bytes], *, newline: bytes = b"\n", headers: Sequence[bytes] = ()) -> bytes:
    """A 200 event stream, chunked, one chunk per event, with ``newline`` ending every line."""
    head = [b"HTTP/1.1 200 OK", b"Content-Type: text/event-stream", b"Transfer-Encoding: chunked", *headers]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (ev.replace(b"\n", newline) for ev in events))
    return b"\r\n".join(head) + b"\r\n\r\n" + body + b"0\r\n\r\n"


class RawUpstream(LoopServer):
    """The server, on its own event loop in a background thread."""

    thread_name = "raw-upstream"

    def __init__(self, script: Sequence[Step]) -> None:
        super().__init__()
        self.script = list(script)
        self.connections = 0
        self.requests = 0
        self.closed = threading.Event()
        """Set each time a connection ends (by either side)."""

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
