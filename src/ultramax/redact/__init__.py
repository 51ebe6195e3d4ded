"""Secret redaction: applied to everything before it is stored, logged or sent.

Patterns cover the credentials that actually show up in coding sessions: provider API keys, cloud keys,
VCS tokens, bearer tokens, JWTs, private key blocks, passwords inside URLs and ``NAME=value`` assignments
whose name says secret. A redacted value becomes ``[REDACTED:<kind>]`` so the text stays readable.
``<private>`` spans (``ultramax.redact.private``) become ``[REDACTED:private]``.
"""

from __future__ import annotations

from typing import Any

from ultramax.redact.assignments import redact_assignments
from ultramax.redact.files import (
    dumps_environment,
    is_env_file,
    is_key_file,
    prints_secret_variable,
    redact_env_lines,
)
from ultramax.redact.formats import redact_formats
from ultramax.redact.patterns import MAYBE, RULES
from ultramax.redact.private import strip_private

__all__ = [
    "dumps_environment",
    "is_env_file",
    "is_key_file",
    "prints_secret_variable",
    "redact",
    "redact_env",
    "redact_obj",
    "strip_private",
]


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``."""
    text = strip_private(text, "[REDACTED:private]")
    if not MAYBE.search(text):
        return text
    for rule in RULES:
        text = rule(text)
    return redact_assignments(redact_formats(text))


def redact_env(text: str) -> str:
    """The content of an ``.env``-style file with every value redacted (names kept): any value there may be
    a secret, whatever its name says."""
    return redact_env_lines(redact(text))


def redact_obj(value: Any) -> Any:
    """Redact every string inside a JSON-like value (dict keys are kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_obj(v) for v in value]
    return value
