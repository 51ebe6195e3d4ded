"""Turning a natural-language query into an FTS5 MATCH expression (standard library only: the hook path uses it)."""

from __future__ import annotations

import re

__all__ = ["fts_query"]

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves also ever much many
s t don didn doesn isn wasn weren won wouldn shouldn couldn ll ve re d m o y""".split()  # noqa: SIM905
)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def fts_query(text: str, *, max_terms: int = 32) -> str:
    """An FTS5 MATCH expression: the query's content words, quoted, OR-ed (bm25 ranks by how many match)."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token in _STOPWORDS or (len(token) < 2 and not token.isdigit()) or token in terms:
            continue
        terms.append(token)
    return " OR ".join(f'"{t}"' for t in terms[:max_terms])
