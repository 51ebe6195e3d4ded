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
from collections.abc import Iterator

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


# a run of word characters, possibly joined by _ or -: the only places an identifier can be, found in linear time
_WORDISH = re.compile(r"[^\W_]+(?:[_-]+[^\W_]+)*")
_WORD_CHARS = re.compile(r"[^\W_]+")


def _identifiers(text: str) -> Iterator[str]:
    """The identifiers in ``text``: words joined by _ or -, words with a case change inside (InvoiceService,
    retryBackoffMs), capitals before a word (HTTPServer). Found by scanning, not by one regex: the regex this
    replaces backtracked in cubic time on a long lower-case run (a hash, base64, minified code), and a query or
    a save of 10,000 such characters held a process for minutes."""
    for match in _WORDISH.finditer(text):
        word = match.group()
        if not _WORD_CHARS.fullmatch(word):
            yield word  # snake/kebab case: the whole run
            continue
        lower = next((i for i, c in enumerate(word) if "a" <= c <= "z"), -1)
        if lower < 0:
            continue
        if any("A" <= c <= "Z" for c in word[lower + 1 :]):
            yield word  # a case change inside: camelCase
            continue
        start = lower  # HTTPServer: two or more capitals right before the first lower-case letter
        while start > 0 and "A" <= word[start - 1] <= "Z":
            start -= 1
        if lower - start >= 2:
            yield word[start:]


def identifier_terms(text: str, *, limit: int = 2000) -> str:
    """Extra words to index for ``text``: each identifier's other spellings (empty for plain prose)."""
    terms: list[str] = []
    for identifier in _identifiers(text):
        terms.extend(_spellings(identifier))
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
