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


def test_an_import_stores_no_secret_and_no_private_span_in_passages_context_or_blocks(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert len(KEY) == 90
    leaky = f"key {KEY} and <private>hunter2</private> here"
    dump = write_lines(
        tmp_path / "leaky.jsonl",
        [
            HEADER,
            {"type": "project", "name": "acme", "path": None, "created_at": 1.0, "capture": True},
            {"type": "block", "project": "acme", "label": "human", "value": leaky, "limit": 5000},
            passage(f"deploy {leaky}", context=f"asked {leaky}", tags=["ops", KEY]),
        ],
    )
    code, _, err = run(capsys, "memory", "import", str(dump))
    assert code == 0, err
    records = exported(capsys, "acme")
    text = json.dumps(records)
    assert KEY not in text and "hunter2" not in text and "<private>" not in text
    (stored,) = [r for r in records if r["type"] == "passage"]
    assert stored["content"] == "deploy key [REDACTED:anthropic-key] and  here"
    assert stored["context"] == "asked key [REDACTED:anthropic-key] and  here"
    assert stored["tags"] == ["ops", "[REDACTED:anthropic-key]"]
    human = next(r for r in records if r["type"] == "block" and r["label"] == "human")
    assert human["value"] == "key [REDACTED:anthropic-key] and  here"


def test_an_import_stores_no_secret_in_where_a_passage_came_from(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # a file from anywhere: its source (a command line, a path), session and event are free text too
    where = {"source": f"curl -H 'x-api-key: {KEY}' https://api", "session_id": f"s-{KEY}", "source_event": KEY}
    dump = write_lines(tmp_path / "leaky.jsonl", [HEADER, passage("deploy the api", **where)])
    code, _, err = run(capsys, "memory", "import", str(dump))
    assert code == 0, err
    (stored,) = [r for r in exported(capsys, "acme") if r["type"] == "passage"]
    assert KEY not in json.dumps(stored)
    assert stored["source"] == "curl -H 'x-api-key: [REDACTED:anthropic-key]' https://api"
    assert (stored["session_id"], stored["source_event"]) == ("s-[REDACTED:anthropic-key]", "[REDACTED:anthropic-key]")


def test_an_imported_text_longer_than_one_passage_is_stored_whole_in_parts_not_cut(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paragraphs = [f"paragraph {i}: " + "word " * 300 for i in range(6)]  # about 9,000 characters
    dump = write_lines(tmp_path / "long.jsonl", [HEADER, passage("\n\n".join(paragraphs))])
    code, out, err = run(capsys, "memory", "import", str(dump))
    assert code == 0, err
    assert out.strip() == "imported 0 projects, 0 blocks, 3 passages"
    stored = [r["content"] for r in exported(capsys, "acme") if r["type"] == "passage"]
    assert " ".join(" ".join(stored).split()) == " ".join(" ".join(paragraphs).split())
    assert all(len(text) <= 4000 for text in stored)


def test_a_bad_line_anywhere_imports_nothing_and_names_its_line_and_field(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    records: list[Any] = [
        HEADER,
        {"type": "project", "name": "acme", "path": None, "created_at": 1.0, "capture": True},
        {"type": "block", "project": "acme", "label": "human", "value": "likes tabs", "limit": 5000},
        *(passage(f"fact number {i}") for i in range(17)),
        {"type": "passage", "project": "acme"},
    ]
    dump = write_lines(tmp_path / "bad.jsonl", records)
    code, out, err = run(capsys, "memory", "import", str(dump))
    assert code == 1 and out == ""
    assert f"{dump}: nothing was imported; fix 1 line and import again:\n  line 21: field 'content' is missing" in err
    assert run(capsys, "list-projects")[1].startswith("no memory projects yet")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (passage("x") | {"content": 5}, "field 'content' must be a string, not the number 5"),
        (
            {"type": "block", "project": "acme", "label": "human", "value": "x", "limit": "abc"},
            "field 'limit' must be a whole number of characters, 1 or more, not the string \"abc\"",
        ),
        (passage("x", kind="musing"), "field 'kind' is the string \"musing\"; one of learning, decision"),
        (passage("x", created_at="yesterday"), "field 'created_at' must be a number"),
        (passage("x", tags="ops"), "field 'tags' must be a list of strings"),
        (passage("<private>all of it</private>"), "field 'content' is empty once <private> spans are removed"),
        (passage("x", project="../etc"), "field 'project' is the string \"../etc\", not a project name"),
        ({"type": "blob"}, "field 'type' is the string \"blob\", not a record type"),
        ({"content": "x"}, "field 'type' is missing"),
        ([1, 2], "expected a JSON object, not a list"),
        (
            {"type": "header", "format": "other/9"},
            "field 'format' is the string \"other/9\"; this ultramax reads 'ultramax-memory/1'",
        ),
        (
            {"type": "block", "project": "acme", "label": "human", "value": "y" * 11, "limit": 10},
            "field 'value' holds 11 characters (once cleaned) but its 'limit' is 10",
        ),
    ],
)
def test_each_kind_of_bad_line_is_named_with_its_line_and_field(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path, line: Any, problem: str
) -> None:
    dump = write_lines(tmp_path / "one.jsonl", [HEADER, passage("fine"), line])
    code, _, err = run(capsys, "memory", "import", str(dump))
    assert code == 1 and f"line 3: {problem}" in err and "Traceback" not in err
    assert run(capsys, "list-projects")[1].startswith("no memory projects yet")


def test_a_missing_file_and_a_file_that_is_not_utf8_or_json_are_clear_errors(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "memory", "import", str(tmp_path / "nope.jsonl"))
    assert code == 1 and err.startswith(f"ultramax: cannot read {tmp_path / 'nope.jsonl'}: No such file")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(json.dumps(HEADER).encode() + b"\n\xff\xfe{\n{not json\n")
    code, _, err = run(capsys, "memory", "import", str(binary))
    assert code == 1 and "fix 2 lines" in err
    assert "line 2: not UTF-8 text (byte 0xff at column 1)" in err
    assert "line 3: not JSON (Expecting property name enclosed in double quotes at column 2)" in err


def test_a_failure_while_writing_rolls_back_what_the_import_had_already_written(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # no 'limit' on the block: its value is checked against the stored block's limit only when it is written
    dump = write_lines(
        tmp_path / "late.jsonl",
        [
            HEADER,
            {"type": "project", "name": "acme", "path": None, "created_at": 1.0, "capture": True},
            passage("billing listens on 8123"),
            {"type": "block", "project": "acme", "label": "human", "value": "z" * 5001},
        ],
    )
    code, _, err = run(capsys, "memory", "import", str(dump))
    assert code == 1
    assert f"{dump}, line 4: nothing was imported: Edit failed: block 'human' would hold 5,001 characters" in err
    assert run(capsys, "list-projects")[1].startswith("no memory projects yet")


def test_a_second_import_reports_its_passages_as_skipped_not_imported(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dump = write_lines(tmp_path / "m.jsonl", [HEADER, passage("billing on 8123"), passage("auth on 9000")])
    code, out, _ = run(capsys, "memory", "import", str(dump))
    assert code == 0 and out.strip() == "imported 0 projects, 0 blocks, 2 passages"
    again = write_lines(tmp_path / "again.jsonl", [passage("Billing  on 8123"), passage("tests run with tox")] * 2)
    code, out, _ = run(capsys, "memory", "import", str(again))
    assert code == 0 and out.strip() == "imported 0 projects, 0 blocks, 1 passage; skipped 3 passages already in memory"
    assert len([r for r in exported(capsys) if r["type"] == "passage"]) == 3


def test_an_import_into_another_project_keeps_the_source_projects_directory_and_capture(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "save", "--project", "target", "--content", "already here")
    run(capsys, "memory", "capture", "off", "--project", "target")
    dump = write_lines(
        tmp_path / "acme.jsonl",
        [
            HEADER,
            {"type": "project", "name": "acme", "path": "/srv/acme", "created_at": 1.0, "capture": True},
            {"type": "block", "project": "acme", "label": "human", "value": "prefers small PRs", "limit": 5000},
            passage("billing on 8123"),
        ],
    )
    code, out, err = run(capsys, "memory", "import", str(dump), "--project", "target")
    assert code == 0, err
    assert out.strip() == "imported 1 project, 1 block, 1 passage"
    projects = {p["name"]: p for p in json.loads(run(capsys, "list-projects", "--json")[1])}
    assert set(projects) == {"target"}
    assert (projects["target"]["passages"], projects["target"]["capture"], projects["target"]["path"]) == (
        2,
        False,
        None,
    )
    human = json.loads(run(capsys, "memory", "blocks", "show", "human", "--project", "target", "--json")[1])
    assert human[0]["value"] == "prefers small PRs"
    code, _, err = run(capsys, "memory", "import", str(dump), "--project", "fresh")
    assert code == 0 and "created memory project 'fresh'" in err


def test_an_import_into_another_project_refuses_a_file_of_several_projects(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dump = write_lines(tmp_path / "two.jsonl", [HEADER, passage("a fact"), passage("b fact", project="web")])
    code, _, err = run(capsys, "memory", "import", str(dump), "--project", "target")
    assert code == 1 and "holds 2 projects (acme, web); --project loads one into another" in err
    assert run(capsys, "list-projects")[1].startswith("no memory projects yet")


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
    assert "Free some space or choose another --out" in err
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.jsonl"]


def test_an_export_to_a_folder_says_to_choose_another_out_not_to_free_space(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing on 8123")
    code, _, err = run(capsys, "memory", "export", "--out", str(tmp_path))
    assert code == 1
    assert f"cannot write the export to {tmp_path}: Is a directory; any earlier file there is untouched" in err
    assert err.rstrip().endswith("Choose another --out") and "space" not in err
    assert list(tmp_path.iterdir()) == []


def test_reimporting_an_export_adds_no_version_to_a_block_it_already_holds(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing listens on 8123")
    note = tmp_path / "human.md"
    note.write_text("Prefers small commits.")
    assert run(capsys, "memory", "blocks", "edit", "human", "--file", str(note), "--project", "acme")[0] == 0
    _, before, _ = run(capsys, "memory", "blocks", "show", "--project", "acme")
    dump = write_lines(tmp_path / "m.jsonl", exported(capsys, "acme"))
    code, out, _ = run(capsys, "memory", "import", str(dump))
    assert code == 0 and "0 blocks" in out and "already as in the file" in out
    _, after, _ = run(capsys, "memory", "blocks", "show", "--project", "acme")
    assert after == before, "the same values, and no new version of any block"


def test_an_import_of_a_file_with_no_records_warns_that_it_held_none(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, out, err = run(capsys, "memory", "import", str(empty))
    assert code == 0 and out.strip() == "imported 0 projects, 0 blocks, 0 passages"
    assert f"warning: {empty} holds no records" in err
