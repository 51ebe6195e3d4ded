"""ultramax doctor against real files, sockets and executables: each check finds the problem users hit."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ultramax.cli.base import CliContext
from ultramax.cli.install_cmd import register
from ultramax.doctor import Check, run_doctor
from ultramax.install import HOOK_EVENTS, install, plugin_dir
from ultramax.memory import embed
from ultramax.memory.models import MemoryStoreError, NewPassage
from ultramax.memory.store import SQLiteStore, database_path
from ultramax.modes import activate_mode
from ultramax.paths import Paths
from ultramax.prewarm import announce_proxy


@dataclass
class Env:
    paths: Paths
    project: Path
    tmp: Path
    claude: Path


def fake_claude(directory: Path, version: str = "2.1.240 (Claude Code)") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "claude"
    exe.write_text(f"#!/bin/sh\necho '{version}'\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path plus a long test name can exceed that
    path = Path(tempfile.mkdtemp(prefix="umx-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    home = short_tmp / "home"
    (home / ".claude").mkdir(parents=True)
    project = short_tmp / "proj"
    (project / ".git").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("ULTRAMAX_HOME", str(short_tmp / "uh"))
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    monkeypatch.delenv("ULTRAMAX_CLAUDE_BIN", raising=False)
    return Env(Paths.from_env(), project, short_tmp, fake_claude(short_tmp / "bin"))


def doctor(env: Env, **kwargs: Any) -> list[Check]:
    kwargs.setdefault("claude_bin", str(env.claude))
    kwargs.setdefault("managed_settings", ())
    return run_doctor(env.paths, env.project, **kwargs)


def only(checks: list[Check], name: str) -> Check:
    found = [c for c in checks if c.name == name]
    assert len(found) == 1, found
    return found[0]


def statuses(checks: list[Check], name: str) -> set[str]:
    return {c.status for c in checks if c.name == name}


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_doctor_reports_missing_hooks_when_nothing_is_installed(env: Env) -> None:
    hooks = only(doctor(env), "hooks")
    assert hooks.status == "fail" and "not registered" in hooks.message
    assert hooks.fix.startswith("ultramax install")


def test_doctor_names_the_events_a_partial_install_lacks(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d["hooks"].pop("Notification"))
    hooks = only(doctor(env), "hooks")
    assert hooks.status == "warn" and "Notification" in hooks.message

    edit(env.paths.user_settings, lambda d: d["hooks"].pop("PreToolUse"))
    hooks = only(doctor(env), "hooks")
    assert hooks.status == "fail" and "PreToolUse" in hooks.message  # no safety gate: a failure


def test_doctor_is_satisfied_with_a_fresh_install(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    checks = doctor(env)
    for name in (
        "claude",
        "settings",
        "disableAllHooks",
        "hooks",
        "duplicates",
        "command",
        "timeouts",
        "stages",
        "kill-switch",
        "models",
    ):
        assert statuses(checks, name) == {"ok"}, [c for c in checks if c.name == name]
    assert "2.1.240" in only(checks, "claude").message


def test_doctor_reports_hooks_registered_both_in_settings_and_by_the_plugin(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d.update(enabledPlugins={"ultramax@umx-tools": True}))
    cached = env.paths.claude_dir / "plugins" / "cache" / "umx-tools" / "ultramax" / "0.1.0"
    shutil.copytree(plugin_dir(), cached)

    dup = only(doctor(env), "duplicates")

    assert dup.status == "fail"
    assert "PreToolUse x2" in dup.message and "plugin ultramax@umx-tools" in dup.message
    assert "claude plugin disable ultramax@umx-tools" in dup.fix and "ultramax uninstall --user" in dup.fix


def test_doctor_reads_the_plugin_copy_named_in_installed_plugins_json(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d.update(enabledPlugins={"ultramax@umx-tools": True}))
    copy = env.tmp / "elsewhere" / "ultramax"
    shutil.copytree(plugin_dir(), copy)
    edit(copy / "hooks" / "hooks.json", lambda d: d["hooks"].pop("PreToolUse"))  # an older plugin version
    registry = env.paths.claude_dir / "plugins" / "installed_plugins.json"
    registry.parent.mkdir(parents=True)
    entry = {"scope": "user", "installPath": str(copy), "version": "0.0.9"}
    registry.write_text(json.dumps({"version": 2, "plugins": {"ultramax@umx-tools": [entry]}}))

    dup = only(doctor(env), "duplicates")

    assert dup.status == "fail" and "Stop x2" in dup.message and "PreToolUse" not in dup.message


def test_doctor_ignores_a_plugin_that_is_disabled(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d.update(enabledPlugins={"ultramax@umx-tools": True}))
    local = env.project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text('{"enabledPlugins": {"ultramax@umx-tools": false}}\n')  # local wins over user
    assert only(doctor(env), "duplicates").status == "ok"


def test_doctor_counts_one_command_in_two_settings_files_once_but_two_commands_twice(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    install(env.paths, scope="project", project_dir=env.project)
    assert only(doctor(env), "duplicates").status == "ok"  # Claude Code dedupes identical commands

    install(env.paths, scope="local", project_dir=env.project, timeout_ms=9000)
    dup = only(doctor(env), "duplicates")
    assert dup.status == "fail" and "ultramax uninstall --local" in dup.fix


def test_doctor_warns_when_the_embedding_model_cannot_run_and_says_what_degrades(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> embed.OnnxEmbedder:
        raise MemoryStoreError("the embedding model is missing: model/model.onnx; reinstall ultramax")

    monkeypatch.setattr(embed, "default_embedder", broken)
    models = only(doctor(env), "models")
    assert models.status == "warn" and "model.onnx" in models.message
    assert "keywords" in models.message and "fallback tier model" in models.message
    assert models.fix.startswith("reinstall ultramax")


def test_doctor_reports_a_stale_socket_left_by_a_dead_daemon(env: Env) -> None:
    env.paths.ensure_home()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(env.paths.socket))
    s.close()  # the file stays; nothing listens
    assert env.paths.socket.is_socket()

    daemon = only(doctor(env), "daemon")

    assert daemon.status == "warn" and "stale socket" in daemon.message
    assert daemon.fix.startswith("ultramax daemon start")


def test_doctor_reports_the_daemon_down_when_there_is_no_socket(env: Env) -> None:
    daemon = only(doctor(env), "daemon")
    assert daemon.status == "warn" and "not running" in daemon.message
    assert daemon.fix == "ultramax daemon start"


def test_doctor_reports_a_hook_whose_interpreter_no_longer_exists(env: Env) -> None:
    gone = env.tmp / "deleted-venv" / "bin" / "python3"
    install(env.paths, scope="user", project_dir=env.project, python=gone)
    commands = [c for c in doctor(env) if c.name == "command"]
    assert [c.status for c in commands] == ["fail"]
    assert str(gone) in commands[0].message and "does not exist" in commands[0].message
    assert "ultramax install --user" in commands[0].fix


def test_doctor_reports_a_hook_client_that_no_longer_exists(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    missing = "/nowhere/site-packages/ultramax/hook/client.py"
    edit(
        env.paths.user_settings,
        lambda d: d["hooks"]["Stop"][0]["hooks"][0].update(command=f"/bin/sh -I -S {missing} Stop"),
    )
    commands = [c for c in doctor(env) if c.name == "command" and c.status == "fail"]
    assert len(commands) == 1 and missing in commands[0].message


def test_doctor_warns_about_a_bare_command_missing_from_a_minimal_path(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = {"type": "command", "command": "ultramax-hook PreToolUse", "timeout": 15}
    env.paths.user_settings.write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [handler]}]}}))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (gone,) = [c for c in doctor(env) if c.name == "command"]
    assert gone.status == "fail" and "not on PATH" in gone.message

    bindir = env.tmp / "userbin"
    bindir.mkdir()
    (bindir / "ultramax-hook").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "ultramax-hook").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    (hidden,) = [c for c in doctor(env) if c.name == "command"]
    assert hidden.status == "warn" and "/usr/bin:/bin" in hidden.message and str(bindir) in hidden.message


def test_doctor_reports_a_corrupt_settings_file(env: Env) -> None:
    shared = env.project / ".claude" / "settings.json"
    shared.parent.mkdir()
    shared.write_text('{\n  "permissions": {"allow": ["Bash(ls)"],}\n}\n')
    bad = [c for c in doctor(env) if c.name == "settings" and c.status == "fail"]
    assert len(bad) == 1 and str(shared) in bad[0].message and "line 2" in bad[0].message


def test_doctor_fails_a_value_ultramax_cannot_use_and_names_the_key(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d.update(safety={"level": "max"}))
    bad = [c for c in doctor(env) if c.name == "settings" and c.status == "fail"]
    assert len(bad) == 1 and "safety.level" in bad[0].message and '"max"' in bad[0].message
    assert "config validate" in bad[0].fix
    # the file's own line says only that it parses, not that it is "valid" next to the failure in it
    (parsed,) = [c for c in doctor(env) if c.name == "settings" and c.status == "ok"]
    assert parsed.message == f"valid JSON: {env.paths.user_settings}"


@pytest.mark.parametrize(
    ("routing", "key"),
    [
        ({"defaultModel": "gpt-4"}, "routing.defaultModel"),
        ({"fallbackChain": ["opus", "gpt"]}, "routing.fallbackChain"),
        ({"tierModels": ["gigantic=x"]}, "routing.tierModels"),
        ({"catalogFile": "no-such-catalog.toml"}, "routing.catalogFile"),
    ],
)
def test_doctor_fails_a_routing_value_the_catalog_cannot_use_and_names_the_key(
    env: Env, routing: dict[str, Any], key: str
) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d.update(routing=routing))
    bad = [c for c in doctor(env) if c.name == "settings" and c.status == "fail"]
    assert len(bad) == 1 and bad[0].message.startswith(f"{env.paths.user_settings}: {key}: ")


def test_doctor_warns_that_a_memory_provider_not_built_yet_leaves_memory_off(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    assert not [c for c in doctor(env) if c.name == "settings" and c.status != "ok"]
    edit(env.paths.user_settings, lambda d: d.update(memory={"provider": "postgres"}))
    warned = [c for c in doctor(env) if c.name == "settings" and c.status == "warn"]
    assert len(warned) == 1
    assert "'postgres'" in warned[0].message and str(env.paths.user_settings) in warned[0].message
    assert "nothing is remembered" in warned[0].message and '"embedded"' in warned[0].fix


def test_doctor_asks_for_an_unreadable_settings_file_to_be_fixed_before_install(env: Env) -> None:
    env.paths.user_settings.write_text('{"hooks": {}', encoding="utf-8")  # install refuses to touch it
    hooks = only(doctor(env), "hooks")
    assert hooks.status == "fail" and "cannot be read" in hooks.message
    assert hooks.fix.startswith(f"fix {env.paths.user_settings} by hand first")


def test_doctor_fails_a_damaged_memory_database_and_says_how_to_recover(env: Env) -> None:
    assert only(doctor(env), "memory").status == "ok"  # none yet
    store = SQLiteStore.open(env.paths)
    store.ensure_project("acme")
    store.add_passages("acme", [NewPassage(f"decision {i}: billing listens on port 81{i}") for i in range(200)])
    store.close()
    assert only(doctor(env), "memory").status == "ok"
    path = database_path(env.paths)
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 2048)
    memory = only(doctor(env), "memory")
    assert memory.status == "fail" and "damaged" in memory.message
    assert "memory import" in memory.fix and f"{path}.broken" in memory.fix


def test_doctor_fails_a_full_disk_where_ultramax_writes(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert only(doctor(env), "disk").status == "ok"
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 1000, 0, 0, 0, 255))  # no block free
    monkeypatch.setattr(os, "statvfs", lambda _: full)
    disk = only(doctor(env), "disk")
    assert disk.status == "fail" and "is full" in disk.message and disk.fix == "free some disk space"


def test_doctor_reports_disable_all_hooks(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    local = env.project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text('{"disableAllHooks": true}\n')
    check = only(doctor(env), "disableAllHooks")
    assert check.status == "fail" and str(local) in check.message


def test_doctor_reports_managed_settings_that_allow_only_managed_hooks(env: Env) -> None:
    managed = env.tmp / "managed-settings.json"
    managed.write_text('{"allowManagedHooksOnly": true}\n')
    check = only(doctor(env, managed_settings=(managed,)), "disableAllHooks")
    assert check.status == "fail" and "allowManagedHooksOnly" in check.message


def test_doctor_reports_ultramax_home_and_socket_readable_by_others(env: Env) -> None:
    env.paths.ensure_home()
    env.paths.home.chmod(0o755)
    env.paths.socket.write_text("")  # a stand-in file: doctor only looks at its mode here
    env.paths.socket.chmod(0o666)
    bad = [c for c in doctor(env) if c.name == "permissions"]
    assert {c.status for c in bad} == {"fail"} and len(bad) == 2
    assert any(c.fix == f"chmod 700 {env.paths.home}" for c in bad)
    assert any(c.fix.startswith(f"chmod 600 {env.paths.socket}") for c in bad)


def test_doctor_warns_while_the_kill_switch_is_engaged(env: Env) -> None:
    env.paths.kill_switch.write_text("engaged by test: incident\n")
    check = only(doctor(env), "kill-switch")
    assert check.status == "warn" and "incident" in check.message and check.fix == "ultramax kill off"


def test_doctor_reports_a_hook_timeout_given_in_milliseconds(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    edit(env.paths.user_settings, lambda d: d["hooks"]["PreToolUse"][0]["hooks"][0].update(timeout=5000))
    check = only(doctor(env), "timeout")
    assert check.status == "fail" and "SECONDS" in check.message


def test_doctor_reports_claude_code_missing_or_too_old(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    missing = only(doctor(env, claude_bin=None), "claude")
    assert missing.status == "fail" and "ULTRAMAX_CLAUDE_BIN" in missing.fix

    monkeypatch.setenv("ULTRAMAX_CLAUDE_BIN", str(fake_claude(env.tmp / "old", "2.0.10 (Claude Code)")))
    old = only(doctor(env, claude_bin=None), "claude")
    assert old.status == "warn" and "StopFailure" in old.message and "claude update" in old.fix


def test_doctor_finds_claude_code_installed_outside_path(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    fake_claude(Path(os.environ["HOME"]) / ".local" / "bin")
    check = only(doctor(env, claude_bin=None), "claude")
    assert check.status == "warn" and "not on PATH" in check.message and "export PATH" in check.fix


def run_cli(env: Env, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ultramax")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.func(args, CliContext(paths=env.paths, project_dir=env.project))
    return code


def test_doctor_cli_exits_1_on_a_failure_and_lists_every_check_as_json(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ULTRAMAX_CLAUDE_BIN", str(env.claude))
    assert run_cli(env, "doctor", "--json") == 1  # nothing installed yet
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "fail"
    assert {"claude", "hooks", "daemon"} <= {c["name"] for c in report["checks"]}

    install(env.paths, scope="user", project_dir=env.project)
    assert run_cli(env, "doctor") == 0  # only warnings left (the daemon is down)
    out = capsys.readouterr().out
    assert f"all {len(HOOK_EVENTS)} events registered" in out and "fix: ultramax daemon start" in out


def test_doctor_warns_when_installed_hooks_wait_longer_than_the_configured_timeout(env: Env) -> None:
    install(env.paths, scope="user", project_dir=env.project)
    assert only(doctor(env), "timeouts").status == "ok"
    edit(env.paths.user_settings, lambda d: d.setdefault("ultramax", {}).update(hookTimeoutMs=2000))
    stale = only(doctor(env), "timeouts")
    assert stale.status == "warn" and "PreToolUse waits 5000 ms" in stale.message
    assert stale.fix.startswith("ultramax install")
    install(env.paths, scope="user", project_dir=env.project)
    assert only(doctor(env), "timeouts").status == "ok"


def test_doctor_warns_when_a_project_pins_a_stage_list_missing_stages_its_mode_now_has(env: Env) -> None:
    assert only(doctor(env), "stages").status == "ok"
    settings = env.project / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    old = ["auth_validation", "safety", "memory_sync", "enrichment", "audit", "telemetry"]  # before skills existed
    settings.write_text(json.dumps({"ultramax": {"mode": "development", "hookStages": old}}))
    stale = only(doctor(env), "stages")
    assert stale.status == "warn" and "without route_prewarm, skills" in stale.message
    assert stale.fix.startswith("ultramax mode activate development")
    activate_mode(env.project, "development")
    assert only(doctor(env), "stages").status == "ok"


def test_doctor_tells_a_running_proxy_from_a_stale_announcement(env: Env) -> None:
    assert only(doctor(env), "proxy").status == "ok"
    with socket.socket() as listening:  # a proxy's listening socket: it answers a connection
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        announce_proxy(env.paths, url)
        running = only(doctor(env), "proxy")
        assert running.status == "ok" and url in running.message
    stale = only(doctor(env), "proxy")  # the port is closed now: the proxy died without withdrawing
    assert stale.status == "warn" and "does not answer" in stale.message
    assert stale.fix.startswith("ultramax proxy")
