"""install/uninstall against real settings files: merging, idempotence, backups, refusal of broken files."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ultramax.install as install_mod
from ultramax.cli.base import CliContext
from ultramax.cli.install_cmd import register
from ultramax.errors import InstallError
from ultramax.install import (
    HOOK_EVENTS,
    TOOL_EVENTS,
    find_ultramax_hooks,
    hook_command,
    hook_timeout_seconds,
    install,
    is_ultramax_handler,
    plugin_dir,
    plugin_hooks_json,
    plugin_manifest,
    uninstall,
)
from ultramax.jsontext import edit_text
from ultramax.paths import Paths

USER_SETTINGS: dict[str, Any] = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "opus",
    "permissions": {
        "allow": ["Bash(npm test:*)", "Read(~/.zshrc)"],
        "deny": ["Read(./.env)", "Read(./secrets/**)"],
    },
    "statusLine": {"type": "command", "command": "~/.claude/statusline.sh", "padding": 0},
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "~/.claude/hooks/guard-bash.sh", "timeout": 10}],
            }
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send 'Claude is done'"}]}],
    },
    "env": {"DISABLE_TELEMETRY": "1"},
}
OLD_COMMAND = "/old/venv/bin/python3 -I -S /old/venv/lib/python3.11/site-packages/ultramax/hook/client.py {event}"


@dataclass
class Env:
    paths: Paths
    project: Path
    tmp: Path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return install_env(tmp_path, monkeypatch)


def install_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """A HOME with an empty ~/.claude, a project with .git, and ultramax's state under the test's folder."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("ULTRAMAX_HOME", str(tmp_path / "uh"))
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    monkeypatch.delenv("ULTRAMAX_HOOK_TIMEOUT_MS", raising=False)
    return Env(Paths.from_env(), project, tmp_path)


def write_settings(path: Path, data: dict[str, Any], indent: int = 2) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    return path.read_bytes()


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8-sig"))
    return data


def ours(data: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [r.handler for r in find_ultramax_hooks(data) if r.event == event]


def test_install_into_a_missing_file_registers_every_event_once(env: Env) -> None:
    result = install(env.paths, scope="user", project_dir=env.project)
    assert result.changed and result.added == len(HOOK_EVENTS) and result.replaced == 0
    assert result.backup is None  # nothing to back up
    data = read(env.paths.user_settings)
    assert list(data["hooks"]) == list(HOOK_EVENTS)
    for event in HOOK_EVENTS:
        assert len(ours(data, event)) == 1, event


def test_install_twice_changes_nothing_the_second_time(env: Env) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)
    first = install(env.paths, scope="user", project_dir=env.project)
    after_first = env.paths.user_settings.read_bytes()
    backups = sorted(env.paths.backups_dir.iterdir())
    second = install(env.paths, scope="user", project_dir=env.project)
    assert first.changed and not second.changed
    assert (second.added, second.replaced, second.removed, second.diff) == (0, 0, 0, "")
    assert second.backup is None
    assert env.paths.user_settings.read_bytes() == after_first
    assert sorted(env.paths.backups_dir.iterdir()) == backups  # no backup for a no-op


def test_install_keeps_the_users_own_hooks_and_keys_in_order(env: Env) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)
    install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    assert list(data) == list(USER_SETTINGS)  # top-level keys, same order
    for key in ("$schema", "model", "permissions", "statusLine", "env"):
        assert data[key] == USER_SETTINGS[key]
    pre = data["hooks"]["PreToolUse"]
    assert pre[0] == USER_SETTINGS["hooks"]["PreToolUse"][0]  # the user's Bash guard stays first, untouched
    assert pre[1]["matcher"] == "*" and is_ultramax_handler(pre[1]["hooks"][0])
    assert data["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]
    # the user's events keep their place; ultramax's new events come after them
    assert list(data["hooks"])[:2] == ["PreToolUse", "Stop"]


def test_install_keeps_the_files_indentation_so_the_diff_shows_only_additions(env: Env) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS, indent=4)
    result = install(env.paths, scope="user", project_dir=env.project)
    removed_lines = [line for line in result.diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    # at most the closing brackets that gain a comma; none of the user's content lines
    assert all(line.strip() in {"-}", "-]", "-},", "-],"} for line in removed_lines), removed_lines
    assert '\n    "model": "opus",' in env.paths.user_settings.read_text()


def test_an_older_ultramax_handler_is_replaced_in_place_not_duplicated(env: Env) -> None:
    settings = json.loads(json.dumps(USER_SETTINGS))
    old = {"type": "command", "command": OLD_COMMAND.format(event="PreToolUse"), "timeout": 60}
    mine = {"type": "command", "command": "~/bin/log-tool.sh"}
    settings["hooks"]["PreToolUse"].insert(0, {"matcher": "*", "hooks": [old, mine]})
    write_settings(env.paths.user_settings, settings)

    result = install(env.paths, scope="user", project_dir=env.project)

    assert result.replaced == 1 and result.added == len(HOOK_EVENTS) - 1
    pre = read(env.paths.user_settings)["hooks"]["PreToolUse"]
    assert len(pre) == 2  # no new group: the old handler's slot was reused
    assert pre[0]["hooks"][1] == mine and pre[1] == settings["hooks"]["PreToolUse"][1]
    new = pre[0]["hooks"][0]
    assert "/old/venv" not in new["command"] and str(install_mod.client_path()) in shlex.split(new["command"])


def test_a_handler_running_the_ultramax_hook_console_script_is_recognised_and_replaced(env: Env) -> None:
    plugin_style = {"type": "command", "command": "ultramax-hook Stop"}
    exec_form = {"type": "command", "command": "/home/u/.local/bin/ultramax-hook", "args": ["SessionStart"]}
    write_settings(
        env.paths.user_settings,
        {"hooks": {"Stop": [{"hooks": [plugin_style]}], "SessionStart": [{"hooks": [exec_form]}]}},
    )
    result = install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    assert result.replaced == 2
    assert len(ours(data, "Stop")) == 1 and len(ours(data, "SessionStart")) == 1
    assert ours(data, "Stop")[0]["command"] != "ultramax-hook Stop"


def test_duplicate_ultramax_handlers_collapse_to_one(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    dup = {"type": "command", "command": OLD_COMMAND.format(event="PostToolUse")}
    data["hooks"]["PostToolUse"].append({"matcher": "Edit|Write", "hooks": [dup]})
    write_settings(env.paths.user_settings, data)

    result = install(env.paths, scope="user", project_dir=env.project)

    after = read(env.paths.user_settings)
    assert result.removed == 1 and result.replaced == 0
    assert len(ours(after, "PostToolUse")) == 1
    assert after["hooks"]["PostToolUse"] == [after["hooks"]["PostToolUse"][0]]  # the emptied group is gone


def test_an_ultramax_handler_on_an_event_it_no_longer_uses_is_removed(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    data["hooks"]["CwdChanged"] = [{"hooks": [{"type": "command", "command": OLD_COMMAND.format(event="CwdChanged")}]}]
    write_settings(env.paths.user_settings, data)
    result = install(env.paths, scope="user", project_dir=env.project)
    assert result.removed == 1
    assert "CwdChanged" not in read(env.paths.user_settings)["hooks"]


def test_a_users_script_whose_name_merely_mentions_ultramax_is_not_touched(env: Env) -> None:
    theirs = [
        {"type": "command", "command": "~/bin/my-ultramax-hooks-logger.sh"},
        {"type": "command", "command": "python3 ~/ultramax/hook/client.py.bak"},
        {"type": "http", "url": "http://127.0.0.1:9/ultramax-hook"},
    ]
    write_settings(env.paths.user_settings, {"hooks": {"Stop": [{"hooks": theirs}]}})
    install(env.paths, scope="user", project_dir=env.project)
    uninstall(env.paths, scope="user", project_dir=env.project)
    assert read(env.paths.user_settings) == {"hooks": {"Stop": [{"hooks": theirs}]}}


def test_uninstall_removes_only_ultramax_handlers_and_what_it_emptied(env: Env) -> None:
    original = write_settings(env.paths.user_settings, USER_SETTINGS)
    install(env.paths, scope="user", project_dir=env.project)

    result = uninstall(env.paths, scope="user", project_dir=env.project)

    assert result.changed and result.removed == len(HOOK_EVENTS)
    data = read(env.paths.user_settings)
    assert data == USER_SETTINGS
    assert list(data) == list(USER_SETTINGS) and list(data["hooks"]) == list(USER_SETTINGS["hooks"])
    assert env.paths.user_settings.read_bytes() == original  # same indentation, same bytes
    assert not uninstall(env.paths, scope="user", project_dir=env.project).changed


def test_uninstall_drops_a_hooks_object_only_when_it_emptied_it(env: Env) -> None:
    write_settings(env.paths.user_settings, {"model": "sonnet"})
    install(env.paths, scope="user", project_dir=env.project)
    uninstall(env.paths, scope="user", project_dir=env.project)
    assert read(env.paths.user_settings) == {"model": "sonnet"}

    write_settings(env.paths.user_settings, {"hooks": {}, "model": "sonnet"})
    assert not uninstall(env.paths, scope="user", project_dir=env.project).changed
    assert read(env.paths.user_settings) == {"hooks": {}, "model": "sonnet"}


def test_uninstall_keeps_a_group_the_user_shares_with_ultramax(env: Env) -> None:
    mine = {"type": "command", "command": "~/bin/audit.sh"}
    old = {"type": "command", "command": OLD_COMMAND.format(event="PreToolUse")}
    write_settings(env.paths.user_settings, {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [old, mine]}]}})
    uninstall(env.paths, scope="user", project_dir=env.project)
    assert read(env.paths.user_settings) == {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [mine]}]}}


@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_corrupt_settings_are_refused_and_left_byte_identical(env: Env, action: str) -> None:
    broken = b'{\n  "model": "opus",\n  "hooks": {,}\n}\n'
    env.paths.user_settings.write_bytes(broken)
    func = install if action == "install" else uninstall
    with pytest.raises(InstallError) as err:
        func(env.paths, scope="user", project_dir=env.project)
    message = str(err.value)
    assert str(env.paths.user_settings) in message and "line 3" in message and "by hand" in message
    assert env.paths.user_settings.read_bytes() == broken
    assert not env.paths.backups_dir.exists()


def test_a_hooks_value_that_is_not_an_object_is_refused(env: Env) -> None:
    before = write_settings(env.paths.user_settings, {"hooks": ["PreToolUse"]})
    with pytest.raises(InstallError, match='"hooks" must be an object'):
        install(env.paths, scope="user", project_dir=env.project)
    assert env.paths.user_settings.read_bytes() == before


def test_a_private_backup_of_the_previous_file_is_written_before_the_change(env: Env) -> None:
    original = write_settings(env.paths.user_settings, USER_SETTINGS)
    result = install(env.paths, scope="user", project_dir=env.project)
    assert result.backup is not None and result.backup.parent == env.paths.backups_dir
    assert result.backup.read_bytes() == original
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.paths.backups_dir.stat().st_mode) == 0o700
    assert result.backup.name.startswith("user-settings.json.")


def test_dry_run_writes_nothing_and_returns_the_diff(env: Env) -> None:
    original = write_settings(env.paths.user_settings, USER_SETTINGS)
    result = install(env.paths, scope="user", project_dir=env.project, dry_run=True)
    assert result.changed and result.dry_run and result.backup is None
    assert result.diff.startswith(f"--- {env.paths.user_settings} (before)")
    assert '+            "matcher": "*",' in result.diff or '+        "matcher": "*",' in result.diff
    assert env.paths.user_settings.read_bytes() == original
    assert not env.paths.backups_dir.exists()
    assert not uninstall(env.paths, scope="user", project_dir=env.project, dry_run=True).changed


def test_dry_run_into_a_missing_file_creates_nothing(env: Env) -> None:
    result = install(env.paths, scope="local", project_dir=env.project, dry_run=True)
    assert result.changed and not result.path.exists() and not (env.project / ".claude").exists()


def test_the_settings_files_mode_is_kept(env: Env) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)
    env.paths.user_settings.chmod(0o600)
    install(env.paths, scope="user", project_dir=env.project)
    assert stat.S_IMODE(env.paths.user_settings.stat().st_mode) == 0o600


def test_a_symlinked_settings_file_is_written_through_the_link(env: Env) -> None:
    dotfiles = env.tmp / "dotfiles" / "claude-settings.json"
    write_settings(dotfiles, USER_SETTINGS)
    env.paths.user_settings.symlink_to(dotfiles)
    install(env.paths, scope="user", project_dir=env.project)
    assert env.paths.user_settings.is_symlink()
    assert ours(read(dotfiles), "PreToolUse")


def test_a_file_changed_by_someone_else_during_install_is_not_overwritten(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)

    def edit_while_claude_saves(text: str, old: Any, new: Any, *, indent: str) -> str | None:
        env.paths.user_settings.write_text('{"model": "haiku"}\n')
        return edit_text(text, old, new, indent=indent)

    monkeypatch.setattr("ultramax.install.edit_text", edit_while_claude_saves)
    with pytest.raises(InstallError, match="changed while"):
        install(env.paths, scope="user", project_dir=env.project)
    assert read(env.paths.user_settings) == {"model": "haiku"}


def test_project_and_local_scopes_write_the_projects_files(env: Env) -> None:
    shared = install(env.paths, scope="project", project_dir=env.project)
    local = install(env.paths, scope="local", project_dir=env.project)
    assert shared.path == env.project / ".claude" / "settings.json"
    assert local.path == env.project / ".claude" / "settings.local.json"
    assert ours(read(shared.path), "Stop") and ours(read(local.path), "Stop")
    assert not env.paths.user_settings.exists()


def test_project_scope_in_the_home_directory_is_refused(env: Env) -> None:
    home = Path(os.environ["HOME"])
    with pytest.raises(InstallError, match="--user"):
        install(env.paths, scope="project", project_dir=home)


def test_hook_command_names_the_interpreter_and_client_by_quoted_absolute_path(env: Env) -> None:
    python = env.tmp / "my venv" / "bin" / "python3"
    command = hook_command("PreToolUse", python=python, timeout_ms=3000)
    argv = shlex.split(command)
    assert argv == [str(python), "-I", "-S", str(install_mod.client_path()), "PreToolUse", "--timeout-ms=3000"]
    client = install_mod.client_path()
    assert client.is_absolute() and client.is_file() and str(client).endswith("ultramax/hook/client.py")
    # a venv's python is a symlink: it must be named as is, not resolved to the base interpreter
    assert shlex.split(hook_command("Stop", timeout_ms=5000))[0] == sys.executable


def test_timeouts_are_seconds_with_room_for_the_fallback_and_short_for_session_end(env: Env) -> None:
    assert hook_timeout_seconds("PreToolUse", 5000) == 15
    assert hook_timeout_seconds("PreToolUse", 1200) == 12
    assert hook_timeout_seconds("SessionEnd", 600_000) <= 5
    install(env.paths, scope="user", project_dir=env.project, timeout_ms=30_000)
    data = read(env.paths.user_settings)
    assert ours(data, "UserPromptSubmit")[0]["timeout"] == 40
    assert "--timeout-ms=30000" in ours(data, "UserPromptSubmit")[0]["command"]
    end = ours(data, "SessionEnd")[0]
    assert end["timeout"] <= 5 and "--timeout-ms=1000" in end["command"]


def test_the_timeout_defaults_to_the_hook_timeout_setting(env: Env) -> None:
    write_settings(env.paths.user_settings, {"ultramax": {"hookTimeoutMs": 2000}})
    install(env.paths, scope="user", project_dir=env.project)
    assert "--timeout-ms=2000" in ours(read(env.paths.user_settings), "Stop")[0]["command"]


def test_tool_events_match_every_tool_and_the_others_have_no_matcher(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    hooks = read(env.paths.user_settings)["hooks"]
    for event in HOOK_EVENTS:
        (group,) = hooks[event]
        assert group.get("matcher") == ("*" if event in TOOL_EVENTS else None), event


def test_the_shipped_plugin_hooks_json_is_the_generated_one() -> None:
    shipped = json.loads((plugin_dir() / "hooks" / "hooks.json").read_text(encoding="utf-8"))
    assert shipped == plugin_hooks_json()
    assert [r.event for r in find_ultramax_hooks(shipped)] == list(HOOK_EVENTS)


def test_the_plugin_manifest_is_generated_and_does_not_name_hooks_json() -> None:
    manifest = json.loads((plugin_dir() / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))
    assert manifest == plugin_manifest()
    assert manifest["name"] == "ultramax" and "hooks" not in manifest  # naming it again double-loads
    assert "ultramax-hook" in manifest["description"] and "PATH" in manifest["description"]


PRE_TOOL_USE = {
    "session_id": "658ea207-91bb-41ad-88e9-9a85c21e6c99",
    "transcript_path": "/tmp/none.jsonl",
    "cwd": "",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "ls -la", "description": "List files"},
    "tool_use_id": "toolu_01HXk3vQ9fzY2mW7r8sT4uLp",
}


def test_the_installed_command_run_by_sh_with_no_daemon_exits_0_and_prints_json_or_nothing(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    command = ours(read(env.paths.user_settings), "PreToolUse")[0]["command"]
    payload = dict(PRE_TOOL_USE, cwd=str(env.project))
    # exactly what Claude Code does: a non-interactive sh, a bare PATH, the payload on stdin
    proc = subprocess.run(
        ["/bin/sh", "-c", command],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ["HOME"],
            "CLAUDE_CONFIG_DIR": os.environ["CLAUDE_CONFIG_DIR"],
            "ULTRAMAX_HOME": os.environ["ULTRAMAX_HOME"],
            "ULTRAMAX_NO_AUTOSTART": "1",
            "CLAUDE_PROJECT_DIR": str(env.project),
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().strip()
    if out:
        reply = json.loads(out)
        assert reply["hookSpecificOutput"]["hookEventName"] == "PreToolUse"
    assert not env.paths.socket.exists()  # no daemon was started


# --- the CLI face ------------------------------------------------------------------------------------------


def run_cli(env: Env, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ultramax")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.func(args, CliContext(paths=env.paths, project_dir=env.project))
    return code


def test_cli_install_dry_run_json_reports_the_plan_and_writes_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(env, "install", "--local", "--dry-run", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] and report["dry_run"] and report["added"] == len(HOOK_EVENTS)
    assert report["path"] == str(env.project / ".claude" / "settings.local.json")
    assert not (env.project / ".claude").exists()


def test_cli_install_then_uninstall_round_trip_prints_short_summaries(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)
    assert run_cli(env, "install") == 0
    out = capsys.readouterr().out
    assert f"registered in {env.paths.user_settings}" in out and "previous file saved as" in out
    assert run_cli(env, "install") == 0
    assert "already up to date" in capsys.readouterr().out
    assert run_cli(env, "uninstall", "--user") == 0
    assert "removed from" in capsys.readouterr().out
    assert read(env.paths.user_settings) == USER_SETTINGS


def test_cli_refuses_two_scopes_at_once(env: Env) -> None:
    with pytest.raises(SystemExit):
        run_cli(env, "install", "--user", "--project")


def test_install_warns_when_claude_code_is_set_to_run_no_hooks(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    write_settings(env.paths.user_settings, {"disableAllHooks": True})
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["install"])
    assert args.func(args, CliContext(env.paths, env.project)) == 0
    err = capsys.readouterr().err
    assert "disableAllHooks: true" in err and "remove" in err


# --- uninstall gives the file back --------------------------------------------------------------------------

# A hand-written file: tab indents, CRLF line endings, a BOM, number and escape spellings json.dumps would change,
# keys in the user's order and no newline at the end -- everything a re-rendered file would lose.
HAND_WRITTEN = (
    "\ufeff{\r\n"
    '\t"model" : "opus",\r\n'
    '\t"env": {"BUDGET": 1.0e3, "NAME": "Ren\\u00e9e"},\r\n'
    '\t"hooks": {\r\n'
    '\t\t"Stop": [\r\n'
    '\t\t\t{"hooks": [{"type": "command", "command": "notify-send done"}]}\r\n'
    "\t\t]\r\n"
    "\t},\r\n"
    '\t"permissions": {"allow": ["Bash(npm test:*)"]}\r\n'
    "}"
).encode()


def only_removals(diff: str) -> bool:
    """Whether a diff only takes lines out (a kept line may lose the comma that separated it from a removed one)."""
    lines = diff.splitlines()
    removed = {line[1:] for line in lines if line.startswith("-") and not line.startswith("---")}
    added = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    return all(f"{line.rstrip()}," in {r.rstrip() for r in removed} for line in added)


def test_uninstall_of_a_file_nobody_changed_since_install_gives_back_its_exact_bytes(env: Env) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    assert env.paths.user_settings.read_bytes() != HAND_WRITTEN

    result = uninstall(env.paths, scope="user", project_dir=env.project)

    assert env.paths.user_settings.read_bytes() == HAND_WRITTEN
    assert result.restored and result.removed == len(HOOK_EVENTS)
    assert "as it was before `ultramax install`, byte for byte" in result.note and "nothing changed" in result.note
    assert not uninstall(env.paths, scope="user", project_dir=env.project).changed


def test_uninstall_after_a_later_edit_keeps_the_edit_and_takes_out_only_ultramax_entries_in_the_files_layout(
    env: Env,
) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    installed = env.paths.user_settings.read_bytes()
    edited = installed.replace(b'"model" : "opus"', b'"model": "sonnet",\r\n    "theme": "dark"')
    assert edited != installed
    env.paths.user_settings.write_bytes(edited)  # the user's own edit, after install

    result = uninstall(env.paths, scope="user", project_dir=env.project)

    after = env.paths.user_settings.read_bytes()
    assert not result.restored and "changed since `ultramax install` wrote it" in result.note
    assert "everything else kept as it is" in result.note
    data = read(env.paths.user_settings)
    assert (data["model"], data["theme"]) == ("sonnet", "dark")
    assert not find_ultramax_hooks(data)
    assert data["hooks"] == {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}
    assert only_removals(result.diff), result.diff
    assert after.startswith(b"\xef\xbb\xbf") and after.count(b"\r\n") == after.count(b"\n")
    assert after.endswith(installed[-3:])  # the end of the file as it stood (its newline, or none)


def test_uninstall_of_an_edited_file_keeps_the_users_own_layout_exactly(env: Env) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    # the user pastes ultramax's handlers into their own hand-written file: ultramax's layout is gone
    ours_now = read(env.paths.user_settings)["hooks"]["PreToolUse"]
    theirs = HAND_WRITTEN.replace(
        b'\t"hooks": {\r\n', b'\t"hooks": {\r\n\t\t"PreToolUse": ' + json.dumps(ours_now).encode() + b",\r\n"
    )
    env.paths.user_settings.write_bytes(theirs)

    result = uninstall(env.paths, scope="user", project_dir=env.project)

    assert result.removed == 1 and not result.restored
    assert env.paths.user_settings.read_bytes() == HAND_WRITTEN  # byte for byte what is left of their file


def test_uninstall_removes_a_file_that_install_created_and_nobody_changed(env: Env) -> None:
    install(env.paths, scope="local", project_dir=env.project)
    local = env.project / ".claude" / "settings.local.json"
    assert local.is_file()
    result = uninstall(env.paths, scope="local", project_dir=env.project)
    assert result.restored and "no file, as before `ultramax install`" in result.note
    assert not local.exists()


def test_a_file_install_created_and_the_user_then_edited_is_kept_with_the_edit(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    data["model"] = "opus"
    write_settings(env.paths.user_settings, data)
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert not result.restored and read(env.paths.user_settings) == {"model": "opus"}


def test_install_again_over_its_own_output_still_lets_uninstall_restore_the_first_original(env: Env) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    again = install(env.paths, scope="user", project_dir=env.project, timeout_ms=9000)  # an upgrade, a new timeout
    assert again.changed and again.replaced > 0
    assert uninstall(env.paths, scope="user", project_dir=env.project).restored
    assert env.paths.user_settings.read_bytes() == HAND_WRITTEN


def test_a_later_change_by_another_ultramax_command_is_kept_too(env: Env) -> None:
    write_settings(env.paths.user_settings, {"model": "opus"})
    install(env.paths, scope="user", project_dir=env.project)

    def set_timeout(data: dict[str, Any]) -> None:
        data["ultramax"] = {"hookTimeoutMs": 3000}

    install_mod.edit_settings(env.paths, "user", env.project, set_timeout)
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert not result.restored
    assert read(env.paths.user_settings) == {"model": "opus", "ultramax": {"hookTimeoutMs": 3000}}


def test_reinstalling_over_a_file_edited_since_the_first_install_says_the_last_install_found_its_hooks(
    env: Env,
) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    data = read(env.paths.user_settings)
    edited = {**data, "model": "opus", "ultramax": {"hookTimeoutMs": 3000}}
    write_settings(env.paths.user_settings, edited)
    assert install(env.paths, scope="user", project_dir=env.project).replaced  # the hooks take the new timeout
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert not result.restored
    assert "already held ultramax hooks (an earlier install's) when `ultramax install` last wrote it" in result.note
    assert read(env.paths.user_settings) == {"model": "opus", "ultramax": {"hookTimeoutMs": 3000}}


def test_a_file_that_held_ultramax_hooks_before_install_is_never_given_back_with_them(env: Env) -> None:
    old = {"type": "command", "command": OLD_COMMAND.format(event="Stop")}
    write_settings(env.paths.user_settings, {"model": "opus", "hooks": {"Stop": [{"hooks": [old]}]}})
    install(env.paths, scope="user", project_dir=env.project)
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert not result.restored and "already held ultramax hooks" in result.note
    assert read(env.paths.user_settings) == {"model": "opus"}


def test_a_backup_that_is_gone_makes_uninstall_take_out_only_ultramax_entries_and_say_why(env: Env) -> None:
    original = write_settings(env.paths.user_settings, USER_SETTINGS, indent=4)
    install(env.paths, scope="user", project_dir=env.project)
    for backup in env.paths.backups_dir.iterdir():
        backup.unlink()
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert not result.restored and "is gone" in result.note
    assert env.paths.user_settings.read_bytes() == original  # the same bytes all the same: the layout was kept


def test_a_dry_run_uninstall_shows_the_restore_and_writes_nothing(env: Env) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    installed = env.paths.user_settings.read_bytes()
    result = uninstall(env.paths, scope="user", project_dir=env.project, dry_run=True)
    assert result.restored and result.dry_run and result.backup is None
    assert str(install_mod.client_path()) in result.diff and only_removals(result.diff), result.diff
    assert env.paths.user_settings.read_bytes() == installed
    assert uninstall(env.paths, scope="user", project_dir=env.project).restored  # the record is still there


def test_cli_uninstall_says_whether_it_restored_the_file_or_took_entries_out(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(env.paths.user_settings, USER_SETTINGS)
    assert run_cli(env, "install") == 0
    assert run_cli(env, "uninstall") == 0
    out = capsys.readouterr().out
    assert "left: the file as it was before `ultramax install`, byte for byte" in out
    assert run_cli(env, "install") == 0
    data = read(env.paths.user_settings)
    data["model"] = "haiku"
    write_settings(env.paths.user_settings, data)
    capsys.readouterr()
    assert run_cli(env, "uninstall", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["restored"] is False and "changed since `ultramax install` wrote it" in report["note"]


def test_a_dry_run_shows_the_change_without_the_secrets_of_the_settings_around_it(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-ant-api03-" + "Zq8vR2mXk4Lp9TnW7bYc3Hd6Jf1Gs5Ae0Ku" * 2  # assembled: no scanner takes it for a leak
    password = "Pg9sEcretPw42x"
    settings = {"env": {"ANTHROPIC_API_KEY": key, "DATABASE_URL": f"postgres://app:{password}@db/prod"}}
    write_settings(env.paths.user_settings, settings)  # the hooks go in after env: its lines are the diff's context
    assert run_cli(env, "install", "--dry-run") == 0
    out = capsys.readouterr().out
    assert '     "ANTHROPIC_API_KEY": "[REDACTED:anthropic-key]",' in out and '+  "hooks": {' in out
    assert key not in out and password not in out
    assert run_cli(env, "install") == 0
    assert read(env.paths.user_settings)["env"] == settings["env"], "the file itself keeps them"
    capsys.readouterr()
    assert run_cli(env, "uninstall", "--dry-run") == 0
    out = capsys.readouterr().out
    assert '-  "hooks": {' in out and '     "ANTHROPIC_API_KEY": "[REDACTED:anthropic-key]",' in out
    assert key not in out and password not in out
