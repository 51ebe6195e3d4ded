"""What a value looks like: random enough to be a credential, or a reference to one kept elsewhere."""

from __future__ import annotations

import re

__all__ = ["is_path", "is_plain_word", "is_reference", "looks_random"]

_CLASS_CHANGE = re.compile(r"[a-z](?=[A-Z0-9])|[A-Z](?=[a-z0-9])|[0-9](?=[A-Za-z])")
_REFERENCE = re.compile(
    r"\$[{(\w]|\{\{|.*\*{3,}|\{%|\{[\w.]*\}$|%\(|%[sdr]$|%\w+%|<[^<>\s]*>$|\[REDACTED:|x{6,}$|X{6,}$"
    r"|!(?:Ref|Sub|GetAtt|Secret)\b|.*(?:\.\.\.|…)$|#[0-9a-fA-F]{3,8}$|\[\w+\]$"
)
_PATH = re.compile(r"(?:~|\.{1,2})?/[\w.\-/~]*|[a-z0-9_.\-]+(?:/[a-z0-9_.\-]+)+/?")
# Types, keywords and the small words of prose: a secret-named variable "set" to one of these is code or
# a sentence ("password: str", "token = await f()", "password: must be 12 characters", "--password flag").
_WORDS = (
    "str string int integer bool boolean number float double bytes bytearray any object unknown never void none"
    " null nil undefined true false secretstr secretbytes char text varchar list dict tuple set optional required"
    " array map record buffer uuid bearer basic digest"  # types, and auth schemes (token_type = bearer)
    " await new yield lambda function async return typeof require import self this cls fn func def let const var"
    " static readonly private public protected"  # keywords
    " must should will can may is are was were be the a an to of for and or not no yes see use empty missing"
    " invalid expired changed provided needed hidden masked redacted unset here below above same flag option"
    " prompt stdin field value from in on with via options argument arguments parameter flags read write"
    " requires"  # prose
)
_PLAIN_WORDS = frozenset(_WORDS.split())
_SEGMENT = re.compile(r"[^/.\-_~]+")


def looks_random(value: str, min_len: int = 16) -> bool:
    """Long and with letters and digits mixed through it, as generated keys are: ``9f8e7d6c5b4a3928``,
    ``Tr0ub4dor3xyz`` -- not words with a number on the end (``authentication2024``, ``Release2025``)."""
    if len(value) < min_len or not any(c.isdigit() for c in value):
        return False
    return len(_CLASS_CHANGE.findall(value)) >= 3


def is_plain_word(value: str) -> bool:
    """Whether ``value`` is a type, a keyword or a small word of prose (see ``_PLAIN_WORDS``)."""
    return value.lower() in _PLAIN_WORDS


def is_reference(value: str) -> bool:
    """Whether ``value`` points at a secret instead of being one: ``$VAR``, ``${VAR}``, ``$(cmd)``, ``{{ x }}``,
    ``%(x)s``, ``%VAR%``, ``<your-token>``, a mask (``****``), an elision (``sk-...``), a colour, a redaction
    already made."""
    return bool(_REFERENCE.match(value))


def is_path(value: str) -> bool:
    """Whether ``value`` is a file or resource path (``~/.aws/credentials``, ``/run/secrets/db``,
    ``projects/p/secrets/db-pass/versions/latest``): lower-case segments, or rooted -- and no part of it
    random (a base64 key can start with a slash)."""
    return bool(_PATH.fullmatch(value)) and not any(looks_random(s, 10) for s in _SEGMENT.findall(value))
