"""Keyword search text: the FTS5 MATCH expression for a query, and the identifier terms indexed beside a passage.

Standard library only: the hook path uses it.

FTS5's ``unicode61`` tokenizer splits ``invoice_service`` into ``invoice`` and ``service`` but keeps
``InvoiceService`` whole, so "the invoice service" would never find ``InvoiceService`` and ``InvoiceService``
would never find ``invoice_service``. Each passage therefore also indexes its identifiers' other spellings
(``identifier_terms``: camelCase split into words, snake/kebab case joined), and a query adds the same for its
own identifiers -- so all three spellings meet.
"""

from __future__ import annotations

import re

__all__ = ["BM25_WEIGHTS", "STOPWORDS", "fts_query", "identifier_terms"]

BM25_WEIGHTS = "1.0, 0.5, 1.0"
"""bm25() column weights for (text, context, terms): the turn before a passage counts half; identifier
spellings count as the words they are."""

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves also ever much many
s t don didn doesn isn wasn weren won wouldn shouldn couldn ll ve re d m o y""".split()  # noqa: SIM905
)
STOPWORDS = _STOPWORDS
"""Words too common to say what a text is about."""
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# a word with a case change inside (InvoiceService, retryBackoffMs, HTTPServer) or words joined by _ or -
_IDENTIFIER = re.compile(r"[^\W_]+(?:[_-]+[^\W_]+)+|[^\W_]*[a-z][^\W_]*[A-Z][^\W_]*|[A-Z]{2,}[a-z][^\W_]*")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _spellings(identifier: str) -> list[str]:
    """The other spellings of one identifier, lower case: its camelCase words, or its snake/kebab parts joined."""
    pieces = _TOKEN.findall(identifier)
    if len(pieces) > 1:  # snake_case / kebab-case: FTS5 already has the parts; add them joined
        out = ["".join(pieces).lower()]
        pieces = [p for p in pieces if p != p.lower() and p != p.upper()]  # camelCase inside one part
        return out + [w for p in pieces for w in _spellings(p)]
    words = _CAMEL_PART.findall(identifier)
    return [w.lower() for w in words] if len(words) > 1 else []


def identifier_terms(text: str, *, limit: int = 2000) -> str:
    """Extra words to index for ``text``: each identifier's other spellings (empty for plain prose)."""
    terms: list[str] = []
    for match in _IDENTIFIER.finditer(text):
        terms.extend(_spellings(match.group()))
        if len(terms) >= limit:
            break
    return " ".join(terms[:limit])


def fts_query(text: str, *, max_terms: int = 32) -> str:
    """An FTS5 MATCH expression: the query's content words and its identifiers' other spellings, quoted,
    OR-ed (bm25 ranks by how many match)."""
    terms: list[str] = []

    def add(token: str) -> None:
        if token in _STOPWORDS or (len(token) < 2 and not token.isdigit()) or token in terms:
            return
        terms.append(token)

    for token in _TOKEN.findall(text.lower()):
        add(token)
    for spelling in identifier_terms(text).split():
        add(spelling)
    return " OR ".join(f'"{t}"' for t in terms[:max_terms])
