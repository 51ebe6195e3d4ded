"""Skills: the expertise a prompt calls for arrives with it (seed section 6).

On UserPromptSubmit the prompt is resolved against the skill graph (shipped skills plus the user's
``~/.claude/skills/graphs/config.json``) and the resolved skills' text is injected as additionalContext,
dependencies first, within the token budget and within the room other stages left under Claude Code's
10,000-character cap. A skill already injected earlier in the session is named, not repeated (Claude still
has it in context); compaction or ``/clear`` (SessionStart ``compact``/``clear``) resets that.

The project mode's skills (``ultramax.skills``, written by ``mode activate``) are listed at SessionStart --
name, description, where the SKILL.md is -- and win ties among the skills a prompt matches.
"""

from __future__ import annotations

from typing import Literal

from ultramax.decisions import CONTEXT_CAP, cap_context
from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.skills.engine import SkillEngine

__all__ = ["SkillsStage"]

MIN_ROOM = 400
"""Below this many free characters no skill fits; the stage stays silent."""

RESET_SOURCES = frozenset({"clear", "compact"})


class SkillsStage:
    name = "skills"
    phase: Literal["decide", "record"] = "decide"

    def __init__(self, engine: SkillEngine) -> None:
        self.engine = engine

    def process(self, ctx: HookContext) -> StageOutput:
        session = ctx.event.session_id
        if ctx.event_name == "SessionStart":
            if getattr(ctx.event, "source", None) in RESET_SOURCES:
                self.engine.forget(session)
            return self._mode_index(ctx)
        if ctx.event_name != "UserPromptSubmit" or not ctx.settings.get("ultramax.skillsEnabled"):
            return StageOutput()
        prompt = str(getattr(ctx.event, "prompt", "") or "")
        if not prompt.strip():
            return StageOutput()
        room = _room(ctx)
        if room < MIN_ROOM:
            return StageOutput(metadata={"skills_skipped": "no room under the hook output cap"})
        once = bool(ctx.settings.get("ultramax.skillsOncePerSession"))
        resolution = self.engine.resolver_for(ctx.settings).resolve(
            prompt,
            preferred=frozenset(_mode_skills(ctx)),
            already_loaded=self.engine.loaded(session) if once else frozenset(),
            max_chars=room,
        )
        if not resolution.skills and not resolution.dropped:
            return StageOutput()
        if once:
            self.engine.remember(session, [s.name for s in resolution.skills if not s.repeated])
        metadata: dict[str, object] = {"skills": resolution.load_order}
        if resolution.dropped:
            metadata["skills_dropped"] = [f"{d.name}:{d.why}" for d in resolution.dropped]
        return StageOutput(context=resolution.context() or None, metadata=metadata)

    def _mode_index(self, ctx: HookContext) -> StageOutput:
        """At a session's start (and after /clear or compaction): the project mode's skills, listed -- a
        short index, not their text, which would crowd out the session's memory under the same cap."""
        names = _mode_skills(ctx)
        if not names or not ctx.settings.get("ultramax.skillsEnabled"):
            return StageOutput()
        room = _room(ctx)
        if room < MIN_ROOM:
            return StageOutput(metadata={"skills_skipped": "no room under the hook output cap"})
        text, listed = self.engine.index(names, mode=ctx.mode.name, max_chars=room)
        return StageOutput(context=text or None, metadata={"skills_index": listed})


def _room(ctx: HookContext) -> int:
    """Characters left under Claude Code's hook output cap after what earlier stages added."""
    used = len(cap_context(ctx.decision.additional_context))
    return CONTEXT_CAP - used - (2 if used else 0)  # cap_context joins parts with a blank line


def _mode_skills(ctx: HookContext) -> list[str]:
    """The skills the project's mode works with (``ultramax.skills``, written by ``mode activate``)."""
    value = ctx.settings.get("ultramax.skills")
    return [str(v) for v in value] if isinstance(value, list) else []
