"""ultramax's memory: core blocks, archival passages, hybrid search over L1-L4 tiers, capture and injection.

Modules (the hook path imports only the standard-library ones: models, store and its parts, migrations, fts,
capture, inject, timefilter, service, stage):

- ``store``: the ``Store`` protocol and the embedded SQLite store (WAL, FTS5, vectors as BLOBs), put together
  from ``database`` (connections, the one writer, errors), ``projects``, ``blocks``, ``passages``,
  ``keyword_search`` and ``session_state``
- ``embed``: the ``Embedder`` protocol and the shipped ONNX MiniLM (numpy, onnxruntime, tokenizers)
- ``vectors`` / ``search`` / ``tiers``: exact vector index, hybrid fusion, the seed's L1-L4 tiers
- ``capture`` / ``inject`` / ``stage``: hook events in, context out
- ``service``: the engine every face uses; ``mcp_server``: memory tools for the model
"""

from __future__ import annotations

import os

# One BLAS thread for the vector index: a single query's matrix-vector product is memory-bound, and a
# multi-threaded OpenBLAS gemv on a busy 2-core machine was measured 10x slower at 10k passages (15 ms vs
# 1.4 ms). Only effective if numpy is not imported yet; an explicit setting wins.
BLAS_THREADS_SET_BY_USER = "OPENBLAS_NUM_THREADS" in os.environ
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
