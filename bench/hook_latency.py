"""Wall time of one PreToolUse hook process, spawn to exit, against the bare interpreter start.

    .venv/bin/python -m bench.hook_latency [--runs 200]

Variants run interleaved (round-robin) so machine noise hits all of them alike; ratios are against
``python -I -c pass`` from the same venv, measured in the same phase. The hook is run exactly as
``ultramax install`` writes it: ``<venv python> -I -S <client.py> PreToolUse --timeout-ms=5000``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import ultramax.hook.client
from bench.common import isolated_env, machine, running_daemon, summary

PAYLOAD = (
    b'{"session_id":"bench-session-00","transcript_path":"/tmp/t.jsonl","cwd":"/tmp/bench-project",'
    b'"permission_mode":"default","effort":{"level":"medium"},"hook_event_name":"PreToolUse","tool_name":"Bash",'
    b'"tool_input":{"command":"npm test -- auth","description":"Run auth tests"},"tool_use_id":"toolu_bench"}'
)


def payload(i: int) -> bytes:
    """The PreToolUse payload of session ``i % 40``: spread over sessions as real traffic is, so the per-session
    rate limiter (a real stage, 600 events/min by default) never turns the benchmark into a test of denials."""
    return PAYLOAD.replace(b"bench-session-00", b"bench-session-%02d" % (i % 40))


_counter = iter(range(10**9))


def _time(cmd: list[str]) -> float:
    data = payload(next(_counter))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} exited {proc.returncode}: {proc.stderr.decode()[:500]}")
    return elapsed


def measure(variants: dict[str, list[str]], runs: int, warmup: int = 10) -> dict[str, list[float]]:
    for _ in range(warmup):
        for cmd in variants.values():
            _time(cmd)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, cmd in variants.items():
            results[name].append(_time(cmd))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    py = sys.executable
    client = str(Path(ultramax.hook.client.__file__).resolve())
    hook = [py, "-I", "-S", client, "PreToolUse", "--timeout-ms=5000"]
    bare = [py, "-I", "-c", "pass"]
    console = [str(Path(py).with_name("ultramax-hook")), "PreToolUse"]
    rows: list[tuple[str, str, list[float], list[float]]] = []
    with isolated_env():
        with running_daemon():
            up = measure({"bare": bare, "hook": hook, "console": console}, args.runs)
        rows.append(("daemon up", "hook command as installed", up["hook"], up["bare"]))
        rows.append(("daemon up", "`ultramax-hook` console script", up["console"], up["bare"]))
        down = measure({"bare": bare, "hook": hook}, max(50, args.runs // 2))
        rows.append(("daemon down", "hook command (in-process pipeline)", down["hook"], down["bare"]))
    print(f"machine: {machine()}")
    print(f"runs: {args.runs} per variant (daemon down: {max(50, args.runs // 2)}), 10 warm-ups, interleaved\n")
    print("| phase | variant | p50 ms | p95 ms | bare p50 ms | bare p95 ms | p50 ratio | p95 ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for phase, name, values, base in rows:
        p50, p95, _ = summary(values)
        b50, b95, _ = summary(base)
        ratios = f"{p50 / b50:.2f}x | {p95 / b95:.2f}x"
        print(f"| {phase} | {name} | {p50:.1f} | {p95:.1f} | {b50:.1f} | {b95:.1f} | {ratios} |")
    print("\ngoals: daemon up p50 <= 1.30x and p95 <= 1.60x the bare start; daemon down p50 <= 400 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
