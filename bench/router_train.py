"""Train the router's learned difficulty estimate on the *training half* of the RouteLLM data.

    .venv/bin/python -m bench.router_train [--data DIR]

Label: the weak model fell short where the strong one did not (GSM8K / MMLU: weak wrong and strong right;
MT-Bench: the strong model's judge score at least 1 point higher). Logistic regression, plain SGD with L2,
pure Python, fixed seed. Which half a prompt is in is ``ultramax.routing.difficulty.is_training_prompt``
(a hash of its text); ``bench.router_routellm`` scores only the other half. Writes
``src/ultramax/routing/data/difficulty.json`` (rounded, pruned weights).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter
from pathlib import Path

from bench.routellm_data import BENCHMARKS, DEFAULT_DATA, load
from ultramax.routing.difficulty import features, is_training_prompt

OUT = Path(__file__).resolve().parents[1] / "src" / "ultramax" / "routing" / "data" / "difficulty.json"


def label(name: str, strong: float, weak: float) -> float:
    if name == "mt-bench":
        return 1.0 if strong - weak >= 1.0 else 0.0
    return strong * (1.0 - weak)


def train(rows: list[tuple[dict[str, float], float]], *, epochs: int, lr: float, l2: float) -> dict[str, float]:
    w: dict[str, float] = {}
    order = list(range(len(rows)))
    rnd = random.Random(0)
    for epoch in range(epochs):
        rnd.shuffle(order)
        rate = lr / (1 + epoch)
        for i in order:
            x, y = rows[i]
            z = sum(w.get(k, 0.0) * v for k, v in x.items())
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            g = p - y
            for k, v in x.items():
                old = w.get(k, 0.0)
                w[k] = old - rate * (g * v + l2 * old)
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--min-count", type=int, default=8, help="drop sparse features seen fewer times")
    args = parser.parse_args()
    raw: list[tuple[dict[str, float], float]] = []
    counts: Counter[str] = Counter()
    sizes = {}
    for name in BENCHMARKS:
        items = [i for i in load(name, args.data) if is_training_prompt(i.prompt)]
        sizes[name] = len(items)
        for item in items:
            x = features(item.prompt)
            counts.update(k for k in x if k.startswith(("w:", "b:")))
            raw.append((x, label(name, item.strong, item.weak)))
    rows = [
        ({k: v for k, v in x.items() if not k.startswith(("w:", "b:")) or counts[k] >= args.min_count}, y)
        for x, y in raw
    ]
    weights = train(rows, epochs=args.epochs, lr=args.lr, l2=args.l2)
    kept = {k: round(v, 4) for k, v in sorted(weights.items()) if abs(v) >= 0.02}
    OUT.write_text(
        json.dumps(
            {
                "trained_on": "RouteLLM training half (is_training_prompt): "
                + ", ".join(f"{k} {v}" for k, v in sizes.items()),
                "label": "weak model fell short where the strong one did not",
                "weights": kept,
            },
            separators=(",", ":"),
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"trained on {sum(sizes.values())} prompts ({sizes}); {len(kept)} weights -> {OUT}")


if __name__ == "__main__":
    main()
