"""Train the router's tier model on labelled Claude Code prompts, choosing by cross-validation across files.

    .venv/bin/python -m bench.router_tier_train [--folds-by-file] [--out PATH]

What is learned (``ultramax.routing.tier_model``): an ordinal logistic model -- one score, two cut points,
haiku | sonnet | opus -- over the static MiniLM embedding (as in ``bench/router_train.py``), the prompt's shape
features, the seed's pattern signals and the ask's MiniLM sentence embedding (``ask_embedding``, the run-time
function itself: one ask at a time, as the proxy sees them); and a fallback model without the sentence
embedding, for where the embedding model cannot run. Each is fitted by data replication: each prompt is two
binary examples, "needs more than haiku" and "needs opus", sharing every weight but the intercept, which is
exactly the proportional-odds model.

Training data: every ``bench/data/router_tiers/*.jsonl`` file plus the Claude Code development set
(``tests/routing/data/claude_code_dev.jsonl``); lines of ``{"prompt", "tier"}``, written for this project.

The gate -- software work or general chat -- is a logistic regression over the same features: those prompts
against the general chatbot prompts in ``bench/data/router_general/*.jsonl`` (written for this project) and
the MT-Bench questions of RouteLLM's training half (``is_training_prompt``; the benchmark scores the other
half). Its L2 strength is chosen by 5-fold cross-validation accuracy. It reads no sentence embedding.

Model selection, for each of the two tier models -- the L2 strength and how far each cut point moves from
where the fit puts it -- is by cross-validation that holds out one *file* at a time (each file was written
separately, with its own mix of people and stacks, so this asks how the model does on prompts unlike the ones
it learned from): the most accurate setting whose pooled under-routing (sent to a cheaper tier than the
label) is at most 4% -- a point of margin under the 5% the router is held to, for the sampling noise of a
held-out set.
Then the *confident margin*: how far from both of its cut points the fallback's score must be for its tier to
be taken without running the sentence embedding -- the smallest margin (the most prompts spared the
transformer) whose held-out-file accuracy, each prompt scored by the fallback or the main model as the margin
decides, is within half a point of the main model's alone, at <= 4% pooled under-routing.
The holdouts (``bench/data/claude_code_holdout*.jsonl``) are never read here; ``ultramax route eval`` scores them.

Writes ``src/ultramax/routing/data/tiers.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.routellm_data import DEFAULT_DATA, load
from bench.router_train import featurize, fit_logistic, pack_linear, static_vectors
from ultramax.routing.analyzer import pattern_signals
from ultramax.routing.difficulty import is_training_prompt
from ultramax.routing.neighbours import NEIGHBOUR_FEATURES, neighbour_features, quantize
from ultramax.routing.prompt_features import vocabulary
from ultramax.routing.tier_model import (
    CONTEXT_DIM,
    FEATURE_NAMES,
    FORMAT,
    TIERS,
    ask_embedding,
    embedding_unavailable,
    split_prompt,
    tier_features,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DIR = ROOT / "bench" / "data" / "router_tiers"
DEV_SET = ROOT / "tests" / "routing" / "data" / "claude_code_dev.jsonl"
GENERAL_DIR = ROOT / "bench" / "data" / "router_general"
OUT = ROOT / "src" / "ultramax" / "routing" / "data" / "tiers.json"
L2_GRID = (3.0, 10.0, 30.0, 100.0)
SHIFT_GRID = tuple(np.round(np.arange(-1.5, 1.01, 0.25), 2))
MAX_UNDER = 0.04
"""The pooled held-out-file under-routing a selected setting may have: a point under the router's 5% goal, since a
held-out set of ~160 prompts lands within about +-1.7 points of it (one binomial standard deviation)."""
NEIGHBOURS_K = (10, 25, 50)
MARGIN_GRID = tuple(np.round(np.arange(0.0, 4.01, 0.25), 2))
MAX_SKIP_LOSS = 0.005
"""How much held-out-file accuracy skipping the sentence embedding for confident prompts may cost."""
BANK_NAME = "tier_neighbours.npz"
INDICATOR = 10.0
"""The second cut point's column in the replicated data: large, so the L2 penalty barely touches it."""


@dataclass(frozen=True, slots=True)
class Labelled:
    prompt: str
    tier: int
    group: str


def load_labelled(paths: Sequence[Path]) -> list[Labelled]:
    out = []
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("tier") not in TIERS or not isinstance(row.get("prompt"), str):
                raise SystemExit(f"{path}:{n}: expected {{'prompt': str, 'tier': one of {TIERS}}}")
            out.append(Labelled(row["prompt"], TIERS.index(row["tier"]), path.stem))
    return out


def features(prompts: Sequence[str], vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    """[static embedding of the ask | tier features], exactly as the run-time model reads them."""
    asks, rest = [], []
    for prompt in prompts:
        ask, pasted = split_prompt(prompt[:20_000])
        asks.append(ask)
        rest.append(tier_features(ask, pattern_signals(ask).values(), pasted))
    static = featurize(asks, vectors)[:, : vectors.shape[1]]
    return np.hstack([static, np.array(rest, dtype=np.float64)])


def sentence_embeddings(prompts: Sequence[str]) -> NDArray[np.float64]:
    """The asks' sentence embeddings, one at a time through the run-time function."""
    out = np.zeros((len(prompts), CONTEXT_DIM))
    for row, prompt in enumerate(prompts):
        vector = ask_embedding(split_prompt(prompt[:20_000])[0])
        if vector is None:
            raise SystemExit(f"the sentence embedding cannot run: {embedding_unavailable()}")
        out[row] = vector
    return out


@dataclass(frozen=True, slots=True)
class Ordinal:
    mu: NDArray[np.float64]
    sd: NDArray[np.float64]
    w: NDArray[np.float64]
    """Weights on the standardised features, then the second cut's indicator weight, then the intercept."""

    def score(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = ((x - self.mu) / self.sd) @ self.w[:-2]
        return out

    @property
    def cuts(self) -> tuple[float, float]:
        """Where P(more than haiku) and P(opus) cross 0.5 on the score."""
        b, c = float(self.w[-1]), INDICATOR * float(self.w[-2])
        return -b, -(b + c)


def fit_ordinal(x: NDArray[np.float64], y: NDArray[np.int64], l2: float) -> Ordinal:
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mu) / sd
    n = len(y)
    xx = np.vstack([np.hstack([z, np.zeros((n, 1))]), np.hstack([z, np.full((n, 1), INDICATOR)])])
    yy = np.concatenate([y >= 1, y >= 2]).astype(np.float64)
    return Ordinal(mu, sd, fit_logistic(xx, yy, l2, np.ones(2 * n)))


def decide(score: NDArray[np.float64], cuts: tuple[Any, Any]) -> NDArray[np.int64]:
    """Tiers from scores and the two cut points (numbers, or one per score)."""
    out: NDArray[np.int64] = np.where(score > cuts[1], 2, np.where(score > cuts[0], 1, 0))
    return out


def rates(pred: NDArray[np.int64], y: NDArray[np.int64]) -> tuple[float, float, float]:
    """Accuracy, under-routing (cheaper than the label), over-routing."""
    return float((pred == y).mean()), float((pred < y).mean()), float((pred > y).mean())


Fold = tuple["NDArray[np.float64]", "NDArray[np.int64]", "NDArray[np.float64]", "NDArray[np.int64]"]
"""One held-out file: training features and labels, then the held-out file's."""


def file_folds(x: NDArray[np.float64], y: NDArray[np.int64], groups: Sequence[str]) -> Iterator[Fold]:
    """Each file held out in turn."""
    g = np.array(groups)
    for name in sorted(set(groups)):
        yield x[g != name], y[g != name], x[g == name], y[g == name]


def neighbour_columns(
    bank: NDArray[np.int8],
    y: NDArray[np.int64],
    g: NDArray[np.str_],
    rows: NDArray[np.intp],
    *,
    exclude: set[str],
    k: int,
) -> NDArray[np.float64]:
    """The neighbour features of ``rows``, each from the prompts outside its own file and ``exclude``."""
    out = np.zeros((len(rows), len(NEIGHBOUR_FEATURES)))
    tiers = y.astype(np.uint8)
    for name in sorted(set(g[rows])):
        mine = g[rows] == name
        allowed = ~np.isin(g, [*exclude, name])
        out[mine] = neighbour_features(bank[rows[mine]], bank[allowed], tiers[allowed], k)
    return out


def neighbour_folds(
    x: NDArray[np.float64], bank: NDArray[np.int8], y: NDArray[np.int64], groups: Sequence[str], k: int
) -> Iterator[Fold]:
    """Each file held out in turn, with neighbour features: the held-out file's from every other file, as a new
    prompt sees them; each training prompt's from the files other than its own and the held-out one."""
    g = np.array(groups)
    for name in sorted(set(groups)):
        train, test = np.flatnonzero(g != name), np.flatnonzero(g == name)
        near_train = neighbour_columns(bank, y, g, train, exclude={name}, k=k)
        near_test = neighbour_features(bank[test], bank[train], y[train].astype(np.uint8), k)
        yield np.hstack([x[train], near_train]), y[train], np.hstack([x[test], near_test]), y[test]


def select(
    options: Mapping[Any, Callable[[], Iterable[Fold]]], max_under: float = MAX_UNDER
) -> tuple[dict[str, Any], NDArray[np.float64]]:
    """The option (what ``options`` keys), L2 strength and cut shifts with the best held-out-file accuracy at
    at most ``max_under`` pooled under-routing; and under that setting, each held-out prompt's ``(score, low
    cut, high cut, label)``, every file in turn."""
    best: dict[str, Any] | None = None
    best_held: list[tuple[NDArray[np.float64], tuple[float, float], NDArray[np.int64]]] = []
    for option, folds in options.items():
        held: dict[float, list[tuple[NDArray[np.float64], tuple[float, float], NDArray[np.int64]]]] = {
            l2: [] for l2 in L2_GRID
        }
        for x_train, y_train, x_test, y_test in folds():
            for l2 in L2_GRID:
                model = fit_ordinal(x_train, y_train, l2)
                held[l2].append((model.score(x_test), model.cuts, y_test))
        for l2, scored in held.items():
            truth = np.concatenate([t for _, _, t in scored])
            for d1 in SHIFT_GRID:
                for d2 in SHIFT_GRID:
                    pred = np.concatenate([decide(s, (c[0] + d1, c[1] + d2)) for s, c, _ in scored])
                    acc, under, over = rates(pred, truth)
                    row = {
                        "option": option,
                        "l2": l2,
                        "shifts": (float(d1), float(d2)),
                        "accuracy": acc,
                        "under": under,
                        "over": over,
                    }
                    feasible = under <= max_under
                    if (
                        best is None
                        or (feasible and (best["under"] > max_under or acc > best["accuracy"]))
                        or (not feasible and best["under"] > max_under and under < best["under"])
                    ):
                        best, best_held = row, scored
    assert best is not None
    d1, d2 = best["shifts"]
    rows = [np.column_stack([s, np.full(len(t), c[0] + d1), np.full(len(t), c[1] + d2), t]) for s, c, t in best_held]
    return best, np.vstack(rows)


def choose_margin(
    main: NDArray[np.float64], fallback: NDArray[np.float64], max_under: float = MAX_UNDER
) -> dict[str, Any]:
    """How far from both of its cut points the fallback's score must be for the router to take its tier without
    running the sentence embedding: the smallest margin (the most prompts spared the transformer) whose
    held-out-file accuracy is within ``MAX_SKIP_LOSS`` of the main model's alone, at most ``max_under`` under-routing.
    ``main`` and ``fallback`` are ``select``'s held-out rows for the same prompts in the same order."""
    y = main[:, 3].astype(np.int64)
    main_pred = decide(main[:, 0], (main[:, 1], main[:, 2]))
    fb_pred = decide(fallback[:, 0], (fallback[:, 1], fallback[:, 2]))
    margin = np.minimum(np.abs(fallback[:, 0] - fallback[:, 1]), np.abs(fallback[:, 0] - fallback[:, 2]))
    alone = rates(main_pred, y)
    table = []
    for m in MARGIN_GRID:
        skip = margin >= m
        acc, under, over = rates(np.where(skip, fb_pred, main_pred), y)
        table.append({"margin": float(m), "skipped": float(skip.mean()), "accuracy": acc, "under": under, "over": over})
    ok = [r for r in table if r["accuracy"] >= alone[0] - MAX_SKIP_LOSS and r["under"] <= max_under]
    best = min(ok, key=lambda r: r["margin"]) if ok else None
    return {"main_alone": {"accuracy": alone[0], "under": alone[1], "over": alone[2]}, "table": table, "chosen": best}


def general_prompts(data: Path) -> list[str]:
    """The gate's other side: general chatbot prompts, and MT-Bench's training-half questions."""
    out = [
        json.loads(line)["prompt"]
        for path in sorted(GENERAL_DIR.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return out + [item.prompt for item in load("mt-bench", data) if is_training_prompt(item.prompt)]


def fit_gate(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[dict[str, Any], dict[str, float]]:
    """The software-or-chat regression, its L2 strength by 5-fold CV accuracy; packed, with its CV figures."""
    best: dict[str, float] | None = None
    for l2 in L2_GRID:
        pred = np.zeros(len(y))
        order = np.random.default_rng(0).permutation(len(y))
        for fold in range(5):
            test = order[fold::5]
            train = np.setdiff1d(order, test)
            mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
            w = fit_logistic((x[train] - mu) / sd, y[train], l2, np.ones(len(train)))
            pred[test] = ((x[test] - mu) / sd) @ w[:-1] + w[-1] > 0
        row = {
            "l2": l2,
            "accuracy": float((pred == y).mean()),
            "software_kept": float(pred[y == 1].mean()),
            "chat_kept": float(1 - pred[y == 0].mean()),
        }
        if best is None or row["accuracy"] > best["accuracy"]:
            best = row
    assert best is not None
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    w = fit_logistic((x - mu) / sd, y, best["l2"], np.ones(len(y)))
    return {"mu": mu, "sd": sd, "w": w}, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--max-under", type=float, default=MAX_UNDER, help="the pooled held-out-file under-routing allowed"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    files = [*sorted(TRAIN_DIR.glob("*.jsonl")), DEV_SET]
    data = load_labelled(files)
    y = np.array([d.tier for d in data], dtype=np.int64)
    counts = {name: int((y == i).sum()) for i, name in enumerate(TIERS)}
    print(f"{len(data)} labelled prompts from {len(files)} files; {counts}", flush=True)
    vectors = static_vectors()
    x = features([d.prompt for d in data], vectors)
    context = sentence_embeddings([d.prompt for d in data])
    bank = quantize(context)
    groups = [d.group for d in data]
    x_context = np.hstack([x, context])
    heads: dict[str, dict[str, Any]] = {}
    scored: dict[str, NDArray[np.float64]] = {}
    for name, options in (
        ("main", {k: partial(neighbour_folds, x_context, bank, y, groups, k) for k in NEIGHBOURS_K}),
        ("fallback", {None: partial(file_folds, x, y, groups)}),
    ):
        choice, scored[name] = select(options, args.max_under)
        print(
            f"{name}: held-out-file CV: {'k ' + str(choice['option']) + ', ' if choice['option'] else ''}"
            f"l2 {choice['l2']:g}, cut shifts {choice['shifts']}: accuracy {choice['accuracy']:.3f}, "
            f"under-routing {choice['under']:.3f}, over-routing {choice['over']:.3f}",
            flush=True,
        )
        xs = x
        if name == "main":
            rows = np.arange(len(y))
            xs = np.hstack(
                [x_context, neighbour_columns(bank, y, np.array(groups), rows, exclude=set(), k=choice["option"])]
            )
        model = fit_ordinal(xs, y, choice["l2"])
        low, high = model.cuts
        cuts = [round(low + choice["shifts"][0], 6), round(high + choice["shifts"][1], 6)]
        fitted = rates(decide(model.score(xs), (cuts[0], cuts[1])), y)
        print(f"{name}: training fit: accuracy {fitted[0]:.3f}, under {fitted[1]:.3f}", flush=True)
        heads[name] = {
            "selection": choice,
            "cuts": cuts,
            "output": pack_linear(model.w[:-2], model.mu, model.sd, 0.0, vectors),
        }
    skipping = choose_margin(scored["main"], scored["fallback"], args.max_under)
    for row in skipping["table"]:
        print(
            f"  confident margin {row['margin']:.2f}: {row['skipped']:.1%} skip the embedding; held-out-file accuracy "
            f"{row['accuracy']:.3f}, under {row['under']:.3f}",
            flush=True,
        )
    chosen = skipping["chosen"]
    print(f"confident margin: {chosen['margin'] if chosen else 'none'} (main alone {skipping['main_alone']})")
    heads["fallback"]["confident_margin"] = chosen["margin"] if chosen else None
    heads["fallback"]["margin_selection"] = skipping
    np.savez_compressed(args.out.parent / BANK_NAME, vectors=bank, tiers=y.astype(np.uint8))
    general = general_prompts(DEFAULT_DATA)
    gate_x = np.vstack([x, features(general, vectors)])
    gate_y = np.concatenate([np.ones(len(x)), np.zeros(len(general))])
    gate, gate_cv = fit_gate(gate_x, gate_y)
    print(
        f"gate ({len(x)} software prompts, {len(general)} general): 5-fold CV accuracy {gate_cv['accuracy']:.3f}; "
        f"software kept {gate_cv['software_kept']:.3f}, chat kept {gate_cv['chat_kept']:.3f} (l2 {gate_cv['l2']:g})",
        flush=True,
    )
    args.out.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "trained_on": f"{len(data)} labelled Claude Code prompts ({', '.join(f.name for f in files)})",
                "label": "the cheapest adequate tier; ordinal logistic (proportional odds), cut points at 0.3 / 0.7",
                "static_embedding": "all-MiniLM-L6-v2 (shipped ONNX int8), each piece alone, centred; "
                "log(2 + id)-weighted mean",
                "sentence_embedding": "all-MiniLM-L6-v2 (shipped ONNX int8) sentence embedding of the ask, "
                "one ask per call; the main model's last inputs",
                "vocab_size": len(vocabulary()),
                "feature_names": list(FEATURE_NAMES),
                "context_dim": CONTEXT_DIM,
                "neighbours": {"file": BANK_NAME, "k": heads["main"]["selection"]["option"], "count": len(y)},
                **heads,
                "gate_selection": gate_cv,
                "gate": pack_linear(gate["w"][:-1], gate["mu"], gate["sd"], float(gate["w"][-1]), vectors),
            },
            separators=(",", ":"),
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
