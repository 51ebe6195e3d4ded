"""``NAME=value``, ``"name": "value"``, ``name := "value"``, ``'name' => 'value'`` where the name says secret
(``ultramax.redact.names``) -- and the value is one, not code.

A quoted value is a literal, so it is redacted, spaces and all (an unclosed quote runs to the end of the
line). An unquoted value is redacted unless it is plainly code or a reference: a call or subscript
(``get_token()``, ``os.environ["X"]``), an attribute (``self.token``, ``process.env.X``), the variable's own
name (``api_key=api_key``), a type (``password: str``), a keyword (``await``), a placeholder (``${X}``,
``{{ x }}``), a path, or a plain word in prose. A value never swallows the ``,);`` after it.
"""

from __future__ import annotations

import re

from ultramax.redact.names import WEAK_NAME, is_secret_name
from ultramax.redact.values import is_path, is_plain_word, is_reference, looks_random

__all__ = ["redact_assignments"]

# A name and its operator, the value not consumed: a non-secret name must not hide what its value holds
# ("env: DB_PASSWORD=x"). Secret names are told apart in Python, far faster than by one big pattern.
_NAME_OP = re.compile(
    r"(?<![\w\-.$])(?P<name>[\w\-.]++)(?P<nq>\\?[\"'])?"
    r"(?P<op>[ \t]*(?::=|=>|=(?!=)|:(?![:/]))[ \t]*(?:\\\r?\n[ \t]*)?)"
)
_VALUE = re.compile(r"(?P<q>\\?[\"'`])(?P<quoted>[^\n]*?)(?:(?P=q)|$)|(?P<bare>[^\s'\"`;]+)", re.M)
# Prose: "my token is 5924754ec21e...", "the password was Tr0ub4dor3", "the db password for staging is
# hunter2". Found from the verb, which is rarer than the nouns, then the noun before it is checked -- with
# up to four words saying whose it is ("for staging", "of the prod db") between them.
_PROSE = re.compile(r"(?<=[ \t])(?:is|was)[ \t]+[\"'`]?(?P<bare>[^\s'\"`,;]{6,})")
_PROSE_NOUN = re.compile(
    r"(?i)\b(?:token|secret|password|passwd|passphrase|api[ _\-]?key|access[ _\-]?key)"
    r"(?:[ \t]+(?:for|of|on|to|in|at)(?:[ \t]+[\w.\-@:/]+){1,4})?[ \t]+$"
)
# a short value is a password only with a letter and a digit or a symbol in it ("hunter2", "s3cret!"), not a
# word ("required", "changed")
_SHORT_SECRET = re.compile(r"(?=.*[A-Za-z])(?=.*[\d!#$%&*+?@^~])")
_CHAIN = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\?\.|\.|::|->)[A-Za-z_$][\w$]*)*")
_TRAILING = re.compile(r"[,)\]}:]+$")
_TRAILING_STOP = re.compile(r"[.:)]+$")  # not ! or ?: they end passwords too
_PROSE_NEXT = re.compile(r"[ \t]+\w")
# after a value: an annotation's default (token: TokenOpt = None) or an expression going on (x if y else z)
_ANNOTATION_AFTER = re.compile(r"[ \t]*=(?!=)|[ \t]+\|[ \t]")
_CODE_AFTER = re.compile(r"[ \t]+(?:if|else|or|and|for|in|is|not|as)\b|[ \t]+(?:[-+*/%|&^]|<<|>>|\?\?|\|\||&&)[ \t]")
_CODE_NAME = re.compile(r"_*(?:[A-Z][a-z]+(?:[A-Z][a-z]*)+|[a-z]+(?:[A-Z][a-z]*)+|[A-Z]+(?:_[A-Z]+)+)")
_CLASS_NAME = re.compile(r"[A-Z][a-z]+")
# a size, a count, a rate (BYTES_PER_TOKEN = 3.5, MAX_TOKEN: 4096); long numbers may be PINs or keys
_NUMBER = re.compile(r"-?(?:\d{1,5}|\d*\.\d+(?:[eE]-?\d+)?)")
# Laravel-style validation rules: 'password' => 'required|string|min:8|confirmed'
_VALIDATION_RULES = re.compile(r"(?:required|nullable|sometimes|bail|string|confirmed)(?:[|:][\w:,.|]*)?$")
# help text, not a passphrase: five words or more with a sentence's punctuation
_SENTENCE = re.compile(r"^(?=(?:\S+\s+){4}\S)(?=.*(?:[.,;:!?]\s|[.!?]$))")
_LETTER_AND_DIGIT = re.compile(r"(?=.*[A-Za-z])(?=.*\d)")


def _literal(value: str) -> bool:
    """Looks like a value rather than a name: letters and digits, 8 characters or more, or random."""
    return (len(value) >= 8 and bool(_LETTER_AND_DIGIT.match(value))) or looks_random(value)


def _same_name(value: str, name: str) -> bool:
    def norm(s: str) -> str:
        return s.lower().replace("_", "").replace("-", "")

    return norm(value) == norm(re.split(r"[.\-]", name)[-1] or name)


def _bare_is_code(name: str, value: str, text: str, end: int, op: str) -> bool:
    """Whether the unquoted ``value`` of ``name`` (ending at ``end`` in ``text``) is code, not a secret."""
    if is_reference(value) or value[0] in "{([<@:!&*%" or is_path(value) or _NUMBER.fullmatch(value):
        return True
    colon = ":" in op and "=" not in op
    spaced = op.startswith((" ", "\t")) and not colon
    after = text[end : end + 12]
    word = value.replace("-", "")
    if colon and word.isalpha() and word.islower() and _PROSE_NEXT.match(after):
        return True  # prose after a colon: "password: must be at least 12 characters"
    chain = _CHAIN.match(value)
    if chain is None:
        return False
    if chain.end() < len(value):
        return value[chain.end()] in "(["  # a call or a subscript: get_token(), os.environ["X"]
    if after[:1] in ("(", "["):
        return True
    if re.search(r"\.|::|->", value):  # an attribute: self.token, settings.SECRET, process.env.X
        return not looks_random(re.split(r"\.|::|->", value)[0], 8)
    if is_plain_word(value) or _same_name(value, name) or _ANNOTATION_AFTER.match(after):
        return True  # password: str, api_key=api_key, token: TokenOpt = None, password: _PasswordType | None
    if spaced and (_CODE_AFTER.match(after) or is_secret_name(value)):
        return True  # token = kwargs if x else y, secret = tmp_path / "secret.txt", token = access_token
    if _CODE_NAME.fullmatch(value) or (spaced and _CLASS_NAME.fullmatch(value)):
        return True  # a class, a camelCase variable, a CONSTANT_NAME: token = Operator, auth = authHeader
    if spaced and not any(c.isdigit() for c in value) and ("_" in value or "." in name):
        return True  # code's spacing and a snake_case variable, or an attribute set: self.key = keyfile
    return after[:1] in (",", ")", "]", "}") and not _literal(value)  # passed on: Client(token=tok, ...)


def _quoted_is_code(text: str, m: re.Match[str], v: re.Match[str], weak: bool) -> bool:
    value, quote, name = v.group("quoted"), v.group("q"), m.group("name")
    # the name opened a string the quote closes: print("token:", token), input("Password: "), `api_key=`
    if m.group("nq") is None and text[m.start() - 1 : m.start()] == quote:
        return True
    if quote == "`":  # markdown code: `get_token()`
        return _bare_is_code(name, value, text, v.end("quoted"), m.group("op")) if value else True
    return (
        not value.strip()
        or is_reference(value)
        or _VALIDATION_RULES.match(value) is not None
        or is_plain_word(value.strip())
        or _SENTENCE.search(value) is not None
        or _same_name(value, name)  # EXPIRED_TOKEN = "expired_token"
        # another name: ENV_API_KEY = "ANTHROPIC_API_KEY", HEADER = "X-Access-Token", end_token = '}'
        or (is_secret_name(value) and not WEAK_NAME.fullmatch(value) and not any(c.isdigit() for c in value))
        or (len(value) <= 3 and not any(c.isalnum() for c in value))
        or (weak and not looks_random(value, 8))
    )


def _secret_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """Where the secret value of the assignment ``m`` is, if it has one."""
    name = m.group("name")
    if not is_secret_name(name):
        return None
    v = _VALUE.match(text, m.end())
    if v is None:
        return None
    weak = bool(WEAK_NAME.fullmatch(name))
    if name.lower().endswith("auth") and v.group(v.lastindex or 0).isalpha():
        return None  # an auth setting named, not given: CLIENT_AUTH: "clientAuth", auth: oauth
    if v.group("q") is not None:
        return None if _quoted_is_code(text, m, v, weak) else (v.start("quoted"), v.end("quoted"))
    raw = v.group("bare")
    chain = _CHAIN.match(raw)
    if chain is not None and raw[chain.end() : chain.end() + 1] in (",", ")", "]", "}"):
        value = chain.group(0)  # an identifier the code around it closes: f(token=token).create()
    else:
        value = _TRAILING.sub("", raw) or raw  # a trailing ,)]}: closes the code around the value
    end = v.start() + len(value)
    if len(value) < 3 or value.startswith("[REDACTED:"):
        return None
    if _bare_is_code(name, value, text, end, m.group("op")) or (weak and not looks_random(value, 8)):
        return None
    return v.start(), end


def _prose(m: re.Match[str]) -> str:
    value = _TRAILING_STOP.sub("", m.group("bare"))  # the full stop ending the sentence is not the password's
    if value.startswith("[REDACTED:") or is_reference(value) or is_path(value):
        return m.group(0)
    if not (_literal(value) or (len(value) >= 6 and _SHORT_SECRET.match(value))):
        return m.group(0)
    if not _PROSE_NOUN.search(m.string, max(0, m.start() - 80), m.start()):
        return m.group(0)
    if len(value) < len(m.group("bare")):
        return m.group(0)[: m.start("bare") - m.start()] + "[REDACTED:secret]" + m.group("bare")[len(value) :]
    return m.group(0)[: m.start("bare") - m.start()] + "[REDACTED:secret]"


def redact_assignments(text: str) -> str:
    """``text`` with the secret values of secret-named assignments redacted, names and code kept."""
    parts: list[str] = []
    pos = 0
    for m in _NAME_OP.finditer(text):
        if m.start() < pos:
            continue  # inside a value already redacted
        span = _secret_span(text, m)
        if span is not None:
            parts += [text[pos : span[0]], "[REDACTED:secret]"]
            pos = span[1]
    parts.append(text[pos:])
    return _PROSE.sub(_prose, "".join(parts))
