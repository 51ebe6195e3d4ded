"""The tier model's nearest labelled prompts: what the prompts most like this one were labelled.

The tier model is linear; how hard a prompt is does not lie along one direction of the sentence embedding
("why does X sometimes ..." is hard for almost any X, "rename X" easy). So the main model also reads four
features from the labelled training prompts nearest to the ask in that embedding: the similarity-weighted
share of them labelled haiku and opus, their mean tier, and how similar they are. The trainer computes them for
each training prompt from the *other* files only (a file's own prompts share its writer's habits), which is how
a new prompt sees them. File-held-out cross-validation valued them at about three points of accuracy.

The bank is the training prompts' embeddings, unit length and int8 (``tier_neighbours.npz``: ``vectors`` n x 384
int8 and ``tiers`` n uint8), shipped beside ``tiers.json``; a query costs one n x 384 product.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["NEIGHBOUR_FEATURES", "TEMPERATURE", "NeighbourBank", "neighbour_features", "quantize", "read_bank"]

NEIGHBOUR_FEATURES = ("neighbour_haiku", "neighbour_opus", "neighbour_tier", "neighbour_similarity")
TEMPERATURE = 10.0
"""Softmax temperature on cosine similarity: the nearest of the k count most."""


def quantize(vectors: NDArray[np.floating]) -> NDArray[np.int8]:
    """Rows scaled to unit length, then to int8 (127 = 1.0)."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out: NDArray[np.int8] = np.clip(np.round(v * 127), -127, 127).astype(np.int8)
    return out


def neighbour_features(
    queries: NDArray[np.int8 | np.float32], bank: NDArray[np.int8 | np.float32], tiers: NDArray[np.uint8], k: int
) -> NDArray[np.float64]:
    """``NEIGHBOUR_FEATURES`` for each quantised query row, from its ``k`` most similar bank rows (both int8, or
    their values as float32)."""
    if len(bank) == 0:
        raise ValueError("an empty neighbour bank")
    k = min(k, len(bank))
    q, b = np.asarray(queries, dtype=np.float32), np.asarray(bank, dtype=np.float32)
    # one query (the router): einsum's own loop, not BLAS -- OpenBLAS's threads and the embedding session's
    # spinning threads fought over two cores, 5.1 ms for embedding + product against 1.6 ms this way
    dot = np.einsum("ij,j->i", b, q[0])[None, :] if len(q) == 1 else q @ b.T
    sims = dot / (127.0 * 127.0)
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(sims, idx, axis=1).astype(np.float64)
    w = np.exp(TEMPERATURE * (top - top.max(axis=1, keepdims=True)))
    w /= w.sum(axis=1, keepdims=True)
    labels = tiers[idx]
    p_haiku = (w * (labels == 0)).sum(axis=1)
    p_opus = (w * (labels == 2)).sum(axis=1)
    mean_tier = (w * labels).sum(axis=1)
    out: NDArray[np.float64] = np.column_stack([p_haiku, p_opus, mean_tier, top.mean(axis=1)])
    return out


@dataclass(frozen=True, slots=True)
class NeighbourBank:
    vectors: NDArray[np.float32]
    """The int8 rows' values as float32, converted once: a query is then one matrix-vector product."""
    tiers: NDArray[np.uint8]
    k: int

    def features(self, vector: tuple[float, ...]) -> tuple[float, ...]:
        """``NEIGHBOUR_FEATURES`` for one sentence embedding."""
        row = neighbour_features(quantize(np.array([vector])), self.vectors, self.tiers, self.k)[0]
        return tuple(float(v) for v in row)


def read_bank(path: Path, k: int, dimension: int) -> NeighbourBank:
    """Read and check a bank written by the trainer; ``ValueError`` says what is wrong."""
    try:
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:  # closed even when not a zip
            vectors, tiers = data["vectors"], data["tiers"]
    except FileNotFoundError:
        raise ValueError(f"the neighbour bank {path} is missing") from None
    except KeyError as exc:
        raise ValueError(f"the neighbour bank {path} has no array {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"the neighbour bank {path} is unreadable ({exc})") from None
    where = f"the neighbour bank {path}"
    if vectors.dtype != np.int8 or vectors.ndim != 2 or vectors.shape[1] != dimension:
        raise ValueError(f"{where}: vectors: expected int8 rows of {dimension}, got {vectors.dtype} {vectors.shape}")
    if tiers.dtype != np.uint8 or tiers.shape != (len(vectors),) or (len(tiers) and int(tiers.max()) > 2):
        raise ValueError(f"{where}: tiers: expected {len(vectors)} uint8 labels 0-2")
    if not 1 <= k <= len(vectors):
        raise ValueError(f"{where}: k {k} for a bank of {len(vectors)}")
    return NeighbourBank(vectors.astype(np.float32), tiers, k)
