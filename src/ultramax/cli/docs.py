"""Generated documentation: the CLI reference from ``--help`` and the configuration reference from SETTINGS.

python -m ultramax.cli.docs          # rewrite docs/cli.md and docs/configuration.md
python -m ultramax.cli.docs --check  # exit 1 if either is out of date (the test suite runs this check)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ultramax.cli.main import build_parser
from ultramax.config import settings_reference_markdown

__all__ = ["cli_reference_markdown", "generated_docs", "main"]


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.extend(action.choices.items())
    return out


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> list[tuple[list[str], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for name, sub in _subparsers(parser):
        found.extend(_walk(sub, [*path, name]))
    return found


def cli_reference_markdown() -> str:
    # a fixed width so the text does not depend on the terminal that generated it
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        lines = [
            "# CLI reference",
            "",
            "Generated from `ultramax --help` by `python -m ultramax.cli.docs`; do not edit by hand.",
            "",
        ]
        for path, parser in _walk(build_parser(), ["ultramax"]):
            lines += [f"## `{' '.join(path)}`", "", "```text", parser.format_help().rstrip(), "```", ""]
        return "\n".join(lines)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def generated_docs(root: Path) -> dict[Path, str]:
    return {
        root / "docs" / "cli.md": cli_reference_markdown(),
        root / "docs" / "configuration.md": settings_reference_markdown(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write or check the generated docs")
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated_docs(Path(args.root)).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
