"""Pools files in the seed's format: what they mean, and every problem named by file, key and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import UltramaxEnv
from tests.mcp.harness import write_pools
from ultramax.cli.main import main
from ultramax.mcp.config import PoolConfig, expand_vars, load_pool_config
from ultramax.mcp.process import child_environment
from ultramax.mcp.upstream import start_failure

SEED = {
    "version": "8.0",
    "pools": {
        "primary": {
            "strategy": "round-robin",
            "health_check_interval_ms": 5000,
            "timeout_ms": 10000,
            "servers": {
                "filesystem": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                    "priority": 1,
                    "health_endpoint": None,
                    "description": "Secure file operations with path restrictions",
                },
                "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "priority": 1},
                "github": {"command": "gh", "args": ["mcp", "serve"], "env": {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}},
                "sequential-thinking": {"command": "npx", "args": ["-y", "x"], "priority": 2},
            },
        },
        "failover": {
            "strategy": "priority",
            "activation": "on-primary-failure",
            "servers": {
                "filesystem-backup": {"command": "node", "args": ["./mcp/fallback/fs-server.js"], "for": "filesystem"}
            },
        },
        "project-specific": {
            "strategy": "manual",
            "activation": "on-demand",
            "servers": {
                "playwright": {"command": "npx", "disabled": True, "projects": ["state-of-witness", "web-automation"]},
                "alpaca": {
                    "command": "uvx",
                    "args": ["alpaca-mcp-server"],
                    "disabled": True,
                    "env": {"APCA_API_KEY_ID": "${ALPACA_KEY}"},
                    "projects": ["alphaforge"],
                },
            },
        },
    },
    "routing": {
        "rules": [
            {"pattern": "file:*", "servers": ["filesystem", "filesystem-backup"]},
            {"pattern": "github:*", "servers": ["github"]},
            {"pattern": "trade:*", "servers": ["alpaca"], "require_safety_check": True},
        ]
    },
}


def load(umx: UltramaxEnv, *docs: dict[str, Any] | str) -> PoolConfig:
    for i, doc in enumerate(docs):
        path = umx.claude_dir / "mcp" / "pools" / f"{i:02d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return load_pool_config(umx.paths)


def messages(config: PoolConfig, kind: str = "errors") -> list[str]:
    return [str(p) for p in getattr(config, kind)]


def test_the_seeds_pool_configuration_loads_with_its_roles_strategies_and_rules(umx: UltramaxEnv) -> None:
    config = load(umx, SEED)
    assert messages(config) == []
    assert set(config.servers) == {
        "filesystem", "memory", "github", "sequential-thinking", "filesystem-backup", "playwright", "alpaca",
    }  # fmt: skip
    fs = config.servers["filesystem"]
    assert (fs.pool.strategy, fs.pool.activation, fs.pool.health_check_interval_ms, fs.pool.timeout_ms) == (
        "round-robin", "always", 5000, 10000,
    )  # fmt: skip
    assert config.servers["filesystem-backup"].backup_for == "filesystem"
    assert config.servers["alpaca"].pool.activation == "on-demand"
    assert [s.name for s in config.backups_for("filesystem")] == ["filesystem-backup"]
    # the seed's category patterns apply to the tools of the servers the rule names
    assert config.rule_for("filesystem", "read_file") is config.rules[0]
    assert config.rule_for("alpaca", "place_order") is config.rules[2]
    assert config.rules[2].require_safety_check
    assert config.rule_for("memory", "read_graph") is None
    warnings = messages(config, "warnings")
    assert any("${GITHUB_TOKEN} is not set" in w for w in warnings), "an unset variable is reported, not fatal"


def test_project_specific_servers_follow_the_mode_and_the_project_and_backups_follow_their_primary(
    umx: UltramaxEnv,
) -> None:
    config = load(umx, SEED)
    dev = config.active(project_dir=Path("/p/webapp"), mode="development", mode_servers=["filesystem", "memory"])
    assert set(dev.names) == {"filesystem", "memory", "github", "sequential-thinking", "filesystem-backup"}
    assert "not in mode development's servers" in dev.inactive["alpaca"]

    trading = config.active(project_dir=Path("/p/quant"), mode="alphaforge", mode_servers=["alpaca", "polygon"])
    assert "alpaca" in trading.names, "listed by the mode"
    named = config.active(project_dir=Path("/p/web-automation"), mode="development", mode_servers=[])
    assert "playwright" in named.names, "projects names the project directory"

    doc = json.loads(json.dumps(SEED))
    doc["pools"]["primary"]["servers"]["filesystem"]["disabled"] = True
    off = load(umx, doc).active(project_dir=None, mode="development")
    assert off.inactive["filesystem"] == "disabled"
    assert off.inactive["filesystem-backup"] == "backs up filesystem, which is off"


def test_every_problem_names_the_file_the_key_and_what_is_wrong(umx: UltramaxEnv) -> None:
    bad = {
        "pools": {
            "primary": {
                "strategy": "fastest",
                "health_check_interval_ms": "5s",
                "servers": {
                    "ok": {"command": "true", "health_endpoint": "http://localhost:9/health"},
                    "nocommand": {"args": ["x"]},
                    "typo": {"command": "x", "prority": 1},
                    "bad__name": {"command": "x"},
                    "badenv": {"command": "x", "env": {"A": 1}},
                },
            },
            "failover": {"servers": {"orphan": {"command": "x", "for": "missing"}, "nofor": {"command": "x"}}},
        },
        "routing": {"rules": [{"pattern": "trade:*", "require_safety_check": True}, {"servers": ["ghost"]}]},
    }
    config = load(umx, bad)
    file = str(umx.claude_dir / "mcp" / "pools" / "00.json")
    errors = messages(config)
    expected = [
        f'{file}: pools.primary.strategy: must be one of round-robin, priority, manual; got "fastest"',
        f'{file}: pools.primary.health_check_interval_ms: must be an integer, got "5s"',
        f"{file}: pools.failover.servers.nofor.for: required in a failover pool: the server this one backs up",
        f"{file}: pools.failover.servers.orphan.for: names no configured server: 'missing'",
        f"{file}: routing.rules[1].pattern: required: a glob over server:tool or a tool name",
    ]
    for line in expected:
        assert line in errors, f"{line!r} not in {errors}"
    assert any("trade:*' names no configured server and the rule lists no servers" in e for e in errors), (
        "a safety rule that can match nothing is an error: it would silently protect nothing"
    )
    assert not any("pools.primary.servers.ok" in e for e in errors)
    assert (
        f"{file}: pools.primary.servers.ok.health_endpoint: ignored: health is checked with MCP requests "
        "(ping, tools/list)" in messages(config, "warnings")
    )


def test_a_pools_file_with_a_syntax_error_is_reported_with_line_and_column_and_the_rest_still_loads(
    umx: UltramaxEnv,
) -> None:
    good = {"pools": {"primary": {"servers": {"memory": {"command": "mcp-server-memory"}}}}}
    config = load(umx, '{"pools": {', good)
    assert list(config.servers) == ["memory"]
    [problem] = config.errors
    assert problem.file.endswith("00.json") and "not valid JSON" in problem.message and "line 1" in problem.message


def test_server_names_are_unique_across_files_and_must_not_contain_the_namespace_separator(
    umx: UltramaxEnv,
) -> None:
    one = {"pools": {"primary": {"servers": {"memory": {"command": "a"}, "x__y": {"command": "b"}}}}}
    two = {"pools": {"extra": {"servers": {"memory": {"command": "c"}}}}}
    config = load(umx, one, two)
    errors = messages(config)
    assert any("01.json: pools.extra.servers.memory: server name already defined in" in e for e in errors)
    assert any("'x__y'" in e and "not contain '__'" in e for e in errors)
    assert config.servers["memory"].command == "a", "the first definition wins"


def test_a_servers_startup_timeout_is_thirty_seconds_unless_its_pool_or_the_server_itself_says_otherwise(
    umx: UltramaxEnv,
) -> None:
    doc = {"pools": {
        "primary": {"servers": {"plain": {"command": "a"}}},
        "slow": {"startup_timeout_ms": 20000, "servers": {"npx": {"command": "b"}, "fast": {"command": "c",
                                                                                   "startup_timeout_ms": 2000}}},
        "bad": {"startup_timeout_ms": 50, "servers": {"odd": {"command": "d", "startup_timeout_ms": "5s"}}},
    }}  # fmt: skip
    config = load(umx, doc)
    timeouts = {name: spec.startup_timeout_s for name, spec in config.servers.items()}
    assert timeouts == {"plain": 30.0, "npx": 20.0, "fast": 2.0}, "a bad pool value falls back; a bad server is out"
    errors = messages(config)
    assert any("pools.bad.startup_timeout_ms: must be at least 100, got 50" in e for e in errors), errors
    assert any('pools.bad.servers.odd.startup_timeout_ms: must be an integer, got "5s"' in e for e in errors), errors


def test_unknown_keys_suggest_the_key_that_was_meant(umx: UltramaxEnv) -> None:
    config = load(umx, {"pools": {"primary": {"servers": {"memory": {"command": "a", "argz": []}}}}})
    assert any("pools.primary.servers.memory.argz: unknown key (did you mean 'args'?)" in e for e in messages(config))


def test_variables_expand_from_the_environment_with_defaults_and_unset_ones_stay_literal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UMX_TOKEN", "t0k3n")
    monkeypatch.delenv("UMX_MISSING", raising=False)
    assert expand_vars("Bearer ${UMX_TOKEN}") == ("Bearer t0k3n", [])
    assert expand_vars("${UMX_MISSING:-postgres://localhost/dev}") == ("postgres://localhost/dev", [])
    assert expand_vars("${UMX_MISSING}") == ("${UMX_MISSING}", ["UMX_MISSING"])


def test_servers_inherit_only_allow_listed_variables_and_what_their_config_names() -> None:
    source = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "ANTHROPIC_API_KEY": "sk-secret", "AWS_SECRET": "x"}
    env = child_environment((), {"GITHUB_TOKEN": "gh"}, source=source)
    assert env == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "GITHUB_TOKEN": "gh"}
    assert "AWS_SECRET" in child_environment(("AWS_*",), source=source)


def test_a_user_pools_file_and_a_project_pools_file_are_both_read_and_project_servers_run_there(
    umx: UltramaxEnv,
) -> None:
    write_pools(umx, {"pools": {"primary": {"servers": {"memory": {"command": "a"}}}}})
    project = umx.project("webapp")
    local = project / ".claude" / "mcp" / "pools" / "imported.json"
    local.parent.mkdir(parents=True)
    local.write_text(json.dumps({"pools": {"project-specific": {"servers": {"db": {"command": "b"}}}}}))
    config = load_pool_config(umx.paths, project)
    assert config.files == [umx.claude_dir / "mcp" / "pools" / "primary.json", local]
    active = config.active(project_dir=project, mode="development")
    assert set(active.names) == {"memory", "db"}, "a server in the project's own pools file always runs there"
    assert set(load_pool_config(umx.paths).servers) == {"memory"}


def test_mcp_list_shows_what_runs_for_the_project_and_exits_1_while_a_problem_remains(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    from ultramax.cli.main import main

    write_pools(umx, SEED)
    project = umx.project("webapp")
    assert main(["--project-dir", str(project), "mcp", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    on = {s["name"]: s["active"] for s in listing["servers"]}
    assert on["filesystem"] and on["filesystem-backup"] and not on["alpaca"]
    assert listing["mode"] == "development"
    assert [r["pattern"] for r in listing["rules"]] == ["file:*", "github:*", "trade:*"]

    write_pools(umx, {"pools": {"extra": {"servers": {"broken": {"args": []}}}}}, "zz.json")
    assert main(["--project-dir", str(project), "mcp", "list"]) == 1
    err = capsys.readouterr().err
    assert "zz.json: pools.extra.servers.broken.command: required for a stdio server" in err


def test_a_server_that_fails_to_start_is_described_by_its_cause_not_by_the_task_group_around_it() -> None:
    closed = ExceptionGroup("unhandled errors in a TaskGroup", [MCPError(-32000, "Connection closed")])
    assert start_failure(closed) == "connection closed during start"
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [MCPError(-32602, "bad protocol version")])])
    assert start_failure(nested) == "handshake failed: bad protocol version"
    assert start_failure(ExceptionGroup("g", [TimeoutError()])) == "no answer to the handshake in time"
    two = ExceptionGroup("g", [ValueError("a"), ValueError("b")])
    assert start_failure(two).startswith("ExceptionGroup: g")


def test_mcp_list_with_only_a_broken_pools_file_names_it_instead_of_saying_there_is_none(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = umx.claude_dir / "mcp" / "pools" / "primary.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{", encoding="utf-8")
    assert main(["--project-dir", str(umx.project("webapp")), "mcp", "list"]) == 1
    out, err = capsys.readouterr()
    assert "no pools files" not in out and f"{broken}: not valid JSON" in err


def test_mcp_health_is_not_healthy_when_a_pools_file_it_was_given_cannot_be_read(
    umx: UltramaxEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "pools.json"
    assert main(["--project-dir", str(umx.project("webapp")), "mcp", "health", "--pools", str(missing), "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["healthy"] is False and f"{missing}: cannot read" in report["errors"][0]
    assert f"{missing}: cannot read" in err


def test_mcp_list_shows_the_servers_commands_and_urls_without_the_passwords_and_tokens_in_them(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    from ultramax.cli.main import main

    password, token = "Pg9sEcretPw42x", "ghp_a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8"
    pg = {"command": "npx", "args": ["-y", "@bytebase/dbhub", "--dsn", f"postgres://app:{password}@db/prod"]}
    cli = {"command": "db-mcp", "args": ["--password", password, "--port", "5432"]}
    gh = {"type": "http", "url": f"https://api.example.com/mcp?access_token={token}"}
    write_pools(umx, {"pools": {"primary": {"servers": {"pg": pg, "cli": cli, "gh": gh}}}})
    project = umx.project("webapp")
    assert main(["--project-dir", str(project), "mcp", "list", "--json"]) == 0
    as_json = capsys.readouterr().out
    assert main(["--project-dir", str(project), "mcp", "list"]) == 0
    as_text = capsys.readouterr().out
    assert password not in as_json + as_text and token not in as_json + as_text
    shown = {s["name"]: s.get("command") or s.get("url") for s in json.loads(as_json)["servers"]}
    assert shown["pg"] == ["npx", "-y", "@bytebase/dbhub", "--dsn", "postgres://app:[REDACTED:password]@db/prod"]
    assert shown["cli"] == ["db-mcp", "--password", "[REDACTED:secret]", "--port", "5432"]
    assert shown["gh"] == "https://api.example.com/mcp?access_token=[REDACTED:github-token]"
    assert "db-mcp --password [REDACTED:secret] --port 5432" in as_text
    assert load_pool_config(umx.paths, project).servers["pg"].args[-1].endswith(f"{password}@db/prod"), "still used"
