"""``ultramax proxy``: an Anthropic-compatible pass-through on loopback that changes one thing, ``model``.

Claude Code (``ANTHROPIC_BASE_URL=http://127.0.0.1:8787``) sends its requests here. ``POST /v1/messages``
is analysed and routed: the request's bytes go upstream unchanged except the value of the top-level
``model`` key, spliced into the original bytes (every header, ``anthropic-beta``, the ``system`` array and
every body field stay exactly as sent). The answer is relayed as it arrives -- each SSE piece is written to
the client as soon as it is read, pings included -- and upstream errors are relayed unmodified. An answer of
unknown length (a stream) is chunked to an HTTP/1.1 client; an HTTP/1.0 client, which knows no chunked coding,
gets the bytes themselves with ``Connection: close``, and the connection ends with the answer.

An overloaded model (HTTP 529 or an ``overloaded_error`` event) is retried on the next model of the
router's fallback chain, but only before the first content block: until a stream's first
``content_block_start`` the proxy holds its first events (``message_start``, ``ping``), at most
``hold_limit`` seconds, so that a failed attempt never reaches the client. Usage from the stream
(``message_start`` + ``message_delta``, cache tokens included) goes to the cost ledger and the hourly budget;
once the budget is spent, requests get an Anthropic-shaped 429 that Claude Code does not retry.

``POST /ultramax/v1/prewarm`` (``{"prompt": ...}``, from the daemon's UserPromptSubmit stage) is answered here
and never forwarded: the proxy scores that prompt on a worker thread so that its request, moments later, finds
the estimate ready (``routing.prewarm``; see ``prewarm.py``).

Everything else (``count_tokens``, ``/v1/models``, ``HEAD /api/hello``, batches) passes through untouched.
API keys are never logged: log lines carry method, path, models, status and cost only.

The one header the proxy may change is ``Accept-Encoding``: encodings it cannot decode (br, zstd) are dropped
from the list, because the ledger must read the usage in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ultramax.prewarm import PREWARM_PATH, parse_hint
from ultramax.redact import redact
from ultramax.routing.catalog import Usage
from ultramax.routing.difficulty import load_difficulty_model
from ultramax.routing.http1 import (
    HOP_BY_HOP,
    HttpError,
    Request,
    ResponseHead,
    body_pieces,
    read_request,
    read_response_head,
    write_chunk,
    write_last_chunk,
)
from ultramax.routing.ledger import Ledger, LedgerEntry
from ultramax.routing.prewarm import PromptScorer
from ultramax.routing.router import Decision, Router
from ultramax.routing.sse import SseWatcher, decode_body, json_error
from ultramax.routing.tier_model import ask_embedding, load_tier_model
from ultramax.routing.upstream import DECODABLE, Connection, ConnectTimeout, Upstream

__all__ = ["ProxyServer", "SseWatcher", "Upstream", "splice_model"]

log = logging.getLogger("ultramax.proxy")

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


# -- the one change: the model value ----------------------------------------------------------------------
def _top_level_spans(text: str, key: str) -> list[tuple[int, int]]:
    """Character spans of the values of ``key`` in the top-level JSON object ``text``."""
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if i >= len(text) or text[i] != "{":
        raise ValueError("not a JSON object")
    i += 1
    spans: list[tuple[int, int]] = []
    while True:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i] == "}":
            return spans
        if text[i] != '"':
            raise ValueError("expected a key")
        name, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i] != ":":
            raise ValueError("expected ':'")
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        start = i
        _, i = _DECODER.raw_decode(text, i)
        if name == key:
            spans.append((start, i))
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i] == ",":
            i += 1
        elif text[i] == "}":
            return spans
        else:
            raise ValueError("expected ',' or '}'")


def splice_model(raw: bytes, model: str) -> bytes:
    """``raw`` (a JSON object) with the value of its top-level ``model`` replaced; every other byte kept."""
    text = raw.decode("utf-8")
    spans = _top_level_spans(text, "model")
    if not spans:
        raise ValueError("the request has no top-level model")
    value = json.dumps(model).encode()
    ascii_only = len(text) == len(raw)
    out = bytearray()
    last = 0
    for start, end in spans:
        b_start = start if ascii_only else len(text[:start].encode("utf-8"))
        b_end = end if ascii_only else len(text[:end].encode("utf-8"))
        out += raw[last:b_start]
        out += value
        last = b_end
    out += raw[last:]
    return bytes(out)


async def _cancel_when_gone(reader: asyncio.StreamReader, task: asyncio.Task[None], every: float = 1.0) -> None:
    """Cancel ``task`` once its client has closed the connection, as nginx does: otherwise a request whose
    client gave up would hold its upstream connection until the upstream answered. A client sends nothing
    more while it waits for an answer, so the end of its stream means it has gone."""
    while not reader.at_eof():
        await asyncio.sleep(every)
    task.cancel()


# -- the server ------------------------------------------------------------------------------------------
def _error_body(kind: str, message: str, request_id: str, **extra: Any) -> bytes:
    # every answer the proxy writes itself: its message can quote what came in (a header line) or went wrong
    error: dict[str, Any] = {"type": kind, "message": redact(message), **extra}
    return json.dumps({"type": "error", "error": error, "request_id": request_id}).encode()


def _response_head(
    status: int, reason: str, headers: list[tuple[str, str]], *, framing: list[tuple[str, str]]
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}".rstrip()]
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in HOP_BY_HOP]
    lines += [f"{n}: {v}" for n, v in framing]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


@dataclass(slots=True)
class _Reply:
    """The answer to one client request as it is written: the client's connection, and how a body of unknown
    length (a stream) is framed on it -- chunked for HTTP/1.1; for an HTTP/1.0 client, which knows no chunked
    coding, as the bytes themselves, ended by closing the connection."""

    writer: asyncio.StreamWriter
    chunked: bool = True
    closes: bool = False
    """A close-delimited body was started: the connection ends with it."""
    head_sent: bool = False
    """The client has the response head (of a relayed answer): a later failure can only end its body."""

    def open_ended(self) -> list[tuple[str, str]]:
        """The framing headers of a body whose length is not known before it ends."""
        if self.chunked:
            return [("Transfer-Encoding", "chunked")]
        self.closes = True
        return [("Connection", "close")]

    def body(self, data: bytes) -> None:
        """Part of a body framed by ``open_ended``."""
        if self.chunked:
            write_chunk(self.writer, data)
        elif data:
            self.writer.write(data)

    def end(self) -> None:
        """The end of a body framed by ``open_ended`` (closing the connection ends a close-delimited one)."""
        if self.chunked:
            write_last_chunk(self.writer)


@dataclass(slots=True)
class _Hold:
    """SSE pieces held back until the first content block (so an overloaded attempt can be retried)."""

    reply: _Reply
    active: bool
    held: list[bytes] = field(default_factory=list)

    def release(self) -> None:
        if self.active:
            self.active = False
            for part in self.held:
                self.reply.body(part)
            self.held.clear()


@dataclass(slots=True)
class _Attempt:
    model: str
    tier: str
    status: int = 0
    usage: Usage = field(default_factory=Usage)
    error_type: str = ""
    error_message: str = ""
    ttfb_ms: float = 0.0
    overloaded: bool = False
    answered_model: str = ""
    estimated: bool = False
    """Output tokens estimated from a stream cut short, not reported by the upstream."""
    retry: bool = False
    """The model was overloaded before any content and nothing of its answer was sent: try the next one."""


class ProxyServer:
    """The proxy. ``await start()``, then ``base_url``; ``await close()`` when done."""

    def __init__(
        self,
        router: Router,
        ledger: Ledger | None,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hold_limit: float = 5.0,
        head_timeout: float = 600.0,
        idle_timeout: float = 300.0,
        connect_timeout: float = 30.0,
        on_record: Callable[[LedgerEntry], None] | None = None,
    ) -> None:
        self.router = router
        self.ledger = ledger
        self.upstream = Upstream(upstream, connect_timeout=connect_timeout)
        self.host = host
        self.port = port
        self.hold_limit = hold_limit
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.on_record = on_record
        self._unpriced_warned: set[str] = set()  # models the catalog cannot price, warned about once each
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.requests_handled = 0
        self.scorer = PromptScorer(sentence_embedding=router.config.sentence_embedding)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        # the router's learned weights, read now: a missing or corrupt file stops the proxy at startup with a
        # message naming it, instead of failing the first request of someone's session
        load_difficulty_model()
        load_tier_model()
        # and the sentence embedding loaded now (~0.3 s), not on the first prompt; where it cannot run, this logs
        # why once and the tier model's fallback routes
        if self.router.config.sentence_embedding:
            ask_embedding("warm up the router's sentence embedding")
        self._server = await asyncio.start_server(self._client, self.host, self.port, limit=1024 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        self.scorer.close()
        self.upstream.close()

    # -- per connection ------------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except HttpError as exc:
                    body = _error_body("invalid_request_error", f"ultramax proxy: {exc}", "")
                    writer.write(
                        _response_head(
                            exc.status,
                            _REASONS.get(exc.status, ""),
                            [],
                            framing=[
                                ("Content-Type", "application/json"),
                                ("Content-Length", str(len(body))),
                                ("Connection", "close"),
                            ],
                        )
                        + body
                    )
                    await writer.drain()
                    return
                if request is None:
                    return
                self.requests_handled += 1
                watch = asyncio.get_running_loop().create_task(_cancel_when_gone(reader, task))
                try:
                    keep = await self._handle(request, writer)
                finally:
                    watch.cancel()
                await writer.drain()
                if not keep or not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, TimeoutError):
            return
        except Exception:  # a defect must cost this one connection, never the proxy or its other streams
            log.exception("ultramax proxy: request failed; its connection is closed")
            return
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection can carry the next one."""
        if request.path.rstrip("/") == PREWARM_PATH:
            return self._prewarm(request, writer)
        reply = _Reply(writer, chunked=request.accepts_chunked)
        if request.method == "POST" and request.path.rstrip("/") == "/v1/messages":
            keep = await self._messages(request, reply)
        else:
            keep = await self._passthrough(request, reply)
        return keep and not reply.closes

    def _prewarm(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """A prompt about to be sent: 202 at once, and score it on the worker thread (never forwarded)."""
        status, body = 202, b""
        if request.method != "POST":
            status = 405
            body = _error_body("invalid_request_error", f"ultramax proxy: {PREWARM_PATH} takes POST", "")
        else:
            try:
                prompt = parse_hint(request.body)
            except ValueError as exc:
                status = 400
                body = _error_body("invalid_request_error", f"ultramax proxy: prewarm hint: {exc}", "")
            else:
                if self.router.config.enabled:
                    self.scorer.hint(prompt)
        framing = [("Content-Length", str(len(body)))]
        if body:
            framing.insert(0, ("Content-Type", "application/json"))
        writer.write(_response_head(status, _REASONS[status], [], framing=framing) + body)
        return True

    # -- the upstream exchange ------------------------------------------------------------------------
    async def _exchange(
        self, data: bytes, answer: Callable[[Connection, ResponseHead], Awaitable[bool]]
    ) -> Exception | None:
        """Send ``data`` (a request's bytes) upstream and give the response head to ``answer``, which relays the
        answer and returns whether the connection can carry another request (only once it has read it whole).

        None once ``answer`` has run; the error instead when no response head came (the upstream could not be
        reached, or failed or timed out before answering), so nothing of this exchange reached the client. A
        kept-alive connection from the pool that fails before its response head -- the upstream had closed it,
        its keep-alive timeout racing the request -- is retried once on a new connection. An error after the
        response head (the upstream's or the client's) is raised."""
        fresh = False
        while True:
            try:
                conn = await self.upstream.connect(fresh=fresh)
            except (OSError, TimeoutError) as exc:
                return exc
            reusable = False
            head: ResponseHead | None = None
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                head = await self._response_head(conn)
                reusable = await answer(conn, head)
                return None
            except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
                if head is not None:
                    raise
                if fresh or not conn.reused or isinstance(exc, TimeoutError):
                    return exc
                fresh = True  # a kept-alive connection the upstream had already closed: once more, on a new one
            finally:
                self.upstream.release(conn, reusable)

    # -- plain pass-through ----------------------------------------------------------------------------
    async def _passthrough(self, request: Request, reply: _Reply) -> bool:
        async def relay(conn: Connection, head: ResponseHead) -> bool:
            await self._relay(request, head, conn, reply)
            return head.reusable

        try:
            failed = await self._exchange(self.upstream.request_bytes(request, request.body), relay)
        except (OSError, asyncio.IncompleteReadError, HttpError):  # the client has part of the answer: end it
            raise ConnectionResetError("upstream failed mid-answer") from None
        return True if failed is None else self._unreachable(reply.writer, failed)

    async def _relay(
        self,
        request: Request,
        head: ResponseHead,
        conn: Connection,
        reply: _Reply,
        *,
        watcher: SseWatcher | None = None,
        keep: bytearray | None = None,
    ) -> None:
        """Relay ``head`` and its body as it arrives."""
        writer = reply.writer
        no_body = request.method == "HEAD" or head.status in (204, 304)
        if no_body:
            framing = [("Content-Length", head.lower["content-length"])] if "content-length" in head.lower else []
            writer.write(_response_head(head.status, head.reason, head.headers, framing=framing))
            return
        sized = head.length is not None and not head.event_stream
        framing = [("Content-Length", str(head.length))] if sized else reply.open_ended()
        writer.write(_response_head(head.status, head.reason, head.headers, framing=framing))
        reply.head_sent = True
        pieces = body_pieces(
            conn.reader, chunked=head.chunked, length=head.length, until_eof=not head.chunked and head.length is None
        )
        gone = False
        async with asyncio.timeout(self.idle_timeout) as idle:
            async for piece in pieces:
                idle.reschedule(asyncio.get_running_loop().time() + self.idle_timeout)
                if not gone:
                    try:
                        if sized:
                            writer.write(piece)
                        else:
                            reply.body(piece)
                        await writer.drain()
                    except ConnectionError:
                        if keep is None:
                            raise
                        gone = True  # read on: the upstream bills the whole answer, and its usage comes last
                if watcher is not None:
                    watcher.feed(piece)
                if keep is not None and len(keep) < 32 * 1024 * 1024:
                    keep += piece
        if gone:
            raise ConnectionResetError("the client closed its connection mid-answer")
        if not sized:
            reply.end()

    async def _response_head(self, conn: Connection) -> ResponseHead:
        """The upstream's response head, or ``TimeoutError`` after ``head_timeout`` seconds (a non-streamed
        answer arrives whole, so this is as long as the slowest answer may take)."""
        async with asyncio.timeout(self.head_timeout):
            return await read_response_head(conn.reader)

    def _unreachable(self, writer: asyncio.StreamWriter, exc: BaseException) -> bool:
        """502 (or 504 when the upstream took too long) for a request that got no answer at all."""
        if isinstance(exc, ConnectTimeout):
            status = 504
            message = f"could not connect to upstream {self.upstream.shown}: {exc}"
        elif isinstance(exc, TimeoutError):
            status = 504
            message = f"upstream {self.upstream.shown} did not answer within {self.head_timeout:g} s"
        else:
            status = 502
            message = f"upstream {self.upstream.shown} failed before answering ({exc or type(exc).__name__})"
        body = _error_body("api_error", f"ultramax proxy: {message}", "")
        writer.write(
            _response_head(
                status,
                _REASONS[status],
                [],
                framing=[("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            + body
        )
        return True

    # -- model requests ------------------------------------------------------------------------------
    async def _messages(self, request: Request, reply: _Reply) -> bool:
        started = time.monotonic()
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return await self._passthrough(request, reply)  # let the upstream say what is wrong with it
        await self.scorer.settle()
        try:
            decision = self.router.route(body, request.lower, raw_size=len(request.body))
        except Exception as exc:  # the router must never break the stream: pass through
            log.exception("router failed; passing the request through unchanged")
            decision = Decision(body["model"], body["model"], "", [f"router error: {exc}"], routed=False)
        signals = decision.signals
        if (
            decision.analysis is not None
            and signals is not None
            and (ahead := self.scorer.claim(signals.prompt, started))
        ):
            decision.reasons.append(ahead)
        request_id = f"req_ultramax_{uuid.uuid4().hex[:20]}"
        if decision.reject:
            payload = _error_body(
                "rate_limit_error", decision.reject, request_id, details={"error_code": "enforced_spend_limit_reached"}
            )
            retry_after = str(max(1, int(self.router.budget_resets_in())))
            reply.writer.write(
                _response_head(
                    429,
                    "Too Many Requests",
                    [],
                    framing=[
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload))),
                        ("request-id", request_id),
                        ("retry-after", retry_after),
                        ("x-should-retry", "false"),
                    ],
                )
                + payload
            )
            self._record(
                decision, _Attempt(decision.model, decision.tier, status=429, error_type="budget"), started, ""
            )
            log.info("budget refused %s", decision.requested_model)
            return True

        # the estimate counts against the budget until the answer is recorded (requests in flight at once)
        reserved = decision.estimated_cost if self.router.config.budget_per_hour > 0 else 0.0
        self.router.reserve(reserved)
        try:
            return await self._send(request, reply, decision, started)
        finally:
            self.router.settle(reserved)

    async def _send(self, request: Request, reply: _Reply, decision: Decision, started: float) -> bool:
        """Send the request to the routed model, and on overload to the next ones, relaying the answer."""
        candidates = [decision.model, *[m for m in decision.fallbacks if m != decision.model]]
        fallback_from = ""
        for index, model in enumerate(candidates):
            tier = getattr(self.router.catalog.tier_of(model), "name", decision.tier)
            attempt = _Attempt(model, tier)
            try:
                out_body = request.body if model == decision.requested_model else splice_model(request.body, model)
            except (ValueError, UnicodeDecodeError):  # not a body the splice can read: send it as it came
                out_body, attempt.model = request.body, decision.requested_model
                attempt.tier = getattr(self.router.catalog.tier_of(decision.requested_model), "name", "")
            last = index == len(candidates) - 1
            answer = functools.partial(
                self._attempt, request=request, reply=reply, attempt=attempt, started=started, last=last
            )
            try:
                failed = await self._exchange(self.upstream.request_bytes(request, out_body), answer)
            except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                attempt.error_type = attempt.error_type or ("timeout" if timed_out else "connection")
                attempt.error_message = str(exc) or type(exc).__name__
                self._record(decision, attempt, started, fallback_from)
                raise ConnectionResetError("upstream failed mid-answer") from None
            except asyncio.CancelledError:  # the client went away (or the proxy is stopping)
                attempt.error_type = attempt.error_type or "client_gone"
                attempt.error_message = attempt.error_message or "the client closed its connection first"
                self._record(decision, attempt, started, fallback_from)
                raise
            if failed is not None:  # no answer at all from this model
                attempt.error_type = "timeout" if isinstance(failed, TimeoutError) else "connection"
                attempt.error_message = str(failed) or type(failed).__name__
                self._record(decision, attempt, started, fallback_from)
                if reply.head_sent:  # a fallback, after the first model's 200 head: say it in that stream
                    self._stream_error(
                        reply, "api_error", f"ultramax proxy: upstream failed before answering ({failed})"
                    )
                    return False
                return self._unreachable(reply.writer, failed)
            self._record(decision, attempt, started, fallback_from)
            if attempt.retry:
                fallback_from = fallback_from or model
                log.info("%s overloaded; falling back to %s", model, candidates[index + 1])
                continue
            return True
        return True

    async def _attempt(
        self,
        conn: Connection,
        head: ResponseHead,
        *,
        request: Request,
        reply: _Reply,
        attempt: _Attempt,
        started: float,
        last: bool,
    ) -> bool:
        """One model's answer (``_exchange``'s ``answer``): relayed, or set aside for the next model
        (``attempt.retry``); whether its connection can carry another request."""
        attempt.status = head.status
        attempt.ttfb_ms = (time.monotonic() - started) * 1000
        attempt.retry = await self._answer(request, head, conn, reply, attempt, last=last)
        return head.reusable and not attempt.overloaded  # only once the answer was read whole

    async def _answer(
        self,
        request: Request,
        head: ResponseHead,
        conn: Connection,
        reply: _Reply,
        attempt: _Attempt,
        *,
        last: bool,
    ) -> bool:
        """Relay one upstream answer; True instead when the model was overloaded before any content and nothing
        of this answer was sent (the next model is to be tried)."""
        writer = reply.writer
        encoding = head.lower.get("content-encoding", "identity").strip().lower()
        if head.status != 200 or not head.event_stream:
            if head.status == 200 and not reply.head_sent:
                keep = bytearray()
                try:
                    await self._relay(request, head, conn, reply, keep=keep)
                finally:  # a client gone mid-answer still leaves what the upstream billed
                    self._usage_from_json(attempt, keep, encoding)
                return False
            # an error (or an odd non-stream answer): small, read it whole, then decide
            data = bytearray()
            async with asyncio.timeout(self.idle_timeout):
                async for piece in body_pieces(
                    conn.reader,
                    chunked=head.chunked,
                    length=head.length,
                    until_eof=not head.chunked and head.length is None,
                ):
                    data += piece
            with contextlib.suppress(Exception):
                attempt.error_type, attempt.error_message = json_error(decode_body(bytes(data), encoding))
            attempt.overloaded = head.status == 529 or attempt.error_type == "overloaded_error"
            if attempt.overloaded and not last:
                return True
            if reply.head_sent:  # the client already has a 200 stream: say it there
                raw = bytes(data)
                with contextlib.suppress(zlib.error):
                    raw = decode_body(raw, encoding) if encoding in DECODABLE else raw
                reply.body(b"event: error\ndata: " + raw.replace(b"\n", b"") + b"\n\n")
                reply.end()
                return False
            writer.write(
                _response_head(head.status, head.reason, head.headers, framing=[("Content-Length", str(len(data)))])
                + bytes(data)
            )
            reply.head_sent = True
            return False

        # a 200 event stream
        watcher = SseWatcher.for_encoding(encoding)
        if not reply.head_sent:
            writer.write(_response_head(head.status, head.reason, head.headers, framing=reply.open_ended()))
            reply.head_sent = True
            await writer.drain()
        hold = _Hold(reply, active=not last and encoding in ("identity", ""))
        # Held events are released by the first content block, or by the clock: a silent upstream must not
        # keep message_start and pings from the client longer than hold_limit.
        timer = asyncio.get_running_loop().call_later(self.hold_limit, hold.release) if hold.active else None
        pieces = body_pieces(
            conn.reader, chunked=head.chunked, length=head.length, until_eof=not head.chunked and head.length is None
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.idle_timeout) as idle:
                async for piece in pieces:
                    idle.reschedule(loop.time() + self.idle_timeout)
                    watcher.feed(piece)
                    if hold.active:
                        if watcher.error_type == "overloaded_error" and not watcher.content_started:
                            attempt.overloaded = True
                            attempt.error_type, attempt.error_message = watcher.error_type, watcher.error_message
                            return True
                        if watcher.content_started or watcher.error_type:
                            hold.release()
                        else:
                            hold.held.append(piece)
                            continue
                    reply.body(piece)
                    await writer.drain()
            hold.release()  # the stream ended while held (no content at all): deliver it as it was
            reply.end()
        finally:
            if timer is not None:
                timer.cancel()
            # also what a stream cut short had used; but an answer that was overloaded before its first content
            # is not billed (like a 529), so neither the ledger nor the budget counts its message_start usage
            overloaded = watcher.error_type == "overloaded_error" and not watcher.content_started
            attempt.usage = Usage() if overloaded else watcher.usage
            estimate = watcher.estimated_output_tokens()
            if not overloaded and not watcher.stopped and estimate > attempt.usage.output_tokens:
                # cut short (the client left, the upstream broke) before message_delta gave the real count; the
                # upstream bills what it wrote, so the ledger and the budget count an estimate, and say so
                attempt.usage = dataclasses.replace(attempt.usage, output_tokens=estimate)
                attempt.estimated = True
            attempt.answered_model = watcher.model
        if watcher.error_type:
            attempt.error_type, attempt.error_message = watcher.error_type, watcher.error_message
        return False

    def _usage_from_json(self, attempt: _Attempt, data: bytearray, encoding: str) -> None:
        with contextlib.suppress(Exception):
            parsed = json.loads(decode_body(bytes(data), encoding))
            if isinstance(parsed, dict):
                usage = parsed.get("usage")
                attempt.usage = Usage.from_api(usage if isinstance(usage, dict) else None)
                attempt.answered_model = str(parsed.get("model") or "")

    def _stream_error(self, reply: _Reply, kind: str, message: str) -> None:
        payload = json.dumps({"type": "error", "error": {"type": kind, "message": redact(message)}}).encode()
        reply.body(b"event: error\ndata: " + payload + b"\n\n")
        reply.end()

    # -- accounting ----------------------------------------------------------------------------------
    def _record(self, decision: Decision, attempt: _Attempt, started: float, fallback_from: str) -> None:
        catalog = self.router.catalog
        model = attempt.model
        cost = catalog.cost(model, attempt.usage)
        unpriced = catalog.price_note(model)
        duration = (time.monotonic() - started) * 1000
        success = attempt.status == 200 and not attempt.error_type
        signals = decision.signals
        requested_cost = cost
        # savings are claimed only against a model with prices: an unknown one would be charged as the dearest
        if decision.requested_model and catalog.spec(decision.requested_model) is not None:
            # what the asked-for model would have cost, its prompt cache as warm as staying on it keeps it
            as_asked = self.router.usage_as_asked(
                signals.conversation if signals and success else "",
                attempt.usage,
                switched=model != decision.requested_model,
            )
            requested_cost = catalog.cost(decision.requested_model, as_asked)
        if attempt.tier and attempt.error_type != "budget":
            self.router.record_outcome(attempt.tier, success, attempt.ttfb_ms or duration)
        if cost:
            self.router.record_spend(cost)
        if success and signals is not None and not signals.background:
            self.router.record_usage(attempt.usage)
        entry = LedgerEntry(
            model=model,
            usage=attempt.usage,
            cost=cost,
            requested_cost=requested_cost,
            requested_model=decision.requested_model,
            tier=attempt.tier,
            session=signals.session_id if signals else "",
            agent=signals.agent_id if signals else "",
            status=attempt.status,
            error="; ".join(
                note
                for note in (
                    f"{attempt.error_type}: {attempt.error_message}" if attempt.error_type else "",
                    "output tokens estimated from the relayed stream" if attempt.estimated else "",
                    unpriced if attempt.usage.input_tokens or attempt.usage.output_tokens else "",
                )
                if note
            ),
            fallback_from=fallback_from,
            reason="; ".join(decision.reasons),
            ttfb_ms=attempt.ttfb_ms,
            duration_ms=duration,
        )
        if self.ledger is not None:
            try:
                self.ledger.record(entry)
            except Exception:  # accounting must not break the client's stream
                log.exception("could not write the ledger")
        usage = attempt.usage
        priced = [
            *(["fast mode"] if usage.speed == "fast" else []),
            *([f"inference in {usage.inference_geo}"] if usage.inference_geo not in ("", "global") else []),
            *([f"{usage.web_search_requests} web searches"] if usage.web_search_requests else []),
        ]
        log.info(
            "%s -> %s [%s] status %s cost $%.6f%s%s",
            decision.requested_model,
            model,
            attempt.tier,
            attempt.status,
            cost,
            f" ({', '.join(priced)})" if priced else "",
            f" (fallback from {fallback_from})" if fallback_from else "",
        )
        if unpriced and model not in self._unpriced_warned:
            self._unpriced_warned.add(model)
            log.warning("%s", unpriced)
        if self.on_record is not None:
            self.on_record(entry)
