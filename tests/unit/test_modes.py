"""Project modes: explicit marker, else detection by whole path part, else development; activation edits safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main
from ultramax.config import load_settings
from ultramax.errors import ConfigError, ModeError
from ultramax.modes import activate_mode, detect_mode, get_mode, load_modes


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/dev/src/alphaforge", "alphaforge"),
        ("/home/dev/src/alphaforge/backtest/engine", "alphaforge"),
        ("/home/dev/src/my_trading_bot", "alphaforge"),
        ("/home/dev/src/AlphaForge-v2", "alphaforge"),
        ("/home/dev/art/state-of-witness", "state-of-witness"),
        ("/home/dev/art/touchdesigner", "state-of-witness"),
        ("/home/dev/src/systematic", "development"),
        ("/home/dev/src/alphaforged", "development"),
        ("/home/dev/src/tradingview-clone", "development"),
        ("/home/dev/src/webapp", "development"),
    ],
)
def test_the_mode_is_detected_from_whole_parts_of_the_project_path(path: str, expected: str) -> None:
    selection = detect_mode(Path(path))
    assert selection.mode.name == expected
    if expected == "development":
        assert selection.source == "default"
    else:
        assert selection.source.startswith("path: ")


def test_no_project_means_development() -> None:
    selection = detect_mode(None)
    assert (selection.mode.name, selection.source) == ("development", "default")


def test_an_explicit_marker_wins_over_the_path(umx: UltramaxEnv) -> None:
    project = umx.project("alphaforge", {"ultramax": {"mode": "development"}})
    settings = load_settings(umx.paths, project)
    selection = detect_mode(project, settings)
    assert selection.mode.name == "development"
    assert selection.source == f"marker: {project / '.claude' / 'settings.json'}"


def test_without_a_marker_the_path_decides_even_with_settings(umx: UltramaxEnv) -> None:
    project = umx.project("alphaforge")
    selection = detect_mode(project, load_settings(umx.paths, project))
    assert selection.mode.name == "alphaforge"
    assert selection.mode.strict


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("trading", "alphaforge"),
        ("ALPHAFORGE", "alphaforge"),
        ("creative", "state-of-witness"),
        ("witness", "state-of-witness"),
        ("state_of_witness", "state-of-witness"),
        (" dev ", "development"),
        ("default", "development"),
    ],
)
def test_modes_are_found_by_name_or_alias_case_insensitively(name: str, expected: str) -> None:
    assert get_mode(name).name == expected


def test_an_unknown_mode_error_lists_the_valid_names() -> None:
    with pytest.raises(ModeError) as err:
        get_mode("scalping")
    assert str(err.value) == "unknown mode 'scalping'; choose one of: alphaforge, state-of-witness, development"


def test_only_trading_has_the_strict_failure_policy() -> None:
    assert {name: mode.strict for name, mode in load_modes().items()} == {
        "alphaforge": True,
        "state-of-witness": False,
        "development": False,
    }
    assert get_mode("trading").to_dict()["hook_stages"][0] == "auth_validation"


def test_activating_a_mode_writes_marker_stages_skills_servers_and_level_and_keeps_every_other_key(
    umx: UltramaxEnv,
) -> None:
    original = {
        "permissions": {"allow": ["Bash(npm test:*)"], "deny": ["Read(.env)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]},
        "env": {"NODE_ENV": "test"},
        "safety": {"rateLimitPerMinute": 120, "level": "minimal"},
        "ultramax": {"hookTimeoutMs": 3000},
    }
    project = umx.project("desk", original)
    written = activate_mode(project, "trading")
    assert written == project / ".claude" / "settings.json"
    data = json.loads(written.read_text(encoding="utf-8"))
    mode = get_mode("alphaforge")
    assert data["ultramax"] == {
        "hookTimeoutMs": 3000,
        "mode": "alphaforge",
        "hookStages": list(mode.hook_stages),
        "skills": list(mode.required_skills),
        "mcpServers": list(mode.mcp_servers),
    }
    assert data["safety"] == {"rateLimitPerMinute": 120, "level": "maximum"}
    for key in ("permissions", "hooks", "env"):
        assert data[key] == original[key]
    assert list(data) == list(original), "key order is kept"
    settings = load_settings(umx.paths, project)
    assert settings.problems == []
    assert detect_mode(project, settings).mode.name == "alphaforge"


def test_activating_a_mode_in_a_project_without_settings_creates_them(umx: UltramaxEnv) -> None:
    project = umx.project("notes")
    path = activate_mode(project, "creative")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["ultramax"]["mode"] == "state-of-witness"
    assert data["safety"] == {"level": "standard"}


@pytest.mark.parametrize(
    "text",
    ['{"permissions": {"allow": ["Bash"]},', '{"ultramax": "alphaforge"}', '{"safety": ["maximum"]}'],
    ids=["not-json", "ultramax-not-object", "safety-not-object"],
)
def test_activation_refuses_a_file_it_cannot_edit_safely_and_leaves_it_untouched(umx: UltramaxEnv, text: str) -> None:
    project = umx.project("desk")
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    before = os.stat(path)
    with pytest.raises(ConfigError) as err:
        activate_mode(project, "development")
    assert str(path) in str(err.value)
    after = os.stat(path)
    assert path.read_text(encoding="utf-8") == text
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"], "no temporary file is left"


def test_activating_an_unknown_mode_changes_nothing(umx: UltramaxEnv) -> None:
    project = umx.project("desk")
    with pytest.raises(ModeError):
        activate_mode(project, "yolo")
    assert not (project / ".claude").exists()


def test_a_mode_alias_in_settings_is_the_mode_it_names(umx: UltramaxEnv) -> None:
    project = umx.project("desk")
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text('{"ultramax": {"mode": "trading"}}', encoding="utf-8")
    settings = load_settings(umx.paths, project)
    assert settings.problems == []
    assert detect_mode(project, settings).mode.name == "alphaforge"


def test_activation_writes_through_a_symlink_keeping_line_endings_and_bom(umx: UltramaxEnv) -> None:
    project = umx.project("desk")
    shared = umx.root / "team-settings.json"
    shared.write_bytes(b'\xef\xbb\xbf{\r\n\t"permissions": {"allow": ["Bash(ls)"]}\r\n}\r\n')
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").symlink_to(shared)
    activate_mode(project, "alphaforge")
    assert (project / ".claude" / "settings.json").is_symlink(), "the link is kept, its target edited"
    raw = shared.read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf{\r\n\t"permissions"') and b"\n" not in raw.replace(b"\r\n", b"")
    assert json.loads(raw.decode("utf-8-sig"))["ultramax"]["mode"] == "alphaforge"


def test_activation_refuses_a_read_only_settings_file(umx: UltramaxEnv) -> None:
    project = umx.project("desk")
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o444)
    with pytest.raises(ConfigError, match="read-only"):
        activate_mode(project, "alphaforge")
    assert path.read_text(encoding="utf-8") == "{}"


def test_activation_from_the_home_folder_never_writes_the_users_own_settings(umx: UltramaxEnv) -> None:
    with pytest.raises(ConfigError, match="is your user settings file") as refused:
        activate_mode(umx.home, "alphaforge")
    assert "a mode is set per project" in str(refused.value) and "--user" not in str(refused.value)
    assert "alphaforge" not in umx.user_settings.read_text(encoding="utf-8")


def test_activating_a_mode_that_the_local_settings_override_says_so_and_fails(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    project = umx.project("desk")
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").write_text('{"ultramax": {"mode": "development"}}', encoding="utf-8")
    assert main(["--project-dir", str(project), "mode", "activate", "alphaforge"]) == 1
    err = capsys.readouterr().err
    assert "alphaforge was written to" in err and "development stays in force" in err and "settings.local.json" in err


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_project_dir_that_is_not_a_directory_is_refused_and_nothing_is_created(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "no-such-project"
    if kind == "file":
        target.write_text("not a project", encoding="utf-8")
    assert main(["--project-dir", str(target), "mode", "activate", "alphaforge"]) == 2  # a usage error
    err = capsys.readouterr().err
    why = "does not exist" if kind == "missing" else "is not a directory"
    assert f"--project-dir {target}: {why}" in err
    assert not (tmp_path / "no-such-project" / ".claude").exists()
    assert (kind == "file") == target.exists()


def test_activating_an_unknown_mode_is_a_usage_error_and_writes_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    project = umx.project("desk")
    assert main(["--project-dir", str(project), "mode", "activate", "scalping"]) == 2
    assert "unknown mode 'scalping'; choose one of" in capsys.readouterr().err
    assert not (project / ".claude").exists()
