"""The cheapest adequate tier for a Claude Code prompt, learned from labelled prompts.

An ordinal logistic model (one score, two cut points: haiku | sonnet | opus) read from the prompt's *ask* --
its prose, without what was pasted into it (``split_prompt``: fenced blocks, stack traces, log and diff lines,
indented or symbol-heavy lines). Its inputs: the static MiniLM embedding of the ask's word pieces, folded into
one int8 weight per vocabulary piece (as in the learned difficulty, ``difficulty``); the ask's shape features;
the seed's pattern signals on the ask (how many architecture, coding, simple and reasoning patterns fired, and
the seed's score); how much was pasted; and the ask's *contextual* MiniLM sentence embedding -- the memory's
own ONNX model (``ultramax.memory.embed``), run once per new prompt that needs it (about 3 ms for a typical
ask on two cores) -- and what the labelled training prompts nearest to it in that embedding were labelled
(``neighbours``). The word pieces say what the ask is about; the sentence embedding reads how it is put
together ("why does X sometimes ..." against "rename X"), and the neighbours let the linear model see
what is not linear in it; file-held-out cross-validation valued the two at about five and three points of
accuracy. A long stack trace under "which line fails?" says nothing about how hard the job is, and a
two-line ask about a race is not made easy by its shortness.

A *fallback* model fitted without the sentence embedding scores every prompt first (no transformer). Where its
score lies at least ``TierModel.confident_margin`` from both of its cut points, its tier is taken and the
transformer does not run -- about a quarter of prompts, at half a point of cross-validated accuracy. Where the
embedding model cannot run (onnxruntime or the model file missing or broken) or is switched off, the fallback
decides every prompt, and the estimate says which model decided (``TierEstimate.head``): routing goes on, a
little less accurately, instead of failing Claude Code's request.

A second logistic regression over the same inputs, the *gate*, says whether a prompt is software work like
the prompts the tiers were learned from, or general chat (writing, trivia, maths, advice): the tier model only
knows the first, so the analyzer scores the second the way it always did (the seed's patterns and the learned
difficulty trained on RouteLLM's chat benchmark). It only decides for other clients' prompts -- whatever
Claude Code sends is scored by the tier model, which learned exactly that -- and needs no sentence embedding,
so other clients' general chat never runs the transformer.

The score becomes the router's complexity by a monotone map that puts the lower cut point at the seed's
sonnet threshold (0.3) and the upper one at its opus threshold (0.7), so ``routing.sonnetThreshold`` and
``routing.opusThreshold`` still move the boundaries the way their help says.

Trained by ``bench/router_tier_train.py`` on the labelled prompts in ``bench/data/router_tiers/`` (cut points
chosen by cross-validation that holds out one file at a time); ``bench/data/claude_code_holdout.jsonl`` is
never read by the trainer. Shipped as ``data/tiers.json`` and the neighbour bank beside it; a missing or
corrupt file is a ``TierModelError`` naming it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultramax.errors import UltramaxError
from ultramax.routing.difficulty import (
    LinearOutput,
    check_header,
    finite_floats,
    need,
    parse_linear_output,
    read_weights,
    sigmoid,
    word_pieces,
)
from ultramax.routing.prompt_features import SHAPE_NAMES, shape_features

if TYPE_CHECKING:
    from ultramax.memory.embed import OnnxEmbedder
    from ultramax.routing.neighbours import NeighbourBank

log = logging.getLogger(__name__)

__all__ = [
    "CONTEXT_DIM",
    "FEATURE_NAMES",
    "FORMAT",
    "HEADS",
    "PATTERN_FEATURES",
    "TIERS",
    "OrdinalHead",
    "TierEstimate",
    "TierModel",
    "TierModelError",
    "ask_embedding",
    "embedding_unavailable",
    "estimate_tier",
    "load_tier_model",
    "read_tier_model",
    "split_prompt",
    "tier_features",
]

FORMAT = 2
CONTEXT_DIM = 384
"""The sentence embedding's width (all-MiniLM-L6-v2)."""
TIERS = ("haiku", "sonnet", "opus")
HEADS = ("main", "confident", "fallback")
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
    head: str = "main"
    """Which model decided (``HEADS``): ``main`` read the sentence embedding and the neighbours; ``confident``
    is the fallback where its score lay so far from both cut points that cross-validation found the main model
    adds nothing there (``TierModel.confident_margin``), so the transformer did not run; ``fallback`` stood in
    because the embedding could not run or is switched off."""

    @property
    def contextual(self) -> bool:
        """Whether the sentence embedding was read."""
        return self.head == "main"


@dataclass(frozen=True, slots=True)
class OrdinalHead:
    """One fitted ordinal model: its linear score and the two cut points on it."""

    output: LinearOutput
    cuts: tuple[float, float]

    def estimate(self, features: Sequence[float], ids: Sequence[int], norm: float) -> tuple[float, str, float]:
        return self.decide(self.output.logit(features, ids, norm))

    def decide(self, s: float) -> tuple[float, str, float]:
        """``(score, tier, complexity)`` for a score."""
        low, high = self.cuts
        tier = TIERS[2] if s > high else TIERS[1] if s > low else TIERS[0]
        return s, tier, max(0.0, min(1.0, SONNET_AT + (OPUS_AT - SONNET_AT) * (s - low) / (high - low)))

    def margin(self, s: float) -> float:
        """How far a score lies from the nearer cut point."""
        return min(abs(s - self.cuts[0]), abs(s - self.cuts[1]))


@dataclass(frozen=True, slots=True)
class TierModel:
    main: OrdinalHead
    """Over the features, the ask's sentence embedding and its nearest labelled prompts (``neighbours``)."""
    fallback: OrdinalHead
    """Over the features alone: decides where it is sure (``confident_margin``) and where the embedding cannot
    run or is switched off."""
    gate: LinearOutput
    """Software work (what the tiers were learned from) against general chatbot prompts."""
    bank: NeighbourBank
    trained_on: str = ""
    confident_margin: float | None = None
    """Where the fallback's score is at least this far from both of its cut points, its tier is taken and the
    sentence embedding is not run: the smallest margin at which file-held-out cross-validation lost at most half
    a point of accuracy against the main model alone (``bench/router_tier_train.py``). None: always the main."""

    def estimate(
        self,
        ask: str,
        patterns: Sequence[float],
        pasted: str = "",
        embed: Callable[[str], Sequence[float] | None] | None = None,
        *,
        gated: bool = True,
    ) -> TierEstimate:
        """The estimate for a prompt split by ``split_prompt``; ``patterns`` are the seed's signals on ``ask``.
        ``embed`` gives the ask's sentence embedding (``ask_embedding``) and is called only where the estimate
        is used -- for every prompt with ``gated`` off (Claude Code's own), else for what the gate judges
        software work; without it, or when it gives None, the fallback model decides."""
        ids, norm = word_pieces(ask)
        features = tier_features(ask, patterns, pasted)
        software = sigmoid(self.gate.logit(features, ids, norm))
        fallback = self.fallback.estimate(features, ids, norm)
        if embed is None or (gated and software < 0.5):
            return TierEstimate(*fallback, software, "fallback")
        if self.confident_margin is not None and self.fallback.margin(fallback[0]) >= self.confident_margin:
            return TierEstimate(*fallback, software, "confident")
        context = embed(ask)
        if context is None:
            return TierEstimate(*fallback, software, "fallback")
        if len(context) != CONTEXT_DIM:
            raise ValueError(f"expected a sentence embedding of {CONTEXT_DIM} values, got {len(context)}")
        near = self.bank.features(tuple(context))
        return TierEstimate(*self.main.estimate((*features, *context, *near), ids, norm), software, "main")


def _parse(data: Any, directory: Path) -> TierModel:
    vocab = check_header(data, FORMAT, "feature_names", FEATURE_NAMES, "features")
    if need(data, "context_dim", int, "the file") != CONTEXT_DIM:
        raise ValueError(f"trained on a sentence embedding of {data['context_dim']} values, not {CONTEXT_DIM}")

    def ordinal(where: str, width: int) -> OrdinalHead:
        raw = need(data, where, dict, "the file")
        output = parse_linear_output(need(raw, "output", dict, where), f"{where}.output", len(vocab), width)
        cuts = finite_floats(need(raw, "cuts", list, where), f"{where}.cuts")
        if len(cuts) != 2 or not cuts[0] < cuts[1]:
            raise ValueError(f"{where}.cuts: expected two ascending cut points")
        return OrdinalHead(output, (cuts[0], cuts[1]))

    from ultramax.routing.neighbours import NEIGHBOUR_FEATURES, read_bank

    main = ordinal("main", len(FEATURE_NAMES) + CONTEXT_DIM + len(NEIGHBOUR_FEATURES))
    fallback = ordinal("fallback", len(FEATURE_NAMES))
    gate = parse_linear_output(need(data, "gate", dict, "the file"), "gate", len(vocab), len(FEATURE_NAMES))
    near = need(data, "neighbours", dict, "the file")
    name = need(near, "file", str, "neighbours")
    if Path(name).name != name:
        raise ValueError(f"neighbours.file: {name!r} is not a file name beside the weights")
    bank = read_bank(directory / name, need(near, "k", int, "neighbours"), CONTEXT_DIM)
    margin = data["fallback"].get("confident_margin")  # absent or null: the main model always decides
    if margin is not None and not (
        isinstance(margin, int | float) and not isinstance(margin, bool) and math.isfinite(margin) and margin >= 0
    ):
        raise ValueError(f"fallback.confident_margin: expected a distance >= 0 or null, got {margin!r}")
    return TierModel(main, fallback, gate, bank, str(data.get("trained_on", "")), margin)


def read_tier_model(path: Path) -> TierModel:
    """Read and validate a weights file written by ``bench/router_tier_train.py``, and its neighbour bank."""
    return read_weights(
        path, lambda data: _parse(data, path.parent), TierModelError, "tier", "bench/router_tier_train.py"
    )


@cache
def load_tier_model() -> TierModel:
    """The shipped weights (``ultramax/routing/data/tiers.json``), read once."""
    return read_tier_model(Path(str(resources.files("ultramax.routing").joinpath("data/tiers.json"))))


_EMBEDDING_FAILED: list[str] = []
_EMBEDDING_LOCK = threading.Lock()
_EMBEDDERS: list[OnnxEmbedder] = []


def _embedder() -> OnnxEmbedder:
    """The router's own session of the memory's model, set for one short text at a time: both cores, threads
    spinning between operators (the daemon's session is set for throughput beside other work)."""
    from ultramax.memory.embed import OnnxEmbedder, model_dir

    with _EMBEDDING_LOCK:
        if not _EMBEDDERS:
            _EMBEDDERS.append(OnnxEmbedder(model_dir(), threads=2, parallel_batches=False, spinning=True))
        return _EMBEDDERS[0]


def ask_embedding(ask: str) -> tuple[float, ...] | None:
    """The ask's MiniLM sentence embedding, as the trainer computed it; None (logged once) where the model
    cannot run, so the caller falls back instead of failing a request."""
    if _EMBEDDING_FAILED:
        return None
    try:
        vector = _embedder().embed([ask])[0]
    except (UltramaxError, ImportError, OSError) as exc:  # the embedder translates onnxruntime's own errors
        with _EMBEDDING_LOCK:
            if not _EMBEDDING_FAILED:
                _EMBEDDING_FAILED.append(f"{type(exc).__name__}: {exc}")
                log.warning(
                    "the router's sentence embedding is unavailable (%s); routing with the fallback tier model. "
                    "Reinstall ultramax (`ultramax doctor` checks the model).",
                    exc,
                )
        return None
    return tuple(vector.tolist())


def embedding_unavailable() -> str:
    """Why the sentence embedding could not run in this process, or "" if it has not failed."""
    return _EMBEDDING_FAILED[0] if _EMBEDDING_FAILED else ""


@lru_cache(maxsize=512)
def estimate_tier(
    ask: str, patterns: tuple[float, ...], pasted: str = "", *, sentence_embedding: bool = True, gated: bool = True
) -> TierEstimate:
    """The shipped model's estimate, cached: a turn's requests all carry the same prompt. The sentence
    embedding runs only where the estimate will be used -- for every prompt with ``gated`` off (Claude Code's
    own), else for what the gate judges software work -- and not at all with ``sentence_embedding`` off
    (``routing.sentenceEmbedding``)."""
    return load_tier_model().estimate(ask, patterns, pasted, ask_embedding if sentence_embedding else None, gated=gated)
