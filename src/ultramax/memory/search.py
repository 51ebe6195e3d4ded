"""Hybrid search: FTS5 bm25 and exact vector similarity, fused.

Fusions (``fusion=``), all measured on the same data by ``bench/memory_locomo.py`` (docs/benchmarks.md):

- ``weighted`` (default): each signal's scores min-max normalised over its candidates, then combined with
  ``VECTOR_WEIGHT`` on the vector's -- "relative score fusion". It keeps *how much* better a hit is, which RRF
  throws away; with a small embedding model whose ranking is weaker than bm25's that matters (+0.06 recall@5).
- ``rrf``: reciprocal rank fusion, ``sum 1 / (60 + rank)`` (Letta, mem0, mcp-memory-service use it).
- ``vector`` / ``bm25``: one signal alone, for comparison.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ultramax.memory.fts import fts_query
from ultramax.memory.store import SQLiteStore
from ultramax.memory.vectors import VectorIndex

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ultramax.memory.embed import Embedder

__all__ = ["DEFAULT_FUSION", "FUSIONS", "Candidate", "Fusion", "HybridSearcher", "fts_query", "fuse"]

Fusion = Literal["rrf", "weighted", "vector", "bm25"]
FUSIONS: tuple[Fusion, ...] = ("rrf", "weighted", "vector", "bm25")
RRF_K = 60
DEFAULT_FUSION: Fusion = "weighted"
"""Measured on LoCoMo (docs/benchmarks.md): min-max score fusion beat RRF by 0.06 recall@5 with MiniLM + FTS5."""
VECTOR_WEIGHT = 0.4
"""The vector signal's weight in ``weighted`` fusion (bm25 gets the rest). Chosen on the software-project
dialogs written for this project (``bench/data/software_dialogs.json``: the best recall@5 of 0.3-0.7), not on
LoCoMo; the small embedding model ranks less well than bm25, so it counts a little less (docs/benchmarks.md)."""
NEIGHBOUR_SHARE = 0.2
"""A passage next to a hit in the same session (the answer after a question, the fix after a failure) gets
this share of the hit's fused score. Tried on LoCoMo at 0.1 / 0.2 / 0.3: +0.007 / +0.012 / +0.019 recall@5;
the middle value is kept rather than the best one, since that data also scores it (docs/benchmarks.md)."""
ANSWER_SHARE = 0.8
"""A hit that asks a question passes this share of its score to the passage right after it in the session:
the answer, which often shares few words with what is asked later ("And if it doesn't match?" -> "412
Precondition Failed, ..."). Chosen on the software-project dialogs by their best recall@5 over 0.2-1.0
(flat from 0.35 up: 0.803-0.809), as the vector weight was; LoCoMo scored once after (docs/benchmarks.md)."""
_CLOSERS = " \t\r\n\"')]*_`"


@dataclass(slots=True)
class Candidate:
    id: int
    score: float
    similarity: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)


def fuse(
    keyword: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    fusion: Fusion,
    *,
    alpha: float = VECTOR_WEIGHT,
) -> list[Candidate]:
    """Combine ranked lists (keyword: bm25, lower is better; vector: cosine) into one ranking."""
    sims = dict(vector)
    found: dict[int, Candidate] = {}
    for rank, (pid, _) in enumerate(keyword, start=1):
        found.setdefault(pid, Candidate(pid, 0.0, sims.get(pid))).ranks["bm25"] = rank
    for rank, (pid, sim) in enumerate(vector, start=1):
        found.setdefault(pid, Candidate(pid, 0.0, sim)).ranks["vector"] = rank
    if fusion == "rrf":
        for c in found.values():
            c.score = sum(1.0 / (RRF_K + r) for r in c.ranks.values())
    elif fusion == "vector":
        for c in found.values():
            c.score = c.similarity if c.similarity is not None and "vector" in c.ranks else -1.0
    elif fusion == "bm25":
        for c in found.values():
            c.score = 1.0 / c.ranks["bm25"] if "bm25" in c.ranks else -1.0
    else:  # weighted: convex combination of min-max normalised scores
        kw = {pid: -s for pid, s in keyword}  # bm25() is negative; higher = better after the flip
        kw_norm = _minmax(kw)
        vec_norm = _minmax(dict(vector))
        for c in found.values():
            c.score = alpha * vec_norm.get(c.id, 0.0) + (1 - alpha) * kw_norm.get(c.id, 0.0)
    return sorted(found.values(), key=lambda c: (-c.score, c.id))


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo or 1.0
    return {k: (v - lo) / span for k, v in scores.items()}


class HybridSearcher:
    """Keyword + vector search over the store, with the vector index kept in sync with it."""

    def __init__(self, store: SQLiteStore, embedder: Embedder | None) -> None:
        self.store = store
        self.embedder = embedder
        # graphs of big projects are saved beside the database, so a restarted daemon need not rebuild them
        graphs = store.path.with_name(store.path.name + ".graphs")
        self.index = VectorIndex(embedder.dimension, graph_dir=graphs) if embedder is not None else None
        self._sync_lock = threading.Lock()
        self._query_cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.last_timings: dict[str, float] = {}
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        with self._sync_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ultramax-bm25")
            return self._executor

    def close(self) -> None:
        if self.index is not None:
            self.index.save_graphs()
        with self._sync_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def sync(self) -> int:
        """Load embeddings written since the last look (by this or any other process)."""
        if self.index is None:
            return 0
        with self._sync_lock:
            return self.index.load(self.store.vectors_since(self.index.seq))

    def embed_query(self, text: str) -> NDArray[np.float32] | None:
        if self.embedder is None:
            return None
        with self._cache_lock:
            cached = self._query_cache.get(text)
            if cached is not None:
                self._query_cache.move_to_end(text)
                return cached
        vec: NDArray[np.float32] = self.embedder.embed([text])[0]
        with self._cache_lock:
            self._query_cache[text] = vec
            if len(self._query_cache) > 512:
                self._query_cache.popitem(last=False)
        return vec

    def search(
        self,
        query: str,
        *,
        project_ids: Sequence[int] | None,
        limit: int = 10,
        fusion: Fusion = DEFAULT_FUSION,
        start: float | None = None,
        end: float | None = None,
        restrict: set[int] | None = None,
        depth: int | None = None,
        query_vector: NDArray[np.float32] | None = None,
        boost: tuple[float | None, float | None] | None = None,
    ) -> list[Candidate]:
        """Top ``limit`` candidates. ``depth`` is how many each signal contributes before fusion; ``boost`` is a
        soft time range: candidates stored within it rank a little higher (less than one top-ranked signal)."""
        depth = depth or max(50, 3 * limit)
        timings: dict[str, float] = {}
        keyword: list[tuple[int, float]] = []
        vector: list[tuple[int, float]] = []
        pending: Future[list[tuple[int, float]]] | None = None
        t_kw = time.perf_counter()
        if fusion != "vector" and restrict is None:
            match = fts_query(query)
            if fusion == "bm25" or self.index is None:
                keyword = self.store.keyword_search(project_ids, match, depth, start=start, end=end)
            else:  # SQLite and numpy both release the GIL: run bm25 beside the vector search
                pending = self._pool().submit(
                    self.store.keyword_search, project_ids, match, depth, start=start, end=end
                )
        elif fusion != "vector" and restrict:
            keyword = self._keyword_within(query, restrict, depth)
        if fusion != "bm25" and self.index is not None:
            t0 = time.perf_counter()
            self.sync()
            qv = query_vector if query_vector is not None else self.embed_query(query)
            timings["embed_ms"] = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            if qv is not None:
                vector = self.index.search(qv, depth, project_ids=project_ids, start=start, end=end, restrict=restrict)
            timings["vector_ms"] = (time.perf_counter() - t0) * 1000
        if pending is not None:
            keyword = pending.result()
        timings["bm25_ms"] = (time.perf_counter() - t_kw) * 1000
        t0 = time.perf_counter()
        fused = fuse(keyword, vector, fusion)
        if fused and fusion in ("rrf", "weighted") and restrict is None and NEIGHBOUR_SHARE > 0:
            # the answer's larger share was chosen for weighted fusion; under RRF's flat scores it crowds the top
            fused = self._lift_neighbours(fused, start, end, ANSWER_SHARE if fusion == "weighted" else NEIGHBOUR_SHARE)
        if boost is not None and fused and fusion in ("rrf", "weighted"):
            bonus = 1.0 / (RRF_K + 10) if fusion == "rrf" else 0.05  # less than one top-ranked signal
            lo, hi = boost
            times = self.store.created_at_of([c.id for c in fused])
            for c in fused:
                ts = times.get(c.id)
                if ts is not None and (lo is None or ts >= lo) and (hi is None or ts < hi):
                    c.score += bonus
            fused.sort(key=lambda c: (-c.score, c.id))
        timings["fuse_ms"] = (time.perf_counter() - t0) * 1000
        self.last_timings = timings
        return [c for c in fused if c.score > -1.0][:limit]

    def _lift_neighbours(
        self, fused: list[Candidate], start: float | None, end: float | None, answer_share: float
    ) -> list[Candidate]:
        """Give each hit's same-session neighbours (the passage just before and just after it) a share of its
        score -- the one after a question a larger share -- adding them as candidates if neither signal found
        them: one indexed query for all hits."""
        base = {c.id: c.score for c in fused}
        lifted: dict[int, float] = {}
        for hit, before, after, tail in self.store.session_neighbours(list(base)):
            asks = tail.rstrip(_CLOSERS).endswith("?")
            for nb, part in ((before, NEIGHBOUR_SHARE), (after, answer_share if asks else NEIGHBOUR_SHARE)):
                if nb is None:
                    continue
                share = part * base[hit]
                if nb in base:  # found on its own: keep the better of its own score and its own plus the lift
                    lifted[nb] = max(lifted.get(nb, base[nb]), base[nb] + share)
                else:  # found only through its neighbours: lifts add up (between two hits)
                    lifted[nb] = lifted.get(nb, 0.0) + share
        fresh = [nb for nb in lifted if nb not in base]
        if fresh and (start is not None or end is not None):  # a hard time range binds neighbours too
            times = self.store.created_at_of(fresh)
            for nb in fresh:
                ts = times.get(nb)
                if ts is None or (start is not None and ts < start) or (end is not None and ts >= end):
                    del lifted[nb]
        by_id = {c.id: c for c in fused}
        for nb, score in lifted.items():
            c = by_id.get(nb)
            if c is None:
                fused.append(Candidate(nb, score, ranks={"neighbour": 1}))
            else:
                c.score = score
        fused.sort(key=lambda c: (-c.score, c.id))
        return fused

    def _keyword_within(self, query: str, restrict: set[int], depth: int) -> list[tuple[int, float]]:
        """bm25 among a small set of passages (a session's, the hot set's)."""
        return self.store.keyword_within(fts_query(query), list(restrict), depth)
