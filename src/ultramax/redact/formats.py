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


# .pgpass: host:port:database:user:password, the whole line without spaces.
_PGPASS = re.compile(r"(?m)^([A-Za-z0-9.\-_*\[\]]+:(?:\d+|\*):[^\s:]+:[^\s:]+:)(?!\[REDACTED:)(\S+)$")


def _pgpass(text: str) -> str:
    return _PGPASS.sub(r"\1[REDACTED:password]", text) if ":" in text else text


# Kubernetes Secrets: every value under data:/stringData: is secret, whatever its key is called (tls.key,
# .dockerconfigjson, DATABASE_URL). Under a data: block of another kind, values that are base64 are.
_K8S_SECRET = re.compile(r"(?m)^[ \t]*kind:[ \t]*[\"']?Secret[\"']?[ \t]*$")
_DATA_BLOCK = re.compile(r"(?m)^([ \t]*)(?:data|stringData):[ \t]*$")
_ENTRY = re.compile(r"^([ \t]*[\"']?[\w.\-]+[\"']?:)([ \t]*)(.*)$")
_BASE64 = re.compile(r"[\"']?((?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)[\"']?")
_JSON_SECRET = re.compile(r"\"kind\"\s*:\s*\"Secret\"")
_JSON_DATA = re.compile(r"(\"(?:data|stringData)\"\s*:\s*\{)([^{}]*)(\})")
_JSON_VALUE = re.compile(r"(\"[^\"]*\"\s*:\s*\")([^\"]*)(\")")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _yaml_data(text: str, secret: bool) -> str:
    lines = text.split("\n")
    starts = {text.count("\n", 0, m.start()): len(m.group(1)) for m in _DATA_BLOCK.finditer(text)}
    block: int | None = None  # indentation of the data: key while inside its block
    scalar: int | None = None  # indentation of an entry whose value is a block scalar (key: |)
    for i, line in enumerate(lines):
        if i in starts:
            block, scalar = starts[i], None
            continue
        if block is None or not line.strip():
            continue
        indent = _indent(line)
        if indent <= block:
            block = None
            continue
        if scalar is not None and indent > scalar:
            lines[i] = line[:indent] + "[REDACTED:k8s-secret]" if secret else line
            continue
        scalar = None
        entry = _ENTRY.match(line)
        if entry is None or not entry.group(3) or entry.group(3).startswith("[REDACTED:"):
            continue
        if entry.group(3)[:1] in "|>":
            scalar = indent
        elif secret or _BASE64.fullmatch(entry.group(3).strip()):
            lines[i] = f"{entry.group(1)}{entry.group(2)}[REDACTED:k8s-secret]"
    return "\n".join(lines)


def _kubernetes(text: str) -> str:
    if "ata" not in text:
        return text
    if _JSON_SECRET.search(text):
        text = _JSON_DATA.sub(
            lambda m: m.group(1) + _JSON_VALUE.sub(r"\1[REDACTED:k8s-secret]\3", m.group(2)) + m.group(3), text
        )
    if _DATA_BLOCK.search(text):
        text = _yaml_data(text, secret=bool(_K8S_SECRET.search(text)))
    return text


def redact_formats(text: str) -> str:
    """``text`` with the secrets of .netrc entries, .pgpass lines and Kubernetes Secrets redacted."""
    return _kubernetes(_pgpass(_netrc(text)))
