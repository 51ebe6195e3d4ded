"""The SSE event store behind the gateway's streamable HTTP face: event ids, bounded replay, resumption.

Every message the gateway sends on an SSE stream of a 2025-era HTTP session is stored here first and gets an
event id; a client that lost the stream (its connection dropped, or the gateway closed it to make it poll:
SEP-1699) reconnects with ``GET`` and ``Last-Event-ID`` and is sent what it missed, then the rest of the stream
as it comes. The spec's rules, and how they hold here:

- ids are unique within the session and name their stream (``<session tag>-<stream no>-<sequence>``); a store
  belongs to one session, so an id from another session is simply unknown;
- a replay sends only events of the cursor's own stream, never another's;
- a request's stream ends with its response: a resumed request stream is followed here until the response has
  been sent, a resumed standalone stream is handed back to the SDK to stay open;
- the store is bounded by event count, serialised size and age, oldest first; a cursor that fell out of it
  (or was never issued) is refused with :class:`EventReplayError` -- a clear error, never a silent gap.

Each event's JSON is serialised once, at store time; the transport sends that same text live
(:meth:`ReplayStore.data`) instead of serialising the message again.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import mcp_types as types
from mcp.server.streamable_http import GET_STREAM_KEY, EventCallback, EventId, EventMessage, EventStore, StreamId

from ultramax.errors import UltramaxError

__all__ = ["EventReplayError", "ReplayLimits", "ReplayStore", "StoredEvent"]


class EventReplayError(UltramaxError):
    """A ``Last-Event-ID`` the store cannot resume from: never issued by this session, or no longer kept."""

    def __init__(self, event_id: str, kind: Literal["unknown", "expired"], detail: str) -> None:
        super().__init__(detail)
        self.event_id = event_id
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ReplayLimits:
    """How much of a session's SSE traffic is kept for replay (the oldest events go first)."""

    max_events: int = 1000
    max_bytes: int = 4 * 1024 * 1024  # serialised JSON, all streams of the session together
    max_age_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1 or not self.max_age_s > 0:
            raise ValueError(f"replay limits must be positive: {self}")

    def describe(self) -> str:
        return f"the last {self.max_events} events, {self.max_bytes // 1024} KiB, {self.max_age_s:g} s"


@dataclass(slots=True)
class StoredEvent:
    """One stored SSE event: its place in the session's sequence, its stream, its id and its JSON."""

    seq: int
    stream: StreamId
    stream_no: int
    event_id: EventId
    data: str | None  # the message's JSON; None for a priming event (the stream's first cursor)
    final: bool  # a response or an error: nothing follows it on its stream
    at: float


class ReplayStore(EventStore):
    """One session's SSE events, kept for replay within :class:`ReplayLimits`.

    ``detach`` (given by the transport) closes a request stream's live connection when a client resumes that
    stream elsewhere: the newest connection takes the stream over.
    """

    def __init__(
        self,
        limits: ReplayLimits | None = None,
        *,
        detach: Callable[[StreamId], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or ReplayLimits()
        self._detach = detach
        self._clock = clock
        self._tag = secrets.token_hex(4)
        self._events: deque[StoredEvent] = deque()
        self._by_id: dict[EventId, StoredEvent] = {}
        self._next_seq = 0
        self._bytes = 0
        self._stream_no: dict[StreamId, int] = {}
        self._stream_events: dict[StreamId, int] = {}
        self._streams_seen = 0
        self._changed = anyio.Event()
        self._closed = False

    # -- what is kept -----------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Events held (no ``__len__``: the SDK tests a store for truth to see whether it has one)."""
        return len(self._events)

    @property
    def size(self) -> int:
        """Serialised bytes held."""
        return self._bytes

    def data(self, event_id: EventId) -> str | None:
        """The JSON stored for an event (None if it is a priming event or no longer kept)."""
        event = self._by_id.get(event_id)
        return event.data if event is not None else None

    # -- EventStore ---------------------------------------------------------------------------------------
    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        return self.add(stream_id, message)

    def add(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        """Store one event of ``stream_id`` (``message`` None: a priming event) and return its id."""
        stream_no = self._stream_no.get(stream_id)
        if stream_no is None:
            self._streams_seen += 1
            stream_no = self._stream_no[stream_id] = self._streams_seen
        seq = self._next_seq
        self._next_seq += 1
        data = message.model_dump_json(by_alias=True, exclude_unset=True) if message is not None else None
        # a request's stream ends with its response; the standalone stream never ends (a null-id error on it is
        # just another event)
        final = stream_id != GET_STREAM_KEY and isinstance(message, types.JSONRPCResponse | types.JSONRPCError)
        event = StoredEvent(seq, stream_id, stream_no, f"{self._tag}-{stream_no}-{seq}", data, final, self._clock())
        self._events.append(event)
        self._by_id[event.event_id] = event
        self._stream_events[stream_id] = self._stream_events.get(stream_id, 0) + 1
        self._bytes += len(data) if data is not None else 0
        self._evict()
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        return event.event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the cursor's stream from after the cursor: the SDK's replay hook (see the module docstring).

        Returns the standalone stream's id (the SDK keeps it open) or None (the replay response ends here).
        An unusable cursor is refused by :meth:`locate` before the SDK starts its response; one that falls
        out of the store while this runs ends the stream, and the client's next resume gets the error.
        """
        try:
            cursor = self.locate(last_event_id)
        except EventReplayError:
            return None
        if cursor.final:
            return None  # the client has the stream's last word already
        stream = cursor.stream
        if stream != GET_STREAM_KEY and self._detach is not None:
            self._detach(stream)  # the newest connection takes the stream over
        seq, final = await self._send_after(stream, cursor.seq, send_callback)
        if final or seq is None:
            return None
        if stream == GET_STREAM_KEY:
            return stream
        while not self._closed:  # follow the request's stream until its response (or the session's end)
            await self._changed.wait()
            seq, final = await self._send_after(stream, seq, send_callback)
            if final or seq is None:
                return None
        return None

    # -- cursors ------------------------------------------------------------------------------------------
    def locate(self, event_id: EventId) -> StoredEvent:
        """The stored event ``event_id`` names; raises :class:`EventReplayError` saying why it cannot be used."""
        self._evict()
        parts = event_id.split("-")
        if len(parts) != 3 or parts[0] != self._tag or not (parts[1].isdigit() and parts[2].isdigit()):
            raise EventReplayError(event_id, "unknown", f"Last-Event-ID {event_id!r} was not issued by this session")
        seq = int(parts[2])
        first = self._events[0].seq if self._events else self._next_seq
        if seq >= self._next_seq:
            raise EventReplayError(event_id, "unknown", f"Last-Event-ID {event_id!r} was not issued by this session")
        if seq < first:
            raise EventReplayError(
                event_id,
                "expired",
                f"Last-Event-ID {event_id!r} has expired: the gateway keeps {self.limits.describe()} of a session's "
                "stream events; send the request again",
            )
        event = self._events[seq - first]
        if event.stream_no != int(parts[1]):
            raise EventReplayError(event_id, "unknown", f"Last-Event-ID {event_id!r} was not issued by this session")
        return event

    def close(self) -> None:
        """The session is over: wake and end every replay that is waiting, forget everything."""
        self._closed = True
        self._events.clear()
        self._by_id.clear()
        self._stream_no.clear()
        self._stream_events.clear()
        self._bytes = 0
        self._changed.set()

    # -- internals ----------------------------------------------------------------------------------------
    async def _send_after(self, stream: StreamId, seq: int, send: EventCallback) -> tuple[int | None, bool]:
        """Send the stored events of ``stream`` after ``seq``; (last seq sent, whether it ended the stream).

        The seq is None when events after ``seq`` were dropped before they could be sent (the stream cannot go
        on without a gap). Positions are worked out again after every send: the store may change meanwhile."""
        while True:
            events = self._events
            first = events[0].seq if events else self._next_seq
            if seq + 1 < first:
                return None, False
            index = seq + 1 - first
            while index < len(events) and events[index].stream != stream:
                index += 1
            if index >= len(events):
                return seq, False
            event = events[index]
            seq = event.seq
            if event.data is None:
                continue  # a priming event: a cursor only
            message = types.jsonrpc_message_adapter.validate_json(event.data, by_name=False)
            await send(EventMessage(message, event.event_id))
            if event.final:
                return seq, True

    def _evict(self) -> None:
        limits = self.limits
        horizon = self._clock() - limits.max_age_s
        events = self._events
        while events and (len(events) > limits.max_events or self._bytes > limits.max_bytes or events[0].at < horizon):
            event = events.popleft()
            del self._by_id[event.event_id]
            self._bytes -= len(event.data) if event.data is not None else 0
            left = self._stream_events[event.stream] - 1
            if left:
                self._stream_events[event.stream] = left
            else:
                del self._stream_events[event.stream]
                self._stream_no.pop(event.stream, None)
