"""The memory command line: the seed's commands, blocks, forget, export/import round trip, eval, status."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main
from ultramax.memory.locomo import load_conversations
from ultramax.memory.store import SQLiteStore, database_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(capsys, *args)
    assert code == 0, err
    return json.loads(out)


def test_the_seeds_commands_create_save_search_and_list(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "create-project", "acme")
    assert code == 0 and "Project created: acme" in out and "project_context" in out
    code, out, _ = run(
        capsys, "save", "--project", "acme", "--content", "billing listens on 8123", "--type", "decision"
    )
    assert code == 0 and out.startswith("Decision saved: ")
    found = run_json(capsys, "search", "--project", "acme", "--query", "which port is billing on", "--json")
    assert found["results"][0]["content"] == "billing listens on 8123"
    assert found["results"][0]["kind"] == "decision"
    assert {t["tier"] for t in found["tiers"]} >= {"L1", "L3"} and all("ms" in t for t in found["tiers"])
    projects = run_json(capsys, "list-projects", "--json")
    assert [(p["name"], p["passages"]) for p in projects] == [("acme", 1)]
    status = run_json(capsys, "status", "--no-verify")
    assert status["projects"] == ["acme"] and status["projects_count"] == 1


def test_saving_to_a_project_that_does_not_exist_creates_it_and_says_so(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list-projects")
    assert code == 0 and out.startswith("no memory projects yet")
    code, out, err = run(capsys, "save", "--project", "acmee", "--content", "the staging db is stg-main")
    assert code == 0 and out.startswith("Memory saved: ")
    assert "created memory project 'acmee'" in err  # a typo in the name does not pass unnoticed
    code, _, err = run(capsys, "save", "--project", "acmee", "--content", "the prod db is prd-main")
    assert code == 0 and "created" not in err


@pytest.mark.parametrize(
    ("kind", "said"),
    [("learning", "Learning saved: "), ("bug_fix", "Bug fix saved: "), ("general", "Memory saved: "),
     ("code_review", "Code review saved: ")],
)  # fmt: skip
def test_save_says_what_kind_of_memory_it_saved(
    umx: UltramaxEnv, kind: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "save", "--project", "acme", "--content", f"a {kind} about port 8123", "--type", kind)
    assert code == 0 and out.startswith(said)
    found = run_json(capsys, "search", "--project", "acme", "--query", f"a {kind} about port 8123", "--json")
    assert found["results"][0]["kind"] == kind


def test_search_refuses_a_limit_under_1_and_counts_its_results_in_words_that_agree(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "save", "--project", "acme", "--content", "billing listens on 8123")
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--project", "acme", "--query", "billing", "--limit", "-3"])
    assert exit_.value.code == 2 and "--limit: must be 1 or more, not -3" in capsys.readouterr().err
    code, _, err = run(capsys, "search", "--project", "acme", "--query", "billing port")
    assert code == 0 and err.startswith("(1 result; ")


def test_saving_to_an_invalid_project_name_fails_without_claiming_to_have_created_it(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "save", "--project", "../etc", "--content", "x")
    assert code == 1 and out == ""
    assert "created" not in err and "invalid project name '../etc'" in err


def test_forgetting_an_id_that_is_not_there_says_where_ids_are_shown(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "memory", "forget", "4242")
    assert code == 1 and "no passage with id 4242" in err and "`ultramax search --query ...` shows ids" in err


@pytest.mark.parametrize(
    ("given", "said"),
    [("0", "must be 1 or more, not 0"), ("-5", "must be 1 or more, not -5"),
     ("99999999999999999999999", f"must be at most {2**63 - 1}, not 99999999999999999999999")],
)  # fmt: skip
def test_forget_refuses_an_id_no_passage_can_have_as_a_usage_error(
    umx: UltramaxEnv, given: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["memory", "forget", given])
    assert exit_.value.code == 2 and f"argument id: {said}" in capsys.readouterr().err


def test_capture_status_and_undo_in_an_unknown_project_say_so_and_create_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "memory", "capture", "status", "--project", "acmee")
    assert code == 1 and "no memory project named 'acmee'" in err
    code, _, err = run(capsys, "memory", "blocks", "undo", "human", "--project", "acmee")
    assert code == 1 and "no memory project named 'acmee'" in err
    code, out, _ = run(capsys, "list-projects")
    assert out.startswith("no memory projects yet")


def test_list_projects_counts_passages_in_words_that_agree(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "save", "--project", "one", "--content", "the staging db is stg-main")
    run(capsys, "create-project", "none")
    code, out, _ = run(capsys, "list-projects")
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert "  1 passage" in lines["one"] and "passages" not in lines["one"]
    assert "  0 passages" in lines["none"]


def test_a_damaged_database_is_a_clear_error_naming_the_file_and_the_way_back(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(60):
        run(capsys, "save", "--project", "acme", "--content", f"decision {i}: billing listens on port 81{i}")
    path = umx.paths.home / "memory.db"
    with closing(sqlite3.connect(path)) as conn:  # everything into the main file, so no page is read from the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as fh:  # the header page is kept, so it is damage and not "not a database"
        fh.seek(page)
        fh.write(b"\xde\xad\xbe\xef" * ((path.stat().st_size - page) // 4))
    for argv in (("search", "--project", "acme", "--query", "billing port"), ("save", "--content", "x y z")):
        code, _out, err = run(capsys, *argv)
        assert code == 1 and "Traceback" not in err
        assert f"{path}: memory database error" in err and "move it aside" in err


def test_reading_memory_never_creates_a_project(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = umx.project("orders")
    for argv in (
        ("memory", "blocks", "show", "--project", "typoproj"),
        ("--project-dir", str(workdir), "search", "--query", "billing port"),
        ("--project-dir", str(workdir), "memory", "blocks", "show"),
    ):
        code, _out, err = run(capsys, *argv)
        assert code == 1 and "Traceback" not in err, argv
        assert "no memory project" in err
    code, out, _ = run(capsys, "list-projects")
    assert code == 0 and out.startswith("no memory projects yet")


def test_a_long_save_is_kept_whole_across_passages_not_cut(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    paragraphs = [f"step {i}: " + " ".join(f"word{i}x{j}" for j in range(60)) for i in range(30)]
    content = "\n\n".join(paragraphs)
    assert len(content) > 14_000
    code, out, _ = run(capsys, "save", "--project", "acme", "--content", content)
    assert code == 0 and "saved whole as" in out
    exported = run_json(capsys, "search", "--project", "acme", "--query", "word29x59", "--json")
    assert exported["results"] and "[... truncated]" not in exported["results"][0]["content"]
    store = SQLiteStore(database_path(umx.paths))
    try:
        texts = [p.text for p in store.iter_passages("acme")]
    finally:
        store.close()
    assert all(len(t) <= 4000 for t in texts)
    assert "\n\n".join(texts) == content


def test_status_names_the_memory_project_the_hooks_use_here(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    webapp = umx.project("webapp")
    status = run_json(capsys, "--project-dir", str(webapp), "status", "--no-verify")
    assert status["current_project"] == "webapp"  # before anything is stored: the name it will get
    umx.update_user_settings({"memory": {"project": "shared-notes"}})
    status = run_json(capsys, "--project-dir", str(webapp), "status", "--no-verify")
    assert status["current_project"] == "shared-notes"
    assert status["projects"] == [], "status creates nothing"


def test_search_of_an_unknown_project_is_a_clear_error(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "--project", "nope", "--query", "x")
    assert code == 1 and "no memory project named 'nope'" in err


def test_blocks_edit_show_history_diff_and_undo(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create-project", "acme")
    p = ("--project", "acme")
    assert run(capsys, "memory", "blocks", "edit", "project_context", "--value", "FastAPI on 8000", *p)[0] == 0
    code, out, _ = run(capsys, "memory", "blocks", "edit", "project_context", "--append", "billing on 8123", *p)
    assert code == 0 and out.startswith("project_context: v3")
    shown = run_json(capsys, "memory", "blocks", "show", "project_context", "--json", *p)
    assert shown[0]["value"] == "FastAPI on 8000\nbilling on 8123" and shown[0]["limit"] == 5000
    code, out, _ = run(capsys, "memory", "blocks", "diff", "project_context", *p)
    assert "+billing on 8123" in out
    assert [v["version"] for v in run_json(capsys, "memory", "blocks", "history", "project_context", "--json", *p)] == [
        1,
        2,
        3,
    ]
    code, out, _ = run(capsys, "memory", "blocks", "undo", "project_context", *p)
    assert code == 0 and "v4" in out
    assert (
        run_json(capsys, "memory", "blocks", "show", "project_context", "--json", *p)[0]["value"] == "FastAPI on 8000"
    )


def test_a_block_edit_over_the_limit_is_refused_with_the_numbers_and_the_way_to_raise_it(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "create-project", "acme")
    big = tmp_path / "big.md"
    big.write_text("x" * 5001)
    code, _, err = run(capsys, "memory", "blocks", "edit", "learnings", "--file", str(big), "--project", "acme")
    assert code == 1 and "5,001 characters; its limit is 5,000" in err
    assert "ultramax memory blocks edit learnings --limit N" in err, "says how to raise the limit"


def test_a_diff_keeps_last_lines_without_a_newline_apart_and_marks_them(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ("--project", "acme")
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "uses vim", *p)
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "likes spaces", *p)
    code, out, _ = run(capsys, "memory", "blocks", "diff", "persona", *p)
    assert code == 0
    assert out.splitlines()[-4:] == [
        "-uses vim",
        "\\ No newline at end of file",
        "+likes spaces",
        "\\ No newline at end of file",
    ]


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_a_diff_naming_a_version_the_block_does_not_have_is_an_error(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    p = ("--project", "acme")
    for value in ("a", "b", "c"):
        run(capsys, "memory", "blocks", "edit", "persona", "--value", value, *p)
    code, out, err = run(capsys, "memory", "blocks", "diff", "persona", option, "9", *p)
    assert code == 1 and out == ""
    assert "block 'persona' has no version 9 (it has v1 to v4" in err


def test_a_block_edit_from_a_file_that_cannot_be_read_says_why_and_changes_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    p = ("--project", "acme")
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "terse answers", *p)
    binary = tmp_path / "persona.bin"
    binary.write_bytes(b"\xff\xfe")
    for path, problem in (
        (tmp_path / "missing.md", "No such file or directory"),
        (tmp_path, "Is a directory"),
        (binary, "is not UTF-8 text (byte 0xff at offset 0)"),
    ):
        code, _, err = run(capsys, "memory", "blocks", "edit", "persona", "--file", str(path), *p)
        assert code == 1 and problem in err and "nothing was changed" in err
        assert "Traceback" not in err
    assert run_json(capsys, "memory", "blocks", "show", "persona", "--json", *p)[0]["value"] == "terse answers"


def test_a_block_edit_from_stdin_that_is_not_utf8_says_so_and_changes_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ("--project", "acme")
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "terse answers", *p)
    proc = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "memory", "blocks", "edit", "persona", "--file", "-", *p],
        input=b"\xff\xfeterse", capture_output=True, env=umx.environ(), timeout=60, check=False,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert (
        proc.returncode == 1
        and err == "ultramax: <stdin> is not UTF-8 text (byte 0xff at offset 0); nothing was changed\n"
    )
    assert run_json(capsys, "memory", "blocks", "show", "persona", "--json", *p)[0]["value"] == "terse answers"


@pytest.mark.parametrize(("editor", "problem"), [("false", "exited with status 1"), ("no-such-editor", "cannot start")])
def test_an_editor_that_fails_or_is_missing_is_a_clear_error_and_changes_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, editor: str, problem: str
) -> None:
    p = ("--project", "acme")
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "terse answers", *p)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor)
    code, _, err = run(capsys, "memory", "blocks", "edit", "persona", *p)
    assert code == 1 and problem in err and "nothing was changed" in err
    assert run_json(capsys, "memory", "blocks", "show", "persona", "--json", *p)[0]["value"] == "terse answers"


def test_changing_only_a_blocks_limit_needs_no_editor_and_keeps_its_value(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    p = ("--project", "acme")
    run(capsys, "memory", "blocks", "edit", "persona", "--value", "terse answers", *p)
    code, out, err = run(capsys, "memory", "blocks", "edit", "persona", "--limit", "9000", *p)
    assert code == 0, err
    assert out.strip() == "persona: v3, 13/9000 chars"
    code, out, _ = run(capsys, "memory", "blocks", "diff", "persona", *p)
    assert out.splitlines() == ["limit: 5,000 -> 9,000 characters", "the text of v2 and v3 is the same"]


@pytest.mark.parametrize(("limit", "problem"), [("0", "must be 1 or more, not 0"), ("-5", "must be 1 or more, not -5")])
def test_a_block_limit_below_one_is_refused_by_the_command_line(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], limit: str, problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["memory", "blocks", "edit", "persona", "--value", "x", "--limit", limit, "--project", "acme"])
    assert exited.value.code == 2 and f"argument --limit: {problem}" in capsys.readouterr().err


def test_forget_removes_a_passage_by_id(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "save", "--project", "acme", "--content", "the staging db is called stg-main")
    pid = out.split(": ")[1].strip()
    assert run(capsys, "memory", "forget", pid)[0] == 0
    found = run_json(capsys, "search", "--project", "acme", "--query", "staging db name", "--json")
    assert found["results"] == []
    code, _, err = run(capsys, "memory", "forget", pid)
    assert code == 1 and "no passage" in err


def test_export_then_import_into_a_fresh_home_round_trips(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run(capsys, "create-project", "acme")
    run(capsys, "memory", "blocks", "edit", "human", "--value", "prefers small PRs", "--project", "acme")
    run(capsys, "save", "--project", "acme", "--content", "billing listens on 8123", "--type", "decision")
    run(capsys, "save", "--project", "web", "--content", "the frontend uses vite")
    dump = tmp_path / "memory.jsonl"
    assert run(capsys, "memory", "export", "--out", str(dump))[0] == 0
    monkeypatch.setenv("ULTRAMAX_HOME", str(tmp_path / "fresh-home"))
    code, out, _ = run(capsys, "memory", "import", str(dump))
    assert code == 0 and "imported 2 projects" in out and "2 passages" in out
    again = tmp_path / "again.jsonl"
    run(capsys, "memory", "export", "--out", str(again))
    assert again.read_text() == dump.read_text()
    found = run_json(capsys, "search", "--project", "acme", "--query", "billing port", "--json")
    assert found["results"][0]["content"] == "billing listens on 8123", "imported passages are embedded and found"


def test_capture_can_be_switched_off_and_on_for_a_project(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create-project", "acme")
    assert run(capsys, "memory", "capture", "off", "--project", "acme")[1].strip() == "capture for acme: off"
    projects = run_json(capsys, "list-projects", "--json")
    assert projects[0]["capture"] is False
    assert run(capsys, "memory", "capture", "on", "--project", "acme")[1].strip() == "capture for acme: on"


def test_eval_scores_any_file_in_the_locomo_format(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conversation = {
        "sample_id": "proj-1",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "We moved the billing service to port 8123."},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Good, and the auth service stays on 9000."},
                {"speaker": "Ana", "dia_id": "D1:3", "text": "Deploys happen on Tuesdays from now on."},
            ],
            "session_2_date_time": "10:00 am on 9 May, 2023",
            "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "The flaky cache test was a timezone bug."}],
        },
        "qa": [
            {"question": "Which port does billing use?", "answer": "8123", "evidence": ["D1:1"], "category": 4},
            {"question": "What caused the flaky cache test?", "answer": "tz", "evidence": ["D2:1"], "category": 1},
        ],
    }
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps([conversation]))
    report = run_json(capsys, "memory", "eval", "--locomo", str(data), "--json")["weighted"]
    assert report["questions"] == 2
    assert report["recall"]["@5"] == 1.0 and report["mrr"] == 1.0
    assert set(report["per_category"]) == {"1 multi-hop", "4 single-hop"}


@pytest.mark.parametrize("name", ["software_dialogs.json", "software_dialogs_holdout.json"])
def test_the_projects_own_dialog_sets_load_and_every_question_points_at_turns_that_exist(name: str) -> None:
    conversations = load_conversations(Path(__file__).parents[2] / "bench" / "data" / name)
    assert len(conversations) == 3
    for conv in conversations:
        turns = {t.dia_id for t in conv.turns}
        assert len(conv.questions) >= 49 and all(q.evidence for q in conv.questions)
        assert all(e in turns for q in conv.questions for e in q.evidence), conv.sample_id
        assert all(q.category in (1, 2, 3, 4, 5) for q in conv.questions)
