"""SKILL.md files: YAML frontmatter (the small subset skills use) and the body.

Claude Code reads a SKILL.md as ``---``-fenced YAML frontmatter followed by a Markdown body. ultramax only
needs the flat string fields (``name``, ``description``) and writes frontmatter whose values are JSON strings
with the few characters YAML forbids escaped, which are valid YAML double-quoted scalars -- so no YAML library
is needed on the hook path and what we write always parses.
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


_DOUBLE = re.compile(r'"(?:[^"\\]|\\.)*"')
_SINGLE = re.compile(r"'(?:[^']|'')*'")
_COMMENT = re.compile(r"[ \t]+#.*$")


def _scalar(raw: str) -> str:
    """A one-line YAML scalar's string: quotes undone, a trailing ``# comment`` dropped as YAML does."""
    raw = raw.strip()
    if raw.startswith('"') and (m := _DOUBLE.match(raw)) and not _COMMENT.sub("", raw[m.end() :]):
        try:
            value = json.loads(m.group())
        except json.JSONDecodeError:
            return m.group()[1:-1]
        return value if isinstance(value, str) else raw
    if raw.startswith("'") and (m := _SINGLE.match(raw)) and not _COMMENT.sub("", raw[m.end() :]):
        return m.group()[1:-1].replace("''", "'")
    return _COMMENT.sub("", raw)


_BLOCK = re.compile(r"^([|>])[1-9+-]*[ \t]*(?:#.*)?$")
_NESTED = re.compile(r"^(?:- |-$|[^\s:#'\"][^:#]*:(?:[ \t]|$))")  # a nested list's or mapping's first line


def _block_scalar(style: str, lines: list[str]) -> str:
    """A ``|`` (literal) or ``>`` (folded) block: the lines after the key, less the first one's indentation.
    Folded lines join with spaces and a blank line is a line break; trailing line breaks are dropped."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    first = next((line for line in lines if line.strip()), "")
    cut = len(first) - len(first.lstrip(" \t"))
    rows = [line[cut:] if line.strip() else "" for line in lines]
    if style == "|":
        return "\n".join(rows)
    paragraphs: list[list[str]] = [[]]
    for row in rows:
        if row:
            paragraphs[-1].append(row)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n".join(" ".join(p) for p in paragraphs if p)


def _value(raw: str, more: list[str]) -> str | None:
    """The string a top-level key holds, given its inline text and the indented lines after it; None for a
    nested list or mapping, a flow collection or a key with no value."""
    raw = raw.strip()
    block = _BLOCK.match(raw)
    if block:
        return _block_scalar(block.group(1), more)
    if raw[:1] in ("[", "{"):
        return None
    rest = [line.strip() for line in more if line.strip()]
    if not raw and (not rest or _NESTED.match(rest[0])):
        return None
    # a plain or quoted scalar may go on over indented lines: YAML folds them into one line
    return _scalar(" ".join([raw, *rest]).strip())


def parse_skill_document(text: str) -> SkillDocument:
    """Split ``text``; top-level string fields are kept (one line, folded over indented lines, or a ``|``/``>``
    block), nested lists and mappings are skipped."""
    text = text.removeprefix("\ufeff")
    match = _FENCE.match(text)
    if match is None:
        return SkillDocument({}, text.strip("\n"))
    fields: dict[str, str] = {}
    lines = match.group(1).splitlines()
    i = 0
    while i < len(lines):
        kv = _KEY.match(lines[i])
        i += 1
        more: list[str] = []  # the blank or indented lines that belong to this key
        while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t"):
            more.append(lines[i])
            i += 1
        if kv is None:
            continue
        value = _value(kv.group(2), more)
        if value is not None:
            fields[kv.group(1)] = value
    return SkillDocument(fields, text[match.end() :].strip("\n"))


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Claude Code skill name, or None if it can."""
    if not NAME_RE.match(name):
        return "must be 1-64 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    if "--" in name:
        return "must not contain '--' (the Agent Skills name rule)"
    if "anthropic" in name or "claude" in name:
        return "must not contain 'anthropic' or 'claude' (reserved by Claude Code)"
    return None


# JSON leaves these raw, but YAML forbids them (DEL, C1 controls, lone surrogates, U+FFFE/FFFF) or reads them
# as line breaks (NEL, U+2028/2029); a BOM mid-text trips some parsers. Written as \uXXXX escapes instead.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _yaml_string(value: str) -> str:
    """``value`` as a YAML double-quoted scalar that every YAML parser reads back unchanged."""
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))


def render_frontmatter(fields: dict[str, str], metadata: dict[str, str] | None = None) -> str:
    """``---``-fenced frontmatter; every value is written as a JSON string (a valid YAML scalar)."""
    lines = ["---"]
    for key, value in fields.items():
        lines.append(f"{key}: {_yaml_string(value)}")
    if metadata:
        lines.append("metadata:")
        for key, value in metadata.items():
            lines.append(f"  {key}: {_yaml_string(value)}")
    lines.append("---")
    return "\n".join(lines) + "\n"
