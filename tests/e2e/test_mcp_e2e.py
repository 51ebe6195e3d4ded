"""The real Claude Code CLI with only the ultramax gateway registered, against a scripted model server.

The project's ``.mcp.json`` is written by ``ultramax mcp activate``, so Claude Code knows one MCP server,
``ultramax``; behind it the user's pools run server-everything as a primary and as its backup (told apart by
an environment variable the ``get-env`` tool reports). The scripted model calls the namespaced tool, which the
primary answers; kills the primary with Claude Code's own Bash tool; calls again, and the backup answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv
from tests.mcp.harness import Servers, process_gone, require_servers, write_pools
from tests.support.claude_cli import run_claude
from tests.support.model_server import bash_turn, run_model_server, text_turn, tool_turn

pytestmark = pytest.mark.e2e

TOOL = "mcp__ultramax__everything__get-env"


def test_claude_code_calls_a_pooled_tool_through_the_gateway_and_the_backup_answers_after_the_primary_dies(
    claude_bin: Path, umx: UltramaxEnv
) -> None:
    servers = Servers(require_servers())
    project = umx.project("acme-api")
    pidfile = umx.root / "primary.pid"
    everything = servers.bin("mcp-server-everything")
    write_pools(umx, {
        "version": "8.0",
        "pools": {
            "primary": {"health_check_interval_ms": 500, "servers": {"everything": {
                "command": "sh", "args": ["-c", f'echo $$ > "{pidfile}"; exec "{everything}" stdio'],
                "env": {"LABEL": "primary"}}}},
            "failover": {"servers": {"everything-backup": servers.everything(env={"LABEL": "backup"},
                                                                             **{"for": "everything"})}},
        },
    })  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "activate"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert list(json.loads((project / ".mcp.json").read_text())["mcpServers"]) == ["ultramax"]

    script = [
        tool_turn(TOOL, {}),
        bash_turn(f'kill -9 "$(cat "{pidfile}")"', description="Kill the primary MCP server"),
        tool_turn(TOOL, {}),
        text_turn("The backup answered."),
    ]
    with run_model_server(script) as server:
        run = run_claude(
            "call the pooled tool, kill its server, call it again",
            cwd=project,
            home=umx.home,
            base_url=server.base_url,
            allowed_tools=["mcp__ultramax", "Bash"],
            env={
                "ULTRAMAX_HOME": str(umx.ultramax_home),
                # every MCP tool in the request itself, not deferred behind tool search
                "ENABLE_TOOL_SEARCH": "false",
                # -p connects MCP servers in the background and may send the first turn before they are up
                # (the model would then see WaitForMcpServers instead); 2.1.328 holds the first turn for them
                # up to this deadline, which makes the scripted conversation deterministic
                "CLAUDE_CODE_MCP_STARTUP_WAIT_MS": "30000",
            },
            claude=claude_bin,
        ).check()
        results = [r for r in server.main_requests()[-1].tool_results()]
        server_tools = server.main_requests()[0].tool_names
    assert run.permission_denials == []
    assert TOOL in server_tools, "the gateway's namespaced tools reach the model"
    assert len(results) == 3, results
    first, _kill, second = results
    assert not first.get("is_error") and '\\"LABEL\\": \\"primary\\"' in json.dumps(first["content"]), first
    assert not second.get("is_error") and '\\"LABEL\\": \\"backup\\"' in json.dumps(second["content"]), second
    assert process_gone(int(pidfile.read_text().split()[0])), "the killed primary is gone"
