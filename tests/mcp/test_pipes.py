"""The pipe plumbing under the gateway's stdio face and its servers: newline framing and the inbox."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from ultramax.mcp.process import Inbox, complete_lines


def _message(n: int) -> SessionMessage:
    return SessionMessage(types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"n": n}))


def test_whole_lines_come_out_of_one_read_and_a_partial_one_waits_for_the_rest() -> None:
    buffer = bytearray()
    assert complete_lines(buffer, b'{"a":1}\n\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']  # blank lines dropped
    assert buffer == b""
    assert complete_lines(buffer, b'{"c":') == [] and buffer == b'{"c":'
    assert complete_lines(buffer, b'3}\n{"d"') == [b'{"c":3}'] and buffer == b'{"d"'
    assert complete_lines(buffer, b":4}\n") == [b'{"d":4}'] and buffer == b""


def test_the_inbox_hands_over_messages_in_order_and_ends_after_the_last_one() -> None:
    async def main() -> list[int]:
        inbox = Inbox()
        got: list[int] = []

        async def read() -> None:
            async for item in inbox:
                assert isinstance(item, SessionMessage) and isinstance(item.message, types.JSONRPCNotification)
                got.append((item.message.params or {})["n"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()  # the reader waits on an empty inbox
            for n in range(3):
                inbox.put(_message(n))
            await anyio.wait_all_tasks_blocked()
            inbox.put(_message(3))
            inbox.end()  # what came before the end is still delivered
            inbox.put(_message(4))  # after the end: dropped
        return got

    assert anyio.run(main) == [0, 1, 2, 3]


def test_a_cancelled_receive_loses_no_message_and_a_closed_inbox_refuses_to_receive() -> None:
    async def main() -> None:
        inbox = Inbox()
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbox.receive)
            await anyio.wait_all_tasks_blocked()  # parked on the empty inbox
            tg.cancel_scope.cancel()
        inbox.put(_message(7))
        item = await inbox.receive()
        assert isinstance(item, SessionMessage) and isinstance(item.message, types.JSONRPCNotification)
        await inbox.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await inbox.receive()

    anyio.run(main)
