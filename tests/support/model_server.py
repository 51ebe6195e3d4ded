"""A scripted stand-in for the Anthropic Messages API, for driving the real Claude Code CLI offline.

Point the CLI at it with ``ANTHROPIC_BASE_URL=server.base_url``. It records every request and answers
``POST /v1/messages`` with a streamed (SSE) assistant message taken from a script: a list of turns, one per
model call of the main conversation. Which turn is played is derived from the request itself (how many
``tool_result`` blocks it carries), not from a counter, so a retried request gets the same answer.

Claude Code also makes side calls (session titles, summaries, memory extraction, subagents). Those are told
apart from the main conversation by ``classify_messages_request`` and get a short plain-text answer without
touching the script, so the scripted conversation stays deterministic.

Standard library only: tests must not need anything beyond the venv.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

JsonObject = dict[str, Any]
RequestKind = Literal["main", "aux", "count_tokens", "hello", "models", "unknown"]
MessagesKind = Literal["main", "aux"]
Classifier = Callable[[Mapping[str, str], Any], MessagesKind]

#: Seconds a wait helper blocks before giving up; a real CLI run against this server takes about a second.
DEFAULT_WAIT_S = 30.0

#: Listed by ``GET /v1/models``. The first one is what the CLI asks for by default (2.1.328).
MODEL_IDS: tuple[str, ...] = ("claude-opus-5-5", "claude-sonnet-5", "claude-haiku-4-5")


@dataclass(frozen=True)
class ToolCall:
    """One ``tool_use`` block the scripted model emits."""

    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Turn:
    """One scripted assistant message: optional text, then zero or more tool calls."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"


def text_turn(text: str) -> Turn:
    """A final answer: plain text, ``stop_reason`` ``end_turn``."""
    return Turn(text=text)


def tool_turn(name: str, tool_input: Mapping[str, Any], *, text: str = "") -> Turn:
    """A single tool call (optionally preceded by text), ``stop_reason`` ``tool_use``."""
    return Turn(text=text, tool_calls=(ToolCall(name, dict(tool_input)),))


def bash_turn(command: str, *, description: str = "Run a shell command", text: str = "") -> Turn:
    """A single call of Claude Code's ``Bash`` tool."""
    return tool_turn("Bash", {"command": command, "description": description}, text=text)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the server received it."""

    index: int
    method: str
    path: str
    headers: Mapping[str, str]
    """Header names lower-cased (HTTP header names are case-insensitive; Claude Code mixes cases)."""
    raw_body: bytes
    body: Any
    """Parsed JSON body, or None when there was none or it was not JSON."""
    kind: RequestKind
    turn: int | None = None
    """Index of the script turn played, for ``main`` requests that matched one."""

    @property
    def route(self) -> str:
        """The path without its query (Claude Code sends ``/v1/messages?beta=true``)."""
        return urlsplit(self.path).path

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def messages(self) -> list[JsonObject]:
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return [m for m in self.body["messages"] if isinstance(m, dict)]
        return []

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [t["name"] for t in tools or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]

    def tool_results(self) -> list[JsonObject]:
        """Every ``tool_result`` block in the conversation, oldest first."""
        return [block for block in _content_blocks(self.messages) if block.get("type") == "tool_result"]

    def strings(self) -> Iterator[str]:
        """Every string value in the JSON body, decoded (so no JSON escaping gets in a search's way)."""
        yield from _string_leaves(self.body)

    def mentions(self, needle: str) -> bool:
        """Whether any string in the body contains ``needle``."""
        return any(needle in text for text in self.strings())


def _content_blocks(messages: Sequence[JsonObject]) -> Iterator[JsonObject]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            yield from (block for block in content if isinstance(block, dict))


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def count_tool_results(body: Any) -> int:
    """How many ``tool_result`` blocks the request's conversation holds."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 0
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    return sum(1 for block in _content_blocks(messages) if block.get("type") == "tool_result")


def assistant_messages_after_last_tool_result(body: Any) -> int:
    """Assistant messages after the newest ``tool_result`` (or since the start when there is none).

    Non-zero only when the conversation went on after a scripted text answer, as it does when a Stop hook
    blocks and Claude Code sends the hook's reason back as a new user message.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 0
    count = 0
    for message in body["messages"]:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        has_result = isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
        if has_result:
            count = 0
        elif message.get("role") == "assistant":
            count += 1
    return count


def classify_messages_request(headers: Mapping[str, str], body: Any) -> MessagesKind:
    """Tell the main conversation's model calls from Claude Code's side calls.

    Side tasks (title generation, summaries, classifiers, hook prompts) are sent without tools, and
    subagents carry an ``x-claude-code-agent-id`` header; only the main loop sends tools and no agent id.
    """
    if not isinstance(body, dict) or not body.get("tools"):
        return "aux"
    if "x-claude-code-agent-id" in headers:
        return "aux"
    return "main"


class Script:
    """Maps a main-conversation request to the turn it should get."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns: tuple[Turn, ...] = tuple(turns)
        # Tool results a request carries once turns[:k] have been played, for each k.
        self._results_before: list[int] = []
        total = 0
        for turn in self.turns:
            self._results_before.append(total)
            total += len(turn.tool_calls)

    def __len__(self) -> int:
        return len(self.turns)

    def turn_for(self, body: Any) -> int | None:
        """The turn to play for this request body, or None when the script has no turn for it."""
        results = count_tool_results(body)
        candidates = [k for k, before in enumerate(self._results_before) if before == results]
        if not candidates:
            return None
        # Several turns share a tool-result count only when text turns follow each other; the number of
        # assistant answers since the last tool result says how many of them were played already.
        offset = assistant_messages_after_last_tool_result(body)
        return candidates[offset] if offset < len(candidates) else None


class ModelServer:
    """The running server. Use ``run_model_server`` rather than constructing it directly."""

    def __init__(
        self,
        script: Sequence[Turn],
        *,
        aux_text: str = "OK",
        classify: Classifier = classify_messages_request,
    ) -> None:
        self.script = Script(script)
        self.aux_text = aux_text
        self.classify = classify
        self.problems: list[str] = []
        """Things a test should fail on: unscripted main requests, handler crashes."""
        self.script_finished = threading.Event()
        """Set once the last turn of the script has been sent."""
        # A Condition (not a polled list) so tests can block until any predicate over the requests holds.
        self._changed = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="model-server", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()  # also joins the handler threads (block_on_close)
        self._thread.join()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- what was received -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def main_requests(self) -> list[RecordedRequest]:
        """Model calls of the main conversation (the scripted ones)."""
        return [r for r in self.requests if r.kind == "main"]

    def aux_requests(self) -> list[RecordedRequest]:
        """Side model calls, answered with ``aux_text`` (or JSON when they ask for structured output)."""
        return [r for r in self.requests if r.kind == "aux"]

    def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool],
        *,
        count: int = 1,
        timeout: float = DEFAULT_WAIT_S,
    ) -> list[RecordedRequest]:
        """Block until ``count`` requests satisfy ``predicate``; return them. Raises TimeoutError."""
        with self._changed:
            if not self._changed.wait_for(lambda: len([r for r in self._requests if predicate(r)]) >= count, timeout):
                seen = ", ".join(f"{r.method} {r.path} [{r.kind}]" for r in self._requests) or "none"
                raise TimeoutError(f"waited {timeout}s for {count} matching request(s); received: {seen}")
            return [r for r in self._requests if predicate(r)]

    def wait_for_main_requests(self, count: int, *, timeout: float = DEFAULT_WAIT_S) -> list[RecordedRequest]:
        return self.wait_for(lambda r: r.kind == "main", count=count, timeout=timeout)

    def wait_until_script_finished(self, *, timeout: float = DEFAULT_WAIT_S) -> None:
        if not self.script_finished.wait(timeout):
            raise TimeoutError(f"the script's last turn was not requested within {timeout}s")

    # -- used by the handler ---------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> RecordedRequest:
        with self._changed:
            stored = RecordedRequest(
                index=len(self._requests),
                method=request.method,
                path=request.path,
                headers=request.headers,
                raw_body=request.raw_body,
                body=request.body,
                kind=request.kind,
                turn=request.turn,
            )
            self._requests.append(stored)
            self._changed.notify_all()
            return stored

    def _problem(self, text: str) -> None:
        with self._changed:
            self.problems.append(text)
            self._changed.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads so server_close() joins them; the handler timeout bounds that join.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: ModelServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Default prints to stderr and the test would still pass; make it a visible problem instead.
        self.owner._problem(f"handler error for {client_address}: {traceback.format_exc()}")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that opens a connection and sends nothing must not stall close()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded, not logged; keep test output clean."""

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        self._dispatch(head=False)

    # -- routing ---------------------------------------------------------------------------------------

    def _dispatch(self, *, head: bool) -> None:
        owner = self.server.owner
        # One request per connection keeps handler threads short-lived so close() can join them.
        self.close_connection = True
        raw = self._read_body()
        body = _parse_json(raw)
        headers = {name.lower(): value for name, value in self.headers.items()}
        route = urlsplit(self.path).path.rstrip("/")

        def record(kind: RequestKind, turn: int | None = None) -> RecordedRequest:
            return owner._record(
                RecordedRequest(
                    index=-1,
                    method=self.command,
                    path=self.path,
                    headers=headers,
                    raw_body=raw,
                    body=body,
                    kind=kind,
                    turn=turn,
                )
            )

        try:
            if route == "/api/hello":
                record("hello")
                self._send_json({"message": "hello"}, head=head)
            elif route == "/v1/models" and self.command in ("GET", "HEAD"):
                record("models")
                self._send_json(_models_page(), head=head)
            elif route.startswith("/v1/models/") and self.command in ("GET", "HEAD"):
                record("models")
                self._send_json(_model_info(route.rsplit("/", 1)[1]), head=head)
            elif route == "/v1/messages/count_tokens" and self.command == "POST":
                record("count_tokens")
                self._send_json({"input_tokens": _estimate_tokens(raw)}, head=head)
            elif route == "/v1/messages" and self.command == "POST":
                self._answer_messages(body, headers, raw, record)
            else:
                record("unknown")
                self._send_json(
                    {
                        "type": "error",
                        "error": {"type": "not_found_error", "message": f"no route {self.path}"},
                    },
                    status=HTTPStatus.NOT_FOUND,
                    head=head,
                )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI went away mid-answer (e.g. it was killed); nothing left to tell it

    def _answer_messages(
        self,
        body: Any,
        headers: Mapping[str, str],
        raw: bytes,
        record: Callable[[RequestKind, int | None], RecordedRequest],
    ) -> None:
        owner = self.server.owner
        kind = owner.classify(headers, body)
        if kind == "aux":
            request = record("aux", None)
            self._stream_turn(Turn(text=aux_answer(body, owner.aux_text)), request, raw)
            return
        turn_index = owner.script.turn_for(body)
        request = record("main", turn_index)
        if turn_index is None:
            owner._problem(
                f"request #{request.index} has {count_tool_results(body)} tool result(s); "
                f"the script ({len(owner.script)} turns) has no turn for it"
            )
            self._stream_turn(Turn(text="[model server: script exhausted]"), request, raw)
            return
        self._stream_turn(owner.script.turns[turn_index], request, raw, turn_index=turn_index)
        if turn_index == len(owner.script) - 1:
            owner.script_finished.set()

    # -- responses -------------------------------------------------------------------------------------

    def _stream_turn(self, turn: Turn, request: RecordedRequest, raw: bytes, *, turn_index: int | None = None) -> None:
        model = request.body.get("model") if isinstance(request.body, dict) else None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", f"req_ultramax_{request.index}")
        self.end_headers()
        for event, data in sse_events(
            turn,
            message_id=f"msg_ultramax_{request.index}",
            model=model if isinstance(model, str) else MODEL_IDS[0],
            input_tokens=_estimate_tokens(raw),
            tool_id_prefix=f"toolu_ultramax_t{turn_index if turn_index is not None else 'aux'}",
        ):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    def _send_json(self, payload: object, *, status: HTTPStatus = HTTPStatus.OK, head: bool) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # blank line after the last chunk (no trailers are sent)
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def sse_events(
    turn: Turn, *, message_id: str, model: str, input_tokens: int, tool_id_prefix: str
) -> Iterator[tuple[str, JsonObject]]:
    """The Messages API stream events for one assistant turn, in order."""
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )
    yield "ping", {"type": "ping"}
    index = 0
    if turn.text:
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": turn.text},
            },
        )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for number, call in enumerate(turn.tool_calls):
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": f"{tool_id_prefix}_{number}",
                    "name": call.name,
                    "input": {},
                },
            },
        )
        # Split in two so the client's partial-JSON assembly is exercised, as with the real API.
        encoded = json.dumps(dict(call.input))
        middle = len(encoded) // 2
        for part in (encoded[:middle], encoded[middle:]):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part},
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": max(1, len(turn.text) // 4 + 10 * len(turn.tool_calls))},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def aux_answer(body: Any, text: str) -> str:
    """The answer to a side call: ``text``, or the simplest JSON fitting a requested output schema.

    Prompt-type hooks ask for ``{"ok": bool, "reason": str}`` through ``output_config.format``; plain text
    would fail their parsing, so they get ``{"ok": true, "reason": text}`` and let the action go ahead.
    """
    output_config = body.get("output_config") if isinstance(body, dict) else None
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        return json.dumps(_schema_example(output_format.get("schema"), text))
    return text


def _schema_example(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _schema_example(schema[key][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        return {name: _schema_example(properties.get(name), text) for name in required}
    examples: dict[str, Any] = {"boolean": True, "integer": 0, "number": 0, "array": [], "null": None}
    return examples.get(kind, text) if isinstance(kind, str) else text


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _estimate_tokens(raw: bytes) -> int:
    return max(1, len(raw) // 4)


def _model_info(model_id: str) -> JsonObject:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2026-01-01T00:00:00Z"}


def _models_page() -> JsonObject:
    return {
        "data": [_model_info(model_id) for model_id in MODEL_IDS],
        "has_more": False,
        "first_id": MODEL_IDS[0],
        "last_id": MODEL_IDS[-1],
    }


@contextmanager
def run_model_server(
    script: Sequence[Turn],
    *,
    aux_text: str = "OK",
    classify: Classifier = classify_messages_request,
) -> Iterator[ModelServer]:
    """Serve ``script`` on an ephemeral 127.0.0.1 port for the duration of the ``with`` block."""
    server = ModelServer(script, aux_text=aux_text, classify=classify)
    server.start()
    try:
        yield server
    finally:
        server.close()


__all__ = [
    "DEFAULT_WAIT_S",
    "MODEL_IDS",
    "ModelServer",
    "RecordedRequest",
    "Script",
    "ToolCall",
    "Turn",
    "assistant_messages_after_last_tool_result",
    "aux_answer",
    "bash_turn",
    "classify_messages_request",
    "count_tool_results",
    "run_model_server",
    "sse_events",
    "text_turn",
    "tool_turn",
]
