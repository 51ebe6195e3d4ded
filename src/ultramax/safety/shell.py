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

import re
import threading
import time
from functools import lru_cache
from typing import Any

from ultramax.safety.pathclass import DYN, resolve
from ultramax.safety.programs import (
    AWKS,
    INTERPRETERS,
    PRIVILEGED,
    PY_VERSIONED,
    SCREEN_VALUE,
    SHELLS,
    WRAPPERS,
    cron_command,
    option_value,
    peel,
    skip_options,
)
from ultramax.safety.shellhandlers import ProgramHandlers, split_words
from ultramax.safety.shellmodel import ENTRY, Analysis, Command, ShellContext, Word, canonical_name
from ultramax.safety.shellstate import WalkCall, WalkIO, WalkOut, WalkState, WalkStop
from ultramax.safety.shellstatic import printf_format, static_output
from ultramax.safety.shellwords import Segment, WordExpander, assemble, node_text, unescape

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
        walker.run_script(command, WalkState.initial(ctx), WalkIO(), via=(), depth=0)
    except WalkStop as stop:
        walker.facts.add(stop.fact)
    except RecursionError:
        walker.facts.add("depth_limit")
    analysis.commands = walker.commands
    analysis.facts = walker.facts
    analysis.error = walker.error
    analysis.files = walker.files
    analysis.ms = (time.perf_counter() - t0) * 1000
    return analysis


# -- walking ------------------------------------------------------------------------------------------------
_SEQUENTIAL = frozenset({"program", "compound_statement", "do_group", "else_clause", "elif_clause", "list",
                         "if_statement", "while_statement", "case_statement", "case_item", "negated_command",
                         "c_style_for_statement", "test_command"})  # fmt: skip
_WORDISH = frozenset({"word", "string", "raw_string", "concatenation", "simple_expansion", "expansion",
                      "command_substitution", "process_substitution", "ansi_c_string", "number",
                      "arithmetic_expansion", "translated_string", "brace_expression"})  # fmt: skip
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_BRACE_WORD = re.compile(r"(?:(?<=^)|(?<=[\s;&|(]))\{([^{}\s'\"$`\\]*,[^{}\s'\"$`\\]*)\}(?=$|[\s;&|)])")
"""A whole word that is a brace expansion: bash turns ``{a,b,c}`` into the words ``a b c``."""
_KNOWN_DEFAULTS = ("HOME", "PWD", "USER", "LOGNAME", "TMPDIR", "IFS", "SHELL")


class _Walker(ProgramHandlers, WordExpander):
    def __init__(self, ctx: ShellContext, deadline: float) -> None:
        self.ctx = ctx
        self.deadline = deadline
        self.commands: list[Command] = []
        self.facts: set[str] = set()
        self.error: str | None = None
        self.level = 0
        self.files: dict[str, str | None] = {}
        self.ticks = 0

    # -- entry points ------------------------------------------------------------------------------------
    def run_script(self, text: str, st: WalkState, io: WalkIO, *, via: tuple[str, ...], depth: int) -> WalkOut:
        if depth > self.ctx.max_depth:
            self.facts.add("depth_limit")
            return WalkOut()
        st = st.copy()
        st.depth = depth
        st.via = via
        tree = self.parse(_UNSAFE_CHARS.sub("\ufffd", text).encode("utf-8"))
        root = tree.root_node
        if root.has_error and "," in text and "{" in text:
            # a brace expansion as the command word ({rm,-rf,/etc}) is a syntax error to the parser: expand it
            expanded = _BRACE_WORD.sub(lambda m: " ".join(m.group(1).split(",")), text)
            if expanded != text:
                alt = self.parse(_UNSAFE_CHARS.sub("\ufffd", expanded).encode("utf-8"))
                if not alt.root_node.has_error:
                    root = alt.root_node
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
            raise WalkStop("budget") from exc

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks & 63 == 0 and _clock() > self.deadline:
            raise WalkStop("budget")
        if len(self.commands) > MAX_COMMANDS:
            raise WalkStop("budget")

    # -- statements ----------------------------------------------------------------------------------------
    def walk(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        self.tick()
        self.level += 1
        try:
            if self.level > MAX_AST_LEVEL:
                self.facts.add("depth_limit")
                return WalkOut()
            return self._walk(node, st, io)
        finally:
            self.level -= 1

    def _walk(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        t = node.type
        if t == "command":
            return self.command(node, st, io)
        if t in _SEQUENTIAL:
            out = WalkOut()
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
            out = WalkOut()
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
                st.functions[node_text(name)] = body
            return WalkOut()
        if t == "variable_assignment":
            self.assign(node, st, {})
            return WalkOut()
        if t == "declaration_command":
            return self.declaration(node, st)
        if t == "unset_command":
            for child in node.named_children:
                st.vars[node_text(child)] = ""
            return WalkOut()
        if t == "for_statement":
            return self.for_loop(node, st, io)
        if t in ("comment", "heredoc_body", "heredoc_start", "heredoc_end"):
            return WalkOut()
        if t in _WORDISH:
            self.words(node, st, {}, sink="subst")
            return WalkOut()
        out = WalkOut()
        for child in node.named_children:
            out.add(self.walk(child, st, io))
        return out

    def pipeline(self, stages: list[Any], st: WalkState, io: WalkIO) -> WalkOut:
        prev: WalkOut | None = None
        last = len(stages) - 1
        out = WalkOut()
        for i, stage in enumerate(stages):
            sio = WalkIO(
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

    def redirected(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        body = node.child_by_field_name("body")
        redirects = list(io.redirects)
        extra: list[Word] = list(io.extra_args)
        nodes = [c for i, c in enumerate(node.children)
                 if node.field_name_for_child(i) == "redirect" or c.type in _REDIRECTS]  # fmt: skip
        text, continuation, subs = self.apply_redirects(nodes, st, redirects, extra)
        stdin_text = text if text is not None or subs else io.stdin_text
        sio = WalkIO(subs or (io.stdin_from if stdin_text is io.stdin_text else ()), stdin_text,
                  "file" if any(op.startswith((">", "&>")) and _is_file(w) for op, w in redirects) else io.sink,
                  io.final_sink, tuple(redirects), tuple(extra))  # fmt: skip
        if continuation:
            kind, cnode = continuation[0]
            if kind == "pipeline":
                stages = [body, *cnode.named_children]
                return self.pipeline(stages, st, WalkIO(sio.stdin_from, sio.stdin_text, io.sink, io.final_sink,
                                                      sio.redirects, sio.extra_args))  # fmt: skip
            out = self.walk(body, st, sio) if body is not None else WalkOut()
            for child in cnode.named_children:
                out.add(self.walk(child, st, io))
            return out
        if body is None:
            return self.record(
                WalkCall([Word(":")], st, sio, {}, node_text(node), tuple(redirects), [], False, WalkOut(), False)
            )
        return self.walk(body, st, sio)

    def heredoc(self, node: Any, st: WalkState, redirects: list[tuple[str, Word]], cont: list[Any]) -> str:
        quoted = False
        body = ""
        for child in node.children:
            t = child.type
            if t == "heredoc_start":
                quoted = any(q in node_text(child) for q in "'\"\\")
            elif t == "heredoc_body":
                body = node_text(child)
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

    def file_redirect(self, node: Any, st: WalkState, redirects: list[tuple[str, Word]], extra: list[Word]) -> None:
        op = ""
        dests: list[Any] = []
        for i, child in enumerate(node.children):
            if not child.is_named:
                op += node_text(child)
            elif node.field_name_for_child(i) == "destination":
                dests.append(child)
        if not dests:
            return
        first = self.words(dests[0], st, {}, sink="pipe")
        if first:
            redirects.append((op or ">", first[0]))
        for d in dests[1:]:
            extra.extend(self.words(d, st, {}, sink="subst"))

    def for_loop(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        var = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[Word] = []
        for i, child in enumerate(node.children):
            if node.field_name_for_child(i) == "value":
                values.extend(self.words(child, st, {}, sink="subst"))
        name = node_text(var) if var is not None else ""
        out = WalkOut()
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

    def declaration(self, node: Any, st: WalkState) -> WalkOut:
        for child in node.named_children:
            if child.type == "variable_assignment":
                self.assign(child, st, {}, sink="subst_env")
            elif child.type in _WORDISH:
                self.words(child, st, {}, sink="subst_env")
        return WalkOut()

    def assign(self, node: Any, st: WalkState, local: dict[str, str], sink: str = "subst_env") -> tuple[str, str]:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        name = node_text(name_node) if name_node is not None else ""
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
        if node_text(node).split("=", 1)[0].endswith("+"):
            value = st.vars.get(name, DYN) + value
        st.vars[name] = value
        subs = tuple(i for w in words for i in w.subs)
        if subs:
            st.var_subs[name] = subs
        else:
            st.var_subs.pop(name, None)
        return name, value

    # -- simple commands -----------------------------------------------------------------------------------
    def command(self, node: Any, st: WalkState, io: WalkIO) -> WalkOut:
        local: dict[str, str] = {}
        groups: list[list[Any]] = []
        redirect_nodes: list[Any] = []
        last_end = -1
        name_seen = False
        children = node.children
        fd_arg = _fd_before_redirect(node, children[-1]) if children and children[-1].type == "number" else None
        for i, child in enumerate(children):
            fname = node.field_name_for_child(i)
            t = child.type
            if child is fd_arg or (fd_arg is not None and child.start_byte == fd_arg.start_byte):
                continue
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
            if text is not None or subs:
                stdin_text = text
                io = WalkIO(subs, stdin_text, io.sink, io.final_sink, io.redirects, io.extra_args)
        argv.extend(extra)
        if not argv:
            st.vars.update(local)
            if len(redirects) > len(io.redirects):
                return self.record(
                    WalkCall([Word(":")], st, io, local, node_text(node), tuple(redirects), [], False, WalkOut(), False)
                )
            return WalkOut()
        raw = node_text(node)
        return self.finish(argv, st, io, local, raw, redirects=tuple(redirects))

    def group_words(self, group: list[Any], st: WalkState, local: dict[str, str]) -> list[Word]:
        """Words of adjacent syntax nodes (one shell word); repairs tree-sitter's split of ``-rf$IFS/``."""
        if len(group) == 1:
            return self.words(group[0], st, local, sink="subst", first=True)
        segs: list[Segment] = []
        pending = False
        for k, node in enumerate(group):
            if pending and node.type == "word":
                text = node_text(node)
                m = re.match(r"[A-Za-z_]\w*|[0-9@*#?$!-]", text)
                if m:
                    segs.append(self.variable(m.group(0), st, local, False))
                    text = text[m.end() :]
                if text:
                    segs.append(Segment(unescape(text), glob=any(c in text for c in "*?[")))
                pending = False
                continue
            self.segments(node, st, local, segs, quoted=False, sink="subst", first=k == 0)
            pending = node.type == "concatenation" and node.child_count > 0 and node.children[-1].type == "$"
        return assemble(segs, split=True)

    def apply_redirects(self, nodes: list[Any], st: WalkState, redirects: list[tuple[str, Word]],
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
                before = len(redirects)
                self.file_redirect(child, st, redirects, extra)
                if len(redirects) > before and redirects[-1][0] == "<" and redirects[-1][1].procsub:
                    # `cmd < <(producer)`: the producer's output is the command's stdin, as with a pipe
                    subs = redirects[-1][1].subs
                    outs = [self.commands[i].static_out for i in subs if i < len(self.commands)]
                    stdin_text = "".join(o for o in outs if o is not None) if subs and None not in outs else None
        return stdin_text, continuation, subs

    def finish(self, argv: list[Word], st: WalkState, io: WalkIO, assigns: dict[str, str], raw: str, *,
               redirects: tuple[tuple[str, Word], ...] = (), synthetic: bool = False) -> WalkOut:  # fmt: skip
        """Peel wrappers off ``argv``, follow code it hands to other interpreters, record what runs."""
        wrappers: list[str] = []
        privileged = st.privileged
        assigns = dict(assigns)
        out = WalkOut()
        for _ in range(12):
            if not argv:
                return out
            word = argv[0]
            name = canonical_name(word.text)
            if not name:
                return self.record(
                    WalkCall(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic)
                )
            if name in st.functions and name not in st.calling and "/" not in word.text:
                body = st.functions[name]
                saved = st.calling
                st.calling = st.calling | {name}
                for j, a in enumerate(argv[1:10], start=1):
                    st.vars[str(j)] = a.text
                st.vars["@"] = st.vars["*"] = " ".join(a.text for a in argv[1:])
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
                        WalkCall(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic)
                    )
                if name == "env":
                    split = [w.text for w in consumed if w.text.startswith(("-S", "--split-string"))]
                    if split:
                        text = split[0][2:] if split[0].startswith("-S") else split[0].partition("=")[2]
                        argv = [Word("env"), *(Word(t) for t in split_words(text)), *rest]
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
                        WalkCall(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic)
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
        return self.dispatch(WalkCall(argv, st, io, assigns, raw, redirects, wrappers, privileged, out, synthetic))

    def dispatch(self, c: WalkCall) -> WalkOut:
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
            elif args and (script := self.written_script(args[0], st)) is not None:
                out.add(self.nested(script, st, io, "source"))
            return idx
        if name in INTERPRETERS or PY_VERSIONED.match(name):
            return self.interpreter(name, c)
        if name in AWKS:
            return self.awk(c)
        if name == "find":
            return self.find(c)
        if name in ("fd", "fdfind"):
            return self.fd(c)
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
        if name == "hyperfine":  # every positional, and --prepare/--setup/--cleanup, is a shell command
            result = rec(c)
            code_opts = ("-p", "--prepare", "-s", "--setup", "-c", "--cleanup", "--conclude")
            value_opts = ("-w", "--warmup", "-r", "--runs", "-m", "--min-runs", "-M", "--max-runs", "-L",
                          "--parameter-list", "-P", "--parameter-scan", "-D", "--parameter-step-size", "-S",
                          "--shell", "-u", "--time-unit", "--export-json", "--export-csv", "--export-markdown",
                          "--style", "--sort", "-n", "--command-name", "--output", "--input")  # fmt: skip
            k = 0
            while k < len(args):
                text = args[k].text
                code = args[k + 1] if text in code_opts and k + 1 < len(args) else None
                if code is None and not text.startswith("-"):
                    code = args[k]
                if code is not None and not code.dynamic:
                    out.add(self.nested(code.text, st, WalkIO(), "hyperfine"))
                k += 2 if text in code_opts or text in value_opts else 1
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
                            out.add(self.nested(w.text, st, WalkIO(), name))
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
            env = {k: v for k, v in (*st.vars.items(), *assigns.items()) if k.startswith("GIT_CONFIG_")}
            expanded = self.git_alias(args, st, io, env)
            if expanded is not None:
                inner = st.copy()
                inner.via = (*st.via, "git alias")
                out.add(self.finish([argv[0], *expanded], inner, io, dict(assigns), raw, synthetic=True))
            for key in ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_EDITOR", "GIT_PAGER", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS"):
                value = assigns.get(key) or st.vars.get(key)
                if value and DYN not in value:
                    out.add(self.nested(value, st, WalkIO(), f"git {key}"))
            for how, git_code in self.git_runs(args):
                out.add(self.nested(git_code, st, WalkIO(), how))
            return result
        if name in ("at", "batch") and io.stdin_text is not None:
            result = rec(c)
            for line in io.stdin_text.splitlines():
                if line.strip() and DYN not in line:
                    out.add(self.nested(line, st, WalkIO(), name))
            return result
        if name == "crontab" and io.stdin_text is not None:
            result = rec(c)
            for line in io.stdin_text.splitlines():
                job = cron_command(line) if DYN not in line else None
                if job:
                    out.add(self.nested(job, st, WalkIO(), "crontab"))
            return result
        if name in ("ansible", "ansible-playbook"):
            result = rec(c)
            module = option_value(args, ("-m", "--module-name"))
            margs = option_value(args, ("-a", "--args"))
            if module is not None and margs is not None and module.text in ("shell", "command", "raw"):
                out.add(self.nested(margs.text, st, WalkIO(), "ansible", remote=True))
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
        words = [w.text for w in args] if name in ("printf", "set") else []
        if name == "printf" and len(words) > 2 and words[0] == "-v":  # printf -v VAR FORMAT ARG...
            st.vars[words[1]] = DYN if any(DYN in t for t in words[2:]) else printf_format(words[2:])
        if name == "set" and "--" in words:  # set -- a b c: new positional parameters
            values = args[words.index("--") + 1 :]
            for j in range(1, 10):
                st.vars[str(j)] = values[j - 1].text if j <= len(values) else ""
            st.vars["@"] = st.vars["*"] = " ".join(w.text for w in values)
            st.vars["#"] = str(len(values))
        if "/" in argv[0].text and (script := self.written_script(argv[0], st)) is not None:
            return self.run_written(script, c)  # ./x.sh after writing x.sh in the same command line
        if name in ("export", "declare", "typeset", "local", "readonly"):
            for w in args:
                if "=" in w.text and not w.text.startswith("-"):
                    key, _, value = w.text.partition("=")
                    st.vars[key] = value
        return rec(c)

    def record(self, c: WalkCall, *, source: str | None = None, word: Word | None = None) -> WalkOut:
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
        self.remember_writes(cmd, st)
        return out

    def remember_writes(self, cmd: Command, st: WalkState) -> None:
        """Files this command writes, with their text when it is known: a script written earlier in the
        command line and then run (``echo ... > x.sh; bash x.sh``) is analysed as the code it holds."""
        if not cmd.redirects and cmd.name != "tee":
            return
        targets = [(op, w) for op, w in cmd.redirects if ">" in op and _is_file(w)]
        if cmd.name == "tee":
            append = any(w.text in ("-a", "--append") for w in cmd.args)
            targets += [(">>" if append else ">", w) for w in cmd.args if not w.text.startswith("-")]
        for op, w in targets:
            path = resolve(w.text, self.ctx.paths, st.cwd) if not w.dynamic else None
            if path is None or path.startswith("/dev/"):
                continue
            text = cmd.static_out
            if text is None or DYN in text:
                self.files[path] = None
            elif op.endswith(">>") and path in self.files:
                known = self.files[path]
                self.files[path] = None if known is None else known + text
            else:
                self.files[path] = text

    def written_script(self, word: Word | None, st: WalkState) -> str | None:
        """The text of a file written earlier in the same command line, when known."""
        if word is None or word.dynamic:
            return None
        path = resolve(word.text, self.ctx.paths, st.cwd)
        return self.files.get(path) if path else None

    def nested(self, text: str, st: WalkState, io: WalkIO, how: str, *, remote: bool = False,
               privileged: bool = False) -> WalkOut:  # fmt: skip
        inner = st.copy()
        inner.remote = st.remote or remote
        inner.privileged = st.privileged or privileged
        if how not in ("eval", "source", "git alias"):
            inner.functions = {}
        if remote:
            inner.cwd = self.ctx.home
        return self.run_script(text, inner, WalkIO(io.stdin_from, io.stdin_text, io.sink, io.final_sink),
                               via=(*st.via, how), depth=st.depth + 1)  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------------------
def _first_error(root: Any) -> str:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return f"syntax error near {node_text(node)[:40]!r} (offset {node.start_byte})"
        stack.extend(reversed(node.children))
    return "syntax error"


def _fd_before_redirect(node: Any, last: Any) -> Any:
    """tree-sitter-bash reads ``cmd 0< file`` as the argument ``0`` and then ``< file``: that number (the
    command's ``last`` child) is the redirect's file descriptor, not an argument. Returns it (or None)."""
    if last.end_byte != node.end_byte:
        return None
    parent = node.parent
    if parent is None or parent.type != "redirected_statement" or not node_text(last).isdigit():
        return None
    if any(c.type in _REDIRECTS and c.start_byte == last.end_byte for c in parent.children):
        return last
    return None


def _is_file(word: Word) -> bool:
    return not word.text.startswith("&") and not word.text.isdigit() and word.text not in ("-",)


def _self_calls(body: Any, name: str) -> bool:
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type == "command_name" and node_text(node) == name:
            return True
        stack.extend(node.children)
    return False


def _forks(body: Any) -> bool:
    text = node_text(body)
    return "|" in text or "&" in text
