"""Register ultramax's hook handlers in Claude Code's settings files, and take them out again.

Claude Code merges hooks from every settings file additively, so ultramax owns exactly one handler per event
and touches nothing else: a user's own hooks, matcher groups and keys keep their meaning and order. A handler
is recognised as ultramax's by what it runs (the ``ultramax/hook/client.py`` script, the ``ultramax-hook``
console script or the ``ultramax.hook.client`` module), so a handler left by an older install -- another
venv, another interpreter, another timeout -- is rewritten in place instead of being added a second time.

Every write is preceded by a private, timestamped backup of the old file and is atomic; a file that is not
valid JSON is refused and left alone. The change is made in the file's text (``ultramax.jsontext``): ultramax's
entries are inserted or rewritten in the layout around them, and every other byte -- indentation, key order,
number spelling, line endings, BOM -- stays as the user left it. Only a change that cannot be made that way
(keys reordered or repeated) rewrites the file with the same content in ultramax's layout, and says so.
The same handler table generates the plugin's ``hooks/hooks.json``.

Uninstall gives a file back exactly as it was before install (from that backup) when nothing changed it since
install wrote it (``ultramax.install_record``); otherwise it cuts only ultramax's entries out of the text,
keeping every other byte -- indentation, key order, number spelling, line endings, BOM -- as the user left it.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ultramax.config import load_settings, parse_settings_bytes
from ultramax.errors import ConfigError, InstallError
from ultramax.fsutil import atomic_write_bytes, private_dir
from ultramax.install_record import forget_install, remember_install, restorable
from ultramax.jsontext import JsonPath, edit_text, remove_entries
from ultramax.paths import Paths, project_settings_files

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "HOOK_EVENTS",
    "TOOL_EVENTS",
    "HookRef",
    "InstallResult",
    "Scope",
    "SettingsEdit",
    "desired_handler",
    "edit_settings",
    "find_ultramax_hooks",
    "hook_command",
    "hook_timeout_seconds",
    "install",
    "is_ultramax_handler",
    "plugin_dir",
    "plugin_hooks_json",
    "plugin_manifest",
    "settings_path",
    "uninstall",
]

Scope = Literal["user", "project", "local"]

HOOK_EVENTS: tuple[str, ...] = (
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "Notification",
    "StopFailure",
)
# Events whose matcher runs against tool_name: "*" makes "every tool" explicit. The others are registered
# without a matcher, which Claude Code reads as "match all".
TOOL_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse", "PostToolUseFailure"})

DEFAULT_TIMEOUT_MS = 5000  # the client's own default (ultramax.hook.client.DEFAULT_TIMEOUT_MS)
# After waiting timeout_ms for the daemon the client runs the pipeline in-process; this is the headroom
# Claude Code must allow for that before it kills the hook (a killed PreToolUse hook fails open).
FALLBACK_MARGIN_S = 10
# SessionEnd hooks share a 1.5 s budget that only settings-file timeouts raise (up to 60 s): keep ours short
# so quitting Claude Code never hangs on ultramax, and make the client give up on the daemon early.
SESSION_END_TIMEOUT_S = 5
SESSION_END_CLIENT_TIMEOUT_MS = 1000

CLIENT_SUFFIX = "ultramax/hook/client.py"
CONSOLE_SCRIPT = "ultramax-hook"
CLIENT_MODULE = "ultramax.hook.client"


# --- the handler ultramax wants -------------------------------------------------------------------------


def client_path() -> Path:
    """The hook client script inside the installed ultramax package."""
    import ultramax.hook.client

    return Path(ultramax.hook.client.__file__).resolve()


def hook_command(event: str, *, python: Path = Path(sys.executable), timeout_ms: int) -> str:
    """The shell command Claude Code runs for ``event``.

    Both paths are absolute: a bare ``python3`` goes through whatever shim is first on PATH (a pyenv shim
    costs ~145 ms per hook) and Claude Code's non-interactive ``/bin/sh`` may not have the user's PATH at
    all. ``-I -S`` skips site-packages and the environment, so the stdlib-only client starts at bare
    interpreter cost; its fallback imports site itself when it needs ultramax.
    """
    if not str(python):
        raise InstallError("cannot tell which Python runs ultramax (sys.executable is empty); pass python=...")
    # absolute() but not resolve(): a venv's bin/python is a symlink, and resolving it would name the base
    # interpreter, which does not see the venv's packages.
    interpreter = python if python.is_absolute() else python.absolute()
    return (
        f"{shlex.quote(str(interpreter))} -I -S {shlex.quote(str(client_path()))} "
        f"{shlex.quote(event)} --timeout-ms={int(timeout_ms)}"
    )


def client_timeout_ms(event: str, timeout_ms: int) -> int:
    """How long the client waits for the daemon on ``event`` (shorter for SessionEnd)."""
    return min(timeout_ms, SESSION_END_CLIENT_TIMEOUT_MS) if event == "SessionEnd" else timeout_ms


def hook_timeout_seconds(event: str, timeout_ms: int) -> int:
    """The handler's ``timeout`` field. Claude Code reads it in SECONDS (a value in ms hangs sessions)."""
    seconds = math.ceil(client_timeout_ms(event, timeout_ms) / 1000) + FALLBACK_MARGIN_S
    return min(seconds, SESSION_END_TIMEOUT_S) if event == "SessionEnd" else seconds


def desired_handler(event: str, *, python: Path, timeout_ms: int) -> dict[str, Any]:
    """The settings-file handler ultramax registers for ``event``."""
    return {
        "type": "command",
        "command": hook_command(event, python=python, timeout_ms=client_timeout_ms(event, timeout_ms)),
        "timeout": hook_timeout_seconds(event, timeout_ms),
    }


def _desired_group(event: str, handler: dict[str, Any]) -> dict[str, Any]:
    return {"matcher": "*", "hooks": [handler]} if event in TOOL_EVENTS else {"hooks": [handler]}


def plugin_hooks_json() -> dict[str, Any]:
    """Content of the plugin's ``hooks/hooks.json``, generated from HOOK_EVENTS.

    A plugin cannot know which venv ultramax lives in, so its handlers call the ``ultramax-hook`` console
    script from PATH (shell form, which every Claude Code version understands). Without ``--timeout-ms``
    the client honours ULTRAMAX_HOOK_TIMEOUT_MS, else its 5 s default.
    """
    hooks: dict[str, Any] = {}
    for event in HOOK_EVENTS:
        command = f"{CONSOLE_SCRIPT} {event}"
        if event == "SessionEnd":
            command += f" --timeout-ms={SESSION_END_CLIENT_TIMEOUT_MS}"
        handler = {"type": "command", "command": command, "timeout": hook_timeout_seconds(event, DEFAULT_TIMEOUT_MS)}
        hooks[event] = [_desired_group(event, handler)]
    return {
        "description": "ultramax: forwards every hook event to the ultramax daemon (needs `ultramax-hook` on PATH)",
        "hooks": hooks,
    }


def plugin_manifest() -> dict[str, Any]:
    """Content of the plugin's ``.claude-plugin/plugin.json``.

    No ``"hooks"`` key: Claude Code loads ``hooks/hooks.json`` by itself, and naming it again in the
    manifest makes every hook run twice (anthropics/claude-code#10871).
    """
    from ultramax import __version__

    return {
        "name": "ultramax",
        "version": __version__,
        "description": (
            "Memory, guardrails and cost control for Claude Code: forwards every hook event to the ultramax "
            "daemon. Needs `pip install ultramax` to have put the `ultramax-hook` command on the PATH Claude "
            "Code runs hooks with (check with `ultramax doctor`). Do not also run `ultramax install`, or "
            "every hook runs twice."
        ),
        "author": {"name": "ultramax contributors"},
        "license": "Apache-2.0",
        "keywords": ["hooks", "memory", "safety", "guardrails", "cost"],
    }


def plugin_dir() -> Path:
    """The Claude Code plugin shipped inside the package (``claude --plugin-dir`` or a marketplace source)."""
    return Path(__file__).resolve().parent / "plugin"


# --- recognising ultramax's handlers -----------------------------------------------------------------------


def _argv(handler: dict[str, Any]) -> list[str]:
    command = handler.get("command")
    if not isinstance(command, str):
        return []
    try:
        argv = shlex.split(command)
    except ValueError:  # unbalanced quotes: still look at the words
        argv = command.split()
    args = handler.get("args")
    if isinstance(args, list):
        argv += [a for a in args if isinstance(a, str)]
    return argv


def is_ultramax_handler(handler: Any) -> bool:
    """Whether a hook handler runs ultramax's hook client, whichever install wrote it."""
    if not isinstance(handler, dict) or handler.get("type", "command") != "command":
        return False
    for word in _argv(handler):
        # whole words, not substrings: a user's own "my-ultramax-hooks.sh" is not ours
        if word.endswith(CLIENT_SUFFIX) or word == CLIENT_MODULE or word.rsplit("/", 1)[-1] == CONSOLE_SCRIPT:
            return True
    return False


@dataclass(frozen=True, slots=True)
class HookRef:
    """One ultramax handler found in a settings (or hooks.json) document."""

    event: str
    matcher: str | None
    group_index: int
    handler_index: int
    handler: dict[str, Any]

    @property
    def command(self) -> str:
        value = self.handler.get("command")
        return value if isinstance(value, str) else ""

    @property
    def argv(self) -> list[str]:
        return _argv(self.handler)

    @property
    def timeout(self) -> Any:
        return self.handler.get("timeout")


def _iter_handlers(hooks: Any) -> Iterator[HookRef]:
    """Every handler in a ``hooks`` object, tolerating shapes Claude Code would reject."""
    if not isinstance(hooks, dict):
        return
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            continue
        for gi, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                continue
            matcher = group.get("matcher")
            for hi, handler in enumerate(group["hooks"]):
                if isinstance(handler, dict):
                    yield HookRef(str(event), matcher if isinstance(matcher, str) else None, gi, hi, handler)


def find_ultramax_hooks(settings: dict[str, Any]) -> list[HookRef]:
    """ultramax's handlers in a settings document (or a plugin's hooks.json), in file order."""
    return [ref for ref in _iter_handlers(settings.get("hooks")) if is_ultramax_handler(ref.handler)]


# --- installing ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What install/uninstall did (or, with dry_run, would do) to one settings file."""

    path: Path
    scope: Scope
    changed: bool
    added: int = 0
    replaced: int = 0
    removed: int = 0
    backup: Path | None = None
    diff: str = ""
    dry_run: bool = False
    actions: tuple[str, ...] = field(default_factory=tuple)
    restored: bool = False  # uninstall gave the file back exactly as it was before install
    note: str = ""  # how the file was changed (uninstall: how it undid install, and why that way)
    layout_kept: bool = True  # every byte outside ultramax's entries as it was; False: re-rendered (see note)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["backup"] = str(self.backup) if self.backup else None
        data["actions"] = list(self.actions)
        return data


def settings_path(paths: Paths, scope: Scope, project_dir: Path) -> Path:
    """The settings file a scope writes."""
    if scope == "user":
        return paths.user_settings
    if scope not in ("project", "local"):
        raise InstallError(f"unknown scope {scope!r}: use user, project or local")
    shared, local = project_settings_files(project_dir)
    target = shared if scope == "project" else local
    if _same_file(target, paths.user_settings):
        raise InstallError(
            f"{target} is your user settings file (the project directory is {project_dir}); "
            "use --user, or run from inside a project (or pass --project-dir)"
        )
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


@dataclass(slots=True)
class _Loaded:
    path: Path  # the real file (a symlinked settings.json is written through, not replaced)
    raw: bytes | None
    text: str
    data: dict[str, Any]
    indent: int | str


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    """Parse the bytes we read once (and later compare against), with the settings reader's messages."""
    try:
        return parse_settings_bytes(path, raw)
    except ConfigError as exc:
        raise InstallError(str(exc)) from exc


def _load(path: Path) -> _Loaded:
    target = path.resolve() if path.is_symlink() else path
    try:
        raw: bytes | None = target.read_bytes()
    except FileNotFoundError:
        raw = None
    except OSError as exc:
        raise InstallError(f"{path}: cannot read ({exc}); check its permissions") from exc
    data = {} if raw is None else _parse(path, raw)
    hooks = data.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        raise InstallError(
            f'{path}: "hooks" must be an object mapping event names to lists, got {type(hooks).__name__}; '
            "fix it by hand first"
        )
    for event, groups in (hooks or {}).items():
        if not isinstance(groups, list):
            raise InstallError(f'{path}: "hooks.{event}" must be a list of matcher groups; fix it by hand first')
    text = raw.decode("utf-8-sig") if raw is not None else ""
    return _Loaded(target, raw, text, data, _detect_indent(text))


def _detect_indent(text: str) -> int | str:
    """Keep the file's indentation so the diff shows only what changed."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 2


@dataclass(frozen=True, slots=True)
class SettingsEdit:
    """What ``edit_settings`` did to a settings file."""

    path: Path  # the file written (a symlinked settings.json is written through)
    backup: Path | None  # what was there before (None when nothing was, or nothing changed)
    layout_kept: bool  # every byte outside the change kept; False: re-rendered with the same content
    note: str  # how the file was changed, and why that way


def edit_settings(
    paths: Paths, scope: Scope, project_dir: Path, change: Callable[[dict[str, Any]], None]
) -> SettingsEdit:
    """Apply ``change`` to a scope's settings file as install does: through a symlink, in the file's text so
    every byte outside the change stays as it was (else re-rendered in its indent, line endings and BOM, and
    said so in ``note``), refusing a file that does not parse or is read-only, with a backup of what was there."""
    path = settings_path(paths, scope, project_dir)
    loaded = _load(path)
    data = copy.deepcopy(loaded.data)
    change(data)
    if data == loaded.data and loaded.raw is not None:
        return SettingsEdit(loaded.path, None, True, "nothing to change")
    new = _new_text(loaded, data)
    backup = _write(paths, scope, path, loaded, _as_written(loaded, new.text))
    return SettingsEdit(loaded.path, backup, new.layout_kept, new.note)


def _render(data: dict[str, Any], indent: int | str) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class _NewText:
    text: str
    layout_kept: bool
    note: str


def _new_text(loaded: _Loaded, data: dict[str, Any]) -> _NewText:
    """The file's text (without its BOM) holding ``data``: edited in place where it can be, else rendered in the
    file's indentation and line endings; the note says which."""
    if loaded.raw is not None and loaded.text.strip():
        unit = loaded.indent if isinstance(loaded.indent, str) else " " * loaded.indent
        edited = edit_text(loaded.text, loaded.data, data, indent=unit)
        if edited is not None:
            return _NewText(edited, True, "ultramax's entries written into the file as it was; every other byte kept")
        note = (
            "the file rewritten with the same content in ultramax's layout, keeping its indentation and line "
            "endings: the change could not be made in its text as written (a key written twice, or keys moved)"
        )
        layout_kept = False
    else:  # no file, or an empty one: no layout to keep
        note, layout_kept = "a new file in ultramax's layout", True
    return _NewText(_rendered(loaded, data), layout_kept, note)


def _rendered(loaded: _Loaded, data: dict[str, Any]) -> str:
    """``data`` in ultramax's layout with the file's indentation and line endings (CRLF if it had them)."""
    text = _render(data, loaded.indent)
    return text.replace("\n", "\r\n") if loaded.raw is not None and b"\r\n" in loaded.raw else text


def _matches_all(group: dict[str, Any]) -> bool:
    """Whether a group's matcher means "everything" (the only matcher ultramax registers)."""
    return group.get("matcher") in (None, "", "*")


def _merge(data: dict[str, Any], wanted: dict[str, dict[str, Any]]) -> tuple[int, int, int, list[str]]:
    """Make ``data["hooks"]`` hold exactly ``wanted`` as ultramax's handlers. Mutates ``data``."""
    added = replaced = removed = 0
    actions: list[str] = []
    hooks = data.get("hooks")
    if hooks is None:
        hooks = {}
    originally_present = set(hooks)
    for event in list(hooks):
        groups: list[Any] = hooks[event]
        refs = [r for r in _iter_handlers({event: groups}) if is_ultramax_handler(r.handler)]
        target = wanted.get(event)
        if target is None:
            # an event an older ultramax registered and this one does not
            if refs:
                removed += len(refs)
                actions.append(f"{event}: remove {len(refs)} stale ultramax handler(s)")
                _drop(hooks, event, refs)
            continue
        if len(refs) == 1 and refs[0].handler == target and _matches_all(groups[refs[0].group_index]):
            continue  # already exactly right
        if not refs:
            groups.append(_desired_group(event, target))
            added += 1
            actions.append(f"{event}: add")
            continue
        first, extra = refs[0], refs[1:]
        if _matches_all(groups[first.group_index]):
            # rewrite in place so the handler keeps its position relative to the user's hooks
            rewritten = first.handler != target
            groups[first.group_index]["hooks"][first.handler_index] = target
            _drop(hooks, event, extra)
        else:
            rewritten = True
            _drop(hooks, event, refs, prune_event=False)
            groups.append(_desired_group(event, target))
        replaced += int(rewritten)
        removed += len(extra)
        what = [f"replace {_short(first.command)}"] if rewritten else []
        what += [f"remove {len(extra)} duplicate(s)"] if extra else []
        actions.append(f"{event}: " + ", ".join(what))
    for event, target in wanted.items():
        if event not in originally_present:
            hooks[event] = [_desired_group(event, target)]
            added += 1
            actions.append(f"{event}: add")
    if hooks:
        data["hooks"] = hooks
    return added, replaced, removed, actions


def _short(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."


def _drop(hooks: dict[str, Any], event: str, refs: list[HookRef], *, prune_event: bool = True) -> None:
    """Remove these handlers; then a group, an event list or ``hooks`` that this emptied (never one that was
    already empty: that one is the user's)."""
    groups: list[Any] = hooks[event]
    by_group: dict[int, list[int]] = {}
    for ref in refs:
        by_group.setdefault(ref.group_index, []).append(ref.handler_index)
    for gi in sorted(by_group, reverse=True):
        handlers: list[Any] = groups[gi]["hooks"]
        for hi in sorted(by_group[gi], reverse=True):
            del handlers[hi]
        if not handlers:
            del groups[gi]
    if prune_event and not groups and refs:
        del hooks[event]


def _backup(paths: Paths, scope: Scope, loaded: _Loaded) -> Path:
    assert loaded.raw is not None
    paths.ensure_home()
    private_dir(paths.backups_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    base = f"{scope}-{loaded.path.name}.{stamp}"
    for n in range(100):
        candidate = paths.backups_dir / (base if n == 0 else f"{base}.{n}")
        try:
            # 0600: settings files can hold tokens (env, apiKeyHelper), and O_EXCL never overwrites a backup
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(loaded.raw)
            fh.flush()
            os.fsync(fh.fileno())
        return candidate
    raise InstallError(f"cannot create a backup of {loaded.path} in {paths.backups_dir}; clean that directory")


def _as_written(loaded: _Loaded, text: str) -> bytes:
    """``text`` (the file's text without its BOM) as the file holds it: with its BOM if it had one."""
    if loaded.raw is not None and loaded.raw.startswith(b"\xef\xbb\xbf"):
        text = "\ufeff" + text  # as the file was: a BOM, which Claude Code accepts
    return text.encode("utf-8")


def _write(paths: Paths, scope: Scope, shown: Path, loaded: _Loaded, data: bytes | None) -> Path | None:
    """Replace the file with ``data`` (None: remove it), after a backup; returns the backup."""
    # Claude Code (or the user) may have saved the file since we read it: never overwrite that edit.
    try:
        now = loaded.path.read_bytes()
    except FileNotFoundError:
        now = None
    except OSError as exc:
        raise InstallError(f"{shown}: cannot read ({exc})") from exc
    if now != loaded.raw:
        raise InstallError(f"{shown} changed while ultramax was updating it; run the command again")
    if loaded.raw is not None and not loaded.path.stat().st_mode & 0o200:
        raise InstallError(f"{shown} is read-only; make it writable (chmod u+w) if ultramax may change it")
    backup = _backup(paths, scope, loaded) if loaded.raw is not None else None
    try:
        if data is None:
            loaded.path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(loaded.path, data)  # keeps the file's mode; a new file gets 0644
    except OSError as exc:
        raise InstallError(f"cannot write {shown} ({exc}); check the permissions of {loaded.path.parent}") from exc
    return backup


def _diff(shown: Path, old: str, new: str) -> str:
    """The change as a unified diff, to be printed: its context lines are the user's own settings, whose
    ``env`` often holds API keys and database URLs, so every line is redacted."""
    from ultramax.redact import redact

    return "".join(
        redact(line)
        for line in difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{shown} (before)",
            tofile=f"{shown} (after)",
        )
    )


def _default_timeout_ms(paths: Paths, scope: Scope, project_dir: Path) -> int:
    value = load_settings(paths, None if scope == "user" else project_dir).get("ultramax.hookTimeoutMs")
    return int(value)


def _apply(
    paths: Paths, scope: Scope, project_dir: Path, dry_run: bool, wanted: dict[str, dict[str, Any]]
) -> InstallResult:
    shown = settings_path(paths, scope, project_dir)
    loaded = _load(shown)
    data = copy.deepcopy(loaded.data)
    added, replaced, removed, actions = _merge(data, wanted)
    changed = data != loaded.data
    if not changed:
        return InstallResult(shown, scope, False, dry_run=dry_run)
    new = _new_text(loaded, data)
    diff = _diff(shown, loaded.text, new.text)
    backup = None
    if not dry_run:
        written = _as_written(loaded, new.text)
        backup = _write(paths, scope, shown, loaded, written)
        held = bool(find_ultramax_hooks(loaded.data))
        remember_install(paths, loaded.path, before=loaded.raw, backup=backup, held_ultramax=held, written=written)
    return InstallResult(
        shown,
        scope,
        True,
        added,
        replaced,
        removed,
        backup,
        diff,
        dry_run,
        tuple(actions),
        note=new.note,
        layout_kept=new.layout_kept,
    )


def install(
    paths: Paths,
    *,
    scope: Scope,
    project_dir: Path,
    dry_run: bool = False,
    timeout_ms: int | None = None,
    python: Path | None = None,
) -> InstallResult:
    """Merge ultramax's handlers into the scope's settings file; running it again changes nothing.

    ``timeout_ms`` defaults to the effective ``ultramax.hookTimeoutMs``; ``python`` to this interpreter.
    """
    if timeout_ms is None:
        timeout_ms = _default_timeout_ms(paths, scope, project_dir)
    if timeout_ms < 50:
        raise InstallError(f"timeout_ms must be at least 50 (got {timeout_ms}); it is in milliseconds")
    interpreter = python or Path(sys.executable)
    wanted = {e: desired_handler(e, python=interpreter, timeout_ms=timeout_ms) for e in HOOK_EVENTS}
    return _apply(paths, scope, project_dir, dry_run, wanted)


def _remove_all(data: dict[str, Any]) -> tuple[int, int, int, list[str]]:
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return 0, 0, 0, []
    had_any = bool(hooks)
    removed = 0
    actions: list[str] = []
    for event in list(hooks):
        refs = [r for r in _iter_handlers({event: hooks[event]}) if is_ultramax_handler(r.handler)]
        if refs:
            removed += len(refs)
            actions.append(f"{event}: remove")
            _drop(hooks, event, refs)
    if had_any and not hooks and removed:
        del data["hooks"]  # ultramax emptied it; an already empty "hooks" stays
    return 0, 0, removed, actions


def _removal_paths(data: dict[str, Any]) -> list[JsonPath]:
    """Where ``_remove_all`` takes something out of ``data``: handlers, or the group, event or ``hooks`` object
    that removing them empties (never one that was empty already: that one is the user's)."""
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return []
    out: list[JsonPath] = []
    emptied = 0
    for event, groups in hooks.items():
        refs = [r for r in _iter_handlers({event: groups}) if is_ultramax_handler(r.handler)]
        if not refs:
            continue
        by_group: dict[int, list[int]] = {}
        for ref in refs:
            by_group.setdefault(ref.group_index, []).append(ref.handler_index)
        gone = [gi for gi, his in by_group.items() if len(his) == len(groups[gi]["hooks"])]
        if len(gone) == len(groups):
            out.append(("hooks", event))
            emptied += 1
            continue
        out += [("hooks", event, gi) for gi in gone]
        out += [("hooks", event, gi, "hooks", hi) for gi, his in by_group.items() if gi not in gone for hi in his]
    if hooks and emptied == len(hooks):
        return [("hooks",)]
    return out


def uninstall(paths: Paths, *, scope: Scope, project_dir: Path, dry_run: bool = False) -> InstallResult:
    """Undo ``install`` in the scope's settings file: give the file back byte for byte as it was before install
    if nothing changed it since; otherwise remove ultramax's handlers (and only them), keeping the file's
    layout. ``note`` in the result says which, and why."""
    shown = settings_path(paths, scope, project_dir)
    loaded = _load(shown)
    removed = len(find_ultramax_hooks(loaded.data))
    restore, why = restorable(paths, loaded.path, loaded.raw)
    if restore is not None:
        new_text = restore.data.decode("utf-8-sig") if restore.data is not None else ""
        if restore.data is None:
            note = "no file, as before `ultramax install`: nothing changed it since"
        else:
            note = f"the file as it was before `ultramax install`, byte for byte (its backup {restore.backup}): "
            note += "nothing changed it since"
        backup = None
        if not dry_run:
            backup = _write(paths, scope, shown, loaded, restore.data)
            forget_install(paths, loaded.path)
        diff = _diff(shown, loaded.text, new_text)
        return InstallResult(shown, scope, True, 0, 0, removed, backup, diff, dry_run, ("restore",), True, note)
    data = copy.deepcopy(loaded.data)
    _added, _replaced, removed, actions = _remove_all(data)
    if data == loaded.data:
        if not dry_run:
            forget_install(paths, loaded.path)  # a record of hooks that are no longer there
        return InstallResult(shown, scope, False, dry_run=dry_run)
    edited = remove_entries(loaded.text, _removal_paths(loaded.data), data)
    if edited is not None:
        note = f"ultramax's entries taken out, everything else kept as it is ({why})"
    else:  # a layout the text editor does not foresee: the same content, in ultramax's layout
        note = f"ultramax's entries taken out, the rest rewritten with the same content ({why})"
    new_text = edited if edited is not None else _rendered(loaded, data)
    backup = None
    if not dry_run:
        backup = _write(paths, scope, shown, loaded, _as_written(loaded, new_text))
        forget_install(paths, loaded.path)
    diff = _diff(shown, loaded.text, new_text)
    kept = edited is not None
    return InstallResult(shown, scope, True, 0, 0, removed, backup, diff, dry_run, tuple(actions), False, note, kept)
