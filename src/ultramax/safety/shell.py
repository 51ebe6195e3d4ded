"""Shell analysis with a real parser (tree-sitter-bash): what a Bash tool call would actually run.

``analyze(command, ctx)`` parses the command and returns every *simple command* it would execute, each
in canonical form -- quotes and backslashes removed, ``/bin/rm`` and ``\\rm`` as ``rm``, wrappers such as
``sudo``, ``env``, ``nice``, ``timeout``, ``xargs`` and ``find -exec`` peeled off, variables resolved where
their value is known -- with where its input comes from and where its output goes. Code handed to another
interpreter is followed: ``bash -c``, ``sh <<EOF``, ``eval``, ``echo ... | sh``, ``ssh host '...'``,
``docker run ... sh -c``, interpreter one-liners (``python -c``, ``node -e``, ``perl -e``, ``ruby -e``,
``awk 'BEGIN{system(...)}'``), recursively up to a depth limit.

Text that is only data -- quoted arguments, commit messages, ``echo`` and ``grep`` arguments, here-documents
fed to ``cat`` -- never becomes a command. Anything built at run time (``$X`` with an unknown value,
``$(...)`` whose output cannot be computed) keeps a ``DYN`` marker so the rules can ask about it.

This module imports the parser lazily: importing it is cheap; the first ``analyze`` pays for tree-sitter.
Policy lives in the rule packs (``ultramax.safety.rules``); this module only describes.
"""

from __future__ import annotations

import posixpath
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ultramax.safety.pathclass import DYN, expand_user, resolve
from ultramax.safety.programs import (
    AWKS,
    DELETERS,
    DOCKER_GLOBAL,
    DOCKER_RUN_VALUE,
    FIND_FILTERS,
    GIT_COMMAND_KEYS,
    INTERPRETERS,
    PARALLEL_VALUE,
    PRIVILEGED,
    PY_VERSIONED,
    SCREEN_VALUE,
    SHELLS,
    SSH_VALUE,
    WRAPPERS,
    XARGS_VALUE,
    cron_command,
    option_value,
    peel,
    producer_roots,
    skip_options,
)
from ultramax.safety.shellmodel import ENTRY, Analysis, Command, ShellContext, Word, canonical_name
from ultramax.safety.shellstatic import ansi_c, static_output

__all__ = ["DYN", "ENTRY", "Analysis", "Command", "ShellContext", "Word", "analyze", "canonical_name"]

MAX_AST_LEVEL = 80
"""How deeply nested syntax (``$($($(...)))``) is walked before the failure policy applies."""
MAX_COMMANDS = 4000

_UNSAFE_CHARS = re.compile("[\ud800-\udfff\U00040000-\U0010ffff]")
"""Lone surrogates, and code points from U+40000 up (unassigned planes, tags, private use): tree-sitter-bash
0.25's scanner reads out of bounds on some of them after ``{`` and crashes the process, so they are parsed as
U+FFFD (no command, path or option is spelled with them)."""

_clock = time.thread_time
"""Budgets count this thread's CPU time: the same command gets the same decision on a busy machine."""


# -- the parser (lazy, one per thread) ---------------------------------------------------------------------
_local = threading.local()


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter
        import tree_sitter_bash

        parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))
        _local.parser = parser
    return parser


def analyze(command: str, ctx: ShellContext) -> Analysis:
    """Analyse one Bash command line (cached on the command string and context)."""
    return _analyze_cached(command, ctx)


@lru_cache(maxsize=1024)
def _analyze_cached(command: str, ctx: ShellContext) -> Analysis:
    t0 = time.perf_counter()
    walker = _Walker(ctx, _clock() + ctx.budget_s)
    analysis = Analysis(command)
    try:
        walker.run_script(command, _State.initial(ctx), _IO(), via=(), depth=0)
    except _Stop as stop:
        walker.facts.add(stop.fact)
    except RecursionError:
        walker.facts.add("depth_limit")
    analysis.commands = walker.commands
    analysis.facts = walker.facts
    analysis.error = walker.error
    analysis.ms = (time.perf_counter() - t0) * 1000
    return analysis


# -- walking ------------------------------------------------------------------------------------------------
class _Stop(Exception):
    def __init__(self, fact: str) -> None:
        super().__init__(fact)
        self.fact = fact


@dataclass(slots=True)
class _State:
    cwd: str | None
    vars: dict[str, str]
    functions: dict[str, Any]
    depth: int = 0
    via: tuple[str, ...] = ()
    remote: bool = False
    container: str | None = None
    mounts: tuple[tuple[str, str], ...] = ()
    calling: frozenset[str] = frozenset()
    privileged: bool = False
    var_subs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    chroot: str | None = None

    @classmethod
    def initial(cls, ctx: ShellContext) -> _State:
        return cls(ctx.cwd, {}, {})

    def copy(self) -> _State:
        return _State(self.cwd, dict(self.vars), dict(self.functions), self.depth, self.via, self.remote,
                      self.container, self.mounts, self.calling, self.privileged, dict(self.var_subs),
                      self.chroot)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _IO:
    stdin_from: tuple[int, ...] = ()
    stdin_text: str | None = None
    sink: str = "tty"
    final_sink: str = "tty"
    redirects: tuple[tuple[str, Word], ...] = ()
    extra_args: tuple[Word, ...] = ()


@dataclass(slots=True)
class _Out:
    """What a statement produced: the commands writing to its stdout and, if computable, the text."""

    indices: list[int] = field(default_factory=list)
    text: str | None = None

    def add(self, other: _Out) -> None:
        self.indices.extend(other.indices)


_SEQUENTIAL = frozenset({"program", "compound_statement", "do_group", "else_clause", "elif_clause", "list",
                         "if_statement", "while_statement", "case_statement", "case_item", "negated_command",
                         "c_style_for_statement", "test_command"})  # fmt: skip
_WORDISH = frozenset({"word", "string", "raw_string", "concatenation", "simple_expansion", "expansion",
                      "command_substitution", "process_substitution", "ansi_c_string", "number",
                      "arithmetic_expansion", "translated_string", "brace_expression"})  # fmt: skip
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_KNOWN_DEFAULTS = ("HOME", "PWD", "USER", "LOGNAME", "TMPDIR", "IFS", "SHELL")


@dataclass(slots=True)
class _Call:
    """One simple command on its way through the analyser: its words and everything known about its context."""

    argv: list[Word]
    st: _State
    io: _IO
    assigns: dict[str, str]
    raw: str
    redirects: tuple[tuple[str, Word], ...]
    wrappers: list[str]
    privileged: bool
    out: _Out
    synthetic: bool


class _Walker:
    def __init__(self, ctx: ShellContext, deadline: float) -> None:
        self.ctx = ctx
        self.deadline = deadline
        self.commands: list[Command] = []
        self.facts: set[str] = set()
        self.error: str | None = None
        self.level = 0
        self.ticks = 0

    # -- entry points ------------------------------------------------------------------------------------
    def run_script(self, text: str, st: _State, io: _IO, *, via: tuple[str, ...], depth: int) -> _Out:
        if depth > self.ctx.max_depth:
            self.facts.add("depth_limit")
            return _Out()
        st = st.copy()
        st.depth = depth
        st.via = via
        tree = self.parse(_UNSAFE_CHARS.sub("\ufffd", text).encode("utf-8"))
        root = tree.root_node
        if root.has_error:
            self.facts.add("parse_error")
            if self.error is None:
                self.error = _first_error(root)
        return self.walk(root, st, io)

    def parse(self, data: bytes) -> Any:
        """Parse; a large input is parsed in chunks and abandoned when the time budget runs out."""
        parser = _parser()
        if len(data) < 8192:
            return parser.parse(data)
        deadline = self.deadline

        def read(offset: int, _point: Any) -> bytes:
            return data[offset : offset + 65536]

        try:
            return parser.parse(read, progress_callback=lambda _offset, _error: _clock() > deadline)
        except ValueError as exc:  # tree-sitter: "Parsing failed" when the callback cancels
            parser.reset()  # a cancelled parse would otherwise resume on the next call, with other input
            raise _Stop("budget") from exc

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks & 63 == 0 and _clock() > self.deadline:
            raise _Stop("budget")
        if len(self.commands) > MAX_COMMANDS:
            raise _Stop("budget")

    # -- statements ----------------------------------------------------------------------------------------
    def walk(self, node: Any, st: _State, io: _IO) -> _Out:
        self.tick()
        self.level += 1
        try:
            if self.level > MAX_AST_LEVEL:
                self.facts.add("depth_limit")
                return _Out()
            return self._walk(node, st, io)
        finally:
            self.level -= 1

    def _walk(self, node: Any, st: _State, io: _IO) -> _Out:
        t = node.type
        if t == "command":
            return self.command(node, st, io)
        if t in _SEQUENTIAL:
            out = _Out()
            texts: list[str] = []
            for child in node.named_children:
                result = self.walk(child, st, io)
                out.add(result)
                texts.append(result.text if result.text is not None else DYN + "\n")
            if t == "compound_statement" and texts:
                out.text = "".join(texts)
            return out
        if t == "pipeline":
            return self.pipeline(list(node.named_children), st, io)
        if t == "redirected_statement":
            return self.redirected(node, st, io)
        if t == "subshell":
            out = _Out()
            inner = st.copy()
            texts = []
            for child in node.named_children:
                result = self.walk(child, inner, io)
                out.add(result)
                texts.append(result.text if result.text is not None else DYN + "\n")
            out.text = "".join(texts) if texts else None
            return out
        if t == "function_definition":
            name = node.child_by_field_name("name")
            body = node.child_by_field_name("body")
            if name is not None and body is not None:
                st.functions[_text(name)] = body
            return _Out()
        if t == "variable_assignment":
            self.assign(node, st, {})
            return _Out()
        if t == "declaration_command":
            return self.declaration(node, st)
        if t == "unset_command":
            for child in node.named_children:
                st.vars[_text(child)] = ""
            return _Out()
        if t == "for_statement":
            return self.for_loop(node, st, io)
        if t in ("comment", "heredoc_body", "heredoc_start", "heredoc_end"):
            return _Out()
        if t in _WORDISH:
            self.words(node, st, {}, sink="subst")
            return _Out()
        out = _Out()
        for child in node.named_children:
            out.add(self.walk(child, st, io))
        return out

    def pipeline(self, stages: list[Any], st: _State, io: _IO) -> _Out:
        prev: _Out | None = None
        last = len(stages) - 1
        out = _Out()
        for i, stage in enumerate(stages):
            sio = _IO(
                stdin_from=tuple(prev.indices) if prev is not None else io.stdin_from,
                stdin_text=prev.text if prev is not None else io.stdin_text,
                sink=io.sink if i == last else "pipe",
                final_sink=io.final_sink,
                redirects=io.redirects if i == last else (),
            )
            prev = self.walk(stage, st, sio)
            if i == last:
                out = prev
        return out

    def redirected(self, node: Any, st: _State, io: _IO) -> _Out:
        body = node.child_by_field_name("body")
        redirects = list(io.redirects)
        extra: list[Word] = list(io.extra_args)
        nodes = [c for i, c in enumerate(node.children)
                 if node.field_name_for_child(i) == "redirect" or c.type in _REDIRECTS]  # fmt: skip
        text, continuation, subs = self.apply_redirects(nodes, st, redirects, extra)
        stdin_text = text if text is not None else io.stdin_text
        sio = _IO(subs or (io.stdin_from if stdin_text is io.stdin_text else ()), stdin_text,
                  "file" if any(op.startswith((">", "&>")) and _is_file(w) for op, w in redirects) else io.sink,
                  io.final_sink, tuple(redirects), tuple(extra))  # fmt: skip
        if continuation:
            kind, cnode = continuation[0]
            if kind == "pipeline":
                stages = [body, *cnode.named_children]
                return self.pipeline(stages, st, _IO(sio.stdin_from, sio.stdin_text, io.sink, io.final_sink,
                                                      sio.redirects, sio.extra_args))  # fmt: skip
            out = self.walk(body, st, sio) if body is not None else _Out()
            for child in cnode.named_children:
                out.add(self.walk(child, st, io))
            return out
        if body is None:
            return self.record(_Call([Word(":")], st, sio, {}, _text(node), tuple(redirects), [], False, _Out(), False))
        return self.walk(body, st, sio)

    def heredoc(self, node: Any, st: _State, redirects: list[tuple[str, Word]], cont: list[Any]) -> str:
        quoted = False
        body = ""
        for child in node.children:
            t = child.type
            if t == "heredoc_start":
                quoted = any(q in _text(child) for q in "'\"\\")
            elif t == "heredoc_body":
                body = _text(child)
                if not quoted:
                    for sub in child.named_children:
                        if sub.type in ("command_substitution", "process_substitution", "expansion"):
                            self.words(sub, st, {}, sink="subst")
            elif t == "file_redirect":
                self.file_redirect(child, st, redirects, [])
            elif t in ("pipeline", "list"):
                cont.append((t, child))
            elif t == "herestring_redirect":
                pass
        return body

    def file_redirect(self, node: Any, st: _State, redirects: list[tuple[str, Word]], extra: list[Word]) -> None:
        op = ""
        dests: list[Any] = []
        for i, child in enumerate(node.children):
            if not child.is_named:
                op += _text(child)
            elif node.field_name_for_child(i) == "destination":
                dests.append(child)
        if not dests:
            return
        first = self.words(dests[0], st, {}, sink="pipe")
        if first:
            redirects.append((op or ">", first[0]))
        for d in dests[1:]:
            extra.extend(self.words(d, st, {}, sink="subst"))

    def for_loop(self, node: Any, st: _State, io: _IO) -> _Out:
        var = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[Word] = []
        for i, child in enumerate(node.children):
            if node.field_name_for_child(i) == "value":
                values.extend(self.words(child, st, {}, sink="subst"))
        name = _text(var) if var is not None else ""
        out = _Out()
        if body is None:
            return out
        static = [w.text for w in values if not w.dynamic and not w.glob]
        if name and values and len(static) == len(values) and len(values) <= 8:
            for value in static:
                st.vars[name] = value
                out.add(self.walk(body, st, io))
            return out
        if name:
            st.vars[name] = DYN
        return self.walk(body, st, io)

    def declaration(self, node: Any, st: _State) -> _Out:
        for child in node.named_children:
            if child.type == "variable_assignment":
                self.assign(child, st, {}, sink="subst_env")
            elif child.type in _WORDISH:
                self.words(child, st, {}, sink="subst_env")
        return _Out()

    def assign(self, node: Any, st: _State, local: dict[str, str], sink: str = "subst_env") -> tuple[str, str]:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        name = _text(name_node) if name_node is not None else ""
        if name.endswith("]"):
            name = name.split("[", 1)[0]
        value = ""
        words: list[Word] = []
        if value_node is not None:
            if value_node.type == "array":
                words = [w for c in value_node.named_children for w in self.words(c, st, local, sink=sink)]
                value = " ".join(w.text for w in words)
            else:
                words = self.words(value_node, st, local, sink=sink, split=False)
                value = "".join(w.text for w in words)
        if _text(node).split("=", 1)[0].endswith("+"):
            value = st.vars.get(name, DYN) + value
        st.vars[name] = value
        subs = tuple(i for w in words for i in w.subs)
        if subs:
            st.var_subs[name] = subs
        else:
            st.var_subs.pop(name, None)
        return name, value

    # -- simple commands -----------------------------------------------------------------------------------
    def command(self, node: Any, st: _State, io: _IO) -> _Out:
        local: dict[str, str] = {}
        groups: list[list[Any]] = []
        redirect_nodes: list[Any] = []
        last_end = -1
        name_seen = False
        for i, child in enumerate(node.children):
            fname = node.field_name_for_child(i)
            t = child.type
            if fname in ("name", "argument"):
                if fname == "name":
                    name_seen = True
                target = child.named_children[0] if fname == "name" and child.named_children else child
                if groups and child.start_byte == last_end:
                    groups[-1].append(target)
                else:
                    groups.append([target])
                last_end = child.end_byte
            elif t == "variable_assignment" and not name_seen:
                tmp = st.copy()
                tmp.vars.update(local)
                name, value = self.assign(child, tmp, {}, sink="subst")
                local[name] = value
            elif t in _REDIRECTS:
                redirect_nodes.append(child)
        argv: list[Word] = []
        for group in groups:
            argv.extend(self.group_words(group, st, local))
        redirects = list(io.redirects)
        extra = list(io.extra_args)
        stdin_text = io.stdin_text
        if redirect_nodes:
            text, _, subs = self.apply_redirects(redirect_nodes, st, redirects, extra)
            if text is not None:
                stdin_text = text
                io = _IO(subs, stdin_text, io.sink, io.final_sink, io.redirects, io.extra_args)
        argv.extend(extra)
        if not argv:
            st.vars.update(local)
            if len(redirects) > len(io.redirects):
                return self.record(
                    _Call([Word(":")], st, io, local, _text(node), tuple(redirects), [], False, _Out(), False)
                )
            return _Out()
        raw = _text(node)
        return self.finish(argv, st, io, local, raw, redirects=tuple(redirects))

    def group_words(self, group: list[Any], st: _State, local: dict[str, str]) -> list[Word]:
        """Words of adjacent syntax nodes (one shell word); repairs tree-sitter's split of ``-rf$IFS/``."""
        if len(group) == 1:
            return self.words(group[0], st, local, sink="subst", first=True)
        segs: list[_Seg] = []
        pending = False
        for k, node in enumerate(group):
            if pending and node.type == "word":
                text = _text(node)
                m = re.match(r"[A-Za-z_]\w*|[0-9@*#?$!-]", text)
                if m:
                    segs.append(self.variable(m.group(0), st, local, False))
                    text = text[m.end() :]
                if text:
                    segs.append(_Seg(_unescape(text), glob=any(c in text for c in "*?[")))
                pending = False
                continue
            self.segments(node, st, local, segs, quoted=False, sink="subst", first=k == 0)
            pending = node.type == "concatenation" and node.child_count > 0 and node.children[-1].type == "$"
        return _assemble(segs, split=True)

    def apply_redirects(self, nodes: list[Any], st: _State, redirects: list[tuple[str, Word]],
                        extra: list[Word]) -> tuple[str | None, list[Any], tuple[int, ...]]:  # fmt: skip
        """Process redirect nodes; returns (text fed to stdin by a here-doc or here-string, continuations, the
        commands whose output a here-string splices in)."""
        stdin_text: str | None = None
        continuation: list[Any] = []
        subs: tuple[int, ...] = ()
        for child in nodes:
            if child.type == "heredoc_redirect":
                stdin_text = self.heredoc(child, st, redirects, continuation)
            elif child.type == "herestring_redirect":
                words = [w for c in child.named_children for w in self.words(c, st, {}, sink="pipe")]
                stdin_text = " ".join(w.text for w in words) + "\n"
                subs = tuple(i for w in words for i in w.subs)
            else:
                self.file_redirect(child, st, redirects, extra)
        return stdin_text, continuation, subs

    def finish(self, argv: list[Word], st: _State, io: _IO, assigns: dict[str, str], raw: str, *,
               redirects: tuple[tuple[str, Word], ...] = (), synthetic: bool = False) -> _Out:  # fmt: skip
        """Peel wrappers off ``argv``, follow code it hands to other interpreters, record what runs."""
        wrappers: list[str] = []
        privileged = st.privileged
        assigns = dict(assigns)
        out = _Out()
        for _ in range(12):
            if not argv:
                return out
            word = argv[0]
            name = canonical_name(word.text)
            if not name:
                return self.record(_Call(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic))
            if name in st.functions and name not in st.calling and "/" not in word.text:
                body = st.functions[name]
                saved = st.calling
                st.calling = st.calling | {name}
                for j, a in enumerate(argv[1:10], start=1):
                    st.vars[str(j)] = a.text
                try:
                    out.add(self.walk(body, st, io))
                finally:
                    st.calling = saved
                if _self_calls(body, name):
                    self.facts.add("fork_bomb" if _forks(body) else "recursion")
                return out
            if name in WRAPPERS:
                rest, consumed, extra_assigns = peel(name, argv[1:])
                if name == "command" and any(re.fullmatch(r"-[pvV]*[vV][pvV]*", w.text) for w in consumed):
                    return self.record(
                        _Call(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic)
                    )
                if name == "env":
                    split = [w.text for w in consumed if w.text.startswith(("-S", "--split-string"))]
                    if split:
                        text = split[0][2:] if split[0].startswith("-S") else split[0].partition("=")[2]
                        argv = [Word("env"), *(Word(t) for t in _split_words(text)), *rest]
                        assigns.update(extra_assigns)
                        continue
                    for key, value in extra_assigns.items():
                        assigns[key] = value
                    chdir = [w for w in consumed if w.text.startswith(("-C", "--chdir"))]
                    if chdir:
                        st = st.copy()
                        st.cwd = None
                if name == "sudo" and any(w.text in ("-e", "--edit") for w in consumed):
                    argv = [Word("sudoedit"), *rest]
                    wrappers.append(name)
                    privileged = True
                    continue
                if name == "npx" or name in ("bunx", "pnpx", "uvx"):
                    call = [w for w in consumed if w.text.startswith(("-c", "--call"))]
                    if call and rest:
                        out.add(self.nested(rest[0].text, st, io, f"{name} -c"))
                        return out
                    if rest:
                        pkg = rest[0].text.split("@", 2)
                        pkg_name = pkg[1] if rest[0].text.startswith("@") and len(pkg) > 1 else pkg[0]
                        rest = [Word(pkg_name.rsplit("/", 1)[-1]), *rest[1:]]
                if not rest:
                    return self.record(
                        _Call(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic)
                    )
                wrappers.append(name)
                privileged = privileged or name in PRIVILEGED
                if name == "chroot":
                    root = next((w.text for w in consumed if not w.text.startswith("-")), None)
                    st = st.copy()
                    st.chroot = root if root and root.startswith("/") else None
                    st.cwd = "/"
                argv = list(rest)
                continue
            if name in ("npm", "pnpm", "yarn") and len(argv) > 1 and argv[1].text in ("exec", "x", "dlx"):
                rest = [w for w in argv[2:] if not w.text.startswith("-")]
                if rest:
                    wrappers.append(f"{name} {argv[1].text}")
                    argv = rest
                    continue
            if name == "pipx" and len(argv) > 2 and argv[1].text == "run":
                wrappers.append("pipx run")
                argv = argv[2:]
                continue
            break
        return self.dispatch(_Call(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic))

    def dispatch(self, c: _Call) -> _Out:
        argv, st, io, assigns, raw, out = c.argv, c.st, c.io, c.assigns, c.raw, c.out
        name = canonical_name(argv[0].text)
        args = argv[1:]
        rec = self.record

        if name in SHELLS or (name == "busybox" and args and args[0].text in SHELLS):
            return self.shell(name, c)
        if name == "eval":
            idx = rec(c, source="args")
            text = " ".join(w.text for w in args)
            if args and DYN not in text:
                out.add(self.nested(text, st, io, "eval"))
            return idx
        if name in ("source", "."):
            stdin_source = bool(args) and args[0].text in ("/dev/stdin", "-", "/proc/self/fd/0", "/dev/fd/0")
            idx = rec(c, source="stdin") if stdin_source else rec(c, source="file", word=args[0] if args else None)
            if args and args[0].text in ("/dev/stdin", "-") and io.stdin_text is not None and DYN not in io.stdin_text:
                out.add(self.nested(io.stdin_text, st, io, "source"))
            return idx
        if name in INTERPRETERS or PY_VERSIONED.match(name):
            return self.interpreter(name, c)
        if name in AWKS:
            return self.awk(c)
        if name == "find":
            return self.find(c)
        if name == "xargs":
            return self.xargs(c)
        if name == "parallel":
            return self.parallel(c)
        if name == "watch":
            result = rec(c)
            rest = skip_options(args, frozenset({"-n", "--interval"}))
            if any(w.text in ("-x", "--exec") for w in args):
                out.add(self.finish(list(rest), st, io, {}, raw))
            elif rest:
                out.add(self.nested(" ".join(w.text for w in rest), st, io, "watch"))
            return result
        if name in ("tmux", "screen", "byobu"):
            result = rec(c)
            if name == "screen":
                rest = skip_options(args, SCREEN_VALUE)
                if rest:
                    out.add(self.finish(list(rest), st, io, {}, raw))
            else:
                words = [w.text for w in args]
                runs = {"new", "new-session", "neww", "new-window", "split-window", "splitw", "respawn-pane",
                        "respawnp", "respawn-window", "run-shell", "run", "send-keys", "send"}  # fmt: skip
                if any(w in runs for w in words):
                    texts = [w for w in args if not w.text.startswith("-") and w.text not in runs]
                    for w in texts[-1:]:
                        if not w.dynamic and w.text not in ("Enter", "C-m"):
                            out.add(self.nested(w.text, st, _IO(), name))
            return result
        if name in ("su", "sg", "flock", "script"):
            result = rec(c)
            code = option_value(args, ("-c", "--command"))
            if code is not None:
                out.add(self.nested(code.text, st, io, name, privileged=name == "su"))
            elif name == "flock":
                rest = skip_options(args, frozenset({"-w", "--timeout", "-E", "--conflict-exit-code"}))[1:]
                if rest:
                    out.add(self.finish(rest, st, io, {}, raw))
            return result
        if name == "ssh":
            return self.ssh(c)
        if name in ("docker", "podman", "nerdctl", "docker-compose", "kubectl", "oc"):
            return self.container(name, c)
        if name == "git":
            result = rec(c)
            self.git_alias(args, st, io)
            for key in ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_EDITOR", "GIT_PAGER", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS"):
                value = assigns.get(key) or st.vars.get(key)
                if value and DYN not in value:
                    out.add(self.nested(value, st, _IO(), f"git {key}"))
            return result
        if name in ("at", "batch") and io.stdin_text is not None:
            result = rec(c)
            for line in io.stdin_text.splitlines():
                if line.strip() and DYN not in line:
                    out.add(self.nested(line, st, _IO(), name))
            return result
        if name == "crontab" and io.stdin_text is not None:
            result = rec(c)
            for line in io.stdin_text.splitlines():
                job = cron_command(line) if DYN not in line else None
                if job:
                    out.add(self.nested(job, st, _IO(), "crontab"))
            return result
        if name in ("ansible", "ansible-playbook"):
            result = rec(c)
            module = option_value(args, ("-m", "--module-name"))
            margs = option_value(args, ("-a", "--args"))
            if module is not None and margs is not None and module.text in ("shell", "command", "raw"):
                out.add(self.nested(margs.text, st, _IO(), "ansible", remote=True))
            return result
        if name in ("cd", "pushd"):
            target = next((w for w in args if not w.text.startswith("-") or w.text == "-"), None)
            if target is None:
                st.cwd = self.ctx.home
            elif target.text == "-" or target.dynamic:
                st.cwd = None
            else:
                st.cwd = resolve(target.text, self.ctx.paths, st.cwd)
            return rec(c)
        if name == "popd":
            st.cwd = None
        if name in ("export", "declare", "typeset", "local", "readonly"):
            for w in args:
                if "=" in w.text and not w.text.startswith("-"):
                    key, _, value = w.text.partition("=")
                    st.vars[key] = value
        return rec(c)

    def record(self, c: _Call, *, source: str | None = None, word: Word | None = None) -> _Out:
        argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic = (
            c.argv,
            c.st,
            c.io,
            c.assigns,
            c.raw,
            c.redirects,
            c.wrappers,
            c.privileged,
            c.out,
            c.synthetic,
        )
        name = canonical_name(argv[0].text)
        cmd = Command(
            index=len(self.commands),
            name=name,
            argv=tuple(argv),
            raw=raw[:400],
            depth=st.depth,
            via=st.via,
            cwd=st.cwd,
            assigns=assigns,
            wrappers=tuple(wrappers),
            privileged=privileged,
            stdin_from=io.stdin_from,
            stdin_text=io.stdin_text,
            sink=io.sink,
            final_sink=io.final_sink if io.sink == "pipe" else io.sink,
            redirects=redirects,
            exec_source=source,
            exec_word=word,
            remote=st.remote,
            container=st.container,
            mounts=st.mounts,
            synthetic=synthetic,
            chroot=st.chroot,
        )
        cmd.static_out = static_output(cmd, self.ctx)
        self.commands.append(cmd)
        out.indices.append(cmd.index)
        out.text = cmd.static_out
        return out

    def nested(self, text: str, st: _State, io: _IO, how: str, *, remote: bool = False,
               privileged: bool = False) -> _Out:  # fmt: skip
        inner = st.copy()
        inner.remote = st.remote or remote
        inner.privileged = st.privileged or privileged
        if how not in ("eval", "source", "git alias"):
            inner.functions = {}
        if remote:
            inner.cwd = self.ctx.home
        return self.run_script(text, inner, _IO(io.stdin_from, io.stdin_text, io.sink, io.final_sink),
                               via=(*st.via, how), depth=st.depth + 1)  # fmt: skip

    # -- code handed to other interpreters -----------------------------------------------------------------
    def shell(self, name: str, c: _Call) -> _Out:
        argv, st, io, privileged, out = c.argv, c.st, c.io, c.privileged, c.out
        args = argv[1:]
        if name == "busybox":
            args = args[1:]
        code: Word | None = None
        script: Word | None = None
        check_only = False
        from_stdin = False
        i = 0
        want_code = False
        while i < len(args):
            text = args[i].text
            if text == "--":
                i += 1
                break
            if text.startswith("--"):
                if text in ("--rcfile", "--init-file"):
                    i += 1
                i += 1
                continue
            if len(text) > 1 and text[0] in "-+" and not want_code:
                letters = text[1:]
                if "c" in letters and text[0] == "-":
                    want_code = True
                if "n" in letters and text[0] == "-":
                    check_only = True
                if "s" in letters and text[0] == "-":
                    from_stdin = True
                if letters[-1:] in ("o", "O"):
                    i += 1
                i += 1
                continue
            break
        rest = args[i:]
        if want_code and rest:
            code = rest[0]
        elif rest and not from_stdin and rest[0].text != "-":
            script = rest[0]
        label = f"{name} -c" if want_code else name
        if check_only:
            return self.record(c)
        if code is not None:
            result = self.record(c,
                                 source="arg", word=code)  # fmt: skip
            if not code.dynamic:
                out.add(self.nested(code.text, st, io, label, privileged=privileged))
            return result
        if script is not None:
            return self.record(c,
                               source="file", word=script)  # fmt: skip
        result = self.record(c,
                             source="stdin")  # fmt: skip
        if io.stdin_text is not None and DYN not in io.stdin_text:
            out.add(self.nested(io.stdin_text, st, _IO(), f"{name} stdin", privileged=privileged))
        return result

    def interpreter(self, name: str, c: _Call) -> _Out:
        argv, st, io, out = c.argv, c.st, c.io, c.out
        from ultramax.safety import inline

        lang = inline.language(name)
        code_word, script, source = inline.code_argument(lang, argv[1:])
        if source == "stdin":
            text = io.stdin_text
            code_word = Word(text) if text is not None else None
        result = self.record(c,
                             source=source, word=code_word if source == "arg" else script)  # fmt: skip
        if code_word is None or code_word.dynamic or source is None:
            return result
        cmd = self.commands[result.indices[-1]]
        label = f"{name} -c" if source == "arg" else f"{name} stdin"
        for action in inline.actions(lang, code_word.text, self.ctx.home):
            self.apply_action(action, cmd, st, label=label, out=out)
        return result

    def awk(self, c: _Call) -> _Out:
        argv, st, out = c.argv, c.st, c.out
        from ultramax.safety import inline

        result = self.record(c)
        program = inline.awk_program(argv[1:])
        if program is not None and not program.dynamic:
            cmd = self.commands[result.indices[-1]]
            for action in inline.actions("awk", program.text, self.ctx.home):
                self.apply_action(action, cmd, st, label="awk", out=out)
        return result

    def apply_action(self, action: tuple[str, ...], cmd: Command, st: _State, *, label: str, out: _Out) -> None:
        kind = action[0]
        if kind == "fact":
            cmd.facts.add(action[1])
        elif kind == "shell":
            out.add(self.nested(action[1], st, _IO(), label))
        elif kind == "argv":
            inner = st.copy()
            inner.via = (*st.via, label)
            inner.depth = st.depth + 1
            words = [Word(t) for t in action[1:]]
            if words:
                out.add(self.finish(words, inner, _IO(), {}, " ".join(action[1:]), synthetic=True))

    # -- commands that run other commands --------------------------------------------------------------------
    def find(self, c: _Call) -> _Out:
        argv, st, out = c.argv, c.st, c.out
        args = argv[1:]
        roots: list[Word] = []
        i = 0
        while i < len(args) and args[i].text in ("-H", "-L", "-P", "-O0", "-O1", "-O2", "-O3", "-D"):
            i += 2 if args[i].text == "-D" else 1
        if i + 1 < len(args) and args[i].text == "-f":
            roots.append(args[i + 1])
            i += 2
        while i < len(args) and not args[i].text.startswith(("-", "(", "!")) and args[i].text != ")":
            roots.append(args[i])
            i += 1
        result = self.record(c)
        cmd = self.commands[result.indices[-1]]
        cmd.roots = tuple(roots or [Word(".")])
        filtered = any(w.text in FIND_FILTERS for w in args[i:])
        j = i
        while j < len(args):
            text = args[j].text
            if text in ("-exec", "-execdir", "-ok", "-okdir"):
                k = j + 1
                sub: list[Word] = []
                while k < len(args) and args[k].text not in (";", "+", "\\;"):
                    sub.append(args[k])
                    k += 1
                if sub:
                    for root in (roots or [Word(".")])[:4]:
                        # without a filter every entry matches: the command runs on the whole tree
                        base = root.text.rstrip("/") or "/"
                        child = Word(base + "/" + ENTRY if filtered else base) if not root.dynamic else Word(DYN)
                        replaced = [Word(w.text.replace("{}", child.text)) if "{}" in w.text else w for w in sub]
                        if canonical_name(replaced[0].text) in DELETERS:
                            replaced = [replaced[0], Word("-r"), *replaced[1:]]
                        inner = st.copy()
                        inner.via = (*st.via, f"find {text}")
                        out.add(self.finish(replaced, inner, _IO(), {}, " ".join(w.text for w in sub), synthetic=True))
                j = k + 1
                continue
            j += 1
        return result

    def xargs(self, c: _Call) -> _Out:
        argv, st, io, out = c.argv, c.st, c.io, c.out
        args = argv[1:]
        replace: str | None = None
        null = False
        delim: str | None = None
        from_file = False
        i = 0
        while i < len(args):
            text = args[i].text
            if text == "--":
                i += 1
                break
            if not text.startswith("-") or text == "-":
                break
            if text in ("-I", "-J", "--replace") or text.startswith(("-I", "-J")):
                if text in ("-I", "-J"):
                    replace = args[i + 1].text if i + 1 < len(args) else "{}"
                    i += 2
                    continue
                replace = text[2:] if not text.startswith("--replace") else (text.partition("=")[2] or "{}")
            elif text.startswith("-i"):
                replace = text[2:] or "{}"
            elif text in ("-0", "--null"):
                null = True
            elif text in ("-a", "--arg-file") or text.startswith("--arg-file="):
                from_file = True
                if text in ("-a", "--arg-file"):
                    i += 1
            elif text == "-d" or text.startswith("--delimiter"):
                delim = args[i + 1].text if text == "-d" and i + 1 < len(args) else text.partition("=")[2]
                if text == "-d":
                    i += 1
            elif text in XARGS_VALUE:
                i += 1
            i += 1
        sub = list(args[i:]) or [Word("echo")]
        result = self.record(c)
        inputs = self.stdin_items(io, null=null, delim=delim, from_file=from_file)
        recursive_producer = any(self.commands[k].name == "find" for k in io.stdin_from if k < len(self.commands))
        if recursive_producer and any(ENTRY in w.text for w in inputs) and canonical_name(sub[0].text) in DELETERS:
            sub = [sub[0], Word("-r"), *sub[1:]]
        inner = st.copy()
        inner.via = (*st.via, "xargs")
        if replace:
            for item in inputs[:8]:
                replaced = [
                    Word(w.text.replace(replace, item.text if w.text.startswith(replace) else DYN))
                    if replace in w.text
                    else w
                    for w in sub
                ]
                out.add(self.finish(replaced, inner, _IO(), {}, " ".join(w.text for w in sub), synthetic=True))
        else:
            out.add(self.finish([*sub, *inputs[:16]], inner, _IO(), {}, " ".join(w.text for w in sub),
                                synthetic=True))  # fmt: skip
        return result

    def stdin_items(self, io: _IO, *, null: bool = False, delim: str | None = None,
                    from_file: bool = False) -> list[Word]:  # fmt: skip
        """The arguments xargs/parallel would read: static text split, or "entries under a known root"."""
        if from_file:
            return [Word(DYN)]
        text = io.stdin_text
        if text is not None and DYN not in text:
            if null:
                items = [t for t in text.split("\0") if t]
            elif delim:
                items = [t for t in text.split(delim) if t.strip()]
            else:
                items = _split_words(text)
            return [Word(t) for t in items] or []
        for idx in io.stdin_from:
            producer = self.commands[idx] if idx < len(self.commands) else None
            if producer is None:
                continue
            roots = producer_roots(producer)
            if roots:
                return [Word(r.rstrip("/") + "/" + ENTRY) for r in roots[:4]]
        return [Word(DYN)]

    def parallel(self, c: _Call) -> _Out:
        argv, st, io, out = c.argv, c.st, c.io, c.out
        args = argv[1:]
        i = 0
        while i < len(args):
            text = args[i].text
            if text == "--":
                i += 1
                break
            if text in (":::", "::::", ":::+") or not text.startswith("-"):
                break
            if text in PARALLEL_VALUE:
                i += 1
            i += 1
        rest = list(args[i:])
        sep = next((k for k, w in enumerate(rest) if w.text in (":::", "::::", ":::+")), None)
        sub = rest[:sep] if sep is not None else rest
        if sep is not None:
            inputs = [w for w in rest[sep + 1 :] if w.text not in (":::", "::::", ":::+")]
            if rest[sep].text == "::::":
                inputs = [Word(DYN)]
        else:
            inputs = self.stdin_items(io)
        result = self.record(c)
        if not sub:
            return result
        inner = st.copy()
        inner.via = (*st.via, "parallel")
        for item in inputs[:8] or [Word(DYN)]:
            if any("{}" in w.text or "{.}" in w.text for w in sub):
                replaced = [Word(w.text.replace("{}", item.text)) if "{}" in w.text else w for w in sub]
            else:
                replaced = [*sub, item]
            if len(replaced) == 1 and " " in replaced[0].text:
                out.add(self.nested(replaced[0].text, inner, _IO(), "parallel"))
            else:
                out.add(self.finish(replaced, inner, _IO(), {}, " ".join(w.text for w in sub), synthetic=True))
        return result

    def ssh(self, c: _Call) -> _Out:
        argv, st, io, out = c.argv, c.st, c.io, c.out
        args = argv[1:]
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            text = args[i].text
            if text in SSH_VALUE:
                i += 1
            i += 1
        remote = args[i + 1 :] if i < len(args) else []
        result = self.record(c,
                             source="args" if remote else "stdin")  # fmt: skip
        if remote:
            text = " ".join(w.text for w in remote)
            if DYN not in text:
                out.add(self.nested(text, st, _IO(), "ssh", remote=True))
        elif io.stdin_text is not None and DYN not in io.stdin_text:
            out.add(self.nested(io.stdin_text, st, _IO(), "ssh", remote=True))
        return result

    def container(self, name: str, c: _Call) -> _Out:
        argv, st, io, raw, out = c.argv, c.st, c.io, c.raw, c.out
        result = self.record(c)
        args = list(argv[1:])
        if name in ("kubectl", "oc"):
            if "exec" in (w.text for w in args[:4]) and any(w.text == "--" for w in args):
                k = next(k for k, w in enumerate(args) if w.text == "--")
                inner = st.copy()
                inner.container = "exec"
                inner.via = (*st.via, f"{name} exec")
                inner.cwd = "/"
                if args[k + 1 :]:
                    out.add(self.finish(args[k + 1 :], inner, _IO(), {}, raw, synthetic=True))
            return result
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            if args[i].text in DOCKER_GLOBAL:
                i += 1
            i += 1
        words = [w.text for w in args[i : i + 2]]
        if name == "docker-compose" or words[:1] == ["compose"]:
            i += 0 if name == "docker-compose" else 1
            words = [w.text for w in args[i : i + 1]]
        if words[:1] == ["container"]:
            i += 1
            words = [w.text for w in args[i : i + 1]]
        if not words or words[0] not in ("run", "exec"):
            return result
        mode = words[0]
        i += 1
        mounts: list[tuple[str, str]] = []
        while i < len(args) and args[i].text.startswith("-"):
            text = args[i].text
            opt, eq, val = text.partition("=")
            value: str | None = val if eq else None
            if opt in DOCKER_RUN_VALUE and not eq:
                value = args[i + 1].text if i + 1 < len(args) else ""
                i += 1
            if opt in ("-v", "--volume") and value:
                parts = value.split(":")
                if len(parts) >= 2 and parts[0].startswith(("/", "~", ".", "$")):
                    mounts.append((parts[1], parts[0]))
            elif opt == "--mount" and value:
                kv = dict(p.partition("=")[::2] for p in value.split(","))
                src = kv.get("source") or kv.get("src")
                dst = kv.get("target") or kv.get("destination") or kv.get("dst")
                if src and dst:
                    mounts.append((dst, src))
            i += 1
        if i < len(args):
            i += 1  # the image (run) or the container (exec)
        inner_argv = args[i:]
        if name == "docker-compose" or "compose" in (w.text for w in argv[1:3]):
            pass
        if not inner_argv:
            return result
        inner = st.copy()
        inner.container = "run" if mode == "run" else "exec"
        inner.mounts = tuple(mounts)
        inner.via = (*st.via, f"{name} {mode}")
        inner.cwd = "/"
        if mounts:
            cmd = self.commands[result.indices[-1]]
            cmd.mounts = tuple(mounts)
        out.add(self.finish(list(inner_argv), inner, _IO(io.stdin_from, io.stdin_text), {}, raw, synthetic=True))
        return result

    def git_alias(self, args: Sequence[Word], st: _State, io: _IO) -> None:
        aliases: dict[str, str] = {}
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            if args[i].text == "-c" and i + 1 < len(args):
                key, _, value = args[i + 1].text.partition("=")
                if key.lower().startswith("alias.") and value.startswith("!"):
                    aliases[key[6:]] = value[1:]
                elif key.lower() in GIT_COMMAND_KEYS and value and DYN not in value:
                    self.nested(value, st, _IO(), f"git -c {key}")
                i += 2
                continue
            if args[i].text.startswith("-c") and "=" in args[i].text:
                key, _, value = args[i].text[2:].partition("=")
                if key.lower() in GIT_COMMAND_KEYS and value and DYN not in value:
                    self.nested(value, st, _IO(), f"git -c {key}")
            i += 2 if args[i].text in ("-C", "--git-dir", "--work-tree", "--namespace") else 1
        if i < len(args) and args[i].text in aliases:
            self.nested(aliases[args[i].text], st, io, "git alias")

    # -- words ---------------------------------------------------------------------------------------------
    def words(self, node: Any, st: _State, local: dict[str, str], *, sink: str, first: bool = False,
              split: bool = True) -> list[Word]:  # fmt: skip
        segs: list[_Seg] = []
        self.segments(node, st, local, segs, quoted=False, sink=sink, first=first)
        return _assemble(segs, split=split)

    def segments(self, node: Any, st: _State, local: dict[str, str], segs: list[_Seg], *, quoted: bool, sink: str,
                 first: bool) -> None:  # fmt: skip
        self.tick()
        t = node.type
        if t in ("word", "number"):
            text = _unescape(_text(node)) if not quoted else _text(node)
            if first and not quoted and text.startswith("~") and not segs:
                head, sep, tail = text.partition("/")
                if head == "~+":
                    text = (st.cwd or DYN) + sep + tail
                elif head == "~-":
                    text = DYN + sep + tail
                else:
                    text = expand_user(head, self.ctx.home) + sep + tail
            segs.append(_Seg(text, quoted=quoted, glob=not quoted and any(c in text for c in "*?[")))
        elif t == "raw_string":
            segs.append(_Seg(_text(node)[1:-1], quoted=True))
        elif t == "ansi_c_string":
            segs.append(_Seg(ansi_c(_text(node)[2:-1]), quoted=True))
        elif t in ("string", "translated_string"):
            before = len(segs)
            for child in node.named_children:
                if child.type == "string_content":
                    segs.append(_Seg(_unescape_dq(_text(child)), quoted=True))
                else:
                    self.segments(child, st, local, segs, quoted=True, sink=sink, first=False)
            if len(segs) == before:
                segs.append(_Seg("", quoted=True))
        elif t == "concatenation":
            for k, child in enumerate(node.named_children):
                self.segments(child, st, local, segs, quoted=quoted, sink=sink, first=first and k == 0)
        elif t == "simple_expansion":
            name = _text(node)[1:]
            segs.append(self.variable(name, st, local, quoted))
        elif t == "expansion":
            segs.append(self.expansion(node, st, local, quoted, sink))
        elif t == "command_substitution":
            segs.append(self.substitution(node, st, quoted, sink))
        elif t == "process_substitution":
            inner = st.copy()
            out = _Out()
            for child in node.named_children:
                out.add(self.walk(child, inner, _IO(sink="pipe", final_sink="pipe")))
            segs.append(_Seg("/dev/fd/63", quoted=True, subs=tuple(out.indices), procsub=True))
        elif t == "arithmetic_expansion":
            for child in node.named_children:
                self._find_substitutions(child, st, sink)
            segs.append(_Seg(DYN, quoted=quoted))
        else:
            for child in node.named_children:
                self._find_substitutions(child, st, sink)
            text = _text(node)
            segs.append(_Seg(text, quoted=quoted, glob=not quoted and any(c in text for c in "*?[")))

    def _find_substitutions(self, node: Any, st: _State, sink: str) -> None:
        if node.type in ("command_substitution", "process_substitution"):
            self.segments(node, st, {}, [], quoted=True, sink=sink, first=False)
            return
        for child in node.named_children:
            self._find_substitutions(child, st, sink)

    def variable(self, name: str, st: _State, local: dict[str, str], quoted: bool) -> _Seg:
        value = self.lookup(name, st, local)
        subs = st.var_subs.get(name, ())
        if value is None:
            return _Seg(DYN, quoted=quoted, vars=(name,), subs=subs)
        return _Seg(value, quoted=quoted, split=not quoted, vars=(name,) if DYN in value else (), subs=subs)

    def lookup(self, name: str, st: _State, local: dict[str, str]) -> str | None:
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

    def expansion(self, node: Any, st: _State, local: dict[str, str], quoted: bool, sink: str) -> _Seg:
        children = node.named_children
        text = _text(node)
        for child in children:
            self._find_substitutions(child, st, sink)
        if not children or children[0].type != "variable_name":
            return _Seg(DYN, quoted=quoted)
        name = _text(children[0])
        inner = text[2:-1]
        if inner == name:
            return self.variable(name, st, local, quoted)
        rest = inner[len(name) :]
        value = self.lookup(name, st, local)
        if rest.startswith((":-", "-", ":=", "=")):
            if value not in (None, "") and value is not None and DYN not in value:
                return _Seg(value, quoted=quoted, split=not quoted)
            if value is None:
                return _Seg(DYN, quoted=quoted, vars=(name,))
            default = rest.split("-", 1)[-1] if "-" in rest[:2] else rest.split("=", 1)[-1]
            if DYN not in default and "$" not in default:
                return _Seg(default, quoted=quoted, split=not quoted)
        return _Seg(DYN, quoted=quoted, vars=(name,))

    def substitution(self, node: Any, st: _State, quoted: bool, sink: str) -> _Seg:
        inner = st.copy()
        out = _Out()
        children = [c for c in node.named_children if c.type != "comment"]
        text: str | None = None
        for child in children:
            result = self.walk(child, inner, _IO(sink=sink, final_sink=sink))
            out.add(result)
            text = result.text if len(children) == 1 else None
        if text is not None and DYN not in text:
            return _Seg(text.rstrip("\n"), quoted=quoted, split=not quoted, subs=tuple(out.indices))
        return _Seg(DYN, quoted=quoted, subs=tuple(out.indices))


# -- helpers ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Seg:
    text: str
    quoted: bool = False
    glob: bool = False
    split: bool = False
    subs: tuple[int, ...] = ()
    vars: tuple[str, ...] = ()
    procsub: bool = False


def _assemble(segs: list[_Seg], *, split: bool) -> list[Word]:
    words: list[list[_Seg]] = []
    cur: list[_Seg] | None = None
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
                cur = [*(cur or []), _Seg(piece, False, False, False, seg.subs, seg.vars)]
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


def _text(node: Any) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _first_error(root: Any) -> str:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return f"syntax error near {_text(node)[:40]!r} (offset {node.start_byte})"
        stack.extend(reversed(node.children))
    return "syntax error"


_ESCAPE = re.compile(r"\\(\n|.)", re.DOTALL)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), text)


_DQ_ESCAPE = re.compile(r"\\([\\$`\"\n])")


def _unescape_dq(text: str) -> str:
    if "\\" not in text:
        return text
    return _DQ_ESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), text)


def _split_words(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


def _is_file(word: Word) -> bool:
    return not word.text.startswith("&") and not word.text.isdigit() and word.text not in ("-",)


def _self_calls(body: Any, name: str) -> bool:
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type == "command_name" and _text(node) == name:
            return True
        stack.extend(node.children)
    return False


def _forks(body: Any) -> bool:
    text = _text(body)
    return "|" in text or "&" in text
