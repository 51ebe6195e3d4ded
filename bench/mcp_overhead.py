"""What the MCP gateway adds to a tool call: ``tools/call`` through ``ultramax mcp serve`` vs straight to the server.

    .venv/bin/python -m bench.mcp_overhead [--calls 2000]

Every path uses the official ``mcp`` SDK client over stdio and the same official server
(``@modelcontextprotocol/server-everything``, tool ``echo``), all started in the same run: a client talking to the
server directly, a client talking to a gateway in the handshake era, and one talking to a gateway in the
2026-07-28 era (what Claude Code 2.1.328 negotiates on stdio); each gateway runs its own server-everything
behind it. Calls rotate between the three so the machine's drift hits all of them alike; warm-up calls are not
counted. ``--gated`` adds a fourth path, calls of a second server whose routing rule requires the safety check
(the gate decides and audits every call; not part of the goal). ``--modern-upstream`` adds two more: the tests'
fixture server (the Python SDK's ``MCPServer``, a 2026-07-28-era server) called directly with a 2026-07-28 client,
and the same server behind the gateway (tool ``say``), with its added time measured against that direct call.
Needs ``scripts/install-mcp-servers.sh``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, StdioServerParameters

from bench.common import REPO, code_under_test, isolated_env, machine, summary
from ultramax.mcp.control import running_gateways
from ultramax.paths import Paths

SERVERS = REPO / ".cache" / "mcp-servers"
EVERYTHING = SERVERS / "node_modules" / ".bin" / "mcp-server-everything"
GATED = "gateway (2026-07-28 client, safety gate)"
FIXTURE = REPO / "tests" / "mcp" / "fixture_server.py"
MODERN_DIRECT = "direct (2026-07-28 server)"
MODERN_GATEWAY = "gateway (2026-07-28 client, 2026-07-28 server)"
BASELINES = {MODERN_GATEWAY: MODERN_DIRECT}
"""The direct path a gateway path's added time is measured against (``direct`` unless named here)."""


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def gateway_params(project: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "serve"],
        env={**{k: os.environ[k] for k in ("HOME", "ULTRAMAX_HOME", "PATH")}, **code_under_test()},
        cwd=str(project),
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    calls: int, warmup: int, gated: bool = False, modern_upstream: bool = False
) -> tuple[dict[str, list[float]], float]:
    home = Path(os.environ["HOME"])
    pools = home / ".claude" / "mcp" / "pools" / "bench.json"
    pools.parent.mkdir(parents=True, exist_ok=True)
    server = {"command": str(EVERYTHING), "args": ["stdio"]}
    config: dict[str, Any] = {"pools": {"primary": {"servers": {"everything": server}}}}
    if gated:  # a second server whose calls all pass the safety gate (rate limits off: every call is decided)
        config["pools"]["primary"]["servers"]["gated"] = server
        config["routing"] = {"rules": [{"pattern": "gated:*", "require_safety_check": True}]}
        settings = home / ".claude" / "settings.json"
        data = json.loads(settings.read_text())
        data["safety"] = {"operationCallsPerMinute": 0, "sessionCallsPerMinute": 0}
        settings.write_text(json.dumps(data))
    fixture_args = [str(FIXTURE), "--label", "bench"]
    if modern_upstream:  # a 2026-07-28-era server (Python SDK) behind the gateway
        config["pools"]["primary"]["servers"]["modern"] = {"command": sys.executable, "args": fixture_args}
    pools.write_text(json.dumps(config))
    project = home / "project"
    project.mkdir()
    direct_params = StdioServerParameters(command=str(EVERYTHING), args=["stdio"])
    fixture_params = StdioServerParameters(command=sys.executable, args=fixture_args)
    timings: dict[str, list[float]] = {
        "direct": [],
        "gateway (2025-11-25 client)": [],
        "gateway (2026-07-28 client)": [],
    }
    async with contextlib.AsyncExitStack() as stack:
        direct = await stack.enter_async_context(Client(direct_params, mode="legacy", cache=None))
        legacy = await stack.enter_async_context(Client(gateway_params(project), mode="legacy", cache=None))
        modern = await stack.enter_async_context(Client(gateway_params(project), mode="auto", cache=None))
        assert modern.protocol_version == "2026-07-28" and legacy.protocol_version == "2025-11-25"
        paths: list[tuple[str, Any, str, str]] = [  # name, client, tool, argument (echo's ``message``, say's ``text``)
            ("direct", direct, "echo", "message"),
            ("gateway (2025-11-25 client)", legacy, "everything__echo", "message"),
            ("gateway (2026-07-28 client)", modern, "everything__echo", "message"),
        ]
        if gated:
            paths.append((GATED, modern, "gated__echo", "message"))
        if modern_upstream:
            fixture_client = await stack.enter_async_context(Client(fixture_params, mode="auto", cache=None))
            assert fixture_client.protocol_version == "2026-07-28"
            paths.append((MODERN_DIRECT, fixture_client, "say", "text"))
            paths.append((MODERN_GATEWAY, modern, "modern__say", "text"))
        for name, *_ in paths:
            timings.setdefault(name, [])
        n = len(paths)
        through_gateway = sum(not name.startswith("direct") for name, *_ in paths)
        gateways = [g.pid for g in running_gateways(Paths.from_env())]
        cpu_before = 0.0
        for i in range(warmup + calls):
            if i == warmup:
                cpu_before = sum(_cpu_seconds(pid) for pid in gateways)
            for name, client, tool, key in paths[i % n :] + paths[: i % n]:
                started = time.perf_counter()
                result = await client.call_tool(tool, {key: f"call {i}"})
                elapsed = time.perf_counter() - started
                expected = f"Echo: call {i}" if key == "message" else f"call {i}"
                assert not result.is_error and _text(result) == expected, result
                if i >= warmup:
                    timings[name].append(elapsed * 1000)
        cpu_per_call_ms = (sum(_cpu_seconds(pid) for pid in gateways) - cpu_before) / (through_gateway * calls) * 1000
    return timings, cpu_per_call_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per path")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--gated", action="store_true", help="also time calls that pass the safety gate (not part of the goal)"
    )
    parser.add_argument(
        "--modern-upstream",
        action="store_true",
        help="also time a 2026-07-28-era server (the tests' fixture server), directly and through the gateway",
    )
    args = parser.parse_args(argv)
    if not EVERYTHING.exists():
        print("server-everything is not installed: run scripts/install-mcp-servers.sh", file=sys.stderr)
        return 2
    with isolated_env():
        timings, cpu_ms = anyio.run(run, args.calls, args.warmup, args.gated, args.modern_upstream)
    print(f"machine: {machine()}")
    print(f"{args.calls} measured tools/call per path (after {args.warmup} warm-up), paths interleaved\n")
    print("| path | p50 ms | p95 ms | mean ms | p50 added ms | p95 added ms |")
    print("|---|---:|---:|---:|---:|---:|")
    ok = True
    for name, values in timings.items():
        p50, p95, mean = summary(values)
        base_p50, base_p95, _ = summary(timings[BASELINES.get(name, "direct")])
        added = "" if name.startswith("direct") else f"{p50 - base_p50:+.3f} | {p95 - base_p95:+.3f}"
        print(f"| {name} | {p50:.3f} | {p95:.3f} | {mean:.3f} | {added or '- | -'} |")
        if not name.startswith("direct") and name not in (GATED, MODERN_GATEWAY):
            ok = ok and p50 - base_p50 <= 1.0 and p95 - base_p95 <= 3.0
    print(f"\ngateway CPU (user + system) per forwarded call: {cpu_ms:.3f} ms")
    print("goal: p50 added <= 1 ms, p95 added <= 3 ms:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
