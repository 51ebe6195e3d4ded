"""Failover under fire: 1,000 tool calls through the gateway while its primary server is killed every few seconds.

    .venv/bin/python -m bench.mcp_failover [--calls 1000] [--rate 100] [--kill-every 2] [--interval-ms 1000]

``ultramax mcp serve`` runs as Claude Code runs it (stdio, driven by the official ``mcp`` SDK client, 2026-07-28
era) with a pool of ``@modelcontextprotocol/server-everything``: a primary and its backup (``for``). Calls of the
read-only ``echo`` tool go out at a steady rate from a few concurrent workers while a killer SIGKILLs whatever
process is the primary every ``--kill-every`` seconds (the gateway restarts it with backoff, and it is killed
again). Reported: failed calls (goal: zero), the time from each kill to the gateway's detection (goal: within
one health interval; the gateway's own event log has the detection time), failover events counted by
``mcp_failover_total``, and processes left alive after the gateway exits (goal: none). Needs
``scripts/install-mcp-servers.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, StdioServerParameters

from bench.common import REPO, code_under_test, isolated_env, machine, percentile
from ultramax.mcp.control import query_gateway, running_gateways
from ultramax.paths import Paths

EVERYTHING = REPO / ".cache" / "mcp-servers" / "node_modules" / ".bin" / "mcp-server-everything"


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _status(paths: Paths, project: Path) -> dict[str, Any]:
    [info] = running_gateways(paths, project)
    reply = query_gateway(info, {"op": "status"})
    status: dict[str, Any] = reply["status"]
    return status


async def run(args: argparse.Namespace) -> dict[str, Any]:
    paths = Paths.from_env()
    home = Path(os.environ["HOME"])
    pools = home / ".claude" / "mcp" / "pools" / "bench.json"
    pools.parent.mkdir(parents=True, exist_ok=True)
    timing = {"health_check_interval_ms": args.interval_ms, "timeout_ms": 2000}
    pools.write_text(json.dumps({"pools": {
        "primary": {**timing, "servers": {"everything": {"command": str(EVERYTHING), "args": ["stdio"]}}},
        "failover": {**timing, "servers": {"everything-backup": {"command": str(EVERYTHING), "args": ["stdio"],
                                                                 "for": "everything"}}},
    }}))  # fmt: skip
    project = home / "project"
    project.mkdir()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "serve"],
        env={**{k: os.environ[k] for k in ("HOME", "ULTRAMAX_HOME", "PATH")}, **code_under_test()},
        cwd=str(project),
    )
    kills: list[tuple[float, int]] = []
    failures: list[str] = []
    latencies: list[float] = []
    seen_pids: set[int] = set()
    async with Client(params, mode="auto", cache=None) as client:
        status = _status(paths, project)
        gateway_pid = int(status["pid"])
        with anyio.fail_after(30):
            while not all(s["status"] == "healthy" for s in _status(paths, project)["servers"]):
                await anyio.sleep(0.05)
        remaining = args.calls
        done = anyio.Event()
        period = args.concurrency / args.rate

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                n = remaining
                started = time.perf_counter()
                try:
                    result = await client.call_tool("everything__echo", {"message": f"call {n}"})
                    if result.is_error or _text(result) != f"Echo: call {n}":
                        failures.append(f"call {n}: {result.content}")
                except Exception as exc:  # noqa: BLE001 -- every kind of failure counts
                    failures.append(f"call {n}: {type(exc).__name__}: {exc}")
                elapsed = time.perf_counter() - started
                latencies.append(elapsed * 1000)
                await anyio.sleep(max(0.0, period - elapsed))

        async def killer() -> None:
            while not done.is_set():
                with anyio.move_on_after(args.kill_every):
                    await done.wait()
                if done.is_set():
                    return
                for server in _status(paths, project)["servers"]:
                    seen_pids.update(p for p in [server.get("pid")] if p)
                    if server["server"] == "everything" and server["pid"] and server["status"] == "healthy":
                        kills.append((time.time(), int(server["pid"])))
                        os.kill(int(server["pid"]), signal.SIGKILL)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            async with anyio.create_task_group() as workers:
                for _ in range(args.concurrency):
                    workers.start_soon(worker)
            done.set()
        wall = time.perf_counter() - t0
        final = _status(paths, project)
        metrics = query_gateway(running_gateways(paths, project)[0], {"op": "metrics"})["metrics"]
        seen_pids.update(s["pid"] for s in final["servers"] if s.get("pid"))
    detections = []
    for killed_at, _pid in kills:
        down = [
            e for e in final["events"] if e["event"] == "down" and e["server"] == "everything" and e["t"] >= killed_at
        ]
        if down:
            detections.append((down[0]["t"] - killed_at) * 1000)
    failovers = sum(float(v) for v in re.findall(r"^mcp_failover_total\{[^}]*\} (\S+)$", metrics, re.M))
    by_server = dict(
        re.findall(r'^mcp_gateway_calls_total\{outcome="ok",server_name="([^"]+)"\} (\S+)$', metrics, re.M)
    )
    gone = anyio.Event()
    with anyio.move_on_after(10):
        while any(_alive(p) for p in [*seen_pids, gateway_pid]):
            await anyio.sleep(0.05)
        gone.set()
    orphans = [p for p in [*seen_pids, gateway_pid] if _alive(p)]
    return {
        "calls": args.calls, "failed": len(failures), "failures": failures[:5], "wall_s": wall, "kills": len(kills),
        "detections_ms": detections, "failovers": failovers, "answered_by": by_server, "orphans": orphans,
        "latency_p50": percentile(latencies, 0.5), "latency_p99": percentile(latencies, 0.99),
        "latency_max": max(latencies), "restarts": final["servers"][0]["restarts"],
        "fast_path": final.get("fast_path", {}),
        "retries": sum(1 for e in final["events"] if e["event"] == "retry"),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second, all workers together")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between kills of the primary")
    parser.add_argument("--interval-ms", type=int, default=1000, help="the pool's health_check_interval_ms")
    args = parser.parse_args(argv)
    if not EVERYTHING.exists():
        print("server-everything is not installed: run scripts/install-mcp-servers.sh", file=sys.stderr)
        return 2
    with isolated_env():
        r = anyio.run(run, args)
    det = r["detections_ms"]
    print(f"machine: {machine()}")
    print(f"{r['calls']} calls of everything__echo at {args.rate:g}/s from {args.concurrency} workers in "
          f"{r['wall_s']:.1f} s; primary SIGKILLed every {args.kill_every:g} s; health interval "
          f"{args.interval_ms} ms\n")  # fmt: skip
    print(
        "| calls | failed | kills | detected | detection p50 ms | detection max ms | failovers counted "
        "| answered by primary / backup | call p50 / p99 / max ms | orphans |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    by = r["answered_by"]
    answered = f"{float(by.get('everything', 0)):.0f} / {float(by.get('everything-backup', 0)):.0f}"
    print(f"| {r['calls']} | {r['failed']} | {r['kills']} | {len(det)} | "
          f"{percentile(det, 0.5) if det else float('nan'):.1f} | {max(det) if det else float('nan'):.1f} | "
          f"{r['failovers']:.0f} | {answered} | {r['latency_p50']:.1f} / {r['latency_p99']:.1f} / "
          f"{r['latency_max']:.1f} | {len(r['orphans'])} |")  # fmt: skip
    for failure in r["failures"]:
        print(f"  failed: {failure}")
    fast = r["fast_path"]
    print(f"\nraw tools/call path: {fast.get('taken', 0)} calls; left to the SDK path: {fast.get('fallbacks', {})}; "
          f"calls retried on another server after a death: {r['retries']}")  # fmt: skip
    ok = r["failed"] == 0 and len(det) == r["kills"] and all(d <= args.interval_ms for d in det) and not r["orphans"]
    print("\ngoals: zero failed calls, every death detected within one health interval, no orphans:",
          "met" if ok else "NOT met")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
