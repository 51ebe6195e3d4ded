"""``NAME=value`` and ``"name": "value"`` where the name says secret."""

from __future__ import annotations

import re

__all__ = ["redact_assignments"]

# NAME=value / "name": "value" where the name *ends* in a secret word: DB_PASSWORD, apiKey,
# "client_secret", --password. Names that merely contain one (tokenizer, max_tokens, token_count,
# password_reset_url, Secretary) and the shell's PWD/OLDPWD are ordinary text.
_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_\-])(?!(?i:(?:old)?pwd)\b)"
    r"([A-Za-z0-9_\-]*?(?i:secret|token|password|passwd|passphrase|pwd|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|secret[_\-]?key|auth[_\-]?key|credentials?)\d*)(?![A-Za-z0-9_\-])"
    r"(['\"]?\s*[:=]\s*)(['\"]?)(?!\[REDACTED:)([^\s'\"]{4,})\3"
)


def redact_assignments(text: str) -> str:
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}[REDACTED:secret]{m.group(3)}", text)
