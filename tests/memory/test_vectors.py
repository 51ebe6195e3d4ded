"""The vector index: exact scores always, an HNSW graph proposing candidates for big projects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ultramax.memory.ann import HnswGraph, search_expansion
from ultramax.memory.models import MemoryStoreError
from ultramax.memory.vectors import CATCH_UP_ROWS, VectorIndex

DIM = 32


def unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return out


def clustered(n: int, seed: int = 0) -> NDArray[np.float32]:
    """Rows around 50 centres: the shape real sentence embeddings have, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((50, DIM)).astype(np.float32))
    return unit(centres[rng.integers(0, 50, n)] + rng.normal(0, 0.1, (n, DIM)).astype(np.float32))


def exact_top(matrix: NDArray[np.float32], query: NDArray[np.float32], k: int) -> list[int]:
    return [int(i) + 1 for i in np.argsort(-(matrix @ query), kind="stable")[:k]]


def filled(n: int, *, ann_min_rows: int | None) -> tuple[VectorIndex, NDArray[np.float32]]:
    index = VectorIndex(DIM, ann_min_rows=ann_min_rows, background=False)
    matrix = clustered(n)
    index.add(1, list(range(1, n + 1)), [float(i) for i in range(n)], matrix)
    return index, matrix


def test_a_big_project_gets_a_graph_and_a_small_one_stays_an_exact_scan() -> None:
    big, _ = filled(3000, ann_min_rows=2000)
    small, _ = filled(1000, ann_min_rows=2000)
    assert big.graph_rows(1) == 3000
    assert small.graph_rows(1) == 0


def test_search_through_the_graph_returns_the_exact_scores_of_the_rows_it_finds() -> None:
    index, matrix = filled(3000, ann_min_rows=1000)
    query = clustered(1, seed=5)[0]
    hits = index.search(query, 10)
    assert len(hits) == 10
    for pid, score in hits:
        assert score == pytest.approx(float(matrix[pid - 1] @ query), abs=1e-6)
    found = {pid for pid, _ in hits}
    assert len(found & set(exact_top(matrix, query, 10))) >= 9


def test_rows_added_after_the_graph_was_built_are_found_before_they_join_it() -> None:
    index, _ = filled(2000, ann_min_rows=1000)
    needle = unit(np.ones((1, DIM), dtype=np.float32))
    index.add(1, [99_999], [1.0], needle)
    assert index.graph_rows(1) == 2000  # not caught up yet: one row is far below CATCH_UP_ROWS
    assert index.search(needle[0], 1)[0][0] == 99_999


def test_a_row_re_embedded_after_the_graph_took_it_is_scored_by_its_new_vector() -> None:
    index, _ = filled(2000, ann_min_rows=1000)
    needle = unit(-np.ones((1, DIM), dtype=np.float32))
    index.add(1, [7], [6.0], needle)  # passage 7 already sits in the graph with its old vector
    pid, score = index.search(needle[0], 1)[0]
    assert pid == 7 and score == pytest.approx(1.0, abs=1e-5)


def test_a_pile_of_new_rows_is_caught_up_into_the_graph() -> None:
    index, _ = filled(1500, ann_min_rows=1000)
    more = clustered(CATCH_UP_ROWS, seed=3)
    index.add(1, list(range(10_000, 10_000 + CATCH_UP_ROWS)), [0.0] * CATCH_UP_ROWS, more)
    assert index.graph_rows(1) == 1500 + CATCH_UP_ROWS


def test_removed_rows_and_time_filters_are_honoured_with_a_graph() -> None:
    index, matrix = filled(3000, ann_min_rows=1000)
    query = matrix[41]
    assert index.search(query, 1)[0][0] == 42
    index.remove([42])
    assert 42 not in {pid for pid, _ in index.search(query, 20)}
    # created_at of row i is i: a window that keeps only rows 100..199 must return only those
    hits = index.search(query, 20, start=100.0, end=200.0)
    assert len(hits) == 20 and all(101 <= pid <= 200 for pid, _ in hits)
    assert [pid for pid, _ in hits] == [p for p in exact_top(matrix, query, 3000) if 101 <= p <= 200][:20]


def test_a_restricted_search_scores_only_the_given_passages() -> None:
    index, matrix = filled(3000, ann_min_rows=1000)
    allowed = {5, 500, 2500, 123_456}  # the last one does not exist
    hits = index.search(matrix[4], 10, restrict=allowed)
    assert hits[0][0] == 5 and {pid for pid, _ in hits} == {5, 500, 2500}


def test_the_graph_and_the_exact_scan_agree_on_the_best_rows() -> None:
    graphed, _ = filled(4000, ann_min_rows=1000)
    exact, _ = filled(4000, ann_min_rows=None)
    queries = clustered(20, seed=9)
    overlap = [len({p for p, _ in graphed.search(q, 10)} & {p for p, _ in exact.search(q, 10)}) / 10 for q in queries]
    assert sum(overlap) / len(overlap) >= 0.95


def test_a_graph_built_in_the_background_is_waited_for_and_used() -> None:
    index = VectorIndex(DIM, ann_min_rows=1000, background=True)
    matrix = clustered(2000)
    index.add(1, list(range(1, 2001)), [0.0] * 2000, matrix)
    assert index.wait_for_graphs(timeout=30)
    assert index.graph_rows(1) == 2000
    assert index.search(matrix[10], 1)[0][0] == 11


def test_graph_rows_must_be_added_in_order() -> None:
    graph = HnswGraph(DIM)
    graph.extend(clustered(10), first=0)
    with pytest.raises(MemoryStoreError, match="in order"):
        graph.extend(clustered(10), first=5)


def test_a_saved_graph_is_restored_by_the_next_process_instead_of_rebuilt(tmp_path: Path) -> None:
    matrix = clustered(3000)
    first = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    first.add(1, list(range(1, 3001)), [0.0] * 3000, matrix)
    assert first.save_graphs() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project-1.ids", "project-1.json", "project-1.usearch"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tmp_path.iterdir())

    second = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    built: list[int] = []
    original = HnswGraph.extend

    def counting(self: HnswGraph, rows: NDArray[np.float32], *, first: int) -> None:
        built.append(len(rows))
        original(self, rows, first=first)

    HnswGraph.extend = counting  # type: ignore[method-assign]
    try:
        second.add(1, list(range(1, 3001)), [0.0] * 3000, matrix)
    finally:
        HnswGraph.extend = original  # type: ignore[method-assign]
    assert second.graph_rows(1) == 3000 and built == []  # restored, not rebuilt
    assert second.search(matrix[10], 1)[0][0] == 11


def test_a_saved_graph_whose_rows_no_longer_match_is_rebuilt(tmp_path: Path) -> None:
    matrix = clustered(3000)
    first = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    first.add(1, list(range(1, 3001)), [0.0] * 3000, matrix)
    first.save_graphs()
    # another order of rows (as after re-embedding): the saved graph's positions mean other passages now
    second = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    second.add(1, list(range(3000, 0, -1)), [0.0] * 3000, matrix[::-1].copy())
    assert second.graph_rows(1) == 3000
    assert second.search(matrix[10], 1)[0][0] == 11


def test_a_torn_saved_graph_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    matrix = clustered(2000)
    first = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    first.add(1, list(range(1, 2001)), [0.0] * 2000, matrix)
    first.save_graphs()
    graph_file = tmp_path / "project-1.usearch"
    graph_file.write_bytes(graph_file.read_bytes()[:1000])  # a crash mid-write
    with pytest.raises(MemoryStoreError, match="does not match"):
        HnswGraph.restore(tmp_path, "project-1", DIM)
    second = VectorIndex(DIM, ann_min_rows=1000, background=False, graph_dir=tmp_path)
    second.add(1, list(range(1, 2001)), [0.0] * 2000, matrix)
    assert second.graph_rows(1) == 2000 and second.search(matrix[5], 1)[0][0] == 6


def test_a_bigger_graph_is_searched_more_widely() -> None:
    assert search_expansion(20_000) == 256
    assert search_expansion(100_000) == 400
    assert search_expansion(500_000) == 2000
    assert search_expansion(1_000_000) == 2048
