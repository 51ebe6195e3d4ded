"""Credential file formats whose secrets have no ``NAME=value`` shape to recognise them by."""

from __future__ import annotations

import re

__all__ = ["redact_formats"]

# .netrc: "machine HOST login USER password PW", on one line or spread over several. Only lines made of netrc
# keywords and their values are touched, and only in text that has a "machine" entry.
_NETRC_MACHINE = re.compile(r"(?m)^[ \t]*(?:machine[ \t]+\S|default\b)")
_NETRC_PAIR = r"(?:(?:machine|login|password|passwd|account|port|macdef)[ \t]+\S+|default)"
_NETRC_LINE = re.compile(rf"(?m)^[ \t]*{_NETRC_PAIR}(?:[ \t]+{_NETRC_PAIR})*[ \t]*$")
_NETRC_SECRET = re.compile(r"\b(login|password|passwd|account)([ \t]+)(?!\[REDACTED:)\S+")


def _netrc(text: str) -> str:
    if not _NETRC_MACHINE.search(text):
        return text
    return _NETRC_LINE.sub(lambda m: _NETRC_SECRET.sub(r"\1\2[REDACTED:netrc]", m.group(0)), text)


def redact_formats(text: str) -> str:
    """``text`` with the secrets of .netrc entries redacted."""
    return _netrc(text)
