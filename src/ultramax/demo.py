"""``ultramax demo``: replay a recorded Claude Code session through the whole pipeline and show each stage.

The recording (``data/demo-session.jsonl``) has the format of real hook payloads captured from Claude Code,
one per line, with ``{{HOME}}``/``{{WORK}}`` placeholders for paths, plus a few directive lines
(``{"demo": ...}``) that flip the kill switch, print a note or send a malformed payload. Everything runs in a
fresh temporary home, so the demo never touches the user's own settings, audit log or kill switch.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ultramax.audit import verify
from ultramax.errors import UltramaxError
from ultramax.paths import Paths
from ultramax.pipeline.stages.audit import summarize
from ultramax.runtime import Runtime
from ultramax.safety.killswitch import KillSwitch

__all__ = ["DemoStep", "load_recording", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One line of the recording: a hook payload to replay (``raw``) or a directive."""

    kind: str  # "event" | "raw" | "note" | "kill_on" | "kill_off"
    event: str | None = None
    raw: bytes = b""
    text: str = ""
    project: str | None = None  # what Claude Code passes as CLAUDE_PROJECT_DIR


def load_recording(home: Path, work: Path, text: str | None = None) -> Iterator[DemoStep]:
    if text is None:
        text = resources.files("ultramax").joinpath("data/demo-session.jsonl").read_text(encoding="utf-8")
    text = text.replace("{{HOME}}", str(home)).replace("{{WORK}}", str(work))
    for line in text.splitlines():
        if not line.strip():
            continue
        data: dict[str, Any] = json.loads(line)
        directive = data.get("demo")
        if directive is None:
            yield DemoStep("event", data["hook_event_name"], line.encode(), project=data.get("cwd"))
        elif directive == "raw":
            yield DemoStep("raw", data["event"], str(data["data"]).encode(), project=data.get("project"))
        else:
            yield DemoStep(str(directive), text=str(data.get("text") or data.get("reason") or ""))


@contextlib.contextmanager
def _home_of(paths: Paths) -> Iterator[None]:
    """Point this process's ultramax and Claude Code locations at the demo's home while it runs, so what reads
    them from the environment (the safety data's parse cache, the log folder) writes there too."""
    names = {"CLAUDE_CONFIG_DIR": str(paths.claude_dir), "ULTRAMAX_HOME": str(paths.home)}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(out: Callable[[str], None] = print, *, keep: Path | None = None) -> bool:
    """Replay the recording in a temporary home; return True if the audit chain verified at the end."""
    with tempfile.TemporaryDirectory(prefix="ultramax-demo-") as tmp:
        base = keep or Path(tmp)
        home, work = base / "home", base / "work"
        paths = Paths(claude_dir=home / ".claude", home=home / ".claude" / "ultramax")
        try:
            for folder in (work / "acme-api", work / "alphaforge", home / ".claude"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a --keep that is a file, or somewhere the user cannot write
            raise UltramaxError(
                f"cannot keep the demo's files in {base}: {exc.strerror or exc} ({exc.filename}); "
                "give a folder you can write (it is made if missing)"
            ) from None
        with _home_of(paths):
            return _replay(paths, base, home, work, out)


def _replay(paths: Paths, base: Path, home: Path, work: Path, out: Callable[[str], None]) -> bool:
    (home / ".claude" / "settings.json").write_text('{"observability": {"metricsPort": 0}}\n')
    runtime = Runtime(paths)
    switch = KillSwitch(paths.kill_switch)
    out(f"ultramax demo: replaying a recorded Claude Code session in {base}")
    counts: dict[str, int] = {}
    mode_shown = ""
    for step in load_recording(home, work):
        if step.kind == "note":
            out(f"\n== {step.text}")
            continue
        if step.kind == "kill_on":
            switch.engage(step.text)
            out(f"   ! kill switch ON ({step.text})")
            continue
        if step.kind == "kill_off":
            switch.release()
            out("   ! kill switch off")
            continue
        outcome = runtime.handle(step.event, step.raw, project_hint=step.project)
        ctx, reply = outcome.ctx, outcome.reply
        if ctx is None:
            decision = "deny" if '"deny"' in reply.stdout else "continue"
            out(f"-> {step.event:<17} (malformed payload) {reply.stderr.strip()}")
        else:
            decision = ctx.decision.outcome
            if ctx.mode.name != mode_shown:
                mode_shown = ctx.mode.name
                out(f"   mode: {ctx.mode.name} ({ctx.mode_source}), failure policy {ctx.mode.failure_policy}")
            out(f"-> {ctx.event_name:<17} {summarize(ctx)}")
            out("     " + " | ".join(f"{r.stage} {r.result} {r.ms:.2f}ms" for r in ctx.trace))
            if ctx.decision.reason:
                out(f"     reason: {ctx.decision.reason}")
        counts[decision] = counts.get(decision, 0) + 1
        shown = reply.stdout.strip()
        shown = shown if len(shown) <= 220 else shown[:219] + "…"
        out(f"     decision: {decision}" + (f"   stdout: {shown}" if shown else ""))
    report = verify(paths.audit_log, paths.audit_head)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out(f"\n{sum(counts.values())} hook events replayed: {summary}")
    if report.ok:
        out(f"audit chain verified: {report.records} records, hash-chained, none edited, deleted or reordered")
    else:
        out("audit chain BROKEN: " + "; ".join(report.problems))
    out(_tamper_check(paths))
    return report.ok


def _tamper_check(paths: Paths) -> str:
    """Show that verification catches an edit: rewrite one decision in a copy of the log."""
    lines = paths.audit_log.read_text(encoding="utf-8").splitlines(keepends=True)
    victim = next((i for i, line in enumerate(lines) if '"decision":"deny"' in line), None)
    if victim is None:
        return ""
    lines[victim] = lines[victim].replace('"decision":"deny"', '"decision":"continue"')
    copy = paths.home / "audit-tampered.jsonl"
    copy.write_text("".join(lines), encoding="utf-8")
    problems = verify(copy, paths.audit_head).problems
    copy.unlink()
    return "tamper check: a copy with one deny rewritten as continue fails verification -> " + "; ".join(problems)
