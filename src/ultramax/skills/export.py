"""``ultramax skills sync``: the graph's skills as native Claude Code skills.

Each skill becomes ``~/.claude/skills/<name>/SKILL.md`` with valid frontmatter (``name`` ≤ 64 characters of
``[a-z0-9-]``, ``description`` ≤ 1024 characters) and a body that starts by naming the skills it builds on,
so Claude loads those first when it invokes one itself. Sync is idempotent (an unchanged file is not
rewritten) and never clobbers a skill that is not ultramax's: ultramax records the SHA-256 of every file it
writes (``$ULTRAMAX_HOME/skills-sync.json``) and replaces a file only if it is still exactly what ultramax
wrote. A user's own skill of the same name -- or an ultramax file the user edited -- is left alone unless
``--force``, which first copies it, byte for byte, to ``$ULTRAMAX_HOME/backups/skills/``; one it cannot read
(or a file or folder where a skill's folder or file goes) is never replaced. Files ultramax wrote for skills no
longer in the graph are removed if untouched. A skill whose graph ``path`` is the very file sync would write is
already a native skill: sync keeps it as it is (even with ``--force``), since it is the skill's source.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultramax.fsutil import atomic_write_bytes, atomic_write_json
from ultramax.skills.document import MAX_DESCRIPTION, name_problem, render_frontmatter
from ultramax.skills.graph import SkillGraph

__all__ = ["SyncAction", "native_skill_text", "sync_skills"]

RESERVED = frozenset({"synced", "graphs"})  # Claude Code's reserved folder; the graph's own folder


@dataclass(frozen=True, slots=True)
class SyncAction:
    name: str
    path: Path
    action: str  # created | updated | unchanged | kept | skipped | replaced | removed | invalid | failed
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "action": self.action, "reason": self.reason}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:. ") + "…"


def _fallback_description(graph: SkillGraph, name: str) -> str:
    """For a skill whose SKILL.md has no description: what it provides and when to use it, from the graph
    (Claude Code picks a skill by its description, so "name (ultramax skill):" alone would never be picked)."""
    skill = graph[name]
    text = f"The {name} skill" + (f": {', '.join(skill.provides)}." if skill.provides else ".")
    if skill.triggers:
        text += f" Use when the task involves {', '.join(skill.triggers)}."
    return text


def native_skill_text(graph: SkillGraph, name: str) -> str:
    """The SKILL.md Claude Code gets for ``name``: frontmatter, a note on its dependencies, the body."""
    skill = graph[name]
    deps = list(skill.dependencies)
    description = graph.description(name) or _fallback_description(graph, name)
    if deps:
        note = f" Builds on {', '.join(deps)}."
        description = _clip(description, MAX_DESCRIPTION - len(note)) + note
    metadata = {"generated-by": "ultramax", "provides": ", ".join(skill.provides)}
    if deps:
        metadata["depends-on"] = ", ".join(deps)
    head = render_frontmatter({"name": name, "description": _clip(description, MAX_DESCRIPTION)}, metadata)
    body = graph.body(name).strip()
    if deps:
        listed = ", ".join(f"`{d}`" for d in deps)
        one = len(deps) == 1
        body = (
            f"> Builds on {listed}: apply {'that skill' if one else 'those skills'} first. "
            f"If {'it is' if one else 'they are'} not already in context, invoke {'it' if one else 'them'} with the "
            "Skill tool before continuing.\n\n" + body
        )
    return head + "\n" + body + "\n"


def _load_state(state_file: Path) -> dict[str, str]:
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    skills = data.get("skills") if isinstance(data, dict) else None
    if not isinstance(skills, dict):
        return {}
    return {k: v for k, v in skills.items() if isinstance(k, str) and isinstance(v, str)}


def _read(path: Path) -> bytes | None:
    """The file's bytes (never decoded: a backup must be the file exactly), None if there is none.
    Raises OSError when it cannot be read, or when ``path`` or its folder is not what a skill is."""
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"{path.parent} is a file, not a skill folder")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def sync_skills(
    graph: SkillGraph,
    skills_dir: Path,
    state_file: Path,
    backups_dir: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> list[SyncAction]:
    """Write every skill of ``graph`` under ``skills_dir`` (``~/.claude/skills``); return what happened."""
    state = _load_state(state_file)
    new_state: dict[str, str] = {}
    actions: list[SyncAction] = []
    for skill in graph:
        name = skill.name
        target = skills_dir / name / "SKILL.md"
        problem = name_problem(name) or ("is a reserved folder name" if name in RESERVED else None)
        if problem:
            actions.append(SyncAction(name, target, "invalid", f"name {name!r} {problem}"))
            continue
        if _same_file(skill.path, target):
            # the graph reads its text from the file sync would write: exporting it would feed each run's
            # preamble into the next, so the user's file stays as written (it is already a native skill)
            actions.append(
                SyncAction(name, target, "kept", "the graph's path for this skill is this file; sync never writes it")
            )
            continue
        data = native_skill_text(graph, name).encode("utf-8")
        digest = _sha(data)
        try:
            current = _read(target)
        except OSError as exc:
            # never replaced, even with --force: what cannot be read cannot be backed up
            actions.append(SyncAction(name, target, "skipped", f"cannot read what is there ({_why(exc)}); left as is"))
            if name in state:
                new_state[name] = state[name]
            continue
        if current is None:
            action, reason = "created", ""
        elif current == data:
            actions.append(SyncAction(name, target, "unchanged"))
            new_state[name] = digest
            continue
        elif state.get(name) == _sha(current):
            action, reason = "updated", "the shipped or configured skill changed"
        elif force:
            action, reason = "replaced", f"--force; the previous file is kept in {backups_dir}"
        else:
            actions.append(
                SyncAction(
                    name,
                    target,
                    "skipped",
                    "a skill of this name exists that ultramax did not write (or it was edited since); "
                    "--force replaces it, keeping a backup",
                )
            )
            if name in state:
                new_state[name] = state[name]
            continue
        if not dry_run:
            try:
                if action == "replaced" and current is not None:
                    backup = backups_dir / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-SKILL.md"
                    atomic_write_bytes(backup, current)
                atomic_write_bytes(target, data)
            except OSError as exc:
                actions.append(SyncAction(name, target, "failed", f"cannot write ({_why(exc)})"))
                if name in state:
                    new_state[name] = state[name]
                continue
        new_state[name] = digest
        actions.append(SyncAction(name, target, action, reason))
    for name, digest in state.items():
        if name in new_state or name in graph:
            continue
        target = skills_dir / name / "SKILL.md"
        try:
            current = _read(target)
        except OSError:
            continue  # no longer the file ultramax wrote
        if current is None or _sha(current) != digest:
            continue
        if not dry_run:
            try:
                target.unlink()
                if not any(target.parent.iterdir()):
                    target.parent.rmdir()
            except OSError as exc:
                actions.append(SyncAction(name, target, "failed", f"cannot remove ({_why(exc)})"))
                new_state[name] = digest
                continue
        actions.append(SyncAction(name, target, "removed", "no longer in the skill graph"))
    if not dry_run and new_state != state:
        atomic_write_json(state_file, {"version": 1, "skills": dict(sorted(new_state.items()))})
    return actions
