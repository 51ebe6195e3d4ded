"""The RouteLLM evaluation data (``../shared/evals/routellm/``), read in place: never copied into the repo.

Strong model = gpt-4-1106-preview, weak = Mixtral-8x7B-Instruct. GSM8K and MMLU give per-prompt correctness
(1/0), MT-Bench GPT-4 judge scores (1-10, averaged over the two judgements of a question; routing is decided
on the first turn, as RouteLLM does). Prompts RouteLLM lists as contaminated are excluded.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BENCHMARKS", "DEFAULT_DATA", "Item", "load"]

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "evals" / "routellm"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
BENCHMARKS = ("gsm8k", "mmlu", "mt-bench")


@dataclass(frozen=True, slots=True)
class Item:
    prompt: str
    strong: float
    weak: float


def _contaminated(path: Path) -> set[str]:
    with path.open(encoding="utf-8") as fh:
        return {json.loads(line)["eval_prompt"] for line in fh if line.strip()}


def _csv_items(files: list[Path], bad: set[str]) -> list[Item]:
    csv.field_size_limit(1 << 30)
    out = []
    for file in files:
        with file.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["prompt"] in bad:
                    continue
                out.append(Item(row["prompt"], float(row[STRONG] == "True"), float(row[WEAK] == "True")))
    return out


def load(name: str, data: Path = DEFAULT_DATA) -> list[Item]:
    if name == "gsm8k":
        return _csv_items([data / "gsm8k_responses.csv"], _contaminated(data / "gsm8k_contaminated_prompts.jsonl"))
    if name == "mmlu":
        return _csv_items(
            sorted((data / "mmlu").glob("mmlu_*.csv")), _contaminated(data / "mmlu_contaminated_prompts.jsonl")
        )
    if name == "mt-bench":
        bad = _contaminated(data / "mt_bench_contaminated_prompts.jsonl")
        scores: dict[tuple[int, str], list[float]] = {}
        with (data / "mt_bench_judgements.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                scores.setdefault((row["question_id"], row["model"]), []).append(float(row["score"]))
        out = []
        with (data / "mt_bench_question.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                q = json.loads(line)
                if q["turns"][0] in bad or q["turns"][1] in bad:
                    continue
                s, w = scores[(q["question_id"], STRONG)], scores[(q["question_id"], WEAK)]
                out.append(Item(q["turns"][0], sum(s) / len(s), sum(w) / len(w)))
        return out
    raise ValueError(f"unknown benchmark {name!r}")
