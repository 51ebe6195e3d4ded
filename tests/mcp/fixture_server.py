"""A small stdio MCP server on the official SDK, for behaviour the official servers do not offer on demand.

``whoami`` says which server answered; ``say`` answers with the text it is given (logging first, if asked);
``add_tool`` adds a tool at run time and announces it (``notifications/tools/list_changed``); ``sleep`` reports
progress and records in ``FIXTURE_RECORD`` (a JSONL file) whether it finished or was cancelled; ``write_note`` is a
non-read-only tool that records its call; ``sleep_then_ask`` sleeps, then asks the client a yes/no question
(elicitation) and answers with what it heard; ``envelope`` shows the request's ``_meta`` as received; ``weather``
answers with structured content, ``fail`` with a tool error, ``refuse`` with a JSON-RPC error; ``confirm_first``
answers a 2026-07-28 caller with an ``input_required`` result first.

    python fixture_server.py --label primary [--handshake-only]

``--handshake-only`` serves only the handshake era (``server/discover`` is refused), as the TypeScript servers do.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ElicitRequest, ElicitRequestFormParams, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel

parser = argparse.ArgumentParser()
parser.add_argument("--label", default="fixture")
parser.add_argument("--handshake-only", action="store_true")
ARGS = parser.parse_args()
LABEL = ARGS.label
READ_ONLY = ToolAnnotations(read_only_hint=True)

server = MCPServer(f"fixture-{LABEL}")


def record(event: str, **fields: object) -> None:
    path = os.environ.get("FIXTURE_RECORD")
    if path:
        line = {"t": time.time(), "label": LABEL, "pid": os.getpid(), "event": event, **fields}
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


@server.tool(annotations=READ_ONLY)
def whoami() -> str:
    """Which server process answered."""
    return json.dumps({"label": LABEL, "pid": os.getpid()})


@server.tool()
async def add_tool(name: str, ctx: Context) -> str:
    """Add a tool called ``name`` and announce the changed list."""

    def dynamic() -> str:
        return f"{name} answered by {LABEL}"

    server.add_tool(dynamic, name=name, description=f"added at run time by {LABEL}")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


@server.tool(annotations=READ_ONLY)
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleep, reporting progress in 10 steps; records whether it finished or was cancelled."""
    record("sleep-start", seconds=seconds)
    try:
        for step in range(1, 11):
            await anyio.sleep(seconds / 10)
            await ctx.report_progress(step, 10, f"step {step}")
    except anyio.get_cancelled_exc_class():
        record("sleep-cancelled")
        raise
    record("sleep-done")
    return f"slept {seconds} s"


class Confirm(BaseModel):
    ok: bool


@server.tool(annotations=READ_ONLY)
async def sleep_then_ask(seconds: float, ctx: Context) -> str:
    """Sleep, then ask the client to confirm; answers with the client's reply."""
    record("sleep-start", seconds=seconds)
    await anyio.sleep(seconds)
    reply = await ctx.elicit(f"{LABEL} slept {seconds} s: go on?", Confirm)
    record("asked", action=reply.action)
    data = getattr(reply, "data", None)
    return f"{LABEL} slept {seconds} s; the client said {reply.action}" + (f", ok={data.ok}" if data else "")


@server.tool()
def write_note(text: str) -> str:
    """A tool that changes something (not read-only): records the call."""
    record("write_note", text=text)
    return f"noted by {LABEL}"


@server.tool(annotations=READ_ONLY)
async def say(text: str, ctx: Context, log: str = "") -> str:
    """Answer with ``text``, first logging ``log`` (if given) to the client."""
    if log:
        await ctx.info(log)
    return text


@server.tool(annotations=READ_ONLY)
def envelope(ctx: Context) -> str:
    """The request's ``_meta`` as this server received it (sorted JSON): what its client stamps on each request."""
    params = ctx.request_context.params or {}
    return json.dumps(params.get("_meta"), sort_keys=True)


class Weather(BaseModel):
    city: str
    celsius: float


@server.tool(annotations=READ_ONLY)
def weather(city: str) -> Weather:
    """Structured content (and its text rendering) for ``city``."""
    return Weather(city=city, celsius=21.5)


@server.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """A tool error (``isError``) saying ``message``."""
    raise ToolError(message)


@server.tool(annotations=READ_ONLY)
def refuse(message: str) -> str:
    """A JSON-RPC error (invalid params) saying ``message``."""
    raise MCPError(code=INVALID_PARAMS, message=message, data={"why": message})


@server.tool(annotations=READ_ONLY)
def confirm_first(ctx: Context) -> str | InputRequiredResult:
    """2026-07-28 multi-round-trip: first an ``input_required`` result asking to confirm, then what was answered."""
    if ctx.input_responses is None:
        ask = ElicitRequest(params=ElicitRequestFormParams(message="go on?", requested_schema={
            "type": "object", "properties": {"ok": {"type": "boolean"}}}))  # fmt: skip
        return InputRequiredResult(input_requests={"confirm": ask}, request_state=f"asked-by-{LABEL}")
    answer = ctx.input_responses.get("confirm")
    return (
        f"{LABEL} heard {json.dumps(answer.model_dump(mode='json', exclude_none=True) if answer else None)} "
        f"with state {ctx.request_state}"
    )


async def serve_handshake_only() -> None:
    from mcp.server.runner import serve_loop
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server
    async with stdio_server() as (read, write), lowlevel.lifespan(lowlevel) as state:
        await serve_loop(lowlevel, read, write, lifespan_state=state,
                         init_options=lowlevel.create_initialization_options())  # fmt: skip


if __name__ == "__main__":
    if ARGS.handshake_only:
        anyio.run(serve_handshake_only)
    else:
        server.run()
