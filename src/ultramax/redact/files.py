"""Where secrets come in bulk: credential files (every value may be secret), key files (the whole content
is), and commands that print secret variables or the whole environment."""

from __future__ import annotations

import re

from ultramax.redact.names import is_secret_name

__all__ = ["dumps_environment", "is_env_file", "is_key_file", "prints_secret_variable", "redact_env_lines"]

_ENV_FILE = re.compile(
    r"(?:^|/)(?:\.env(?:\.[\w.\-]+)?|[\w.\-]+\.env|\.envrc|\.netrc|_netrc|\.npmrc|\.pypirc|\.pgpass|\.my\.cnf"
    r"|\.git-credentials|\.htpasswd|\.aws/credentials|\.docker/config\.json|[\w.\-]+\.tfvars(?:\.json)?"
    r"|secrets?\.ya?ml)$"
)
_KEY_FILE = re.compile(
    r"(?:^|/)(?:[^/]+\.(?:pem|key|ppk|p12|pfx|jks|keystore)|id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?!\.pub)[^/]*"
    r"|id_[\w\-]+|\.pgpass)$"
)
# Shell punctuation glued to a path ("cat .env;", "<.env", "'.env'") is not part of the file's name.
_SHELL_PUNCTUATION = ";|&\"'()<>`"
_ENV_LINE = re.compile(r"(?m)^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.\-]*\s*[=:]\s*)(?!\[REDACTED:)(\S.*?)\s*$")
_VARIABLE = re.compile(
    r"\$\{?([A-Za-z_]\w*)|%([A-Za-z_]\w*)%|\$env:([A-Za-z_]\w*)|\b(?:printenv|getenv)\s+([A-Za-z_]\w*)", re.I
)
_ENV_DUMP = re.compile(
    r"(?:^|[;&|(]|\bsudo)\s*(?:env|printenv|set|export(?:\s+-p)?|declare\s+-[a-z]*[xp][a-z]*|Get-ChildItem\s+env:)"
    r"\s*(?:$|[;&|)>])"
)


def _path_word(path: str) -> str:
    return path.strip().strip(_SHELL_PUNCTUATION)


def is_env_file(path: str) -> bool:
    """Whether ``path`` names a file of environment values or credentials (.env, .env.local, x.env, .netrc,
    .pgpass, .aws/credentials, *.tfvars, secrets.yaml...)."""
    return bool(_ENV_FILE.search(_path_word(path)))


def is_key_file(path: str) -> bool:
    """Whether ``path`` names a private key or a key store (*.pem, *.key, id_rsa, *.ppk, .pgpass...): nothing
    of its content may be kept."""
    return bool(_KEY_FILE.search(_path_word(path)))


def prints_secret_variable(command: str) -> bool:
    """Whether ``command`` refers to a variable whose name says secret (``echo $DB_PASSWORD``, ``printenv
    GITHUB_TOKEN``): what it prints may be the secret itself."""
    return any(is_secret_name(next(g for g in m.groups() if g)) for m in _VARIABLE.finditer(command))


def dumps_environment(command: str) -> bool:
    """Whether ``command`` prints the whole environment (``env``, ``printenv``, ``set``, ``export -p``)."""
    return bool(_ENV_DUMP.search(command.strip()))


def redact_env_lines(text: str) -> str:
    """Every ``NAME=value`` line's value redacted, whatever the name says."""
    return _ENV_LINE.sub(lambda m: f"{m.group(1)}[REDACTED:env]", text)
