"""A small streamable-HTTP MCP server on the official SDK that, like a hosted server, refuses a request without
its bearer token (``401``).

    python http_server.py PORT TOKEN
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from mcp.server import MCPServer
from starlette.responses import PlainTextResponse

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
server = MCPServer("http-fixture")


@server.tool()
def whoami() -> str:
    """Which server answered."""
    return "http fixture"


app = server.streamable_http_app()


async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and (b"authorization", f"Bearer {TOKEN}".encode()) not in scope["headers"]:
        await PlainTextResponse("missing or wrong bearer token", status_code=401)(scope, receive, send)
        return
    await app(scope, receive, send)


uvicorn.run(guarded, host="127.0.0.1", port=PORT, log_level="warning")
