"""Names that say their value is secret: DB_PASSWORD, apiKey, client_secret, SMTP_PASS, SECRET_KEY_BASE...

A name counts when it *ends* in a secret word. Names that merely contain one (tokenizer, max_tokens,
password_reset_url, secretKeyRef) and the shell's PWD/OLDPWD are ordinary. ``pass``, ``pw`` and ``auth`` only
count after a separator or a camel-case hump (DB_PASS, smtpPw, BASIC_AUTH, _auth), never inside a word
(compass, bypass, oauth).
"""

from __future__ import annotations

import re

__all__ = ["SECRET_NAME", "WEAK_NAME", "is_secret_name"]

# Words that end a secret name, case-insensitive (embedded in larger patterns, so no groups that capture).
SECRET_NAME = (
    r"(?:(?i:secret|token|password|passwd|passphrase|pwd|credentials?"
    r"|(?:api|access|private|secret|auth|app|encryption|master|signing|account|client|session)[_\-]?key"
    r"|secret[_\-]?key[_\-]?base)"
    r"|(?<=[_\-.])(?i:pass|pw|auth)|(?<=[a-z0-9])(?:Pass|Pw|PW|Auth))\d*"
)
# Names too common to trust on their own (auth: true, pass, PRIMARY_KEY): their values must look random.
WEAK_NAME = re.compile(r"(?i:auth|pass|pw)|[A-Z][A-Z0-9]*_KEY")
_NAME = re.compile(rf"[\w.\-]*?{SECRET_NAME}")
_SHELL_PWD = re.compile(r"(?i:(?:old)?pwd)")
# Every secret name ends in one of these: a cheap test that rules out almost every name first.
_HINT = re.compile(r"(?i:secret|token|pass\w*|pw|pwd|credentials?|key|base|auth)\d*$")


def is_secret_name(name: str) -> bool:
    """Whether a variable or key called ``name`` holds a secret (weak names included)."""
    if not _HINT.search(name[-16:]) or _SHELL_PWD.fullmatch(name):
        return False
    return bool(_NAME.fullmatch(name) or WEAK_NAME.fullmatch(name))
