"""Secret redaction: applied to everything before it is stored, logged or sent.

Patterns cover the credentials that actually show up in coding sessions: provider API keys, cloud keys,
VCS tokens, bearer tokens, JWTs, private key blocks, passwords inside URLs and ``NAME=value`` assignments
whose name says secret. A redacted value becomes ``[REDACTED:<kind>]`` so the text stays readable.
``<private>`` spans (``ultramax.redact.private``) become ``[REDACTED:private]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    "redact_argv",
    "redact_env",
    "redact_obj",
    "redact_path",
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


_PATH_SEPARATORS = re.compile(r"([/\\])")


def redact_path(path: str) -> str:
    """A file or directory path with every secret in it redacted: a name can be one (``config/sk-ant-....txt``,
    a token as a cache folder). Each component is judged alone first -- so ``token=...`` as a folder name is
    a secret, and a value never swallows the rest of the path -- then the whole, for secrets that span several
    components (a webhook URL)."""
    parts = _PATH_SEPARATORS.split(path)
    return redact("".join(part if part in ("", "/", "\\") else redact(part) for part in parts))


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command's arguments with every secret redacted, one for one: each argument alone (``--dsn=postgres://
    u:pw@h``), and an argument after a flag that names a secret (``--password hunter2``) read with its flag."""
    shown: list[str] = []
    for i, arg in enumerate(argv):
        alone = redact(arg)
        if i and alone == arg:
            before = argv[i - 1]
            pair = redact(f"{before} {arg}")
            if pair != f"{before} {arg}" and pair.startswith(f"{before} "):
                alone = pair[len(before) + 1 :]
        shown.append(alone)
    return shown


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
