"""The skills stage: resolved skills arrive with the prompt, within the hook output cap, once per session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tests.conftest import ContextFactory, PayloadFactory, UltramaxEnv
from tests.skills.helpers import write_graph
from ultramax.config import load_settings
from ultramax.decisions import CONTEXT_CAP, render
from ultramax.modes import load_modes
from ultramax.pipeline.dispatcher import Dispatcher
from ultramax.pipeline.registry import default_registry
from ultramax.pipeline.stage import HookContext, Stage, StageOutput
from ultramax.pipeline.stages import SkillsStage
from ultramax.runtime import Runtime
from ultramax.skills.engine import SkillEngine

PROMPT = "fix the failing auth tests"  # the shared fixture's UserPromptSubmit prompt


def stage_for(umx: UltramaxEnv) -> SkillsStage:
    return SkillsStage(SkillEngine(umx.claude_dir))


def additional_context(ctx: HookContext) -> str:
    reply = render(ctx.event_name, ctx.decision)
    data = json.loads(reply.stdout)
    text = data["hookSpecificOutput"]["additionalContext"]
    assert isinstance(text, str)
    return text


@dataclass
class Filler:
    """A stage before skills that already used most of the hook's output (as memory would)."""

    size: int
    name: str = "filler"
    phase: Literal["decide", "record"] = "decide"

    def process(self, ctx: HookContext) -> StageOutput:
        return StageOutput(context="m" * self.size)


def test_every_mode_runs_the_skills_stage_right_after_enrichment() -> None:
    for mode in load_modes().values():
        stages = list(mode.hook_stages)
        assert stages[stages.index("enrichment") + 1] == "skills", mode.name
    assert "skills" in default_registry()


def test_a_prompt_gets_its_skills_dependencies_first(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    ctx = make_context("UserPromptSubmit", prompt="We're deploying the backtesting service today")
    out = stage_for(umx).process(ctx)
    assert out.metadata["skills"] == [
        "system-architect",
        "devops-engineer",
        "safety-guardian",
        "trading-strategist",
    ]
    assert out.context is not None
    positions = [out.context.index(f'<skill name="{n}"') for n in out.metadata["skills"]]
    assert positions == sorted(positions)
    assert "Design before building" in out.context  # the shipped system-architect text


def test_the_runtime_injects_skills_on_userpromptsubmit(umx: UltramaxEnv, make_payload: PayloadFactory) -> None:
    runtime = Runtime(umx.paths, configure_logs=False)
    data = make_payload("UserPromptSubmit", session_id="s-runtime")
    outcome = runtime.handle("UserPromptSubmit", json.dumps(data).encode())
    reply = json.loads(outcome.reply.stdout)
    context = reply["hookSpecificOutput"]["additionalContext"]
    assert reply["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    assert context.startswith("[ultramax skills] Expertise loaded for this prompt, dependencies first: ")
    assert '<skill name="system-architect"' in context and '<skill name="code-master"' in context
    assert outcome.ctx is not None and "skills:continue" in [f"{r.stage}:{r.result}" for r in outcome.ctx.trace]


def test_other_events_get_nothing(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    stage = stage_for(umx)
    for event in ("PreToolUse", "PostToolUse", "Stop", "SessionStart"):
        assert stage.process(make_context(event)).context is None


def test_the_injected_context_stays_under_the_cap_whatever_came_before(
    umx: UltramaxEnv, make_context: ContextFactory
) -> None:
    prompt = "Before we deploy the new strategy, audit the position limits and write tests for the risk checks"
    engine = SkillEngine(umx.claude_dir)
    for used in (0, 1000, 3000, 5000, 7000, 9000, 9700, 10_000):
        ctx = make_context("UserPromptSubmit", prompt=prompt, session_id=f"s-{used}")
        stages: list[Stage] = [Filler(used), SkillsStage(engine)] if used else [SkillsStage(engine)]
        Dispatcher(stages).run(ctx)
        text = additional_context(ctx)
        assert len(text) <= CONTEXT_CAP
        assert "context truncated" not in text  # the stage fitted itself; nothing was cut mid-skill
        skills_part = text[used:]
        assert skills_part.count("<skill ") == skills_part.count("</skill>")


def test_a_skill_is_injected_once_per_session_until_compaction(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    stage = stage_for(umx)
    first = stage.process(make_context("UserPromptSubmit", prompt="refactor the parser"))
    assert first.context is not None and first.context.count("<skill ") == 2
    second = stage.process(make_context("UserPromptSubmit", prompt="now deploy it"))
    assert second.context is not None
    assert second.metadata["skills"] == ["system-architect", "devops-engineer"]
    assert second.context.count("<skill ") == 1 and '<skill name="devops-engineer"' in second.context
    assert "Already in context from an earlier prompt of this session: system-architect." in second.context
    assert stage.process(make_context("UserPromptSubmit", prompt="refactor again")).context is None
    other_session = stage.process(make_context("UserPromptSubmit", prompt="refactor again", session_id="s-2"))
    assert other_session.context is not None and other_session.context.count("<skill ") == 2
    stage.process(make_context("SessionStart", source="compact"))
    after = stage.process(make_context("UserPromptSubmit", prompt="refactor again"))
    assert after.context is not None and after.context.count("<skill ") == 2


def test_settings_turn_injection_off_or_repeat_it(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    stage = stage_for(umx)
    off = umx.project("quiet", {"ultramax": {"skillsEnabled": False}})
    ctx = make_context("UserPromptSubmit", settings=load_settings(umx.paths, off))
    assert stage.process(ctx).context is None
    repeat = umx.project("repeat", {"ultramax": {"skillsOncePerSession": False, "skillsMax": 1}})
    settings = load_settings(umx.paths, repeat)
    for _ in range(2):
        out = stage.process(make_context("UserPromptSubmit", prompt="design it", settings=settings))
        assert out.metadata["skills"] == ["system-architect"]
        assert out.context is not None and out.context.count("<skill ") == 1
        assert "Also matched but not loaded (skill cap or budget): creative-director." in out.context


def test_the_users_graph_is_picked_up_on_the_next_prompt(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    stage = stage_for(umx)
    assert stage.process(make_context("UserPromptSubmit", prompt="tune the grafana panels")).context is None
    write_graph(
        umx.claude_dir,
        {"observability": {"dependencies": ["devops-engineer"], "triggers": ["grafana"], "body": "Panels: RED."}},
    )
    out = stage.process(make_context("UserPromptSubmit", prompt="tune the grafana panels", session_id="s-new"))
    assert out.metadata["skills"] == ["system-architect", "devops-engineer", "observability"]
    assert out.context is not None and "Panels: RED." in out.context


def test_a_broken_user_graph_falls_back_to_the_shipped_skills(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    write_graph(umx.claude_dir, {"loop": {"dependencies": ["loop"], "triggers": ["loop"]}})
    engine = SkillEngine(umx.claude_dir)
    out = SkillsStage(engine).process(make_context("UserPromptSubmit", prompt="run the tests in a loop"))
    assert out.metadata["skills"] == ["system-architect", "code-master"]
    assert engine.error is not None and "dependency cycle: loop → loop" in str(engine.error)


def test_the_stage_records_what_it_loaded_in_metadata(umx: UltramaxEnv, make_context: ContextFactory) -> None:
    out: Any = stage_for(umx).process(make_context("UserPromptSubmit", prompt="deploy, review, audit, test"))
    assert out.metadata == {
        "skills": ["system-architect", "safety-guardian", "devops-engineer", "code-master", "research-analyst"]
    }


def test_a_session_starts_with_a_list_of_its_modes_skills_and_where_their_text_is(
    umx: UltramaxEnv, make_context: ContextFactory
) -> None:
    stage = stage_for(umx)
    mode_skills = ["trading-strategist", "risk-manager", "no-such-skill"]
    project = umx.project("desk", {"ultramax": {"skills": mode_skills}})
    settings = load_settings(umx.paths, project)
    for source in ("startup", "resume", "compact"):
        out = stage.process(make_context("SessionStart", source=source, settings=settings))
        assert out.metadata["skills_index"] == ["trading-strategist", "risk-manager"]
        assert out.context is not None and out.context.startswith("[ultramax skills] The ")
        lines = out.context.splitlines()[1:]
        assert [line.split(":")[0] for line in lines] == ["- trading-strategist", "- risk-manager"]
        assert all(line.endswith("SKILL.md)") for line in lines)
        assert "<skill " not in out.context, "an index, not the skills' text"
    quiet = umx.project("quiet-desk", {"ultramax": {"skills": mode_skills, "skillsEnabled": False}})
    assert stage.process(make_context("SessionStart", settings=load_settings(umx.paths, quiet))).context is None


def test_the_index_of_a_modes_skills_fits_in_the_room_memory_left(
    umx: UltramaxEnv, make_context: ContextFactory
) -> None:
    project = umx.project("desk", {"ultramax": {"skills": ["trading-strategist", "risk-manager", "devops-engineer"]}})
    engine = SkillEngine(umx.claude_dir)
    for used in (0, 9000, 9400, 9800):
        ctx = make_context("SessionStart", settings=load_settings(umx.paths, project), session_id=f"s-{used}")
        stages: list[Stage] = [Filler(used), SkillsStage(engine)] if used else [SkillsStage(engine)]
        Dispatcher(stages).run(ctx)
        text = additional_context(ctx)
        assert len(text) <= CONTEXT_CAP and "context truncated" not in text
        assert ("[ultramax skills]" in text) == (used <= 9400)


def test_a_skill_of_the_projects_mode_wins_a_place_over_another_matched_skill(
    umx: UltramaxEnv, make_context: ContextFactory
) -> None:
    stage = stage_for(umx)
    plain = load_settings(umx.paths, umx.project("plain", {"ultramax": {"skillsMax": 1}}))
    creative = umx.project("studio", {"ultramax": {"skillsMax": 1, "skills": ["creative-director"]}})
    prompt = "design the landing page"  # matches system-architect (priority 1) and creative-director (2)
    without = stage.process(make_context("UserPromptSubmit", prompt=prompt, settings=plain, session_id="a"))
    with_mode = stage.process(
        make_context("UserPromptSubmit", prompt=prompt, settings=load_settings(umx.paths, creative), session_id="b")
    )
    assert without.metadata["skills"] == ["system-architect"]
    assert with_mode.metadata["skills"] == ["creative-director"]
