"""What every end-to-end test needs: the real Claude Code CLI, and the ``ultramax`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.claude_cli import find_claude


@pytest.fixture
def claude_bin() -> Path:
    """The pinned Claude Code CLI; the test is skipped (with how to fix it) when it is not installed."""
    claude = find_claude()
    if claude is None:
        pytest.skip(
            "Claude Code CLI not found: set ULTRAMAX_CLAUDE_BIN or run scripts/install-claude-code.sh "
            "(installs into .cache/claude-code)"
        )
    return claude


def ultramax_cli(*args: str, project: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``ultramax`` command line in ``project`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(project), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )
