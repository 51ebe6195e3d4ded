"""Just enough HTTP/1.1 for a pass-through proxy, on asyncio streams: read a request or a response head,
read a framed body piece by piece as it arrives, write chunked bodies. Header names keep their case and order.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = [
    "HOP_BY_HOP",
    "HttpError",
    "Request",
    "ResponseHead",
    "body_pieces",
    "content_length",
    "read_request",
    "read_response_head",
    "write_chunk",
    "write_last_chunk",
]

#: Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1), plus the framing ones
#: the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
MAX_HEAD = 256 * 1024
MAX_BODY = 64 * 1024 * 1024
# ASCII digits only: str.isdigit() accepts "²" and int(..., 16) accepts "-1", "+a", "1_0" and "0x10"
_DECIMAL = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


def content_length(value: str | None) -> int | None:
    """A Content-Length value as a number, or None if it is absent or not a plain decimal."""
    if value is None or not _DECIMAL.fullmatch(value := value.strip()):
        return None
    return int(value)


class HttpError(Exception):
    """The peer sent something that is not HTTP/1.1 this proxy accepts; ``status`` is the answer to give."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    lower: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def accepts_chunked(self) -> bool:
        """Whether the client can read a chunked response body: HTTP/1.1 can, HTTP/1.0 cannot."""
        return self.version != "HTTP/1.0"

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the answer. Never for HTTP/1.0: its keep-alive is an
        extension whose answers must say ``Connection: keep-alive``, and a client not told so reads until the
        connection closes -- closing it after each answer is always correct."""
        if self.version == "HTTP/1.0":
            return False
        return "close" not in self.lower.get("connection", "").lower()


@dataclass(slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    lower: dict[str, str] = field(default_factory=dict)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.lower.get("transfer-encoding", "").lower()

    @property
    def length(self) -> int | None:
        """The body's declared length; None for a chunked body, whose chunks frame it whatever the length says."""
        return None if self.chunked else content_length(self.lower.get("content-length"))

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request once this response's body is read."""
        if "close" in self.lower.get("connection", "").lower() or self.version == "HTTP/1.0":
            return False
        return self.chunked or self.length is not None

    @property
    def event_stream(self) -> bool:
        return self.lower.get("content-type", "").lower().startswith("text/event-stream")


def _parse_headers(lines: list[bytes]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    headers: list[tuple[str, str]] = []
    lower: dict[str, str] = {}
    for raw in lines:
        if not raw:
            continue
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, f"malformed header line {raw[:80]!r}")
        value = value.strip()
        headers.append((name, value))
        key = name.lower()
        lower[key] = f"{lower[key]}, {value}" if key in lower else value
    return headers, lower


async def _read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "connection closed inside the message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431, "message head too large") from exc
    if len(head) > MAX_HEAD:
        raise HttpError(431, "message head too large")
    return head[:-4].split(b"\r\n")


async def _read_chunked(reader: asyncio.StreamReader, bad: int) -> AsyncIterator[bytes]:
    """Decoded chunked data, as much as has arrived per read (many small SSE chunks become one piece). Bad
    framing is an ``HttpError(bad)``: 400 from a client, 502 from the upstream."""
    buf = bytearray()
    remaining = 0  # data bytes left in the current chunk
    while True:
        out = bytearray()
        while True:
            if remaining:
                take = min(remaining, len(buf))
                out += buf[:take]
                del buf[:take]
                remaining -= take
                if remaining:
                    break
                if len(buf) < 2:
                    buf += await reader.readexactly(2 - len(buf))
                if buf[:2] != b"\r\n":
                    raise HttpError(bad, "chunk not followed by CRLF")
                del buf[:2]
            end = buf.find(b"\r\n")
            if end < 0:
                break
            size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise HttpError(bad, f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            del buf[: end + 2]
            if size == 0:
                if out:
                    yield bytes(out)
                while not (buf.startswith(b"\r\n") or b"\r\n\r\n" in buf):  # trailers, discarded
                    data = await reader.read(65536)
                    if not data:
                        return
                    buf += data
                return
            remaining = size
        if out:
            yield bytes(out)
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(bytes(buf), None)
        buf += data


async def body_pieces(
    reader: asyncio.StreamReader, *, chunked: bool, length: int | None, until_eof: bool, bad: int = 502
) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, whatever the framing (``bad``: the status for broken chunk framing)."""
    if chunked:
        async for piece in _read_chunked(reader, bad):
            yield piece
    elif length is not None:
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            yield data
    elif until_eof:
        while data := await reader.read(65536):
            yield data


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """The next request on a client connection with its whole body, or None at a clean end of the connection."""
    lines = await _read_head(reader)
    if lines is None:
        return None
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError as exc:
        raise HttpError(400, f"malformed request line {lines[0][:80]!r}") from exc
    if not version.startswith("HTTP/1."):
        raise HttpError(505, f"{version} is not supported")
    headers, lower = _parse_headers(lines[1:])
    request = Request(method, target, version, headers, b"", lower)
    if lower.get("expect", "").lower() == "100-continue" and version != "HTTP/1.0":  # 1.0 knows no 1xx
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    chunked = "chunked" in lower.get("transfer-encoding", "").lower()
    length_text = lower.get("content-length")
    if chunked or length_text:
        if length_text and not chunked and content_length(length_text) is None:
            raise HttpError(400, "bad Content-Length")
        length = None if chunked else content_length(length_text) or 0
        if length is not None and length > MAX_BODY:
            raise HttpError(413, "request body too large")
        parts = []
        total = 0
        async for piece in body_pieces(reader, chunked=chunked, length=length, until_eof=False, bad=400):
            total += len(piece)
            if total > MAX_BODY:
                raise HttpError(413, "request body too large")
            parts.append(piece)
        request.body = b"".join(parts)
    return request


async def read_response_head(reader: asyncio.StreamReader) -> ResponseHead:
    while True:
        lines = await _read_head(reader)
        if lines is None:
            raise ConnectionResetError("upstream closed the connection before answering")
        try:
            version, status, *reason = lines[0].decode("latin-1").split(" ", 2)
            code = int(status)
        except ValueError as exc:
            raise HttpError(502, f"malformed status line {lines[0][:80]!r}") from exc
        headers, lower = _parse_headers(lines[1:])
        if 100 <= code < 200:  # 100 Continue and friends: wait for the real answer
            continue
        return ResponseHead(version, code, reason[0] if reason else "", headers, lower)


def write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.writelines((b"%x\r\n" % len(data), data, b"\r\n"))


def write_last_chunk(writer: asyncio.StreamWriter) -> None:
    writer.write(b"0\r\n\r\n")
