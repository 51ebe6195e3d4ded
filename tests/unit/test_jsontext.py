"""Entries are cut out of JSON text with their separators, inserted in the layout of their neighbours and rewritten
where they are; every other byte stays as it was written."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramax.jsontext import JsonPath, edit_text, remove_entries

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


# --- edit_text: entries inserted and values rewritten where they are, the rest kept -------------------------

LAYOUT = (
    '{\r\n   "a" : 1.0e3,\r\n   "list": [ "x", "y", "z" ],\r\n   "obj": {},\r\n   "line": {"k": "\\u00e9"}\r\n}\r\n'
)


def edited(change: Callable[[Any], None], text: str = LAYOUT, indent: str = "   ") -> str | None:
    """``text`` edited to hold what ``change`` makes of its data."""
    new = json.loads(text)
    change(new)
    return edit_text(text, json.loads(text), new, indent=indent)


def test_a_new_member_follows_its_neighbours_separator_indentation_and_line_endings() -> None:
    out = edited(lambda d: d.update(b=[1, {"c": 2}]))
    tail = ',\r\n   "b": [\r\n      1,\r\n      {\r\n         "c": 2\r\n      }\r\n   ]\r\n}\r\n'
    assert out == LAYOUT[: -len("\r\n}\r\n")] + tail


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ('{"model":"opus","hooks":{}}\n', '{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command"}]}]}}\n'),
        ('{"model": "opus", "hooks": {}}', '{"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command"}]}]}}'),
    ],
)
def test_a_file_written_on_one_line_gets_its_new_values_on_that_line_spaced_like_it(text: str, after: str) -> None:
    assert edited(lambda d: d["hooks"].update(Stop=[{"hooks": [{"type": "command"}]}]), text) == after


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        (lambda d: d["list"].insert(0, "w"), '[ "x", "y", "z" ]', '[ "w", "x", "y", "z" ]'),
        (lambda d: d["list"].insert(2, "w"), '[ "x", "y", "z" ]', '[ "x", "y", "w", "z" ]'),
        (lambda d: d["list"].append("w"), '[ "x", "y", "z" ]', '[ "x", "y", "z", "w" ]'),
        (lambda d: d["list"].__setitem__(2, "q"), '[ "x", "y", "z" ]', '[ "x", "y", "q" ]'),
        (lambda d: d["list"].__delitem__(0) or d["list"].append("w"), '[ "x", "y", "z" ]', '[ "y", "z", "w" ]'),
        (lambda d: d["line"].update(n=[1, 2]), '{"k": "\\u00e9"}', '{"k": "\\u00e9", "n": [1, 2]}'),
        (lambda d: d["obj"].update(k=1), '"obj": {}', '"obj": {\r\n      "k": 1\r\n   }'),
        (lambda d: d.update(a=1000), "1.0e3", "1000"),  # an int is not the float the file spelled 1.0e3
    ],
)
def test_an_edit_touches_only_its_own_entry(change: Callable[[Any], None], before: str, after: str) -> None:
    assert LAYOUT.count(before) == 1
    assert edited(change) == LAYOUT.replace(before, after)


def test_a_value_that_is_equal_keeps_its_spelling_even_when_the_container_changes() -> None:
    out = edited(lambda d: d.update(a=1000.0, line={"k": "é", "m": None}))
    assert out is not None and '"a" : 1.0e3,' in out and '"line": {"k": "\\u00e9", "m": null}' in out


def test_removed_and_inserted_entries_of_one_container_do_not_disturb_each_other() -> None:
    def change(d: Any) -> None:
        del d["line"]
        d["new"] = True

    assert (
        edited(change)
        == '{\r\n   "a" : 1.0e3,\r\n   "list": [ "x", "y", "z" ],\r\n   "obj": {},\r\n   "new": true\r\n}\r\n'
    )


def test_a_change_the_text_cannot_take_is_refused() -> None:
    def reorder(d: Any) -> None:
        d["a"] = d.pop("a") + 1

    assert edited(reorder) is None  # kept keys in another order
    assert edited(lambda d: d.update(b=1), '{"a": 1, "a": 2}') is None  # a key written twice
    assert edit_text("not json", {}, {"a": 1}) is None


# --- edit_text on any document, any layout, any one change -------------------------------------------------

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
DOCS = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_size=5,
)


def lay_out(value: Any, data: st.DataObject, newline: str, unit: str, depth: int = 0) -> str:
    """``value`` as JSON in a layout drawn at random: per container on one line or indented, odd spacing."""
    if not isinstance(value, dict | list) or not value:
        return json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    items = [
        (json.dumps(k) + data.draw(st.sampled_from([":", ": ", " : "])) if isinstance(value, dict) else "")
        + lay_out(v, data, newline, unit, depth + 1)
        for k, v in (value.items() if isinstance(value, dict) else enumerate(value))
    ]
    open_, close = "{}" if isinstance(value, dict) else "[]"
    if data.draw(st.booleans()):
        return open_ + data.draw(st.sampled_from(["", " "])) + ", ".join(items) + close
    inner = newline + unit * (depth + 1)
    return open_ + inner + ("," + inner).join(items) + newline + unit * depth + close


def containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    here = [path] if isinstance(value, dict | list) else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return here + [p for k, v in children for p in containers(v, (*path, k))]


def change_one_thing(doc: Any, data: st.DataObject) -> tuple[str, JsonPath]:
    """Insert, remove or replace one entry somewhere in ``doc`` (keys keep their order); returns what and where."""
    target = doc
    where: JsonPath = data.draw(st.sampled_from(containers(doc)))
    for step in where:
        target = target[step]
    action = data.draw(st.sampled_from(["insert", "remove", "replace"] if target else ["insert"]))
    value = data.draw(
        SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=4), SCALARS, max_size=3)
    )
    if isinstance(target, list):
        index = data.draw(st.integers(0, len(target) - (action != "insert")))
        if action == "insert":
            target.insert(index, value)
        elif action == "remove":
            del target[index]
        else:
            target[index] = value
        return action, (*where, index)
    key = data.draw(
        st.text(max_size=6).filter(lambda k: k not in target) if action == "insert" else st.sampled_from(list(target))
    )
    if action == "remove":
        del target[key]
    else:
        target[key] = value
    return action, (*where, key)


@settings(max_examples=200, deadline=None, database=None)
@given(doc=DOCS, data=st.data())
def test_any_one_change_in_any_layout_is_made_in_the_text_and_gives_exactly_the_new_data(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    newline, unit = data.draw(st.sampled_from(["\n", "\r\n"])), data.draw(st.sampled_from(["  ", "   ", "\t"]))
    text = lay_out(doc, data, newline, unit) + data.draw(st.sampled_from(["", newline]))
    new = copy.deepcopy(doc)
    action, where = change_one_thing(new, data)
    out = edit_text(text, doc, new, indent=unit)
    assert out is not None
    assert json.dumps(json.loads(out)) == json.dumps(new)  # the same data, key order and number types
    if action == "insert":  # taking the new entry out again gives back the text, byte for byte
        assert remove_entries(out, [where], doc) == text
    elif action == "remove":
        assert out == remove_entries(text, [where], new)
    assert out.count("\r\n") == out.count("\n") if "\r\n" in text else "\r" not in out  # the file's line endings
