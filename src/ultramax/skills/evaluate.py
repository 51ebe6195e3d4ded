"""``ultramax skills eval FILE.jsonl``: how often the resolver picks exactly the right skills, in order.

Each line is ``{"prompt": "...", "expect_skills": ["..."], "expect_order_constraints": [["a", "b"], ...]}``
(a constraint ``[a, b]``: *a* must be loaded before *b*; other fields are ignored). Scores:

- **exact-set accuracy**: the share of prompts whose resolved set equals ``expect_skills``;
- **order violations**: constraints whose two skills were both resolved but in the wrong order (a constraint
  with a skill missing cannot be violated; it is counted as not checkable -- the set error already counts);
- **dependency violations**: resolved skills loaded before one of their own dependencies (always checked);
- micro precision and recall over skills, and the resolver's time per prompt.

Prompts are resolved as the UserPromptSubmit stage resolves them with nothing else in the hook's context.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from ultramax.decisions import CONTEXT_CAP
from ultramax.errors import UltramaxError
from ultramax.skills.resolver import SkillResolver

__all__ = ["EvalCase", "EvalDataError", "EvalReport", "evaluate", "load_cases"]


class EvalDataError(UltramaxError):
    """An evaluation file is unreadable or a line is malformed (the message names file and line)."""


@dataclass(frozen=True, slots=True)
class EvalCase:
    line: int
    prompt: str
    expect: tuple[str, ...]
    constraints: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: EvalCase
    got: tuple[str, ...]
    order_violations: tuple[tuple[str, str], ...]
    dependency_violations: tuple[tuple[str, str], ...]
    unscored: int  # constraints naming a skill that was not resolved
    ms: float

    @property
    def exact(self) -> bool:
        return set(self.got) == set(self.case.expect)

    @property
    def missing(self) -> list[str]:
        return [s for s in self.case.expect if s not in self.got]

    @property
    def extra(self) -> list[str]:
        return [s for s in self.got if s not in self.case.expect]

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.case.line,
            "prompt": self.case.prompt,
            "expected": list(self.case.expect),
            "got": list(self.got),
            "exact": self.exact,
            "missing": self.missing,
            "extra": self.extra,
            "order_violations": [list(v) for v in self.order_violations],
            "dependency_violations": [list(v) for v in self.dependency_violations],
        }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True, slots=True)
class EvalReport:
    results: tuple[CaseResult, ...]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def exact(self) -> int:
        return sum(r.exact for r in self.results)

    @property
    def accuracy(self) -> float:
        return self.exact / self.total if self.total else 0.0

    @property
    def order_violations(self) -> int:
        return sum(len(r.order_violations) for r in self.results)

    @property
    def dependency_violations(self) -> int:
        return sum(len(r.dependency_violations) for r in self.results)

    @property
    def constraints(self) -> int:
        return sum(len(r.case.constraints) for r in self.results)

    @property
    def unscored(self) -> int:
        return sum(r.unscored for r in self.results)

    def _micro(self) -> tuple[float, float]:
        hits = sum(len(set(r.got) & set(r.case.expect)) for r in self.results)
        got = sum(len(r.got) for r in self.results)
        want = sum(len(set(r.case.expect)) for r in self.results)
        return (hits / got if got else 1.0), (hits / want if want else 1.0)

    def to_dict(self) -> dict[str, Any]:
        precision, recall = self._micro()
        times = [r.ms for r in self.results]
        return {
            "prompts": self.total,
            "exact": self.exact,
            "exact_set_accuracy": round(self.accuracy, 4),
            "order_constraints": self.constraints,
            "order_violations": self.order_violations,
            "order_constraints_not_checkable": self.unscored,
            "dependency_violations": self.dependency_violations,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "ms_per_prompt": {"p50": round(_percentile(times, 0.5), 4), "p95": round(_percentile(times, 0.95), 4)},
            "failures": [r.to_dict() for r in self.results if not r.exact or r.order_violations],
        }

    def text(self, max_failures: int = 20) -> str:
        data = self.to_dict()
        times = data["ms_per_prompt"]
        lines = [
            f"prompts              {self.total}",
            f"exact set            {self.exact}/{self.total} ({self.accuracy:.1%})",
            f"order violations     {self.order_violations} of {self.constraints} constraints"
            f" ({self.unscored} not checkable: a skill was not resolved)",
            f"dependency order     {self.dependency_violations} violations",
            f"precision / recall   {data['precision']:.3f} / {data['recall']:.3f}",
            f"resolve time         p50 {times['p50']:.3f} ms, p95 {times['p95']:.3f} ms",
        ]
        failures = data["failures"]
        if failures:
            lines.append(f"failures ({len(failures)}):")
            for f in failures[:max_failures]:
                detail = [
                    f"missing {', '.join(f['missing'])}" if f["missing"] else "",
                    f"extra {', '.join(f['extra'])}" if f["extra"] else "",
                    f"order {f['order_violations']}" if f["order_violations"] else "",
                ]
                lines.append(f"  line {f['line']}: {f['prompt'][:70]!r}: " + "; ".join(d for d in detail if d))
            if len(failures) > max_failures:
                lines.append(f"  … {len(failures) - max_failures} more (--json lists all)")
        return "\n".join(lines)


def _names(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _unknown(names: list[str], known: Collection[str] | None) -> str:
    """The first of ``names`` not in ``known``, with a did-you-mean, as a phrase; "" if all are known."""
    for name in names:
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
            return f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return ""


def load_cases(path: Path, known: Collection[str] | None = None) -> list[EvalCase]:
    """Parse a JSONL file of labelled prompts; EvalDataError names the file and line of a bad one, a skill not
    in ``known`` (the graph's names, when given), or a file with no prompts at all."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is not line 1's
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read ({exc})") from exc
    cases: list[EvalCase] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("//"):
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise EvalDataError(f"{path}:{number}: each line must be a JSON object")
        prompt = data.get("prompt")
        expect = data.get("expect_skills")
        constraints = data.get("expect_order_constraints", [])
        if not isinstance(prompt, str):
            raise EvalDataError(f'{path}:{number}: "prompt" must be a string')
        if not _names(expect):
            raise EvalDataError(f'{path}:{number}: "expect_skills" must be an array of skill names')
        if not isinstance(constraints, list) or not all(_names(c) and len(c) == 2 for c in constraints):
            raise EvalDataError(
                f'{path}:{number}: "expect_order_constraints" must be an array of [before, after] pairs'
            )
        unknown = _unknown(expect, known) or _unknown([name for pair in constraints for name in pair], known)
        if unknown:
            raise EvalDataError(
                f"{path}:{number}: no skill named {unknown} in the graph; `ultramax skills list` shows them"
            )
        cases.append(EvalCase(number, prompt, tuple(expect), tuple((c[0], c[1]) for c in constraints)))
    if not cases:
        raise EvalDataError(f'{path}: no prompts to evaluate (expected JSONL lines of {{"prompt", "expect_skills"}})')
    return cases


def evaluate(resolver: SkillResolver, cases: list[EvalCase], *, max_chars: int | None = CONTEXT_CAP) -> EvalReport:
    """Resolve every case's prompt and score it."""
    results = []
    graph = resolver.graph
    for case in cases:
        t0 = time.perf_counter_ns()
        got = tuple(resolver.resolve(case.prompt, max_chars=max_chars).load_order)
        ms = (time.perf_counter_ns() - t0) / 1e6
        position = {name: i for i, name in enumerate(got)}
        violations = []
        unscored = 0
        for before, after in case.constraints:
            if before not in position or after not in position:
                unscored += 1
            elif position[before] > position[after]:
                violations.append((before, after))
        deps = [
            (d, name) for name in got for d in graph[name].dependencies if position.get(d, len(got)) > position[name]
        ]
        results.append(CaseResult(case, got, tuple(violations), tuple(deps), unscored, ms))
    return EvalReport(tuple(results))
