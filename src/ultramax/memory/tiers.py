"""The seed's hierarchical memory (section 3): L1 hot, L2 warm, L3 cold, L4 deep, with early stop.

- **L1 hot**: in memory -- recently written passages and passages promoted by repeated access (a second hit
  within the window promotes; least-recently-used and idle entries are demoted), plus a cache of recent
  identical queries. A tiny matrix, searched in well under a millisecond.
- **L2 warm**: this session's passages (hybrid search restricted to them).
- **L3 cold**: the project's whole archive (hybrid: FTS5 bm25 + exact vectors, RRF).
- **L4 deep**: every project, re-ranked against the query with the project's own hits first.

A tier answers alone ("early stop") when it already has ``limit`` hits at or above its similarity bar;
otherwise the next tier runs and the hits are merged. Every search reports each tier's latency.
Tiers are compared by their order, never by their names (one of the seed's defects).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ultramax.memory.models import SearchHit, SearchResult, Tier, TierTiming
from ultramax.memory.search import DEFAULT_FUSION, Fusion, HybridSearcher
from ultramax.memory.timefilter import parse_time_filter

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["HotSet", "SearchResult", "Tier", "TierTiming", "TieredMemory"]


@dataclass(slots=True)
class _Hot:
    vector: NDArray[np.float32] | None
    created: float
    hits: int = 0
    last: float = 0.0
    hot: bool = False


class HotSet:
    """L1 for one process: passage id -> vector and access record. Promotion by access, demotion by LRU/idle."""

    def __init__(self, capacity: int = 256, promote_after: int = 2, idle_seconds: float = 3600.0) -> None:
        self.capacity = capacity
        self.promote_after = promote_after
        self.idle_seconds = idle_seconds
        self._entries: dict[int, OrderedDict[int, _Hot]] = {}  # project id -> entries, LRU order
        self._lock = threading.Lock()
        self.promotions = 0
        self.demotions = 0

    def admit(self, project_id: int, pid: int, vector: NDArray[np.float32] | None, created: float) -> None:
        """A new passage starts hot (recent)."""
        with self._lock:
            entries = self._entries.setdefault(project_id, OrderedDict())
            entries[pid] = _Hot(vector, created, hits=0, last=time.time(), hot=True)
            entries.move_to_end(pid)
            self._evict(entries)

    def touch(self, project_id: int, pid: int, vector: NDArray[np.float32] | None, created: float) -> None:
        """A passage was returned by a search: count it; a repeated hit promotes it to L1."""
        now = time.time()
        with self._lock:
            entries = self._entries.setdefault(project_id, OrderedDict())
            entry = entries.get(pid)
            if entry is None:
                entry = entries[pid] = _Hot(vector, created)
            entry.hits += 1
            entry.last = now
            if vector is not None:
                entry.vector = vector
            if not entry.hot and entry.hits >= self.promote_after:
                entry.hot = True
                self.promotions += 1
            entries.move_to_end(pid)
            self._evict(entries)

    def forget(self, pid: int) -> None:
        with self._lock:
            for entries in self._entries.values():
                entries.pop(pid, None)

    def _evict(self, entries: OrderedDict[int, _Hot]) -> None:
        while len(entries) > self.capacity * 4:  # access records beyond the hot set are bounded too
            entries.popitem(last=False)
        hot = [pid for pid, e in entries.items() if e.hot]
        now = time.time()
        for pid in hot:
            e = entries[pid]
            if now - e.last > self.idle_seconds:
                e.hot = False
                self.demotions += 1
        hot = [pid for pid, e in entries.items() if e.hot]
        for pid in hot[: max(0, len(hot) - self.capacity)]:  # least recently used first
            entries[pid].hot = False
            self.demotions += 1

    def hot_ids(self, project_id: int) -> list[int]:
        with self._lock:
            return [pid for pid, e in self._entries.get(project_id, {}).items() if e.hot]

    def search(self, project_id: int, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        with self._lock:
            items = [
                (pid, e.vector)
                for pid, e in self._entries.get(project_id, {}).items()
                if e.hot and e.vector is not None
            ]
        if not items:
            return []
        matrix = np.stack([v for _, v in items if v is not None])
        sims = matrix @ query
        order = np.argsort(-sims)[:k]
        return [(items[i][0], float(sims[i])) for i in order]

    def stats(self) -> dict[str, int]:
        with self._lock:
            hot = sum(1 for entries in self._entries.values() for e in entries.values() if e.hot)
        return {"hot": hot, "promotions": self.promotions, "demotions": self.demotions}


class TieredMemory:
    """Search L1 -> L2 -> L3 (-> L4), stopping early when a hotter tier already answers."""

    L1_BAR = 0.75  # the seed's similarity threshold for the hot tier
    L2_BAR = 0.70

    def __init__(self, searcher: HybridSearcher, hot: HotSet | None = None) -> None:
        self.searcher = searcher
        self.store = searcher.store
        self.hot = hot or HotSet()
        self._cache: OrderedDict[tuple[Any, ...], tuple[tuple[int, int], list[SearchHit]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.latency: dict[str, list[float]] = {t.label: [] for t in Tier}

    def search(
        self,
        query: str,
        *,
        project: str | None,
        session_id: str | None = None,
        limit: int = 5,
        max_tier: Tier = Tier.L3,
        now: float | None = None,
        fusion: Fusion = DEFAULT_FUSION,
        early_stop: bool = True,
        use_time_filter: bool = True,
    ) -> SearchResult:
        now = time.time() if now is None else now
        time_range, cleaned = parse_time_filter(query, now) if use_time_filter else (None, query)
        text = cleaned or query
        result = SearchResult([], time_range=time_range, query=query)
        project_row = self.store.get_project(project) if project else None
        if project is not None and project_row is None:
            return result
        hard = time_range is not None and time_range.hard
        start = time_range.start if time_range and hard else None
        end = time_range.end if time_range and hard else None
        boost = (time_range.start, time_range.end) if time_range is not None and not hard else None
        found: dict[int, SearchHit] = {}
        self.searcher.sync()
        version = self.store.change_token()
        cache_key = (text, project, session_id, limit, int(max_tier), fusion, start, end)

        # L1: an identical recent query, then the hot passages
        t0 = time.perf_counter()
        with self._cache_lock:
            cached = self._cache.get(cache_key)
        if cached is not None and cached[0] == version and early_stop:
            hits = [SearchHit(h.passage, h.score, Tier.L1.label, h.similarity, h.signals) for h in cached[1]]
            self._timing(result, Tier.L1, t0, len(hits))
            result.hits, result.answered_by = hits, Tier.L1.label
            return result
        qv = self.searcher.embed_query(text)
        if project_row is not None and qv is not None and not hard:
            l1 = [(pid, sim) for pid, sim in self.hot.search(project_row.id, qv, limit) if sim >= self.L1_BAR]
            hydrated = self.store.get_passages([pid for pid, _ in l1])
            for pid, sim in l1:
                if pid in hydrated:
                    found[pid] = SearchHit(hydrated[pid], sim, Tier.L1.label, sim, {"vector": 0})
        self._timing(result, Tier.L1, t0, len(found))
        if early_stop and len(found) >= limit:
            return self._finish(result, found=found, limit=limit, tier=Tier.L1, cache_key=cache_key, version=version)

        # L2: this session's passages
        if max_tier >= Tier.L2 and project_row is not None and session_id:
            t0 = time.perf_counter()
            ids = set(self.store.session_passage_ids(project_row.id, session_id))
            n = 0
            if ids:
                for c in self.searcher.search(
                    text,
                    project_ids=[project_row.id],
                    limit=limit,
                    fusion=fusion,
                    restrict=ids,
                    query_vector=qv,
                    start=start,
                    end=end,
                ):
                    if c.id not in found and (c.similarity or 0.0) >= self.L2_BAR:
                        hit = self._hit(c.id, c.score, Tier.L2, c.similarity, c.ranks)
                        if hit is not None:
                            found[c.id] = hit
                            n += 1
            self._timing(result, Tier.L2, t0, n)
            strong = [h for h in found.values() if (h.similarity or 0) >= self.L2_BAR]
            if early_stop and len(strong) >= limit:
                return self._finish(
                    result, found=found, limit=limit, tier=Tier.L2, cache_key=cache_key, version=version
                )

        # L3: the project's archive
        l3: list[SearchHit] = []
        if max_tier >= Tier.L3 and project_row is not None:
            t0 = time.perf_counter()
            for c in self.searcher.search(
                text,
                project_ids=[project_row.id],
                limit=limit,
                fusion=fusion,
                start=start,
                end=end,
                query_vector=qv,
                boost=boost,
            ):
                if (hit := self._hit(c.id, c.score, Tier.L3, c.similarity, c.ranks)) is not None:
                    l3.append(hit)
            self._timing(result, Tier.L3, t0, len(l3))
            if hard and not l3:  # a range that holds nothing: search without it
                for c in self.searcher.search(
                    text, project_ids=[project_row.id], limit=limit, fusion=fusion, query_vector=qv
                ):
                    if (hit := self._hit(c.id, c.score, Tier.L3, c.similarity, c.ranks)) is not None:
                        l3.append(hit)
            # L3 is the authority for the project: its order wins over the hot tiers' similarity order
            merged = {h.passage.id: h for h in l3}
            for pid, hit in found.items():
                merged.setdefault(pid, hit)
            found = merged
            if early_stop and len(l3) >= limit and max_tier < Tier.L4:
                return self._finish(
                    result, found=found, limit=limit, tier=Tier.L3, cache_key=cache_key, version=version, ordered=l3
                )

        # L4: every project, re-ranked; the project's own hits keep their place first
        if max_tier >= Tier.L4 or project_row is None:
            t0 = time.perf_counter()
            deep = self.searcher.search(
                text, project_ids=None, limit=limit * 2, fusion=fusion, start=start, end=end, query_vector=qv
            )
            n = 0
            extra: list[SearchHit] = []
            for c in deep:
                if c.id in found:
                    continue
                if (deep_hit := self._hit(c.id, c.score, Tier.L4, c.similarity, c.ranks)) is not None:
                    extra.append(deep_hit)
                    n += 1
            extra.sort(key=lambda h: -(h.similarity if h.similarity is not None else h.score))
            self._timing(result, Tier.L4, t0, n)
            ordered = [*l3, *(h for h in found.values() if h not in l3), *extra]
            return self._finish(
                result,
                found={h.passage.id: h for h in ordered},
                limit=limit,
                tier=Tier.L4,
                cache_key=cache_key,
                version=version,
                ordered=ordered,
            )
        return self._finish(
            result, found=found, limit=limit, tier=Tier.L3, cache_key=cache_key, version=version, ordered=l3 or None
        )

    # -- helpers -----------------------------------------------------------------------------------------------
    def _hit(self, pid: int, score: float, tier: Tier, sim: float | None, ranks: dict[str, int]) -> SearchHit | None:
        """The hit, hydrated from the store; None if the passage was deleted meanwhile (by any process)."""
        passage = self.store.get_passages([pid]).get(pid)
        return None if passage is None else SearchHit(passage, score, tier.label, sim, dict(ranks))

    def _timing(self, result: SearchResult, tier: Tier, t0: float, hits: int) -> None:
        ms = (time.perf_counter() - t0) * 1000
        result.tiers.append(TierTiming(tier.label, ms, hits))
        samples = self.latency[tier.label]
        samples.append(ms)
        if len(samples) > 1000:
            del samples[:500]

    def _finish(
        self,
        result: SearchResult,
        *,
        found: dict[int, SearchHit],
        limit: int,
        tier: Tier,
        cache_key: tuple[Any, ...],
        version: tuple[int, int],
        ordered: Sequence[SearchHit] | None = None,
    ) -> SearchResult:
        seq = list(ordered) if ordered is not None else sorted(found.values(), key=lambda h: -(h.similarity or h.score))
        seen: set[int] = set()
        hits: list[SearchHit] = []
        for h in [*seq, *found.values()]:
            if h.passage.id in seen:
                continue
            seen.add(h.passage.id)
            hits.append(h)
        result.hits = hits[:limit]
        result.answered_by = tier.label
        if self.searcher.index is not None:
            for h in result.hits:
                pid = h.passage.id
                project_id = self._project_id(h.passage.project)
                if project_id is not None:
                    self.hot.touch(project_id, pid, self._vector(pid, project_id), h.passage.created_at)
        with self._cache_lock:
            self._cache[cache_key] = (version, list(result.hits))
            if len(self._cache) > 256:
                self._cache.popitem(last=False)
        return result

    def _project_id(self, name: str) -> int | None:
        p = self.store.get_project(name)
        return p.id if p else None

    def _vector(self, pid: int, project_id: int) -> NDArray[np.float32] | None:
        index = self.searcher.index
        if index is None:
            return None
        return index.vector(project_id, pid)

    def latency_summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for tier, samples in self.latency.items():
            if samples:
                arr = np.asarray(samples)
                out[tier] = {
                    "count": float(len(arr)),
                    "p50_ms": round(float(np.percentile(arr, 50)), 3),
                    "p95_ms": round(float(np.percentile(arr, 95)), 3),
                }
        return out
