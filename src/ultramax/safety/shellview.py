"""The rule packs applied to a Bash command: each simple command seen as flags, targets and data flows.

``evaluate_bash`` analyses the command (``ultramax.safety.shell``), builds a :class:`CommandView` per
simple command -- normalised flags, positional arguments after global options, the classes of the paths it
reads, writes and deletes, the kinds of data that flow into it through pipes, substitutions and files
written earlier in the same command line -- and returns every rule that matched, with the user's
``safety.allow/ask/deny`` patterns applied per simple command.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property

from ultramax.safety.pathclass import DYN, PathContext, resolve
from ultramax.safety.programs import GIT_COMMAND_KEYS, INTERPRETERS, SHELLS
from ultramax.safety.queries import redis_classes, sql_classes
from ultramax.safety.rules import (
    FactSubject,
    Finding,
    RuleSet,
    Subject,
    classify_word,
)
from ultramax.safety.shell import Analysis, Command, ShellContext, Word, analyze

__all__ = ["BashResult", "CommandView", "evaluate_bash"]

TOTAL_BUDGET_S = 0.030
"""Time for analysing one command line and matching the rules; past it the failure policy applies."""
_MATCH_TEXT = 4096
"""Rule regexes look at the first 4 KB of a command line (arguments beyond that are data)."""

_SECRET_VAR = re.compile(
    r"(?i)(?:SECRET|TOKEN|PASSW(?:OR)?D|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH|DATABASE_URL|"
    r"DB_URL|_DSN\b|^DSN$|CONN(?:ECTION)?_?STR|SESSION_?KEY|SIGNING_?KEY|WEBHOOK_URL|COOKIE|CLIENT_SECRET)"
)
_PRINTERS = frozenset({"echo", "printf", "printenv", "print"})
_FILTERS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "awk", "gawk", "sed"})
_DECODE_FLAGS = frozenset({"-d", "--decode", "-D"})
_TRANSFORMERS = frozenset({"tr", "sed", "rev", "awk", "gawk", "mawk", "cut", "fold", "iconv", "perl", "ruby"})
_PERSISTENT = frozenset({"shell_rc", "autostart", "git_hooks", "ssh_config"})
_CREDENTIAL_CONSUMERS = frozenset({"docker", "podman", "nerdctl", "buildah", "skopeo", "crane", "oras", "helm", "gh",
                                   "kubectl", "npm", "pnpm", "yarn", "twine", "aws", "az", "gcloud", "vault", "flyctl",
                                   "fly", "heroku", "glab", "cosign", "notation", "regctl", "git"})  # fmt: skip
_DRY_RUN = frozenset({"--dry-run", "--dryrun", "--dry-run=client", "--dry-run=server", "--simulate", "--what-if"})
_SEND_DATA_OPTS = ("-d", "--data", "--data-binary", "--data-raw", "--data-urlencode", "--data-ascii", "--json")
_SEND_FILE_OPTS = ("-T", "--upload-file")
_SEND_FORM_OPTS = ("-F", "--form")
_FILE_CONSUMERS = frozenset({"nc", "ncat", "netcat", "socat", "telnet", "ssh", "openssl", "mail", "sendmail",
                             "mutt", "http", "https", "xh"})  # fmt: skip


@dataclass
class BashResult:
    findings: list[Finding]
    analysis: Analysis
    views: list[CommandView]


class BashContext:
    """Everything the views of one command line share: the analysis and the data flows between commands."""

    def __init__(self, analysis: Analysis, ruleset: RuleSet, mode: str, pctx: PathContext, *, depth: int = 0,
                 deadline: float | None = None) -> None:  # fmt: skip
        self.analysis = analysis
        self.ruleset = ruleset
        self.mode = mode
        self.pctx = pctx
        self.depth = depth
        self.deadline = deadline if deadline is not None else time.thread_time() + TOTAL_BUDGET_S
        self.truncated = False
        self.views: list[CommandView] = []
        for n, cmd in enumerate(analysis.commands):
            if n & 31 == 31 and time.thread_time() > self.deadline:
                self.truncated = True
                break
            self.views.append(CommandView(cmd, self))
        self.links: dict[str, str] = {}
        for view in self.views:
            if view.name == "ln" and "-s" in view.flags and len(view.pos_words) == 2:
                target, link = (view.resolve(w) for w in view.pos_words)
                if target and link:
                    self.links[link] = target  # ln -s SECRET x && cat x reads the secret
        self.out: list[frozenset[str]] = []
        self.files: dict[str, frozenset[str]] = {}
        self.dotenv_at: int | None = None
        self.consumers: dict[int, list[str]] = {}
        for view in self.views:
            for j in view.cmd.stdin_from:
                self.consumers.setdefault(j, []).append(view.name or "")
        for view in self.views:
            kinds = view.compute_kinds()
            self.out.append(kinds)
            view.record_files(kinds)
            if self.dotenv_at is None and view.loads_dotenv():
                self.dotenv_at = view.cmd.index

    def kinds_of(self, indices: Iterable[int]) -> frozenset[str]:
        out: set[str] = set()
        for i in indices:
            if 0 <= i < len(self.out):
                out |= self.out[i]
        return frozenset(out)


class CommandView(Subject):
    """One simple command as the rules see it."""

    def __init__(self, cmd: Command, bx: BashContext) -> None:
        self.cmd = cmd
        self.bx = bx
        pack = bx.ruleset.pack
        name = cmd.name
        tokens: list[Word] = list(cmd.args)
        spec = pack.spec(name)
        if spec.alias_of:
            name = spec.alias_of[0]
            tokens = [Word(t) for t in spec.alias_of[1:]] + tokens
            spec = pack.spec(name)
        self.name = name or None
        self.spec = spec
        self.tokens = tokens
        self.raw = cmd.raw[:_MATCH_TEXT]
        self.env = cmd.assigns
        self.privileged = cmd.privileged
        self.via = cmd.via
        self.sink = cmd.final_sink if cmd.sink == "pipe" else cmd.sink
        self.text = " ".join([name or str(cmd.argv[0]), *(str(w) for w in tokens)])[:_MATCH_TEXT]
        self.stdin_kinds = frozenset()
        self._classes: dict[tuple[str, bool], frozenset[str]] = {}
        self._parse()

    # -- argument parsing --------------------------------------------------------------------------------
    def _parse(self) -> None:
        spec = self.spec
        flags: set[str] = set()
        values: dict[str, list[Word]] = {}
        positionals: list[Word] = []
        aliases = dict(spec.aliases)
        value_opts = spec.global_value_options or spec.value_options
        global_phase = bool(spec.global_value_options)
        ended = False
        tokens = self.tokens

        def add(opt: str, value: Word | None) -> None:
            if spec.abbreviations and opt.startswith("--") and opt not in aliases:
                longer = [k for k in aliases if k.startswith(opt)]
                if len(longer) == 1:
                    flags.add(opt)
                    opt = longer[0]
            off = value is not None and value.text.lower() in ("none", "false", "no", "0", "off")
            for canonical in aliases.get(opt, (opt,)):
                if not off:
                    flags.add(canonical)
                if value is not None:
                    flags.add(f"{canonical}={value.text}")
                    values.setdefault(canonical, []).append(value)

        i = 0
        while i < len(tokens):
            w = tokens[i]
            t = w.text
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if not ended and t == "--":
                flags.add("--")
                ended = True
            elif self.name == "find" and t in ("-exec", "-execdir", "-ok", "-okdir"):
                flags.add(t)
                while i + 1 < len(tokens) and tokens[i + 1].text not in (";", "+", "\\;"):
                    i += 1
                i += 1
            elif self.name in ("fd", "fdfind") and not ended and t in ("-x", "--exec", "-X", "--exec-batch"):
                flags.add(t)  # the command after it is analysed on its own (ProgramHandlers.fd)
                while i + 1 < len(tokens) and tokens[i + 1].text not in (";", "\\;"):
                    i += 1
                i += 1
            elif self.name == "chmod" and not positionals and re.fullmatch(r"-[rwxXst]+(?:,\S*)?", t):
                positionals.append(w)  # chmod -rwx FILE: a symbolic mode that starts with '-'
            elif not ended and len(t) > 1 and t[0] == "-" and DYN not in t[:2]:
                if t.startswith("--"):
                    opt, eq, val = t.partition("=")
                    if eq:
                        add(opt, Word(val, subs=w.subs, vars=w.vars))
                    elif opt in value_opts and nxt is not None:
                        add(opt, nxt)
                        i += 1
                    else:
                        add(opt, None)
                elif spec.no_bundle or t in value_opts or t in aliases:
                    if t in value_opts and nxt is not None:
                        add(t, nxt)
                        i += 1
                    else:
                        add(t, None)
                else:
                    letters = t[1:]
                    for j, ch in enumerate(letters):
                        opt = "-" + ch
                        if opt in value_opts:
                            rest = letters[j + 1 :]
                            if rest:
                                add(opt, Word(rest, subs=w.subs, vars=w.vars))
                            elif nxt is not None:
                                add(opt, nxt)
                                i += 1
                            else:
                                add(opt, None)  # last word: a flag after all (git clean -fdn)
                            break
                        add(opt, None)
            else:
                positionals.append(w)
                if len(positionals) == 1:
                    sub = spec.subcommands.get(t.lower())
                    if global_phase or sub is not None:
                        value_opts = spec.value_options | (sub.value_options if sub else frozenset())
                        if sub is not None:
                            aliases.update(sub.aliases)
                        global_phase = False
            i += 1
        self.flags = frozenset(flags)
        self.flag_abbrev = spec.abbreviations
        self.values = values
        self.pos_words = positionals
        self.positionals = [w.text for w in positionals]

    def match_subcommand(self, options: tuple[tuple[str, ...], ...]) -> int | None:
        words = self._lower
        n = len(words)
        for seq in options:
            if n >= len(seq) and all(w == p or ((p in _GLOBS or "*" in p) and fnmatchcase(w, p))
                                     for w, p in zip(words, seq, strict=False)):  # fmt: skip
                return len(seq)
        return None

    @cached_property
    def _lower(self) -> list[str]:
        return [p.lower() for p in self.positionals]

    # -- paths ------------------------------------------------------------------------------------------
    @cached_property
    def path_context(self) -> PathContext:
        pctx = self.bx.pctx
        if self.cmd.remote:
            return PathContext(pctx.home, pctx.home, None, pctx.tmpdir, pctx.claude_dir, pctx.ultramax_home,
                               pctx.build_dirs, False)  # fmt: skip
        return pctx.with_cwd(self.cmd.cwd)

    def classes_of(self, word: Word) -> frozenset[str]:
        key = (word.text, word.glob)
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = self._classify(word)
        return found

    def _classify(self, word: Word) -> frozenset[str]:
        cmd = self.cmd
        text = word.text
        if cmd.chroot and text.startswith("/"):
            text = cmd.chroot.rstrip("/") + text
        if cmd.container:
            for dst, src in cmd.mounts:
                if text == dst or text.startswith(dst.rstrip("/") + "/"):
                    host = src.rstrip("/") + text[len(dst.rstrip("/")) :]
                    return classify_word(host, self.bx.pctx, self.bx.pctx.cwd, glob=word.glob)
            return frozenset({"container" if cmd.container == "run" else "container_live"})
        classes = classify_word(text, self.path_context, cmd.cwd if not cmd.remote else self.path_context.cwd,
                                glob=word.glob)  # fmt: skip
        if self.bx.links and not cmd.remote and self.name != "ln":
            target = self.bx.links.get(self.resolve(word) or "")
            if target is not None:
                classes = classes | classify_word(target, self.path_context, cmd.cwd)
        return classes

    def resolve(self, word: Word) -> str | None:
        return resolve(word.text, self.path_context, self.cmd.cwd)

    def select(self, selector: str | None, rest: int = 0) -> list[Word]:
        if not selector:
            return []
        pos = self.pos_words[rest:]
        if selector == "args":
            return pos
        if selector == "last":
            return pos[-1:]
        if selector == "all_but_last":
            return pos[:-1]
        if selector == "first":
            return pos[:1]
        if selector == "roots":
            return list(self.cmd.roots)
        kind, _, arg = selector.partition(":")
        if kind == "args_after":
            if self.name in ("grep", "egrep", "fgrep", "rg", "ag", "ack", "sed", "awk", "gawk", "jq") and (
                self.flags & {"-e", "-f", "--regexp", "--expression", "--file"}
            ):
                return pos
            return pos[int(arg) :]
        if kind == "operand":
            prefix = arg + "="
            return [Word(w.text[len(prefix) :], subs=w.subs, vars=w.vars) for w in self.tokens
                    if w.text.startswith(prefix)]  # fmt: skip
        if kind == "option":
            return list(self.values.get(arg, []))
        return []

    def target_classes(self, select: str, rest: int) -> list[frozenset[str]]:
        return [self.classes_of(w) for w in self.select(select, rest)]

    @cached_property
    def read_words(self) -> list[Word]:
        spec = self.spec
        words = self.select(spec.reads)
        if self.name == "sed" and "-i" in self.flags:
            words = []  # in-place: the files are rewritten, their content is not printed
        words += [w for op, w in self.cmd.redirects if op.startswith("<") and op not in ("<<", "<<<") and _is_path(w)]
        words += self._uploads()
        return words

    @cached_property
    def write_words(self) -> list[Word]:
        spec = self.spec
        words: list[Word] = []
        if spec.writes and not (self.name == "sed" and "-i" not in self.flags):
            words += self.select(spec.writes)
        words += [w for op, w in self.cmd.redirects if (">" in op) and _is_path(w)]
        if self.name == "curl":
            words += [w for w in self.values.get("-o", []) + self.values.get("--output", []) if w.text != "-"]
        if self.name == "wget":
            words += [w for w in self.values.get("-O", []) + self.values.get("--output-document", []) if w.text != "-"]
        if self.name in ("mv", "cp") and self.values.get("-t"):
            words += self.values["-t"]
        return words

    @cached_property
    def delete_words(self) -> list[Word]:
        return self.select(self.spec.deletes)

    @cached_property
    def modify_words(self) -> list[Word]:
        return self.select(self.spec.modifies)

    @cached_property
    def modify_classes(self) -> list[frozenset[str]]:  # type: ignore[override]
        return [self.classes_of(w) for w in self.modify_words]

    @cached_property
    def read_classes(self) -> list[frozenset[str]]:  # type: ignore[override]
        return [self.classes_of(w) for w in self.read_words]

    @cached_property
    def write_classes(self) -> list[frozenset[str]]:  # type: ignore[override]
        return [self.classes_of(w) for w in self.write_words]

    @cached_property
    def delete_classes(self) -> list[frozenset[str]]:  # type: ignore[override]
        return [self.classes_of(w) for w in self.delete_words]

    def _uploads(self) -> list[Word]:
        """Local files a network client sends (curl -d @f, -F x=@f, -T f, wget --post-file f)."""
        out: list[Word] = []
        for w in self._data_words():
            if w.text not in ("-", "@-", ".") and not w.text.startswith("@-"):
                out.append(w)
        return out

    def _data_words(self) -> list[Word]:
        """Paths given as upload sources (``-`` means stdin)."""
        out: list[Word] = []
        if self.name == "curl":
            for opt in _SEND_DATA_OPTS:
                for w in self.values.get(opt, []):
                    if w.text.startswith("@"):
                        out.append(Word(w.text[1:], subs=w.subs, vars=w.vars))
            for opt in _SEND_FILE_OPTS:
                out += self.values.get(opt, [])
            for opt in _SEND_FORM_OPTS:
                for w in self.values.get(opt, []):
                    _, eq, val = w.text.partition("=")
                    if eq and val[:1] in ("@", "<"):
                        out.append(Word(val[1:].split(";", 1)[0], subs=w.subs, vars=w.vars))
        elif self.name == "wget":
            out += self.values.get("--post-file", []) + self.values.get("--body-file", [])
        elif self.name in ("http", "https", "xh"):
            for w in self.pos_words:
                m = re.match(r"^[^=@:]+=?@(.+)$", w.text)
                if m:
                    out.append(Word(m.group(1)))
        return out

    # -- data flows -------------------------------------------------------------------------------------
    def compute_kinds(self) -> frozenset[str]:
        """What this command prints (the kinds of data in its output)."""
        bx = self.bx
        cmd = self.cmd
        stdin = bx.kinds_of(cmd.stdin_from)
        if cmd.stdin_text is not None and not cmd.stdin_from:
            stdin = stdin | {"dynamic" if DYN in cmd.stdin_text else "static"}
        self.stdin_kinds = stdin
        name = self.name or ""
        kinds: set[str] = set()
        if name in SHELLS:
            kinds.add("shell")
        if "network" in self.spec.kinds:
            if name == "curl":
                outs = self.values.get("-o", []) + self.values.get("--output", [])
                if not ("-O" in self.flags or outs) or any(w.text == "-" for w in outs):
                    kinds.add("network")
            elif name == "wget":
                outs = self.values.get("-O", []) + self.values.get("--output-document", [])
                if any(w.text == "-" for w in outs):
                    kinds.add("network")
            elif name in ("nc", "ncat", "netcat", "socat", "telnet"):
                kinds |= {"network", "socket"}
            else:
                kinds.add("network")
        if "secret" in self.spec.kinds:
            kinds.add("secret")
        bare = not self.pos_words or (name == "export" and "-p" in self.flags)
        if "env" in self.spec.kinds and bare and not (name in ("export", "declare", "set") and self.pos_words):
            kinds.add("env")
        for classes in self.read_classes:
            if classes & {"secret", "secret_dir", "contains_secrets"} and "template" not in classes:
                kinds.add("secret")
            else:
                kinds.add("file")
        for w in self.read_words:
            path = self.resolve(w)
            if path in bx.files:
                kinds |= bx.files[path]
        if name in _PRINTERS:
            kinds |= self.arg_kinds
            if self.facts & {"prints_secret_var", "prints_dotenv_var"}:
                kinds.add("secret")
        if cmd.static_out is not None:
            kinds.add("static")
        elif self._decodes():
            kinds.add("decoded")
        if cmd.stdin_from and name not in SHELLS and name not in INTERPRETERS:
            kinds |= stdin
        if not kinds:
            kinds.add("output")
        return frozenset(kinds)

    def _decodes(self) -> bool:
        name = self.name
        if name in _TRANSFORMERS and self.stdin_kinds and self.stdin_kinds <= {"static", "decoded"}:
            return True  # literal text rewritten (tr, sed, rev ...) into something the analysis cannot compute
        if name in ("base64", "base32", "basenc"):
            return bool(self.flags & _DECODE_FLAGS)
        if name == "xxd":
            return "-r" in self.flags
        if name == "openssl":
            return "-d" in self.flags or ("-base64" in self.flags and "-d" in self.flags)
        return name in ("uudecode", "gunzip", "zcat", "bunzip2", "xz", "unxz") or (
            name == "gzip" and "-d" in self.flags
        )

    def record_files(self, kinds: frozenset[str]) -> None:
        bx = self.bx
        for op, w in self.cmd.redirects:
            if ">" in op and _is_path(w):
                path = self.resolve(w)
                if path:
                    bx.files[path] = kinds
        name = self.name
        if name in ("curl", "wget"):
            for w in self.write_words:
                path = self.resolve(w)
                if path:
                    bx.files[path] = frozenset({"network"})
            urls = [w.text for w in self.pos_words if w.text.startswith(("http://", "https://", "ftp://"))]
            if urls and ("-O" in self.flags if name == "curl" else not self.write_words):
                base = urls[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "index.html"
                path = resolve(base, self.path_context, self.cmd.cwd)
                if path:
                    bx.files[path] = frozenset({"network"})
        if name in ("cp", "mv", "install", "tee") and self.write_words:
            src_kinds = frozenset({"secret"}) if any("secret" in c for c in self.read_classes) else kinds
            for w in self.write_words:
                path = self.resolve(w)
                if path:
                    bx.files[path] = src_kinds | bx.files.get(path, frozenset())

    def loads_dotenv(self) -> bool:
        name = self.name
        if name in ("source", ".") and self.pos_words:
            return "dotenv" in self.classes_of(self.pos_words[0])
        if self.sink == "subst_env" and any("dotenv" in c for c in self.read_classes):
            return True
        return name in ("dotenv", "env-cmd") or (name == "export" and any("secret" in self.bx.kinds_of(w.subs)
                                                                           for w in self.tokens))  # fmt: skip

    def _git_configured_program(self) -> str | None:
        """``git config [--global] KEY VALUE`` where KEY names a program git runs later (core.sshCommand,
        core.fsmonitor, core.pager ... or a ``!`` alias): VALUE is code that persists."""
        if self.name != "git" or self.match_subcommand((("config",),)) is None:
            return None
        words = [p for p in self.positionals[1:] if p not in ("set", "add")]
        if len(words) < 2 or DYN in words[1]:
            return None
        key = words[0].lower()
        if key in GIT_COMMAND_KEYS or (key.startswith("alias.") and words[1].startswith("!")):
            return words[1].removeprefix("!")
        return None

    def _served_directory(self) -> Word | None:
        words = [w.text for w in self.tokens]
        served = _served_directory_of(self.name or "", words, self.cmd.cwd)
        return Word(served) if served is not None and DYN not in served else None

    @cached_property
    def arg_kinds(self) -> frozenset[str]:
        out: set[str] = set()
        for w in self.cmd.argv:
            if w.subs:
                out |= self.bx.kinds_of(w.subs)
            elif w.vars and w.dynamic:
                out.add("dynamic")
        return frozenset(out)

    @cached_property
    def exec_kinds(self) -> frozenset[str]:  # type: ignore[override]
        cmd = self.cmd
        bx = self.bx
        src = cmd.exec_source
        kinds: set[str] = set()
        if src == "stdin":
            kinds |= self.stdin_kinds
        elif src in ("arg", "args"):
            words = [cmd.exec_word] if src == "arg" and cmd.exec_word is not None else list(cmd.args)
            for w in words:
                if not w.dynamic:
                    kinds.add("static")
                elif w.subs:
                    kinds |= bx.kinds_of(w.subs)
                    if w.vars:
                        kinds.add("dynamic")
                else:
                    kinds.add("dynamic")
        elif src == "file" and cmd.exec_word is not None:
            w = cmd.exec_word
            if w.procsub or w.subs:
                kinds |= bx.kinds_of(w.subs)
            elif w.text.startswith(("http://", "https://")):
                kinds.add("network")
            else:
                path = self.resolve(w)
                kinds |= bx.files.get(path or "", frozenset({"file"}))
        argv0 = cmd.argv[0].text
        if "/" in argv0:
            path = resolve(argv0, self.path_context, cmd.cwd)
            if path in bx.files:
                kinds |= bx.files[path]
        return frozenset(kinds)

    @cached_property
    def sent_kinds(self) -> frozenset[str]:  # type: ignore[override]
        if not self.spec.sender and self.name not in _FILE_CONSUMERS:
            return frozenset()
        bx = self.bx
        kinds: set[str] = set()
        for w in self._data_words():
            if w.text in ("-", "."):
                kinds |= self.stdin_kinds
            else:
                classes = self.classes_of(w)
                if classes & {"secret", "secret_dir", "contains_secrets"}:
                    kinds.add("secret")
                kinds |= bx.files.get(self.resolve(w) or "", frozenset())
        if self.name == "curl":
            for opt in (*_SEND_DATA_OPTS, *_SEND_FORM_OPTS):
                for w in self.values.get(opt, []):
                    if w.text.startswith("@-") or w.text.endswith("=@-"):
                        kinds |= self.stdin_kinds
                    kinds |= bx.kinds_of(w.subs)
        elif self.name == "wget":
            for w in self.values.get("--post-data", []) + self.values.get("--body-data", []):
                kinds |= bx.kinds_of(w.subs)
        elif self.name in _FILE_CONSUMERS or self.name in ("scp", "rsync", "sftp"):
            kinds |= self.stdin_kinds
            for classes, w in zip(self.read_classes, self.read_words, strict=False):
                if classes & {"secret", "secret_dir", "contains_secrets"}:
                    kinds.add("secret")
                kinds |= bx.files.get(self.resolve(w) or "", frozenset())
        return frozenset(kinds & {"secret", "env"})

    @cached_property
    def sql(self) -> frozenset[str]:  # type: ignore[override]
        spec = self.spec
        if not (spec.sql_options or spec.sql_positional is not None or spec.sql_stdin):
            return frozenset()
        if spec.redis:
            found = set(redis_classes(self.positionals))
            for line in (self.cmd.stdin_text or "").splitlines():
                found |= redis_classes(line.split())
            if self.positionals[:1] and self.positionals[0].lower() == "eval" and len(self.positionals) > 1:
                for called in re.findall(r"redis\.p?call\(\s*['\"](\w+)", self.positionals[1]):
                    found |= redis_classes([called])  # a Lua script's redis.call('flushall')
            return frozenset(found)
        texts: list[str] = []
        for opt in spec.sql_options:
            texts += [w.text for w in self.values.get(opt, [])]
        if spec.sql_positional is not None:
            texts += self.positionals[spec.sql_positional :]
        if spec.sql_stdin and self.cmd.stdin_text:
            texts.append(self.cmd.stdin_text)
        sources = [w for opt in spec.sql_files for w in self.values.get(opt, [])]
        if spec.sql_stdin and self.cmd.stdin_text is None:
            sources += [w for op, w in self.cmd.redirects if op == "<" and _is_path(w)]
        for w in sources:  # a SQL file written earlier in the command line, or a process substitution
            text = self.known_text(w)
            if text is not None:
                texts.append(text)
        out: set[str] = set()
        for text in texts:
            out |= sql_classes(text.replace(DYN, " "))
        return frozenset(out)

    def known_text(self, w: Word) -> str | None:
        """The content of a file argument when the command line itself produced it."""
        if w.procsub:
            commands = self.bx.analysis.commands
            outs = [commands[i].static_out for i in w.subs if i < len(commands)]
            return "".join(o for o in outs if o is not None) if w.subs and None not in outs else None
        path = self.resolve(w)
        return self.bx.analysis.files.get(path) if path else None

    @cached_property
    def dynamic(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"name"}) if not self.cmd.name else frozenset()

    @cached_property
    def facts(self) -> frozenset[str]:  # type: ignore[override]
        facts = set(self.cmd.facts)
        if not self.pos_words and not self.flags:
            facts.add("bare")
            if self.cmd.sink == "tty":
                facts.add("bare_tty")
        consumers = self.bx.consumers.get(self.cmd.index)
        if consumers and all(c in _CREDENTIAL_CONSUMERS for c in consumers):
            facts.add("feeds_login")
        name = self.name
        if name in _FILTERS and "env" in self.stdin_kinds and any(_SECRET_VAR.search(p) for p in self.positionals):
            facts.add("prints_secret_var")
        loaded = self.bx.dotenv_at is not None and self.bx.dotenv_at < self.cmd.index
        if name in ("env", "printenv", "export", "set") and "bare" in facts and loaded and self.sink != "subst_env":
            facts.add("prints_dotenv_var")
        if name in _PRINTERS:
            names = [v for w in self.cmd.args for v in w.vars if w.dynamic]
            if name == "printenv":
                names += self.positionals
            if any(_SECRET_VAR.search(n) for n in names):
                facts.add("prints_secret_var")
            if names and self.bx.dotenv_at is not None and self.bx.dotenv_at < self.cmd.index:
                facts.add("prints_dotenv_var")
        if name and (name in _SERVER_NAMES or name.startswith(("python", "pypy"))):
            served = self._served_directory()
            if served is not None and self.classes_of(served) & _SERVED_SECRETS:
                facts.add("serves_secrets")
        crontab = name == "crontab" and self.cmd.stdin_text is not None
        configured = self._git_configured_program()
        if self.bx.depth < 2 and (crontab or configured or any(c & _PERSISTENT for c in self.write_classes)):
            content = self.cmd.stdin_text if crontab else configured or self.cmd.static_out
            bx = self.bx
            if content:
                facts |= persisted_code_facts(content, bx.ruleset, bx.mode, bx.pctx, depth=bx.depth,
                                              deadline=bx.deadline)  # fmt: skip
        return frozenset(facts)


_GLOBS = frozenset({"*", "?"})
_SERVED_SECRETS = frozenset({"root", "home", "parent", "secret_dir", "contains_secrets", "secret"})
_STATIC_SERVERS = frozenset({"http-server", "serve", "live-server", "httpd", "static-server"})
_SERVER_NAMES = _STATIC_SERVERS | {"php", "ruby"}


def _served_directory_of(name: str, words: list[str], cwd: str | None) -> str | None:
    """The directory a one-line static file server shares on the network (python -m http.server, php -S,
    npx http-server, ruby -run -e httpd, busybox httpd), or None when the command is not one."""

    def after(*opts: str) -> str | None:
        for i, w in enumerate(words):
            if w in opts and i + 1 < len(words):
                return words[i + 1]
            for opt in opts:
                if opt.startswith("--") and w.startswith(opt + "="):
                    return w.split("=", 1)[1]
        return None

    if name.startswith(("python", "pypy")) and "http.server" in words and "-m" in words:
        return after("--directory", "-d") or cwd
    if name == "php" and "-S" in words:
        return after("-t") or cwd
    if name == "ruby" and "httpd" in words and "-run" in words:
        rest = words[words.index("httpd") + 1 :]
        return next((w for w in rest if not w.startswith("-") and not w.isdigit()), cwd)
    if name in _STATIC_SERVERS:
        return after("-h", "--home", "-d", "--dir") or next((w for w in words if not w.startswith("-")), cwd)
    return None


def _is_path(w: Word) -> bool:
    t = w.text
    return bool(t) and not t.isdigit() and not t.startswith("&") and t != "-"


def persisted_code_denied(content: str, ruleset: RuleSet, mode: str, pctx: PathContext, *, depth: int = 0,
                          deadline: float | None = None) -> bool:  # fmt: skip
    """Whether code written into a start-up file, cron table or hook would itself be denied when it runs."""
    return "persists_denied_code" in persisted_code_facts(content, ruleset, mode, pctx, depth=depth,
                                                          deadline=deadline)  # fmt: skip


_UNIT_EXEC = re.compile(
    r"^\s*(?:Exec[A-Za-z]*\s*=\s*[-@:+!|]*|(?:ProxyCommand|LocalCommand|KnownHostsCommand)(?:\s*=\s*|\s+)"
    r"|Match\s+(?:\S+\s+)*?exec\s+)\s*[\"']?"
)
"""Lines whose value is a command: systemd units (ExecStart=, ExecStartPre= ... with their -@:+! prefixes),
.desktop entries (Exec=) and ssh_config (ProxyCommand, LocalCommand, KnownHostsCommand, Match exec)."""
_HIJACK_VAR = re.compile(
    r"(?:^|[\s;])(?:export\s+|declare\s+-x\s+)?(PATH|LD_PRELOAD|LD_LIBRARY_PATH|DYLD_INSERT_LIBRARIES)=[\"']?([^\"'\s;]*)"
)
_HIJACKED = frozenset({"sudo", "su", "doas", "pkexec", "passwd", "ssh", "scp", "gpg"})


def persisted_code_facts(content: str, ruleset: RuleSet, mode: str, pctx: PathContext, *, depth: int = 0,
                         deadline: float | None = None) -> set[str]:  # fmt: skip
    """What code written into a start-up file, cron table, unit or hook would do when it runs later:
    ``persists_denied_code`` when it would itself be denied; ``persists_hijack`` when it runs a program or
    library from a world-writable temporary directory, puts one first on PATH (or in LD_PRELOAD), or
    aliases sudo, su, ssh and the like (the classic ways to capture a password or keep a foothold)."""
    facts: set[str] = set()
    texts = [content]
    for line in content.splitlines():
        stripped = re.sub(r"^\s*(?:@\w+|(?:\S+\s+){5})(?:root\s+|[a-z_][a-z0-9_-]*\s+(?=\S))?", "", line)
        unit = _UNIT_EXEC.sub("", line)
        texts += [t for t in (stripped, unit) if t != line]
        for m in _HIJACK_VAR.finditer(line):
            if any(_temporary(part, pctx) for part in m.group(2).split(":") if part.startswith("/")):
                facts.add("persists_hijack")
    for text in texts:
        result = evaluate_bash(text, ruleset, mode, pctx, depth=depth + 1, deadline=deadline)
        if any(f.permission == "deny" for f in result.findings):
            facts.add("persists_denied_code")
        for view in result.views:
            cmd = view.cmd
            program = cmd.argv[0].text if cmd.argv else ""
            script = cmd.exec_word.text if cmd.exec_source == "file" and cmd.exec_word is not None else ""
            if any(p.startswith("/") and _temporary(p, pctx) for p in (program, script)):
                facts.add("persists_hijack")
            if view.name == "alias" and any(w.text.partition("=")[0] in _HIJACKED for w in cmd.args):
                facts.add("persists_hijack")
    return facts


def _temporary(path: str, pctx: PathContext) -> bool:
    return bool(classify_word(path, pctx, pctx.cwd) & {"temp", "temp_root"})


def shell_context(pctx: PathContext) -> ShellContext:
    return ShellContext(pctx.home, pctx.cwd, pctx.project, pctx.tmpdir)


def evaluate_bash(command: str, ruleset: RuleSet, mode: str, pctx: PathContext, *, depth: int = 0,
                  deadline: float | None = None) -> BashResult:  # fmt: skip
    """Every finding for one Bash command line, within the time budget (what does not fit is ``budget``)."""
    deadline = deadline if deadline is not None else time.thread_time() + TOTAL_BUDGET_S
    analysis = analyze(command, shell_context(pctx))
    bx = BashContext(analysis, ruleset, mode, pctx, depth=depth, deadline=deadline)
    findings: list[Finding] = []
    if bx.truncated:
        findings += ruleset.findings("Bash", FactSubject({"budget"}, command), mode, unit=-1, label=command[:120])
    if analysis.facts:
        label = analysis.error or (command if len(command) <= 120 else command[:117] + "...")
        findings += ruleset.findings("Bash", FactSubject(analysis.facts, command), mode, unit=-1, label=label)
    for n, view in enumerate(bx.views):
        if n & 7 == 7 and time.thread_time() > deadline:
            findings += ruleset.findings("Bash", FactSubject({"budget"}, command), mode, unit=-1, label=command[:120])
            break
        if view.flags & {"--help", "-help"} and not view.cmd.redirects:
            continue
        if _DRY_RUN.intersection(w.text for w in view.tokens) and not view.cmd.redirects:
            continue
        findings += ruleset.findings("Bash", view, mode, unit=view.cmd.index, label=view.cmd.text, via=view.cmd.where())
    if ruleset.patterns:
        findings = apply_user_patterns(findings, bx, command)
    return BashResult(findings, analysis, bx.views)


def apply_user_patterns(findings: list[Finding], bx: BashContext, command: str) -> list[Finding]:
    """The user's safety.allow/ask/deny patterns, per simple command (deny > ask > allow)."""
    ruleset = bx.ruleset
    units: list[tuple[int, str, Sequence[str], Sequence[str]]] = [(-1, command, (), ())]
    for view in bx.views:
        read_paths = [p for p in (view.resolve(w) for w in view.read_words) if p]
        changed = (*view.write_words, *view.delete_words, *view.modify_words)
        write_paths = [p for p in (view.resolve(w) for w in changed) if p]
        units.append((view.cmd.index, view.cmd.text, read_paths, write_paths))
    out = list(findings)
    for unit, text, reads, writes in units:

        def test(p: object, text: str = text, reads: Sequence[str] = reads, writes: Sequence[str] = writes) -> bool:
            from ultramax.safety.rules import ClaudePattern

            assert isinstance(p, ClaudePattern)
            if p.matches_tool("Bash"):
                return p.matches_command(text)
            if p.tool == "Read" and p.spec is not None:
                return any(p.matches_path(r, bx.pctx) for r in reads)
            if p.tool in ("Edit", "Write") and p.spec is not None:
                return any(p.matches_path(w, bx.pctx) for w in writes)
            return False

        verdict = ruleset.user_verdict(test)
        if verdict is None:
            continue
        if verdict.permission != "deny" and not verdict.pattern.matches_tool("Bash"):
            continue
        if verdict.permission in ("allow", "ask"):
            out = [f for f in out if f.unit != unit or not f.waivable]
        if verdict.permission in ("deny", "ask"):
            out.append(Finding(verdict.label, "user", "high" if verdict.permission == "deny" else "medium",
                               verdict.permission, f"your rule {verdict.label} `{verdict.pattern.text}`", text, "",
                               unit, True))  # fmt: skip
    return out


__all__ += ["BashContext", "persisted_code_denied", "persisted_code_facts", "shell_context"]
