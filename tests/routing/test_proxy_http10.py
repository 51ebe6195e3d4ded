"""An HTTP/1.0 client knows no chunked transfer coding: an answer of unknown length reaches it as the bytes
themselves, ended by closing the connection, while HTTP/1.1 clients keep chunked framing and keep-alive."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from tests.conftest import wait_for
from tests.routing.conftest import KEY
from tests.support.proxy_thread import ProxyThread, run_proxy
from tests.support.raw_upstream import run_raw_upstream
from tests.support.upstream import StandInUpstream, answer_events
from ultramax.routing import Ledger, Router

CHUNKED_JSON = b'{"data":[{"type":"model","id":"claude-opus-5"}],"has_more":false}'


def exchange(base_url: str, request: bytes) -> tuple[list[str], bytes]:
    """Send raw request bytes, read until the proxy closes the connection: (head lines, body bytes)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # a proxy that kept the connection open would time this out
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def header(lines: list[str], name: str) -> str | None:
    found = [value.strip() for key, _, value in (line.partition(":") for line in lines[1:]) if key.lower() == name]
    return found[0] if found else None


def test_an_http10_client_gets_a_stream_unchunked_and_the_connection_closed_at_its_end(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    body = json.dumps(
        {"model": "claude-opus-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    head, data = exchange(
        proxy.base_url,
        b"POST /v1/messages HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
        b"x-api-key: %s\r\nContent-Length: %d\r\n\r\n%s" % (KEY.encode(), len(body), body),
    )
    assert head[0] == "HTTP/1.1 200 OK"
    assert header(head, "transfer-encoding") is None and header(head, "content-length") is None
    assert header(head, "connection") == "close", "even though the client asked to keep the connection"
    seen = upstream.recorded()[-1]
    events = answer_events(seen.json["model"], seen.body, 8, 16)
    sent = b"".join(f"event: {n}\ndata: {json.dumps(d, separators=(',', ':'))}\n\n".encode() for n, d in events)
    assert data == sent, "the SSE bytes as the upstream sent them, with no chunk sizes among them"
    wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
    [row] = ledger.entries()
    assert row["status"] == 200 and row["output_tokens"] == 8 * 4 and row["cost"] > 0


def test_a_chunked_pass_through_answer_reaches_an_http10_client_close_delimited_and_http11_still_chunked(
    router: Router, ledger: Ledger
) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNKED_JSON), CHUNKED_JSON)
    )
    with run_raw_upstream([answer, answer]) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        head, data = exchange(proxy.base_url, b"GET /v1/models HTTP/1.0\r\nx-api-key: %s\r\n\r\n" % KEY.encode())
        assert head[0] == "HTTP/1.1 200 OK" and header(head, "connection") == "close"
        assert header(head, "transfer-encoding") is None
        assert data == CHUNKED_JSON
        head, data = exchange(
            proxy.base_url,
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: %s\r\n\r\n" % KEY.encode(),
        )
        assert header(head, "transfer-encoding") == "chunked"
        assert data == b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNKED_JSON), CHUNKED_JSON)


def test_an_http10_client_asking_for_keep_alive_gets_a_sized_answer_and_the_connection_closed_after_it(
    router: Router, ledger: Ledger
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(CHUNKED_JSON),
        CHUNKED_JSON,
    )
    with run_raw_upstream([answer]) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        # exchange() reads until the connection closes: one kept open would time it out
        head, data = exchange(
            proxy.base_url,
            b"GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nx-api-key: %s\r\n\r\n"
            % KEY.encode(),
        )
        assert head[0] == "HTTP/1.1 200 OK", "no 100 Continue, which an HTTP/1.0 client cannot read, comes first"
        assert header(head, "content-length") == str(len(CHUNKED_JSON)) and data == CHUNKED_JSON
