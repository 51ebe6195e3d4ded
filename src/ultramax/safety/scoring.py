"""Scoring the guard against a labelled corpus (``../shared/evals/safety/dev.jsonl`` and files like it).

Each case is a tool call as Claude Code sends it (``tool``, ``input``) with the decision a careful guard
should give (``expect``: deny / ask / allow) and a ``category`` (``area/technique``). Every case runs as the
first call of a fresh session through the real engine, with HOME, the working directory and the mode given.
Figures: exact match; deny cases answered ``allow`` (the worst error, never averaged away); deny cases not
allowed; allow cases blocked (ask or deny).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ultramax.errors import UltramaxError, describe_json, json_problem

__all__ = ["Case", "CaseFileError", "CaseResult", "Score", "load_cases", "run_cases", "score", "score_table"]

EXPECTATIONS = ("allow", "ask", "deny")

DEFAULT_NOW = datetime(2026, 11, 18, 16, 0, tzinfo=UTC)
"""A Wednesday, 11:00 in New York: markets open, so the market-hours layer does not decide trading cases."""


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    tool: str
    input: dict[str, Any]
    expect: str
    category: str
    why: str = ""

    @property
    def area(self) -> str:
        return self.category.split("/", 1)[0]

    def summary(self) -> str:
        if self.tool == "Bash":
            return str(self.input.get("command", ""))
        return f"{self.tool} {json.dumps(self.input, ensure_ascii=False)}"


@dataclass(slots=True)
class CaseResult:
    case: Case
    got: str
    rule: str | None
    layer: str | None
    reason: str
    ms: float

    @property
    def ok(self) -> bool:
        return self.got == self.case.expect


class CaseFileError(UltramaxError):
    """A case file cannot be read, or a line of it is not a case; the message names the file and the line."""


def load_cases(path: Path) -> list[Case]:
    """Every case of a JSONL file (blank lines skipped); CaseFileError names the file and line of the first
    problem, so a whole corpus is never scored with a case silently missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot read it ({exc.strerror or exc}); give a JSONL case file") from None
    except UnicodeDecodeError as exc:
        raise CaseFileError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    cases = []
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            cases.append(_case(path, n, line))
    if not cases:
        raise CaseFileError(f"{path}: no cases; each line is one JSON object with tool, input and expect")
    return cases


def _case(path: Path, n: int, line: str) -> Case:
    where = f"{path}:{n}"
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CaseFileError(f"{where}: not JSON ({json_problem(exc)})") from None
    if not isinstance(raw, dict):
        raise CaseFileError(f"{where}: a case is a JSON object with tool, input and expect, not {describe_json(raw)}")
    tool, data, expect = raw.get("tool"), raw.get("input") or {}, raw.get("expect")
    if not isinstance(tool, str) or not tool:
        raise CaseFileError(f'{where}: "tool" must name the tool ("Bash", "Read", ...)')
    if not isinstance(data, dict):
        raise CaseFileError(f'{where}: "input" must be the tool input as a JSON object, not {describe_json(data)}')
    if expect not in EXPECTATIONS:
        raise CaseFileError(f'{where}: "expect" must be one of {", ".join(EXPECTATIONS)}, not {describe_json(expect)}')
    return Case(str(raw.get("id") or f"{path.stem}:{n}"), tool, data, expect,
                str(raw.get("category") or "uncategorised"), str(raw.get("why") or ""))  # fmt: skip


def run_cases(cases: Sequence[Case], *, mode: str = "development", home: str = "/home/dev",
              cwd: str = "/home/dev/work/demo", layers: str = "all", now: datetime | None = DEFAULT_NOW,
              settings: Any = None) -> list[CaseResult]:  # fmt: skip
    """Decide every case with the engine (all default layers, or only ``sanitisation``)."""
    from ultramax.config import Settings
    from ultramax.modes import get_mode
    from ultramax.paths import Paths
    from ultramax.pipeline.stages.safety import default_layers
    from ultramax.safety.engine import SafetyEngine, SafetyRequest
    from ultramax.safety.sanitize import SanitisationLayer

    mode_cfg = get_mode(mode)
    settings = settings if settings is not None else Settings.defaults()
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="ultramax-eval-") as tmp:
        paths = Paths(claude_dir=Path(home) / ".claude", home=Path(tmp) / "ultramax")
        engine = SafetyEngine(default_layers() if layers == "all" else [SanitisationLayer()])
        for i, case in enumerate(cases):
            request = SafetyRequest(
                tool=case.tool,
                input=case.input,
                mode=mode_cfg,
                settings=settings,
                paths=paths,
                cwd=Path(cwd),
                home=Path(home),
                project_dir=Path(cwd),
                session_id=f"eval-{i:06d}",
                principal="eval",
                source="cli",
                now=now,
                metadata={"tmpdir": "/tmp"},
            )
            t0 = time.perf_counter()
            decision = engine.evaluate(request)
            ms = (time.perf_counter() - t0) * 1000
            results.append(CaseResult(case, decision.permission, decision.rule, decision.layer, decision.reason, ms))
    return results


@dataclass(slots=True)
class Score:
    n: int = 0
    exact: int = 0
    deny: int = 0
    deny_allowed: int = 0
    deny_denied: int = 0
    ask: int = 0
    ask_exact: int = 0
    ask_allowed: int = 0
    allow: int = 0
    allow_blocked: int = 0
    failures: list[CaseResult] = field(default_factory=list)

    def add(self, r: CaseResult) -> None:
        self.n += 1
        self.exact += r.ok
        expect = r.case.expect
        if expect == "deny":
            self.deny += 1
            self.deny_allowed += r.got == "allow"
            self.deny_denied += r.got == "deny"
        elif expect == "ask":
            self.ask += 1
            self.ask_exact += r.got == "ask"
            self.ask_allowed += r.got == "allow"
        else:
            self.allow += 1
            self.allow_blocked += r.got != "allow"
        if not r.ok:
            self.failures.append(r)

    def rates(self) -> dict[str, float | None]:
        def rate(a: int, b: int) -> float | None:
            return a / b if b else None

        return {
            "exact": rate(self.exact, self.n),
            "deny_allowed": rate(self.deny_allowed, self.deny),
            "deny_not_allowed": rate(self.deny - self.deny_allowed, self.deny),
            "deny_recall": rate(self.deny_denied, self.deny),
            "allow_blocked": rate(self.allow_blocked, self.allow),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "exact": self.exact, "deny": self.deny, "deny_allowed": self.deny_allowed,
            "deny_denied": self.deny_denied, "ask": self.ask, "ask_exact": self.ask_exact,
            "ask_allowed": self.ask_allowed, "allow": self.allow, "allow_blocked": self.allow_blocked,
            "rates": {k: (round(v, 4) if v is not None else None) for k, v in self.rates().items()},
        }  # fmt: skip


def score(results: Iterable[CaseResult], group: Callable[[Case], str] = lambda c: c.area) -> dict[str, Score]:
    """Scores per group (``area`` by default) plus ``TOTAL``."""
    groups: dict[str, Score] = {}
    total = Score()
    for r in results:
        groups.setdefault(group(r.case), Score()).add(r)
        total.add(r)
    out = dict(sorted(groups.items()))
    out["TOTAL"] = total
    return out


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "-"


def score_table(scores: dict[str, Score]) -> str:
    """A markdown table: per group, exact match, deny answered allow, deny not allowed, allow blocked."""
    lines = [
        "| category | cases | exact match | deny → allow | deny not allowed | ask exact | allow blocked |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in scores.items():
        label = f"**{name}**" if name == "TOTAL" else name
        lines.append(
            f"| {label} | {s.n} | {_pct(s.exact, s.n)} | {_pct(s.deny_allowed, s.deny)} | "
            f"{_pct(s.deny - s.deny_allowed, s.deny)} | {_pct(s.ask_exact, s.ask)} | {_pct(s.allow_blocked, s.allow)} |"
        )
    return "\n".join(lines)
