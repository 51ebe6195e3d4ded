#!/usr/bin/env bash
# Install the pinned Claude Code CLI for the end-to-end tests and print the path of its `claude` executable.
#
#   scripts/install-claude-code.sh [DIR]     DIR defaults to .cache/claude-code under the repo root
#
# Idempotent: when DIR already holds the pinned version it only prints the path. Everything but that path
# goes to stderr, so callers can do `export ULTRAMAX_CLAUDE_BIN="$(scripts/install-claude-code.sh)"`.
set -euo pipefail

# Pinned exactly: hook payloads and the model-server wire format are checked against this version.
CLAUDE_CODE_VERSION="2.1.328"
PACKAGE="@anthropic-ai/claude-code"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo_root/.cache/claude-code}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
claude="$dest/node_modules/.bin/claude"

installed_version() {
    # The npm package's bin is a placeholder stub until its postinstall links the native binary in.
    "$claude" --version 2>/dev/null | awk 'NR == 1 { print $1 }' || true
}

if [[ -x "$claude" && "$(installed_version)" == "$CLAUDE_CODE_VERSION" ]]; then
    echo "$claude"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-claude-code: npm is required (Node.js); install it first" >&2
    exit 1
fi

# A package.json of its own keeps npm from walking up into (and editing) an enclosing project.
if [[ ! -f "$dest/package.json" ]]; then
    echo '{"private": true, "description": "Claude Code CLI for ultramax end-to-end tests"}' >"$dest/package.json"
fi

echo "install-claude-code: installing $PACKAGE@$CLAUDE_CODE_VERSION into $dest" >&2
# stdout of npm goes to stderr: this script's stdout is only the path.
(cd "$dest" && npm install --no-audit --no-fund --save-exact "$PACKAGE@$CLAUDE_CODE_VERSION") 1>&2

if [[ "$(installed_version)" != "$CLAUDE_CODE_VERSION" ]]; then
    # npm skipped the postinstall (ignore-scripts, or scripts not allowed): run it by hand. It copies the
    # native binary from the platform package (an optional dependency) over the stub.
    echo "install-claude-code: running the package's postinstall by hand" >&2
    (cd "$dest/node_modules/$PACKAGE" && node install.cjs) 1>&2
fi

actual="$(installed_version)"
if [[ "$actual" != "$CLAUDE_CODE_VERSION" ]]; then
    echo "install-claude-code: $claude reports version '${actual:-none}', expected $CLAUDE_CODE_VERSION" >&2
    exit 1
fi
echo "$claude"
