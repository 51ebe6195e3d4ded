"""The in-process vector index: one float32 matrix per project, exact cosine scores, a graph for big ones.

Measured (reference stack measurements, section 4): a brute-force matmul is 0.3 ms at 10k and 13 ms at
100k with recall 1.0 -- faster than sqlite-vec and exact. Above ``ann.ANN_MIN_ROWS`` rows a project's shard
also builds an HNSW graph in the background (``ann.HnswGraph``) that proposes candidates; scores are
always the exact inner products from the matrix, and rows the graph has not seen yet are scanned exactly,
so results never depend on the graph being complete. The index is a cache of the store's embedding BLOBs:
``sync`` loads whatever was embedded since it last looked (by ``vec_seq``), and hits are hydrated from
SQLite, so a passage deleted by another process simply drops out.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ultramax.memory.ann import ANN_MIN_ROWS, HnswGraph
from ultramax.memory.models import MemoryStoreError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ultramax.memory.passages import VectorRow

__all__ = ["CATCH_UP_ROWS", "VectorIndex"]

log = logging.getLogger(__name__)


CATCH_UP_ROWS = 4096
"""Rows added after a graph was built are scanned exactly until this many pile up; then they join the graph."""
_CATCH_UP_CHUNK = 256  # rows added to a live graph per lock hold (~50 ms), so searches wait little


@dataclass(slots=True)
class _Shard:
    dimension: int
    project_id: int
    n: int = 0
    matrix: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    created: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    alive: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    pos: dict[int, int] = field(default_factory=dict)
    graph: HnswGraph | None = None  # installed once built; covers rows [0, graph.covered)
    graph_lock: threading.Lock = field(default_factory=threading.Lock)
    growing: bool = False  # a build or catch-up is running
    stale: set[int] = field(default_factory=set)  # rows re-embedded after the graph took them
    restale: set[int] = field(default_factory=set)  # rows re-embedded while a new graph was being filled

    def too_stale(self) -> bool:
        """So many rows re-embedded since the graph took them that a new graph beats scanning them exactly."""
        return self.graph is not None and len(self.stale) > max(CATCH_UP_ROWS, self.graph.covered // 10)

    def install(self, graph: HnswGraph) -> None:
        """Make ``graph`` the one searches use (caller holds the index lock)."""
        self.graph, self.stale, self.restale = graph, self.restale, set()

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.ids):
            return
        cap = max(need, 2 * len(self.ids), 256)
        matrix = np.zeros((cap, self.dimension), dtype=np.float32)
        if self.n:
            matrix[: self.n] = self.matrix[: self.n]
        ids = np.zeros(cap, dtype=np.int64)
        ids[: self.n] = self.ids[: self.n]
        created = np.zeros(cap, dtype=np.float64)
        created[: self.n] = self.created[: self.n]
        alive = np.zeros(cap, dtype=np.bool_)
        alive[: self.n] = self.alive[: self.n]
        self.matrix, self.ids, self.created, self.alive = matrix, ids, created, alive


@dataclass(slots=True)
class _View:
    """What one search needs of a shard, taken under the index lock and used without it."""

    matrix: NDArray[np.float32]
    ids: NDArray[np.int64]
    created: NDArray[np.float64]
    alive: NDArray[np.bool_]
    graph: HnswGraph | None
    graph_lock: threading.Lock
    stale: NDArray[np.int64]
    rows: NDArray[np.int64] | None  # set when the search is restricted to given passages


def limit_blas_threads() -> bool:
    """Run numpy's OpenBLAS on one thread even if numpy was imported before ``ultramax.memory`` set
    OPENBLAS_NUM_THREADS (as threadpoolctl does: the library's own setter, found among the loaded libraries).
    Measured in bench/memory_scale at 10k passages on a loaded 2-core machine: vector search p50 1.8 ms on one
    thread against 11.7 ms on two. Leaves an explicit OPENBLAS_NUM_THREADS alone. True if a setter was called."""
    from ultramax.memory import BLAS_THREADS_SET_BY_USER

    if BLAS_THREADS_SET_BY_USER:
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return False
    done = False
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                done = True
                break
    return done


class VectorIndex:
    """Passage id -> unit vector, sharded by project; top-k by inner product, exact scores.

    ``ann_min_rows`` is the shard size at which a graph is built (``None``: never); ``background`` builds it on
    a daemon thread (a test or a benchmark builds in the caller with ``False``); ``graph_threads`` is how many
    threads a build uses (one in the daemon: the other core serves hooks). With ``graph_dir``, a built graph is
    saved there (after each full build and by ``save_graphs``) and a later process restores it instead of
    rebuilding, if the saved rows are still the first rows of the shard (nothing re-embedded since).
    """

    def __init__(
        self,
        dimension: int,
        *,
        ann_min_rows: int | None = ANN_MIN_ROWS,
        background: bool = True,
        graph_threads: int = 1,
        graph_dir: Path | None = None,
    ) -> None:
        limit_blas_threads()
        self.graph_dir = graph_dir
        self.dimension = dimension
        self.seq = 0  # highest vec_seq loaded
        self.ann_min_rows = ann_min_rows
        self.background = background
        self.graph_threads = graph_threads
        self._shards: dict[int, _Shard] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a graph build or catch-up ends

    def __len__(self) -> int:
        with self._lock:
            return sum(int(s.alive[: s.n].sum()) for s in self._shards.values())

    def add(
        self,
        project_id: int,
        ids: Sequence[int],
        created: Sequence[float],
        vectors: NDArray[np.float32],
    ) -> None:
        if not len(ids):
            return
        with self._lock:
            shard = self._shards.get(project_id)
            if shard is None:
                shard = self._shards[project_id] = _Shard(self.dimension, project_id)
            shard.reserve(len(ids))
            graphed = shard.graph.covered if shard.graph is not None else (shard.n if shard.growing else 0)
            for pid, ts, vec in zip(ids, created, vectors, strict=True):
                at = shard.pos.get(int(pid))
                if at is None:
                    at = shard.n
                    shard.n += 1
                    shard.pos[int(pid)] = at
                elif at < graphed or shard.growing:
                    shard.stale.add(at)  # the graph holds its old vector: scan this row exactly from now on
                    if shard.growing:
                        shard.restale.add(at)
                shard.matrix[at] = vec
                shard.ids[at] = pid
                shard.created[at] = ts
                shard.alive[at] = True
            grow = self._needs_growth(shard)
        if grow:
            self._grow(shard)

    def _needs_growth(self, shard: _Shard) -> bool:
        """Whether to start a build or a catch-up now (caller holds the lock; marks the shard growing)."""
        if self.ann_min_rows is None or shard.growing:
            return False
        if shard.graph is None:
            due = shard.n >= self.ann_min_rows
        else:
            due = shard.n - shard.graph.covered >= CATCH_UP_ROWS or shard.too_stale()
        shard.growing = due
        shard.restale = set()
        return due

    def _grow(self, shard: _Shard) -> None:
        if self.background:
            threading.Thread(
                target=self._grow_guarded, args=(shard,), name="ultramax-vector-graph", daemon=True
            ).start()
        else:
            self._grow_guarded(shard)

    def _grow_guarded(self, shard: _Shard) -> None:
        try:
            self._build_or_catch_up(shard)
        except MemoryStoreError:
            # the exact scan still answers every query; a graph that cannot be built only costs speed
            with self._lock:
                shard.graph = None
        finally:
            with self._lock:
                shard.growing = False
                self._idle.notify_all()

    def _build_or_catch_up(self, shard: _Shard) -> None:
        with self._lock:
            current = shard.graph
            rebuild = current is None or shard.too_stale()
        if rebuild and current is None and (restored := self._restore(shard)) is not None:
            current, rebuild = restored, False
        if rebuild:  # a new graph, filled without any lock, then swapped in
            graph = HnswGraph(self.dimension, threads=self.graph_threads)
            while True:
                with self._lock:
                    start, stop = graph.covered, min(shard.n, graph.covered + 8192)
                    if start >= stop:
                        shard.install(graph)
                        ids = shard.ids[: graph.covered].copy()
                        break
                    rows = shard.matrix[start:stop].copy()
                graph.extend(rows, first=start)
            self._save(shard.project_id, graph, ids)
            return
        assert current is not None
        while True:  # catch up a live graph in small steps: searches take graph_lock too
            with self._lock:
                start, stop = current.covered, min(shard.n, current.covered + _CATCH_UP_CHUNK)
                if start >= stop:
                    return
                rows = shard.matrix[start:stop].copy()
            with shard.graph_lock:
                current.extend(rows, first=start)

    def _restore(self, shard: _Shard) -> HnswGraph | None:
        """The graph a previous process saved for this shard, installed, if its rows are still this shard's
        first rows; None (build anew) otherwise."""
        if self.graph_dir is None:
            return None
        try:
            graph, ids = HnswGraph.restore(
                self.graph_dir, f"project-{shard.project_id}", self.dimension, threads=self.graph_threads
            )
        except MemoryStoreError:
            return None
        with self._lock:
            if len(ids) > shard.n or not np.array_equal(shard.ids[: len(ids)], ids):
                return None
            shard.install(graph)
        return graph

    def _save(self, project_id: int, graph: HnswGraph, ids: NDArray[np.int64]) -> None:
        if self.graph_dir is None:
            return
        try:
            graph.save(self.graph_dir, f"project-{project_id}", ids)
        except MemoryStoreError as exc:  # a graph that cannot be saved is rebuilt next time: speed, not data
            log.warning("%s", exc)

    def save_graphs(self) -> int:
        """Save every shard's graph (at shutdown); returns how many were saved."""
        with self._lock:
            shards = [s for s in self._shards.values() if s.graph is not None and not s.growing]
        for shard in shards:
            with shard.graph_lock:  # a catch-up extends the graph only under this lock
                graph = shard.graph
                if graph is not None:  # rows below ``covered`` keep their ids: no index lock needed to read them
                    self._save(shard.project_id, graph, shard.ids[: graph.covered].copy())
        return len(shards)

    def wait_for_graphs(self, timeout: float) -> bool:
        """Block until no graph build or catch-up is running (benchmarks, tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not any(s.growing for s in self._shards.values()), timeout)

    def graph_rows(self, project_id: int) -> int:
        """How many of a project's rows its graph covers (0: exact scan only)."""
        with self._lock:
            shard = self._shards.get(project_id)
            return shard.graph.covered if shard is not None and shard.graph is not None else 0

    def vector(self, project_id: int, pid: int) -> NDArray[np.float32] | None:
        with self._lock:
            shard = self._shards.get(project_id)
            at = shard.pos.get(pid) if shard is not None else None
            return None if shard is None or at is None else shard.matrix[at].copy()

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            for pid in ids:
                for shard in self._shards.values():
                    at = shard.pos.pop(int(pid), None)
                    if at is not None:
                        shard.alive[at] = False

    def load(self, rows: Iterable[VectorRow]) -> int:
        """Add rows from ``Store.vectors_since``; returns how many were loaded."""
        batch: dict[int, tuple[list[int], list[float], list[bytes]]] = {}
        top = self.seq
        count = 0
        for pid, project_id, created, blob, seq in rows:
            ids, times, blobs = batch.setdefault(project_id, ([], [], []))
            ids.append(pid)
            times.append(created)
            blobs.append(blob)
            top = max(top, seq)
            count += 1
        for project_id, (ids, times, blobs) in batch.items():
            vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), self.dimension)
            self.add(project_id, ids, times, vectors)
        self.seq = top
        return count

    def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        project_ids: Sequence[int] | None = None,
        start: float | None = None,
        end: float | None = None,
        restrict: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (passage id, cosine) over the given projects (all when None), within [start, end)."""
        with self._lock:
            keys = list(self._shards) if project_ids is None else [p for p in project_ids if p in self._shards]
            views = [self._view(s, restrict) for s in map(self._shards.__getitem__, keys) if s.n]
        found_ids: list[NDArray[np.int64]] = []
        found_sims: list[NDArray[np.float32]] = []
        for view in views:
            rows, sims = _search_view(view, query, k, start, end)
            found_ids.append(view.ids[rows])
            found_sims.append(sims)
        if not found_ids:
            return []
        all_ids = np.concatenate(found_ids)
        all_sims = np.concatenate(found_sims)
        order = np.argsort(-all_sims, kind="stable")[:k]
        return [(int(all_ids[i]), float(all_sims[i])) for i in order]

    @staticmethod
    def _view(shard: _Shard, restrict: set[int] | None) -> _View:
        rows = None
        if restrict is not None:
            rows = np.fromiter((at for pid in restrict if (at := shard.pos.get(pid)) is not None), dtype=np.int64)
        return _View(
            matrix=shard.matrix[: shard.n],
            ids=shard.ids[: shard.n],
            created=shard.created[: shard.n],
            alive=shard.alive[: shard.n],
            graph=shard.graph,
            graph_lock=shard.graph_lock,
            stale=np.fromiter(shard.stale, dtype=np.int64, count=len(shard.stale)),
            rows=rows,
        )


def _top(rows: NDArray[np.int64], sims: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The ``k`` best of ``rows`` by ``sims`` (unordered), dropping rows filtered to -inf."""
    take = min(k, len(sims))
    if take <= 0:
        return rows[:0], sims[:0]
    top = np.argpartition(-sims, take - 1)[:take] if take < len(sims) else np.arange(len(sims))
    top = top[np.isfinite(sims[top])]
    return rows[top], sims[top]


def _mask(view: _View, rows: NDArray[np.int64] | None, start: float | None, end: float | None) -> NDArray[np.bool_]:
    alive = view.alive if rows is None else view.alive[rows]
    keep = alive.copy()
    if start is not None or end is not None:
        created = view.created if rows is None else view.created[rows]
        if start is not None:
            keep &= created >= start
        if end is not None:
            keep &= created < end
    return keep


def _scored(
    view: _View, rows: NDArray[np.int64] | None, query: NDArray[np.float32], start: float | None, end: float | None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Exact scores of the given rows (all rows when None), rows filtered out at -inf."""
    sims = view.matrix @ query if rows is None else view.matrix[rows] @ query
    keep = _mask(view, rows, start, end)
    if not keep.all():
        sims = np.where(keep, sims, -np.inf).astype(np.float32)
    return (np.arange(len(view.ids), dtype=np.int64) if rows is None else rows), sims


def _search_view(
    view: _View, query: NDArray[np.float32], k: int, start: float | None, end: float | None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The best ``k`` rows of one shard: from the graph's candidates plus the rows it has not seen, or by
    scanning every row when there is no graph or when filters leave too few of the graph's candidates."""
    if view.rows is not None:  # a few given passages (a session's, the hot set's): score just those
        return _top(*_scored(view, view.rows, query, start, end), k)
    if view.graph is not None:
        want = 2 * k + 16  # headroom for deleted rows and time filters
        with view.graph_lock:
            covered = view.graph.covered
            proposed = view.graph.search(query, want)
        unseen = np.arange(covered, len(view.ids), dtype=np.int64)
        rows = np.unique(np.concatenate((proposed[proposed < len(view.ids)], unseen, view.stale)))
        rows, sims = _scored(view, rows, query, start, end)
        if int(np.isfinite(sims).sum()) >= min(k, len(view.ids)) or len(proposed) < want:
            return _top(rows, sims, k)
    return _top(*_scored(view, None, query, start, end), k)
