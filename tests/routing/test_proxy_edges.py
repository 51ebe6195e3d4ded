"""The proxy against an upstream that misbehaves -- silent, rude, malformed -- and clients that give up: each
case ends in a clear answer or a closed connection, never a hang, and the proxy keeps serving."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_for
from tests.routing.conftest import KEY
from tests.support.proxy_thread import ProxyThread, run_proxy
from tests.support.raw_upstream import CLOSE, HANG, RawUpstream, run_raw_upstream, sse_answer
from ultramax.routing import Ledger, Router

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
JSON_OK = b'{"id":"msg_1","type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":7,"output_tokens":3}}'
MESSAGE_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-sonnet-4-5",'
    b'"usage":{"input_tokens":11,"output_tokens":1}}}\n\n'
)
MESSAGE_END = (
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def json_answer(body: bytes = JSON_OK, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.fixture
def proxy_to() -> Iterator[Any]:
    """Start a proxy in front of a raw upstream: ``proxy_to(upstream, **options)``."""
    running: list[Any] = []

    def start(upstream: RawUpstream, router: Router, ledger: Ledger, **options: float) -> ProxyThread:
        context = run_proxy(router, ledger, upstream.base_url, **options)
        running.append(context)
        return context.__enter__()

    yield start
    for context in reversed(running):
        context.__exit__(None, None, None)


def post(conn: http.client.HTTPConnection, path: str = "/v1/messages") -> tuple[int, bytes]:
    conn.request(
        "POST", path, body=json.dumps(BODY).encode(), headers={"content-type": "application/json", "x-api-key": KEY}
    )
    response = conn.getresponse()
    return response.status, response.read()


def connect(proxy: ProxyThread) -> closing[http.client.HTTPConnection]:
    parts = urlsplit(proxy.base_url)
    return closing(http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10))


def post_once(proxy: ProxyThread) -> tuple[int, bytes]:
    """One request on a connection of its own."""
    with connect(proxy) as conn:
        return post(conn)


def test_an_upstream_that_never_answers_gets_a_504_and_its_connection_is_closed(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    with run_raw_upstream([HANG]) as upstream:
        proxy = proxy_to(upstream, router, ledger, head_timeout=0.3)
        status, body = post_once(proxy)
        assert status == 504
        error = json.loads(body)["error"]
        assert error["type"] == "api_error" and "did not answer within 0.3 s" in error["message"]
        assert upstream.closed.wait(5), "the silent upstream's connection is not left open"
        wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
        assert ledger.entries()[0]["error"].startswith("timeout")


def test_an_upstream_that_cannot_be_connected_to_in_time_gets_a_504_that_says_so(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    with run_raw_upstream([CLOSE]) as upstream:
        # a zero connect timeout expires before any connection completes: the one way to make it certain here
        proxy = proxy_to(upstream, router, ledger, connect_timeout=0.0, head_timeout=0.3)
        status, body = post_once(proxy)
        assert status == 504
        message = json.loads(body)["error"]["message"]
        assert "could not connect to upstream" in message and "no connection within 0 s" in message
        assert "did not answer" not in message


def test_a_client_that_gives_up_frees_the_upstream_connection_and_the_ledger_says_so(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    with run_raw_upstream([HANG]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        parts = urlsplit(proxy.base_url)
        raw = json.dumps(BODY).encode()
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(raw), raw)
            )
            wait_for(lambda: upstream.requests == 1, 5, "the request to reach the upstream")
        assert upstream.closed.wait(5), "the proxy closes the upstream connection once its client has gone"
        wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
        assert ledger.entries()[0]["error"].startswith("client_gone")


def test_a_damaged_gzip_stream_is_relayed_as_it_came_and_the_proxy_keeps_serving(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    damaged = gzip.compress(MESSAGE_START)[:12] + b"\x00not gzip at all\xff" * 4
    answer = sse_answer([damaged], headers=[b"Content-Encoding: gzip"])
    with run_raw_upstream([answer, json_answer()]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        with connect(proxy) as conn:
            assert post(conn) == (200, damaged)
            assert post(conn) == (200, JSON_OK), "the same connection serves the next request"
        wait_for(lambda: len(ledger.entries()) == 2, 5, "both requests in the ledger")


def test_an_answer_both_chunked_and_with_a_length_is_framed_by_its_chunks(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(JSON_OK), JSON_OK)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked
    )
    with run_raw_upstream([answer, json_answer()]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        with connect(proxy) as conn:
            assert post(conn) == (200, JSON_OK)
            assert post(conn) == (200, JSON_OK), "nothing of the first answer spills into the second"


def test_a_pass_through_whose_upstream_closes_without_answering_gets_a_502(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    with run_raw_upstream([CLOSE]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        with connect(proxy) as conn:
            conn.request("GET", "/v1/models", headers={"x-api-key": KEY})
            response = conn.getresponse()
            assert response.status == 502
            assert "failed before answering" in json.loads(response.read())["error"]["message"]


def test_a_stream_with_crlf_line_endings_is_priced_from_its_usage(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    answer = sse_answer([MESSAGE_START, MESSAGE_END], newline=b"\r\n")
    with run_raw_upstream([answer]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        status, body = post_once(proxy)
        assert status == 200 and b"message_stop" in body
        wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
        [row] = ledger.entries()
        assert (row["input_tokens"], row["output_tokens"]) == (11, 5)
        assert row["cost"] > 0


def test_a_kept_alive_connection_the_upstream_had_closed_is_retried_on_a_new_one(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    # the second request lands on the pooled connection, which the upstream closes unanswered (its keep-alive
    # timeout, racing the request): the proxy sends it again on a new connection instead of answering 502
    with run_raw_upstream([json_answer(), CLOSE, json_answer(), CLOSE, json_answer(), json_answer()]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        assert post_once(proxy) == (200, JSON_OK)
        assert post_once(proxy) == (200, JSON_OK)
        assert (upstream.connections, upstream.requests) == (2, 3)
        with connect(proxy) as conn:
            conn.request("GET", "/v1/models", headers={"x-api-key": KEY})  # the pass-through retries the same way
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, JSON_OK)
        assert post_once(proxy) == (200, JSON_OK)
        assert (upstream.connections, upstream.requests) == (3, 6)


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ("Content-Length: \u00b2", b""),  # a digit to str.isdigit(), not to HTTP
        ("Transfer-Encoding: chunked", b"-1\r\nx\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked", b"0x10\r\n0123456789abcdef\r\n0\r\n\r\n"),
    ],
    ids=["superscript-length", "negative-chunk", "hex-prefixed-chunk"],
)
def test_a_request_with_malformed_framing_gets_a_400_naming_it(
    router: Router, ledger: Ledger, proxy_to: Any, framing: str, body: bytes
) -> None:
    with run_raw_upstream([]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        parts = urlsplit(proxy.base_url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
            sock.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode("latin-1") + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"ultramax proxy: bad" in answer
        assert upstream.requests == 0


def test_a_stream_cut_short_is_charged_for_the_output_it_relayed_and_says_it_is_an_estimate(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    delta = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + b"word " * 40 + b'"}}\n\n'
    )
    start = b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{}}\n\n'
    events = [MESSAGE_START, start, *[delta] * 50]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)  # no message_delta, no last chunk: it stalls
    with run_raw_upstream([head + body]) as upstream:
        proxy = proxy_to(upstream, router, ledger, idle_timeout=0.3)
        with connect(proxy) as conn, pytest.raises(http.client.IncompleteRead):
            post(conn)
        wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
        [row] = ledger.entries()
        assert 2000 // 4 <= row["output_tokens"] <= 50 * len(delta) // 4, "about 200 words x 50 deltas"
        assert "output tokens estimated" in row["error"] and row["cost"] > 0


def test_a_fallback_model_that_gives_no_answer_ends_the_stream_the_client_has_with_an_error_event(
    router: Router, ledger: Ledger, proxy_to: Any
) -> None:
    overloaded = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    hard = "Design the architecture of a distributed, fault-tolerant consensus service and explain the trade-offs."
    body = json.dumps(
        {"model": "claude-opus-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": hard}]}
    )
    # the routed model's stream is overloaded before its content (the client already has the 200 head); the
    # fallback's connection closes without an answer
    with run_raw_upstream([sse_answer([MESSAGE_START, overloaded]), CLOSE]) as upstream:
        proxy = proxy_to(upstream, router, ledger)
        with connect(proxy) as conn:
            conn.request(
                "POST", "/v1/messages", body=body, headers={"content-type": "application/json", "x-api-key": KEY}
            )
            response = conn.getresponse()
            assert response.status == 200
            data = response.read()  # a whole chunked body, not a connection cut mid-answer
        assert data.startswith(b"event: error\n") and b"upstream failed before answering" in data
        assert MESSAGE_START not in data, "nothing of the overloaded attempt reached the client"
        assert upstream.requests == 2
        wait_for(lambda: len(ledger.entries()) == 2, 5, "both attempts in the ledger")
        first, fallback = ledger.entries()
        assert first["error"].startswith("overloaded_error") and first["cost"] == 0
        assert fallback["error"].startswith("connection") and fallback["fallback_from"] == first["model"]
