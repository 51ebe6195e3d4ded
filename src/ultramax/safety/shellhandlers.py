"""How the shell walker follows the programs that run other code or other commands: shells and interpreters
given code (``bash -c``, ``python -c``, ``awk 'BEGIN{system(...)}'``), ``find -exec`` and ``-delete``, ``xargs``
and ``parallel`` fed by another command, ``ssh`` to another host, containers (``docker run``/``exec``), and git
aliases. A mixin of ``ultramax.safety.shell``'s walker, which provides the members declared here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ultramax.safety.pathclass import DYN
from ultramax.safety.programs import (
    DELETERS,
    DOCKER_GLOBAL,
    DOCKER_RUN_VALUE,
    FIND_FILTERS,
    GIT_COMMAND_KEYS,
    PARALLEL_VALUE,
    SHELLS,
    SSH_VALUE,
    XARGS_VALUE,
    fd_parse,
    producer_roots,
)
from ultramax.safety.shellmodel import ENTRY, NUL, Command, ShellContext, Word, canonical_name
from ultramax.safety.shellstate import WalkCall, WalkIO, WalkOut, WalkState

__all__ = ["ProgramHandlers", "split_words"]


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def split_words(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


class ProgramHandlers:
    """The walker's handlers for particular programs (``shell._Walker`` dispatches to them)."""

    ctx: ShellContext
    commands: list[Command]

    def record(self, c: WalkCall, *, source: str | None = None, word: Word | None = None) -> WalkOut:
        raise NotImplementedError

    def finish(self, argv: list[Word], st: WalkState, io: WalkIO, assigns: dict[str, str], raw: str, *,
               redirects: tuple[tuple[str, Word], ...] = (), synthetic: bool = False) -> WalkOut:  # fmt: skip
        raise NotImplementedError

    def nested(self, text: str, st: WalkState, io: WalkIO, how: str, *, remote: bool = False,
               privileged: bool = False) -> WalkOut:  # fmt: skip
        raise NotImplementedError

    def written_script(self, word: Word | None, st: WalkState) -> str | None:
        raise NotImplementedError

    def run_written(self, script: str, c: WalkCall) -> WalkOut:
        """A file written earlier in the command line and executed by path: follow its shebang."""
        result = self.record(c)
        first = script.split("\n", 1)[0]
        words = first[2:].split() if first.startswith("#!") else []
        if words and canonical_name(words[0]) == "env":
            words = [w for w in words[1:] if not w.startswith("-")]
        program = canonical_name(words[0]) if words else "sh"
        if program in SHELLS or not words:
            c.out.add(self.nested(script, c.st, WalkIO(), c.argv[0].text, privileged=c.privileged))
            return result
        from ultramax.safety import inline

        cmd = self.commands[result.indices[-1]]
        for action in inline.actions(inline.language(program), script, self.ctx.home):
            self.apply_action(action, cmd, c.st, label=c.argv[0].text, out=c.out)
        return result

    def shell(self, name: str, c: WalkCall) -> WalkOut:
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
            result = self.record(c,
                                 source="file", word=script)  # fmt: skip
            written = self.written_script(script, st)
            if written is not None:
                out.add(self.nested(written, st, WalkIO(), f"{name} {script.text}", privileged=privileged))
            return result
        result = self.record(c,
                             source="stdin")  # fmt: skip
        if io.stdin_text is not None and DYN not in io.stdin_text:
            out.add(self.nested(io.stdin_text, st, WalkIO(), f"{name} stdin", privileged=privileged))
        return result

    def interpreter(self, name: str, c: WalkCall) -> WalkOut:
        argv, st, io, out = c.argv, c.st, c.io, c.out
        from ultramax.safety import inline

        lang = inline.language(name)
        code_word, script, source = inline.code_argument(lang, argv[1:])
        if source == "stdin":
            text = io.stdin_text
            code_word = Word(text) if text is not None else None
        written = self.written_script(script, st) if source == "file" else None
        if written is not None:
            code_word = Word(written)  # a script written earlier in the same command line
        result = self.record(c,
                             source=source, word=code_word if source == "arg" else script)  # fmt: skip
        cmd = self.commands[result.indices[-1]]
        edited = inline.inplace_files(lang, argv[1:])
        if edited:  # perl -pi -e CODE FILE...: the files are rewritten (sponge writes without printing them)
            self.apply_action(("argv", "sponge", *(w.text for w in edited)), cmd, st, label=f"{name} -i", out=out)
        if code_word is None or code_word.dynamic or source is None:
            return result
        label = f"{name} -c" if source == "arg" else f"{name} {script.text}" if script is not None else f"{name} stdin"
        for action in inline.actions(lang, code_word.text, self.ctx.home):
            self.apply_action(action, cmd, st, label=label, out=out)
        return result

    def awk(self, c: WalkCall) -> WalkOut:
        argv, st, out = c.argv, c.st, c.out
        from ultramax.safety import inline

        result = self.record(c)
        program = inline.awk_program(argv[1:])
        if program is not None and not program.dynamic:
            cmd = self.commands[result.indices[-1]]
            for action in inline.actions("awk", program.text, self.ctx.home):
                self.apply_action(action, cmd, st, label="awk", out=out)
        return result

    def apply_action(self, action: tuple[str, ...], cmd: Command, st: WalkState, *, label: str, out: WalkOut) -> None:
        kind = action[0]
        if kind == "fact":
            cmd.facts.add(action[1])
        elif kind == "shell":
            out.add(self.nested(action[1], st, WalkIO(), label))
        elif kind == "argv":
            inner = st.copy()
            inner.via = (*st.via, label)
            inner.depth = st.depth + 1
            words = [Word(t) for t in action[1:]]
            if words:
                out.add(self.finish(words, inner, WalkIO(), {}, " ".join(action[1:]), synthetic=True))

    # -- commands that run other commands --------------------------------------------------------------------
    def find(self, c: WalkCall) -> WalkOut:
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
                    self.run_per_entry(sub, roots or [Word(".")], filtered, st, out, label=f"find {text}")
                j = k + 1
                continue
            j += 1
        return result

    def run_per_entry(self, sub: Sequence[Word], roots: Sequence[Word], filtered: bool, st: WalkState,
                      out: WalkOut, *, label: str, placeholders: tuple[str, ...] = ("{}",),
                      append: bool = False) -> None:  # fmt: skip
        """A command run on every entry a search finds under ``roots`` (``find -exec``, ``fd -x``): analysed once
        per root with the placeholder standing for "an entry under the root" or, without a filter (every entry
        matches), the root itself, deleters made recursive; ``append``: the entry goes last when no
        placeholder is given."""
        for root in roots[:4]:
            # without a filter every entry matches: the command runs on the whole tree
            base = root.text.rstrip("/") or "/"
            child = Word(base + "/" + ENTRY if filtered else base) if not root.dynamic else Word(DYN)
            replaced: list[Word] = []
            seen = False
            for w in sub:
                text = w.text
                for mark in placeholders:
                    if mark in text:
                        text, seen = text.replace(mark, child.text), True
                replaced.append(Word(text) if text != w.text else w)
            if append and not seen:
                replaced.append(child)
            if canonical_name(replaced[0].text) in DELETERS:
                replaced = [replaced[0], Word("-r"), *replaced[1:]]
            inner = st.copy()
            inner.via = (*st.via, label)
            out.add(self.finish(replaced, inner, WalkIO(), {}, " ".join(w.text for w in sub), synthetic=True))

    def fd(self, c: WalkCall) -> WalkOut:
        """``fd``/``fdfind``: ``-x``/``--exec`` runs a command per result, ``-X``/``--exec-batch`` once with all
        of them; either way the command acts on every entry under the search roots, like ``find -exec``."""
        roots, filtered, execs = fd_parse(c.argv[1:])
        result = self.record(c)
        self.commands[result.indices[-1]].roots = tuple(roots)
        for flag, sub in execs:
            if sub:
                self.run_per_entry(sub, roots, filtered, c.st, c.out, label=f"fd {flag}",
                                   placeholders=("{//}", "{/.}", "{/}", "{.}", "{}"), append=True)  # fmt: skip
        return result

    def xargs(self, c: WalkCall) -> WalkOut:
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
        recursive_producer = any(self.commands[k].name in ("find", "fd", "fdfind")
                                 for k in io.stdin_from if k < len(self.commands))  # fmt: skip
        if recursive_producer and any(ENTRY in w.text for w in inputs) and canonical_name(sub[0].text) in DELETERS:
            sub = [sub[0], Word("-r"), *sub[1:]]
        inner = st.copy()
        inner.via = (*st.via, "xargs")
        raw = " ".join(w.text for w in sub) + self.piped_args(io, inputs)
        if replace:
            for item in inputs[:8]:
                replaced = [
                    Word(w.text.replace(replace, item.text if w.text.startswith(replace) else DYN))
                    if replace in w.text
                    else w
                    for w in sub
                ]
                out.add(self.finish(replaced, inner, WalkIO(), {}, raw, synthetic=True))
        else:
            out.add(self.finish([*sub, *inputs[:16]], inner, WalkIO(), {}, raw, synthetic=True))
        return result

    def piped_args(self, io: WalkIO, inputs: Sequence[Word]) -> str:
        """``A | xargs B`` runs ``B $(A)``: when the arguments are only known at run time, the command's text
        gains `` $(A)`` so that rules on the data flow (``docker volume rm $(docker volume ls -q)``) see it."""
        if not any(w.dynamic for w in inputs):
            return ""
        producers = [self.commands[k].raw for k in io.stdin_from if k < len(self.commands)]
        return f" $({' | '.join(producers)})" if producers else ""

    def stdin_items(self, io: WalkIO, *, null: bool = False, delim: str | None = None,
                    from_file: bool = False) -> list[Word]:  # fmt: skip
        """The arguments xargs/parallel would read: static text split, or "entries under a known root"."""
        if from_file:
            return [Word(DYN)]
        text = io.stdin_text
        if text is not None and DYN not in text:
            if null:
                items = [t for t in text.split(NUL) if t]
            elif delim:
                items = [t for t in text.split(delim) if t.strip()]
            else:
                items = split_words(text)
            return [Word(t) for t in items] or []
        for idx in io.stdin_from:
            producer = self.commands[idx] if idx < len(self.commands) else None
            if producer is None:
                continue
            roots = producer_roots(producer)
            if roots:
                return [Word(r.rstrip("/") + "/" + ENTRY) for r in roots[:4]]
        return [Word(DYN)]

    def parallel(self, c: WalkCall) -> WalkOut:
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
        raw = " ".join(w.text for w in sub) + (self.piped_args(io, inputs) if sep is None else "")
        for item in inputs[:8] or [Word(DYN)]:
            if any("{}" in w.text or "{.}" in w.text for w in sub):
                replaced = [Word(w.text.replace("{}", item.text)) if "{}" in w.text else w for w in sub]
            else:
                replaced = [*sub, item]
            if len(replaced) == 1 and " " in replaced[0].text:
                out.add(self.nested(replaced[0].text, inner, WalkIO(), "parallel"))
            else:
                out.add(self.finish(replaced, inner, WalkIO(), {}, raw, synthetic=True))
        return result

    def ssh(self, c: WalkCall) -> WalkOut:
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
                out.add(self.nested(text, st, WalkIO(), "ssh", remote=True))
        elif io.stdin_text is not None and DYN not in io.stdin_text:
            out.add(self.nested(io.stdin_text, st, WalkIO(), "ssh", remote=True))
        return result

    def container(self, name: str, c: WalkCall) -> WalkOut:
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
                    out.add(self.finish(args[k + 1 :], inner, WalkIO(), {}, raw, synthetic=True))
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
        out.add(self.finish(list(inner_argv), inner, WalkIO(io.stdin_from, io.stdin_text), {}, raw, synthetic=True))
        return result

    def git_alias(self, args: Sequence[Word], st: WalkState, io: WalkIO,
                  env: Mapping[str, str] | None = None) -> list[Word] | None:  # fmt: skip
        """Follow git aliases: ``!cmd`` ones run a shell command; the others expand to git arguments, returned
        (with the global options) for the caller to run as git. Configuration comes from ``-c key=value``
        (``-ckey=value``), from ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` in the
        environment and from ``git config alias.X ...`` earlier in the same command line; keys that name a
        program (core.sshCommand ...) are followed as code too."""
        aliases: dict[str, str] = dict(st.git_aliases)
        config: list[tuple[str, str]] = []
        env = env or {}
        count = env.get("GIT_CONFIG_COUNT", "")
        for n in range(min(int(count), 16) if count.isdigit() else 0):
            key, value = env.get(f"GIT_CONFIG_KEY_{n}"), env.get(f"GIT_CONFIG_VALUE_{n}")
            if key is not None and value is not None:
                config.append((key, value))
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            text = args[i].text
            if text == "-c" and i + 1 < len(args):
                key, _, value = args[i + 1].text.partition("=")
                config.append((key, value))
                i += 2
                continue
            if text.startswith("-c") and "=" in text:
                key, _, value = text[2:].partition("=")
                config.append((key, value))
            i += 2 if text in ("-C", "--git-dir", "--work-tree", "--namespace") else 1
        for key, value in config:
            if not value or DYN in value:
                continue
            if key.lower().startswith("alias."):
                aliases[key[6:]] = value
            elif key.lower() in GIT_COMMAND_KEYS:
                self.nested(value, st, WalkIO(), f"git -c {key}")
        rest = list(args[i:])
        if rest and rest[0].text == "config":
            self.git_config_alias(rest[1:], st)
            return None
        if not rest or rest[0].text not in aliases:
            return None
        value = aliases[rest[0].text]
        if value.startswith("!"):
            self.nested(value[1:], st, io, "git alias")
            return None
        expansion = [Word(t) for t in split_words(value)]
        if not expansion or expansion[0].text == rest[0].text:
            return None
        return [*args[:i], *expansion, *rest[1:]]

    @staticmethod
    def git_runs(args: Sequence[Word]) -> list[tuple[str, str]]:
        """Commands git itself runs: submodule foreach CMD, rebase --exec/-x CMD, bisect run CMD ARGS."""
        i = 0
        while i < len(args) and args[i].text.startswith("-"):
            i += 2 if args[i].text in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") else 1
        words = [w.text for w in args[i:]]
        found: list[tuple[str, str]] = []
        if words[:2] == ["submodule", "foreach"]:
            code = [w for w in words[2:] if w not in ("--recursive", "-q", "--quiet")]
            if code:
                found.append(("git submodule foreach", " ".join(code)))
        elif words[:2] == ["bisect", "run"] and len(words) > 2:
            found.append(("git bisect run", " ".join(shlex_quote(w) for w in words[2:])))
        elif words[:1] == ["rebase"]:
            for k, w in enumerate(words):
                if w in ("--exec", "-x") and k + 1 < len(words):
                    found.append(("git rebase --exec", words[k + 1]))
                elif w.startswith("--exec="):
                    found.append(("git rebase --exec", w.split("=", 1)[1]))
        return [(how, code) for how, code in found if DYN not in code]

    @staticmethod
    def git_config_alias(args: Sequence[Word], st: WalkState) -> None:
        """``git config [--global] alias.NAME VALUE``: the alias holds for the rest of the command line."""
        words = [w for w in args if not w.text.startswith("-")]
        if words and words[0].text in ("set", "add"):
            words = words[1:]
        if len(words) >= 2 and words[0].text.lower().startswith("alias.") and not words[1].dynamic:
            st.git_aliases[words[0].text[6:]] = words[1].text

    # -- words ---------------------------------------------------------------------------------------------
