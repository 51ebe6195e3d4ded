"""Retrieval evaluation on files in the LoCoMo format (Maharana et al., 2024; ``locomo10.json``).

Each dialog turn becomes a passage (``speaker: text``, an image's caption appended, stored at its session's
date, its ``dia_id`` kept as the external id, the turn before it as indexing context exactly as captured
answers get their prompt); each question is a query against its own conversation only. Scores follow the
official code: fractional evidence recall@k = |evidence ∩ top-k| / |evidence| (1 for a question without
evidence), averaged overall and per category; plus MRR of the first evidence turn and search latency.

Nothing here knows LoCoMo's questions: the same code scores any file in this format.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultramax.errors import describe_json, json_problem
from ultramax.memory.models import MemoryStoreError, NewPassage
from ultramax.memory.store import SQLiteStore
from ultramax.memory.timefilter import parse_time_filter

if TYPE_CHECKING:
    from ultramax.memory.embed import Embedder
    from ultramax.memory.search import Fusion

__all__ = ["CATEGORIES", "KS", "EvalReport", "evaluate", "load_conversations"]

KS = (5, 10, 25, 50)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_EVIDENCE = re.compile(r"D\d+:\d+")
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%H:%M on %d %B, %Y", "%d %B %Y", "%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    evidence: tuple[str, ...]
    category: int


@dataclass(frozen=True, slots=True)
class Conversation:
    sample_id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


def _parse_date(text: str, where: str) -> float:
    cleaned = " ".join(text.replace("\u202f", " ").split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise MemoryStoreError(f"{where}: unrecognised date {text!r} (LoCoMo writes '1:56 pm on 8 May, 2023')")


def load_conversations(path: Path) -> list[Conversation]:
    """The conversations of a LoCoMo-format file; a file of another shape is an error naming where it differs."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MemoryStoreError(f"cannot read {path}: {exc.strerror or exc}; give a file in the LoCoMo format") from exc
    except UnicodeDecodeError as exc:
        raise MemoryStoreError(f"{path}: not UTF-8 text (byte {exc.start}); a LoCoMo file is UTF-8 JSON") from exc
    if not text.strip():
        raise MemoryStoreError(f"{path} is empty; a LoCoMo file is a JSON list of conversations")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MemoryStoreError(f"{path}: not JSON ({json_problem(exc)})") from exc
    if not isinstance(data, list):
        raise MemoryStoreError(
            f"{path}: expected a JSON list of conversations, as locomo10.json holds, not {describe_json(data)}"
        )
    if not data:
        raise MemoryStoreError(f"{path}: the list holds no conversations, so there is nothing to score")
    return [_conversation(item, f"{path}: conversation {n + 1}", n) for n, item in enumerate(data)]


def _conversation(item: Any, where: str, n: int) -> Conversation:
    if not isinstance(item, dict):
        raise MemoryStoreError(f"{where}: expected an object with 'conversation' and 'qa', not {describe_json(item)}")
    sample_id = str(item.get("sample_id", f"conv-{n}"))
    if "sample_id" in item:
        where = f"{where} ({sample_id})"
    conv = item.get("conversation") or {}
    if not isinstance(conv, dict):
        raise MemoryStoreError(f"{where}: 'conversation' must be an object of sessions, not {describe_json(conv)}")
    turns: list[Turn] = []
    sessions = sorted(
        (int(m.group(1)), key)
        for key in conv
        if (m := re.fullmatch(r"session_(\d+)", key)) and isinstance(conv[key], list)
    )
    for number, key in sessions:
        stamp = conv.get(f"session_{number}_date_time")
        at = _parse_date(stamp, f"{where}, {key}_date_time") if isinstance(stamp, str) else float(number)
        for i, turn in enumerate(conv[key]):
            if not isinstance(turn, dict):
                raise MemoryStoreError(
                    f"{where}, {key} turn {i + 1}: expected an object with 'speaker' and 'text', "
                    f"not {describe_json(turn)}"
                )
            text = str(turn.get("text", "")).strip()
            if turn.get("blip_caption"):
                text += f" [shares an image: {turn['blip_caption']}]"
            # turns of one session share its date; keep their order with a second apart
            turns.append(
                Turn(str(turn.get("dia_id", f"D{number}:{i + 1}")), str(turn.get("speaker", "")), text, at + i)
            )
    qas = item.get("qa") or []
    if not isinstance(qas, list):
        raise MemoryStoreError(f"{where}: 'qa' must be a list of questions, not {describe_json(qas)}")
    return Conversation(
        sample_id, tuple(turns), tuple(_question(qa, f"{where}, question {j + 1}") for j, qa in enumerate(qas))
    )


def _question(qa: Any, where: str) -> Question:
    if not isinstance(qa, dict):
        raise MemoryStoreError(
            f"{where}: expected an object with 'question', 'evidence' and 'category', not {describe_json(qa)}"
        )
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise MemoryStoreError(f"{where}: 'question' must be the question's text, not {describe_json(question)}")
    category = qa.get("category", 0)
    if not isinstance(category, int) or isinstance(category, bool):
        raise MemoryStoreError(
            f"{where}: 'category' must be a whole number (LoCoMo's are 1 to 5), not {describe_json(category)}"
        )
    raw = qa.get("evidence") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise MemoryStoreError(
            f"{where}: 'evidence' must be a list of turn ids such as \"D1:3\", not {describe_json(raw)}"
        )
    evidence = tuple(dict.fromkeys(e for r in raw for e in _EVIDENCE.findall(str(r))))
    return Question(question, evidence, category)


@dataclass(slots=True)
class EvalReport:
    questions: int = 0
    recall: dict[int, float] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    mrr: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    ingest: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "recall": {f"@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr": round(self.mrr, 4),
            "per_category": self.per_category,
            "latency_ms": self.latency_ms,
            "ingest": self.ingest,
            "settings": self.settings,
        }


def _score(ranked: Sequence[str], evidence: Sequence[str]) -> tuple[dict[int, float], float]:
    if not evidence:
        return {k: 1.0 for k in KS}, 1.0
    wanted = set(evidence)
    recall = {k: len(wanted & set(ranked[:k])) / len(wanted) for k in KS}
    rr = next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in wanted), 0.0)
    return recall, rr


def evaluate(
    path: Path,
    *,
    embedder: Embedder | None = None,
    fusions: Sequence[Fusion] = ("weighted",),
    context_turns: int = 1,
    context_after: int = 0,
    time_filter: bool = True,
    limit_conversations: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, EvalReport]:
    """Score retrieval on a LoCoMo-format file; one report per fusion method (the store is built once)."""
    from ultramax.memory.embed import default_embedder
    from ultramax.memory.search import HybridSearcher

    conversations = load_conversations(path)[:limit_conversations]
    if not any(conv.questions for conv in conversations):
        raise MemoryStoreError(f"{path}: no questions to score (no conversation has a 'qa' list with entries)")
    embedder = embedder or default_embedder()
    results: dict[str, list[tuple[int, dict[int, float], float]]] = defaultdict(list)
    latencies: dict[str, list[float]] = defaultdict(list)
    ingest_s = 0.0
    turns_total = 0
    with tempfile.TemporaryDirectory(prefix="ultramax-locomo-") as tmp:
        store = SQLiteStore(Path(tmp) / "memory.db")
        searcher = HybridSearcher(store, embedder)
        for conv in conversations:
            project = store.ensure_project(re.sub(r"[^A-Za-z0-9._\-]+", "-", conv.sample_id) or "conv")
            started = time.perf_counter()
            passages = []
            for i, turn in enumerate(conv.turns):
                before = [*conv.turns[max(0, i - context_turns) : i], *conv.turns[i + 1 : i + 1 + context_after]]
                passages.append(
                    NewPassage(
                        f"{turn.speaker}: {turn.text}",
                        kind="turn",
                        session_id=turn.dia_id.split(":")[0],
                        created_at=turn.at,
                        source_event="locomo",
                        context="\n".join(f"{t.speaker}: {t.text}" for t in before),
                        external_id=turn.dia_id,
                    )
                )
            ids = store.add_passages(project.name, passages)
            by_id = dict(zip(ids, (t.dia_id for t in conv.turns), strict=True))
            while rows := store.unembedded(256):
                vectors = embedder.embed([r[3] for r in rows])
                store.set_embeddings([(r[0], vectors[i].tobytes()) for i, r in enumerate(rows)], embedder.name)
            searcher.sync()
            ingest_s += time.perf_counter() - started
            turns_total += len(conv.turns)
            now = max(t.at for t in conv.turns) + 86400 if conv.turns else time.time()
            for q in conv.questions:
                time_range, cleaned = parse_time_filter(q.question, now) if time_filter else (None, q.question)
                hard = time_range is not None and time_range.hard
                qv = searcher.embed_query(cleaned or q.question)
                for fusion in fusions:
                    t0 = time.perf_counter()
                    kwargs: dict[str, Any] = {"project_ids": [project.id], "limit": max(KS), "fusion": fusion}
                    if hard and time_range is not None:
                        kwargs.update(start=time_range.start, end=time_range.end)
                    elif time_range is not None:
                        kwargs["boost"] = (time_range.start, time_range.end)
                    found = searcher.search(cleaned or q.question, query_vector=qv, **kwargs)
                    if hard and not found:
                        found = searcher.search(
                            q.question, query_vector=qv, project_ids=[project.id], limit=max(KS), fusion=fusion
                        )
                    latencies[fusion].append((time.perf_counter() - t0) * 1000)
                    ranked = [by_id[c.id] for c in found if c.id in by_id]
                    recall, rr = _score(ranked, q.evidence)
                    results[fusion].append((q.category, recall, rr))
            if progress is not None:
                progress(f"{conv.sample_id}: {len(conv.turns)} turns, {len(conv.questions)} questions")
        store.close()
    reports: dict[str, EvalReport] = {}
    for fusion_name, scored in results.items():
        report = EvalReport(questions=len(scored))
        report.recall = {k: statistics.fmean(r[1][k] for r in scored) for k in KS}
        report.mrr = statistics.fmean(r[2] for r in scored)
        for cat in sorted({r[0] for r in scored}):
            sub = [r for r in scored if r[0] == cat]
            entry = {f"@{k}": round(statistics.fmean(r[1][k] for r in sub), 4) for k in KS}
            entry["mrr"] = round(statistics.fmean(r[2] for r in sub), 4)
            entry["questions"] = len(sub)
            report.per_category[f"{cat} {CATEGORIES.get(cat, '?')}"] = entry
        lat = sorted(latencies[fusion_name])
        report.latency_ms = {
            "p50": round(statistics.median(lat), 2),
            "p95": round(lat[int(0.95 * (len(lat) - 1))], 2),
        }
        report.ingest = {
            "turns": turns_total,
            "seconds": round(ingest_s, 1),
            "per_second": round(turns_total / ingest_s, 1) if ingest_s else 0.0,
        }
        report.settings = {
            "fusion": fusion_name,
            "embedder": embedder.name,
            "context_turns": context_turns,
            "context_after": context_after,
            "time_filter": time_filter,
            "conversations": len(conversations),
        }
        reports[fusion_name] = report
    return reports
