"""The in-process vector index: exact cosine search with numpy over one matrix per project.

Measured (reference stack measurements, section 4): a brute-force matmul is 0.3 ms at 10k and 13 ms at
100k with recall 1.0 -- faster than sqlite-vec and exact, so no ANN library is needed up to ~100k
passages per project. The index is a cache of the store's embedding BLOBs: ``sync`` loads whatever was
embedded since it last looked (by ``vec_seq``), and hits are hydrated from SQLite, so a passage deleted by
another process simply drops out.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ultramax.memory.store import VectorRow

__all__ = ["VectorIndex"]


@dataclass(slots=True)
class _Shard:
    dimension: int
    n: int = 0
    matrix: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    created: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    alive: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    pos: dict[int, int] = field(default_factory=dict)

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
    """Passage id -> unit vector, sharded by project; exact top-k by inner product."""

    def __init__(self, dimension: int) -> None:
        limit_blas_threads()
        self.dimension = dimension
        self.seq = 0  # highest vec_seq loaded
        self._shards: dict[int, _Shard] = {}
        self._lock = threading.Lock()

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
                shard = self._shards[project_id] = _Shard(self.dimension)
            shard.reserve(len(ids))
            for pid, ts, vec in zip(ids, created, vectors, strict=True):
                at = shard.pos.get(int(pid))
                if at is None:
                    at = shard.n
                    shard.n += 1
                    shard.pos[int(pid)] = at
                shard.matrix[at] = vec
                shard.ids[at] = pid
                shard.created[at] = ts
                shard.alive[at] = True

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
            views = [
                (s.matrix[: s.n], s.ids[: s.n], s.created[: s.n], s.alive[: s.n])
                for s in map(self._shards.get, keys)
                if s
            ]
        found_ids: list[NDArray[np.int64]] = []
        found_sims: list[NDArray[np.float32]] = []
        for matrix, ids, created, alive in views:
            if not len(ids):
                continue
            sims = matrix @ query
            keep = alive.copy()
            if start is not None:
                keep &= created >= start
            if end is not None:
                keep &= created < end
            if restrict is not None:
                keep &= np.isin(ids, np.fromiter(restrict, dtype=np.int64, count=len(restrict)))
            if not keep.all():
                sims = np.where(keep, sims, -np.inf).astype(np.float32)
            take = min(k, len(sims))
            top = np.argpartition(-sims, take - 1)[:take] if take < len(sims) else np.arange(len(sims))
            top = top[np.isfinite(sims[top])]
            found_ids.append(ids[top])
            found_sims.append(sims[top])
        if not found_ids:
            return []
        all_ids = np.concatenate(found_ids)
        all_sims = np.concatenate(found_sims)
        order = np.argsort(-all_sims, kind="stable")[:k]
        return [(int(all_ids[i]), float(all_sims[i])) for i in order]
