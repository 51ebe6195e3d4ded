"""What prompt caching does to routing's savings: simulated Claude Code sessions priced with the cache's rules.

    .venv/bin/python -m bench.router_cache [--sessions 80] [--seeds 0 1 2]

Claude Code caches its whole conversation prefix, per model: a request on the model that answered the last one
(within five minutes) reads the prefix at 0.1x the input price and writes only what is new (1.25x); a request on
another model writes the whole prefix again. So a router that moves a long conversation to a cheaper model for one
turn can pay more for the re-write than it saves. This replays the same sessions three ways -- always the model
Claude Code asked for (Opus), the router without ``routing.cacheAwareSwitching``, and the router with it -- through
the real ``Router`` (a fake clock; the router also learns the output sizes, as from the proxy) and prices every
request with the catalog's cache prices.

The sessions (seeded): turns whose prompts and labelled tiers are drawn from the Claude Code holdouts
(``bench/data/claude_code_holdout*.jsonl``; only prompts and labels are used, nothing is fitted); 1-8 requests per
turn (the tool loop, mean ~3); a prefix of 18k tokens (system prompt and tools) growing by 0.5-4k tokens per
request; 150-1,500 output tokens per request; 20 s to 3 min between turns, and 15% of gaps over five minutes (the
cache has gone cold). These shapes are this benchmark's assumptions, not measurements of real sessions; the
figures are what the rules give under them.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field

from bench.common import REPO, machine
from ultramax.routing import Router, RouterConfig, Usage, load_catalog
from ultramax.routing.catalog import Catalog

HOLDOUTS = (
    REPO / "bench" / "data" / "claude_code_holdout.jsonl",
    REPO / "bench" / "data" / "claude_code_holdout_boundaries.jsonl",
)
TOP = "claude-opus-5"
TTL = 300.0
RANK = {"haiku": 0, "sonnet": 1, "opus": 2}


@dataclass
class Request:
    at: float
    session: str
    prompt: str
    label: str
    turn: int
    context: int
    output: int


@dataclass
class Priced:
    cost: float = 0.0
    cold: int = 0
    """Requests that wrote the whole prefix (no warm cache on their model)."""
    turns: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    """(session, turn) -> (tier of the turn's first request, label)."""


def sessions(n: int, seed: int) -> list[list[Request]]:
    rng = random.Random(seed)
    asks = [json.loads(line) for path in HOLDOUTS for line in path.read_text().splitlines() if line.strip()]
    out = []
    for s in range(n):
        clock, context, requests = 1_000_000.0 + s * 86_400, 18_000, []
        for t in range(rng.randint(6, 20)):
            ask = rng.choice(asks)
            clock += rng.uniform(360, 1_800) if rng.random() < 0.15 else rng.uniform(20, 180)
            for _ in range(min(8, 1 + int(rng.expovariate(0.5)))):
                requests.append(
                    Request(clock, f"s-{s}", ask["prompt"], ask["tier"], t, context, rng.randint(150, 1_500))
                )
                context += rng.randint(500, 4_000)
                clock += rng.uniform(3, 20)
        out.append(requests)
    return out


def price(catalog: Catalog, model: str, req: Request, caches: dict[str, tuple[int, float]]) -> tuple[float, bool]:
    """One request's cost, and whether it found no warm cache: the prefix read where this model's cache for the
    conversation is warm, written where it is not; the cache then holds the whole context."""
    spec = catalog.spec(model)
    assert spec is not None, model
    cached, last = caches.get(model, (0, -1e18))
    warm = cached if req.at - last <= TTL and cached <= req.context else 0
    caches[model] = (req.context, req.at)
    usage = Usage(output_tokens=req.output, cache_write_5m=req.context - warm, cache_read=warm)
    return spec.cost(usage), warm == 0


def replay(all_sessions: list[list[Request]], route: bool, cache_aware: bool) -> Priced:
    catalog = load_catalog()
    now = [0.0]
    router = Router(catalog, RouterConfig(budget_per_hour=0, cache_aware=cache_aware), clock=lambda: now[0])
    priced = Priced()
    for requests in all_sessions:
        caches: dict[str, tuple[int, float]] = {}
        for req in requests:
            now[0] = req.at
            model, tier = TOP, "opus"
            if route:
                body = {
                    "model": TOP,
                    "max_tokens": 32_000,
                    "messages": [{"role": "user", "content": req.prompt}],
                    "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
                }
                headers = {"x-claude-code-session-id": req.session, "user-agent": "claude-cli/bench"}
                decision = router.route(body, headers, raw_size=req.context * 4)
                model, tier = decision.model, decision.tier
                router.record_usage(Usage(output_tokens=req.output))
            cost, cold = price(catalog, model, req, caches)
            priced.cost += cost
            priced.cold += cold
            priced.turns.setdefault((req.session, req.turn), (tier, req.label))
    return priced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=80)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print("| seed | policy | cost USD | vs always Opus | cold prefix writes | turns under-routed | turns over-routed |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        data = sessions(args.sessions, seed)
        top = replay(data, route=False, cache_aware=False)
        for name, result in (
            (f"always the requested model (Opus); {args.sessions} sessions, "
             f"{len({(r.session, r.turn) for s in data for r in s})} turns, {sum(len(s) for s in data)} requests", top),
            ("router, cache-blind", replay(data, route=True, cache_aware=False)),
            ("router, cache-aware (default)", replay(data, route=True, cache_aware=True)),
        ):  # fmt: skip
            turns = list(result.turns.values())
            under = sum(RANK[t] < RANK[label] for t, label in turns) / len(turns)
            over = sum(RANK[t] > RANK[label] for t, label in turns) / len(turns)
            print(
                f"| {seed} | {name} | {result.cost:.2f} | {result.cost / top.cost:.1%} | {result.cold} | {under:.1%} "
                f"| {over:.1%} |"
            )


if __name__ == "__main__":
    main()
