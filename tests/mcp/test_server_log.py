"""A server's stderr is kept in its log file redacted -- the tokens its pool entry gives it included -- and that
file is the user's alone."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import UltramaxEnv
from tests.mcp.harness import FIXTURE_SERVER, Gateway, write_pools

GITHUB_TOKEN = "ghp_a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq8vR2mXk4Lp9TnW7bYc3Hd6Jf1Gs5Ae0Ku" * 2  # not given to it: found by its shape
PLAIN_TOKEN = "MCPenvS3cretVal9x"  # no known shape: only the pool entry says it is a secret
# what servers do at start: print the configuration they were given, then serve
NOISY_START = (
    "import os, runpy, sys\n"
    "print(f\"starting with GITHUB_TOKEN={os.environ['GITHUB_TOKEN']}, token {os.environ['API_TOKEN']}\","
    " file=sys.stderr, flush=True)\n"
    "sys.argv = [sys.argv[1], '--label', 'noisy']\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_a_servers_stderr_is_logged_without_its_tokens_in_a_file_only_the_user_can_read(
    umx: UltramaxEnv, project: Path
) -> None:
    noisy = {
        "command": sys.executable,
        "args": ["-c", NOISY_START, str(FIXTURE_SERVER)],
        "env": {"GITHUB_TOKEN": GITHUB_TOKEN, "API_TOKEN": PLAIN_TOKEN},
    }
    write_pools(umx, {"pools": {"primary": {"servers": {"noisy": noisy}}}})
    with Gateway(umx, project) as gw:
        assert '"label": "noisy"' in gw.text("noisy__whoami")
        # the SDK server logs a failed tool's error on its stderr: here one quoting a key
        assert gw.call("noisy__fail", {"message": f"bad credentials {ANTHROPIC_KEY}"}).is_error
    log = umx.paths.logs_dir / "mcp" / "noisy.log"
    text = log.read_text(encoding="utf-8")
    assert "starting with GITHUB_TOKEN=[REDACTED:env], token [REDACTED:env]" in text
    assert "bad credentials [REDACTED:anthropic-key]" in text
    assert GITHUB_TOKEN not in text and PLAIN_TOKEN not in text and ANTHROPIC_KEY not in text
    assert log.stat().st_mode & 0o777 == 0o600 and log.parent.stat().st_mode & 0o777 == 0o700
