"""Memory export and import on the command line: redaction, all-or-nothing imports, honest counts, safe files."""

from __future__ import annotations

import errno
import json
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pytest

import ultramax.memory.io
from tests.conftest import UltramaxEnv
from ultramax.cli.main import main

KEY = "sk-ant-api03-" + "Zq3x9" * 15 + "AB"  # the shape of an Anthropic API key: 90 characters
HEADER = {"type": "header", "format": "ultramax-memory/1"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_lines(path: Path, records: Iterable[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def passage(text: str, project: str = "acme", **fields: Any) -> dict[str, Any]:
    return {"type": "passage", "project": project, "kind": "general", "content": text, **fields}


def exported(capsys: pytest.CaptureFixture[str], project: str | None = None) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "memory", "export", *(["--project", project] if project else []))
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_exporting_an_unknown_project_leaves_an_existing_file_untouched(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing on 8123")
    out = tmp_path / "existing.jsonl"
    out.write_text("keep me\n")
    code, _, err = run(capsys, "memory", "export", "--project", "acmee", "--out", str(out))
    assert code == 1 and "no memory project named 'acmee'" in err
    assert out.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.jsonl"]


def test_an_export_file_is_readable_by_its_owner_alone(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing on 8123")
    out = tmp_path / "memory.jsonl"
    out.write_text("older export\n")
    out.chmod(0o644)
    code, stdout, _ = run(capsys, "memory", "export", "--out", str(out))
    assert code == 0 and stdout.strip() == f"exported 8 records to {out}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text().splitlines()[-1])["content"] == "billing on 8123"


def test_an_export_that_fails_midway_leaves_the_previous_file_whole(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing on 8123")
    out = tmp_path / "memory.jsonl"
    out.write_text("previous export\n")

    def disk_fills_up(records: Iterable[dict[str, Any]], fh: IO[str]) -> int:
        fh.write(json.dumps(next(iter(records))) + "\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ultramax.memory.io, "write_jsonl", disk_fills_up)
    code, _, err = run(capsys, "memory", "export", "--out", str(out))
    assert code == 1
    assert f"cannot write the export to {out}: No space left on device; any earlier file there is untouched" in err
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.jsonl"]
