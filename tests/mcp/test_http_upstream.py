"""Streamable-HTTP servers behind the gateway: reached with their configured headers."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import Gateway, write_pools

HTTP_SERVER = Path(__file__).with_name("http_server.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def token_server() -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HTTP_SERVER), str(port), "s3cret-token"])
    try:
        wait_for(lambda: _accepts(port), 20, "the HTTP fixture server to listen")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_http_server_gets_its_configured_headers_with_variables_expanded(
    umx: UltramaxEnv, project: Path, token_server: int
) -> None:
    url = f"http://127.0.0.1:{token_server}/mcp"
    write_pools(umx, {"version": "8.0", "pools": {"primary": {"servers": {
        "remote": {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}},
    }}}})  # fmt: skip
    with Gateway(umx, project, env={"REMOTE_TOKEN": "s3cret-token"}) as gw:
        wait_for(lambda: gw.server("remote")["status"] == "healthy", 20, "the token-guarded server to be up")
        assert gw.text("remote__whoami") == "http fixture"


def test_an_http_server_that_refuses_the_token_is_reported_with_its_http_status(
    umx: UltramaxEnv, project: Path, token_server: int
) -> None:
    url = f"http://127.0.0.1:{token_server}/mcp"
    write_pools(umx, {"version": "8.0", "pools": {"primary": {"servers": {
        "remote": {"type": "http", "url": url, "headers": {"Authorization": "Bearer expired"}},
    }}}})  # fmt: skip
    with Gateway(umx, project) as gw:
        wait_for(lambda: gw.server("remote")["error"] is not None, 20, "the refused start to be reported")
        server = gw.server("remote")
        assert server["status"] == "unhealthy"
        assert "HTTP 401" in server["error"], "an expired token must read as such, not as a broken server"
