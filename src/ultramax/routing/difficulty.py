"""A small learned estimate of how likely a cheaper model is to fall short on a prompt.

Logistic regression over words, word pairs and a few shape features (length, numbers, code, choices),
trained by ``bench/router_train.py`` on the *training half* of the RouteLLM data (GSM8K, MMLU, MT-Bench:
did the weak model fail where the strong one did not?) and shipped as ``data/difficulty.json``. Pure Python,
no download, ~0.1 ms a prompt. Which half a prompt belongs to is ``is_training_prompt`` (a hash of its text),
so the benchmark can score only prompts the weights never saw.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["DifficultyModel", "features", "is_training_prompt", "load_difficulty_model"]

_TOKEN = re.compile(r"[a-z][a-z']*|\d+(?:[.,]\d+)*")
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|=>|\(\)", re.M)
_CHOICES = re.compile(r"^\s*\(?[A-D][.)]\s", re.M)
_MATH = re.compile(r"[=+*/^<>]|\b(?:sqrt|integral|derivative|equation|probability|prove|theorem)\b")
_MAX_CHARS = 20_000


def features(text: str) -> dict[str, float]:
    """The model's input for ``text``: sparse word / pair indicators plus scaled shape features."""
    text = text[:_MAX_CHARS]
    lower = text.lower()
    tokens = _TOKEN.findall(lower)
    words = [t for t in tokens if t[0].isalpha()]
    numbers = len(tokens) - len(words)
    out: dict[str, float] = {"bias": 1.0}
    for word in set(words):
        out["w:" + word] = 1.0
    for a, b in set(itertools.pairwise(words)):
        out[f"b:{a}_{b}"] = 1.0
    out["len"] = math.log1p(len(text)) / 8.0
    out["words"] = math.log1p(len(words)) / 6.0
    out["numbers"] = math.log1p(numbers) / 3.0
    out["sentences"] = math.log1p(len(re.findall(r"[.?!](?:\s|$)", text))) / 3.0
    out["lines"] = math.log1p(text.count("\n")) / 3.0
    out["code"] = min(len(_CODE.findall(text)), 5) / 5.0
    out["choices"] = 1.0 if len(_CHOICES.findall(text)) >= 3 else 0.0
    out["math"] = min(len(_MATH.findall(lower)), 10) / 10.0
    out["question"] = 1.0 if "?" in text else 0.0
    return out


def is_training_prompt(text: str) -> bool:
    """Whether ``text`` is in the half of the RouteLLM prompts the shipped weights were trained on."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0


@dataclass(frozen=True, slots=True)
class DifficultyModel:
    weights: Mapping[str, float]
    trained_on: str = ""

    def logit(self, text: str) -> float:
        w = self.weights
        return sum(w.get(name, 0.0) * value for name, value in features(text).items())

    def score(self, text: str) -> float:
        """P(a cheaper model falls short on ``text``), in (0, 1)."""
        z = max(-30.0, min(30.0, self.logit(text)))
        return 1.0 / (1.0 + math.exp(-z))


@cache
def load_difficulty_model() -> DifficultyModel:
    """The shipped weights (an all-zero model, i.e. 0.5 everywhere, if the file is missing)."""
    try:
        raw = resources.files("ultramax.routing").joinpath("data/difficulty.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return DifficultyModel({})
    data = json.loads(raw)
    return DifficultyModel(dict(data.get("weights", {})), str(data.get("trained_on", "")))
