"""What the routing proxy costs: added time to first byte, streaming throughput, 200 concurrent streams.

    .venv/bin/python -m bench.proxy_overhead [--requests 300] [--concurrency 200] [--no-sentence-embedding]

Three processes on loopback: the stand-in upstream (``tests/support/upstream.py``), ``ultramax proxy`` in
front of it (as a user runs it, with no budget so the benchmark's fake spend does not stop it), and this
client. Direct and proxied requests alternate, each on its own kept-alive connection.

- **TTFB**: ``POST /v1/messages`` (stream) until the response head has arrived, direct vs through the proxy,
  for a small request and a 60 KB one (Claude Code's first request is ~50 KB), with the model kept and with
  the model changed by the router (the proxy splices the new value into the bytes).
- **A new prompt each time**: the same, but every request carries a prompt the proxy has not seen (taken from
  the Claude Code holdouts, for a realistic mix of asks), so the router's analysis runs for each -- the tier
  model, and for the prompts it is not sure about without it, its sentence embedding; reported for all of
  them and for each of the two kinds. In a session only the first request of a turn is like this.
- **The same, hinted**: as Claude Code runs with ultramax's hooks, the daemon's UserPromptSubmit stage posts
  the prompt to the proxy (``routing.prewarm``) before Claude Code sends it; once with the request sent right
  after the hint (the least it can gain), once ``HINT_LEAD`` later.
- **The same through the official SDK**: two of the rows again with ``anthropic.Anthropic`` as the client.
- **Throughput**: one long stream (8 MB of SSE) read to the end, MB/s direct vs proxied (median of runs).
- **Concurrency**: N simultaneous streams through the proxy with the official ``anthropic`` SDK
  (``AsyncAnthropic``); every one must finish with the expected number of events.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, isolated_env, machine, percentile
from ultramax.prewarm import PREWARM_PATH
from ultramax.routing import analyze_prompt

HARD = "Design the architecture of a distributed, fault-tolerant consensus service and explain the trade-offs."
EASY = "Fix the typo in README.md"
NEW_PROMPTS = (
    REPO / "bench" / "data" / "claude_code_holdout.jsonl",
    REPO / "bench" / "data" / "claude_code_holdout_boundaries.jsonl",
)
"""Where the new prompts come from: the Claude Code holdouts' prompts, a realistic mix of asks (only their
text is used here; nothing is scored)."""
KEY = "sk-ant-bench-not-a-real-key-000000000000"
HINT_LEAD = 0.010
"""How long before its request the hinted row sends the prewarm hint. With the real Claude Code CLI
(``tests/e2e/test_proxy_e2e.py`` prints it) the hinted estimate was *ready* 4-59 ms before its request arrived in
ten runs (median 35 ms), so 10 ms from hint to request is the harsher case."""


def start(args: list[str], env: dict[str, str], stream: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(args, env=env, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    line = pipe.readline()
    url = next((w for w in line.split() if w.startswith("http://")), "")
    if not url:
        proc.kill()
        raise SystemExit(f"{args} did not start: {line!r} {proc.communicate()}")
    return proc, url


def body(prompt: str, *, pad: int = 0) -> bytes:
    messages = [{"role": "user", "content": prompt}]
    if pad:
        messages = [
            {"role": "user", "content": "x " * (pad // 2)},
            {"role": "assistant", "content": "ok"},
            *messages,
        ]
    data = {
        "model": "claude-opus-5",
        "max_tokens": 1024,
        "stream": True,
        "messages": messages,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
    }
    return json.dumps(data).encode()


HEADERS = {
    "content-type": "application/json",
    "x-api-key": KEY,
    "anthropic-version": "2023-06-01",
    "user-agent": "claude-cli/bench",
    "x-test-deltas": "4",
}


def ttfb_ms(conn: http.client.HTTPConnection, payload: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    conn.request("POST", "/v1/messages?beta=true", body=payload, headers=headers)
    response = conn.getresponse()
    elapsed = (time.perf_counter() - started) * 1000
    response.read()
    assert response.status == 200, response.status
    return elapsed


Row = tuple[str, float, float, float, float]
"""(label, direct p50, proxied p50, direct p95, proxied p95), in ms."""


def latency_row(label: str, direct: list[float], proxied: list[float]) -> Row:
    return label, percentile(direct, 0.5), percentile(proxied, 0.5), percentile(direct, 0.95), percentile(proxied, 0.95)


def post_hint(conn: http.client.HTTPConnection, prompt: str) -> None:
    """The daemon's prewarm hint for ``prompt``, as ``ultramax.prewarm.PrewarmSender`` posts it."""
    conn.request(
        "POST", PREWARM_PATH, body=json.dumps({"prompt": prompt}).encode(), headers={"content-type": "application/json"}
    )
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 202, answer.status


def conn_for(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def new_prompts(n: int) -> list[str]:
    """``n`` distinct prompts from ``NEW_PROMPTS`` in a fixed shuffled order (repeated with a suffix past them)."""
    texts = [json.loads(line)["prompt"] for path in NEW_PROMPTS for line in path.read_text().splitlines() if line]
    random.Random(0).shuffle(texts)
    return [texts[i % len(texts)] + (f" (again, {i // len(texts)})" if i >= len(texts) else "") for i in range(n)]


def measure_ttfb(direct: str, proxy: str, n: int, *, embedding: bool = True) -> list[Row]:
    rows = []
    for label, payload in (
        ("small request, model kept", body(HARD)),
        ("small request, model changed", body(EASY)),
        ("60 KB request, model kept", body(HARD, pad=60_000)),
        ("60 KB request, model changed", body(EASY, pad=60_000)),
    ):
        d, p = conn_for(direct), conn_for(proxy)
        for _ in range(20):  # warm-up (connections, caches)
            ttfb_ms(d, payload, HEADERS)
            ttfb_ms(p, payload, HEADERS)
        dt, pt = [], []
        for _ in range(n):
            dt.append(ttfb_ms(d, payload, HEADERS))
            pt.append(ttfb_ms(p, payload, HEADERS))
        d.close()
        p.close()
        rows.append(latency_row(label, dt, pt))
    # every request a prompt the proxy has not seen: the tier model runs each time, and for the prompts it is not
    # sure about without it, the sentence embedding and neighbours (in a session only a turn's first request is
    # new; its tool-loop requests repeat the prompt)
    prompts = new_prompts(3 * (n + 20))
    heads = [analyze_prompt(text, claude_code=True, sentence_embedding=embedding).learned_head for text in prompts]
    for index, (lead, title) in enumerate(
        (
            (None, "small request, a new Claude Code prompt each time"),
            (0.0, "... hinted by the UserPromptSubmit hook, request sent at once"),
            (HINT_LEAD, f"... hinted by the UserPromptSubmit hook {HINT_LEAD * 1000:.0f} ms before"),
        )
    ):
        part = slice(index * (n + 20), (index + 1) * (n + 20))
        timed = new_prompt_ttfb(direct, proxy, prompts[part], heads[part], lead)
        kinds: tuple[tuple[str, set[str]], ...] = ((title, {"main", "confident", "fallback"}),)
        if lead is None:
            kinds += (
                ("... those the tier model was sure of without the embedding", {"confident"}),
                ("... those that ran the sentence embedding", {"main"}),
            )
        for label, keep in kinds:
            dt = [t[1] for t in timed if t[0] in keep]
            pt = [t[2] for t in timed if t[0] in keep]
            if dt:
                share = f" ({len(dt) / len(timed):.0%})" if len(keep) == 1 else ""
                rows.append(latency_row(label + share, dt, pt))
    return rows


def new_prompt_ttfb(
    direct: str, proxy: str, prompts: list[str], heads: list[str], lead: float | None
) -> list[tuple[str, float, float]]:
    """(tier-model head, direct ms, proxied ms) per prompt after the first 20; with ``lead`` set, the proxy is
    first sent the prompt as the daemon's prewarm hint, ``lead`` seconds before the request."""
    d, p, h = conn_for(direct), conn_for(proxy), conn_for(proxy)
    timed: list[tuple[str, float, float]] = []
    for i, text in enumerate(prompts):
        payload = body(text)
        direct_ms = ttfb_ms(d, payload, HEADERS) if not lead else 0.0
        if lead is not None:
            post_hint(h, text)
        if lead:
            time.sleep(lead)
            # direct after the same pause as the proxied request: a process woken from idle answers slower
            direct_ms = ttfb_ms(d, payload, HEADERS)
        proxy_ms = ttfb_ms(p, payload, HEADERS)
        if i >= 20:
            timed.append((heads[i], direct_ms, proxy_ms))
    for conn in (d, p, h):
        conn.close()
    return timed


def stream_mb_s(url: str, deltas: int, size: int) -> tuple[float, int]:
    conn = conn_for(url)
    headers = {**HEADERS, "x-test-deltas": str(deltas), "x-test-delta-bytes": str(size)}
    started = time.perf_counter()
    conn.request("POST", "/v1/messages", body=body(HARD), headers=headers)
    response = conn.getresponse()
    total = 0
    while chunk := response.read1(65536):
        total += len(chunk)
    elapsed = time.perf_counter() - started
    conn.close()
    return total / elapsed / 1e6, total


def measure_throughput(direct: str, proxy: str, runs: int) -> tuple[float, float, int]:
    d, p = [], []
    size = 0
    for _ in range(runs):
        rate, size = stream_mb_s(direct, 40_000, 128)
        d.append(rate)
        p.append(stream_mb_s(proxy, 40_000, 128)[0])
    return statistics.median(d), statistics.median(p), size


def measure_sdk_ttfb(direct: str, proxy: str, n: int) -> list[Row]:
    """The same measure through the official ``anthropic`` SDK (until ``with_streaming_response`` returns: the
    response head), for the issue's client; the SDK's own time is on both sides of the difference."""
    import anthropic

    rows = []
    clients = [anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=60) for url in (direct, proxy)]
    hint = conn_for(proxy)

    def once(sdk: anthropic.Anthropic, prompt: str) -> float:
        started = time.perf_counter()
        with sdk.messages.with_streaming_response.create(
            model="claude-opus-5",
            max_tokens=1024,
            stream=True,
            messages=[{"role": "user", "content": prompt}],
            tools=[{"name": "Bash", "input_schema": {"type": "object"}}],
            extra_headers={"user-agent": "claude-cli/bench", "x-test-deltas": "4"},
        ) as response:
            elapsed = (time.perf_counter() - started) * 1000
            for _ in response.iter_bytes():
                pass
        return elapsed

    fresh = iter(new_prompts(4 * (n + 20))[3 * (n + 20) :])  # prompts the other rows did not send
    for label, hinted in (
        ("SDK: small request, model changed", False),
        (f"SDK: a new Claude Code prompt, hinted {HINT_LEAD * 1000:.0f} ms before", True),
    ):
        dt, pt = [], []
        for i in range(n + 20):
            prompt = next(fresh) if hinted else EASY
            if hinted:
                post_hint(hint, prompt)
                time.sleep(HINT_LEAD)
            d, p = once(clients[0], prompt), once(clients[1], prompt)
            if i >= 20:
                dt.append(d)
                pt.append(p)
        rows.append(latency_row(label, dt, pt))
    for sdk in clients:
        sdk.close()
    hint.close()
    return rows


async def concurrent_streams(proxy: str, n: int) -> tuple[int, int, float]:
    import anthropic

    async with anthropic.AsyncAnthropic(
        base_url=proxy, api_key=KEY, max_retries=0, http_client=None, timeout=120
    ) as sdk:

        async def one(i: int) -> int:
            async with sdk.messages.stream(
                model="claude-opus-5",
                max_tokens=64,
                messages=[{"role": "user", "content": f"{HARD} #{i}"}],
                extra_headers={"x-test-deltas": "200", "x-test-interval-ms": "1"},
            ) as stream:
                return len([e async for e in stream])

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        elapsed = time.perf_counter() - started
    ok = [r for r in results if isinstance(r, int) and r == results[0]]
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors[:3]:
        print(f"  error: {err!r}", file=sys.stderr)
    return len(ok), len(errors), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--no-sentence-embedding", action="store_true", help="run the proxy with routing.sentenceEmbedding false"
    )
    args = parser.parse_args()
    with isolated_env() as env:
        settings = Path(env["HOME"]) / ".claude" / "settings.json"
        routing = {"costBudgetPerHour": 0, "sentenceEmbedding": not args.no_sentence_embedding}
        settings.write_text(json.dumps({"observability": {"metricsPort": 0}, "routing": routing}))
        child_env = {**env, "PYTHONPATH": str(REPO)}
        upstream, direct = start([sys.executable, "-m", "tests.support.upstream"], child_env, "stdout")
        proxy_proc, proxy = start(
            [sys.executable, "-m", "ultramax.cli.main", "proxy", "--port", "0", "--upstream", direct, "--quiet"],
            child_env,
            "stderr",
        )
        try:
            print(f"Machine: {machine()}")
            print(f"upstream {direct}, proxy {proxy} (pid {proxy_proc.pid}); {args.requests} requests per row\n")
            print("| request | direct p50 ms | proxy p50 ms | added p50 ms | direct p95 ms | proxy p95 ms |")
            print("|---|---:|---:|---:|---:|---:|")
            for label, d50, p50, d95, p95 in [
                *measure_ttfb(direct, proxy, args.requests, embedding=not args.no_sentence_embedding),
                *measure_sdk_ttfb(direct, proxy, args.requests),
            ]:
                print(f"| {label} | {d50:.2f} | {p50:.2f} | {p50 - d50:+.2f} | {d95:.2f} | {p95:.2f} |")
            d, p, size = measure_throughput(direct, proxy, args.runs)
            print(
                f"\nthroughput ({size / 1e6:.1f} MB stream, median of {args.runs}): direct {d:.1f} MB/s, "
                f"proxy {p:.1f} MB/s = {p / d:.1%} of direct"
            )
            ok, errors, elapsed = asyncio.run(concurrent_streams(proxy, args.concurrency))
            print(
                f"\n{args.concurrency} concurrent SDK streams through the proxy: {ok} complete, {errors} errors, "
                f"{elapsed:.1f} s"
            )
        finally:
            for proc in (proxy_proc, upstream):
                proc.terminate()
                try:
                    proc.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


if __name__ == "__main__":
    main()
