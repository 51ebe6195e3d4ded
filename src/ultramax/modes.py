"""Per-project modes: the seed's alphaforge (trading), state-of-witness (creative) and development configs.

The definitions are data (``data/modes.toml``). A project's mode is its explicit marker -- ``ultramax.mode``
in the project's Claude Code settings, written by ``ultramax mode activate`` -- or else detected from the
project path, matching whole path parts (``~/src/alphaforge`` is trading; ``~/src/systematic`` is not).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ultramax.config import Settings
from ultramax.errors import ConfigError, ModeError
from ultramax.paths import Paths, project_settings_files

if TYPE_CHECKING:
    from ultramax.install import SettingsEdit

__all__ = ["ModeConfig", "ModeSelection", "activate_mode", "detect_mode", "get_mode", "load_modes", "write_mode"]


@dataclass(frozen=True, slots=True)
class ModeConfig:
    """One system configuration (seed section 8)."""

    name: str
    description: str
    aliases: tuple[str, ...]
    detect: tuple[str, ...]
    mcp_servers: tuple[str, ...]
    required_skills: tuple[str, ...]
    safety_level: str
    failure_policy: Literal["strict", "lenient"]
    require_confirmation: tuple[str, ...]
    blocked_operations: tuple[str, ...]
    default_model: str
    allow_opus: bool
    max_thinking_tokens: int
    memory_project: str
    sleeptime_enabled: bool
    sleeptime_frequency: int
    hook_stages: tuple[str, ...]

    @property
    def strict(self) -> bool:
        """Deny when in doubt (trading) rather than ask or continue."""
        return self.failure_policy == "strict"

    def to_dict(self) -> dict[str, Any]:
        return {f: _plain(getattr(self, f)) for f in self.__slots__}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, slots=True)
class ModeSelection:
    """The mode in force for a project and why."""

    mode: ModeConfig
    source: str  # "marker: <file>" | "path: <part>" | "default"


_LISTS = (
    "aliases",
    "detect",
    "mcp_servers",
    "required_skills",
    "require_confirmation",
    "blocked_operations",
    "hook_stages",
)


def _build(name: str, raw: dict[str, Any]) -> ModeConfig:
    try:
        kwargs: dict[str, Any] = {
            k: tuple(raw[k]) if k in _LISTS else raw[k] for k in ModeConfig.__slots__ if k != "name"
        }
        if kwargs["failure_policy"] not in ("strict", "lenient"):
            raise ModeError(f"mode {name}: failure_policy must be strict or lenient")
        return ModeConfig(name=name, **kwargs)
    except KeyError as exc:
        raise ModeError(f"mode {name}: missing key {exc.args[0]!r} in modes.toml") from exc


@cache
def load_modes() -> dict[str, ModeConfig]:
    """All modes by canonical name, from the packaged definitions."""
    text = resources.files("ultramax").joinpath("data/modes.toml").read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModeError(f"packaged modes.toml is broken: {exc}") from exc
    return {name: _build(name, body) for name, body in raw["modes"].items()}


def get_mode(name: str) -> ModeConfig:
    """A mode by name or alias (case-insensitive); ModeError lists the valid names."""
    wanted = name.strip().lower().replace("_", "-")
    for mode in load_modes().values():
        if wanted == mode.name or wanted in mode.aliases:
            return mode
    names = ", ".join(load_modes())
    raise ModeError(f"unknown mode {name!r}; choose one of: {names}")


_SPLIT = re.compile(r"[-_. ]+")


def detect_mode(project_dir: Path | None, settings: Settings | None = None) -> ModeSelection:
    """The mode for ``project_dir``: the explicit marker if set, else path detection, else development."""
    if settings is not None:
        marker = settings.get("ultramax.mode")
        if marker:
            return ModeSelection(get_mode(marker), f"marker: {settings.sources['ultramax.mode']}")
    if project_dir is not None:
        parts = [p.lower() for p in Path(project_dir).parts]
        for mode in load_modes().values():
            for word in mode.detect:
                for part in parts:
                    if part == word or word in _SPLIT.split(part):
                        return ModeSelection(mode, f"path: {part}")
    return ModeSelection(get_mode("development"), "default")


def activate_mode(project_dir: Path, name: str, paths: Paths | None = None) -> Path:
    """Write the mode into the project's shared Claude Code settings and return the file written
    (``write_mode`` also says how the file was edited)."""
    return write_mode(project_dir, name, paths).path


def write_mode(project_dir: Path, name: str, paths: Paths | None = None) -> SettingsEdit:
    """Write the mode into the project's shared Claude Code settings; returns what was done to the file.

    Sets the marker (``ultramax.mode``), the mode's pipeline stages, skills and MCP servers, and the safety
    level; every other key is preserved. The file is edited as ``ultramax install`` edits it: through a
    symlink, in its text so every byte outside those keys stays as it was, with a backup; one that is not
    valid JSON or is read-only is refused, never overwritten, and so is the user's own settings file (run from
    the home folder).
    """
    from ultramax.errors import InstallError
    from ultramax.install import edit_settings

    mode = get_mode(name)
    target = project_settings_files(project_dir)[0]
    paths = paths or Paths.from_env()
    if os.path.realpath(target) == os.path.realpath(paths.user_settings):  # install's advice (--user) fits not here
        raise ConfigError(
            f"{target} is your user settings file (the project directory is {project_dir}): a mode is set per "
            "project; run from inside a project, or pass --project-dir"
        )

    def change(data: dict[str, Any]) -> None:
        ultramax = data.get("ultramax")
        if ultramax is not None and not isinstance(ultramax, dict):
            raise ConfigError(f"{target}: ultramax must be an object; fix it by hand before activating a mode")
        safety = data.get("safety")
        if safety is not None and not isinstance(safety, dict):
            raise ConfigError(f"{target}: safety must be an object; fix it by hand before activating a mode")
        data["ultramax"] = {
            **(ultramax or {}),
            "mode": mode.name,
            "hookStages": list(mode.hook_stages),
            "skills": list(mode.required_skills),
            "mcpServers": list(mode.mcp_servers),
        }
        data["safety"] = {**(safety or {}), "level": mode.safety_level}

    try:
        return edit_settings(paths, "project", project_dir, change)
    except InstallError as exc:  # the file cannot be edited safely: say so as a settings problem
        raise ConfigError(str(exc)) from exc
