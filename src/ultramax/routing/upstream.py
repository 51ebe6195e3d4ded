"""Where the proxy sends requests: the upstream's address, a pool of kept-alive connections, and the request
head it writes (hop-by-hop headers dropped, ``Accept-Encoding`` limited to what the proxy can decode)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ultramax.redact import redact
from ultramax.routing.http1 import HOP_BY_HOP, Request

__all__ = ["DECODABLE", "ConnectTimeout", "Connection", "Upstream", "accept_encoding", "shown_url"]

DECODABLE = frozenset({"gzip", "deflate", "identity", "x-gzip"})
"""Content encodings the proxy can decode to read an answer's usage for the ledger."""


def shown_url(url: str) -> str:
    """``url`` as it may be printed, logged or put in an error: without the user and password before its host (a
    token there can be a lone user name, which ``redact`` cannot tell from a name) and with secrets in its path
    or query redacted."""
    scheme, sep, rest = url.partition("://")
    end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    authority, tail = rest[:end], rest[end:]
    if sep and "@" in authority:
        authority = "[REDACTED:credentials]@" + authority.rpartition("@")[2]
    return redact(scheme + sep + authority + tail)


class ConnectTimeout(TimeoutError):
    """No connection to the upstream within the connect timeout (distinct from an answer that is slow to come)."""


def accept_encoding(value: str) -> str:
    """The client's Accept-Encoding without the encodings the proxy cannot decode (for usage accounting)."""
    kept = [part for part in value.split(",") if part.split(";", 1)[0].strip().lower() in DECODABLE]
    return ",".join(kept).strip() or "identity"


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    """Taken from the pool: the upstream may have closed it since, which shows only when a request is sent."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Upstream:
    """Where requests go (``https://api.anthropic.com`` or any base URL), with a pool of kept-alive connections."""

    def __init__(self, base_url: str, *, connect_timeout: float = 30.0, max_idle: int = 64) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, got {shown_url(base_url)!r}")
        self.base_url = base_url.rstrip("/")
        self.shown = shown_url(self.base_url)
        """``base_url`` for messages: never its credentials."""
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._idle: list[Connection] = []
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle

    async def connect(self, *, fresh: bool = False) -> Connection:
        """A kept-alive connection from the pool, or a new one (always new with ``fresh``)."""
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                    limit=1024 * 1024,
                ),
                self._connect_timeout,
            )
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self._connect_timeout:g} s") from None
        return Connection(reader, writer)

    def release(self, conn: Connection, reusable: bool) -> None:
        if reusable and len(self._idle) < self._max_idle and not conn.writer.is_closing():
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def request_bytes(self, request: Request, body: bytes) -> bytes:
        lines = [f"{request.method} {self.prefix}{request.target} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in request.headers:
            key = name.lower()
            if key in HOP_BY_HOP or key == "expect":
                continue
            lines.append(f"{name}: {accept_encoding(value) if key == 'accept-encoding' else value}")
        if body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body
