"""Writing skill graphs and SKILL.md files for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ultramax.skills.graph import user_graph_path


def write_skill(root: Path, name: str, body: str | None = None, description: str | None = None) -> str:
    """A SKILL.md at ``root/<name>/SKILL.md``; returns its path relative to ``root``."""
    path = root / name / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    desc = description or f"The {name} skill. Use when {name} work comes up."
    text = body if body is not None else f"# {name}\n\nGuidance for {name}."
    path.write_text(f"---\nname: {name}\ndescription: {desc}\n---\n{text}\n", encoding="utf-8")
    return f"{name}/SKILL.md"


def write_graph(claude_dir: Path, skills: dict[str, dict[str, Any]], **top: Any) -> Path:
    """The user's graph (``~/.claude/skills/graphs/config.json``).

    An entry without ``path`` gets a SKILL.md written beside the file (``body`` sets its text) unless it says
    ``"write": False`` (an override of a shipped skill)."""
    path = user_graph_path(claude_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, entry in skills.items():
        if isinstance(entry, dict) and "path" not in entry and entry.get("write", True):
            entry["path"] = write_skill(path.parent, name, entry.pop("body", None))
        if isinstance(entry, dict):
            entry.pop("write", None)
    path.write_text(json.dumps({"version": "8.0", "skills": skills, **top}, indent=2))
    return path
