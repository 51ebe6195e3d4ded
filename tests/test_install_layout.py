"""install and ``mode activate`` edit a settings file in its text: every byte outside ultramax's own entries stays
as the user wrote it (indentation, key order, number and escape spellings, CRLF, BOM, no final newline), and the
file parses to exactly what re-rendering it would give. Only a change that cannot be made in the text re-renders
the file, and says so."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import ultramax.install as install_mod
from tests.test_install import HAND_WRITTEN, Env, install_env, only_removals
from ultramax.cli.base import CliContext
from ultramax.cli.install_cmd import register
from ultramax.install import edit_settings, find_ultramax_hooks, install, uninstall
from ultramax.install_record import forget_install
from ultramax.modes import get_mode, write_mode

BOM = b"\xef\xbb\xbf"

# A project's shared settings, hand-written: three-space indents with a deeper one, CRLF, number and escape
# spellings json.dumps would change, an object on one line and a key order of the user's own.
PROJECT_HAND_WRITTEN = (
    b"{\r\n"
    b'   "model" : "opus",\r\n'
    b'   "ultramax": {\r\n'
    b'         "hookTimeoutMs": 3.0e3\r\n'
    b"   },\r\n"
    b'   "safety": {"level": "standard", "maxOrderNotional": 1.0e3},\r\n'
    b'   "env": {"NAME": "Ren\\u00e9e"}\r\n'
    b"}\r\n"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return install_env(tmp_path, monkeypatch)


def ordered(raw: bytes) -> str:
    """What a file parses to, key order and number types included (``==`` on dicts sees neither)."""
    return json.dumps(json.loads(raw.decode("utf-8-sig")))


def rerendered(monkeypatch: pytest.MonkeyPatch, path: Path, original: bytes, action: Callable[[], object]) -> str:
    """What ``action`` makes ``original`` parse to when it re-renders the file, as install did before it edited
    the text; the file is left holding ``original`` again."""
    with monkeypatch.context() as m:
        m.setattr("ultramax.install.edit_text", lambda *args, **kwargs: None)
        path.write_bytes(original)
        action()
        result = ordered(path.read_bytes())
    path.write_bytes(original)
    return result


def only_additions(diff: str) -> bool:
    """Whether a diff only adds lines (a kept line may gain the comma that separates it from an added one)."""
    lines = diff.splitlines()
    removed = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
    added = {line[1:].rstrip() for line in lines if line.startswith("+") and not line.startswith("+++")}
    return all(f"{line.rstrip()}," in added for line in removed)


def taken_out(env: Env, path: Path, scope: install_mod.Scope = "user") -> bytes:
    """The file after uninstall cuts ultramax's hooks out of its text (no record: no byte-for-byte restore)."""
    forget_install(env.paths, path)
    result = uninstall(env.paths, scope=scope, project_dir=env.project)
    assert not result.restored and result.layout_kept, result.note
    return path.read_bytes()


def test_install_into_a_hand_written_file_keeps_every_byte_outside_ultramax_entries(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = env.paths.user_settings
    expected = rerendered(
        monkeypatch, settings, HAND_WRITTEN, lambda: install(env.paths, scope="user", project_dir=env.project)
    )

    result = install(env.paths, scope="user", project_dir=env.project)

    after = settings.read_bytes()
    assert result.layout_kept and "every other byte kept" in result.note
    assert only_additions(result.diff), result.diff
    assert after.startswith(BOM + b'{\r\n\t"model" : "opus",\r\n\t"env": {"BUDGET": 1.0e3, "NAME": "Ren\\u00e9e"},')
    assert after.count(b"\r\n") == after.count(b"\n") and after.endswith(
        b'"permissions": {"allow": ["Bash(npm test:*)"]}\r\n}'
    )
    assert b'\r\n\t\t"SessionStart": [\r\n\t\t\t{\r\n\t\t\t\t"hooks": [' in after  # indented like the file: tabs
    assert ordered(after) == expected  # the same data, key order and types as a re-rendered file
    assert taken_out(env, settings) == HAND_WRITTEN  # and the rest of it is the user's file, byte for byte


def test_installing_twice_rewrites_only_ultramax_handlers_in_the_text(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = env.paths.user_settings

    def twice() -> None:
        install(env.paths, scope="user", project_dir=env.project)
        install(env.paths, scope="user", project_dir=env.project, timeout_ms=9000)  # an upgrade, a new timeout

    expected = rerendered(monkeypatch, settings, HAND_WRITTEN, twice)
    install(env.paths, scope="user", project_dir=env.project)

    again = install(env.paths, scope="user", project_dir=env.project, timeout_ms=9000)

    # every handler but SessionEnd's, whose short timeout does not follow the setting
    assert again.replaced == len(install_mod.HOOK_EVENTS) - 1 and again.layout_kept
    changed = [line for line in again.diff.splitlines()[2:] if line[:1] in "+-"]
    assert changed and all('"command": ' in line or '"timeout": ' in line for line in changed), changed
    assert ordered(settings.read_bytes()) == expected
    assert not install(env.paths, scope="user", project_dir=env.project, timeout_ms=9000).changed
    assert taken_out(env, settings) == HAND_WRITTEN


def test_mode_activate_then_install_twice_change_only_their_own_entries_in_a_hand_written_project_file(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = env.project / ".claude" / "settings.json"
    shared.parent.mkdir()
    mode = get_mode("alphaforge")

    def steps() -> None:
        write_mode(env.project, "alphaforge", env.paths)
        install(env.paths, scope="project", project_dir=env.project)
        install(env.paths, scope="project", project_dir=env.project, timeout_ms=9000)

    expected = rerendered(monkeypatch, shared, PROJECT_HAND_WRITTEN, steps)

    edit = write_mode(env.project, "alphaforge", env.paths)

    def listed(values: tuple[str, ...]) -> str:  # one value a line, one step (three spaces) deeper than its key
        return "[\r\n" + ",\r\n".join(f'            "{v}"' for v in values) + "\r\n         ]"

    activated = (
        "{\r\n"
        '   "model" : "opus",\r\n'
        '   "ultramax": {\r\n'
        '         "hookTimeoutMs": 3.0e3,\r\n'
        f'         "mode": "{mode.name}",\r\n'
        f'         "hookStages": {listed(mode.hook_stages)},\r\n'
        f'         "skills": {listed(mode.required_skills)},\r\n'
        f'         "mcpServers": {listed(mode.mcp_servers)}\r\n'
        "   },\r\n"
        f'   "safety": {{"level": "{mode.safety_level}", "maxOrderNotional": 1.0e3}},\r\n'
        '   "env": {"NAME": "Ren\\u00e9e"}\r\n'
        "}\r\n"
    ).encode()
    assert shared.read_bytes() == activated
    assert edit.layout_kept and edit.path == shared and edit.backup is not None
    assert edit.backup.read_bytes() == PROJECT_HAND_WRITTEN

    install(env.paths, scope="project", project_dir=env.project)
    install(env.paths, scope="project", project_dir=env.project, timeout_ms=9000)

    assert ordered(shared.read_bytes()) == expected
    assert taken_out(env, shared, "project") == activated


def test_a_change_the_text_cannot_take_rewrites_the_file_with_the_same_content_and_says_so(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # a key written twice: JSON keeps the last one, and which one ultramax's edit would land next to is unclear
    repeated = b'{\r\n    "model": "haiku",\r\n    "model": "opus"\r\n}\r\n'
    env.paths.user_settings.write_bytes(repeated)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["install"])

    assert args.func(args, CliContext(env.paths, env.project)) == 0

    after = env.paths.user_settings.read_bytes()
    data = json.loads(after)
    assert data["model"] == "opus" and len(find_ultramax_hooks(data)) == len(install_mod.HOOK_EVENTS)
    assert after.startswith(b'{\r\n    "model": "opus",\r\n    "hooks": {\r\n') and after.count(b"\r\n") == after.count(
        b"\n"
    )
    err = capsys.readouterr().err
    assert "note: the file rewritten with the same content in ultramax's layout" in err


def test_an_edit_that_reorders_keys_is_rewritten_and_reported_as_such(env: Env) -> None:
    original = b'{"b": 1,\n "a": 2}\n'
    env.paths.user_settings.write_bytes(original)

    def move_b_last(data: dict[str, int]) -> None:
        data["b"] = data.pop("b") + 1

    edit = edit_settings(env.paths, "user", env.project, move_b_last)

    assert not edit.layout_kept and "could not be made in its text" in edit.note
    assert env.paths.user_settings.read_bytes() == b'{\n "a": 2,\n "b": 2\n}\n'  # in the file's indentation
    assert edit.backup is not None and edit.backup.read_bytes() == original


def test_uninstall_of_a_hand_written_file_still_shows_only_removals(env: Env) -> None:
    env.paths.user_settings.write_bytes(HAND_WRITTEN)
    install(env.paths, scope="user", project_dir=env.project)
    forget_install(env.paths, env.paths.user_settings)
    result = uninstall(env.paths, scope="user", project_dir=env.project)
    assert only_removals(result.diff) and env.paths.user_settings.read_bytes() == HAND_WRITTEN
