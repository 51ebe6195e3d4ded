"""The skill graph: the shipped skills, the user's layer on top, and validation that names file, skill and problem."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from pathlib import Path

import pytest

import ultramax
from tests.conftest import UltramaxEnv
from tests.skills.helpers import write_graph, write_skill
from ultramax.cli.main import build_parser
from ultramax.config import SETTINGS
from ultramax.doctor import check_skills
from ultramax.skills.graph import PACKAGED_CONFIG, GraphCache, SkillGraphError, load_graph, user_graph_path

SEED_SKILLS = {
    "system-architect": ([], 1),
    "code-master": (["system-architect"], 2),
    "safety-guardian": (["system-architect"], 1),
    "trading-strategist": (["system-architect", "safety-guardian"], 2),
    "risk-manager": (["trading-strategist", "safety-guardian"], 1),
    "creative-director": ([], 2),
    "visual-artist": (["creative-director"], 2),
    "devops-engineer": (["system-architect"], 2),
    "research-analyst": ([], 3),
    "letta-memory": ([], 1),
    "letta-sync": (["letta-memory"], 2),
}


def load_user(umx: UltramaxEnv) -> object:
    return load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)


def problems_of(umx: UltramaxEnv) -> list[str]:
    with pytest.raises(SkillGraphError) as caught:
        load_user(umx)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_graph_has_the_seeds_eleven_skills_with_their_dependencies_and_priorities() -> None:
    graph = load_graph(None)
    assert {s.name: (list(s.dependencies), s.priority) for s in graph} == SEED_SKILLS
    assert (graph.strategy, graph.max_depth, graph.conflict_resolution) == ("dependency-first", 3, "priority")
    assert graph["devops-engineer"].triggers == ("deploy", "kubernetes", "docker", "monitor")


def test_every_shipped_skill_has_real_guidance_and_a_description_that_says_when_to_use_it() -> None:
    graph = load_graph(None)
    for skill in graph:
        body = graph.body(skill.name)
        assert body.startswith("# "), skill.name
        assert 1000 <= len(body) <= 2000, (skill.name, len(body))
        assert "lorem" not in body.lower() and "placeholder" not in body.lower()
        description = graph.description(skill.name)
        assert "Use when" in description or "Use for" in description, skill.name
        assert len(description) <= 1024


def _command_problem(words: list[str]) -> str | None:
    """Why ``ultramax <words>`` is not a real command line of this version, or None if it is."""
    parser = build_parser()
    for i, word in enumerate(words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and not word.startswith("-"):
            if word not in subs[0].choices:
                return f"no command {' '.join(words[: i + 1])!r}"
            parser = subs[0].choices[word]
        elif word.startswith("--") and word not in parser._option_string_actions:
            return f"no option {word} in {parser.prog!r}"
    return None


def test_the_shipped_skills_name_only_commands_memory_tools_and_settings_that_exist() -> None:
    """The guidance is injected as fact: a command, MCP tool or setting it names must be real in this version."""
    tools = (Path(ultramax.__file__).parent / "memory" / "mcp_server.py").read_text(encoding="utf-8")
    settings = {s.key for s in SETTINGS}
    graph = load_graph(None)
    for skill in graph:
        body = graph.body(skill.name)
        for command in re.findall(r"`ultramax ([^`]*)`", body):
            assert _command_problem(shlex.split(command)) is None, (skill.name, command)
        for tool in re.findall(r"`(memory_[a-z_]+)`", body):
            assert f"def {tool}(" in tools, (skill.name, tool)
        for key in re.findall(r"`((?:memory|safety|ultramax|routing|observability)\.[A-Za-z.]+)`", body):
            assert key in settings, (skill.name, key)
            if "(reserved: not built" in next(s.help for s in SETTINGS if s.key == key):
                assert "not built yet" in body, (skill.name, key)


def test_a_skill_naming_a_command_that_does_not_exist_is_caught() -> None:
    assert _command_problem(["memory", "forget", "ID"]) is None
    assert _command_problem(["memory", "sync"]) == "no command 'memory sync'"
    assert _command_problem(["search", "--topic", "x"]) == "no option --topic in 'ultramax search'"


def test_closure_lists_every_transitive_dependency_before_the_skill() -> None:
    graph = load_graph(None)
    assert graph.closure("risk-manager") == (
        "system-architect",
        "safety-guardian",
        "trading-strategist",
        "risk-manager",
    )
    assert graph.closure("letta-sync") == ("letta-memory", "letta-sync")
    assert graph.closure("research-analyst") == ("research-analyst",)


def test_a_user_entry_for_a_shipped_skill_overrides_only_the_fields_it_gives(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"code-master": {"priority": 1, "triggers": ["code", "lint"], "write": False}})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    skill = graph["code-master"]
    assert (skill.priority, skill.triggers, skill.dependencies) == (1, ("code", "lint"), ("system-architect",))
    assert graph.body("code-master").startswith("# Code master")  # the shipped text
    assert skill.source == str(user_graph_path(umx.claude_dir))
    assert graph["devops-engineer"].source == "packaged"


def test_a_user_can_add_a_skill_that_depends_on_a_shipped_one(umx: UltramaxEnv) -> None:
    write_graph(
        umx.claude_dir,
        {"api-reviewer": {"dependencies": ["code-master"], "triggers": ["endpoint"], "priority": 2, "body": "Check."}},
    )
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    assert graph.closure("api-reviewer") == ("system-architect", "code-master", "api-reviewer")
    assert graph.body("api-reviewer") == "Check."
    assert len(graph) == 12


def test_the_seeds_own_config_copied_verbatim_works_using_the_shipped_texts(umx: UltramaxEnv) -> None:
    seed = json.loads(PACKAGED_CONFIG.read_text())
    for name, entry in seed["skills"].items():
        entry["path"] = f"skills/graphs/{name}/SKILL.md"  # the seed's paths; the user wrote no file
    target = user_graph_path(umx.claude_dir)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(seed))
    graph = load_graph(target, claude_dir=umx.claude_dir)
    assert len(graph) == 11
    assert graph.body("risk-manager").startswith("# Risk manager")
    assert len(graph.notes) == 11


def test_a_seed_style_path_is_found_under_the_claude_directory(umx: UltramaxEnv) -> None:
    write_skill(umx.claude_dir / "skills" / "graphs", "k8s-operator", body="Operate clusters.")
    write_graph(
        umx.claude_dir,
        {"k8s-operator": {"path": "skills/graphs/k8s-operator/SKILL.md", "triggers": ["pod"], "write": False}},
    )
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    assert graph["k8s-operator"].path == umx.claude_dir / "skills/graphs/k8s-operator/SKILL.md"
    assert graph.body("k8s-operator") == "Operate clusters."


def test_enabled_false_removes_a_shipped_skill(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"research-analyst": {"enabled": False, "write": False}})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    assert "research-analyst" not in graph and len(graph) == 10


def test_an_unknown_dependency_is_named_with_the_file_the_skill_and_a_suggestion(umx: UltramaxEnv) -> None:
    path = write_graph(umx.claude_dir, {"api-reviewer": {"dependencies": ["code-mastr"], "triggers": ["api"]}})
    assert problems_of(umx) == [
        f"{path}: skill 'api-reviewer': depends on unknown skill 'code-mastr' (did you mean 'code-master'?)"
    ]


def test_disabling_a_skill_others_depend_on_is_an_unknown_dependency(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"letta-memory": {"enabled": False, "write": False}})
    (problem,) = problems_of(umx)
    assert problem.endswith("skill 'letta-sync': depends on unknown skill 'letta-memory'")
    assert problem.startswith("packaged: ")


def test_a_cycle_is_an_error_that_names_the_cycle(umx: UltramaxEnv) -> None:
    path = write_graph(
        umx.claude_dir,
        {
            "alpha": {"dependencies": ["gamma"], "triggers": ["alpha"]},
            "beta": {"dependencies": ["alpha"], "triggers": ["beta"]},
            "gamma": {"dependencies": ["beta"], "triggers": ["gamma"]},
        },
    )
    assert problems_of(umx) == [f"{path}: skill 'alpha': dependency cycle: alpha → gamma → beta → alpha"]


def test_a_skill_depending_on_itself_is_a_cycle(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"loop": {"dependencies": ["loop"], "triggers": ["loop"]}})
    (problem,) = problems_of(umx)
    assert problem.endswith("skill 'loop': dependency cycle: loop → loop")


def test_a_cycle_through_a_shipped_skill_is_found(umx: UltramaxEnv) -> None:
    write_graph(
        umx.claude_dir,
        {
            "system-architect": {"dependencies": ["helper"], "write": False},
            "helper": {"dependencies": ["code-master"], "triggers": ["helper"]},
        },
    )
    (problem,) = problems_of(umx)
    assert "dependency cycle: code-master → system-architect → helper → code-master" in problem


def test_a_dependency_chain_deeper_than_max_depth_is_rejected_and_named(umx: UltramaxEnv) -> None:
    write_graph(
        umx.claude_dir,
        {
            "quant-lead": {"dependencies": ["risk-manager"], "triggers": ["quant"]},
        },
    )
    (problem,) = problems_of(umx)
    assert problem.endswith(
        "skill 'quant-lead': dependency chain quant-lead → risk-manager → trading-strategist → safety-guardian"
        " → system-architect is 4 deep; resolution.max_depth is 3"
    )


def test_raising_max_depth_admits_the_deeper_chain(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"quant-lead": {"dependencies": ["risk-manager"]}}, resolution={"max_depth": 4})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    assert graph.max_depth == 4 and graph.closure("quant-lead")[-1] == "quant-lead"


def test_bad_fields_are_all_reported_together(umx: UltramaxEnv) -> None:
    path = write_graph(
        umx.claude_dir,
        {
            "Bad_Name": {"triggers": ["x"]},
            "vague": {"priority": "high", "triggers": "deploy", "dependncies": []},
            "pathless": {"triggers": ["p"], "write": False},
            "silent": {"triggers": ["--"]},
        },
        resolution={"strategy": "breadth-first", "max_depth": 0},
        extra=1,
    )
    problems = problems_of(umx)
    assert f"{path}: unknown top-level field 'extra'" in problems
    assert any("skill 'Bad_Name': the name must be 1-64 characters" in p for p in problems)
    assert f"{path}: skill 'vague': priority must be an integer from 1 (highest) to 100, got \"high\"" in problems
    assert f"{path}: skill 'vague': triggers must be an array of non-empty strings, got \"deploy\"" in problems
    assert any("skill 'vague': unknown field 'dependncies' (did you mean 'dependencies'?)" in p for p in problems)
    assert f"{path}: skill 'pathless': path is required (where its SKILL.md is)" in problems
    assert f"{path}: skill 'silent': trigger '--' has no letter or digit to match" in problems
    assert f'{path}: resolution.strategy must be "dependency-first"' in problems
    assert f"{path}: resolution.max_depth must be an integer from 1 to 10" in problems


def test_one_pass_reports_a_missing_files_own_cycle_and_unknown_dependency_but_not_a_bad_skill_as_unknown(
    umx: UltramaxEnv,
) -> None:
    path = write_graph(
        umx.claude_dir,
        {
            "api": {"priority": "high", "triggers": ["api"]},
            "client": {"dependencies": ["api"], "triggers": ["client"]},
            "ghost": {"path": "ghost/SKILL.md", "dependencies": ["ghost", "nothere"], "triggers": ["boo"]},
        },
    )
    problems = problems_of(umx)
    assert f"{path}: skill 'api': priority must be an integer from 1 (highest) to 100, got \"high\"" in problems
    assert not any("unknown skill 'api'" in p for p in problems)
    assert any(p.startswith(f"{path}: skill 'ghost': path 'ghost/SKILL.md': no such file") for p in problems)
    assert f"{path}: skill 'ghost': depends on unknown skill 'nothere'" in problems
    assert f"{path}: skill 'ghost': dependency cycle: ghost → ghost" in problems
    assert len(problems) == 4


def test_a_missing_skill_file_is_named_with_where_it_was_looked_for(umx: UltramaxEnv) -> None:
    path = write_graph(umx.claude_dir, {"ghost": {"path": "ghost/SKILL.md", "triggers": ["boo"]}})
    (problem,) = problems_of(umx)
    assert problem.startswith(f"{path}: skill 'ghost': path 'ghost/SKILL.md': no such file (looked in {path.parent}")


def test_invalid_json_is_reported_with_line_and_column(umx: UltramaxEnv) -> None:
    path = user_graph_path(umx.claude_dir)
    path.parent.mkdir(parents=True)
    path.write_text('{"skills": {\n  "a": {"triggers": ["x"],}\n}}')
    (problem,) = problems_of(umx)
    assert problem.startswith(f"{path}: not valid JSON (") and "line 2 column" in problem


def test_a_skill_or_field_given_twice_in_the_users_file_is_an_error_not_silently_the_last(umx: UltramaxEnv) -> None:
    path = user_graph_path(umx.claude_dir)
    path.parent.mkdir(parents=True)
    write_skill(path.parent, "deploy-notes")
    path.write_text(
        '{"skills": {\n'
        '  "deploy-notes": {"path": "deploy-notes/SKILL.md", "triggers": ["deploy"], "priority": 1},\n'
        '  "deploy-notes": {"path": "deploy-notes/SKILL.md", "triggers": ["ship"]},\n'
        '  "code-master": {"priority": 1, "priority": 3}\n'
        '}, "resolution": {"max_depth": 3, "max_depth": 4}}\n',
        encoding="utf-8",
    )
    problems = problems_of(umx)
    assert (
        f"{path}: skill 'deploy-notes': is defined more than once in this file; merge the entries into one" in problems
    )
    assert f"{path}: skill 'code-master': field 'priority' is given more than once" in problems
    assert f"{path}: resolution: field 'max_depth' is given more than once" in problems


def test_an_empty_user_graph_file_changes_nothing(umx: UltramaxEnv) -> None:
    path = user_graph_path(umx.claude_dir)
    path.parent.mkdir(parents=True)
    path.write_text("\n", encoding="utf-8")
    graph = load_graph(path, claude_dir=umx.claude_dir)
    assert [s.name for s in graph] == list(SEED_SKILLS)


def test_the_cache_falls_back_to_the_shipped_graph_while_the_users_file_is_broken(umx: UltramaxEnv) -> None:
    cache = GraphCache(umx.claude_dir)
    assert len(cache.get()) == 11 and str(cache.error) == "None"
    path = write_graph(umx.claude_dir, {"loop": {"dependencies": ["loop"], "triggers": ["loop"]}})
    assert len(cache.get()) == 11 and "dependency cycle: loop → loop" in str(cache.error)
    path.write_text(json.dumps({"skills": {"loop": {"path": "loop/SKILL.md", "triggers": ["loop"]}}}) + "\n")
    assert "loop" in cache.get() and str(cache.error) == "None"


def test_doctor_warns_that_an_invalid_user_graph_leaves_the_hook_on_the_shipped_skills(umx: UltramaxEnv) -> None:
    assert check_skills(umx.paths).status == "ok"
    path = write_graph(umx.claude_dir, {"loop": {"dependencies": ["loop"], "triggers": ["loop"]}})
    check = check_skills(umx.paths)
    assert check.status == "warn" and str(path) in check.message
    assert "uses only the shipped skills: skill 'loop': dependency cycle: loop → loop" in check.message
    assert check.fix.startswith("ultramax skills list")
    path.write_text(json.dumps({"skills": {"loop": {"path": "loop/SKILL.md", "triggers": ["loop"]}}}))
    check = check_skills(umx.paths)
    assert check.status == "ok" and "12 skills" in check.message


def test_a_graph_naming_a_skill_file_not_yet_written_recovers_once_it_is(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"later": {"path": "later/SKILL.md", "triggers": ["later"]}})
    cache = GraphCache(umx.claude_dir, retry_seconds=0)
    assert "later" not in cache.get() and "no such file" in str(cache.error)
    write_skill(user_graph_path(umx.claude_dir).parent, "later", body="Now here.")
    assert cache.get().body("later") == "Now here." and str(cache.error) == "None"


def test_an_edited_skill_file_is_reread(umx: UltramaxEnv) -> None:
    write_graph(umx.claude_dir, {"notes": {"triggers": ["notes"], "body": "first"}})
    graph = load_graph(user_graph_path(umx.claude_dir), claude_dir=umx.claude_dir)
    assert graph.body("notes") == "first"
    skill_file = graph["notes"].path
    skill_file.write_text("---\nname: notes\n---\nsecond version\n")
    stat = skill_file.stat()
    os.utime(skill_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert graph.body("notes") == "second version"


def test_a_cycle_made_by_the_users_edge_over_shipped_ones_names_the_users_file_and_edge(umx: UltramaxEnv) -> None:
    path = write_graph(umx.claude_dir, {"system-architect": {"dependencies": ["code-master"], "write": False}})
    assert problems_of(umx) == [
        f"{path}: skill 'system-architect': dependency cycle: code-master → system-architect → code-master"
        " (system-architect → code-master set here; the rest by the packaged graph)"
    ]


def test_a_max_depth_the_user_lowered_is_blamed_on_the_users_file(umx: UltramaxEnv) -> None:
    path = write_graph(umx.claude_dir, {}, resolution={"max_depth": 1})
    problems = problems_of(umx)
    assert problems and all(p.startswith(f"{path}: skill ") for p in problems)
    assert all(p.endswith("resolution.max_depth is 1 (set here)") for p in problems)
