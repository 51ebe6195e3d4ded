"""Claude Code's own MCP configuration comes into pools; the gateway becomes the project's one MCP entry."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main
from ultramax.errors import ConfigError
from ultramax.mcp.config import load_pool_config
from ultramax.mcp.importer import activate, claude_code_servers, convert_entry, import_servers
from ultramax.mcp.process import dumps_line

MCP_JSON = {
    "mcpServers": {
        "pg": {
            "type": "stdio",
            "command": "npx",
            "args": ["-y", "@bytebase/dbhub", "--dsn", "${PG_DSN:-postgres://localhost/dev}"],
            "env": {"LOG": "warn"},
            "timeout": 600000,
        },
        "github": {
            "type": "http",
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"},
        },
        "asana": {"type": "sse", "url": "https://mcp.asana.com/sse"},
    }
}


def test_activate_pools_the_projects_servers_and_leaves_the_gateway_as_its_mcp_entry(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    project = umx.project("webapp")
    (project / ".mcp.json").write_text(json.dumps(MCP_JSON, indent=2), encoding="utf-8")

    assert main(["--project-dir", str(project), "mcp", "activate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    written = json.loads((project / ".mcp.json").read_text(encoding="utf-8"))
    assert list(written["mcpServers"]) == ["asana", "ultramax"], "sse cannot be pooled: it stays with Claude Code"
    gateway = written["mcpServers"]["ultramax"]
    assert gateway == {"type": "stdio", "command": sys.executable, "args": ["-m", "ultramax.cli.main", "mcp", "serve"]}
    assert Path(gateway["command"]).is_absolute()
    assert sorted(report["imported"]) == ["github", "pg"] and report["kept"] == ["asana"]
    assert json.loads(Path(report["backup"]).read_text(encoding="utf-8")) == MCP_JSON

    config = load_pool_config(umx.paths, project)
    assert config.errors == []
    pg, github = config.servers["pg"], config.servers["github"]
    assert (pg.command, pg.args[-1], dict(pg.env), pg.timeout_ms) == (
        "npx", "${PG_DSN:-postgres://localhost/dev}", {"LOG": "warn"}, 600000,
    )  # fmt: skip
    assert (github.transport, github.url, dict(github.headers)) == (
        "http", "https://api.githubcopilot.com/mcp/", {"Authorization": "Bearer ${GITHUB_TOKEN}"},
    )  # fmt: skip
    assert set(config.active(project_dir=project, mode="development").names) == {"pg", "github"}

    again = activate(umx.paths, project)
    assert not again.changed and again.backup is None, "a second activation changes nothing"


def test_activate_refuses_a_mcp_json_that_is_not_valid_json_and_leaves_it_alone(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    broken = '{"mcpServers": {"pg": '
    (project / ".mcp.json").write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.mcp\.json: not valid JSON .* line 1"):
        activate(umx.paths, project)
    assert (project / ".mcp.json").read_text(encoding="utf-8") == broken


def test_user_and_local_scope_servers_import_with_claude_codes_precedence(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    claude_json = {
        "mcpServers": {"memory": {"command": "mcp-server-memory"}, "time": {"command": "user-time"}},
        "projects": {str(project): {"mcpServers": {"time": {"command": "local-time", "args": ["--utc"]}}}},
    }
    (umx.home / ".claude.json").write_text(json.dumps(claude_json), encoding="utf-8")

    found = {(s.name, s.scope): s.shadowed_by for s in claude_code_servers(umx.paths, project)}
    assert found == {("time", "local"): None, ("memory", "user"): None, ("time", "user"): "local"}

    result = import_servers(umx.paths, project)
    assert sorted(result.imported) == ["memory", "time"]
    assert any("time (user): shadowed by the local entry" in n for n in result.notes)
    config = load_pool_config(umx.paths, project)
    assert config.servers["time"].command == "local-time"
    assert config.servers["time"].projects == ("webapp",), "a local-scope server stays with its project"
    assert "time" not in config.active(project_dir=umx.project("other"), mode="development").names
    assert json.loads((umx.home / ".claude.json").read_text()) == claude_json, "Claude Code's file is untouched"


def test_imported_servers_with_their_secrets_go_into_a_pools_file_only_the_user_can_read(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    claude_json = {"mcpServers": {"pg": {"command": "pg-mcp", "env": {"PGPASSWORD": "hunter2-but-longer"}}}}
    (umx.home / ".claude.json").write_text(json.dumps(claude_json), encoding="utf-8")
    (umx.home / ".claude.json").chmod(0o600)
    result = import_servers(umx.paths, project)
    pools_file = result.pools_file
    assert result.imported == ["pg"] and pools_file is not None and "hunter2-but-longer" in pools_file.read_text()
    assert stat.S_IMODE(pools_file.stat().st_mode) == 0o600
    pools_file.chmod(0o644)  # as an earlier version left it: written again, it is the user's alone
    claude_json["mcpServers"]["redis"] = {"command": "redis-mcp"}
    (umx.home / ".claude.json").write_text(json.dumps(claude_json), encoding="utf-8")
    import_servers(umx.paths, project)
    assert stat.S_IMODE(pools_file.stat().st_mode) == 0o600 and "redis-mcp" in pools_file.read_text()


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"command": "npx", "args": "-y @modelcontextprotocol/server-memory"}, "args must be an array"),
        ({"command": "npx", "env": ["KEY=value"]}, "env must be an object"),
        ({"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": ["x: y"]}, "headers must be an object"),
    ],
    ids=["args-string", "env-list", "headers-list"],
)
def test_an_entry_of_the_wrong_shape_is_left_out_with_the_reason_not_mangled(entry: dict[str, Any], why: str) -> None:
    converted, reason = convert_entry(entry)
    assert converted is None and reason is not None and why in reason


def test_a_json_rpc_line_keeps_non_ascii_text_as_utf8_and_a_lone_surrogate_escaped() -> None:
    line = dumps_line({"jsonrpc": "2.0", "id": 1, "result": {"text": "ü" * 1000}})
    assert len(line) < 2100 and json.loads(line)["result"]["text"] == "ü" * 1000
    escaped = dumps_line({"jsonrpc": "2.0", "id": 2, "result": {"text": "a\ud83db"}})
    assert b"\\ud83d" in escaped


def test_activating_again_keeps_the_rules_and_settings_added_to_the_pool_file_and_backs_it_up(
    umx: UltramaxEnv,
) -> None:
    project = umx.project("webapp")
    (project / ".mcp.json").write_text(json.dumps(MCP_JSON, indent=2), encoding="utf-8")
    pools_file = activate(umx.paths, project).pools_file
    assert pools_file is not None
    data = json.loads(pools_file.read_text(encoding="utf-8"))
    rule = {"pattern": "trade:*", "servers": ["alpaca"], "require_safety_check": True}
    data["routing"] = [rule]
    data["pools"]["primary"]["health_check_interval_ms"] = 5000
    pools_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
    mcp_json = json.loads((project / ".mcp.json").read_text(encoding="utf-8"))
    mcp_json["mcpServers"]["time"] = {"command": "mcp-server-time"}
    (project / ".mcp.json").write_text(json.dumps(mcp_json, indent=2), encoding="utf-8")

    activate(umx.paths, project)
    after = json.loads(pools_file.read_text(encoding="utf-8"))
    assert after["routing"] == [rule], "the safety rule the user added is kept"
    assert after["pools"]["primary"]["health_check_interval_ms"] == 5000
    assert "time" in after["pools"]["primary"]["servers"]
    backups = [p for p in umx.paths.backups_dir.iterdir() if pools_file.name in p.name]
    assert backups and json.loads(backups[-1].read_text(encoding="utf-8")) == data


def test_imported_servers_with_tokens_in_their_env_are_written_to_a_pool_file_only_the_user_can_read(
    umx: UltramaxEnv,
) -> None:
    token = "ghp_a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8"
    claude_json = {"mcpServers": {"github": {"command": "github-mcp-server", "env": {"GITHUB_TOKEN": token}}}}
    (umx.home / ".claude.json").write_text(json.dumps(claude_json), encoding="utf-8")
    (umx.home / ".claude.json").chmod(0o600)
    assert import_servers(umx.paths, umx.project("webapp")).imported == ["github"]
    [pool_file] = (umx.claude_dir / "mcp" / "pools").glob("*.json")
    assert token in pool_file.read_text(encoding="utf-8"), "the gateway starts the server with it"
    assert pool_file.stat().st_mode & 0o777 == 0o600
    assert pool_file.parent.stat().st_mode & 0o777 == 0o700
