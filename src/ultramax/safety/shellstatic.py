"""What a command prints, when that is knowable without running it (``echo``, ``printf``, ``base64 -d``,
``pwd``, ``git rev-parse --show-toplevel`` ...): the shell analysis follows such output into ``sh`` and
``eval`` the way the shell would."""

from __future__ import annotations

import base64
import binascii
import codecs
import posixpath
import re
from collections.abc import Callable

from ultramax.safety.pathclass import DYN, resolve
from ultramax.safety.shellmodel import NUL, Command, ShellContext

__all__ = ["ansi_c", "printf_format", "static_output"]


def ansi_c(body: str) -> str:
    try:
        return codecs.decode(body.encode("latin-1", "backslashreplace"), "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return body


def static_output(cmd: Command, ctx: ShellContext) -> str | None:
    """What the command prints, when that is knowable without running it (echo, printf, base64 -d ...)."""
    name = cmd.name
    texts = [w.text for w in cmd.args]
    if any(DYN in t for t in texts) or (cmd.synthetic and name not in ("echo", "printf")):
        return None
    fn = _STATIC.get(name)
    if fn is None:
        return None
    try:
        out = fn(texts, cmd, ctx)
    except (ValueError, binascii.Error, UnicodeDecodeError, IndexError, TypeError):
        return None
    # a NUL byte in the output (printf '%s\0') must not read as the run-time marker DYN
    return out.replace("\x00", NUL) if out is not None else None


def _echo(args: list[str], cmd: Command, ctx: ShellContext) -> str:
    newline = True
    escapes = False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = escapes or "e" in args[0]
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = ansi_c(text)
    return text + ("\n" if newline else "")


_FMT = re.compile(r"%(%|[-+ #0]*\d*(?:\.\d+)?[sbdiuxXoqc])")


def _printf(args: list[str], cmd: Command, ctx: ShellContext) -> str:
    if args[:1] == ["-v"]:
        return ""  # printf -v VAR assigns the text to VAR and prints nothing
    return printf_format(args)


def printf_format(args: list[str]) -> str:
    """The text ``printf FORMAT ARG...`` produces (the format is reused while arguments remain)."""
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        return ""
    fmt, values = ansi_c(args[0]), args[1:]
    slots = [m for m in _FMT.finditer(fmt) if m.group(1) != "%"]
    if not slots:
        return fmt.replace("%%", "%")
    out = []
    pos = 0
    while True:

        def fill(m: re.Match[str]) -> str:
            nonlocal pos
            spec = m.group(1)
            if spec == "%":
                return "%"
            value = values[pos] if pos < len(values) else ""
            pos += 1
            return ansi_c(value) if spec.endswith("b") else value

        out.append(_FMT.sub(fill, fmt))
        if pos >= len(values):
            break
    return "".join(out)


def _stdin(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    if cmd.stdin_text is None or (args and any(not a.startswith("-") for a in args)):
        return None
    return cmd.stdin_text


def _base64(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    if not any(
        a in ("-d", "--decode", "-D") or (a.startswith("-") and "d" in a and not a.startswith("--")) for a in args
    ):
        return None
    if cmd.stdin_text is None:
        return None
    data = re.sub(r"\s+", "", cmd.stdin_text)
    decoded = base64.b64decode(data + "=" * (-len(data) % 4)) if cmd.name == "base64" else base64.b32decode(data)
    return decoded.decode("utf-8")


def _xxd(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    if "-r" not in args or cmd.stdin_text is None:
        return None
    return bytes.fromhex(re.sub(r"\s+", "", cmd.stdin_text)).decode("utf-8")


def _rev(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    if cmd.stdin_text is None or args:
        return None
    return "\n".join(line[::-1] for line in cmd.stdin_text.split("\n"))


_TR_CLASSES = {
    "[:lower:]": "abcdefghijklmnopqrstuvwxyz",
    "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:digit:]": "0123456789",
    "[:alpha:]": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:alnum:]": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "[:space:]": " \t\n\r\v\f",
    "[:blank:]": " \t",
}


def _tr_set(spec: str) -> str:
    """The characters of a tr set: ranges (a-z), character classes ([:upper:]) and backslash escapes."""
    for name, chars in _TR_CLASSES.items():
        spec = spec.replace(name, chars)
    if "[" in spec and "]" in spec:
        raise ValueError("tr: repetition or equivalence classes")
    chars = ansi_c(spec) if "\\" in spec else spec
    out: list[str] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-" and ord(chars[i]) <= ord(chars[i + 2]):
            out.extend(chr(c) for c in range(ord(chars[i]), ord(chars[i + 2]) + 1))
            i += 3
        else:
            out.append(chars[i])
            i += 1
    return "".join(out)


def _tr(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    """tr SET1 SET2 (translate) and tr -d SET1 (delete) on text known in advance (ROT13 and the like)."""
    if cmd.stdin_text is None:
        return None
    delete = args[:1] == ["-d"]
    sets = args[1:] if delete else args
    if any(a.startswith("-") and len(a) > 1 for a in sets) or len(sets) != (1 if delete else 2):
        return None
    source = _tr_set(sets[0])
    if delete:
        return "".join(ch for ch in cmd.stdin_text if ch not in source)
    target = _tr_set(sets[1])
    if not target:
        return None
    target = target + target[-1] * max(0, len(source) - len(target))
    table: dict[int, str] = {}
    for a, b in zip(source, target, strict=False):
        table[ord(a)] = b  # later occurrences win, as in GNU tr
    return cmd.stdin_text.translate(table)


def _which(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    """which NAME / command -v NAME / type -P NAME: the program's path (its canonical name is NAME again)."""
    names = [a for a in args if not a.startswith("-")]
    if cmd.name in ("command", "type") and not any(a in ("-v", "-P", "-p") for a in args):
        return None
    if not names or any("/" in n or not n for n in names):
        return None
    return "".join(f"/usr/bin/{n}\n" for n in names)


def _pwd(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    return cmd.cwd + "\n" if cmd.cwd else None


def _git(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    if args[:2] == ["rev-parse", "--show-toplevel"] and (ctx.project or ctx.cwd):
        return (ctx.project or ctx.cwd or "") + "\n"
    return None


def _mktemp(args: list[str], cmd: Command, ctx: ShellContext) -> str:
    return f"{ctx.tmpdir.rstrip('/')}/tmp.mktemp\n"


def _basename(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    paths = [a for a in args if not a.startswith("-")]
    return posixpath.basename(paths[0].rstrip("/")) + "\n" if paths else None


def _dirname(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    paths = [a for a in args if not a.startswith("-")]
    return posixpath.dirname(paths[0].rstrip("/")) + "\n" if paths else None


def _whoami(args: list[str], cmd: Command, ctx: ShellContext) -> str:
    return posixpath.basename(ctx.home) + "\n"


def _realpath(args: list[str], cmd: Command, ctx: ShellContext) -> str | None:
    paths = [a for a in args if not a.startswith("-")]
    if not paths:
        return None
    resolved = resolve(paths[0], ctx.paths, cmd.cwd)
    return resolved + "\n" if resolved else None


def _empty(args: list[str], cmd: Command, ctx: ShellContext) -> str:
    return ""


_STATIC: dict[str, Callable[[list[str], Command, ShellContext], str | None]] = {
    "echo": _echo,
    "printf": _printf,
    "cat": _stdin,
    "tee": lambda a, c, x: c.stdin_text,
    "base64": _base64,
    "base32": _base64,
    "xxd": _xxd,
    "rev": _rev,
    "tr": _tr,
    "pwd": _pwd,
    "which": _which,
    "command": _which,
    "type": _which,
    "git": _git,
    "mktemp": _mktemp,
    "basename": _basename,
    "dirname": _dirname,
    "whoami": _whoami,
    "realpath": _realpath,
    "readlink": lambda a, c, x: _realpath([p for p in a if p != "-f"], c, x) if "-f" in a else None,
    "true": _empty,
    "false": _empty,
    ":": _empty,
}
