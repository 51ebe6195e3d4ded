"""MCP tools of servers nobody described: the verb in the name, the annotations, and what the arguments hold."""

from __future__ import annotations

from typing import Any

import pytest

from tests.safety.conftest import Gate
from ultramax.safety.files import mcp_verbs
from ultramax.safety.sanitize import SanitisationLayer


@pytest.mark.parametrize(
    ("name", "verbs"),
    [
        ("get_issue", {"read"}), ("list_directory", {"read"}), ("search_code", {"read"}), ("read_file", {"read"}),
        ("create_issue", {"write"}), ("delete_repository", {"destroy"}), ("dropTable", {"destroy"}),
        ("purge_cache", {"destroy"}), ("run_command", {"exec"}), ("place_order", {"money"}),
        ("cancel_all_orders", {"destroy", "money"}), ("create_refund", {"write", "money"}),
        ("update_member_role", {"write", "admin"}), ("frobnicate", {"unknown"}),
    ],
)  # fmt: skip
def test_the_verb_in_an_mcp_tool_name_says_what_kind_of_operation_it_is(name: str, verbs: set[str]) -> None:
    assert mcp_verbs(name) == frozenset(verbs)


def decide(gate: Gate, tool: str, data: dict[str, Any]) -> str:
    return gate.permission(tool=tool, data=data)


def test_reads_and_ordinary_writes_of_unknown_servers_are_allowed(gate: Gate) -> None:
    assert decide(gate, "mcp__github__list_issues", {"owner": "acme"}) == "allow"
    assert (
        decide(gate, "mcp__github__create_issue", {"title": "rm -rf in cleanup", "body": "git reset --hard"}) == "allow"
    )
    assert decide(gate, "mcp__memory__create_entities", {"entities": []}) == "allow"


def test_destructive_money_and_admin_verbs_are_put_to_the_user(gate: Gate) -> None:
    assert decide(gate, "mcp__github__delete_repository", {"repo": "api"}) == "ask"
    assert decide(gate, "mcp__stripe__create_refund", {"charge": "ch_1"}) == "ask"
    assert decide(gate, "mcp__acme__update_member_role", {"role": "owner"}) == "ask"


def test_sql_in_arguments_is_judged_by_the_database_rules(gate: Gate) -> None:
    assert decide(gate, "mcp__postgres__query", {"sql": "DROP TABLE users;"}) == "deny"
    assert decide(gate, "mcp__postgres__query", {"sql": "DELETE FROM users"}) == "ask"
    assert decide(gate, "mcp__postgres__query", {"sql": "SELECT * FROM users WHERE id = 1"}) == "allow"


def test_paths_in_arguments_are_judged_by_the_file_rules(gate: Gate) -> None:
    creds = str(gate.home / ".aws" / "credentials")
    assert decide(gate, "mcp__filesystem__read_file", {"path": creds}) == "deny"
    assert decide(gate, "mcp__filesystem__read_file", {"path": str(gate.project / "src" / "app.py")}) == "allow"
    settings = str(gate.env.claude_dir / "settings.json")
    assert decide(gate, "mcp__filesystem__write_file", {"path": settings, "content": "{}"}) == "deny"


def test_commands_given_to_a_shell_server_are_judged_by_the_shell_rules(gate: Gate) -> None:
    assert decide(gate, "mcp__shell__run_command", {"command": "rm -rf ~"}) == "deny"
    assert decide(gate, "mcp__shell__run_command", {"command": "ls -la"}) == "allow"
    assert decide(gate, "mcp__shell__run_command", {}) == "ask"


def test_annotations_from_the_gateway_count(gate: Gate) -> None:
    request = gate.request(tool="mcp__acme__frobnicate", data={})
    assert SanitisationLayer().check(request) is None
    request.metadata["annotations"] = {"destructiveHint": True}
    verdict = SanitisationLayer().check(request)
    assert verdict is not None and verdict.permission == "ask" and verdict.rule == "mcp.destructive"


def test_servers_with_a_known_risk_table_are_left_to_that_layer(gate: Gate) -> None:
    request = gate.request(tool="mcp__alpaca__place_order", data={"symbol": "AAPL", "qty": 1, "side": "buy"})
    assert SanitisationLayer().check(request) is None
    assert gate.engine.evaluate(request).permission in ("ask", "deny")
