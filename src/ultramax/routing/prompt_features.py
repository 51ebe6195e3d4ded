"""What the router's learned difficulty reads from a prompt: its kind, its word pieces and its shape.

- ``prompt_kind``: ``"choice"`` (a multiple-choice question: three or more ``A.``/``B)`` option lines),
  ``"word_problem"`` (a short quantitative question in prose: two or more quantities, something asked, no code,
  no file paths) or ``"open"`` (anything else: chat, writing, coding, Claude Code prompts). The learned model has
  one head per kind, because what makes a cheaper model fail differs between them.
- ``wordpiece_ids``: BERT-uncased WordPiece over the vocabulary of the MiniLM that ships with ultramax (its
  ``tokenizer.json``), by the ``tokenizers`` library the embedder uses -- the learned model keeps one weight per
  word piece.
- ``shape_features``: a few dozen counts that describe a prompt's shape (length, sentences, quantities, numbers'
  magnitude, fractions, percentages, money, rates, comparisons, units, code, option lines...), log-scaled.

The trainer (``bench/router_train.py``) and the run-time model use these same functions, so what the weights
were fitted on is exactly what they see.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "KINDS",
    "MAX_PIECES",
    "SHAPE_NAMES",
    "prompt_kind",
    "shape_features",
    "vocabulary",
    "wordpiece_ids",
]

KINDS = ("choice", "word_problem", "open")
MAX_PIECES = 512
"""Only the first 512 word pieces of a prompt are read (the weights were trained the same way)."""

_CHOICES = re.compile(r"^\s*\(?[A-D][.)]\s", re.M)
_CODE = re.compile(
    r"```|`|\bdef \w+\(|\bclass \w+\s*[:(]|^\s*return\b|[{};]\s*$|=>|\(\)"
    r"|\b\w+\.(?:py|js|ts|tsx|go|rs|md|json|toml|ya?ml|sh|txt|c|h|cpp|java|rb|sql)\b|\w+/\w+/|\./",
    re.M,
)
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_NUMBER_WORD = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"sixty|hundred|thousand|million|dozen|half|third|quarter|twice|thrice|double|triple)\b"
)
_ASK = re.compile(
    r"\?|\b(?:how (?:many|much|long|far|old)|calculate|find|determine|compute|what (?:is|was|will|are))\b"
)


def _count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))


def prompt_kind(text: str) -> str:
    """``"choice"``, ``"word_problem"`` or ``"open"`` (see the module docstring)."""
    if len(_CHOICES.findall(text)) >= 3:
        return "choice"
    if len(text) > 1500 or text.count("\n") > 3 or _CODE.search(text):
        return "open"
    lower = text.lower()
    quantities = len(_NUMBER.findall(text)) + len(_NUMBER_WORD.findall(lower))
    return "word_problem" if quantities >= 2 and _ASK.search(lower) else "open"


_SHAPE: tuple[tuple[str, str], ...] = (
    ("percent", r"%|\bpercent"),
    ("fraction", r"\d+/\d+|\bhalf\b|\bthird\b|\bquarter\b|\bfraction"),
    ("money", r"\$|\bdollars?\b|\bcents?\b"),
    ("times", r"\btimes\b|\btwice\b|\bdouble|\btriple|\bthrice"),
    ("rate", r"\bper\b|\beach\b|\bevery\b|\ban hour\b|\ba day\b"),
    ("compare", r"\bmore than\b|\bless than\b|\bfewer\b|\bolder\b|\byounger\b|\bas (?:many|much)\b"),
    ("time_units", r"\b(?:second|minute|hour|day|week|month|year)s?\b"),
    ("conditions", r"\bif\b"),
    ("remaining", r"\bremain|\bleft\b|\brest\b"),
    ("total", r"\btotal|\baltogether|\bin all\b|\bcombined"),
    ("units", r"\b(?:inch|feet|foot|yard|mile|pound|ounce|gallon|quart|liter|litre|meter|metre|kilo)"),
    ("maths", r"[=+*/^<>]|\b(?:sqrt|integral|derivative|equation|probability|prove|theorem)\b"),
    ("negation", r"\bnot\b|\bexcept\b|\bfalse\b|\bincorrect\b"),
    ("statements", r"\bstatement\s*\d|\b(?:i|ii|iii|iv)\b[.,)]"),
)
SHAPE_NAMES: tuple[str, ...] = (
    "chars",
    "words",
    "sentences",
    "lines",
    "questions",
    "numbers",
    "distinct_numbers",
    "number_words",
    "quantities",
    "largest_number",
    "decimals",
    "big_numbers",
    "names",
    "mean_word_length",
    "code",
    "choices",
    "choice_chars",
    *(name for name, _ in _SHAPE),
)
_SHAPE_RX = tuple(re.compile(p) for _, p in _SHAPE)
_WORD = re.compile(r"[a-z]+")
_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+")
_OPTION_LINE = re.compile(r"^\s*\(?[A-D][.)]\s(.*)$", re.M)


@lru_cache(maxsize=64)
def shape_features(text: str) -> tuple[float, ...]:
    """The prompt's shape, one value per ``SHAPE_NAMES`` entry (each ``log1p`` of a count or a size). Cached:
    the difficulty estimate and the tier model read the same prompt's shape."""
    lower = text.lower()
    numbers = _NUMBER.findall(text)
    values = [float(n.replace(",", "")) for n in numbers]
    words = _WORD.findall(lower)
    number_words = len(_NUMBER_WORD.findall(lower))
    options = _OPTION_LINE.findall(text)
    raw = [
        len(text),
        len(words),
        _count(r"[.?!](?:\s|$)", text),
        text.count("\n"),
        text.count("?"),
        len(numbers),
        len(set(numbers)),
        number_words,
        len(numbers) + number_words,
        math.log10(1 + max(values)) if values else 0.0,
        sum("." in n for n in numbers),
        sum(v >= 1000 for v in values),
        len(set(_NAME.findall(text))),
        sum(map(len, words)) / len(words) if words else 0.0,
        min(len(_CODE.findall(text)), 20),
        len(options) if len(options) >= 3 else 0,
        sum(map(len, options)) / len(options) if len(options) >= 3 else 0.0,
        *(len(rx.findall(lower)) for rx in _SHAPE_RX),
    ]
    return tuple(math.log1p(max(v, 0.0)) for v in raw)


# -- WordPiece ------------------------------------------------------------------------------------------
def _tokenizer_json() -> str:
    return resources.files("ultramax.memory").joinpath("model/tokenizer.json").read_text(encoding="utf-8")


@cache
def vocabulary() -> dict[str, int]:
    """The shipped MiniLM's WordPiece vocabulary (30,522 pieces: token -> id)."""
    vocab = json.loads(_tokenizer_json())["model"]["vocab"]
    if not isinstance(vocab, dict):
        raise ValueError("the MiniLM tokenizer.json has no WordPiece vocabulary")
    return {str(k): int(v) for k, v in vocab.items()}


@cache
def _tokenizer() -> Tokenizer:
    """The shipped MiniLM's own tokenizer (the ``tokenizers`` library the embedder uses), without the
    truncation and padding its ``tokenizer.json`` asks for."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(_tokenizer_json())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def wordpiece_ids(text: str, limit: int = MAX_PIECES) -> list[int]:
    """The first ``limit`` WordPiece ids of ``text`` (no ``[CLS]``/``[SEP]``), as the MiniLM tokenizer gives.
    Only the first ``12 * limit`` characters are read (as in training): plenty for ``limit`` pieces of text."""
    ids: list[int] = _tokenizer().encode(text[: limit * 12], add_special_tokens=False).ids
    return ids[:limit]
