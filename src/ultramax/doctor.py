"""``ultramax doctor``: find the set-up problems that make ultramax silently do nothing (or do it twice).

Claude Code treats a hook that cannot start (exit 127) as a non-blocking error, so a moved venv, a command
missing from a GUI-launched Claude Code's PATH or ``disableAllHooks`` switch the safety gate off without a
word. A hook registered in two places runs twice (Claude Code dedupes identical commands across settings
files only, never against a plugin). Each check says what is wrong and the command that fixes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ultramax import __version__
from ultramax.config import load_settings
from ultramax.daemon.control import daemon_status, socket_path_problem
from ultramax.daemon.handover import other_install, restart_command, this_package
from ultramax.errors import UltramaxError, json_problem
from ultramax.fsutil import disk_is_full
from ultramax.install import (
    CLIENT_SUFFIX,
    HOOK_EVENTS,
    HookRef,
    client_timeout_ms,
    find_ultramax_hooks,
    plugin_dir,
    plugin_hooks_json,
)
from ultramax.modes import detect_mode
from ultramax.paths import Paths, project_settings_files
from ultramax.prewarm import announced_proxy, proxy_file
from ultramax.safety.killswitch import KillSwitch
from ultramax.skills.graph import SkillGraphError, load_graph, user_graph_path

__all__ = [
    "EVENT_SINCE",
    "MANAGED_SETTINGS",
    "MINIMAL_PATH",
    "Check",
    "Source",
    "check_disabled",
    "check_duplicates",
    "check_skills",
    "collect_sources",
    "run_doctor",
    "worst",
]

Status = Literal["ok", "warn", "fail"]

# What a non-interactive /bin/sh started from a GUI or an IDE typically has (rc files are not sourced).
MINIMAL_PATH = "/usr/bin:/bin"
# Managed (enterprise) settings: they can switch every other hook off.
MANAGED_SETTINGS = (
    Path("/etc/claude-code/managed-settings.json"),
    Path("/Library/Application Support/ClaudeCode/managed-settings.json"),
)
# Claude Code version that introduced each event ultramax registers (CHANGELOG); older ones never fire it.
EVENT_SINCE: dict[str, tuple[int, int, int]] = {
    "PreCompact": (1, 0, 48),
    "UserPromptSubmit": (1, 0, 54),
    "SessionStart": (1, 0, 62),
    "SessionEnd": (1, 0, 85),
    "SubagentStart": (2, 0, 43),
    "PermissionRequest": (2, 0, 45),
    "PostCompact": (2, 1, 76),
    "StopFailure": (2, 1, 78),
}
_VERSION_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``fix`` is the command or edit that resolves a warn/fail."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Source:
    """A place Claude Code reads hooks from: a settings file or an enabled ultramax plugin."""

    kind: Literal["settings", "plugin"]
    label: str  # "user", "project", "local" or the plugin key
    path: Path
    data: dict[str, Any] | None = None
    error: str | None = None
    refs: list[HookRef] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.label} settings ({self.path})" if self.kind == "settings" else f"plugin {self.label}"


# --- reading the sources -------------------------------------------------------------------------------


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None), (None, None) if absent, or (None, why) if unusable -- never raises."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read ({exc})"
    if not text.strip():
        return {}, None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({json_problem(exc)})"
    if not isinstance(data, dict):
        return None, f"must be a JSON object, got {type(data).__name__}"
    hooks = data.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        return data, f'"hooks" must be an object, got {type(hooks).__name__}'
    return data, None


def _settings_sources(paths: Paths, project_dir: Path) -> list[Source]:
    shared, local = project_settings_files(project_dir)
    sources = [Source("settings", "user", paths.user_settings)]
    for label, path in (("project", shared), ("local", local)):
        with contextlib.suppress(OSError):
            if path.resolve() == paths.user_settings.resolve():
                continue  # the project is $HOME: its .claude/settings.json is the user file
        sources.append(Source("settings", label, path))
    for src in sources:
        src.data, src.error = _read_json(src.path)
        if src.data is not None and src.error is None:
            src.refs = find_ultramax_hooks(src.data)
    return sources


def _enabled_ultramax_plugins(settings: list[Source]) -> list[str]:
    """Plugin keys ``ultramax@<marketplace>`` enabled after precedence (user < project < local)."""
    enabled: dict[str, bool] = {}
    for src in settings:
        plugins = (src.data or {}).get("enabledPlugins")
        if isinstance(plugins, dict):
            for key, value in plugins.items():
                if isinstance(key, str) and key.split("@", 1)[0] == "ultramax":
                    enabled[key] = bool(value)
    return [key for key, on in enabled.items() if on]


def _installed_plugin_hooks(paths: Paths, key: str) -> tuple[Path, dict[str, Any]] | None:
    """The hooks.json of an installed plugin copy: installed_plugins.json first, then the cache layout."""
    plugins_dir = paths.claude_dir / "plugins"
    data, _ = _read_json(plugins_dir / "installed_plugins.json")
    registry = (data or {}).get("plugins")  # v1: {key: entry}; v2: {key: [entry per scope]}
    entries = registry.get(key) if isinstance(registry, dict) else None
    candidates: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict) and isinstance(entry.get("installPath"), str):
            candidates.append(Path(entry["installPath"]) / "hooks" / "hooks.json")
    marketplace = key.split("@", 1)[1] if "@" in key else "*"
    cached = (plugins_dir / "cache").glob(f"{marketplace}/ultramax/*/hooks/hooks.json")
    candidates += sorted(cached, key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        hooks, error = _read_json(path)
        if hooks is not None and error is None:
            return path, hooks
    return None


def collect_sources(paths: Paths, project_dir: Path) -> list[Source]:
    """Settings files (user, project, local) and every enabled ultramax plugin."""
    sources = _settings_sources(paths, project_dir)
    for key in _enabled_ultramax_plugins(sources):
        found = _installed_plugin_hooks(paths, key)
        if found is None:  # enabled but not (yet) in the cache: assume what this version ships
            path, data = plugin_dir() / "hooks" / "hooks.json", plugin_hooks_json()
        else:
            path, data = found
        sources.append(Source("plugin", key, path, data, None, find_ultramax_hooks(data)))
    return sources


# --- checks --------------------------------------------------------------------------------------------


def _parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def check_claude(claude_bin: str | None, env: Mapping[str, str], paths: Paths | None = None) -> Check:
    name = claude_bin or env.get("ULTRAMAX_CLAUDE_BIN") or "claude"
    exe = name if "/" in name else shutil.which(name, path=env.get("PATH"))
    if not exe or not os.access(exe, os.X_OK):
        # the native installer and the old "local" install put it outside the default PATH
        homes = [Path(env["HOME"]) / ".local" / "bin" / "claude"] if env.get("HOME") else []
        homes += [paths.claude_dir / "local" / "claude"] if paths is not None else []
        elsewhere = next((p for p in homes if _executable(p)), None)
        if elsewhere is not None and name == "claude":
            return Check(
                "claude",
                "warn",
                f"Claude Code is installed at {elsewhere} but that directory is not on PATH",
                f'add it to PATH (export PATH="{elsewhere.parent}:$PATH"), or set ULTRAMAX_CLAUDE_BIN={elsewhere}',
            )
        return Check(
            "claude",
            "fail",
            f"Claude Code not found ({name!r} is not an executable on PATH)",
            "install Claude Code (https://code.claude.com/docs/en/setup), or set ULTRAMAX_CLAUDE_BIN=/path/to/claude",
        )
    try:
        proc = subprocess.run(
            [exe, "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check("claude", "warn", f"`{exe} --version` did not answer in {_VERSION_TIMEOUT_S:g} s", "")
    except OSError as exc:
        return Check("claude", "fail", f"cannot run {exe} ({exc})", "reinstall Claude Code or fix ULTRAMAX_CLAUDE_BIN")
    output = (proc.stdout or proc.stderr).strip().splitlines()
    first = output[0] if output else ""
    if proc.returncode != 0:
        return Check("claude", "warn", f"`{exe} --version` exited {proc.returncode}: {first}", "")
    version = _parse_version(first)
    if version is not None:
        unknown = [e for e in HOOK_EVENTS if version < EVENT_SINCE.get(e, (0, 0, 0))]
        if unknown:
            return Check(
                "claude",
                "warn",
                f"Claude Code {first} ({exe}) predates hook events ultramax uses: {', '.join(unknown)}",
                "update Claude Code: `claude update`",
            )
    return Check("claude", "ok", f"Claude Code {first or '(version unknown)'} ({exe})")


def _check_values(paths: Paths, project_dir: Path) -> list[Check]:
    """Values ultramax cannot use (a file that does not parse is ``_check_files``'s): each falls back to its
    default, which may not be what the user meant -- a mistyped safety level runs the standard gate. Values
    the router cannot use (a tier or model the catalog lacks, a missing catalog file) stop `ultramax proxy`
    and `ultramax route`, so building the catalog and the router is part of the check."""
    from ultramax.routing.router import routing_problems

    settings = load_settings(paths, project_dir)
    problems = [p for p in settings.problems if p.key] + routing_problems(settings)
    checks = [
        Check("settings", "fail", str(p), "`ultramax config validate` lists every bad value; fix it in that file")
        for p in problems
    ]
    provider = settings.get("memory.provider")
    if provider != "embedded":  # a valid choice of the seed's whose backend is not built yet: memory is off
        checks.append(
            Check(
                "settings",
                "warn",
                f"memory.provider is {provider!r} (set in {settings.sources['memory.provider']}), a backend this "
                "version does not have yet: nothing is remembered or recalled",
                'set it to "embedded" in that file, or remove it',
            )
        )
    return checks


def _check_files(sources: list[Source]) -> list[Check]:
    checks: list[Check] = []
    fine: list[str] = []
    for src in sources:
        if src.kind != "settings":
            continue
        if src.error:
            checks.append(
                Check(
                    "settings",
                    "fail",
                    f"{src.path}: {src.error}; Claude Code ignores its hooks",
                    f"fix {src.path} by hand (ultramax never rewrites a file it cannot parse)",
                )
            )
        elif src.data is not None:
            fine.append(str(src.path))
    if fine:
        checks.append(Check("settings", "ok", "valid JSON: " + ", ".join(fine)))  # its values are checked apart
    elif not checks:
        checks.append(Check("settings", "ok", "no settings files yet"))
    return checks


def check_disabled(sources: list[Source], managed: tuple[Path, ...] = MANAGED_SETTINGS) -> list[Check]:
    checks: list[Check] = []
    managed_data = [(p, d) for p in managed for d in [_read_json(p)[0]] if d]
    for path, data in managed_data:
        if data.get("allowManagedHooksOnly") is True:
            checks.append(
                Check(
                    "disableAllHooks",
                    "fail",
                    f"{path} sets allowManagedHooksOnly: only your organisation's hooks run, ultramax's never",
                    "ask your administrator to allow user hooks, or to deploy ultramax as a managed hook",
                )
            )
    # precedence: managed > local > project > user; the first file that sets it decides
    ordered = [(p, d) for p, d in managed_data] + [
        (s.path, s.data) for s in reversed(sources) if s.kind == "settings" and s.data is not None
    ]
    for path, data in ordered:
        if "disableAllHooks" in data:
            if data["disableAllHooks"] is True:
                checks.append(
                    Check(
                        "disableAllHooks",
                        "fail",
                        f"{path} sets disableAllHooks: true, so Claude Code runs no hooks at all",
                        f'remove "disableAllHooks" from {path}',
                    )
                )
            break
    return checks or [Check("disableAllHooks", "ok", "hooks are enabled")]


def _registrations(sources: list[Source]) -> dict[str, list[tuple[Source, HookRef]]]:
    by_event: dict[str, list[tuple[Source, HookRef]]] = {e: [] for e in HOOK_EVENTS}
    for src in sources:
        for ref in src.refs:
            by_event.setdefault(ref.event, []).append((src, ref))
    return by_event


def _check_installed(sources: list[Source]) -> Check:
    by_event = _registrations(sources)
    missing = [e for e in HOOK_EVENTS if not by_event[e]]
    where = sorted({src.title for regs in by_event.values() for src, _ in regs})
    looked = ", ".join(s.title for s in sources)
    unreadable = [str(s.path) for s in sources if s.kind == "settings" and s.error]
    if missing and unreadable:  # install refuses to touch a file it cannot parse: that comes first
        return Check(
            "hooks",
            "fail",
            f"ultramax's hooks are missing for: {', '.join(missing)}; {', '.join(unreadable)} cannot be read",
            f"fix {unreadable[0]} by hand first (see the settings check above), then run `ultramax install`",
        )
    if len(missing) == len(HOOK_EVENTS):
        return Check(
            "hooks",
            "fail",
            f"ultramax's hooks are not registered anywhere Claude Code looks ({looked})",
            "ultramax install   (or --project / --local for this project only)",
        )
    if missing:
        return Check(
            "hooks",
            "fail" if "PreToolUse" in missing else "warn",
            f"ultramax's hooks are missing for: {', '.join(missing)} (found in {', '.join(where)})",
            "ultramax install   (re-running adds the missing events and changes nothing else)",
        )
    return Check("hooks", "ok", f"all {len(HOOK_EVENTS)} events registered ({', '.join(where)})")


def check_duplicates(sources: list[Source]) -> Check:
    """Events ultramax handles more than once per firing.

    Claude Code collapses identical commands across settings files, but keeps every plugin copy and every
    distinct command -- e.g. the same hook installed from two venvs, or installed and also enabled as plugin.
    """
    twice: list[str] = []
    involved: set[str] = set()
    for event, regs in _registrations(sources).items():
        commands = {(ref.command, tuple(ref.argv)) for src, ref in regs if src.kind == "settings"}
        runs = len(commands) + sum(1 for src, _ in regs if src.kind == "plugin")
        if runs > 1:
            twice.append(f"{event} x{runs}")
            involved.update(src.title for src, _ in regs)
    if not twice:
        return Check("duplicates", "ok", "each event runs ultramax once")
    scopes = sorted({s.label for s in sources if s.kind == "settings" and s.title in involved})
    plugins = sorted({s.label for s in sources if s.kind == "plugin" and s.title in involved})
    fixes = [f"`claude plugin disable {p}`" for p in plugins] if plugins and scopes else []
    fixes += [f"`ultramax uninstall --{s}`" for s in scopes]
    return Check(
        "duplicates",
        "fail",
        f"ultramax runs more than once per event ({', '.join(twice)}) via {'; '.join(sorted(involved))}",
        "keep one registration: " + " or ".join(fixes) + ", then `ultramax install` in the scope you keep"
        if fixes
        else "remove the duplicate handlers, then run `ultramax install` once",
    )


def _command_v(name: str, path: str) -> str | None:
    """Where a non-interactive ``sh`` with this PATH finds ``name`` (as Claude Code's shell would)."""
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", 'command -v -- "$1"', "sh", name],
            env={"PATH": path},
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = proc.stdout.strip()
    return found if proc.returncode == 0 and found else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _check_command(src: Source, ref: HookRef, env: Mapping[str, str]) -> Check | None:
    argv = ref.argv
    fix = (
        f"`ultramax install --{src.label}` from the ultramax you use now (it rewrites the command)"
        if src.kind == "settings"
        else "`pip install ultramax` into an environment whose bin directory is on Claude Code's PATH"
    )
    if not argv:
        return Check("command", "fail", f"{src.title}: {ref.event} has an empty command", fix)
    exe = argv[0]
    if "${" in exe or exe.startswith("$"):
        return None  # expanded by Claude Code at run time; nothing to resolve here
    if "/" in exe:
        if not _executable(Path(exe)):
            what = "does not exist" if not Path(exe).exists() else "is not executable"
            return Check(
                "command",
                "fail",
                f"{src.title}: {ref.event} runs {exe}, which {what} (a moved or deleted venv?); "
                "Claude Code treats that as a non-blocking error, so ultramax is silently off",
                fix,
            )
    else:
        anywhere = shutil.which(exe, path=env.get("PATH"))
        minimal = _command_v(exe, MINIMAL_PATH)
        if anywhere is None and minimal is None:
            return Check("command", "fail", f"{src.title}: {ref.event} runs `{exe}`, which is not on PATH", fix)
        if minimal is None:
            return Check(
                "command",
                "warn",
                f"{src.title}: `{exe}` is on your shell's PATH ({anywhere}) but not on a minimal PATH "
                f"({MINIMAL_PATH}); a Claude Code started from a GUI or an IDE may not find it (exit 127, "
                "hook silently off)",
                "prefer `ultramax install`, which registers absolute paths"
                if src.kind == "plugin"
                else f"`ultramax install --{src.label}` (absolute paths)",
            )
    for word in argv[1:]:
        if word.endswith(CLIENT_SUFFIX) and "${" not in word and not Path(word).is_file():
            return Check(
                "command",
                "fail",
                f"{src.title}: {ref.event} runs the hook client {word}, which does not exist",
                fix,
            )
    return None


def _check_commands(sources: list[Source], env: Mapping[str, str]) -> list[Check]:
    checks: list[Check] = []
    seen: set[tuple[str, str, str]] = set()
    for src in sources:
        for ref in src.refs:
            client = next((w for w in ref.argv if w.endswith(CLIENT_SUFFIX)), "")
            key = (src.title, ref.argv[0] if ref.argv else "", client)
            if key not in seen:  # one finding per interpreter and client, not one per event
                seen.add(key)
                problem = _check_command(src, ref, env)
                if problem is not None:
                    checks.append(problem)
            timeout = ref.timeout
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 600:
                checks.append(
                    Check(
                        "timeout",
                        "fail",
                        f"{src.title}: {ref.event} has timeout {timeout}: Claude Code reads SECONDS, so a hung "
                        "hook would stall the session for minutes",
                        f"`ultramax install --{src.label}`" if src.kind == "settings" else "update the plugin",
                    )
                )
    if not checks and seen:
        checks.append(Check("command", "ok", "hook commands resolve to an existing interpreter and client"))
    return checks


def _socket_refuses(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(str(path))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def _check_daemon(paths: Paths) -> Check:
    status = daemon_status(paths)
    if status.running:
        old = other_install(status)
        if old is not None:
            # started from another install (an upgrade, another virtual environment): hooks get its answers
            return Check(
                "daemon",
                "warn",
                f"the running daemon is {old}; this is ultramax {__version__} from {this_package()}, so hooks "
                "are answered by the other one",
                f"ultramax install (it restarts the daemon), or {restart_command()}",
            )
        return Check("daemon", "ok", f"daemon running (pid {status.pid}, socket {status.socket})")
    if socket_path_problem(paths.socket) is not None:
        return Check(
            "daemon",
            "fail",
            f"{paths.socket} is a directory, not the daemon's socket: no daemon can start, so every hook runs "
            "in-process (slower)",
            f"mv {paths.socket} {paths.socket}.old && ultramax daemon start",
        )
    if paths.socket.is_socket():
        if _socket_refuses(paths.socket):
            return Check(
                "daemon",
                "warn",
                f"stale socket {paths.socket}: the daemon died without removing it; hooks run in-process (slower)",
                "ultramax daemon start   (removes the stale socket)",
            )
        return Check(
            "daemon",
            "fail",
            f"the daemon listens on {paths.socket} but does not answer ({status.problem}); every hook waits for "
            "its timeout before running in-process",
            "ultramax daemon restart",
        )
    detail = f" ({status.problem})" if status.problem else ""
    return Check(
        "daemon",
        "warn",
        f"daemon not running{detail}; hooks run in-process (slower) and start it for next time",
        "ultramax daemon start",
    )


def _check_permissions(paths: Paths) -> list[Check]:
    checks: list[Check] = []
    try:
        st = paths.home.stat()
    except FileNotFoundError:
        return [Check("permissions", "ok", f"{paths.home} not created yet (the first hook creates it, mode 0700)")]
    except OSError as exc:
        return [Check("permissions", "fail", f"cannot stat {paths.home} ({exc})", f"check {paths.home}")]
    if st.st_uid != os.getuid():
        checks.append(
            Check(
                "permissions",
                "fail",
                f"{paths.home} belongs to uid {st.st_uid}, not you (uid {os.getuid()})",
                f"chown -R $(id -u) {paths.home}",
            )
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        checks.append(
            Check(
                "permissions",
                "fail",
                f"{paths.home} is mode {mode:04o}: other users can read the audit log or reach the daemon socket",
                f"chmod 700 {paths.home}",
            )
        )
    try:
        sock_st = paths.socket.lstat()
    except FileNotFoundError:
        sock_mode = None
    else:  # a directory in its place is the daemon check's to name: its mode says nothing about the socket
        sock_mode = None if stat.S_ISDIR(sock_st.st_mode) else stat.S_IMODE(sock_st.st_mode)
    if sock_mode is not None and sock_mode & 0o077:
        checks.append(
            Check(
                "permissions",
                "fail",
                f"{paths.socket} is mode {sock_mode:04o}: other users could drive the daemon",
                f"chmod 600 {paths.socket}   (or `ultramax daemon restart`)",
            )
        )
    if checks:
        return checks
    return [Check("permissions", "ok", f"{paths.home} is private" + (", socket 0600" if sock_mode is not None else ""))]


def _check_timeouts(sources: list[Source], paths: Paths, project_dir: Path) -> Check:
    """Installed hooks carry the client timeout in their command; it goes stale when the setting changes."""
    configured = int(load_settings(paths, project_dir).get("ultramax.hookTimeoutMs"))
    stale: list[str] = []
    for src in sources:
        for ref in src.refs:
            found = [a.split("=", 1)[1] for a in ref.argv if a.startswith("--timeout-ms=")]
            wanted = client_timeout_ms(ref.event, configured)
            if found and found[0].isdigit() and int(found[0]) != wanted:
                stale.append(f"{ref.event} waits {found[0]} ms ({src.title})")
    if not stale:
        return Check("timeouts", "ok", f"hooks wait {configured} ms for the daemon, as ultramax.hookTimeoutMs says")
    return Check(
        "timeouts",
        "warn",
        f"installed hooks do not match ultramax.hookTimeoutMs={configured}: {'; '.join(stale[:3])}"
        + (f" and {len(stale) - 3} more" if len(stale) > 3 else ""),
        "ultramax install   (re-running rewrites the hook commands with the configured timeout)",
    )


def _check_stages(paths: Paths, project_dir: Path) -> Check:
    """`mode activate` pins the mode's stage list in the project; a newer ultramax may have added stages since."""
    settings = load_settings(paths, project_dir)
    pinned = list(settings.get("ultramax.hookStages"))
    mode = detect_mode(project_dir, settings).mode
    missing = [s for s in mode.hook_stages if s not in pinned]
    if not pinned or not missing:
        return Check("stages", "ok", f"pipeline stages: {' -> '.join(pinned or mode.hook_stages)} ({mode.name} mode)")
    return Check(
        "stages",
        "warn",
        f"the project pins pipeline stages without {', '.join(missing)}, which the {mode.name} mode now has "
        f"({settings.sources['ultramax.hookStages']})",
        f"ultramax mode activate {mode.name}   (rewrites the pinned list; other keys are kept)",
    )


def check_skills(paths: Paths) -> Check:
    """The user's skill graph. An invalid one never breaks the hook -- the shipped skills are used instead --
    so without this check the user's own skills and overrides would be missing without a word."""
    config = user_graph_path(paths.claude_dir)
    if not config.exists():
        return Check("skills", "ok", f"the shipped skill graph (no {config} of your own)")
    try:
        graph = load_graph(config, claude_dir=paths.claude_dir)
    except SkillGraphError as exc:
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return Check(
            "skills",
            "warn",
            f"skill graph {config} is invalid, so the hook uses only the shipped skills: "
            f"{f'skill {first.skill!r}: ' if first.skill else ''}{first.message}{more}",
            "ultramax skills list   (names every problem; fix them in the file)",
        )
    return Check("skills", "ok", f"skill graph: {len(graph)} skills ({config} over the shipped graph)")


def _check_kill_switch(paths: Paths) -> Check:
    switch = KillSwitch(paths.kill_switch)
    if switch.engaged:
        note = switch.note()
        return Check(
            "kill-switch",
            "warn",
            f"kill switch engaged ({note or paths.kill_switch}): tool calls are denied",
            "ultramax kill off",
        )
    return Check("kill-switch", "ok", "kill switch off")


def _check_proxy(paths: Paths) -> Check:
    """The routing proxy is optional; a stale announcement only means prompts are not hinted to it."""
    url = announced_proxy(paths)
    if url is None:
        return Check("proxy", "ok", "no routing proxy announced (optional: `ultramax proxy` for cost control)")
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=0.5):
            pass
    except OSError as exc:
        return Check(
            "proxy",
            "warn",
            f"{proxy_file(paths)} announces a routing proxy at {url} that does not answer ({exc}): it stopped "
            "without withdrawing it, and Claude Code sessions pointed at it fail",
            f"ultramax proxy   (or delete {proxy_file(paths)} and unset ANTHROPIC_BASE_URL)",
        )
    return Check("proxy", "ok", f"routing proxy answering at {url}; new prompts are hinted to it (routing.prewarm)")


QUICK_CHECK_MAX_BYTES = 256 * 1024 * 1024
"""Above this size the memory check reads only the schema: a full scan of a million passages takes a while."""


def _check_disk(paths: Paths) -> Check:
    """Room for the audit log, the memory and the logs: a full disk is the one failure that hides itself."""
    import shutil

    where = paths.home if paths.home.exists() else paths.claude_dir
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return Check("disk", "ok", "free space not measurable here")
    if disk_is_full(where):
        return Check(
            "disk",
            "fail",
            f"the disk holding {where} is full: audit records, memory and logs cannot be written",
            "free some disk space",
        )
    if free < 100 * 1024 * 1024:
        return Check("disk", "warn", f"{free // (1024 * 1024)} MB free where {where} lives", "free some disk space")
    return Check("disk", "ok", f"{free // (1024 * 1024):,} MB free where {where} lives")


def _check_memory(paths: Paths) -> Check:
    """The memory database opens and SQLite finds it sound; read-only, so doctor never changes it."""
    import sqlite3

    from ultramax.memory.database import looks_damaged, orphan_wal, set_aside_steps
    from ultramax.memory.store import database_path

    path = database_path(paths)
    orphan = orphan_wal(path)
    if orphan is not None:
        fix = "move the -wal next to the database it belongs to, or delete it; hooks go on without memory until then"
        return Check("memory", "fail", orphan, fix)
    if not path.exists():
        return Check("memory", "ok", "no memory database yet (it is created on first use)")
    fix = (
        f"move it aside with its -wal and -shm ({set_aside_steps(path)}) and restore from an export with "
        "`ultramax memory import FILE`; hooks go on without memory until then"
    )
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return Check("memory", "fail", f"{path} cannot be opened ({exc})", fix)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        big = path.stat().st_size > QUICK_CHECK_MAX_BYTES
        problems = [] if big else [row[0] for row in conn.execute("PRAGMA quick_check") if row[0] != "ok"]
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc).lower():
            return Check("memory", "warn", f"{path} is busy (a long write holds it); run doctor again", "")
        if disk_is_full(path):  # SQLite reports a -wal it cannot create as an I/O error, not as a full disk
            return Check("memory", "fail", f"the disk holding {path} is full ({exc})", "free some disk space")
        if not looks_damaged(exc):
            return Check("memory", "fail", f"{path} cannot be read ({exc})", "check the disk and the permissions")
        return Check("memory", "fail", f"{path} is damaged ({exc})", fix)
    finally:
        conn.close()
    if problems:
        return Check("memory", "fail", f"{path} is damaged: {'; '.join(problems[:3])}", fix)
    checked = "schema read (too big for a quick scan)" if big else "SQLite's quick check passes"
    return Check("memory", "ok", f"{path}: {checked}")


def _check_models() -> Check:
    """The shipped models load and run: the sentence embedding (memory search, the router's tier model) and the
    router's learned weights."""
    from ultramax.memory.embed import default_embedder
    from ultramax.routing.difficulty import load_difficulty_model
    from ultramax.routing.tier_model import load_tier_model

    fix = "reinstall ultramax (the install command at the top of the README)"
    try:
        load_difficulty_model()
        load_tier_model()
    except UltramaxError as exc:
        return Check("models", "fail", f"{exc} (the proxy will not start)", fix)
    try:
        default_embedder().embed(["ultramax doctor"])
    except UltramaxError as exc:
        return Check(
            "models",
            "warn",
            f"{exc}: memory search falls back to keywords and the router to its fallback tier model",
            fix,
        )
    return Check("models", "ok", "the sentence embedding runs and the router's weights load")


def run_doctor(
    paths: Paths,
    project_dir: Path,
    *,
    claude_bin: str | None = None,
    env: Mapping[str, str] | None = None,
    managed_settings: tuple[Path, ...] = MANAGED_SETTINGS,
) -> list[Check]:
    """Every check, in the order a user should fix them."""
    env = os.environ if env is None else env
    sources = collect_sources(paths, project_dir)
    checks = [check_claude(claude_bin, env, paths)]
    checks += _check_files(sources)
    checks += _check_values(paths, project_dir)
    checks += check_disabled(sources, managed_settings)
    checks.append(_check_installed(sources))
    checks.append(check_duplicates(sources))
    checks += _check_commands(sources, env)
    checks.append(_check_timeouts(sources, paths, project_dir))
    checks.append(_check_stages(paths, project_dir))
    checks.append(check_skills(paths))
    checks.append(_check_daemon(paths))
    checks += _check_permissions(paths)
    checks.append(_check_kill_switch(paths))
    checks.append(_check_proxy(paths))
    checks.append(_check_disk(paths))
    checks.append(_check_memory(paths))
    checks.append(_check_models())
    return checks


def worst(checks: list[Check]) -> Status:
    """The most severe status among ``checks``."""
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
