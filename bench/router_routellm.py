"""Router quality on the RouteLLM benchmarks (GSM8K, MMLU, MT-Bench), held-out half only.

    .venv/bin/python -m bench.router_routellm [--data DIR] [--json FILE]

The router's score for a prompt is the complexity it compares with its thresholds
(``ultramax.routing.analyze_prompt(prompt).complexity_score``). Sweeping the threshold over every distinct
score sends the top-scored share of prompts to the strong model (GPT-4) and the rest to the weak one
(Mixtral); each point of the sweep gives (share of strong calls, quality). Reported per benchmark:

- CPT(50%), CPT(80%): strong-call share needed to recover 50% / 80% of the weak->strong quality gap (RouteLLM);
- CPT(95% q): strong-call share needed for 95% of the strong model's quality (the issue's reference);
- APGR: the average performance gap recovered over the whole sweep (area under the PGR curve);
- the same for a random router (linear by construction) and the oracle (knows each prompt's outcome), and
  the share of the random->oracle gap the router closes at 95% quality;
- what ``analyze_prompt`` costs per prompt (each prompt seen for the first time: the estimate cache cleared).

Only prompts in the held-out half (``not is_training_prompt``) are scored: the shipped difficulty weights
were trained on the other half. Contaminated prompts listed with the data are excluded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import machine
from bench.routellm_data import BENCHMARKS, DEFAULT_DATA, Item, load
from ultramax.routing import analyzer
from ultramax.routing.difficulty import estimate_difficulty, is_training_prompt, load_difficulty_model

DEV_SET = Path(__file__).resolve().parents[1] / "tests" / "routing" / "data" / "claude_code_dev.jsonl"
REFERENCE = {"gsm8k": (80.4, 17.6), "mmlu": (67.8, 8.5), "mt-bench": (48.0, 5.6)}


def curve(scores: Sequence[float], items: Sequence[Item]) -> list[tuple[float, float]]:
    """(strong share, quality) at every distinct threshold, highest scores routed strong first."""
    n = len(items)
    order = sorted(range(n), key=lambda i: -scores[i])
    quality = sum(i.weak for i in items) / n
    points = [(0.0, quality)]
    k = 0
    while k < n:
        j = k
        while j < n and scores[order[j]] == scores[order[k]]:
            quality += (items[order[j]].strong - items[order[j]].weak) / n
            j += 1
        points.append((j / n, quality))
        k = j
    return points


def calls_for(points: list[tuple[float, float]], target: float) -> float:
    """Smallest strong share reaching ``target`` quality (linear between sweep points; ties split at random)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 >= target:
            return x0
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return float("nan")


def metrics(scores: Sequence[float], items: Sequence[Item]) -> dict[str, float]:
    n = len(items)
    strong = sum(i.strong for i in items) / n
    weak = sum(i.weak for i in items) / n
    points = curve(scores, items)
    gap = strong - weak
    apgr = sum((x1 - x0) * ((y0 + y1) / 2 - weak) / gap for (x0, y0), (x1, y1) in itertools.pairwise(points))
    return {
        "cpt50": 100 * calls_for(points, weak + 0.5 * gap),
        "cpt80": 100 * calls_for(points, weak + 0.8 * gap),
        "cpt95q": 100 * calls_for(points, 0.95 * strong),
        "apgr": apgr,
    }


def random_metrics(items: Sequence[Item]) -> dict[str, float]:
    n = len(items)
    strong = sum(i.strong for i in items) / n
    weak = sum(i.weak for i in items) / n
    return {"cpt50": 50.0, "cpt80": 80.0, "cpt95q": 100 * (0.95 * strong - weak) / (strong - weak), "apgr": 0.5}


def analyze_cost(prompts: Sequence[str]) -> dict[str, float]:
    """Milliseconds ``analyze_prompt`` takes on each prompt, seen for the first time (estimate cache cleared)."""
    analyzer.analyze_prompt("warm up: load the weights and the vocabulary")
    estimate_difficulty.cache_clear()
    times = []
    for prompt in prompts:
        started = time.perf_counter()
        analyzer.analyze_prompt(prompt)
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    return {
        "mean": statistics.fmean(times),
        "p50": times[len(times) // 2],
        "p95": times[int(0.95 * (len(times) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the RouteLLM data directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no RouteLLM data at {args.data}; pass --data")
    model = load_difficulty_model()
    scorers: dict[str, Callable[[str], float]] = {
        "ultramax router (complexity)": lambda p: analyzer.analyze_prompt(p).complexity_score,
        "  learned difficulty alone": lambda p: model.estimate(p[:20_000]).percentile,
    }
    results: dict[str, object] = {"machine": machine(), "data": str(args.data)}
    print(f"Machine: {results['machine']}")
    print(f"Difficulty weights: {model.trained_on}\n")
    header = "| benchmark | router | held-out prompts | CPT(50%) | CPT(80%) | CPT(95% quality) | APGR |"
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in BENCHMARKS:
        items = [i for i in load(name, args.data) if not is_training_prompt(i.prompt)]
        costs = analyze_cost([i.prompt for i in items])
        rows = {label: metrics([f(i.prompt) for i in items], items) for label, f in scorers.items()}
        rows["random"] = random_metrics(items)
        rows["oracle"] = metrics([i.strong - i.weak for i in items], items)
        rnd, orc, us = (
            rows["random"]["cpt95q"],
            rows["oracle"]["cpt95q"],
            rows["ultramax router (complexity)"]["cpt95q"],
        )
        closed = (rnd - us) / (rnd - orc)
        for label, m in rows.items():
            print(
                f"| {name} | {label.strip()} | {len(items)} | {m['cpt50']:.1f}% | {m['cpt80']:.1f}% | "
                f"{m['cpt95q']:.1f}% | {m['apgr']:.3f} |"
            )
        ref_r, ref_o = REFERENCE[name]
        print(f"| {name} | gap closed at 95% quality (router vs random -> oracle) | | | | {closed:.0%} | |")
        results[name] = {
            "prompts": len(items),
            "rows": rows,
            "gap_closed_95q": closed,
            "reference_random_oracle_95q": [ref_r, ref_o],
            "analyze_prompt_ms": costs,
        }
        print(
            f"| {name} | analyze_prompt per new prompt: mean {costs['mean']:.3f} ms, p50 {costs['p50']:.3f} ms, "
            f"p95 {costs['p95']:.3f} ms | | | | | |"
        )
    dev = [json.loads(line)["prompt"] for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    costs = analyze_cost(dev)
    results["claude_code_dev_analyze_prompt_ms"] = costs
    print(
        f"\nanalyze_prompt per new prompt on the {len(dev)} Claude Code dev prompts: mean {costs['mean']:.3f} ms, "
        f"p50 {costs['p50']:.3f} ms, p95 {costs['p95']:.3f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
