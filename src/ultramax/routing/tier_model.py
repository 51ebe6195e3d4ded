"""The cheapest adequate tier for a Claude Code prompt, learned from labelled prompts.

An ordinal logistic model (one score, two cut points: haiku | sonnet | opus) over the same kind of inputs as
the learned difficulty (``difficulty``), read from the prompt's *ask* -- its prose, without what was pasted
into it (``split_prompt``: fenced blocks, stack traces, log and diff lines, indented or symbol-heavy lines):
the static MiniLM embedding of the ask's word pieces, folded into one int8 weight per vocabulary piece; the
ask's shape features; the seed's pattern signals on the ask (how many architecture, coding, simple and
reasoning patterns fired, and the seed's score); and how much was pasted. A long stack trace under "which
line fails?" says nothing about how hard the job is, and a two-line ask about a race is not made easy by its
shortness. Nothing runs a transformer at routing time and nothing needs numpy.

A second logistic regression over the same inputs, the *gate*, says whether a prompt is software work like
the prompts the tiers were learned from, or general chat (writing, trivia, maths, advice): the tier model only
knows the first, so the analyzer scores the second the way it always did (the seed's patterns and the learned
difficulty trained on RouteLLM's chat benchmark).

The score becomes the router's complexity by a monotone map that puts the lower cut point at the seed's
sonnet threshold (0.3) and the upper one at its opus threshold (0.7), so ``routing.sonnetThreshold`` and
``routing.opusThreshold`` still move the boundaries the way their help says.

Trained by ``bench/router_tier_train.py`` on the labelled prompts in ``bench/data/router_tiers/`` (cut points
chosen by cross-validation that holds out one file at a time); ``bench/data/claude_code_holdout.jsonl`` is
never read by the trainer. Shipped as ``data/tiers.json``; a missing or corrupt file is a
``TierModelError`` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ultramax.errors import UltramaxError
from ultramax.routing.difficulty import (
    LinearOutput,
    finite_floats,
    need,
    parse_linear_output,
    read_weights,
    sigmoid,
    word_pieces,
)
from ultramax.routing.prompt_features import SHAPE_NAMES, shape_features, vocabulary

__all__ = [
    "FEATURE_NAMES",
    "FORMAT",
    "PATTERN_FEATURES",
    "TIERS",
    "TierEstimate",
    "TierModel",
    "TierModelError",
    "estimate_tier",
    "load_tier_model",
    "read_tier_model",
    "split_prompt",
    "tier_features",
]

FORMAT = 1
TIERS = ("haiku", "sonnet", "opus")
PATTERN_FEATURES = ("complex_hits", "coding_hits", "simple_hits", "reasoning_hits", "pattern_score")
PASTE_FEATURES = ("pasted_chars", "pasted_lines")
FEATURE_NAMES = (*SHAPE_NAMES, *PATTERN_FEATURES, *PASTE_FEATURES)
SONNET_AT, OPUS_AT = 0.3, 0.7
"""Where the model's two cut points land on the complexity scale: the seed's default thresholds."""


class TierModelError(UltramaxError):
    """The learned tier weights are missing, corrupt, or do not match the shipped tokenizer."""


_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_PASTED_LINE = re.compile(
    r"^(?:\s{4,}|\t)"  # indented: code, YAML, a plan
    r"|^\s*at [\w.$<>]+\(|File \".*\", line \d+|^\s*(?:Traceback|Caused by|E\s{2,}|\w*(?:Error|Exception)\b:)"
    r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d"  # a log line's timestamp
    r"|^\s*(?:\+\+\+|---|@@|[+-]\s)"  # a diff
    r"|^\s*[$#>] |^\s*[{}\[\]<]|[;{}]\s*$|^\s*\w+(?:\.\w+)+\(|^\s*(?:NAME|PID|CONTAINER)\b"
)


def split_prompt(text: str) -> tuple[str, str]:
    """``(ask, pasted)``: the prompt's own prose, and what was pasted into it (fenced blocks, traces, logs,
    diffs, code and other symbol-heavy lines). A prompt that is all paste keeps its first 200 characters as
    the ask."""
    pasted: list[str] = []

    def fence(m: re.Match[str]) -> str:
        pasted.append(m.group())
        return "\n"

    ask: list[str] = []
    for line in _FENCE.sub(fence, text).splitlines():
        prose = sum(c.isalpha() or c == " " for c in line)
        if line.strip() and (_PASTED_LINE.search(line) or (len(line) > 20 and prose < 0.6 * len(line))):
            pasted.append(line)
        else:
            ask.append(line)
    return "\n".join(ask).strip() or text[:200], "\n".join(pasted)


def tier_features(ask: str, patterns: Sequence[float], pasted: str) -> tuple[float, ...]:
    """The model's features: the ask's shape, ``patterns`` (one value per ``PATTERN_FEATURES``, read from the
    ask), and the size of what was pasted."""
    if len(patterns) != len(PATTERN_FEATURES):
        raise ValueError(f"expected {len(PATTERN_FEATURES)} pattern values, got {len(patterns)}")
    lines = pasted.count("\n") + 1 if pasted else 0
    return (*shape_features(ask), *(float(v) for v in patterns), math.log1p(len(pasted)), math.log1p(lines))


@dataclass(frozen=True, slots=True)
class TierEstimate:
    score: float
    tier: str
    """The tier the model's own cut points give (what the default thresholds give too)."""
    complexity: float
    """``score`` on the router's 0-1 complexity scale: the cut points at 0.3 and 0.7."""
    software: float
    """P(the prompt is software work, like the prompts the model learned from) rather than general chat."""


@dataclass(frozen=True, slots=True)
class TierModel:
    output: LinearOutput
    cuts: tuple[float, float]
    gate: LinearOutput
    """Software work (what the tiers were learned from) against general chatbot prompts."""
    trained_on: str = ""

    def estimate(self, ask: str, patterns: Sequence[float], pasted: str = "") -> TierEstimate:
        """The estimate for a prompt split by ``split_prompt``; ``patterns`` are the seed's signals on ``ask``."""
        ids, norm = word_pieces(ask)
        features = tier_features(ask, patterns, pasted)
        s = self.output.logit(features, ids, norm)
        low, high = self.cuts
        tier = TIERS[2] if s > high else TIERS[1] if s > low else TIERS[0]
        complexity = SONNET_AT + (OPUS_AT - SONNET_AT) * (s - low) / (high - low)
        software = sigmoid(self.gate.logit(features, ids, norm))
        return TierEstimate(s, tier, max(0.0, min(1.0, complexity)), software)


def _parse(data: Any) -> TierModel:
    if need(data, "format", int, "the file") != FORMAT:
        raise ValueError(f"format {data['format']} (this ultramax reads format {FORMAT}); retrain or reinstall")
    if list(need(data, "feature_names", list, "the file")) != list(FEATURE_NAMES):
        raise ValueError("its features are not the ones this ultramax computes; retrain")
    vocab = vocabulary()
    if need(data, "vocab_size", int, "the file") != len(vocab):
        raise ValueError(f"trained for a vocabulary of {data['vocab_size']}, the shipped tokenizer has {len(vocab)}")
    output = parse_linear_output(need(data, "output", dict, "the file"), "output", len(vocab), len(FEATURE_NAMES))
    gate = parse_linear_output(need(data, "gate", dict, "the file"), "gate", len(vocab), len(FEATURE_NAMES))
    cuts = finite_floats(need(data, "cuts", list, "the file"), "cuts")
    if len(cuts) != 2 or not cuts[0] < cuts[1]:
        raise ValueError("cuts: expected two ascending cut points")
    return TierModel(output, (cuts[0], cuts[1]), gate, str(data.get("trained_on", "")))


def read_tier_model(path: Path) -> TierModel:
    """Read and validate a weights file written by ``bench/router_tier_train.py``."""
    return read_weights(path, _parse, TierModelError, "tier", "bench/router_tier_train.py")


@cache
def load_tier_model() -> TierModel:
    """The shipped weights (``ultramax/routing/data/tiers.json``), read once."""
    return read_tier_model(Path(str(resources.files("ultramax.routing").joinpath("data/tiers.json"))))


@lru_cache(maxsize=512)
def estimate_tier(ask: str, patterns: tuple[float, ...], pasted: str = "") -> TierEstimate:
    """The shipped model's estimate, cached: a turn's requests all carry the same prompt."""
    return load_tier_model().estimate(ask, patterns, pasted)
