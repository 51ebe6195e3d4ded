"""``ultramax skills eval`` scoring, the dev set, and the ``list``/``resolve`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from tests.skills.helpers import write_graph
from ultramax.cli.main import main
from ultramax.skills.evaluate import EvalDataError, evaluate, load_cases
from ultramax.skills.graph import load_graph
from ultramax.skills.resolver import SkillResolver

DEV_SET = Path(__file__).parent / "data" / "skills_eval.jsonl"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def write_cases(path: Path, *cases: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def test_eval_scores_exact_sets_and_order_violations(tmp_path: Path) -> None:
    cases = load_cases(
        write_cases(
            tmp_path / "cases.jsonl",
            {
                "prompt": "fix the tests",
                "expect_skills": ["code-master", "system-architect"],
                "expect_order_constraints": [["system-architect", "code-master"]],
            },
            {  # a wrong expectation of order: counted as a violation
                "prompt": "deploy it",
                "expect_skills": ["devops-engineer", "system-architect"],
                "expect_order_constraints": [["devops-engineer", "system-architect"]],
            },
            {  # a set mismatch; its constraint names a skill not resolved: not checkable
                "prompt": "hello",
                "expect_skills": ["research-analyst"],
                "expect_order_constraints": [["research-analyst", "letta-memory"]],
                "note": "extra fields are ignored",
            },
            {"prompt": "review the shader", "expect_skills": ["research-analyst", "visual-artist"]},
        )
    )
    report = evaluate(SkillResolver(load_graph(None)), cases)
    data = report.to_dict()
    assert (data["prompts"], data["exact"], data["exact_set_accuracy"]) == (4, 2, 0.5)
    assert (data["order_constraints"], data["order_violations"], data["order_constraints_not_checkable"]) == (3, 1, 1)
    assert data["dependency_violations"] == 0
    failures = {f["line"]: f for f in data["failures"]}
    assert failures[2]["order_violations"] == [["devops-engineer", "system-architect"]]
    assert failures[3]["missing"] == ["research-analyst"] and failures[3]["got"] == []
    assert failures[4]["extra"] == ["creative-director"]
    assert data["precision"] == round(6 / 7, 4) and data["recall"] == round(6 / 7, 4)
    assert "exact set            2/4 (50.0%)" in report.text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('["a"]', "each line must be a JSON object"),
        ('{"expect_skills": []}', '"prompt" must be a string'),
        ('{"prompt": "x", "expect_skills": "a"}', '"expect_skills" must be an array of skill names'),
        ('{"prompt": "x", "expect_skills": [], "expect_order_constraints": [["a"]]}', "[before, after] pairs"),
    ],
)
def test_a_malformed_eval_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "expect_skills": []}\n\n' + line + "\n")
    with pytest.raises(EvalDataError) as caught:
        load_cases(path)
    assert str(caught.value).startswith(f"{path}:3: ") and message in str(caught.value)


def test_a_graph_and_an_eval_file_saved_with_a_byte_order_mark_and_crlf_are_read(tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.json"
    graph_file.write_bytes(b'\xef\xbb\xbf{"skills": {"devops-engineer": {"triggers": ["ship"]}}}\r\n')
    graph = load_graph(graph_file)
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_bytes(
        b'\xef\xbb\xbf{"prompt": "ship it", "expect_skills": ["system-architect", "devops-engineer"]}\r\n'
    )
    report = evaluate(SkillResolver(graph), load_cases(cases_file, known=graph.skills))
    assert (report.total, report.exact) == (1, 1)


def test_the_dev_set_resolves_exactly_with_no_order_violations(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "skills", "eval", str(DEV_SET), "--json")
    assert data["prompts"] >= 60
    assert data["exact_set_accuracy"] >= 0.95
    assert data["order_violations"] == 0 and data["dependency_violations"] == 0


def test_eval_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skills", "eval", str(DEV_SET)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prompts              ") and "order violations     0 of " in out


def test_a_missing_eval_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skills", "eval", str(tmp_path / "nope.jsonl")]) == 1
    assert "nope.jsonl: cannot read" in capsys.readouterr().err


def test_resolve_explains_the_order_and_the_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "skills", "resolve", "Backtest the strategy and size each position", "--json")
    assert data["load_order"] == ["system-architect", "safety-guardian", "trading-strategist", "risk-manager"]
    assert [m["skill"] for m in data["matched"]] == ["trading-strategist", "risk-manager"]
    assert data["skills"][0]["reason"] == "needed by risk-manager"
    assert data["total_tokens"] == sum(s["tokens"] for s in data["skills"])
    assert main(["skills", "resolve", "Backtest the strategy and size each position"]) == 0
    out = capsys.readouterr().out
    assert "3. trading-strategist   matched 'Backtest'" in out


def test_resolve_context_prints_what_the_hook_injects(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skills", "resolve", "write a GLSL shader", "--context"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[ultramax skills] Expertise loaded for this prompt")
    assert out.index('<skill name="creative-director"') < out.index('<skill name="visual-artist"')


def test_resolve_reports_skills_dropped_by_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "Before we deploy the new strategy, audit the position limits and write tests for the risk checks"
    assert main(["skills", "resolve", prompt]) == 0
    assert "   not loaded: code-master: over the 5-skill cap" in capsys.readouterr().out
    data = run_json(capsys, "skills", "resolve", prompt, "--json")
    assert data["dropped"] == [{"name": "code-master", "why": "cap", "needs": []}]


def test_resolve_does_not_say_nothing_matched_when_every_match_was_dropped(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.update_user_settings({"ultramax": {"skillsTokenBudget": 0}})
    assert main(["skills", "resolve", "deploy the docker image"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no skill loaded: the 1 skill that matched did not fit\n")
    assert "   not loaded: devops-engineer (with system-architect): over the 0-token budget" in out
    assert main(["skills", "resolve", "hello there"]) == 0
    assert capsys.readouterr().out == "no skill matches this prompt\n"


def test_list_shows_the_effective_graph(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    write_graph(umx.claude_dir, {"notes": {"dependencies": ["letta-memory"], "triggers": ["notes"], "priority": 2}})
    data = run_json(capsys, "skills", "list", "--json")
    rows = {r["name"]: r for r in data["skills"]}
    assert len(rows) == 12 and data["resolution"]["max_depth"] == 3
    assert rows["notes"]["closure"] == ["letta-memory", "notes"] and rows["notes"]["source"].endswith("config.json")
    assert rows["code-master"]["source"] == "packaged" and rows["code-master"]["tokens"] > 300
    assert main(["skills", "list"]) == 0
    assert "risk-manager         p1" in capsys.readouterr().out


def test_list_reports_tokens_with_the_users_per_skill_share(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.update_user_settings({"ultramax": {"skillsTokensPerSkill": 100}})
    rows = {row["name"]: row for row in run_json(capsys, "skills", "list", "--json")["skills"]}
    assert rows["code-master"]["truncated"] is True and rows["code-master"]["tokens"] <= 100


def test_an_invalid_graph_fails_the_command_with_every_problem(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_graph(
        umx.claude_dir,
        {"a": {"dependencies": ["b"], "triggers": ["a"]}, "b": {"dependencies": ["a"], "triggers": ["b"]}},
    )
    assert main(["skills", "list"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: skill 'a': dependency cycle: a → b → a" in err


def test_with_json_every_failure_is_one_json_object_on_stderr_with_every_graph_problem(
    umx: UltramaxEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_graph(umx.claude_dir, {"loop": {"dependencies": ["loop"], "triggers": ["loop"]}})
    for action in (["list"], ["resolve", "loop"], ["sync"], ["eval", str(tmp_path / "none.jsonl")]):
        capsys.readouterr()
        assert main(["skills", *action, "--json"]) == 1
        out, err = capsys.readouterr()
        data = json.loads(err)
        assert out == "" and data["status"] == 1 and "dependency cycle: loop → loop" in data["error"]
        assert data["problems"] == [{"file": str(path), "skill": "loop", "message": "dependency cycle: loop → loop"}]
    path.unlink()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "deploy it", "expect_skills": "devops-engineer"}\n', encoding="utf-8")
    assert main(["skills", "eval", str(bad), "--json"]) == 1
    data = json.loads(capsys.readouterr().err)
    assert data == {"error": f'{bad}:1: "expect_skills" must be an array of skill names', "status": 1}
    assert main(["skills", "resolve", "x", "--require", "nope", "--json"]) == 1
    assert "no skill named 'nope'" in json.loads(capsys.readouterr().err)["error"]


def test_graph_option_uses_another_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"skills": {"devops-engineer": {"triggers": ["ship"]}}}))
    data = run_json(capsys, "skills", "resolve", "ship it", "--json", "--graph", str(graph))
    assert data["load_order"] == ["system-architect", "devops-engineer"]
    assert main(["skills", "resolve", "ship it", "--graph", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err


def test_eval_of_a_file_without_prompts_is_an_error_not_a_zero_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n// only a comment\n", encoding="utf-8")
    assert main(["skills", "eval", str(path)]) == 1
    assert "empty.jsonl: no prompts to evaluate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "unknown"),
    [
        ({"prompt": "fix the tests", "expect_skills": ["code-mastr"]}, "'code-mastr' (did you mean 'code-master'?)"),
        ({"prompt": "x", "expect_skills": [], "expect_order_constraints": [["code-master", "nosuch"]]}, "'nosuch'"),
    ],
)
def test_eval_names_the_line_of_a_skill_the_graph_does_not_have(
    tmp_path: Path, case: dict[str, Any], unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cases(tmp_path / "cases.jsonl", {"prompt": "fix the tests", "expect_skills": ["code-master"]}, case)
    assert main(["skills", "eval", str(path)]) == 1
    assert f"cases.jsonl:2: no skill named {unknown} in the graph" in capsys.readouterr().err


def test_resolve_refuses_a_required_skill_the_graph_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skills", "resolve", "fix the tests", "--require", "code-mastr"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "ultramax: --require: no skill named 'code-mastr' (did you mean 'code-master'?); "
        "`ultramax skills list` shows them\n"
    )
