"""The file-system helpers every writer of user files goes through."""

from __future__ import annotations

import stat
from pathlib import Path

from ultramax.fsutil import atomic_write_text, private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_folder_and_every_folder_made_above_it_are_readable_by_the_user_alone(tmp_path: Path) -> None:
    existing = tmp_path / "home"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    deep = existing / ".claude" / "ultramax" / "cache"
    assert private_dir(deep) == deep
    assert [_mode(p) for p in (deep, deep.parent, deep.parent.parent)] == [0o700, 0o700, 0o700]
    assert _mode(existing) == 0o755  # a folder that was already there keeps its mode
    private_dir(deep)  # and making it again is harmless


def test_an_atomic_write_keeps_the_old_files_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text("{}", encoding="utf-8")
    target.chmod(0o600)
    atomic_write_text(target, '{"a": 1}\n')
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n'
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
