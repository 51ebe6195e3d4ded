"""SKILL.md files: YAML frontmatter (the small subset skills use) and the body.

Claude Code reads a SKILL.md as ``---``-fenced YAML frontmatter followed by a Markdown body. ultramax only
needs the flat string fields (``name``, ``description``) and writes frontmatter whose values are JSON strings,
which are valid YAML double-quoted scalars -- so no YAML library is needed on the hook path and what we write
always parses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["NAME_RE", "SkillDocument", "name_problem", "parse_skill_document", "render_frontmatter"]

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
"""Claude Code's rule for a skill name: at most 64 characters of lowercase letters, digits and hyphens."""

MAX_DESCRIPTION = 1024
_FENCE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_KEY = re.compile(r"^([A-Za-z0-9_-]+):[ \t]*(.*)$")


@dataclass(frozen=True, slots=True)
class SkillDocument:
    """A SKILL.md split into its top-level frontmatter scalars and its body."""

    fields: dict[str, str]
    body: str

    @property
    def description(self) -> str:
        return self.fields.get("description", "")


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return raw[1:-1]
        return value if isinstance(value, str) else raw
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    return raw


def parse_skill_document(text: str) -> SkillDocument:
    """Split ``text``; top-level ``key: value`` scalars are kept, nested blocks and lists are skipped."""
    text = text.removeprefix("\ufeff")
    match = _FENCE.match(text)
    if match is None:
        return SkillDocument({}, text.strip("\n"))
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        if not line or line[0] in " \t#-":
            continue
        kv = _KEY.match(line)
        if kv and kv.group(2) and kv.group(2)[0] not in "|>[{":
            fields[kv.group(1)] = _scalar(kv.group(2))
    return SkillDocument(fields, text[match.end() :].strip("\n"))


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Claude Code skill name, or None if it can."""
    if not NAME_RE.match(name):
        return "must be 1-64 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    if "anthropic" in name or "claude" in name:
        return "must not contain 'anthropic' or 'claude' (reserved by Claude Code)"
    return None


def render_frontmatter(fields: dict[str, str], metadata: dict[str, str] | None = None) -> str:
    """``---``-fenced frontmatter; every value is written as a JSON string (a valid YAML scalar)."""
    lines = ["---"]
    for key, value in fields.items():
        lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    if metadata:
        lines.append("metadata:")
        for key, value in metadata.items():
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("---")
    return "\n".join(lines) + "\n"
