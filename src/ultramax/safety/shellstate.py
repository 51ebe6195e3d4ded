"""The shell walker's working state (``ultramax.safety.shell``): the variables, directory and context a
statement runs in (``WalkState``), where its input comes from and its output goes (``WalkIO``), what it produced
(``WalkOut``), one simple command on its way through (``WalkCall``), and the stop raised when a budget runs out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ultramax.safety.shellmodel import ShellContext, Word

__all__ = ["WalkCall", "WalkIO", "WalkOut", "WalkState", "WalkStop"]


class WalkStop(Exception):
    def __init__(self, fact: str) -> None:
        super().__init__(fact)
        self.fact = fact


@dataclass(slots=True)
class WalkState:
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
    git_aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def initial(cls, ctx: ShellContext) -> WalkState:
        return cls(ctx.cwd, {}, {})

    def copy(self) -> WalkState:
        return WalkState(self.cwd, dict(self.vars), dict(self.functions), self.depth, self.via, self.remote,
                      self.container, self.mounts, self.calling, self.privileged, dict(self.var_subs),
                      self.chroot, dict(self.git_aliases))  # fmt: skip


@dataclass(frozen=True, slots=True)
class WalkIO:
    stdin_from: tuple[int, ...] = ()
    stdin_text: str | None = None
    sink: str = "tty"
    final_sink: str = "tty"
    redirects: tuple[tuple[str, Word], ...] = ()
    extra_args: tuple[Word, ...] = ()


@dataclass(slots=True)
class WalkOut:
    """What a statement produced: the commands writing to its stdout and, if computable, the text."""

    indices: list[int] = field(default_factory=list)
    text: str | None = None

    def add(self, other: WalkOut) -> None:
        self.indices.extend(other.indices)


@dataclass(slots=True)
class WalkCall:
    """One simple command on its way through the analyser: its words and everything known about its context."""

    argv: list[Word]
    st: WalkState
    io: WalkIO
    assigns: dict[str, str]
    raw: str
    redirects: tuple[tuple[str, Word], ...]
    wrappers: list[str]
    privileged: bool
    out: WalkOut
    synthetic: bool
