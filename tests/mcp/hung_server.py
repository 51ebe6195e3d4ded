"""A stdio MCP server that starts, reads its stdin and never answers: its handshake hangs for ever.

It also ignores SIGTERM and stays alive after its stdin closes, so only SIGKILL ends it -- the worst an upstream
can do to the gateway's start and to its shutdown. Each start appends its pid to ``HUNG_RECORD`` (one a line).

    python hung_server.py [--answer-when FILE]

With ``--answer-when FILE``, a start that finds FILE present answers instead, as a minimal handshake-era server
(no ``server/discover``) with one tool, ``pong``: a server that recovered -- and is still deaf to EOF and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

parser = argparse.ArgumentParser()
parser.add_argument("--answer-when", type=Path)
ARGS = parser.parse_args()

TOOL = {"name": "pong", "description": "Answers pong.", "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True}}  # fmt: skip


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or not isinstance(method, str):
        return None  # a notification (or a stray response): nothing to say
    result: dict[str, Any] | None = None
    if method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion"), "capabilities": {"tools": {}},
                  "serverInfo": {"name": "hung-recovered", "version": "1.0"}}  # fmt: skip
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": f"pong from {os.getpid()}"}]}
    if result is None:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"no {method}"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record = os.environ.get("HUNG_RECORD")
    if record:
        with Path(record).open("a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
    answering = ARGS.answer_when is not None and ARGS.answer_when.exists()
    for line in sys.stdin.buffer:
        if not answering or not line.strip():
            continue  # read, and say nothing
        reply = answer(json.loads(line))
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    while True:  # stdin closed: stay, until killed
        signal.pause()


if __name__ == "__main__":
    main()
