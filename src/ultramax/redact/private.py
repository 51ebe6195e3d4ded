"""``<private>...</private>`` spans: what a user marked as never to be kept.

Tags are matched loosely -- any case, spaces inside the brackets, attributes (``<private reason="...">``),
HTML-escaped (``&lt;private&gt;``), fullwidth brackets, zero-width characters inside the word -- because a
tag that is not recognised leaks everything it was meant to hide. Spans nest; only text outside every span
is kept. Mistakes err towards dropping: an unclosed tag drops the rest of the text, and a closing tag with
no opening one (its opening was cut off, say) drops everything before it.
"""

from __future__ import annotations

import re

__all__ = ["strip_private"]

_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
# Attributes follow a space and are bounded, so that a stray "<private" cannot make the scan quadratic
# (<privateKey>, <private-network> and <PRIVATE|PRIVATE> are other things).
_TAG = re.compile(
    r"(?i)[<＜]\s*(/?)\s*private(?:\s[^<>＜＞]{0,300})?[>＞]"
    r"|&lt;\s*(/?)\s*private(?:\s(?:(?!&[lg]t;)[^<>]){0,300})?&gt;"
)
_MAYBE = re.compile(r"(?i)private")


def strip_private(text: str, marker: str = "") -> str:
    """``text`` without its private spans; each dropped stretch becomes ``marker``."""
    if _ZERO_WIDTH.search(text):
        # Zero-width characters can hide a tag from the pattern; they carry nothing worth keeping near one.
        bare = _ZERO_WIDTH.sub("", text)
        if _TAG.search(bare):
            text = bare
    if not _MAYBE.search(text) or not _TAG.search(text):
        return text
    kept: list[str] = []
    depth = 0
    pos = 0
    for m in _TAG.finditer(text):
        closing = bool(m.group(1) or m.group(2))
        if not closing:
            if depth == 0:
                kept.append(text[pos : m.start()])
                kept.append(marker)
            depth += 1
        elif depth > 0:
            depth -= 1
        else:
            kept = [marker]  # a closing tag with no opening one: what came before may be private
        pos = m.end()
    if depth == 0:
        kept.append(text[pos:])
    return "".join(kept)
