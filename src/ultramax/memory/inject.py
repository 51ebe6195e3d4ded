"""Injection: what memory tells the model, in Claude Code's hook context, within a character budget.

Every item carries its date and source so the model can judge staleness, and an item that names a value a
later edit replaced (a port, a version, an identifier) says so, with the replacing line. The budget is
``memory.injectionBudgetChars`` (0 turns injection off), never more than Claude Code's 10,000-character
hook limit; items that do not fit are left out whole, never cut mid-sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ultramax.decisions import CONTEXT_CAP
from ultramax.memory.models import Block, Passage, iso_date

__all__ = ["format_item", "prompt_context", "session_start_context", "superseded_notes"]

_ITEM_CHARS = 600
_TOKEN = re.compile(r"\w+(?:[.\-]\w+)*")


def format_item(p: Passage, *, max_chars: int = _ITEM_CHARS, note: str = "") -> str:
    where = p.source or p.source_event or "memory"
    session = f", session {p.session_id[:8]}" if p.session_id else ""
    text = " ".join(p.text.split()) if p.kind not in ("file_change",) else p.text.replace("\n", " | ")
    if len(text) > max_chars:
        text = text[: max_chars - 3].rstrip() + "..."
    return f"- [{iso_date(p.created_at)} · {p.kind} · {where}{session} · #{p.id}] {text}" + (f" {note}" if note else "")


def _distinctive(text: str) -> set[str]:
    """Tokens that name one value rather than a common word: with a digit (ports, versions) or joined by
    '_', '.' or '-' (identifiers, hosts, file names)."""
    return {
        t for t in _TOKEN.findall(text) if len(t) >= 3 and (any(c.isdigit() for c in t) or any(c in t for c in "_.-"))
    }


def _replacements(change: Passage) -> list[tuple[str, str, set[str], set[str]]]:
    """(removed line, added line, tokens the edit removed, tokens it added) for each hunk of an edit's diff."""
    if change.kind != "file_change" or "\n@@ " not in change.text:
        return []
    out: list[tuple[str, str, set[str], set[str]]] = []
    removed: list[str] = []
    added: list[str] = []

    def close() -> None:
        new = _distinctive("\n".join(added))
        gone = _distinctive("\n".join(removed)) - new
        if gone and added:
            out.append((removed[0].strip(), added[0].strip(), gone, new))

    for line in change.text.split("\n@@ ", 1)[1].splitlines()[1:]:
        if line.startswith("@@ "):
            close()
            removed, added = [], []
        elif line.startswith("-"):
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
    close()
    return out


def superseded_notes(items: Sequence[Passage], changes: Sequence[Passage]) -> dict[int, str]:
    """For each item naming a value that a later edit (one of ``changes``) removed: a note with the edit's date,
    file and replacing line, so an old port or version is not taken for the current one."""
    edits = sorted(((c, r) for c in changes for r in _replacements(c)), key=lambda e: -e[0].created_at)
    notes: dict[int, str] = {}
    for p in items:
        tokens = _distinctive(p.text)
        found = [
            (change, old, new)
            # an item naming the new value too is about the change itself ("8123 collides, move to 9000")
            for change, (old, new, gone, came) in edits
            if change.created_at > p.created_at and change.id != p.id and tokens & gone and not tokens & came
        ]
        # the newest change of the file the item is about (or names) holds now; else the newest change
        own = [f for f in found if f[0].source and (f[0].source == p.source or f[0].source in p.text)]
        if own or found:
            change, old, new = (own or found)[0]
            where = change.source or "a file"
            notes[p.id] = (
                f"(superseded: on {iso_date(change.created_at)} {where} changed `{old[:80]}` to `{new[:80]}`, "
                f"#{change.id})"
            )
    return notes


def _fit(header: str, sections: Sequence[tuple[str, Sequence[str]]], budget: int) -> str | None:
    budget = min(budget, CONTEXT_CAP)
    if budget <= 0:
        return None
    out = header
    used_any = False
    for title, items in sections:
        block = ""
        for item in items:
            candidate = (f"\n{title}" if not block and title else "") + "\n" + item
            if len(out) + len(block) + len(candidate) > budget:
                continue
            block += candidate
        if block:
            out += block
            used_any = True
    return out if used_any else None


def session_start_context(
    project: str,
    blocks: Sequence[Block],
    recent: Sequence[Passage],
    budget: int,
    notes: dict[int, str] | None = None,
) -> str | None:
    """Core blocks (non-empty) and the most useful recent passages of the project."""
    block_items = [
        f"<{b.label}> ({len(b.value)}/{b.limit} chars, updated {iso_date(b.updated_at)})\n"
        f"{b.value.strip()}\n</{b.label}>"
        for b in blocks
        if b.value.strip()
    ]
    header = (
        f"[ultramax memory] Project {project}: core memory and recent context from earlier sessions "
        "(dates UTC; older items may be stale; `ultramax search` or the memory tools find more)."
    )
    items = [format_item(p, note=(notes or {}).get(p.id, "")) for p in recent]
    return _fit(header, [("Core memory:", block_items), ("Recent:", items)], budget)


def prompt_context(
    project: str, hits: Sequence[Passage], budget: int, notes: dict[int, str] | None = None
) -> str | None:
    """Passages relevant to the prompt, best first."""
    header = (
        f"[ultramax memory] Possibly relevant memories of project {project} from earlier work "
        "(check the dates before relying on them):"
    )
    return _fit(header, [("", [format_item(p, note=(notes or {}).get(p.id, "")) for p in hits])], budget)
