"""What every CLI command receives, and the shared output helpers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from ultramax.errors import ConfigError, UsageError
from ultramax.paths import Paths

__all__ = [
    "LARGEST",
    "CliContext",
    "Handler",
    "Subparsers",
    "count",
    "emit_json",
    "project_root",
    "report_error",
    "whole_number",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(slots=True)
class CliContext:
    """Resolved once per invocation: where ultramax lives and which project the command is about."""

    paths: Paths
    project_dir: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CliContext:
        given = getattr(args, "project_dir", None)
        if given:
            project = Path(given).expanduser().resolve()
            if not project.is_dir():
                # a mistyped path would otherwise be acted on as a project (and `mode activate` would create it)
                why = "does not exist" if not project.exists() else "is not a directory"
                raise UsageError(f"--project-dir {given}: {why}; give the directory of an existing project")
        else:
            project = project_root(Path.cwd())
            if os.environ.get("CLAUDE_PROJECT_DIR") and not project.is_dir():  # the same guard, for the variable
                raise ConfigError(
                    f"$CLAUDE_PROJECT_DIR is {os.environ['CLAUDE_PROJECT_DIR']}, which is not an existing directory; "
                    "unset it or point it at the project"
                )
        paths = Paths.from_env()
        paths.check_folders()
        return cls(paths=paths, project_dir=project)


class Handler(Protocol):
    def __call__(self, args: argparse.Namespace, ctx: CliContext) -> int: ...


def project_root(start: Path) -> Path:
    """The project a command is about: $CLAUDE_PROJECT_DIR, else the nearest parent holding .claude/ or .git/."""
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".claude").is_dir() or (candidate / ".git").exists():
            if candidate == Path.home().resolve() and candidate != start:
                break  # ~/.claude is the user's, not a project's
            return candidate
    return start


LARGEST = 2**63 - 1
"""The largest whole number a count, a size or an id can be (SQLite's and the C library's 64-bit limit): a bigger
one is a typo, and would fail deep inside with an OverflowError."""


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``minimum`` (and at most ``maximum``, else ``LARGEST``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"{minimum} or more" if maximum is None else f"from {minimum} to {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
        if value > LARGEST:
            raise argparse.ArgumentTypeError(f"must be at most {LARGEST}, not {value}")
        return value

    return parse


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 record``, ``2 records``: a number with its noun agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def report_error(
    message: str, status: int, *, as_json: bool, usage: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """An error on stderr: ``ultramax: message``, or with --json one JSON object, ``{"error": message,
    "status": N}`` (and argparse's ``usage``), so a script reading JSON never gets text; stdout stays for
    results."""
    if not as_json:
        print(f"ultramax: {message}", file=sys.stderr)
        return
    data: dict[str, Any] = {"error": message, "status": status, **(details or {})}
    if usage:
        data["usage"] = usage
    sys.stderr.write(json.dumps(data, ensure_ascii=False) + "\n")
