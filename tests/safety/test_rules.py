"""Rule packs as data: valid, covering every category, and extended or overridden from the user's settings."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import UltramaxEnv
from tests.safety.conftest import Gate
from ultramax.config import Settings
from ultramax.safety.pathclass import PathContext
from ultramax.safety.queries import sql_classes
from ultramax.safety.rules import MODES, ClaudePattern, RuleError, load_pack, ruleset_for

REQUIRED_CATEGORIES = {
    "destructive_files", "git", "disk", "system", "permissions", "rce", "secrets", "exfiltration", "database",
    "infrastructure", "containers", "persistence", "tamper", "files", "mcp", "shell",
}  # fmt: skip


def test_every_packaged_rule_has_a_unique_id_a_category_a_reason_and_a_decision_for_every_mode() -> None:
    pack = load_pack()
    ids = Counter(r.id for r in pack.rules)
    assert [i for i, n in ids.items() if n > 1] == []
    for rule in pack.rules:
        assert rule.reason and rule.reason != rule.id, rule.id
        assert {rule.decision(m) for m in MODES} <= {"allow", "ask", "deny"}, rule.id
        assert rule.id.split(".")[0] in (
            "fs",
            "git",
            "disk",
            "system",
            "perms",
            "rce",
            "secrets",
            "exfil",
            "db",
            "infra",
            "containers",
            "persistence",
            "tamper",
            "files",
            "mcp",
            "shell",
        )


def test_the_packs_cover_every_category_of_the_issue() -> None:
    assert {r.category for r in load_pack().rules} >= REQUIRED_CATEGORIES


def test_structural_doubt_is_asked_in_the_lenient_modes_and_denied_in_trading_mode() -> None:
    rules = {r.id: r for r in load_pack().rules}
    for rid in ("shell.unparseable", "shell.dynamic_command", "shell.depth_limit", "shell.too_large"):
        assert rules[rid].decision("development") == "ask"
        assert rules[rid].decision("state-of-witness") == "ask"
        assert rules[rid].decision("alphaforge") == "deny"


@pytest.mark.parametrize(
    ("sql", "classes"),
    [
        ("DROP TABLE users", {"drop_table"}), ("drop   database prod", {"drop_database"}),
        ("SELECT 1; TRUNCATE orders", {"truncate"}), ("DELETE FROM users", {"delete_all"}),
        ("DELETE FROM users WHERE id = 1", set()), ("DELETE FROM users WHERE 1=1", {"delete_all"}),
        ("UPDATE accounts SET balance = 0", {"update_all"}), ("UPDATE t SET a = 1 WHERE id = 2", set()),
        ("ALTER TABLE users DROP COLUMN email", {"alter_drop"}), ("SELECT 'DROP TABLE x' AS note", set()),
        ("-- DROP TABLE users\nSELECT 1", set()), ("db.dropDatabase()", {"drop_database"}),
        ("db.users.deleteMany({})", {"delete_all"}), ("db.users.deleteMany({status: 'old'})", set()),
    ],
)  # fmt: skip
def test_sql_is_classified_per_statement_with_literals_and_comments_removed(sql: str, classes: set[str]) -> None:
    assert sql_classes(sql) == frozenset(classes)


def test_claude_code_rule_syntax_matches_commands_paths_and_mcp_tools() -> None:
    push = ClaudePattern.parse("Bash(git push:*)")
    assert push.matches_tool("Bash") and push.matches_command("git push --force origin main")
    assert push.matches_command("git push") and not push.matches_command("git pushy")
    assert ClaudePattern.parse("Bash(npm run *)").matches_command("npm run build")
    assert not ClaudePattern.parse("Bash(npm run build)").matches_command("npm run build:prod")
    ctx = PathContext("/home/dev", "/home/dev/work/demo", "/home/dev/work/demo")
    env = ClaudePattern.parse("Read(./.env)")
    assert env.matches_tool("Read") and env.matches_path("/home/dev/work/demo/.env", ctx)
    assert not env.matches_path("/home/dev/work/demo/.env.example", ctx)
    assert ClaudePattern.parse("Edit(~/.bashrc)").matches_tool("Write")
    assert ClaudePattern.parse("Read(**/*.key)").matches_path("/home/dev/work/demo/certs/a.key", ctx)
    assert ClaudePattern.parse("Read(//etc/**)").matches_path("/etc/ssl/x.pem", ctx)
    assert ClaudePattern.parse("mcp__github").matches_tool("mcp__github__create_issue")
    assert ClaudePattern.parse("mcp__github__create_*").matches_tool("mcp__github__create_issue")
    assert not ClaudePattern.parse("mcp__github").matches_tool("mcp__githubx__create_issue")
    with pytest.raises(RuleError):
        ClaudePattern.parse("Bash(unclosed")


def test_an_allow_rule_in_the_settings_lifts_the_packaged_findings_of_the_commands_it_matches(
    gate: Gate, umx: UltramaxEnv
) -> None:
    assert gate.permission("git push --force-with-lease origin feature/x") == "ask"
    umx.update_user_settings({"safety": {"allow": ["Bash(git push:*)"]}})
    assert gate.permission("git push --force-with-lease origin feature/x") == "allow"
    assert gate.permission("git push --force-with-lease origin feature/x && git reset --hard") == "deny"


def test_a_deny_or_ask_rule_in_the_settings_applies_to_commands_the_packs_allow(gate: Gate, umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": {"deny": ["Bash(npm publish:*)"], "ask": ["Bash(git push:*)"]}})
    decision = gate.decide("npm publish --access public")
    assert decision.permission == "deny" and decision.rule == "safety.deny[0]"
    assert "Bash(npm publish:*)" in decision.reason
    assert gate.permission("sudo git push origin main") == "ask"


def test_read_and_edit_deny_rules_also_cover_the_shell_reading_or_writing_the_same_path(
    gate: Gate, umx: UltramaxEnv
) -> None:
    umx.update_user_settings({"safety": {"deny": ["Read(./config/*.yml)", "Edit(./docs/**)"]}})
    assert gate.permission("cat config/prod.yml") == "deny"
    assert gate.permission(tool="Read", data={"file_path": str(gate.project / "config" / "prod.yml")}) == "deny"
    assert gate.permission("echo hi > docs/index.md") == "deny"
    assert gate.permission("cat README.md") == "allow"


def test_a_packaged_rule_can_be_changed_or_disabled_by_id_and_new_rules_added(gate: Gate, umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": {"rules": [
        {"id": "git.push.force_lease", "decision": "deny"},
        {"id": "git.abort", "enabled": False},
        {"id": "custom.no-deploy", "category": "infrastructure", "decision": {"default": "ask", "alphaforge": "deny"},
         "reason": "deploys to production", "match": {"command": ["make"], "args_any": ["deploy*"]}},
        "ask Bash(npm version:*)",
    ]}})  # fmt: skip
    assert gate.permission("git push --force-with-lease origin x") == "deny"
    assert gate.permission("git rebase --abort") == "allow"
    decision = gate.decide("make deploy-prod")
    assert (decision.permission, decision.rule) == ("ask", "custom.no-deploy")
    assert gate.permission("make deploy-prod", mode="alphaforge") == "deny"
    assert gate.permission("npm version patch") == "ask"


def test_the_guards_own_protection_cannot_be_lifted_or_lowered_from_the_settings(gate: Gate, umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": {
        "allow": ["Bash(rm:*)", "Bash(sed:*)"],
        "rules": [{"id": "tamper.guard_files", "enabled": False}, {"id": "tamper.kill_switch", "decision": "allow"}],
    }})  # fmt: skip
    assert gate.permission("rm ~/.claude/KILL_SWITCH") == "deny"
    assert gate.permission("sed -i 's/x//' ~/.claude/settings.json") == "deny"
    problems = ruleset_for(gate.request("ls").settings).problems
    assert any("tamper.guard_files" in p for p in problems) and any("tamper.kill_switch" in p for p in problems)


def test_a_malformed_user_rule_is_reported_as_a_problem_and_the_rest_still_apply(umx: UltramaxEnv) -> None:
    settings = Settings.defaults()
    settings.values["safety.rules"] = [{"id": "Bad Id!", "decision": "deny"}, "maybe Bash(ls)", {"id": "ok.rule",
                                       "decision": "ask", "match": {"command": ["ls"], "bogus": 1}}]  # fmt: skip
    settings.values["safety.deny"] = ["Bash(curl:*)", "Bash(unclosed"]
    ruleset = ruleset_for(settings)
    assert len(ruleset.problems) == 4
    assert [p.pattern.text for p in ruleset.patterns] == ["Bash(curl:*)"]
