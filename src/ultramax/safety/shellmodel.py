"""What the shell analysis produces (``ultramax.safety.shell.analyze``): each simple command a Bash tool call
would run (``Command``, its arguments as ``Word``), the whole call's ``Analysis``, and the ``ShellContext`` it
was analysed in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ultramax.safety.pathclass import DYN, PathContext

__all__ = [
    "BUDGET_S",
    "DYN",
    "ENTRY",
    "MAX_DEPTH",
    "NUL",
    "Analysis",
    "Command",
    "ShellContext",
    "Word",
    "canonical_name",
]

ENTRY = "\x01"
"""Stands for "some entry below this directory" (what find -exec and xargs after find/ls receive)."""

NUL = "\x02"
"""Stands for a NUL byte in a command's known output (``printf '%s\\0'``), which ``xargs -0`` splits on."""

MAX_DEPTH = 6
"""How deep code-in-code (``bash -c "bash -c '...'"``) is followed before the failure policy applies."""
BUDGET_S = 0.020
"""Analysis time after which the rest of a (huge) command is not analysed and the failure policy applies."""


@dataclass(frozen=True, slots=True)
class Word:
    """One argument after quote removal and the expansions that could be resolved.

    ``text`` holds ``DYN`` where a value is only known at run time. ``subs`` are the commands whose output
    was spliced in (``$(...)``, process substitution); ``vars`` the unresolved variables.
    """

    text: str
    quoted: bool = False
    glob: bool = False
    subs: tuple[int, ...] = ()
    vars: tuple[str, ...] = ()
    procsub: bool = False

    @property
    def dynamic(self) -> bool:
        return DYN in self.text

    def __str__(self) -> str:
        return self.text.replace(DYN, "$?").replace(ENTRY, "{}")


@dataclass(slots=True, eq=False)
class Command:
    """One simple command as it would run."""

    index: int
    name: str  # canonical (basename, lower case); "" when the command word is built at run time
    argv: tuple[Word, ...]
    raw: str
    depth: int = 0
    via: tuple[str, ...] = ()
    cwd: str | None = None
    assigns: dict[str, str] = field(default_factory=dict)
    wrappers: tuple[str, ...] = ()
    privileged: bool = False
    stdin_from: tuple[int, ...] = ()
    stdin_text: str | None = None
    sink: str = "tty"  # where stdout goes: tty | pipe | file | subst | subst_env
    final_sink: str = "tty"  # where the enclosing pipeline's output ends up
    redirects: tuple[tuple[str, Word], ...] = ()
    exec_source: str | None = None  # the command runs code from: arg | stdin | file | args
    exec_word: Word | None = None
    facts: set[str] = field(default_factory=set)
    remote: bool = False
    container: str | None = None  # run (throw-away container) | exec (a running one)
    mounts: tuple[tuple[str, str], ...] = ()
    synthetic: bool = False
    static_out: str | None = None
    roots: tuple[Word, ...] = ()  # find: the starting points
    chroot: str | None = None  # absolute paths are below this directory (chroot DIR cmd)

    @property
    def args(self) -> tuple[Word, ...]:
        return self.argv[1:]

    @property
    def text(self) -> str:
        """The canonical command line: name and arguments (quoted where needed), run-time parts as ``$?``."""
        return " ".join([self.name or str(self.argv[0]), *(_show(w) for w in self.argv[1:])])

    def where(self) -> str:
        return f" (via {' > '.join(self.via)})" if self.via else ""


@dataclass(slots=True)
class Analysis:
    """Every simple command of one Bash tool call, plus facts about the script as a whole."""

    command: str
    commands: list[Command] = field(default_factory=list)
    facts: set[str] = field(default_factory=set)
    error: str | None = None
    ms: float = 0.0
    files: dict[str, str | None] = field(default_factory=dict)
    """Files the command line writes, with their text when it is known (``echo ... > q.sql``)."""


@dataclass(frozen=True, slots=True)
class ShellContext:
    """Where the command runs."""

    home: str
    cwd: str | None
    project: str | None = None
    tmpdir: str = "/tmp"
    max_depth: int = MAX_DEPTH
    budget_s: float = BUDGET_S

    @property
    def paths(self) -> PathContext:
        return PathContext(self.home, self.cwd, self.project, self.tmpdir)


_NEEDS_QUOTES = re.compile(r"[\s'\"\\|&;<>()`]")


def _show(word: Word) -> str:
    text = str(word)
    if text == "" or _NEEDS_QUOTES.search(text):
        return "'" + text.replace("'", "'\\''") + "'"
    return text


def canonical_name(text: str) -> str:
    """``/usr/bin/RM`` -> ``rm``; ``""`` for a run-time value."""
    if DYN in text:
        return ""
    name = text.strip().replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name.endswith(".exe"):
        name = name[:-4]
    return name
