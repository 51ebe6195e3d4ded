"""The dispatcher, the built-in stages and the Runtime, under the failure policy of ARCHITECTURE.md."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.conftest import ContextFactory, PayloadFactory, UltramaxEnv
from ultramax.audit import AuditLog, verify
from ultramax.events import PreToolUse, parse_event
from ultramax.observability import Metrics
from ultramax.pipeline.dispatcher import Dispatcher
from ultramax.pipeline.middleware import RateLimiter, RetryPolicy
from ultramax.pipeline.registry import StageRegistry, StageServices, default_registry
from ultramax.pipeline.stage import HookContext, Stage, StageOutput, StageResult, TransientStageError
from ultramax.pipeline.stages import AuditStage, TelemetryStage
from ultramax.runtime import Runtime
from ultramax.safety.killswitch import KillSwitch


@dataclass
class Probe:
    """A stage that notes each call and answers from a script (an output, or an exception to raise)."""

    name: str
    phase: Literal["decide", "record"] = "decide"
    answer: StageOutput | BaseException | Callable[[HookContext], StageOutput] = field(default_factory=StageOutput)
    critical: bool = False
    calls: list[str] = field(default_factory=list)

    def process(self, ctx: HookContext) -> StageOutput:
        self.calls.append(ctx.event.session_id)
        if isinstance(self.answer, BaseException):
            raise self.answer
        if callable(self.answer):
            return self.answer(ctx)
        return self.answer


def ran(ctx: HookContext) -> list[str]:
    return [f"{r.stage}:{r.result}" for r in ctx.trace]


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def audit_log(umx: UltramaxEnv) -> AuditLog:
    umx.paths.ensure_home()
    return AuditLog(umx.paths.audit_log, umx.paths.audit_head)


# -- the dispatcher --------------------------------------------------------------------------------------
def test_decide_stages_run_in_order_then_record_stages(make_context: ContextFactory) -> None:
    stages: list[Stage] = [
        Probe("telemetry", "record"),
        Probe("auth"),
        Probe("audit", "record"),
        Probe("safety"),
        Probe("enrich"),
    ]
    dispatcher = Dispatcher(stages)
    assert dispatcher.stage_names == ["auth", "safety", "enrich", "telemetry", "audit"]
    ctx = dispatcher.run(make_context())
    assert ran(ctx) == ["auth:continue", "safety:continue", "enrich:continue", "telemetry:continue", "audit:continue"]
    assert ctx.decision.outcome == "continue"
    assert ctx.started_ns > 0


def test_a_block_stops_the_decide_stages_but_audit_and_telemetry_still_record_it(
    make_context: ContextFactory, audit_log: AuditLog
) -> None:
    later = Probe("enrich")
    metrics = Metrics()
    dispatcher = Dispatcher(
        [
            Probe("auth"),
            Probe("safety", answer=StageOutput.block("rm -rf / is destructive", rule="shell.rm_root")),
            later,
            AuditStage(audit_log),
            TelemetryStage(metrics),
        ]
    )
    ctx = dispatcher.run(make_context("PreToolUse", tool_input={"command": "rm -rf /"}))
    assert later.calls == []
    assert ran(ctx) == ["auth:continue", "safety:block", "audit:continue", "telemetry:continue"]
    d = ctx.decision
    assert (d.permission, d.stage, d.rule, d.reason) == ("deny", "safety", "shell.rm_root", "rm -rf / is destructive")
    [record] = read_log(audit_log.path)
    assert record["decision"] == "deny"
    assert record["stage"] == "safety"
    assert record["rule"] == "shell.rm_root"
    assert record["summary"] == "Bash command=rm -rf /"
    assert record["stages"] == ["auth:continue", "safety:block"]
    assert ctx.metadata["audit_seq"] == 1
    assert (
        metrics.registry.get_sample_value("ultramax_decisions_total", {"event": "PreToolUse", "outcome": "deny"}) == 1.0
    )


def test_a_block_that_asks_is_rendered_as_ask(make_context: ContextFactory) -> None:
    ctx = Dispatcher([Probe("safety", answer=StageOutput.block("sudo", permission="ask"))]).run(make_context())
    assert ctx.decision.permission == "ask"


def test_a_block_on_a_prompt_blocks_the_prompt(make_context: ContextFactory) -> None:
    ctx = Dispatcher([Probe("safety", answer=StageOutput.block("secret in prompt"))]).run(
        make_context("UserPromptSubmit")
    )
    assert ctx.decision.block is True
    assert ctx.decision.permission is None


def test_skip_ends_the_decide_stages_without_a_verdict(make_context: ContextFactory) -> None:
    later = Probe("safety")
    recorder = Probe("audit", "record")
    ctx = Dispatcher([Probe("cache", answer=StageOutput(StageResult.SKIP)), later, recorder]).run(make_context())
    assert later.calls == []
    assert recorder.calls == [ctx.event.session_id]
    assert ctx.decision.outcome == "continue"


def test_modify_replaces_the_event_for_the_stages_after_it(make_context: ContextFactory) -> None:
    ctx0 = make_context()
    rewritten = parse_event({**ctx0.event.to_dict(), "tool_input": {"command": "npm test -- --runInBand"}})

    seen: list[str] = []

    def look(ctx: HookContext) -> StageOutput:
        assert isinstance(ctx.event, PreToolUse)
        seen.append(ctx.event.tool_input["command"])
        return StageOutput()

    ctx = Dispatcher(
        [Probe("rewrite", answer=StageOutput(StageResult.MODIFY, event=rewritten)), Probe("safety", answer=look)]
    ).run(ctx0)
    assert seen == ["npm test -- --runInBand"]
    assert ctx.event is rewritten


def test_context_and_metadata_from_stages_are_collected(make_context: ContextFactory) -> None:
    ctx = Dispatcher(
        [
            Probe("memory", answer=StageOutput(context="You fixed this bug on Monday.", metadata={"hits": 2})),
            Probe("skills", answer=StageOutput(context="Skill: code-master", metadata={"skills": 1})),
        ]
    ).run(make_context("UserPromptSubmit"))
    assert ctx.decision.additional_context == ["You fixed this bug on Monday.", "Skill: code-master"]
    assert ctx.metadata == {"hits": 2, "skills": 1}


@pytest.mark.parametrize(
    ("mode", "verdict"), [("development", "ask"), ("state-of-witness", "ask"), ("alphaforge", "deny")]
)
def test_a_critical_stage_that_raises_asks_in_lenient_modes_and_denies_in_trading(
    make_context: ContextFactory, mode: str, verdict: str
) -> None:
    ctx = Dispatcher(
        [Probe("safety", answer=RuntimeError("parser crashed"), critical=True), Probe("audit", "record")]
    ).run(make_context(mode=mode))
    d = ctx.decision
    assert d.permission == verdict
    assert d.rule == "failure_policy"
    assert d.reason is not None
    assert "internal error in stage safety (RuntimeError: parser crashed)" in d.reason
    assert ctx.errors == ["safety: RuntimeError: parser crashed"]
    assert ran(ctx) == ["safety:error", "audit:continue"]


def test_a_deny_from_a_failed_critical_stage_stops_the_stages_after_it(make_context: ContextFactory) -> None:
    later = Probe("enrich")
    Dispatcher([Probe("safety", answer=ValueError("x"), critical=True), later]).run(make_context(mode="alphaforge"))
    assert later.calls == []


def test_a_critical_failure_outside_permission_events_lets_the_event_continue(make_context: ContextFactory) -> None:
    ctx = Dispatcher([Probe("safety", answer=RuntimeError("boom"), critical=True)]).run(
        make_context("UserPromptSubmit", mode="alphaforge")
    )
    assert ctx.decision.outcome == "continue"
    assert ctx.errors == ["safety: RuntimeError: boom"]


def test_a_non_critical_stage_that_raises_is_recorded_and_the_pipeline_continues(
    make_context: ContextFactory,
) -> None:
    after = Probe("safety")
    ctx = Dispatcher([Probe("memory_sync", answer=OSError("database is locked")), after]).run(
        make_context(mode="alphaforge")
    )
    assert after.calls == [ctx.event.session_id]
    assert ctx.decision.outcome == "continue"
    assert ctx.errors == ["memory_sync: OSError: database is locked"]
    assert ctx.trace[0].message == "OSError: database is locked"


def test_a_stage_failing_at_session_start_tells_the_user_once_and_the_session_goes_on(
    make_context: ContextFactory,
) -> None:
    broken = OSError("memory.db: database disk image is malformed")
    start = Dispatcher([Probe("memory_sync", answer=broken)]).run(make_context("SessionStart"))
    assert start.decision.outcome == "continue"
    assert start.decision.system_message is not None
    assert "memory_sync failed: OSError: memory.db: database disk image is malformed" in start.decision.system_message
    prompt = Dispatcher([Probe("memory_sync", answer=broken)]).run(make_context("UserPromptSubmit"))
    assert prompt.decision.system_message is None  # not on every prompt


def test_the_circuit_breaker_opens_after_n_failures_and_then_short_circuits(make_context: ContextFactory) -> None:
    flaky = Probe("memory_sync", answer=ConnectionError("letta is down"))
    dispatcher = Dispatcher([flaky], breaker_threshold=3, breaker_reset=60.0)
    contexts = [dispatcher.run(make_context(session_id=f"s{i}")) for i in range(6)]
    assert flaky.calls == ["s0", "s1", "s2"], "after three failures the stage is not called any more"
    assert dispatcher.breakers["memory_sync"].is_open
    last = contexts[-1]
    assert last.errors == [
        "memory_sync: circuit breaker for memory_sync is open after 3 failures (last: ConnectionError: letta is down)"
    ]
    assert last.decision.outcome == "continue"


def test_an_open_breaker_on_a_critical_stage_is_handled_by_the_failure_policy(make_context: ContextFactory) -> None:
    dispatcher = Dispatcher([Probe("safety", answer=RuntimeError("bug"), critical=True)], breaker_threshold=1)
    dispatcher.run(make_context())
    ctx = dispatcher.run(make_context(mode="alphaforge"))
    assert ctx.decision.permission == "deny"
    assert ctx.decision.reason is not None
    assert "circuit breaker for safety is open" in ctx.decision.reason


def test_a_transient_failure_is_retried_with_backoff(make_context: ContextFactory) -> None:
    failures = [TransientStageError("busy"), TransientStageError("busy")]

    def answer(ctx: HookContext) -> StageOutput:
        if failures:
            raise failures.pop()
        return StageOutput(context="recalled")

    sleeps: list[float] = []
    stage = Probe("memory_sync", answer=answer)
    ctx = Dispatcher([stage], retry=RetryPolicy(attempts=3, base_delay=0.05, sleep=sleeps.append)).run(make_context())
    assert len(stage.calls) == 3
    assert sleeps == [0.05, 0.1]
    assert ctx.errors == []
    assert ctx.decision.additional_context == ["recalled"]


def test_retries_that_run_out_are_a_stage_failure(make_context: ContextFactory) -> None:
    sleeps: list[float] = []
    stage = Probe("memory_sync", answer=TransientStageError("still busy"))
    ctx = Dispatcher([stage], retry=RetryPolicy(attempts=2, sleep=sleeps.append)).run(make_context())
    assert len(stage.calls) == 2
    assert len(sleeps) == 1
    assert ctx.errors == ["memory_sync: TransientStageError: still busy"]


def test_the_rate_limiter_refuses_a_busy_session_but_not_another(make_context: ContextFactory) -> None:
    now = [1000.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    recorder = Probe("audit", "record")
    dispatcher = Dispatcher([Probe("safety"), recorder], rate_limiter=limiter)

    outcomes = [dispatcher.run(make_context(session_id="busy")).decision for _ in range(3)]
    assert [d.outcome for d in outcomes] == ["continue", "continue", "deny"]
    reason = outcomes[2].reason or ""
    assert reason.startswith("rate limit: more than 2 PreToolUse events per minute in this session")
    assert outcomes[2].rule == "middleware.rate_limit"
    assert len(recorder.calls) == 3, "a refused event is still recorded"

    assert dispatcher.run(make_context(session_id="quiet")).decision.outcome == "continue"
    now[0] += 30.0  # half a minute refills one token
    assert dispatcher.run(make_context(session_id="busy")).decision.outcome == "continue"
    assert dispatcher.run(make_context(session_id="busy")).decision.outcome == "deny"


def test_a_rate_limited_event_that_cannot_be_denied_just_skips_the_decide_stages(
    make_context: ContextFactory,
) -> None:
    limiter = RateLimiter(1, 60.0, clock=lambda: 0.0)
    decide = Probe("memory")
    dispatcher = Dispatcher([decide], rate_limiter=limiter)
    dispatcher.run(make_context("UserPromptSubmit"))
    ctx = dispatcher.run(make_context("UserPromptSubmit"))
    assert len(decide.calls) == 1
    assert ctx.decision.outcome == "continue"
    assert ctx.errors and ctx.errors[0].startswith("rate limit")


def broken_audit(umx: UltramaxEnv) -> AuditStage:
    blocker = umx.root / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    return AuditStage(AuditLog(blocker / "audit.jsonl"))


def test_an_audit_failure_denies_in_trading_mode(make_context: ContextFactory, umx: UltramaxEnv) -> None:
    ctx = Dispatcher([Probe("safety"), broken_audit(umx)]).run(make_context(mode="alphaforge"))
    d = ctx.decision
    assert d.permission == "deny"
    assert d.reason is not None
    assert "audit failed" in d.reason
    assert "trading mode denies what it cannot record" in d.reason
    assert ctx.errors[0].startswith("audit: AuditError: cannot open audit log")


def test_an_audit_failure_warns_the_user_in_development_mode(make_context: ContextFactory, umx: UltramaxEnv) -> None:
    ctx = Dispatcher([Probe("safety"), broken_audit(umx)]).run(make_context())
    d = ctx.decision
    assert d.permission is None
    assert d.system_message is not None
    assert d.system_message.startswith("ultramax warning: audit failed: AuditError: cannot open audit log")


# -- the registry ----------------------------------------------------------------------------------------
def test_unregistered_stage_names_are_reported_missing_and_not_run(umx: UltramaxEnv, audit_log: AuditLog) -> None:
    registry = StageRegistry()
    registry.register("auth", lambda services: Probe("auth"))
    registry.register("audit", lambda services: AuditStage(services.audit))
    stages, missing = registry.build(
        ["auth", "memory_sync", "audit", "trading_safety"], StageServices(umx.paths, audit_log)
    )
    assert [s.name for s in stages] == ["auth", "audit"]
    assert missing == ["memory_sync", "trading_safety"]
    dispatcher = Dispatcher(stages, missing=missing)
    assert dispatcher.missing == ["memory_sync", "trading_safety"]
    assert dispatcher.stage_names == ["auth", "audit"]


def test_a_stage_name_cannot_be_registered_twice_by_accident() -> None:
    registry = StageRegistry()
    registry.register("auth", lambda services: Probe("auth"))
    with pytest.raises(ValueError, match="'auth' is already registered"):
        registry.register("auth", lambda services: Probe("auth2"))
    registry.register("auth", lambda services: Probe("auth2"), replace=True)
    assert "auth" in registry
    assert registry.names() == ["auth"]


def test_the_default_registry_has_the_built_in_stages() -> None:
    assert {"auth_validation", "safety", "enrichment", "audit", "telemetry"} <= set(default_registry().names())


# -- the Runtime: payload in, reply out -------------------------------------------------------------------
@pytest.fixture
def runtime(umx: UltramaxEnv) -> Runtime:
    return Runtime(umx.paths, metrics=Metrics())


def handle(runtime: Runtime, data: dict[str, Any], project: Path | None = None) -> dict[str, Any] | None:
    outcome = runtime.handle(
        data["hook_event_name"], json.dumps(data).encode(), project_hint=str(project) if project else None
    )
    assert outcome.reply.exit_code == 0
    return json.loads(outcome.reply.stdout) if outcome.reply.stdout else None


def permission_of(reply: dict[str, Any] | None) -> str | None:
    if reply is None:
        return None
    value = reply["hookSpecificOutput"]["permissionDecision"]
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    ("tool", "tool_input"), [("Bash", {"command": "git push"}), ("Write", {"file_path": "/w/a", "content": "x"})]
)
def test_the_kill_switch_denies_changes_in_development_mode(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory, tool: str, tool_input: dict[str, Any]
) -> None:
    KillSwitch(umx.paths.kill_switch).engage("incident 42")
    reply = handle(runtime, make_payload("PreToolUse", tool_name=tool, tool_input=tool_input), umx.project("webapp"))
    assert permission_of(reply) == "deny"
    assert reply is not None
    reason = reply["hookSpecificOutput"]["permissionDecisionReason"]
    assert "KILL SWITCH is on" in reason
    assert "incident 42" in reason
    assert "ultramax kill off" in reason


def test_the_kill_switch_lets_reads_through_in_development_mode(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    payload = make_payload("PreToolUse", tool_name="Read", tool_input={"file_path": "/home/dev/work/demo/README.md"})
    assert handle(runtime, payload, umx.project("webapp")) is None


def test_the_kill_switch_denies_reads_too_in_the_alphaforge_mode(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    project = umx.project("alphaforge")
    payload = make_payload(
        "PreToolUse", cwd=str(project), tool_name="Read", tool_input={"file_path": f"{project}/a.py"}
    )
    reply = handle(runtime, payload, project)
    assert permission_of(reply) == "deny"
    assert reply is not None
    assert "all tool calls are blocked" in reply["hookSpecificOutput"]["permissionDecisionReason"]


def test_releasing_the_kill_switch_takes_effect_on_the_next_call(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    switch = KillSwitch(umx.paths.kill_switch)
    switch.engage()
    assert permission_of(handle(runtime, make_payload("PreToolUse"))) == "deny"
    assert switch.release() is True
    assert handle(runtime, make_payload("PreToolUse")) is None
    assert switch.release() is False


def test_every_handled_event_is_audited_with_a_redacted_summary(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    handle(runtime, make_payload("PreToolUse", tool_input={"command": "DB_PASSWORD=hunter22 ./migrate"}))
    handle(runtime, make_payload("UserPromptSubmit", prompt="use token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"))
    records = read_log(umx.paths.audit_log)
    assert [r["summary"] for r in records] == [
        "Bash command=DB_PASSWORD=[REDACTED:secret] ./migrate",
        "prompt: use token [REDACTED:github-token]",
    ]
    assert "hunter22" not in umx.paths.audit_log.read_text(encoding="utf-8")
    assert records[0]["mode"] == "development"
    assert records[0]["session"] == "658ea207-91bb-41ad-88e9-9a85c21e6c99"
    assert verify(umx.paths.audit_log).ok


def test_session_start_gets_a_briefing_of_the_guardrails(runtime: Runtime, make_payload: PayloadFactory) -> None:
    reply = handle(runtime, make_payload("SessionStart"))
    assert reply is not None
    context = reply["hookSpecificOutput"]["additionalContext"]
    assert "development mode" in context


def test_the_trading_pipeline_has_every_engine_it_names(runtime: Runtime, umx: UltramaxEnv) -> None:
    from ultramax.modes import detect_mode

    project = umx.project("alphaforge")
    settings = runtime.settings_for(project)
    dispatcher = runtime.pipeline_for(detect_mode(project, settings), settings)
    assert dispatcher.missing == []  # the trading layers run inside the safety stage
    assert dispatcher.stage_names[:2] == ["auth_validation", "safety"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "hook input is empty"),
        (b"{not json", "hook input is not valid JSON"),
        (b'{"hook_event_name": "Stop"}', "hook input says"),
    ],
)
def test_malformed_input_continues_with_a_clear_error_in_development_and_is_audited(
    runtime: Runtime, umx: UltramaxEnv, raw: bytes, message: str
) -> None:
    reply = runtime.handle("PreToolUse", raw, project_hint=str(umx.project("webapp"))).reply
    assert (reply.exit_code, reply.stdout) == (0, "")
    assert reply.stderr.startswith(f"ultramax: {message}")
    assert reply.stderr.endswith("-- the event continues (failure policy)\n")
    assert reply.stderr.count("\n") == 1
    [record] = read_log(umx.paths.audit_log)
    assert (record["event"], record["decision"], record["rule"]) == ("PreToolUse", "continue", "failure_policy.input")
    assert record["input_bytes"] == len(raw)


def test_malformed_input_is_denied_in_trading_mode(runtime: Runtime, umx: UltramaxEnv) -> None:
    reply = runtime.handle("PreToolUse", b"{not json", project_hint=str(umx.project("alphaforge"))).reply
    out = json.loads(reply.stdout)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "not valid JSON" in out["hookSpecificOutput"]["permissionDecisionReason"]
    assert reply.stderr.startswith("ultramax: hook input is not valid JSON")
    assert read_log(umx.paths.audit_log)[0]["decision"] == "deny"


def test_malformed_tool_input_asks_in_development_and_denies_in_trading(
    runtime: Runtime, umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    payload = make_payload("PreToolUse", tool_input={"cmd": "ls"})
    assert permission_of(handle(runtime, payload, umx.project("webapp"))) == "ask"
    assert permission_of(handle(runtime, payload, umx.project("alphaforge"))) == "deny"


def test_the_user_settings_configure_the_runtime(umx: UltramaxEnv) -> None:
    umx.update_user_settings({"ultramax": {"auditFsync": True}})
    assert Runtime(umx.paths).audit.fsync is True


def test_each_project_gets_its_own_rate_limit(umx: UltramaxEnv, runtime: Runtime, make_payload: PayloadFactory) -> None:
    tight = umx.project("tight", {"safety": {"rateLimitPerMinute": 1}})
    loose = umx.project("loose")
    first = make_payload("PreToolUse", session_id="s-loose")
    for _ in range(3):
        assert handle(runtime, first, loose) is None
    second = make_payload("PreToolUse", session_id="s-tight")
    assert handle(runtime, second, tight) is None
    assert permission_of(handle(runtime, second, tight)) == "deny"


def test_settings_are_reread_when_a_file_changes(
    umx: UltramaxEnv, runtime: Runtime, make_payload: PayloadFactory
) -> None:
    project = umx.project("webapp")
    payload = make_payload("PreToolUse", tool_name="WebFetch", tool_input={"url": "https://example.com", "prompt": "x"})
    assert handle(runtime, payload, project) is None
    settings = project / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"safety": {"allowedTools": ["Read", "Bash"]}}), encoding="utf-8")
    reply = handle(runtime, payload, project)
    assert permission_of(reply) == "deny"
    assert reply is not None
    assert "not in safety.allowedTools" in reply["hookSpecificOutput"]["permissionDecisionReason"]


def test_a_command_with_a_lone_surrogate_is_still_audited(runtime: Runtime, umx: UltramaxEnv) -> None:
    raw = (
        b'{"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Bash",'
        b' "tool_input": {"command": "printf \\udc80"}}'
    )
    for project in (umx.project("webapp"), umx.project("alphaforge")):
        reply = runtime.handle("PreToolUse", raw, project_hint=str(project)).reply
        assert (reply.exit_code, reply.stdout, reply.stderr) == (0, "", ""), "audited, so nothing to warn or deny"
    assert [r["summary"] for r in read_log(umx.paths.audit_log)] == ["Bash command=printf \ufffd"] * 2


def test_switching_a_projects_mode_back_and_forth_always_takes_effect(runtime: Runtime, umx: UltramaxEnv) -> None:
    project = umx.project("desk")
    marker = project / ".claude" / "settings.json"
    marker.parent.mkdir()
    modes = ["development", "alphaforge", "state-of-witness"]
    wrong = []
    for i in range(900):
        marker.write_text(json.dumps({"ultramax": {"mode": modes[i % 3]}}), encoding="utf-8")
        os.utime(marker, ns=(i * 10**9, i * 10**9))  # a new mtime every time, as an editor would leave
        got = runtime.mode_for(project, runtime.settings_for(project)).mode.name
        if got != modes[i % 3]:
            wrong.append((i, got))
    assert wrong == []
