"""A small learned estimate of how much a prompt needs the stronger model.

One head per prompt kind (``prompt_features.prompt_kind``: multiple-choice question, maths word problem, open
prompt). Each head is two logistic regressions -- P(the weak model fails), P(the strong model fails) -- over:

- a static MiniLM embedding of the prompt: the mean of per-word-piece vectors derived offline from the shipped
  all-MiniLM-L6-v2 (each vocabulary piece run through the model alone, model2vec-style), weighted by
  log(2 + piece id). A linear model over a weighted mean of fixed vectors is a weighted mean of one number per
  piece, so each regression ships as one int8 weight per vocabulary piece: no transformer, no numpy, at run time;
- ``shape_features`` (length, sentences, quantities, fractions, option lines...).

The head's estimate is the expected gain of the strong model, P(weak fails) - P(strong fails), turned into a
percentile among the training prompts of the same kind; ``weight`` (per kind, chosen by cross-validation in
the trainer) says how far that percentile moves the router's complexity score.

Trained by ``bench/router_train.py`` on the *training half* of the RouteLLM data only (``is_training_prompt``:
even first byte of the prompt's SHA-256), so the benchmark scores only prompts the weights never saw. Shipped as
``data/difficulty.json``; a missing or corrupt file is a ``DifficultyModelError`` naming the file.
"""

from __future__ import annotations

import array
import base64
import binascii
import bisect
import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from ultramax.errors import UltramaxError
from ultramax.routing.prompt_features import (
    KINDS,
    SHAPE_NAMES,
    prompt_kind,
    shape_features,
    vocabulary,
    wordpiece_ids,
)

__all__ = [
    "FORMAT",
    "Difficulty",
    "DifficultyModel",
    "DifficultyModelError",
    "Head",
    "LinearOutput",
    "check_header",
    "estimate_difficulty",
    "finite_floats",
    "is_training_prompt",
    "load_difficulty_model",
    "need",
    "parse_linear_output",
    "piece_weight",
    "read_difficulty_model",
    "read_weights",
    "sigmoid",
    "word_pieces",
]

FORMAT = 2
T = TypeVar("T")
OUTPUTS = ("weak_fails", "strong_fails")


class DifficultyModelError(UltramaxError):
    """The learned difficulty weights are missing, corrupt, or do not match the shipped tokenizer."""


def is_training_prompt(text: str) -> bool:
    """Whether ``text`` is in the half of the RouteLLM prompts the shipped weights were trained on."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0


def piece_weight(piece_id: int) -> float:
    """How much one word piece counts in the prompt's mean (rarer pieces have higher ids and count more)."""
    return math.log(2.0 + piece_id)


@dataclass(frozen=True, slots=True)
class LinearOutput:
    """One logistic regression: ``bias + shape . x + mean over pieces of pieces[id]`` (weighted by ``piece_weight``)."""

    bias: float
    shape: tuple[float, ...]
    pieces: array.array[float]
    """``piece_weight(id) * weight(id)`` for every vocabulary id (pre-multiplied, so a lookup is one index)."""

    def logit(self, shape: Sequence[float], ids: Sequence[int], piece_norm: float) -> float:
        if len(shape) != len(self.shape):
            raise ValueError(f"expected {len(self.shape)} features, got {len(shape)}")
        # map() rather than generator expressions: this runs on the proxy's path for each new prompt
        z: float = self.bias + sum(map(operator.mul, self.shape, shape))
        pieces: float = sum(map(self.pieces.__getitem__, ids))
        return z + pieces / piece_norm


@dataclass(frozen=True, slots=True)
class Head:
    """The model for one prompt kind."""

    kind: str
    weight: float
    """How far this kind's percentile moves the complexity score (``weight * (percentile - 0.5)``)."""
    weak_fails: LinearOutput
    strong_fails: LinearOutput
    quantiles: tuple[float, ...]
    """The expected gain at percentiles 0, 1, ..., 100 of this kind's training prompts."""

    def percentile(self, gain: float) -> float:
        q = self.quantiles
        i = bisect.bisect_left(q, gain)
        if i == 0:
            return 0.0
        if i >= len(q):
            return 1.0
        lo, hi = q[i - 1], q[i]
        frac = (gain - lo) / (hi - lo) if hi > lo else 0.5
        return (i - 1 + frac) / (len(q) - 1)


@dataclass(frozen=True, slots=True)
class Difficulty:
    """The learned estimate for one prompt."""

    kind: str
    gain: float
    """P(the weak model fails) - P(the strong model fails): the expected gain of paying for the strong one."""
    percentile: float
    """Share (0-1) of the same kind's training prompts with a lower expected gain."""
    weight: float
    """How far ``percentile`` moves the complexity score."""

    @property
    def shift(self) -> float:
        """What this estimate adds to the complexity score."""
        return self.weight * (self.percentile - 0.5)


@dataclass(frozen=True, slots=True)
class DifficultyModel:
    heads: Mapping[str, Head]
    trained_on: str = ""

    def estimate(self, text: str) -> Difficulty:
        kind = prompt_kind(text)
        head = self.heads[kind]
        ids, norm = word_pieces(text)
        shape = shape_features(text)
        weak = sigmoid(head.weak_fails.logit(shape, ids, norm))
        strong = sigmoid(head.strong_fails.logit(shape, ids, norm))
        gain = weak - strong
        return Difficulty(kind, gain, head.percentile(gain), head.weight)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@cache
def _piece_weights() -> array.array[float]:
    """``piece_weight(id)`` for every vocabulary id, computed once for every learned model."""
    return array.array("d", (piece_weight(i) for i in range(len(vocabulary()))))


@lru_cache(maxsize=64)
def word_pieces(text: str) -> tuple[tuple[int, ...], float]:
    """``text``'s word-piece ids (``[UNK]`` alone for none) and their total ``piece_weight``: what a
    ``LinearOutput`` reads, the total being the weighted mean's denominator. Cached: the difficulty estimate
    and the tier model read the same prompt's pieces."""
    ids = tuple(wordpiece_ids(text)) or (vocabulary().get("[UNK]", 100),)
    table = _piece_weights()
    total: float = sum(map(table.__getitem__, ids))
    return ids, total


# -- loading -------------------------------------------------------------------------------------------
def need(mapping: Any, key: str, kind: type, where: str) -> Any:
    """``mapping[key]`` checked to be a ``kind`` (a ``ValueError`` naming ``where`` otherwise)."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"{where}: missing {key!r}")
    value = mapping[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def finite_floats(values: list[Any], where: str) -> tuple[float, ...]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"{where}: expected finite numbers")
    return tuple(float(v) for v in values)


def parse_linear_output(raw: Any, where: str, vocab_size: int, features: int = len(SHAPE_NAMES)) -> LinearOutput:
    """One packed regression: ``features`` feature weights, int8 per-piece weights with their scale, a bias."""
    shape = finite_floats(need(raw, "shape", list, where), f"{where}.shape")
    if len(shape) != features:
        raise ValueError(f"{where}.shape: {len(shape)} weights for {features} features")
    scale = need(raw, "pieces_scale", float, where)
    try:
        packed = base64.b64decode(need(raw, "pieces", str, where), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{where}.pieces: not base64 ({exc})") from None
    if len(packed) != vocab_size:
        raise ValueError(f"{where}.pieces: {len(packed)} weights for a vocabulary of {vocab_size}")
    int8 = array.array("b", packed)
    table = array.array("d", (piece_weight(i) * q * scale for i, q in enumerate(int8)))
    return LinearOutput(need(raw, "bias", float, where), shape, table)


def check_header(data: Any, fmt: int, names_key: str, names: Sequence[str], what: str) -> dict[str, int]:
    """A learned-weights file's format, feature names (``names_key``; ``what`` they are, for the message) and
    vocabulary size checked against this ultramax's; returns the vocabulary."""
    if need(data, "format", int, "the file") != fmt:
        raise ValueError(f"format {data['format']} (this ultramax reads format {fmt}); retrain or reinstall")
    if list(need(data, names_key, list, "the file")) != list(names):
        raise ValueError(f"its {what} are not the ones this ultramax computes; retrain")
    vocab = vocabulary()
    if need(data, "vocab_size", int, "the file") != len(vocab):
        raise ValueError(f"trained for a vocabulary of {data['vocab_size']}, the shipped tokenizer has {len(vocab)}")
    return vocab


def _parse(data: Any) -> DifficultyModel:
    vocab = check_header(data, FORMAT, "shape_names", SHAPE_NAMES, "shape features")
    heads_raw = need(data, "heads", dict, "the file")
    heads = {}
    for kind in KINDS:
        raw = need(heads_raw, kind, dict, "heads")
        where = f"heads.{kind}"
        quantiles = finite_floats(need(raw, "quantiles", list, where), f"{where}.quantiles")
        if len(quantiles) < 2 or list(quantiles) != sorted(quantiles):
            raise ValueError(f"{where}.quantiles: expected an ascending list")
        outputs = need(raw, "outputs", dict, where)
        heads[kind] = Head(
            kind=kind,
            weight=need(raw, "weight", float, where),
            weak_fails=parse_linear_output(need(outputs, "weak_fails", dict, where), f"{where}.weak_fails", len(vocab)),
            strong_fails=parse_linear_output(
                need(outputs, "strong_fails", dict, where), f"{where}.strong_fails", len(vocab)
            ),
            quantiles=quantiles,
        )
    return DifficultyModel(heads, str(data.get("trained_on", "")))


def read_weights(path: Path, parse: Callable[[Any], T], error: type[UltramaxError], what: str, trainer: str) -> T:
    """``parse`` of the JSON in ``path``; a missing or unusable file is an ``error`` naming it, ``what`` the
    weights are and the ``trainer`` that writes them."""
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise error(f"the router's {what} weights are missing: {path}; reinstall ultramax") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(
            f"the router's {what} weights in {path} are unusable ({exc}); reinstall ultramax or retrain them "
            f"with {trainer}"
        ) from None


def read_difficulty_model(path: Path) -> DifficultyModel:
    """Read and validate a weights file written by ``bench/router_train.py``."""
    return read_weights(path, _parse, DifficultyModelError, "difficulty", "bench/router_train.py")


@cache
def load_difficulty_model() -> DifficultyModel:
    """The shipped weights (``ultramax/routing/data/difficulty.json``), read once."""
    return read_difficulty_model(Path(str(resources.files("ultramax.routing").joinpath("data/difficulty.json"))))


@lru_cache(maxsize=512)
def estimate_difficulty(text: str) -> Difficulty:
    """The shipped model's estimate for ``text``, cached by text: every request of a Claude Code turn carries the
    same prompt, so a tool loop's requests reuse the first request's estimate."""
    return load_difficulty_model().estimate(text)
