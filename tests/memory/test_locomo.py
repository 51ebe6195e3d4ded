"""LoCoMo-format files: a file of another shape is refused with where it differs, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main


def turn(text: str, dia_id: str = "D1:1") -> dict[str, Any]:
    return {"speaker": "Ana", "dia_id": dia_id, "text": text}


def conversation(turns: list[Any], qa: Any, **extra: Any) -> dict[str, Any]:
    return {"sample_id": "proj-1", "conversation": {"session_1": turns, **extra}, "qa": qa}


QUESTION = {"question": "Which port does billing use?", "answer": "8123", "evidence": ["D1:1"], "category": 4}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", " is empty; a LoCoMo file is a JSON list of conversations"),
        ("[]", ": the list holds no conversations, so there is nothing to score"),
        ('{"qa": []}', ": expected a JSON list of conversations, as locomo10.json holds, not an object"),
        ("[1, 2]", ": conversation 1: expected an object with 'conversation' and 'qa', not the number 1"),
        (
            [conversation([turn("billing on 8123"), "and auth on 9000"], [QUESTION])],
            ": conversation 1 (proj-1), session_1 turn 2: expected an object with 'speaker' and 'text', "
            'not the string "and auth on 9000"',
        ),
        (
            [conversation([turn("billing on 8123")], [QUESTION | {"category": "single"}])],
            ": conversation 1 (proj-1), question 1: 'category' must be a whole number (LoCoMo's are 1 to 5), "
            'not the string "single"',
        ),
        (
            [conversation([turn("billing on 8123")], [QUESTION | {"question": None}])],
            ": conversation 1 (proj-1), question 1: 'question' must be the question's text, not null",
        ),
        (
            [conversation([turn("billing on 8123")], [QUESTION | {"evidence": 3}])],
            ": conversation 1 (proj-1), question 1: 'evidence' must be a list of turn ids",
        ),
        (
            [conversation([turn("billing on 8123")], {"q": 1})],
            ": conversation 1 (proj-1): 'qa' must be a list of questions, not an object",
        ),
        (
            [conversation([turn("billing on 8123")], [QUESTION], session_1_date_time="next Tuesday")],
            ": conversation 1 (proj-1), session_1_date_time: unrecognised date 'next Tuesday'",
        ),
        (
            [conversation([turn("billing on 8123")], [])],
            ": no questions to score (no conversation has a 'qa' list with entries)",
        ),
    ],
)
def test_a_file_not_in_the_locomo_format_is_refused_saying_where(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: Any, problem: str
) -> None:
    data = tmp_path / "dialogs.json"
    data.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    code = main(["memory", "eval", "--locomo", str(data)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith(f"ultramax: {data}{problem}")


def test_a_missing_locomo_file_is_a_clear_error(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["memory", "eval", "--locomo", str(tmp_path / "nope.json")])
    assert code == 1
    assert capsys.readouterr().err.startswith(f"ultramax: cannot read {tmp_path / 'nope.json'}: No such file")


def test_scoring_no_conversations_is_refused_by_the_command_line(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["memory", "eval", "--locomo", str(tmp_path / "x.json"), "--conversations", "0"])
    assert exited.value.code == 2
    assert "argument --conversations: must be 1 or more, not 0" in capsys.readouterr().err
