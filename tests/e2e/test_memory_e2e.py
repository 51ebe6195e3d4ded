"""Memory across real Claude Code sessions: what session one said reaches the model in session two; a secret
typed in session one is nowhere in ultramax's store or logs, nor in any request of session two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, UltramaxEnv, wait_for
from tests.support.claude_cli import ClaudeRun, run_claude
from tests.support.model_server import ModelServer, run_model_server, text_turn
from ultramax.memory.store import SQLiteStore, database_path

pytestmark = pytest.mark.e2e

TOKEN = "ghp_" + "Mm3Nn4Bb5Vv6Cc7Xx8Zz9Ll0Kk1Jj2Hh3Gg4"


@pytest.fixture
def project(umx: UltramaxEnv) -> Path:
    path = umx.project("billing-platform")
    subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "--project-dir", str(path), "install", "--project"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return path


def claude(bin_: Path, umx: UltramaxEnv, project: Path, server: ModelServer, prompt: str) -> ClaudeRun:
    return run_claude(
        prompt,
        cwd=project,
        home=umx.home,
        base_url=server.base_url,
        allowed_tools=[],
        env={"ULTRAMAX_HOME": str(umx.ultramax_home)},
        claude=bin_,
    ).check()


def store_state(umx: UltramaxEnv) -> tuple[list[str], int]:
    store = SQLiteStore(database_path(umx.paths))
    try:
        return [p.text for p in store.iter_passages()], len(store.unembedded(1000))
    finally:
        store.close()


def test_a_decision_from_session_one_reaches_the_model_in_session_two_and_the_secret_never_does(
    claude_bin: Path, umx: UltramaxEnv, project: Path, daemon: DaemonProcess
) -> None:
    first = f"Remember this: the billing service listens on port 8123. My deploy token is {TOKEN}, keep it."
    with run_model_server([text_turn("Noted: billing listens on port 8123.")]) as server:
        claude(claude_bin, umx, project, server, first)
    wait_for(lambda: any("port 8123" in t for t in store_state(umx)[0]), 20, "session one captured")
    wait_for(lambda: store_state(umx)[1] == 0, 60, "session one embedded by the daemon")

    with run_model_server([text_turn("It listens on port 8123.")]) as server:
        claude(claude_bin, umx, project, server, "Which port does the billing service listen on?")
        requests = server.requests
        main = server.main_requests()
    assert main, "the model server received no request"
    bodies = [json.dumps(r.body) for r in main]
    assert any("billing service listens on port 8123" in b and "[ultramax memory]" in b for b in bodies)
    recall = [b for b in bodies if "Possibly relevant memories" in b]
    assert recall and "port 8123" in recall[0], "the prompt's own recall (UserPromptSubmit) carried the memory"
    assert not any(TOKEN in r.raw_body.decode("utf-8", "replace") for r in requests), "secret sent in session two"

    texts, _ = store_state(umx)
    assert any("[REDACTED:github-token]" in t for t in texts)
    for root in (umx.ultramax_home, umx.claude_dir / "logs"):
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), f"secret found in {path}"
    assert TOKEN not in daemon.log_text()
