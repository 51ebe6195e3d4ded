"""Reading an answer while it is relayed: an SSE stream's usage, model, errors and first content, piece by
piece, and a whole JSON body's error. Nothing here changes a byte the client receives."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from ultramax.routing.catalog import Usage

__all__ = ["SseWatcher", "decode_body", "json_error"]

#: Events the proxy reads: any other event (deltas, pings, block stops) is skipped unparsed.
_MARKERS = (b"message_start", b"message_delta", b"message_stop", b"content_block_start", b"error")


@dataclass(slots=True)
class SseWatcher:
    """Follows an SSE stream piece by piece for what the proxy needs: usage, model, errors, first content."""

    usage: Usage = field(default_factory=Usage)
    model: str = ""
    error_type: str = ""
    error_message: str = ""
    content_started: bool = False
    stopped: bool = False
    delta_bytes: int = 0
    """Bytes of the stream after its first event: with ``delta_events``, an estimate of the output written so far
    for a stream that ends before its final usage (a client that pressed Esc)."""
    delta_events: int = 0
    unreadable: bool = False
    """The stream could not be decoded (a damaged compressed body): it is still relayed as it came, but its
    usage is no longer followed."""
    _buffer: bytearray = field(default_factory=bytearray)
    _inflate: Any = None

    def feed(self, data: bytes) -> None:
        if self.unreadable:
            return
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error:
                self.unreadable = True
                self._buffer.clear()
                return
        self._buffer += data
        self.delta_bytes += len(data)
        self.delta_events += data.count(b"content_block_delta")
        crlf = b"\r" in self._buffer  # events may end in CRLF CRLF, which holds no LF LF
        last = self._buffer.rfind(b"\n\n")
        if crlf:
            last = max(last, self._buffer.rfind(b"\r\n\r\n"))
        if last < 0:
            return
        # Fast path: most of a stream is content_block_delta events, of which the proxy needs nothing.
        if not crlf and not any(self._buffer.find(marker, 0, last) >= 0 for marker in _MARKERS):
            del self._buffer[: last + 2]
            return
        while True:
            end = self._buffer.find(b"\n\n")
            end_crlf = self._buffer.find(b"\r\n\r\n")
            if end < 0 and end_crlf < 0:
                return
            if end < 0 or (0 <= end_crlf < end):
                cut, skip = end_crlf, 4
            else:
                cut, skip = end, 2
            event = bytes(self._buffer[:cut])
            del self._buffer[: cut + skip]
            self._event(event)

    def _event(self, raw: bytes) -> None:
        name = ""
        data_lines = []
        for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                data_lines.append(line[5:].lstrip())
        if name in ("content_block_delta", "ping", "content_block_stop"):
            return  # the bulk of a stream: nothing the proxy needs
        if name == "content_block_start":
            self.content_started = True
            return
        if not data_lines:
            return
        try:
            data = json.loads(b"\n".join(data_lines))
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type", name)
        if kind == "content_block_start":
            self.content_started = True
        elif kind == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
            self.model = str(message.get("model") or "")
            self.usage = Usage.from_api(message.get("usage"))
        elif kind == "message_delta":
            usage = data.get("usage")
            self.usage = self.usage.merged(usage if isinstance(usage, dict) else None)
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error" and isinstance(data.get("error"), dict):
            self.error_type = str(data["error"].get("type", ""))
            self.error_message = str(data["error"].get("message", ""))

    def estimated_output_tokens(self) -> int:
        """Output tokens the relayed deltas hold, roughly: their bytes less each event's JSON frame (~100 bytes),
        at four bytes a token. Only for a stream that ended before ``message_delta`` said the real count."""
        return max(0, self.delta_bytes - 100 * self.delta_events) // 4 if self.delta_events else 0

    @classmethod
    def for_encoding(cls, encoding: str) -> SseWatcher:
        watcher = cls()
        if encoding in ("gzip", "x-gzip"):
            watcher._inflate = zlib.decompressobj(wbits=47)
        elif encoding == "deflate":
            watcher._inflate = zlib.decompressobj()
        return watcher


def decode_body(data: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(data, wbits=47)
    if encoding == "deflate":
        return zlib.decompress(data)
    return data


def json_error(data: bytes) -> tuple[str, str]:
    """(error type, message) of an Anthropic error body, or ("", "")."""
    try:
        parsed = json.loads(data)
    except ValueError:
        return "", ""
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        return str(err.get("type", "")), str(err.get("message", ""))
    return "", ""
