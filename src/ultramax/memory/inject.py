"""Injection: what memory tells the model, in Claude Code's hook context, within a character budget.

Every item carries its date and source so the model can judge staleness. The budget is
``memory.injectionBudgetChars`` (0 turns injection off), never more than Claude Code's 10,000-character
hook limit; items that do not fit are left out whole, never cut mid-sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from ultramax.decisions import CONTEXT_CAP
from ultramax.memory.models import Block, Passage, iso_date

__all__ = ["format_item", "prompt_context", "session_start_context"]

_ITEM_CHARS = 600


def format_item(p: Passage, *, max_chars: int = _ITEM_CHARS) -> str:
    where = p.source or p.source_event or "memory"
    session = f", session {p.session_id[:8]}" if p.session_id else ""
    text = " ".join(p.text.split()) if p.kind not in ("file_change",) else p.text.replace("\n", " | ")
    if len(text) > max_chars:
        text = text[: max_chars - 3].rstrip() + "..."
    return f"- [{iso_date(p.created_at)} · {p.kind} · {where}{session} · #{p.id}] {text}"


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


def session_start_context(project: str, blocks: Sequence[Block], recent: Sequence[Passage], budget: int) -> str | None:
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
    return _fit(header, [("Core memory:", block_items), ("Recent:", [format_item(p) for p in recent])], budget)


def prompt_context(project: str, hits: Sequence[Passage], budget: int) -> str | None:
    """Passages relevant to the prompt, best first."""
    header = (
        f"[ultramax memory] Possibly relevant memories of project {project} from earlier work "
        "(check the dates before relying on them):"
    )
    return _fit(header, [("", [format_item(p) for p in hits])], budget)
