"""Settings come from Claude Code's files with its precedence; bad input is reported precisely, never rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main
from ultramax.config import SETTINGS, Settings, load_settings, read_settings_file, settings_reference_markdown
from ultramax.errors import ConfigError


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def project_files(project: Path) -> tuple[Path, Path]:
    return project / ".claude" / "settings.json", project / ".claude" / "settings.local.json"


def test_defaults_apply_when_no_file_sets_anything(umx: UltramaxEnv) -> None:
    umx.user_settings.unlink()
    settings = load_settings(umx.paths)
    assert settings.values == Settings.defaults().values
    assert set(settings.sources.values()) == {"default"}
    assert settings.files == []
    assert settings.problems == []


def test_precedence_is_user_then_project_then_local_and_sources_name_the_file(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    shared, local = project_files(project)
    umx.update_user_settings(
        {"safety": {"level": "minimal", "rateLimitPerMinute": 100}, "memory": {"sleeptimeFrequency": 7}}
    )
    write(shared, {"safety": {"level": "standard", "rateLimitPerMinute": 50}, "permissions": {"allow": ["Bash"]}})
    write(local, {"safety": {"level": "maximum"}})

    settings = load_settings(umx.paths, project)

    assert settings.get("safety.level") == "maximum"
    assert settings.sources["safety.level"] == str(local)
    assert settings.get("safety.rateLimitPerMinute") == 50
    assert settings.sources["safety.rateLimitPerMinute"] == str(shared)
    assert settings.get("memory.sleeptimeFrequency") == 7
    assert settings.sources["memory.sleeptimeFrequency"] == str(umx.user_settings)
    assert settings.get("routing.enabled") is True
    assert settings.sources["routing.enabled"] == "default"
    assert settings.files == [umx.user_settings, shared, local]
    assert settings.problems == [], "Claude Code's own keys (permissions) are not ultramax's business"
    row = dict((key, (value, source)) for key, value, source in settings.rows())
    assert row["safety.level"] == ("maximum", str(local))


def test_a_bad_value_is_reported_with_file_key_and_problem_and_the_lower_value_is_used(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    shared, local = project_files(project)
    umx.update_user_settings({"safety": {"level": "minimal"}, "ultramax": {"hookTimeoutMs": 2000}})
    write(shared, {"safety": {"level": "paranoid"}, "ultramax": {"hookTimeoutMs": "fast"}})
    write(local, {"memory": {"injectionBudgetChars": 20000}})

    settings = load_settings(umx.paths, project)

    assert settings.get("safety.level") == "minimal"
    assert settings.sources["safety.level"] == str(umx.user_settings)
    assert settings.get("ultramax.hookTimeoutMs") == 2000
    assert settings.get("memory.injectionBudgetChars") == 6000
    problems = {(p.file, p.key): p.message for p in settings.problems}
    assert problems == {
        (str(shared), "safety.level"): 'must be one of minimal, standard, maximum; got "paranoid"; using "minimal"',
        (str(shared), "ultramax.hookTimeoutMs"): 'must be an integer, got "fast"; using 2000',
        (str(local), "memory.injectionBudgetChars"): "must be at most 10000, got 20000; using 6000",
    }
    assert str(settings.problems[0]).startswith(f"{shared}: safety.level: must be one of")


def test_true_is_not_an_integer_setting(umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": {"rateLimitPerMinute": True}})
    settings = load_settings(umx.paths)
    assert settings.get("safety.rateLimitPerMinute") == 600
    assert "must be an integer, got true" in settings.problems[0].message


def test_a_section_that_is_not_an_object_is_reported(umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": "maximum"})
    settings = load_settings(umx.paths)
    assert [(p.key, p.message) for p in settings.problems] == [("safety", 'must be an object, got "maximum"')]
    assert settings.get("safety.level") == "standard"


def test_an_unknown_key_is_reported_with_a_did_you_mean(umx: UltramaxEnv) -> None:
    umx.update_user_settings({"safety": {"levle": "maximum"}, "memory": {"zzz": 1}})
    settings = load_settings(umx.paths)
    messages = {p.key: p.message for p in settings.problems}
    assert messages == {
        "safety.levle": "unknown ultramax setting (did you mean safety.level?)",
        "memory.zzz": "unknown ultramax setting",
    }


def test_a_corrupt_file_in_strict_mode_raises_naming_file_line_and_column(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    shared, _local = project_files(project)
    write(shared, '{\n  "safety": {\n    "level": "maximum",\n  }\n}\n')
    with pytest.raises(ConfigError) as err:
        load_settings(umx.paths, project, strict=True)
    message = str(err.value)
    assert message.startswith(f"{shared}: not valid JSON")
    assert "at line 4 column 3" in message
    assert "never rewrites" in message


def test_a_corrupt_file_outside_strict_mode_is_skipped_and_reported(umx: UltramaxEnv) -> None:
    project = umx.project("webapp")
    shared, local = project_files(project)
    write(shared, '{"safety": {"level": "maximum"')
    write(local, {"memory": {"sleeptimeFrequency": 9}})
    umx.update_user_settings({"safety": {"level": "minimal"}})

    settings = load_settings(umx.paths, project)

    assert settings.get("safety.level") == "minimal", "nothing from the corrupt file is used"
    assert settings.get("memory.sleeptimeFrequency") == 9, "the files around it still count"
    assert settings.files == [umx.user_settings, local]
    [problem] = settings.problems
    assert problem.file == str(shared)
    assert problem.key == ""
    assert problem.message.startswith("not valid JSON (Expecting")
    assert "line 1 column" in problem.message


def test_run_from_the_home_folder_the_users_settings_file_is_read_and_reported_once(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.user_settings.write_text('{"safety": {"level": "max"}}', encoding="utf-8")
    settings = load_settings(umx.paths, umx.home)  # the home folder holds .claude/: it is the project too
    assert settings.files == [umx.user_settings]
    assert [p.key for p in settings.problems] == ["safety.level"]
    assert main(["--project-dir", str(umx.home), "config", "validate"]) == 1
    out = capsys.readouterr().out
    assert out.count("safety.level") == 1 and "1 problem in 1 settings file read" in out


def test_a_raw_control_character_is_reported_once_with_its_place(umx: UltramaxEnv) -> None:
    umx.user_settings.write_text('{"safety": {"level": "max\timum"}}', encoding="utf-8")
    [problem] = load_settings(umx.paths, umx.project("webapp")).problems
    assert problem.message.startswith("not valid JSON (Invalid control character at line 1 column 26)")


def test_a_corrupt_file_is_never_modified(umx: UltramaxEnv) -> None:
    corrupt = b'{"safety": {"level": "max\x00imum"}, // a comment\n'
    umx.user_settings.write_bytes(corrupt)
    old = os.stat(umx.user_settings)
    load_settings(umx.paths)
    with pytest.raises(ConfigError):
        load_settings(umx.paths, strict=True)
    new = os.stat(umx.user_settings)
    assert umx.user_settings.read_bytes() == corrupt
    assert (new.st_mtime_ns, new.st_size, new.st_ino) == (old.st_mtime_ns, old.st_size, old.st_ino)


def test_a_settings_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.json", "[1, 2]")
    with pytest.raises(ConfigError, match=r"settings must be a JSON object, got list"):
        read_settings_file(path)


def test_an_empty_settings_file_counts_as_empty_and_a_missing_one_as_absent(tmp_path: Path) -> None:
    assert read_settings_file(write(tmp_path / "empty.json", "  \n")) == {}
    assert read_settings_file(tmp_path / "missing.json") is None


def test_a_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"version": "caf\xe9"}')
    with pytest.raises(ConfigError, match=r"latin1\.json: not UTF-8 text"):
        read_settings_file(path)


def test_an_unknown_setting_name_is_a_key_error() -> None:
    with pytest.raises(KeyError, match=r"safety\.levels"):
        Settings.defaults().get("safety.levels")


def test_list_values_are_copied_so_callers_cannot_change_the_defaults(umx: UltramaxEnv) -> None:
    first = load_settings(umx.paths)
    first.get("safety.requireConfirmation").append("everything")
    assert "everything" not in load_settings(umx.paths).get("safety.requireConfirmation")


def test_the_reference_lists_every_setting_with_its_default() -> None:
    text = settings_reference_markdown()
    for setting in SETTINGS:
        assert f"| `{setting.key}` | {setting.type} | `{json.dumps(setting.default)}` |" in text


@pytest.mark.parametrize(
    "upstream", ["ftp://x", "not a url", "http://", "http://:8080", "http://h:99999", "http://h:0"]
)
def test_an_upstream_that_is_not_an_http_url_with_a_host_and_port_is_a_problem_and_the_default_is_used(
    umx: UltramaxEnv, upstream: str
) -> None:
    umx.update_user_settings({"routing": {"upstream": upstream}})
    settings = load_settings(umx.paths)
    assert settings.get("routing.upstream") == "https://api.anthropic.com"
    [problem] = settings.problems
    assert problem.key == "routing.upstream" and json.dumps(upstream) in problem.message


@pytest.mark.parametrize("upstream", ["https://api.anthropic.com", "http://127.0.0.1:8080/v1", "http://[::1]:9000"])
def test_an_http_or_https_upstream_with_a_host_is_accepted(umx: UltramaxEnv, upstream: str) -> None:
    umx.update_user_settings({"routing": {"upstream": upstream}})
    settings = load_settings(umx.paths)
    assert settings.problems == [] and settings.get("routing.upstream") == upstream


@pytest.mark.parametrize(
    ("routing", "key", "says"),
    [
        ({"defaultModel": "gpt-4"}, "routing.defaultModel", "'gpt-4' is neither a tier"),
        ({"fallbackChain": ["opus", "gpt"]}, "routing.fallbackChain", "unknown tier 'gpt'"),
        ({"tierModels": ["haiku"]}, "routing.tierModels", "is not 'tier=model-id'"),
        ({"tierModels": ["gigantic=x"]}, "routing.tierModels", "unknown tier(s) gigantic"),
        ({"catalogFile": "/no/such/catalog.toml"}, "routing.catalogFile", "does not exist"),
    ],
)
def test_config_validate_reports_a_routing_value_the_catalog_cannot_use_naming_file_and_key(
    umx: UltramaxEnv, routing: dict[str, Any], key: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.update_user_settings({"routing": routing})
    assert main(["config", "validate", "--json"]) == 1
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert (problem["file"], problem["key"]) == (str(umx.user_settings), key) and says in problem["message"]


def test_config_validate_reports_a_catalog_file_that_is_not_toml(umx: UltramaxEnv, tmp_path: Path) -> None:
    catalog = write(tmp_path / "catalog.toml", "tiers = [")
    umx.update_user_settings({"routing": {"catalogFile": str(catalog)}})
    assert main(["config", "validate"]) == 1


def test_inverted_thresholds_are_a_problem_naming_both_keys_and_both_fall_back_to_their_defaults(
    umx: UltramaxEnv,
) -> None:
    umx.update_user_settings({"routing": {"sonnetThreshold": 0.8, "opusThreshold": 0.2}})
    settings = load_settings(umx.paths)
    assert (settings.get("routing.sonnetThreshold"), settings.get("routing.opusThreshold")) == (0.3, 0.7)
    [problem] = settings.problems
    assert problem.file == str(umx.user_settings) and problem.key == "routing.sonnetThreshold"
    assert problem.message == "must be below routing.opusThreshold; got 0.8 and 0.2; using the defaults 0.3 and 0.7"


def test_a_threshold_crossing_one_from_another_file_is_blamed_on_the_file_of_higher_precedence(
    umx: UltramaxEnv,
) -> None:
    project = umx.project("webapp")
    shared, _ = project_files(project)
    umx.update_user_settings({"routing": {"sonnetThreshold": 0.5}})
    write(shared, {"routing": {"opusThreshold": 0.4}})
    [problem] = load_settings(umx.paths, project).problems
    assert problem.file == str(shared)
    assert f"got 0.5 (from {umx.user_settings}) and 0.4;" in problem.message


def test_equal_thresholds_leave_no_middle_tier_and_are_a_problem(umx: UltramaxEnv) -> None:
    umx.update_user_settings({"routing": {"sonnetThreshold": 0.5, "opusThreshold": 0.5}})
    assert load_settings(umx.paths).problems


DB_PASSWORD = "Pg9sEcretPw42x"


def test_a_bad_value_holding_a_password_is_reported_without_it_by_config_validate_doctor_and_status(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    # a DSN where a backend's name belongs: the problem names the key and the value, never the password
    umx.update_user_settings({"memory": {"provider": f"postgres://app:{DB_PASSWORD}@db.internal:5432/prod"}})
    [problem] = load_settings(umx.paths).problems
    assert problem.key == "memory.provider" and "postgres://app:[REDACTED:password]@db.internal" in problem.message
    assert main(["config", "validate"]) == 1
    main(["doctor"])
    main(["status"])
    out = capsys.readouterr()
    assert "memory.provider" in out.out and DB_PASSWORD not in out.out + out.err


def test_config_show_prints_a_setting_holding_a_password_redacted(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.update_user_settings({"routing": {"upstream": f"https://gw:{DB_PASSWORD}@gateway.example.com/anthropic"}})
    assert main(["config", "show", "--json"]) == 0
    shown = {row["key"]: row["value"] for row in json.loads(capsys.readouterr().out)["settings"]}
    assert shown["routing.upstream"] == "https://gw:[REDACTED:password]@gateway.example.com/anthropic"
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "routing.upstream" in out and DB_PASSWORD not in out
    assert load_settings(umx.paths).get("routing.upstream").endswith("@gateway.example.com/anthropic"), "still used"
