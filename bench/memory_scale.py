"""Memory at scale: ingest rate with embeddings, and search latency (hybrid, per signal, per tier) at 10k-1M.

    .venv/bin/python -m bench.memory_scale [--sizes 10000 100000 1000000] [--embed 3000] [--queries 200]

Passages are synthetic software-project notes: a template (kind, service, file, what changed, why) and 18
Zipf-distributed English words, ~40 words in all, all distinct. Queries are three words of a random note
plus one stray word, as someone recalling a note would type.

Ingest with embeddings is measured end to end on ``--embed`` passages: SQLite insert + FTS5 + the ONNX
embedder (batches of 64) + the vector index. "Acknowledged" is what a hook waits for: the text committed
with its FTS5 entry (batches of 5,000). Beyond ``--embed`` passages, to reach 1M without spending a day
embedding, each further passage gets a blend of two already-embedded vectors plus small noise, renormalised
(its text is its own): search cost depends on N, not on the vectors' values. Latency is single-query,
in-process, on 2 threads; the query embedding is reported apart (it is the same at every N). Past 20k
passages the vector index builds its HNSW graph (two threads here; one, in the background, in the daemon):
the build time is reported, searches start once it is done, and "agreement" is the share of the exact
top 10 (a full numpy scan) that the index returns in its top 10 and among the 50 candidates it hands to
fusion.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, summary
from ultramax.memory.embed import default_embedder, model_dir
from ultramax.memory.models import NewPassage, Tier
from ultramax.memory.search import HybridSearcher
from ultramax.memory.store import SQLiteStore
from ultramax.memory.tiers import TieredMemory

SERVICES = [
    "billing",
    "auth",
    "search",
    "checkout",
    "inventory",
    "payments",
    "gateway",
    "notifications",
    "reports",
    "scheduler",
    "ledger",
]
FILES = [
    "app.py",
    "models.py",
    "views.py",
    "config.yaml",
    "Dockerfile",
    "Makefile",
    "schema.sql",
    "routes.ts",
    "index.tsx",
    "utils.go",
]
VERBS = [
    "moved",
    "renamed",
    "fixed",
    "refactored",
    "cached",
    "retried",
    "validated",
    "logged",
    "migrated",
    "deprecated",
    "split",
    "merged",
]
THINGS = [
    "timeout",
    "connection",
    "pool",
    "rate",
    "limiter",
    "retry",
    "policy",
    "feature",
    "flag",
    "index",
    "query",
    "cache",
    "key",
    "session",
    "token",
    "webhook",
    "handler",
    "cron",
    "job",
    "health",
    "check",
    "migration",
    "error",
    "message",
    "unit",
    "test",
    "fixture",
    "dependency",
]
REASONS = [
    "because the old value caused flaky tests",
    "after the incident on the staging cluster",
    "to keep p95 under budget",
    "since the vendor API changed",
    "so that reviews are faster",
    "because users reported slow pages",
    "to stop the memory leak",
    "as agreed in the design review",
]


def vocabulary() -> list[str]:
    """~20k whole English words (the embedding tokenizer's vocabulary), in a fixed shuffled order: word rank
    r is drawn with weight 1/r (Zipf), as in the reference measurements' synthetic text."""
    vocab = json.loads((model_dir() / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    words = sorted(w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 3)
    random.Random(3).shuffle(words)
    return words


class Corpus:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = vocabulary()
        self.weights = [1.0 / (r + 1) for r in range(len(self.words))]

    def zipf(self, k: int) -> list[str]:
        return self.rng.choices(self.words, weights=self.weights, k=k)

    def note(self, i: int) -> str:
        rng = self.rng
        svc, f, v = rng.choice(SERVICES), rng.choice(FILES), rng.choice(VERBS)
        a, b = rng.sample(THINGS, 2)
        kind = rng.choice(("Decision", "Fix", "Change", "Learning"))
        return (
            f"{kind} #{i}: in the {svc} service we {v} the {a} {b} in {f} {rng.choice(REASONS)}; "
            + " ".join(self.zipf(18))
            + "."
        )

    def query(self, texts: list[str]) -> str:
        """What someone recalling a stored note would type: a few of its words, plus a stray one."""
        words = [w for w in self.rng.choice(texts).split() if w.isalpha() and len(w) > 3]
        return " ".join([*self.rng.sample(words, min(3, len(words))), *self.zipf(1)])


def run_size(n: int, embed_n: int, queries: int, rng: random.Random) -> dict[str, Any]:
    embedder = default_embedder()
    with tempfile.TemporaryDirectory(prefix="ultramax-scale-") as tmp:
        store = SQLiteStore(Path(tmp) / "memory.db")
        store.ensure_project("bench")
        corpus = Corpus(rng)
        texts = [corpus.note(i) for i in range(n)]
        real = min(n, embed_n)
        t0 = time.perf_counter()
        for start in range(0, real, 256):
            store.add_passages("bench", [NewPassage(t, kind="decision") for t in texts[start : start + 256]])
            while rows := store.unembedded(64):
                vecs = embedder.embed([r[3] for r in rows])
                store.set_embeddings([(r[0], vecs[i].tobytes()) for i, r in enumerate(rows)], embedder.name)
        searcher = HybridSearcher(store, embedder)
        assert searcher.index is not None
        searcher.index.graph_threads = 2  # the daemon builds on one thread in the background; here nothing else runs
        searcher.sync()
        ingest_s = time.perf_counter() - t0
        base = np.stack([searcher.index.vector(1, pid) for pid in range(1, real + 1)])  # type: ignore[misc]
        t1 = time.perf_counter()
        text_s = 0.0
        np_rng = np.random.default_rng(7)
        for start in range(real, n, 5000):
            chunk = texts[start : start + 5000]
            t2 = time.perf_counter()
            ids = store.add_passages("bench", [NewPassage(t, kind="decision") for t in chunk])
            text_s += time.perf_counter() - t2
            # a real vector blended with a second one, plus noise: a continuum like real embeddings, not
            # tight clumps of near-copies (which make every top 10 a near-tie)
            first = base[np_rng.integers(0, real, len(ids))]
            second = base[np_rng.integers(0, real, len(ids))]
            blend = np_rng.uniform(0.2, 0.8, (len(ids), 1)).astype(np.float32)
            vecs = first + blend * second + np_rng.normal(0, 0.02, first.shape).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            store.set_embeddings([(pid, vecs[i].astype(np.float32).tobytes()) for i, pid in enumerate(ids)], "noise")
        searcher.sync()
        fill_s = time.perf_counter() - t1
        t3 = time.perf_counter()
        if not searcher.index.wait_for_graphs(timeout=3600):
            raise SystemExit("the vector graph did not finish building within an hour")
        graph_s = time.perf_counter() - t3
        graph_rows = searcher.index.graph_rows(1)
        tiers = TieredMemory(searcher)
        qs = [corpus.query(texts) for _ in range(queries)]
        qvecs = []
        embed_ms: list[float] = []
        for q in qs:
            t = time.perf_counter()
            qvecs.append(embedder.embed([q])[0])
            embed_ms.append((time.perf_counter() - t) * 1000)
        lat: dict[str, list[float]] = {"hybrid": [], "vector": [], "bm25": [], "tiered L3": [], "L1 hit": []}
        # how much of the exact top 10 (a full numpy scan) the index returns in its top 10, and among the 50
        # candidates it hands to fusion (1.0 without a graph: the scan is exact)
        shard = searcher.index._shards[1]
        matrix, row_ids = shard.matrix[: shard.n], shard.ids[: shard.n]
        agree10: list[float] = []
        agree50: list[float] = []
        for qv in qvecs:
            truth = set(row_ids[np.argsort(-(matrix @ qv))[:10]].tolist())
            found = [pid for pid, _ in searcher.index.search(qv, 50)]
            agree10.append(len(truth & set(found[:10])) / 10)
            agree50.append(len(truth & set(found)) / 10)
        for q, qv in zip(qs, qvecs, strict=True):
            for fusion, key in (("weighted", "hybrid"), ("vector", "vector"), ("bm25", "bm25")):
                t = time.perf_counter()
                searcher.search(q, project_ids=[1], limit=10, fusion=fusion, query_vector=qv)  # type: ignore[arg-type]
                lat[key].append((time.perf_counter() - t) * 1000)
            searcher._query_cache[q] = qv
            t = time.perf_counter()
            tiers.search(q, project="bench", limit=10, max_tier=Tier.L3)
            lat["tiered L3"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            tiers.search(q, project="bench", limit=10, max_tier=Tier.L3)
            lat["L1 hit"].append((time.perf_counter() - t) * 1000)
        size_mb = (Path(tmp) / "memory.db").stat().st_size / 2**20
        store.close()
    return {
        "n": n,
        "embedded": real,
        "ingest_per_s": real / ingest_s,
        "text_per_s": (n - real) / text_s if text_s else 0.0,
        "fill_s": fill_s,
        "graph_rows": graph_rows,
        "graph_s": graph_s,
        "agree10": sum(agree10) / len(agree10),
        "agree50": sum(agree50) / len(agree50),
        "db_mb": size_mb,
        "embed_query": summary(embed_ms),
        **{k: summary(v) for k, v in lat.items()},
    }


def _p50(row: dict[str, Any], key: str) -> float:
    return float(row[key][0])


def _pair(row: dict[str, Any], key: str) -> str:
    p50, p95, _ = row[key]
    return f"{p50:.2f} / {p95:.2f}"


def _graph(row: dict[str, Any]) -> str:
    if not row["graph_rows"]:
        return "none (exact scan)"
    return f"{float(row['graph_s']):.0f} ({int(row['graph_rows']) / max(float(row['graph_s']), 1e-9):,.0f}/s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embed", type=int, default=3000, help="passages embedded for real (ingest rate)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    rng = random.Random(42)
    print(f"Machine: {machine()}\n")
    rows = []
    for n in args.sizes:
        rows.append(run_size(n, args.embed, args.queries, rng))
        print(f"done {n}", file=sys.stderr)
    print(
        "| passages | ingest with embeddings (passages/s) | acknowledged (text + FTS5, /s) | db MiB "
        "| query embed p50 ms | hybrid p50 / p95 ms | vector p50 / p95 | bm25 p50 / p95 "
        "| tiered L3 p50 / p95 | L1 hit p50 / p95 | graph build s (rows/s) | exact top 10 in top 10 / in top 50 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {float(r['ingest_per_s']):.0f} (of {r['embedded']:,}) | {float(r['text_per_s']):,.0f} | "
            f"{float(r['db_mb']):.0f} | "
            f"{_p50(r, 'embed_query'):.2f} | {_pair(r, 'hybrid')} | {_pair(r, 'vector')} | {_pair(r, 'bm25')} | "
            f"{_pair(r, 'tiered L3')} | {_pair(r, 'L1 hit')} | {_graph(r)} | "
            f"{float(r['agree10']):.3f} / {float(r['agree50']):.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
