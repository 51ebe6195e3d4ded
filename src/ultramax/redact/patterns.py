"""The shapes of secrets: provider keys, cloud keys, VCS tokens, bearer tokens, JWTs, private key blocks,
passwords inside URLs and ``NAME=value`` assignments whose name says secret."""

from __future__ import annotations

import re

__all__ = ["MAYBE", "PATTERNS"]

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private-key",
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
    ),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|live-|test-|svcacct-|admin-)?(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}")),
    ("stripe-key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("gitlab-token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}")),
    ("slack-token", re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}")),
    ("huggingface-token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("webhook-secret", re.compile(r"\bwhsec_[A-Za-z0-9+/=]{20,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer-token", re.compile(r"(?i)(?<=\bbearer )(?=[A-Za-z0-9._~+/\-]*\d)[A-Za-z0-9._~+/\-]{16,}=*")),
    ("url-password", re.compile(r"(?<=://)(?!\[REDACTED:)[^/\s:@]+:[^/\s@]+(?=@)")),
    (
        # NAME=value / "name": "value" where the name *ends* in a secret word: DB_PASSWORD, apiKey,
        # "client_secret", --password. Names that merely contain one (tokenizer, max_tokens, token_count,
        # password_reset_url, Secretary) and the shell's PWD/OLDPWD are ordinary text.
        "secret-assignment",
        re.compile(
            r"(?<![A-Za-z0-9_\-])(?!(?i:(?:old)?pwd)\b)"
            r"([A-Za-z0-9_\-]*?(?i:secret|token|password|passwd|passphrase|pwd|api[_\-]?key|access[_\-]?key"
            r"|private[_\-]?key|secret[_\-]?key|auth[_\-]?key|credentials?)\d*)(?![A-Za-z0-9_\-])"
            r"(['\"]?\s*[:=]\s*)(['\"]?)(?!\[REDACTED:)([^\s'\"]{4,})\3"
        ),
    ),
)


# One cheap pass decides whether any pattern can match at all; almost all text has no secret in it.
MAYBE = re.compile(
    r"PRIVATE KEY|sk-|[rs]k_|AKIA|ASIA|gh[pousr]_|github_pat_|glpat-|xox[abposre]-|AIza|eyJ|hf_|npm_|whsec_|"
    r"://[^/\s]*@|"
    r"(?i:bearer |secret|token|passw|passphrase|pwd|credential"
    r"|api[_\-]?key|access[_\-]?key|private[_\-]?key|auth[_\-]?key)"
)
