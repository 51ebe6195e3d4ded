"""Warm state shared by the skills stage and the CLI: the effective graph, compiled resolvers, and which
skills each session already has in context."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

from ultramax.config import Settings
from ultramax.skills.graph import GraphCache, SkillGraph, SkillGraphError
from ultramax.skills.resolver import SkillResolver

__all__ = ["SkillEngine", "limits_from"]

log = logging.getLogger("ultramax.skills")

MAX_SESSIONS = 1024
INDEX_DESCRIPTION = 160
"""How much of a description the index of a mode's skills shows at session start."""


def limits_from(settings: Settings) -> tuple[int, int, int]:
    """(max skills, tokens per skill, total token budget) from the effective settings."""
    return (
        int(settings.get("ultramax.skillsMax")),
        int(settings.get("ultramax.skillsTokensPerSkill")),
        int(settings.get("ultramax.skillsTokenBudget")),
    )


class SkillEngine:
    """One per Claude directory. Thread-safe: the daemon runs pipelines on several threads."""

    def __init__(self, claude_dir: Path) -> None:
        self._cache = GraphCache(claude_dir)
        self._resolvers: dict[tuple[int, int, int, int], SkillResolver] = {}
        self._sessions: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()
        self._reported = -1

    @property
    def user_config(self) -> Path:
        return self._cache.user_config

    @property
    def error(self) -> SkillGraphError | None:
        """Why the user's graph was rejected (the shipped graph is in use), or None."""
        return self._cache.error

    def graph(self) -> SkillGraph:
        with self._lock:
            graph = self._cache.get()
            if self._cache.error is not None and self._reported != self._cache.generation:
                self._reported = self._cache.generation
                log.warning(
                    "user skill graph rejected; using the shipped graph",
                    extra={"fields": {"error": str(self._cache.error)}},
                )
            return graph

    def resolver(self, max_skills: int = 5, tokens_per_skill: int = 700, token_budget: int = 2800) -> SkillResolver:
        """A resolver over the current graph with these limits (compiled once per graph and limits)."""
        graph = self.graph()
        key = (self._cache.generation, max_skills, tokens_per_skill, token_budget)
        with self._lock:
            resolver = self._resolvers.get(key)
            if resolver is None or resolver.graph is not graph:
                if len(self._resolvers) > 16:
                    self._resolvers.clear()
                resolver = SkillResolver(
                    graph, max_skills=max_skills, tokens_per_skill=tokens_per_skill, token_budget=token_budget
                )
                self._resolvers[key] = resolver
            return resolver

    def resolver_for(self, settings: Settings) -> SkillResolver:
        return self.resolver(*limits_from(settings))

    def index(self, names: Sequence[str], *, mode: str, max_chars: int) -> tuple[str, list[str]]:
        """A short list of ``names`` (a mode's skills): each one's description and where its full text is, for
        the session's start -- the skills' text itself arrives with the prompts that call for it. Skills the
        graph does not have are left out; lines that would pass ``max_chars`` too. Returns (text, listed)."""
        graph = self.graph()
        head = (
            f"[ultramax skills] The {mode} mode works with these skills; each arrives in full with a prompt that "
            "calls for it, and its SKILL.md can be read at any time:"
        )
        lines: list[str] = []
        listed: list[str] = []
        size = len(head)
        for name in dict.fromkeys(names):
            if name not in graph:
                continue
            about = " ".join(graph.description(name).split())
            if len(about) > INDEX_DESCRIPTION:
                about = about[: INDEX_DESCRIPTION - 3].rstrip() + "..."
            line = f"- {name}: {about} ({graph[name].path})" if about else f"- {name} ({graph[name].path})"
            if size + 1 + len(line) > max_chars:
                break
            lines.append(line)
            listed.append(name)
            size += 1 + len(line)
        return ("\n".join([head, *lines]) if lines else ""), listed

    # -- what each session already has in context ----------------------------------------------------
    def loaded(self, session_id: str) -> frozenset[str]:
        with self._lock:
            names = self._sessions.get(session_id)
            return frozenset(names) if names else frozenset()

    def remember(self, session_id: str, names: Iterable[str]) -> None:
        with self._lock:
            known = self._sessions.setdefault(session_id, set())
            known.update(names)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
