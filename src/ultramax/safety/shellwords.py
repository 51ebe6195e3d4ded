"""How the shell walker turns a word of the syntax tree into the words a command receives: quotes and
escapes removed, ``~`` expanded, variables resolved where their value is known (``$X``, ``${X:-default}``,
``${X:?}``, ``${X:+alt}``, ``"${arr[@]}"``, ``"$@"``), command and process substitutions walked for what they
run, and the result split into words as the shell splits unquoted expansions. A value built at run time is
kept as ``DYN``. A mixin of ``ultramax.safety.shell``'s walker, which provides the members declared here."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ultramax.safety.pathclass import DYN, expand_user
from ultramax.safety.shellmodel import ShellContext, Word
from ultramax.safety.shellstate import WalkIO, WalkOut, WalkState
from ultramax.safety.shellstatic import ansi_c

__all__ = ["Segment", "WordExpander", "assemble", "node_text", "unescape", "unescape_dq"]


class WordExpander:
    """The walker's word expansion (``shell._Walker`` inherits it)."""

    ctx: ShellContext

    def tick(self) -> None:
        raise NotImplementedError

    def walk(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        raise NotImplementedError

    def words(self, node: Any, st: WalkState, local: dict[str, str], *, sink: str, first: bool = False,
              split: bool = True) -> list[Word]:  # fmt: skip
        segs: list[Segment] = []
        self.segments(node, st, local, segs, quoted=False, sink=sink, first=first)
        return assemble(segs, split=split)

    def segments(self, node: Any, st: WalkState, local: dict[str, str], segs: list[Segment], *, quoted: bool, sink: str,
                 first: bool) -> None:  # fmt: skip
        self.tick()
        t = node.type
        if t in ("word", "number"):
            text = unescape(node_text(node)) if not quoted else node_text(node)
            if first and not quoted and text.startswith("~") and not segs:
                head, sep, tail = text.partition("/")
                if head == "~+":
                    text = (st.cwd or DYN) + sep + tail
                elif head == "~-":
                    text = DYN + sep + tail
                else:
                    text = expand_user(head, self.ctx.home) + sep + tail
            segs.append(Segment(text, quoted=quoted, glob=not quoted and any(c in text for c in "*?[")))
        elif t == "raw_string":
            segs.append(Segment(node_text(node)[1:-1], quoted=True))
        elif t == "ansi_c_string":
            segs.append(Segment(ansi_c(node_text(node)[2:-1]), quoted=True))
        elif t in ("string", "translated_string"):
            before = len(segs)
            for child in node.named_children:
                if child.type == "string_content":
                    segs.append(Segment(unescape_dq(node_text(child)), quoted=True))
                else:
                    self.segments(child, st, local, segs, quoted=True, sink=sink, first=False)
            if len(segs) == before:
                segs.append(Segment("", quoted=True))
        elif t == "concatenation":
            for k, child in enumerate(node.named_children):
                self.segments(child, st, local, segs, quoted=quoted, sink=sink, first=first and k == 0)
        elif t == "simple_expansion":
            name = node_text(node)[1:]
            segs.append(self.variable(name, st, local, quoted))
        elif t == "expansion":
            segs.append(self.expansion(node, st, local, quoted, sink))
        elif t == "command_substitution":
            segs.append(self.substitution(node, st, quoted, sink))
        elif t == "process_substitution":
            inner = st.copy()
            out = WalkOut()
            for child in node.named_children:
                out.add(self.walk(child, inner, WalkIO(sink="pipe", final_sink="pipe")))
            segs.append(Segment("/dev/fd/63", quoted=True, subs=tuple(out.indices), procsub=True))
        elif t == "arithmetic_expansion":
            for child in node.named_children:
                self._find_substitutions(child, st, sink)
            segs.append(Segment(DYN, quoted=quoted))
        else:
            for child in node.named_children:
                self._find_substitutions(child, st, sink)
            text = node_text(node)
            segs.append(Segment(text, quoted=quoted, glob=not quoted and any(c in text for c in "*?[")))

    def _find_substitutions(self, node: Any, st: WalkState, sink: str) -> None:
        if node.type in ("command_substitution", "process_substitution"):
            self.segments(node, st, {}, [], quoted=True, sink=sink, first=False)
            return
        for child in node.named_children:
            self._find_substitutions(child, st, sink)

    def variable(self, name: str, st: WalkState, local: dict[str, str], quoted: bool) -> Segment:
        value = self.lookup(name, st, local)
        subs = st.var_subs.get(name, ())
        if value is None:
            return Segment(DYN, quoted=quoted, vars=(name,), subs=subs)
        split = not quoted or name == "@"  # "$@" is one word per positional parameter
        return Segment(value, quoted=quoted, split=split, vars=(name,) if DYN in value else (), subs=subs)

    def lookup(self, name: str, st: WalkState, local: dict[str, str]) -> str | None:
        if name in local:
            return local[name]
        if name in st.vars:
            return st.vars[name]
        if name == "HOME":
            return self.ctx.home
        if name == "PWD":
            return st.cwd
        if name in ("USER", "LOGNAME"):
            return posixpath.basename(self.ctx.home)
        if name == "TMPDIR":
            return self.ctx.tmpdir
        if name == "IFS":
            return " \t\n"
        if name == "SHELL":
            return "/bin/bash"
        return None

    def expansion(self, node: Any, st: WalkState, local: dict[str, str], quoted: bool, sink: str) -> Segment:
        children = node.named_children
        text = node_text(node)
        for child in children:
            self._find_substitutions(child, st, sink)
        if children and children[0].type == "subscript" and children[0].named_children:
            # ${a[@]} / ${a[*]}: the whole array (arrays are kept as their words joined by spaces)
            index = [node_text(n) for n in children[0].named_children[1:]]
            value = self.lookup(node_text(children[0].named_children[0]), st, local)
            whole = index in (["@"], ["*"]) and text[2:-1] == node_text(children[0])
            if whole and value is not None and DYN not in value:
                return Segment(value, quoted=quoted, split=not quoted or index == ["@"])
            return Segment(DYN, quoted=quoted)
        if not children or children[0].type != "variable_name":
            return Segment(DYN, quoted=quoted)
        name = node_text(children[0])
        inner = text[2:-1]
        if inner == name:
            return self.variable(name, st, local, quoted)
        rest = inner[len(name) :]
        value = self.lookup(name, st, local)
        known = value is not None and DYN not in value
        if rest.startswith((":?", "?")):  # the value, or an error (nothing runs) when it is unset
            if known and value:
                return Segment(value, quoted=quoted, split=not quoted)
            return Segment(DYN, quoted=quoted, vars=(name,))
        if rest.startswith((":+", "+")):  # the alternative when the variable is set (and non-empty for :+)
            alternative = rest[2:] if rest.startswith(":+") else rest[1:]
            if known and (value or not rest.startswith(":")) and "$" not in alternative:
                return Segment(alternative, quoted=quoted, split=not quoted)
            if value == "" and rest.startswith(":"):
                return Segment("", quoted=quoted)
            return Segment(DYN, quoted=quoted, vars=(name,))
        if rest.startswith((":-", "-", ":=", "=")):
            if value not in (None, "") and value is not None and DYN not in value:
                return Segment(value, quoted=quoted, split=not quoted)
            if value is None:
                return Segment(DYN, quoted=quoted, vars=(name,))
            default = rest.split("-", 1)[-1] if "-" in rest[:2] else rest.split("=", 1)[-1]
            if DYN not in default and "$" not in default:
                return Segment(default, quoted=quoted, split=not quoted)
        return Segment(DYN, quoted=quoted, vars=(name,))

    def substitution(self, node: Any, st: WalkState, quoted: bool, sink: str) -> Segment:
        inner = st.copy()
        out = WalkOut()
        children = [c for c in node.named_children if c.type != "comment"]
        text: str | None = None
        for child in children:
            result = self.walk(child, inner, WalkIO(sink=sink, final_sink=sink))
            out.add(result)
            text = result.text if len(children) == 1 else None
        if text is not None and DYN not in text:
            return Segment(text.rstrip("\n"), quoted=quoted, split=not quoted, subs=tuple(out.indices))
        return Segment(DYN, quoted=quoted, subs=tuple(out.indices))


# -- helpers ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Segment:
    """A piece of a word: its text and how it was written (quoted, a glob, split when unquoted)."""

    text: str
    quoted: bool = False
    glob: bool = False
    split: bool = False
    subs: tuple[int, ...] = ()
    vars: tuple[str, ...] = ()
    procsub: bool = False


def assemble(segs: list[Segment], *, split: bool) -> list[Word]:
    """Join pieces into words, splitting the unquoted expansions at blanks as the shell does."""
    words: list[list[Segment]] = []
    cur: list[Segment] | None = None
    for seg in segs:
        if not (split and seg.split) or DYN in seg.text:
            cur = [*(cur or []), seg]
            continue
        pieces = re.split(r"[ \t\n]+", seg.text)
        for j, piece in enumerate(pieces):
            if j > 0 and cur is not None:
                words.append(cur)
                cur = None
            if piece:
                cur = [*(cur or []), Segment(piece, False, False, False, seg.subs, seg.vars)]
    if cur is not None:
        words.append(cur)
    result: list[Word] = []
    for parts in words:
        text = "".join(p.text for p in parts)
        if not text and not any(p.quoted for p in parts):
            continue
        result.append(
            Word(
                text,
                quoted=any(p.quoted for p in parts),
                glob=any(p.glob for p in parts),
                subs=tuple(i for p in parts for i in p.subs),
                vars=tuple(v for p in parts for v in p.vars),
                procsub=any(p.procsub for p in parts),
            )
        )
    return result


def node_text(node: Any) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


_ESCAPE = re.compile(r"\\(\n|.)", re.DOTALL)


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), text)


_DQ_ESCAPE = re.compile(r"\\([\\$`\"\n])")


def unescape_dq(text: str) -> str:
    if "\\" not in text:
        return text
    return _DQ_ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), text)
