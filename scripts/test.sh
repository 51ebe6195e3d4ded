#!/usr/bin/env bash
# Run ultramax's checks and tests from nothing: venv, dev dependencies, the pinned Claude Code CLI for the
# end-to-end tests, then ruff, mypy (strict) and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python="${PYTHON:-python3}"
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"

ULTRAMAX_CLAUDE_BIN="$(scripts/install-claude-code.sh)"
export ULTRAMAX_CLAUDE_BIN
# the official MCP servers (npm, PyPI) the gateway tests run as real peers, pinned
ULTRAMAX_MCP_SERVERS="$(scripts/install-mcp-servers.sh)"
export ULTRAMAX_MCP_SERVERS

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
