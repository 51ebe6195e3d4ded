"""A secret can be a file or folder name: nothing ultramax stores or logs about a hook event may hold it.

The events run through the real hook client (in-process, no daemon), then every file ultramax wrote -- the
audit log, the memory database and its WAL, the safety store, the JSON logs -- is searched for the secrets.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import UltramaxEnv, hook_payload, run_hook_process
from ultramax.audit import verify
from ultramax.memory.store import database_path

# Credential-shaped test values, assembled so that no scanner mistakes this file for a leak.
ANT_KEY = "sk-ant-api03-" + "Zq8mN3vR7tYw2KpL5xHc9Jd4"
GH_TOKEN = "ghp_" + "Xv7Lq2Nw9Rt4Ys6Kp3Mz8Bc5Df1Gh0Jk2Lm4"
AWS_ID = "AKIA" + "Q3EGRDMT6WKXNZ2F"
SECRETS = (ANT_KEY, GH_TOKEN, AWS_ID)


def files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    """Every file under ``root`` whose bytes contain one of ``secrets``."""
    return [
        f"{path.relative_to(root)} holds {secret[:8]}..."
        for path in sorted(root.rglob("*"))
        if path.is_file()
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]


def test_secrets_in_file_and_folder_names_never_reach_the_audit_log_memory_or_logs(umx: UltramaxEnv) -> None:
    project = umx.project(f"clone_{GH_TOKEN}")  # a token as (part of) the project folder's name
    events: list[tuple[str, dict[str, Any]]] = [
        # denied: a system file, its name holding a key (the reason and the summary quote the path)
        (
            "PreToolUse",
            {"tool_name": "Write", "tool_input": {"file_path": f"/etc/backup_{ANT_KEY}.txt", "content": "x"}},
        ),
        # captured by memory as a file_change passage
        (
            "PostToolUse",
            {
                "tool_name": "Edit",
                "tool_input": {
                    "file_path": f"{project}/config/{ANT_KEY}.txt",
                    "old_string": "debug = true",
                    "new_string": "debug = false",
                },
                "tool_response": {"filePath": f"{project}/config/{ANT_KEY}.txt", "structuredPatch": []},
            },
        ),
        # denied: a credentials file in a folder named after an access key id
        ("PreToolUse", {"tool_name": "Read", "tool_input": {"file_path": f"{project}/keys/{AWS_ID}/.env"}}),
    ]
    for event, fields in events:
        payload = hook_payload(event, cwd=str(project), **fields)
        run = run_hook_process(event, payload, project_dir=project)
        assert run.code == 0, run.stderr

    records = [json.loads(line) for line in umx.paths.audit_log.read_text(encoding="utf-8").splitlines()]
    assert [r["decision"] for r in records] == ["deny", "continue", "deny"]
    assert verify(umx.paths.audit_log).ok
    assert all(r["project"].endswith("/clone_[REDACTED:github-token]") for r in records)
    assert records[0]["summary"] == "Write file_path=/etc/backup_[REDACTED:anthropic-key].txt"
    conn = sqlite3.connect(database_path(umx.paths))
    try:
        sources = [row[0] for row in conn.execute("SELECT source FROM passages WHERE kind = 'file_change'")]
    finally:
        conn.close()
    assert sources == ["config/[REDACTED:anthropic-key].txt"], "named inside the project, the key redacted"
    assert (umx.claude_dir / "logs" / "safety_audit.log").is_file()  # the denials were logged too

    assert files_holding(umx.ultramax_home, SECRETS) == []
    assert files_holding(umx.claude_dir / "logs", SECRETS) == []
