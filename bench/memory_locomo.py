"""Retrieval quality on LoCoMo: fractional evidence recall@5/10/25/50, per category, MRR and search latency.

    .venv/bin/python -m bench.memory_locomo [--data ../shared/evals/locomo/locomo10.json] [--json]

Each dialog turn is a passage, each question a query against its own conversation (``ultramax.memory.locomo``
-- the same code as ``ultramax memory eval --locomo FILE``). Every fusion method is scored on one store,
so the table compares them on identical candidates. The data file is read where it lies (CC BY-NC 4.0: it
is never copied into this repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import REPO, machine
from ultramax.memory.locomo import evaluate
from ultramax.memory.search import FUSIONS

DEFAULT_DATA = REPO.parent / "shared" / "evals" / "locomo" / "locomo10.json"
ANCHORS = {"DRAGON (LoCoMo paper, dialog)": (0.567, 0.662, 0.767, 0.827)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a LoCoMo-format file")
    parser.add_argument("--conversations", type=int, help="only the first N conversations")
    parser.add_argument("--context-turns", type=int, default=1, help="turns before each turn indexed with it")
    parser.add_argument("--no-time-filter", action="store_true", help="ignore time phrases in questions")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    reports = evaluate(
        args.data,
        fusions=FUSIONS,
        context_turns=args.context_turns,
        time_filter=not args.no_time_filter,
        limit_conversations=args.conversations,
        progress=lambda m: print(m, file=sys.stderr),
    )
    if args.json:
        print(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=2))
        return 0
    print(f"Machine: {machine()}\n")
    first = next(iter(reports.values()))
    print(
        f"{first.questions} questions, {first.ingest['turns']} turns; ingest {first.ingest['per_second']} turns/s "
        f"with embeddings; context turns {args.context_turns}; time filter {not args.no_time_filter}\n"
    )
    print("| fusion | R@5 | R@10 | R@25 | R@50 | MRR | search p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in reports.items():
        rec = " | ".join(f"{r.recall[k]:.3f}" for k in (5, 10, 25, 50))
        print(f"| {name} | {rec} | {r.mrr:.3f} | {r.latency_ms['p50']} | {r.latency_ms['p95']} |")
    for name, values in ANCHORS.items():
        print(f"| {name} | {' | '.join(f'{v:.3f}' for v in values)} | – | – | – |")
    print()
    for name, r in reports.items():
        print(f"\n{name}, per category:\n")
        print("| category | questions | R@5 | R@10 | R@25 | R@50 | MRR |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for cat, row in r.per_category.items():
            print(
                f"| {cat} | {int(row['questions'])} | {row['@5']:.3f} | {row['@10']:.3f} | {row['@25']:.3f} | "
                f"{row['@50']:.3f} | {row['mrr']:.3f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
