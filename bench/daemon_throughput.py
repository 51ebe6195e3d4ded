"""Decisions per second the daemon answers, one connection per hook call as the real client makes them.

    .venv/bin/python -m bench.daemon_throughput [--requests 5000] [--concurrency 16]

The load generator (asyncio, in this process) opens a new Unix-socket connection per request, sends a
PreToolUse payload and reads the reply, like ``ultramax-hook``. Baseline in the same run: a bare asyncio
Unix server in its own process that answers the same framing with a constant reply (the transport ceiling
on this machine), so the ratio says how much of that ceiling the full pipeline keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import isolated_env, machine, running_daemon
from bench.hook_latency import payload
from ultramax.audit import verify

ECHO_SERVER = r"""
import asyncio, sys
REPLY = b"0 0\n"
async def handle(r, w):
    await r.readuntil(b"\n"); await r.read()
    w.write(REPLY); await w.drain(); w.close()
async def main():
    server = await asyncio.start_unix_server(handle, path=sys.argv[1])
    print("ready", flush=True)
    async with server: await server.serve_forever()
asyncio.run(main())
"""


async def _load(sock: str, requests: int, concurrency: int) -> tuple[float, int]:
    requests_by_session = [b"PreToolUse\t/tmp/bench-project\n" + payload(i) for i in range(40)]
    remaining = requests
    ok = 0

    async def worker() -> None:
        nonlocal remaining, ok
        while remaining > 0:
            remaining -= 1
            reader, writer = await asyncio.open_unix_connection(sock)
            writer.write(requests_by_session[remaining % 40])
            writer.write_eof()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            if reply.startswith(b"0 "):
                ok += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "echo.sock")
        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, sock], stdout=subprocess.PIPE)
        try:
            assert echo.stdout is not None
            echo.stdout.readline()
            asyncio.run(_load(sock, 500, args.concurrency))  # warm-up
            base_s, base_ok = asyncio.run(_load(sock, args.requests, args.concurrency))
        finally:
            echo.terminate()
            echo.wait()
    with isolated_env(), running_daemon() as paths:
        asyncio.run(_load(str(paths.socket), 500, args.concurrency))
        daemon_s, daemon_ok = asyncio.run(_load(str(paths.socket), args.requests, args.concurrency))
        report = verify(paths.audit_log, paths.audit_head)
    base_rate, daemon_rate = args.requests / base_s, args.requests / daemon_s
    print(f"machine: {machine()}")
    print(f"{args.requests} requests, {args.concurrency} concurrent connections, one connection per request\n")
    print("| server | answered | seconds | decisions/s | vs transport ceiling |")
    print("|---|---:|---:|---:|---:|")
    print(f"| bare asyncio Unix server (constant reply) | {base_ok} | {base_s:.2f} | {base_rate:,.0f} | 1.00x |")
    print(
        f"| ultramax daemon (full pipeline + audit) | {daemon_ok} | {daemon_s:.2f} | {daemon_rate:,.0f} "
        f"| {daemon_rate / base_rate:.2f}x |"
    )
    print(f"\naudit chain after the run: {report.records} records, verified={report.ok}")
    print("goal: >= 2,000 decisions/s")
    return 0 if daemon_ok == args.requests and report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
