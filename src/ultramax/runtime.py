"""The engine behind every face: one hook payload in, one rendered reply out.

``Runtime.handle`` is what the daemon runs for each connection and what the hook client runs in-process
when no daemon answers. It parses the payload, finds the project's settings and mode, runs the mode's
pipeline and renders the decision -- and turns every failure into the failure policy's answer, never an
exception, because whatever it returns is what Claude Code sees.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ultramax.audit import AuditLog, digest, policy_record
from ultramax.config import Settings, load_settings, settings_files
from ultramax.decisions import BLOCKABLE_EVENTS, Decision, HookReply, render
from ultramax.errors import AuditError, HookInputError, UltramaxError
from ultramax.events import HookEvent, parse_payload
from ultramax.modes import ModeSelection, detect_mode
from ultramax.observability import Metrics, configure_logging
from ultramax.paths import Paths
from ultramax.pipeline.dispatcher import PERMISSION_EVENTS, Dispatcher
from ultramax.pipeline.middleware import RateLimiter
from ultramax.pipeline.registry import StageRegistry, StageServices, default_registry
from ultramax.pipeline.stage import HookContext

__all__ = ["HookOutcome", "Runtime", "unreadable_files"]

log = logging.getLogger("ultramax.pipeline")


def unreadable_files(settings: Settings) -> list[str]:
    """The settings files that could not be read at all (not valid JSON): their every value is ignored."""
    return [p.file for p in settings.problems if not p.key]


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """A reply plus the context that produced it (for the demo and tests)."""

    reply: HookReply
    ctx: HookContext | None


class Runtime:
    """Warm state for handling hook events: settings cache, pipelines, audit log, metrics."""

    def __init__(
        self,
        paths: Paths | None = None,
        *,
        metrics: Metrics | None = None,
        registry: StageRegistry | None = None,
        configure_logs: bool = True,
    ) -> None:
        self.paths = paths or Paths.from_env()
        self.paths.ensure_home()
        self.metrics = metrics
        self.registry = registry or default_registry()
        base = load_settings(self.paths)  # the user's file: these knobs are per user, not per project
        self.audit = AuditLog(self.paths.audit_log, self.paths.audit_head, fsync=base.get("ultramax.auditFsync"))
        self.services = StageServices(self.paths, self.audit, metrics)
        self._settings_cache: dict[Path | None, tuple[tuple[float, ...], Settings]] = {}
        self._files: dict[Path | None, list[str]] = {}
        self._modes: dict[Path | None, tuple[Settings, ModeSelection]] = {}
        self._good_modes: dict[Path | None, ModeSelection] = {}
        self._pipelines: dict[tuple[str, tuple[str, ...], int], Dispatcher] = {}
        self._limiters: dict[int, RateLimiter] = {}
        self._lock = threading.Lock()
        if configure_logs:
            configure_logging(self.paths.logs_dir, base.get("observability.logLevel"))

    # -- settings and pipelines -------------------------------------------------------------------------
    def settings_for(self, project_dir: Path | None) -> Settings:
        """Effective settings, re-read only when one of the files changed."""
        files = self._files.get(project_dir)
        if files is None:
            files = self._files[project_dir] = [str(f) for f in settings_files(self.paths, project_dir)]
        stamp = tuple(_mtime(f) for f in files)
        with self._lock:
            cached = self._settings_cache.get(project_dir)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        settings = load_settings(self.paths, project_dir)
        for problem in settings.problems:
            log.warning("settings problem", extra={"fields": {"problem": str(problem)}})
        with self._lock:
            self._settings_cache[project_dir] = (stamp, settings)
        return settings

    def pipeline_for(self, selection: ModeSelection, settings: Settings) -> Dispatcher:
        names = tuple(settings.get("ultramax.hookStages") or selection.mode.hook_stages)
        rate = int(settings.get("safety.rateLimitPerMinute"))
        key = (selection.mode.name, names, rate)
        with self._lock:
            dispatcher = self._pipelines.get(key)
            if dispatcher is None:
                stages, missing = self.registry.build(names, self.services)
                limiter = self._limiters.setdefault(rate, RateLimiter(rate, 60.0))
                dispatcher = Dispatcher(stages, rate_limiter=limiter if rate else None, missing=missing)
                self._pipelines[key] = dispatcher
            return dispatcher

    def mode_for(self, project_dir: Path | None, settings: Settings) -> ModeSelection:
        """The project's mode, cached per settings snapshot (a new snapshot is made whenever a file changes)."""
        # keyed by the snapshot object itself, not id(): a freed snapshot's id is reused by a newer one
        cached = self._modes.get(project_dir)
        if cached is not None and cached[0] is settings:
            return cached[1]
        selection = detect_mode(project_dir, settings)
        if unreadable_files(settings):
            # a settings file that does not parse may hold the mode (alphaforge): keep the last mode read from
            # readable settings rather than fall back to the default, and say so (``settings_warning``)
            last = self._good_modes.get(project_dir)
            if last is not None and last.mode.name != selection.mode.name:
                selection = ModeSelection(last.mode, f"{last.source} (kept: settings unreadable)")
        else:
            self._good_modes[project_dir] = selection
        if len(self._modes) > 1024:
            self._modes.clear()
            self._good_modes.clear()
        self._modes[project_dir] = (settings, selection)
        return selection

    def strict_for(self, project_hint: str | None) -> bool:
        """Whether the project's mode denies when in doubt (trading); True if even that cannot be told."""
        project_dir = Path(project_hint) if project_hint else None
        try:
            return self.mode_for(project_dir, self.settings_for(project_dir)).mode.strict
        except UltramaxError:
            return True

    def breaker_snapshots(self) -> dict[str, dict[str, object]]:
        """Circuit-breaker state of every stage of every pipeline built so far, keyed ``mode/stage``."""
        with self._lock:
            pipelines = list(self._pipelines.items())
        return {f"{key[0]}/{name}": b.snapshot() for key, d in pipelines for name, b in d.breakers.items()}

    def needs_worker(self, event: str | None) -> bool:
        """Whether a pipeline may block on ``event`` (a stage marked ``blocking``): then callers use a worker
        thread. Unknown event names are assumed to block."""
        with self._lock:
            pipelines = list(self._pipelines.values())
        return not pipelines or any(d.blocking_for(event or "") for d in pipelines)

    # -- the hook entry point -----------------------------------------------------------------------------
    def handle(
        self,
        event_name: str | None,
        raw: bytes,
        *,
        peer_uid: int | None = None,
        project_hint: str | None = None,
        fallback: str | None = None,
    ) -> HookOutcome:
        """Decide one hook event. Never raises: failures become the failure policy's reply.

        ``fallback`` says why no daemon answered, when the hook client decides the event in-process; the audit
        record carries it."""
        started = time.perf_counter_ns()
        project_dir = Path(project_hint) if project_hint else None
        try:
            settings = self.settings_for(project_dir)
            event = parse_payload(raw, event_name, max_bytes=settings.get("ultramax.maxPayloadBytes"))
        except HookInputError as exc:
            return HookOutcome(self._refuse_input(event_name, raw, project_dir, str(exc), fallback=fallback), None)
        try:
            project_dir = project_dir or (Path(event.cwd) if event.cwd else None)
            if project_hint is None and project_dir is not None:
                settings = self.settings_for(project_dir)
            selection = self.mode_for(project_dir, settings)
            ctx = HookContext(
                event=event,
                paths=self.paths,
                settings=settings,
                mode=selection.mode,
                mode_source=selection.source,
                project_dir=project_dir,
                input_digest=digest(raw),
                peer_uid=peer_uid,
                started_ns=started,
                fallback=fallback,
            )
            self.pipeline_for(selection, settings).run(ctx)
            broken = unreadable_files(settings)
            if broken and ctx.decision.system_message is None:
                ctx.decision.system_message = (
                    f"ultramax warning: {broken[0]} is not valid JSON, so its settings are ignored (mode in use: "
                    f"{selection.mode.name}); fix it by hand -- `ultramax config validate` shows where"
                )
            return HookOutcome(render(event.hook_event_name, ctx.decision), ctx)
        except Exception as exc:  # top-level handler: a bug here must not crash Claude Code's session
            log.exception("hook handling failed", extra={"fields": {"event": event_name}})
            reply = self._refuse_input(event_name, raw, project_dir, f"internal error: {exc}", event, fallback=fallback)
            return HookOutcome(reply, None)

    def _refuse_input(
        self,
        event_name: str | None,
        raw: bytes,
        project_dir: Path | None,
        message: str,
        event: HookEvent | None = None,
        *,
        fallback: str | None = None,
    ) -> HookReply:
        """The failure policy for input ultramax could not judge: audited, then continue or deny."""
        strict = self.strict_for(str(project_dir) if project_dir else None)
        name = event_name or (event.hook_event_name if event else "unknown")
        if self.metrics is not None:
            self.metrics.errors.labels("input").inc()
        rule = "failure_policy.input"
        decision = Decision(reason=f"ultramax: {message}", stage="input", rule=rule)
        if strict and name in PERMISSION_EVENTS:
            decision.permission = "deny"
        elif strict and name in BLOCKABLE_EVENTS:
            decision.block = True
        entry = policy_record(name, decision.outcome, "input", rule, message, raw=raw, fallback=fallback)
        try:
            self.audit.append(entry)
        except AuditError as exc:
            message += f"; and the audit log could not record it: {exc}"
        log.warning("hook input refused", extra={"fields": {"event": name, "error": message}})
        if decision.outcome != "continue":
            reply = render(name, decision)
            return HookReply(reply.exit_code, reply.stdout, f"ultramax: {message}\n")
        return HookReply(0, "", f"ultramax: {message} -- the event continues (failure policy)\n")


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1.0
