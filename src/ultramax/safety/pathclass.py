"""Path classes: what a path *is* to the guard (home, system, project root, build output, secret ...).

Every path a tool call touches is first made absolute the way the shell or the tool would: ``~`` and
``~user`` expanded, relative paths joined to the working directory, ``..`` folded; where the path exists its
symlinks are followed as well and the classes of both spellings are kept. The classes come from the data in
``data/paths.toml``; the rule packs match on classes, never on raw text.

Location classes (exactly one): ``root``, ``system``, ``device``, ``null``, ``home``, ``user_data``, ``cache``,
``parent`` (an ancestor of the project or of the working directory), ``project_root``, ``project``,
``temp_root``, ``temp``, ``outside``, ``remote``. Content classes (any number): ``regenerable``, ``secret``,
``secret_dir`` (``secret_dir_root`` for the directory itself), ``contains_secrets``, ``dotenv``, ``template``,
``ssh_auth``, ``ssh_config``, ``shell_rc``, ``autostart`` (``autostart_impersonating`` for an entry named as
the OS vendor's own), ``sudoers``, ``database_file``, ``git_dir``,
``git_hooks``, ``git_internal``, ``git_lock``, ``guard``, ``kill_switch``, ``override``, ``claude_state``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, lru_cache

__all__ = ["PathContext", "PathData", "classify", "expand_user", "load_path_data", "resolve"]

DYN = "\x00"
"""Marks a part of a word whose value is only known at run time."""


@dataclass(frozen=True, slots=True)
class PathData:
    """The lists of ``data/paths.toml``."""

    system_roots: tuple[str, ...]
    system_exact: tuple[str, ...]
    temp_roots: tuple[str, ...]
    devices: tuple[str, ...]
    null_devices: tuple[str, ...]
    build_dirs: tuple[str, ...]
    home_caches: tuple[str, ...]
    secret_names: tuple[str, ...]
    secret_exceptions: tuple[str, ...]
    secret_paths: tuple[str, ...]
    secret_dirs: tuple[str, ...]
    dotenv_names: tuple[str, ...]
    dotenv_templates: tuple[str, ...]
    ssh_auth: tuple[str, ...]
    ssh_config: tuple[str, ...]
    shell_rc: tuple[str, ...]
    autostart: tuple[str, ...]
    autostart_impersonating: tuple[str, ...]
    sudoers: tuple[str, ...]
    database_files: tuple[str, ...]


@cache
def load_path_data() -> PathData:
    from ultramax.safety.datafiles import load_data

    raw = load_data("paths.toml")
    return PathData(**{name: tuple(raw[name]) for name in PathData.__slots__})


@dataclass(frozen=True, slots=True)
class PathContext:
    """Where the tool call runs: HOME, the working directory, the project and the guard's own files."""

    home: str
    cwd: str | None
    project: str | None
    tmpdir: str = "/tmp"
    claude_dir: str | None = None
    ultramax_home: str | None = None
    build_dirs: tuple[str, ...] = ()
    follow_symlinks: bool = True
    extra: tuple[tuple[str, str], ...] = field(default=())

    def with_cwd(self, cwd: str | None) -> PathContext:
        if cwd == self.cwd:
            return self
        return PathContext(self.home, cwd, self.project, self.tmpdir, self.claude_dir, self.ultramax_home,
                           self.build_dirs, self.follow_symlinks, self.extra)  # fmt: skip

    @property
    def effective_project(self) -> str | None:
        """The project directory, or the working directory; never HOME or / (that is no project)."""
        project = self.project or self.cwd
        if project in (None, "/", self.home):
            return None
        return project


def expand_user(text: str, home: str) -> str:
    """``~``, ``~/x``, ``~user/x`` as the shell expands them (other users live next to HOME; root in /root)."""
    if not text.startswith("~"):
        return text
    head, sep, rest = text[1:].partition("/")
    if head == "":
        base = home
    elif head == "root":
        base = "/root"
    elif head == posixpath.basename(home):
        base = home
    elif head.replace("-", "").replace("_", "").replace(".", "").isalnum():
        base = posixpath.join(posixpath.dirname(home) or "/", head)
    else:
        return text
    return base + (sep + rest if sep else "")


def _norm(path: str) -> str:
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path


def resolve(raw: str, ctx: PathContext, cwd: str | None = None) -> str | None:
    """The absolute, normalised path ``raw`` names (see ``_resolve``); cached."""
    return _resolve(raw, ctx.home, cwd if cwd is not None else ctx.cwd)


@lru_cache(maxsize=8192)
def _resolve(raw: str, home: str, base: str | None) -> str | None:
    """The absolute, normalised path ``raw`` names, or None when it depends on run-time values or an unknown cwd.

    A run-time part (``DYN``) makes the result None unless it is a whole trailing component under a known
    prefix: then the result keeps ``DYN`` as that component, so ``~/$X`` is still "something in HOME".
    """
    if not raw:
        return None
    text = expand_user(raw, home)
    if DYN in text:
        prefix, _, tail = text.partition(DYN)
        if not prefix.endswith("/") or ".." in tail:
            return None
        prefix = prefix.rstrip("/") or "/"
        if not prefix.startswith("/"):
            if base is None:
                return None
            prefix = posixpath.join(base, prefix)
        prefix = _norm(prefix)
        return (prefix.rstrip("/") or "") + "/" + DYN
    if not text.startswith("/"):
        if base is None:
            return None
        text = posixpath.join(base, text)
    return _norm(text)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _ancestors(path: str) -> Iterable[str]:
    while True:
        yield path
        if path in ("/", ""):
            return
        path = posixpath.dirname(path)


def _covered(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``patterns`` or lies below one (patterns may be globs)."""
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if any(fnmatchcase(a, pattern) for a in _ancestors(path)):
                return True
        elif _under(path, pattern):
            return True
    return False


def _name_match(name: str, patterns: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(fnmatchcase(low, p.lower()) for p in patterns)


@dataclass(frozen=True, slots=True)
class _Compiled:
    data: PathData
    home: str
    home_caches: tuple[str, ...]
    secret_paths: tuple[str, ...]
    secret_dirs: tuple[str, ...]
    ssh_auth: tuple[str, ...]
    ssh_config: tuple[str, ...]
    shell_rc: tuple[str, ...]
    autostart: tuple[str, ...]
    sudoers: tuple[str, ...]


@lru_cache(maxsize=16)
def _compile(home: str) -> _Compiled:
    data = load_path_data()

    def exp(items: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(expand_user(i, home) for i in items)

    return _Compiled(data, home, exp(data.home_caches), exp(data.secret_paths), exp(data.secret_dirs),
                     exp(data.ssh_auth), exp(data.ssh_config), exp(data.shell_rc), exp(data.autostart),
                     exp(data.sudoers))  # fmt: skip


def classify(path: str | None, ctx: PathContext) -> frozenset[str]:
    """The classes of an absolute path from ``resolve`` (None means unknown: ``dynamic``)."""
    if path is None:
        return frozenset({"dynamic"})
    classes = _classify(path, ctx)
    if ctx.follow_symlinks and DYN not in path and path != "/":
        real = _realpath(path)
        if real != path:
            real_ctx = _real_ctx(ctx)
            classes = classes | _classify(real, real_ctx)
    return classes


@lru_cache(maxsize=8192)
def _realpath(path: str) -> str:
    try:
        if not os.path.lexists(path):
            return path
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


@lru_cache(maxsize=64)
def _real_ctx(ctx: PathContext) -> PathContext:
    def real(p: str | None) -> str | None:
        return _realpath(p) if p else p

    return PathContext(real(ctx.home) or ctx.home, real(ctx.cwd), real(ctx.project), ctx.tmpdir, real(ctx.claude_dir),
                       real(ctx.ultramax_home), ctx.build_dirs, False, ctx.extra)  # fmt: skip


@lru_cache(maxsize=16384)
def _classify(path: str, ctx: PathContext) -> frozenset[str]:
    comp = _compile(ctx.home)
    data = comp.data
    out: set[str] = set()
    dynamic_child = path.endswith("/" + DYN)
    if dynamic_child:
        out.add("dynamic")
        path = path[: -len(DYN) - 1] or "/"
        # "something inside P": the classes of a child of P
        return frozenset(out | _child_classes(path, ctx))
    if path == "/":
        return frozenset({"root"})
    if any(fnmatchcase(path, p) for p in data.null_devices):
        return frozenset({"null"})
    if path.startswith(("/dev/tcp/", "/dev/udp/")):
        return frozenset({"net_device"})
    if any(fnmatchcase(path, p) for p in data.devices):
        return frozenset({"device", "system"})
    out |= _location(path, ctx, comp)
    out |= _content(path, ctx, comp)
    return frozenset(out)


def _child_classes(parent: str, ctx: PathContext) -> frozenset[str]:
    """Classes of an unknown entry directly inside ``parent``."""
    probe = parent.rstrip("/") + "/\x01"
    classes = set(_classify(probe, ctx))
    classes.discard("regenerable")
    return frozenset(classes)


def _location(path: str, ctx: PathContext, comp: _Compiled) -> set[str]:
    data = comp.data
    home = ctx.home
    project = ctx.effective_project
    cwd = ctx.cwd
    if project and _under(path, project):
        if path == project:
            return {"project_root"}
        rel = path[len(project) + 1 :]
        out = {"project"}
        parts = rel.split("/")
        if ".git" not in parts and _regenerable(parts, ctx):
            out.add("regenerable")
        return out
    for anchor in (project, cwd):
        if anchor and anchor != path and _under(anchor, path):
            return {"parent", "home"} if path == home else {"parent"}
    if path == home:
        return {"home"}
    if _under(path, home):
        if _covered(path, comp.home_caches):
            return {"cache"}
        return {"user_data"}
    temps = (*data.temp_roots, ctx.tmpdir) if ctx.tmpdir else data.temp_roots
    for temp in temps:
        if path == temp:
            return {"temp_root"}
        if _under(path, temp):
            return {"temp"}
    if path in data.system_exact or _covered(path, data.system_roots):
        return {"system"}
    return {"outside"}


def _regenerable(parts: list[str], ctx: PathContext) -> bool:
    patterns = (*load_path_data().build_dirs, *ctx.build_dirs)
    joined = "/".join(parts)
    for pattern in patterns:
        if "/" in pattern:
            if joined == pattern or joined.startswith(pattern + "/") or ("/" + pattern + "/") in ("/" + joined + "/"):
                return True
        elif any(fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def _content(path: str, ctx: PathContext, comp: _Compiled) -> set[str]:
    data = comp.data
    out: set[str] = set()
    name = posixpath.basename(path)
    exception = _name_match(name, data.secret_exceptions)
    if not exception and (_name_match(name, data.secret_names) or _covered(path, comp.secret_paths)):
        out.add("secret")
    if _name_match(name, data.dotenv_templates):
        out.add("template")
    elif _name_match(name, data.dotenv_names):
        out |= {"secret", "dotenv"}
    if _covered(path, comp.secret_dirs):
        out.add("secret_dir")
        if path in comp.secret_dirs:
            out.add("secret_dir_root")
        ssh = expand_user("~/.ssh", ctx.home)
        if _under(path, ssh) and path != ssh and not exception:
            base = name.lower()
            if not (base.startswith(("known_hosts", "config", "authorized_keys")) or base in ("environment", "rc")):
                out.add("secret")
    elif any(_under(d, path) for d in comp.secret_dirs):
        out.add("contains_secrets")
    if _covered(path, comp.ssh_auth):
        out.add("ssh_auth")
    if _covered(path, comp.ssh_config):
        out.add("ssh_config")
    if _covered(path, comp.shell_rc):
        out.add("shell_rc")
    if _covered(path, comp.autostart):
        out.add("autostart")
        if _name_match(name, data.autostart_impersonating):
            out.add("autostart_impersonating")
    if _covered(path, comp.sudoers):
        out.add("sudoers")
    if _name_match(name, data.database_files):
        out.add("database_file")
    parts = path.split("/")
    if ".git" in parts:
        i = parts.index(".git")
        inner = parts[i + 1 :]
        if not inner or inner[0] in ("objects", "refs", "logs", "HEAD", "packed-refs", "index"):
            out.add("git_dir")
        elif inner[0] == "hooks":
            out.add("git_hooks")
        elif name.endswith(".lock"):
            out.add("git_lock")
        else:
            out.add("git_internal")
    out |= _guard(path, ctx)
    return out


_GUARD_PROGRAMS = frozenset({"ultramax", "ultramax-hook"})


def _guard(path: str, ctx: PathContext) -> set[str]:
    out: set[str] = set()
    claude_dirs = {d for d in (ctx.claude_dir, posixpath.join(ctx.home, ".claude")) if d}
    for claude in claude_dirs:
        if path == claude:
            out.add("guard")
        elif _under(path, claude):
            rel = path[len(claude) + 1 :]
            top = rel.split("/", 1)[0]
            if rel == "KILL_SWITCH":
                out.add("kill_switch")
            elif rel == "OVERRIDE":
                out.add("override")
            elif top in (
                "settings.json",
                "settings.local.json",
                "hooks",
                "ultramax",
                "plugins",
                "managed-settings.json",
            ):
                out.add("guard")
    if ctx.ultramax_home and _under(path, ctx.ultramax_home):
        out.add("guard")
    project = ctx.effective_project
    if project:
        local = posixpath.join(project, ".claude")
        if path == local:
            out.add("guard")
        elif _under(path, local):
            top = path[len(local) + 1 :].split("/", 1)[0]
            if top in ("settings.json", "settings.local.json", "hooks"):
                out.add("guard")
    if _under(path, "/etc/claude-code") or _under(path, "/Library/Application Support/ClaudeCode"):
        out.add("guard")
    # the guard's own programs, wherever installed (a bin/ directory; `which ultramax` resolves to one), and
    # its installed package: the hook runs them
    parent, name = posixpath.split(path)
    if name in _GUARD_PROGRAMS and posixpath.basename(parent) == "bin":
        out.add("guard")
    if re.search(r"/site-packages/ultramax(?:/|$)", path):
        out.add("guard")
    if path == posixpath.join(ctx.home, ".claude.json"):
        out.add("claude_state")
    return out
