"""``ultramax skills sync``: native Claude Code skills with valid frontmatter, idempotent, never clobbering."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import UltramaxEnv
from tests.skills.helpers import write_graph
from ultramax.cli.main import main
from ultramax.skills.document import parse_skill_document
from ultramax.skills.export import sync_skills
from ultramax.skills.graph import load_graph, user_graph_path

NAME = re.compile(r"^[a-z0-9-]{1,64}$")


def skills_dir(umx: UltramaxEnv) -> Path:
    return umx.claude_dir / "skills"


def sync(umx: UltramaxEnv, *args: str) -> int:
    return main(["skills", "sync", *args])


def frontmatter(text: str) -> dict[str, object]:
    """Parse the frontmatter with a real YAML parser (PyYAML), as Claude Code reads it."""
    data = yaml.safe_load(text.split("---\n", 2)[1])
    assert isinstance(data, dict)
    return data


def test_sync_writes_every_skill_with_valid_frontmatter_and_its_dependencies(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sync(umx) == 0
    graph = load_graph(None)
    for skill in graph:
        text = (skills_dir(umx) / skill.name / "SKILL.md").read_text(encoding="utf-8")
        assert text.startswith("---\n")
        meta = frontmatter(text)
        assert meta["name"] == skill.name and NAME.match(skill.name)
        description = meta["description"]
        assert isinstance(description, str) and 0 < len(description) <= 1024
        body = parse_skill_document(text).body
        assert graph.body(skill.name) in body
        if skill.dependencies:
            assert body.startswith("> Builds on ")
            for dep in skill.dependencies:
                assert f"`{dep}`" in body.splitlines()[0]
                assert dep in description
        else:
            assert body.startswith("# ")
    assert capsys.readouterr().out.count("created ") == 11


def test_sync_is_idempotent(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert sync(umx) == 0
    stamps = {p: p.stat().st_mtime_ns for p in skills_dir(umx).glob("*/SKILL.md")}
    capsys.readouterr()
    assert sync(umx) == 0
    out = capsys.readouterr().out
    assert out.count("unchanged ") == 11 and "created" not in out and "updated" not in out
    assert {p: p.stat().st_mtime_ns for p in skills_dir(umx).glob("*/SKILL.md")} == stamps


def test_a_users_own_skill_of_the_same_name_is_never_clobbered(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = skills_dir(umx) / "code-master" / "SKILL.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("---\nname: code-master\ndescription: my own\n---\nMine.\n")
    assert sync(umx) == 1  # something was skipped
    assert mine.read_text() == "---\nname: code-master\ndescription: my own\n---\nMine.\n"
    assert "skipped   " in capsys.readouterr().out
    assert (skills_dir(umx) / "devops-engineer" / "SKILL.md").exists()


def test_force_replaces_a_users_skill_after_backing_it_up(umx: UltramaxEnv) -> None:
    mine = skills_dir(umx) / "code-master" / "SKILL.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("Mine.\n")
    assert sync(umx, "--force") == 0
    assert "Code master" in mine.read_text()
    (backup,) = (umx.ultramax_home / "backups" / "skills").glob("code-master-*-SKILL.md")
    assert backup.read_text() == "Mine.\n"


def test_a_file_ultramax_wrote_and_the_user_edited_is_left_alone(umx: UltramaxEnv) -> None:
    assert sync(umx) == 0
    target = skills_dir(umx) / "letta-sync" / "SKILL.md"
    target.write_text(target.read_text() + "\nMy addition.\n")
    write_graph(umx.claude_dir, {"letta-sync": {"priority": 1, "description": "Changed upstream.", "write": False}})
    assert sync(umx) == 1
    assert target.read_text().endswith("My addition.\n")


def test_a_changed_skill_updates_the_file_ultramax_wrote(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert sync(umx) == 0
    write_graph(umx.claude_dir, {"letta-sync": {"description": "Sync memory. Use when asked to sync.", "write": False}})
    capsys.readouterr()
    assert sync(umx) == 0
    out = capsys.readouterr().out
    assert re.search(r"^updated\s+\S+letta-sync/SKILL.md", out, re.M)
    meta = frontmatter((skills_dir(umx) / "letta-sync" / "SKILL.md").read_text())
    assert meta["description"] == "Sync memory. Use when asked to sync. Builds on letta-memory."


def test_a_skill_removed_from_the_graph_is_removed_if_untouched(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"notes": {"triggers": ["notes"], "body": "Take notes."}})
    assert sync(umx) == 0
    assert (skills_dir(umx) / "notes" / "SKILL.md").exists()
    user_graph_path(umx.claude_dir).write_text(json.dumps({"skills": {}}))
    assert sync(umx) == 0
    assert not (skills_dir(umx) / "notes").exists()
    assert (skills_dir(umx) / "graphs" / "config.json").exists()  # the graph itself is untouched


def test_dry_run_writes_nothing(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert sync(umx, "--dry-run") == 0
    assert not skills_dir(umx).exists()
    assert capsys.readouterr().out.count("would be created ") == 11


@pytest.mark.parametrize(
    ("name", "why"),
    [("claude-helper", "reserved by Claude Code"), ("data--tools", "must not contain '--'")],
)
def test_a_name_claude_code_would_refuse_is_reported_not_written(umx: UltramaxEnv, name: str, why: str) -> None:
    write_graph(umx.claude_dir, {name: {"triggers": ["helper"]}})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    actions = sync_skills(graph, skills_dir(umx), umx.ultramax_home / "state.json", umx.ultramax_home / "b")
    (invalid,) = [a for a in actions if a.action == "invalid"]
    assert invalid.name == name and why in invalid.reason
    assert not (skills_dir(umx) / name / "SKILL.md").exists()


def test_a_long_description_is_clipped_to_1024_characters(umx: UltramaxEnv) -> None:
    write_graph(
        umx.claude_dir,
        {"verbose": {"dependencies": ["code-master"], "triggers": ["verbose"], "description": "word " * 204}},
    )
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    sync_skills(graph, skills_dir(umx), umx.ultramax_home / "state.json", umx.ultramax_home / "b")
    meta = frontmatter((skills_dir(umx) / "verbose" / "SKILL.md").read_text())
    description = meta["description"]
    assert isinstance(description, str) and len(description) <= 1024
    assert description.endswith("… Builds on code-master.")


def test_a_skill_whose_graph_path_is_its_own_export_target_is_kept_as_written_on_every_sync(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    source = skills_dir(umx) / "my-skill" / "SKILL.md"
    source.parent.mkdir(parents=True)
    text = "---\nname: my-skill\ndescription: My own skill.\n---\n\nDo my thing.\n"
    source.write_text(text, encoding="utf-8")
    write_graph(
        umx.claude_dir,
        {"my-skill": {"path": "skills/my-skill/SKILL.md", "dependencies": ["code-master"], "triggers": ["mything"]}},
    )
    for args in ((), ("--force",), (), ()):
        assert sync(umx, *args) == 0
        [line] = [line for line in capsys.readouterr().out.splitlines() if "my-skill" in line]
        assert line.startswith("kept      ")
        assert source.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    "written",
    [
        "description: >\n  Review HTTP endpoints: naming, status codes\n  and pagination.\n",
        "description: |-\n  Review HTTP endpoints: naming, status codes\n  and pagination.\n",
        "description: Review HTTP endpoints, naming, status codes\n  and pagination.\n",
        'description:\n  "Review HTTP endpoints: naming, status codes\n  and pagination."\n',
    ],
)
def test_a_description_written_over_several_yaml_lines_reaches_the_native_skill_whole(
    umx: UltramaxEnv, written: str
) -> None:
    path = user_graph_path(umx.claude_dir)
    source = path.parent / "api-reviewer" / "SKILL.md"
    source.parent.mkdir(parents=True)
    source.write_text(f"---\nname: api-reviewer\n{written}metadata:\n  team: api\n---\n# API review\n")
    write_graph(umx.claude_dir, {"api-reviewer": {"path": "api-reviewer/SKILL.md", "triggers": ["endpoint"]}})
    graph = load_graph(path, claude_dir=umx.claude_dir)
    expected = frontmatter(source.read_text())["description"]
    assert isinstance(expected, str) and "pagination" in expected
    assert graph.description("api-reviewer") == expected.rstrip("\n")
    sync_skills(graph, skills_dir(umx), umx.ultramax_home / "state.json", umx.ultramax_home / "b")
    meta = frontmatter((skills_dir(umx) / "api-reviewer" / "SKILL.md").read_text())
    assert meta["description"] == " ".join(expected.split())


def test_a_description_with_characters_yaml_forbids_still_exports_valid_frontmatter(umx: UltramaxEnv) -> None:
    description = 'Check "inputs": tabs\there, DEL \x7f, a C1 control \x90, a BOM \ufeff, and é.'
    write_graph(umx.claude_dir, {"odd-input": {"triggers": ["odd"], "description": description}})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    sync_skills(graph, skills_dir(umx), umx.ultramax_home / "state.json", umx.ultramax_home / "b")
    text = (skills_dir(umx) / "odd-input" / "SKILL.md").read_text(encoding="utf-8")
    assert frontmatter(text)["description"] == " ".join(description.split())
    assert parse_skill_document(text).description == " ".join(description.split())


def test_a_skill_without_a_description_exports_one_that_says_when_to_use_it(umx: UltramaxEnv) -> None:
    path = user_graph_path(umx.claude_dir)
    source = path.parent / "bare" / "SKILL.md"
    source.parent.mkdir(parents=True)
    source.write_text("# Bare\n\nNo frontmatter at all.\n", encoding="utf-8")
    write_graph(
        umx.claude_dir,
        {
            "bare": {"path": "bare/SKILL.md", "triggers": ["endpoint", "rest api"]},
            "bare-too": {"path": "bare/SKILL.md", "provides": ["api-review"], "triggers": []},
        },
    )
    graph = load_graph(path, claude_dir=umx.claude_dir)
    sync_skills(graph, skills_dir(umx), umx.ultramax_home / "state.json", umx.ultramax_home / "b")
    bare = frontmatter((skills_dir(umx) / "bare" / "SKILL.md").read_text(encoding="utf-8"))
    assert bare["description"] == "The bare skill. Use when the task involves endpoint, rest api."
    too = frontmatter((skills_dir(umx) / "bare-too" / "SKILL.md").read_text(encoding="utf-8"))
    assert too["description"] == "The bare-too skill: api-review."


def test_the_builds_on_line_agrees_in_number_with_the_dependencies(umx: UltramaxEnv) -> None:
    assert sync(umx) == 0
    one = (skills_dir(umx) / "code-master" / "SKILL.md").read_text(encoding="utf-8")
    two = (skills_dir(umx) / "trading-strategist" / "SKILL.md").read_text(encoding="utf-8")
    assert parse_skill_document(one).body.splitlines()[0] == (
        "> Builds on `system-architect`: apply that skill first. "
        "If it is not already in context, invoke it with the Skill tool before continuing."
    )
    assert parse_skill_document(two).body.splitlines()[0] == (
        "> Builds on `system-architect`, `safety-guardian`: apply those skills first. "
        "If they are not already in context, invoke them with the Skill tool before continuing."
    )


def test_force_backs_up_a_skill_that_is_not_utf8_byte_for_byte_before_replacing_it(umx: UltramaxEnv) -> None:
    mine = skills_dir(umx) / "code-master" / "SKILL.md"
    mine.parent.mkdir(parents=True)
    latin1 = "---\nname: code-master\ndescription: café\n---\nMine: é\n".encode("latin-1")
    mine.write_bytes(latin1)
    assert sync(umx, "--force") == 0
    (backup,) = (umx.ultramax_home / "backups" / "skills").glob("code-master-*-SKILL.md")
    assert backup.read_bytes() == latin1
    assert "Code master" in mine.read_text(encoding="utf-8")


def test_sync_leaves_a_file_where_a_skill_folder_goes_and_a_folder_where_its_file_goes_even_with_force(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    skills_dir(umx).mkdir(parents=True)
    (skills_dir(umx) / "letta-sync").write_text("my notes\n")
    (skills_dir(umx) / "devops-engineer" / "SKILL.md").mkdir(parents=True)
    for args in ((), ("--force",), ("--json",)):
        capsys.readouterr()
        assert sync(umx, *args) == 1
    actions = {a["name"]: a for a in json.loads(capsys.readouterr().out)["actions"]}
    assert (
        actions["letta-sync"]["action"] == "skipped"
        and "is a file, not a skill folder" in actions["letta-sync"]["reason"]
    )
    assert actions["devops-engineer"]["action"] == "skipped"
    assert "is a folder, not a file" in actions["devops-engineer"]["reason"]
    assert (skills_dir(umx) / "letta-sync").read_text() == "my notes\n"
    assert (skills_dir(umx) / "devops-engineer" / "SKILL.md").is_dir()
    assert actions["code-master"]["action"] == "unchanged"


@pytest.mark.parametrize(
    "line",
    [
        'description: "Review endpoints: naming and status codes" # kept short for the picker',
        "description: 'Review endpoints, the team''s way' # reviewed 2026-11",
        "description: Review endpoints in C# and F#  # a comment",
    ],
)
def test_a_trailing_yaml_comment_on_the_description_line_is_not_part_of_the_description(line: str) -> None:
    text = f"---\nname: api-reviewer\n{line}\n---\n# API review\n"
    assert parse_skill_document(text).description == frontmatter(text)["description"]
