"""Approximate nearest neighbours for large projects: an HNSW graph over the rows of a vector shard.

The exact scan in ``vectors`` reads every vector on every query: 154 MB at 100k passages, 1.5 GB at 1M,
which no longer fits the latency goals (20 ms at 100k, 100 ms at 1M) on two cores. Above
``ANN_MIN_ROWS`` rows a shard also keeps an HNSW graph (usearch, vectors stored as float16) that proposes
candidates; the shard's float32 matrix stays the source of truth, so every candidate is re-scored exactly
and rows the graph has not seen yet (the tail added since it was built, rows re-embedded since) are scanned
exactly beside it. The graph therefore only decides *which* rows are looked at, never a score, and a lost
or half-built graph costs speed, not correctness.

Parameters: connectivity 16, expansion 96 to add (64 sometimes missed a whole cluster on tightly clustered
data) and 256-2,048 to search, growing with the graph (``search_expansion``). Build rate,
query time and agreement with the exact scan at 100k and 1M rows are in docs/benchmarks.md (memory: scale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ultramax.fsutil import private_dir
from ultramax.memory.models import MemoryStoreError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["ANN_MIN_ROWS", "HnswGraph", "search_expansion"]

ANN_MIN_ROWS = 20_000
"""Below this many rows per project the exact scan is faster than building and walking a graph (1.5 ms)."""


def search_expansion(rows: int) -> int:
    """How wide a search walks the graph: wider as it grows, since a fixed width finds less of the true top 10
    in a bigger graph. Measured on blends of real MiniLM vectors: at 200k, widths 192 / 400 / 800 found 0.895 /
    0.970 / 0.991 of the exact top 10 in 1.7 / 2.8 / 5.3 ms; at 1M, 400 / 1,024 / 2,048 found 0.714 / 0.868 /
    0.942 in 2.0 / 5.0 / 11.3 ms -- still well under bm25's time, which the vector search runs beside."""
    return min(2048, max(256, rows // 250))


class HnswGraph:
    """An HNSW graph keyed by row position; ``covered`` rows ``[0, covered)`` have been added."""

    def __init__(
        self,
        dimension: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 96,
        threads: int = 1,
    ) -> None:
        try:
            from usearch.index import Index
        except ImportError as exc:  # pragma: no cover - usearch is a dependency of ultramax
            raise MemoryStoreError(f"the vector graph needs usearch ({exc}); reinstall ultramax") from exc
        self.dimension = dimension
        self.threads = threads
        self.covered = 0
        self._index = Index(
            ndim=dimension,
            metric="ip",  # rows are unit vectors: inner product is cosine
            dtype="f16",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=search_expansion(0),
        )

    def __len__(self) -> int:
        return self.covered

    def extend(self, rows: NDArray[np.float32], *, first: int) -> None:
        """Add ``rows`` as positions ``first, first + 1, ...``; ``first`` must be ``covered``."""
        if first != self.covered:
            raise MemoryStoreError(f"graph rows must be added in order: expected {self.covered}, got {first}")
        if not len(rows):
            return
        keys = np.arange(first, first + len(rows), dtype=np.uint64)
        self._index.add(keys, np.ascontiguousarray(rows, dtype=np.float32), threads=self.threads)
        self.covered += len(rows)

    def search(self, query: NDArray[np.float32], k: int) -> NDArray[np.int64]:
        """Positions of (approximately) the ``k`` rows most similar to ``query``, best first."""
        if not self.covered or k <= 0:
            return np.zeros(0, dtype=np.int64)
        ef = search_expansion(self.covered)
        if self._index.expansion_search != ef:
            self._index.expansion_search = ef  # type: ignore[misc]  # usearch has the setter; its stub order hides it
        matches = self._index.search(np.ascontiguousarray(query, dtype=np.float32), min(k, self.covered), threads=1)
        keys: NDArray[np.int64] = np.asarray(matches.keys, dtype=np.int64)
        return keys

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def save(self, directory: Path, name: str, ids: NDArray[np.int64]) -> None:
        """Write the graph, the passage ids of its rows and a manifest naming both (written last, so a crash
        mid-save leaves a manifest that does not match and the graph is rebuilt). Files are 0600: vectors
        say something about the text they came from."""
        private_dir(directory)
        graph, id_file, manifest = _files(directory, name)
        try:
            for final, write in (
                (graph, lambda tmp: self._index.save(str(tmp))),
                (
                    id_file,
                    lambda tmp: tmp.write_bytes(np.ascontiguousarray(ids[: self.covered], dtype="<i8").tobytes()),
                ),
            ):
                tmp = final.with_name(final.name + ".tmp")
                write(tmp)
                tmp.chmod(0o600)
                tmp.replace(final)
            meta = {
                "covered": self.covered,
                "dimension": self.dimension,
                "graph_bytes": graph.stat().st_size,
                "ids_bytes": id_file.stat().st_size,
            }
            tmp = manifest.with_name(manifest.name + ".tmp")
            tmp.write_text(json.dumps(meta), encoding="utf-8")
            tmp.chmod(0o600)
            tmp.replace(manifest)
        except (OSError, RuntimeError) as exc:
            raise MemoryStoreError(f"could not save the vector graph to {directory}: {exc}") from exc

    @classmethod
    def restore(
        cls, directory: Path, name: str, dimension: int, *, threads: int = 1
    ) -> tuple[HnswGraph, NDArray[np.int64]]:
        """A saved graph and the passage ids of its rows; MemoryStoreError if absent, torn or not matching."""
        graph_file, id_file, manifest = _files(directory, name)
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            if (
                meta.get("dimension") != dimension
                or meta.get("graph_bytes") != graph_file.stat().st_size
                or meta.get("ids_bytes") != id_file.stat().st_size
            ):
                raise MemoryStoreError(f"the saved vector graph in {directory} does not match its manifest")
            graph = cls(dimension, threads=threads)
            graph._index.load(str(graph_file))
            ids = np.frombuffer(id_file.read_bytes(), dtype="<i8").astype(np.int64)
        except (OSError, ValueError, RuntimeError) as exc:
            raise MemoryStoreError(f"no usable saved vector graph in {directory}: {exc}") from exc
        if graph._index.ndim != dimension or len(graph._index) != len(ids) or len(ids) != meta.get("covered"):
            raise MemoryStoreError(f"the saved vector graph in {directory} does not match its manifest")
        graph.covered = len(ids)
        return graph, ids


def _files(directory: Path, name: str) -> tuple[Path, Path, Path]:
    return directory / f"{name}.usearch", directory / f"{name}.ids", directory / f"{name}.json"
