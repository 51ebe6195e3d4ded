"""What a value looks like: random enough to be a credential, or a reference to one kept elsewhere."""

from __future__ import annotations

import re

__all__ = ["is_path", "is_reference", "looks_random"]

_CLASS_CHANGE = re.compile(r"[a-z](?=[A-Z0-9])|[A-Z](?=[a-z0-9])|[0-9](?=[A-Za-z])")
_REFERENCE = re.compile(
    r"\$[{(\w]|\{\{|\{%|%\(|%\w+%|<[^<>\s]*>$|\[REDACTED:|\*{3,}|x{6,}$|X{6,}$|!(?:Ref|Sub|GetAtt|Secret)\b"
)
_PATH = re.compile(r"(?:~|\.{1,2})?/[\w.\-/~]*|[a-z0-9_.\-]+(?:/[a-z0-9_.\-]+)+/?")
_SEGMENT = re.compile(r"[^/.\-_~]+")


def looks_random(value: str, min_len: int = 16) -> bool:
    """Long and with letters and digits mixed through it, as generated keys are: ``9f8e7d6c5b4a3928``,
    ``Tr0ub4dor3xyz`` -- not words with a number on the end (``authentication2024``, ``Release2025``)."""
    if len(value) < min_len or not any(c.isdigit() for c in value):
        return False
    return len(_CLASS_CHANGE.findall(value)) >= 3


def is_reference(value: str) -> bool:
    """Whether ``value`` points at a secret instead of being one: ``$VAR``, ``${VAR}``, ``$(cmd)``, ``{{ x }}``,
    ``%(x)s``, ``%VAR%``, ``<your-token>``, a mask (``****``), a redaction already made."""
    return bool(_REFERENCE.match(value))


def is_path(value: str) -> bool:
    """Whether ``value`` is a file or resource path (``~/.aws/credentials``, ``/run/secrets/db``,
    ``projects/p/secrets/db-pass/versions/latest``): lower-case segments, or rooted -- and no part of it
    random (a base64 key can start with a slash)."""
    return bool(_PATH.fullmatch(value)) and not any(looks_random(s, 10) for s in _SEGMENT.findall(value))
