"""The shapes of secrets: private key blocks, provider keys and tokens, webhook URLs, authorization headers,
passwords in URLs and on command lines."""

from __future__ import annotations

import re
from collections.abc import Callable

from ultramax.redact.values import is_path, is_plain_word, is_reference, looks_random

__all__ = ["MAYBE", "RULES", "Rule"]

Rule = Callable[[str], str]
Replacement = str | Callable[[re.Match[str]], str]


def _rule(pattern: str, replacement: Replacement, hint: str | None = None, flags: int = 0) -> Rule:
    """A substitution, skipped when ``hint`` (lower case) is not in the text: most rules are rare."""
    compiled = re.compile(pattern, flags)

    def apply(text: str) -> str:
        if hint is not None and hint not in text.lower():
            return text
        return compiled.sub(replacement, text)

    return apply


def _kind(kind: str) -> str:
    return f"[REDACTED:{kind}]"


_KEY_LABEL = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?"
_KEY_BLOCK = _rule(
    rf"-----BEGIN {_KEY_LABEL}-----(?:[ \t]*(?:\r?\n|\\n).*?(?:-----END {_KEY_LABEL}-----|\Z)|\Z)",
    _kind("private-key"),
    "private",
    re.S,
)
# A key whose BEGIN line was cut off (the tail of an output, a diff's middle lines): its base64 lines and
# headers, up to an END line. Found from the END line backwards, so that base64 without one costs nothing.
_KEY_END = re.compile(rf"(?m)^[ \t]*-----END {_KEY_LABEL}-----")
_KEY_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=]{4,}|(?:Proc-Type|DEK-Info|Version|Comment):[^\n]*)?[ \t]*\r?")


def _key_body(text: str) -> str:
    if "-----END" not in text:
        return text
    parts: list[str] = []
    pos = 0
    for m in _KEY_END.finditer(text):
        begin = m.start()
        while begin > pos and text[begin - 1] == "\n":
            line_start = max(text.rfind("\n", pos, begin - 1) + 1, pos)
            if not _KEY_LINE.fullmatch(text, line_start, begin - 1):
                break
            begin = line_start
        if begin < m.start():
            parts += [text[pos:begin], _kind("private-key")]
            pos = m.end()
    parts.append(text[pos:])
    return "".join(parts)


_PUTTY_KEY = _rule(
    r"(?m)^(Private-Lines:[ \t]*\d+)(?:\r?\n[ \t]*[A-Za-z0-9+/=]+[ \t]*)+",
    rf"\1\n{_kind('private-key')}",
    "private-lines",
)

# A token starts where no letter or digit stands before it -- an underscore counts as a separator, as it does in
# file names (backup_sk-ant-..., tok_ghp_...), which a regex word boundary would miss -- and ends likewise.
_VENDOR_TOKENS: tuple[tuple[str, str], ...] = (
    ("anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{16,}"),
    (
        "openai-key",
        r"sk-(?:proj|svcacct|admin|live|test|None|or-v1)-(?=[A-Za-z0-9_\-]{0,200}\d)[A-Za-z0-9_\-]{20,}"
        # legacy keys: one unbroken mixed-case run, unlike CSS names (sk-button-primary-color-2)
        r"|sk-(?=[A-Za-z0-9]{0,60}\d)(?=[A-Za-z0-9]{0,60}[A-Z])[A-Za-z0-9]{20,}[A-Za-z0-9_\-]*",
    ),
    ("stripe-key", r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("aws-access-key", r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("github-token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("gitlab-token", r"glpat-[A-Za-z0-9_\-]{20,}"),
    ("slack-token", r"xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,}"),
    ("huggingface-token", r"hf_[A-Za-z0-9]{30,}"),
    ("npm-token", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("pypi-token", r"pypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("webhook-secret", r"whsec_[A-Za-z0-9+/=]{20,}"),
    ("google-api-key", r"AIza[0-9A-Za-z_\-]{35}"),
    ("twilio-key", r"SK[0-9a-fA-F]{32}(?![A-Za-z0-9])"),
    ("sendgrid-key", r"SG\.[\w\-]{22}\.[\w\-]{43}\b"),
    ("discord-token", r"[MNO](?=[\w\-]{0,26}\d)[\w\-]{23,27}\.[\w\-]{6}\.[\w\-]{27,40}\b"),
    ("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
)
# One pattern for all of them, each alternative named after its kind: a single pass, and the lookahead on
# the first letters lets the scan skip almost every position.
_VENDOR_FIRST_LETTERS = "AMNOSeghnprswx"  # every token above starts with one of these
_VENDOR_PATTERN = re.compile(
    rf"(?=[{_VENDOR_FIRST_LETTERS}])(?<![A-Za-z0-9])(?:"
    + "|".join(f"(?P<k{i}>{pattern})" for i, (_, pattern) in enumerate(_VENDOR_TOKENS))
    + ")"
)


def _vendor(text: str) -> str:
    return _VENDOR_PATTERN.sub(lambda m: _kind(_VENDOR_TOKENS[int((m.lastgroup or "k0")[1:])][0]), text)


_WEBHOOKS = (
    _rule(r"(hooks\.slack\.com/)(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+", rf"\1{_kind('slack-webhook')}"),
    _rule(r"(discord(?:app)?\.com/api/webhooks/)\d+/[\w\-]+", rf"\1{_kind('discord-webhook')}", "webhooks"),
    # signed URLs (Azure SAS, S3 and GCS presigned) grant access until they expire
    _rule(
        r"(?i)([?&](?:sig|x-amz-signature|x-amz-security-token|x-goog-signature)=)[^&\s'\"#]+",
        rf"\1{_kind('signature')}",
        "=",
    ),
)


def _near(anchor: str, companion: str, kind: str, reach: int) -> Rule:
    """Redact ``companion`` within ``reach`` characters of ``anchor``: a secret with no shape of its own,
    known by the id printed next to it (an AWS secret key beside its access key id)."""
    anchor_re, companion_re = re.compile(anchor), re.compile(companion)

    def apply(text: str) -> str:
        spans: list[list[int]] = []
        for m in anchor_re.finditer(text):
            start, end = max(0, m.start() - reach), m.end() + reach
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        for start, end in reversed(spans):
            text = text[:start] + companion_re.sub(_kind(kind), text[start:end]) + text[end:]
        return text

    return apply


_PAIRED = (
    _near(
        r"\[REDACTED:aws-access-key\]",
        r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}\d)"
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        "aws-secret-key",
        400,
    ),
    _near(r"\bAC[0-9a-f]{32}\b", r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])", "twilio-token", 300),
)


_SCHEMES = r"bearer|basic|token|bot|digest|negotiate|apikey|sso-key"
_AUTHORIZATION = (
    rf"(?i)(\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?)(?:({_SCHEMES})([ \t]+))?"
    rf"(?!(?:{_SCHEMES})\b)(?!\[REDACTED:)([A-Za-z0-9._~+/\-]+=*)"
)


def _authorization(m: re.Match[str]) -> str:
    scheme, value = m.group(2), m.group(4)
    if scheme is None and not (len(value) >= 16 and any(c.isdigit() for c in value)):
        return m.group(0)
    if scheme is not None and len(value) < 8:
        return m.group(0)
    kind = "bearer-token" if (scheme or "").lower() == "bearer" else "authorization"
    return f"{m.group(1)}{scheme or ''}{m.group(3) or ''}{_kind(kind)}"


_BEARER = r"(?i)(\bbearer[ \t]+)(?!\[REDACTED:)([A-Za-z0-9._~+/\-]{16,}=*)"


def _bearer(m: re.Match[str]) -> str:
    # outside an Authorization header only what looks generated: "Bearer authentication2024" is prose
    return f"{m.group(1)}{_kind('bearer-token')}" if looks_random(m.group(2)) else m.group(0)


_HEADERS = (
    _rule(_AUTHORIZATION, _authorization, "authorization"),
    _rule(_BEARER, _bearer, "bearer"),
)

_URLS = (
    # scheme://user:password@host -- the user may be empty and the password may hold '@' or '/'; a port
    # (host:8080/) and npm scopes (/@babel/core) are not passwords
    _rule(
        r"(?<=://)(?!\[REDACTED:)([^/\s:@]*):(?!\[REDACTED:)(?!\d+/)(\S{1,256}?)"
        r"(?=@[A-Za-z0-9.\-]+(?::\d+)?(?:[/?#\s'\"),;>\]`|]|$))",
        rf"\1:{_kind('password')}",
        "@",
    ),
    # scheme://TOKEN@host (a Sentry DSN key, a token cloned with)
    _rule(r"(?<=://)(?!\[REDACTED:)(?=[^/\s:@]{0,200}\d)[^/\s:@]{20,}(?=@)", _kind("url-token"), "@"),
)

_VALUE = r"([\"']?)(?!\$)(?!\[REDACTED:)(?!-)([^\s'\"`]+)"
_FLAG_NAMES = (
    r"password|passwd|pass|token|secret|api[_\-]?key|access[_\-]?key|secret[_\-]?key|client[_\-]?secret"
    r"|auth[_\-]?token|access[_\-]?token"
)


def _flag(kind: str) -> Callable[[re.Match[str]], str]:
    """Redact a flag's value (the last group), unless it is a reference (``$PW``), a path (a key file) or a
    word of prose ("the --password flag")."""

    def replace(m: re.Match[str]) -> str:
        last = m.lastindex or 0
        if is_reference(m.group(last)) or is_path(m.group(last)) or is_plain_word(m.group(last)):
            return m.group(0)
        return m.group(0)[: m.start(last) - m.start()] + _kind(kind)

    return replace


_COMMAND_LINES = (
    # curl -u user:password, --user user:password (not docker's -u 1000:1000, not $USER:$PASS)
    _rule(
        r"(?<![\w\-])((?:-u|--user)(?:[ \t]+|=)[\"']?[^\s:'\"/$]+:)(?!//)(?!\d+\b)(?!\$)(?!\[REDACTED:)[^\s'\"]+",
        rf"\1{_kind('password')}",
    ),
    _rule(
        r"(?i)(\b(?:docker|podman|nerdctl|buildah|skopeo|helm|oras)(?:[ \t]+registry)?[ \t]+login\b[^\n;|&]*?"
        rf"[ \t](?:-p|--password)(?:[ \t]+|=)){_VALUE}",
        _flag("password"),
        "login",
    ),
    _rule(rf"(\bsshpass\b[^\n;|&]*?[ \t]-p[ \t]*){_VALUE}", _flag("password"), "sshpass"),
    # mysql -pPASSWORD (a bare -p prompts; -P is the port)
    _rule(
        r"(\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb(?:-dump)?)\b[^\n;|&]*?[ \t]-p)"
        r"([\"']?)(?!\$)(?!\[REDACTED:)([^\s'\"]+)",
        _flag("password"),
        "-p",
    ),
    # --password PW, --token T, --api-key K (the --name=value form is an assignment)
    _rule(rf"(?i)(?<![\w\-])(--(?:[\w\-]*?[_\-])?(?:{_FLAG_NAMES}))([ \t]+){_VALUE}", _flag("secret"), "--"),
    _rule(
        r"(?i)\b(aws_secret_access_key|aws_session_token)([ \t]+)(?!\[REDACTED:)[A-Za-z0-9/+=]{16,}",
        rf"\1\2{_kind('secret')}",
        "aws_",
    ),
)

RULES: tuple[Rule, ...] = (
    _KEY_BLOCK,
    _key_body,
    _PUTTY_KEY,
    _vendor,
    *_PAIRED,
    *_WEBHOOKS,
    *_HEADERS,
    *_URLS,
    *_COMMAND_LINES,
)
"""Applied in order: whole key blocks first, then tokens known by their shape, then secrets known by where
they stand."""

# One cheap pass decides whether any rule can match at all; almost all text has no secret in it.
MAYBE = re.compile(
    r"PRIVATE|Private-Lines|sk-|[rs]k_|AKIA|ASIA|gh[pousr]_|github_pat_|glpat-|xox[abposre]-|xapp-|AIza|eyJ|hf_"
    r"|npm_|pypi-|whsec_|SK[0-9a-fA-F]{32}|AC[0-9a-f]{32}|SG\.|[MNO][\w\-]{23}|hooks\.slack|webhooks"
    r"|://\S{0,300}?@|[?&](?i:sig|x-\w+-signature)=|(?:string)?[dD]ata:[ \t]*\n|"
    r"(?i:bearer|authorization|secret|token|passw|passphrase|pwd|credential|auth|key|pass|pw|-u\b|--user|machine)"
)
