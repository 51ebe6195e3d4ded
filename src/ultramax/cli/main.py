"""``ultramax``: the command-line face. Each group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ultramax import __version__
from ultramax.cli.base import CliContext, report_error
from ultramax.errors import UltramaxError, UsageError

__all__ = ["build_parser", "main"]

# command-group modules, each with register(subparsers)
GROUPS = (
    "ultramax.cli.status_cmd",
    "ultramax.cli.config_cmd",
    "ultramax.cli.mode_cmd",
    "ultramax.cli.daemon_cmd",
    "ultramax.cli.kill_cmd",
    "ultramax.cli.safety_cmd",
    "ultramax.cli.confirm_cmd",
    "ultramax.cli.audit_cmd",
    "ultramax.cli.install_cmd",
    "ultramax.cli.demo_cmd",
    "ultramax.cli.memory_cmd",
    "ultramax.cli.mcp_cmd",
    "ultramax.cli.skills_cmd",
    "ultramax.cli.route_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are JSON when the command line asks for --json (subcommands' parsers
    are made of the same class)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if not _Parser.json_errors:
            super().error(message)
        report_error(message, 2, as_json=True, usage=self.format_usage().strip())
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ultramax",
        description="Memory, guardrails and cost control for the Claude Code CLI.",
        epilog="exit status: 0 ok; 1 a failure, or a finding (doctor, config validate, audit verify, daemon "
        "status, a deny from safety check); 2 a usage error; 3 an ask from safety check; 130 interrupted "
        "(Ctrl-C); 141 output cut off by a closed pipe. With --json a finding is reported on stdout like any "
        'result; an error is one JSON object on stderr, {"error": MESSAGE, "status": N}, and stdout stays empty.',
    )
    parser.add_argument("--version", action="version", version=f"ultramax {__version__}")
    parser.add_argument(
        "--project-dir", metavar="DIR", help="project to act on (default: $CLAUDE_PROJECT_DIR or the current project)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that was typed: ``ultramax mcp import`` -> the ``mcp import`` parser."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs and subs[0].dest != argparse.SUPPRESS else None
        if not subs or name is None or name not in subs[0].choices:
            return parser
        parser = subs[0].choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C, also while the command modules are still importing
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): exit as a shell reports a tool stopped by SIGPIPE, never 0 for output
        # that was not delivered (a deny from `safety check` must not read as success); stdout goes to /dev/null
        # so that the interpreter's last flush at exit cannot fail again and print a traceback
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: Sequence[str] | None) -> int:
    # run with stdout or stderr closed (`>&-`), Python sets it to None: print() then writes nothing, but a direct
    # write crashed (and print(file=None) sends errors to stdout); /dev/null gives every writer print's behaviour
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 -- for the rest of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 -- for the rest of the process
    words = list(sys.argv[1:] if argv is None else argv)
    # known before parsing, so that argparse's own errors are JSON too; --help never asks for it
    _Parser.json_errors = "--json" in words[: words.index("--")] if "--" in words else "--json" in words
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # name the command and show its usage, not the top-level one
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args, CliContext.from_args(args)))
    except UltramaxError as exc:
        status = 2 if isinstance(exc, UsageError) else 1
        report_error(str(exc), status, as_json=bool(getattr(args, "json", False)), details=exc.details())
        return status


if __name__ == "__main__":
    sys.exit(main())
