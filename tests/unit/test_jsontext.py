"""Entries are cut out of JSON text with their separators; every other byte stays as it was written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ultramax.jsontext import JsonPath, remove_entries

TEXT = """{
   "a" : 1.0e3,
   "list": [ "x", "y", "z" ],
   "obj": {
      "k1": {"deep": [1, 2]},
      "k2": "\\u00e9t\\u00e9",
      "k3": null
   }
}
"""


def without(paths: list[JsonPath]) -> Any:
    """The parsed TEXT with the entries at ``paths`` deleted (later ones first, so indices stay valid)."""
    data = json.loads(TEXT)
    for path in sorted(paths, reverse=True):
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
    return data


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([("list", 0)], '"list": [ "y", "z" ],'),
        ([("list", 1)], '"list": [ "x", "z" ],'),
        ([("list", 2)], '"list": [ "x", "y" ],'),
        ([("list", 1), ("list", 2)], '"list": [ "x" ],'),
        ([("list", 0), ("list", 1), ("list", 2)], '"list": [],'),
        ([("obj", "k1")], '"obj": {\n      "k2": "\\u00e9t\\u00e9",\n      "k3": null\n   }'),
        ([("obj", "k3")], '"obj": {\n      "k1": {"deep": [1, 2]},\n      "k2": "\\u00e9t\\u00e9"\n   }'),
        ([("obj", "k1", "deep", 0), ("obj", "k1")], '"obj": {\n      "k2"'),
    ],
)
def test_an_entry_goes_with_its_separator_and_the_rest_keeps_its_spelling(paths: list[JsonPath], expected: str) -> None:
    wanted = [p for p in paths if not any(p[: len(q)] == q and p != q for q in paths)]
    out = remove_entries(TEXT, paths, without(wanted))
    assert out is not None and expected in out
    assert out.startswith('{\n   "a" : 1.0e3,')  # untouched bytes stay as they were


def test_removing_the_last_member_of_the_document_leaves_the_other_lines_as_they_were() -> None:
    out = remove_entries(TEXT, [("obj",)], without([("obj",)]))
    assert out == '{\n   "a" : 1.0e3,\n   "list": [ "x", "y", "z" ]\n}\n'


def test_a_result_that_would_not_be_what_the_caller_expects_is_refused() -> None:
    expected = copy.deepcopy(without([("list", 0)]))
    expected["a"] = 2
    assert remove_entries(TEXT, [("list", 0)], expected) is None
    assert remove_entries(TEXT, [("missing",)], json.loads(TEXT)) is None
    assert remove_entries("not json", [("a",)], {}) is None
