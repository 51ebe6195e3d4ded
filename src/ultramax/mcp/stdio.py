"""The gateway's stdio face without thread hops: stdin and stdout as asyncio pipes.

The SDK's ``stdio_server`` reads and writes through worker threads (three hops per message), which costs a
gateway more than everything else it does per call. When stdin and stdout are pipes or sockets -- as Claude Code
starts MCP servers -- this transport reads and writes them on the event loop instead; anything else (a terminal,
a file) falls back to the SDK's transport. Like the SDK's, it moves the wire off fds 0 and 1 while it runs (stdin
reads EOF, stdout goes to stderr), so a stray ``print`` in a library cannot corrupt the protocol.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage

from ultramax.mcp.process import Inbox, PipeWriter, complete_lines

__all__ = ["stdio_pipes"]


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _Reader(asyncio.Protocol):
    def __init__(self, inbox: Inbox, intercept: Callable[[bytes], bool] | None) -> None:
        self.inbox = inbox
        self.intercept = intercept
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        intercept = self.intercept
        for line in complete_lines(self.buffer, data):
            if intercept is not None and intercept(line):
                continue  # relayed by the gateway's raw tools/call path
            item: SessionMessage | Exception
            try:
                item = SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
            except ValueError as exc:
                item = exc  # the server answers a parse error, as with the SDK's transport
            self.inbox.put(item)

    def eof_received(self) -> bool:
        self.inbox.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.inbox.end()


class _Writer(asyncio.Protocol):
    def __init__(self) -> None:
        self.can_write = asyncio.Event()
        self.can_write.set()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()


@asynccontextmanager
async def stdio_pipes(
    intercept: Callable[[bytes], bool] | None = None,
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """The (read, write) stream pair over this process's stdin/stdout (see the module docstring).

    ``intercept`` sees each received line first; a line it returns True for is not passed on. The write half
    is a ``PipeWriter`` when stdin and stdout are pipes (the SDK's stream otherwise, and no line is
    intercepted)."""
    if not (_is_pipe(0) and _is_pipe(1)):
        from mcp.server.stdio import stdio_server

        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    os.set_inheritable(wire_in, False)
    os.set_inheritable(wire_out, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    inbox = Inbox()
    read_file = os.fdopen(wire_in, "rb", buffering=0)
    write_file = os.fdopen(wire_out, "wb", buffering=0)
    transports: list[Any] = []
    try:
        rtransport, _ = await loop.connect_read_pipe(lambda: _Reader(inbox, intercept), read_file)
        transports.append(rtransport)
        wtransport, writer = await loop.connect_write_pipe(_Writer, write_file)
        transports.append(wtransport)
        yield inbox, PipeWriter(wtransport, writer.can_write)
    finally:
        for transport in transports:
            transport.close()
        inbox.close()
        read_file.close()  # the wire's descriptors; fds 0 and 1 stay on /dev/null and stderr
        write_file.close()
