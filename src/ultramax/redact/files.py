"""Files whose every value may be secret: ``.env`` files and other credential stores."""

from __future__ import annotations

import re

__all__ = ["is_env_file", "redact_env_lines"]

_ENV_FILE = re.compile(r"(?:^|/)(?:\.env(?:\.[\w.\-]+)?|[\w.\-]+\.env|\.envrc|\.netrc|\.npmrc|\.pypirc)$")
_ENV_LINE = re.compile(r"(?m)^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.\-]*\s*[=:]\s*)(?!\[REDACTED:)(\S.*?)\s*$")


def is_env_file(path: str) -> bool:
    """Whether ``path`` names a file of environment values or credentials (.env, .env.local, x.env, .netrc...)."""
    return bool(_ENV_FILE.search(path.strip()))


def redact_env_lines(text: str) -> str:
    """Every ``NAME=value`` line's value redacted, whatever the name says."""
    return _ENV_LINE.sub(lambda m: f"{m.group(1)}[REDACTED:env]", text)
