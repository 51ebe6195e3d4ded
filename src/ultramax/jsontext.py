"""Edit JSON text in place -- remove, insert and replace entries -- every other byte kept as the user wrote it.

``json.dumps`` of a parsed file gives back the same data in ultramax's layout: another indentation, keys
re-spaced, non-ASCII escaped or not, numbers re-printed (``1.0e3`` becomes ``1000.0``). Adding ultramax's
entries to a user's settings file, or taking them out, should show in a diff only those entries. So the text
is scanned for the spans of its values, and each edit touches only its own entry:

- a removal cuts the entry with the separator and the whitespace that belonged to it: up to the next kept
  entry's start (its comma; the next one's indent stays as it was); a run that ends the container from the
  end of the last kept entry; every entry of a container, its inside, leaving ``{}`` or ``[]``;
- an insertion goes after the kept entry it follows in the new data (before the first, if none), with the
  separator, indentation and ``key: value`` spacing of the entries next to it; a new container is written
  on one line where its neighbours are and it is short, else indented like the file -- and always on one
  line, spaced like the file, in a file written all on one line;
- a changed value is rewritten in place: containers entry by entry, so what did not change keeps its spelling.

The result is checked to parse to exactly what the caller meant (the same data, key order and number types),
so a layout this does not foresee can only lead to a fall-back, never to a wrong file.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JsonPath", "edit_text", "remove_entries"]

JsonPath = tuple[str | int, ...]
"""Where a value is: object keys and array indices from the top."""

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SCALAR = re.compile(r"[^,\]}\s]+")


@dataclass(slots=True)
class _Entry:
    start: int  # where the entry starts: its key in an object, its value in an array
    colon: str  # in an object, the text between the key and the value (``": "``); "" in an array
    value: _Node


@dataclass(slots=True)
class _Node:
    start: int
    end: int
    entries: list[_Entry] = field(default_factory=list)
    keys: dict[str | int, int] = field(default_factory=dict)  # key or index -> position in ``entries``


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text

    def skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        assert match is not None  # matches the empty string at worst
        return match.end()

    def value(self, pos: int) -> _Node:
        pos = self.skip(pos)
        char = self.text[pos : pos + 1]
        if char == "{":
            return self._container(pos, "}", keyed=True)
        if char == "[":
            return self._container(pos, "]", keyed=False)
        match = (_STRING if char == '"' else _SCALAR).match(self.text, pos)
        if match is None:
            raise ValueError(f"not JSON at offset {pos}")
        return _Node(pos, match.end())

    def _container(self, start: int, close: str, *, keyed: bool) -> _Node:
        node = _Node(start, start)
        pos = self.skip(start + 1)
        if self.text[pos : pos + 1] == close:
            node.end = pos + 1
            return node
        while True:
            entry = pos
            colon = ""
            if keyed:
                match = _STRING.match(self.text, pos)
                if match is None:
                    raise ValueError(f"expected a key at offset {pos}")
                key: str | int = json.loads(match.group(0))
                pos = self.skip(match.end())
                if self.text[pos : pos + 1] != ":":
                    raise ValueError(f"expected ':' at offset {pos}")
                pos = self.skip(pos + 1)
                colon = self.text[match.end() : pos]
            else:
                key = len(node.entries)
            child = self.value(pos)
            node.keys[key] = len(node.entries)  # a repeated key: the last one wins, as in json.loads
            node.entries.append(_Entry(entry, colon, child))
            pos = self.skip(child.end)
            char = self.text[pos : pos + 1]
            if char == close:
                node.end = pos + 1
                return node
            if char != ",":
                raise ValueError(f"expected ',' or {close!r} at offset {pos}")
            pos = self.skip(pos + 1)


def _find(root: _Node, path: JsonPath) -> _Node:
    node = root
    for step in path:
        node = node.entries[node.keys[step]].value
    return node


def _cuts(node: _Node, removed: set[int]) -> list[tuple[int, int]]:
    """The spans of text to delete to drop these entries of ``node`` (indices into its entries)."""
    entries = node.entries
    if len(removed) == len(entries):
        return [(node.start + 1, node.end - 1)]
    cuts: list[tuple[int, int]] = []
    index = 0
    while index < len(entries):
        if index not in removed:
            index += 1
            continue
        first = index
        while index < len(entries) and index in removed:
            index += 1
        last = index - 1
        if index < len(entries):  # a kept entry follows: cut up to its start
            cuts.append((entries[first].start, entries[index].start))
        else:  # the run ends the container: cut from the end of the kept entry before it
            cuts.append((entries[first - 1].value.end, entries[last].value.end))
    return cuts


def remove_entries(text: str, paths: list[JsonPath], expected: object) -> str | None:
    """``text`` without the members or elements at ``paths``, or None if the result would not parse to
    ``expected`` (the data the caller computed by removing the same entries from the parsed document)."""
    wanted = {path for path in paths if path}
    # an entry inside one being removed goes with it
    wanted = {p for p in wanted if not any(p[:n] in wanted for n in range(1, len(p)))}
    try:
        root = _Scanner(text).value(0)
        by_parent: dict[JsonPath, set[int]] = {}
        for path in wanted:
            parent = _find(root, path[:-1])
            by_parent.setdefault(path[:-1], set()).add(parent.keys[path[-1]])
        cuts = [cut for parent, indices in by_parent.items() for cut in _cuts(_find(root, parent), indices)]
    except (ValueError, KeyError, IndexError):
        return None
    for start, end in sorted(cuts, reverse=True):
        text = text[:start] + text[end:]
    try:
        return text if json.loads(text) == expected else None
    except ValueError:
        return None


# --- editing: insert, replace and remove, the rest kept ----------------------------------------------------

INLINE_WIDTH = 120
"""A value inserted into a container written on one line stays on that line if its JSON is this short."""


class _CannotEdit(Exception):
    """A change the text editor does not foresee (keys reordered, a repeated key): re-render instead."""


def _canon(value: Any) -> str:
    """A spelling that tells apart what ``==`` does not: key order, and 1 from 1.0 from true."""
    return json.dumps(value, ensure_ascii=False)


class _Editor:
    def __init__(self, text: str, indent: str) -> None:
        self.text = text
        self.indent = indent
        self.newline = "\r\n" if "\r\n" in text else "\n"
        # a file written on one line (minified, or by a tool) gets its new values on that line too, spaced
        # like it: one line of JSON followed by an indented block would be neither the user's style nor ours
        self.one_line: tuple[str, str] | None = None
        if "\n" not in text.rstrip("\r\n"):
            self.one_line = (", " if re.search(r",\s", text) else ",", ": " if re.search(r'"\s*:\s', text) else ":")
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement)

    def apply(self) -> str:
        text = self.text
        # from the end, so offsets stay valid; at one offset the cut (longer) goes before the insertion
        for start, end, replacement in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    # -- what changed --------------------------------------------------------------------------------------
    def diff(self, node: _Node, old: Any, new: Any) -> None:
        if _canon(old) == _canon(new):
            return
        if isinstance(old, dict) and isinstance(new, dict):
            self._object(node, old, new)
        elif isinstance(old, list) and isinstance(new, list):
            self._array(node, old, new)
        else:
            self._replace(node, new)

    def _object(self, node: _Node, old: dict[str, Any], new: dict[str, Any]) -> None:
        if len(node.entries) != len(old):
            raise _CannotEdit("a key is repeated")
        kept = [k for k in new if k in old]
        if kept != [k for k in old if k in new]:
            raise _CannotEdit("keys were reordered")
        if not kept and new:
            self._replace(node, new)
            return
        removed = {node.keys[k] for k in old if k not in new}
        inserts: dict[int, list[tuple[str | None, Any]]] = {}
        anchor = -1
        for key, value in new.items():
            if key in old:
                anchor = node.keys[key]
                self.diff(node.entries[anchor].value, old[key], value)
            else:
                inserts.setdefault(anchor, []).append((key, value))
        self._reshape(node, removed, inserts)

    def _array(self, node: _Node, old: list[Any], new: list[Any]) -> None:
        if len(node.entries) != len(old):
            raise _CannotEdit("the text and the data disagree")
        matcher = difflib.SequenceMatcher(None, [_canon(v) for v in old], [_canon(v) for v in new], autojunk=False)
        removed: set[int] = set()
        paired: dict[int, int] = {}  # old index -> new index, for elements kept (and edited if they differ)
        added: list[tuple[int, Any]] = []  # (the old index it goes after, value), in the new order
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            pairs = (i2 - i1) if op == "equal" else min(i2 - i1, j2 - j1) if op == "replace" else 0
            for k in range(pairs):
                paired[i1 + k] = j1 + k
            removed.update(range(i1 + pairs, i2))
            added += [(i1 + pairs - 1, new[j]) for j in range(j1 + pairs, j2)]
        if not paired and new:
            self._replace(node, new)
            return
        for i, j in paired.items():
            self.diff(node.entries[i].value, old[i], new[j])
        inserts: dict[int, list[tuple[str | None, Any]]] = {}
        for after, value in added:
            anchor = max((i for i in paired if i <= after), default=-1)  # the kept element it follows
            inserts.setdefault(anchor, []).append((None, value))
        self._reshape(node, removed, inserts)

    # -- the edits -----------------------------------------------------------------------------------------
    def _reshape(self, node: _Node, removed: set[int], inserts: dict[int, list[tuple[str | None, Any]]]) -> None:
        """Cut the removed entries of a container that keeps some, and insert the new ones after their anchors
        (the kept entry they follow; -1: before the first), in the layout of the entries around them."""
        if removed:
            self.edits += [(start, end, "") for start, end in _cuts(node, removed)]
        entries = node.entries
        for anchor, items in inserts.items():
            # the separator and indentation of the entries next to the insertion
            if len(entries) > 1:
                i = max(anchor, 0) if anchor < len(entries) - 1 else len(entries) - 2
                sep, neighbour = self.text[entries[i].value.end : entries[i + 1].start], entries[i + 1]
            else:
                sep, neighbour = "," + (self.text[node.start + 1 : entries[0].start] or " "), entries[0]
            line, colon, inline = self._line_indent(neighbour.start), neighbour.colon or ": ", "\n" not in sep
            at = entries[anchor].value.end if anchor >= 0 else entries[0].start
            members = [
                (json.dumps(key, ensure_ascii=False) + colon if key is not None else "")
                + self._render(value, line, inline=inline)
                for key, value in items
            ]
            if anchor >= 0:
                self.edits.append((at, at, "".join(sep + m for m in members)))
            else:
                self.edits.append((at, at, "".join(m + sep for m in members)))

    def _replace(self, node: _Node, new: Any) -> None:
        # a container the user wrote on one line is rewritten on one line; an empty one or a scalar tells nothing
        inline = bool(node.entries) and "\n" not in self.text[node.start : node.end]
        self.edits.append((node.start, node.end, self._render(new, self._line_indent(node.start), inline=inline)))

    def _line_indent(self, pos: int) -> str:
        line_start = self.text.rfind("\n", 0, pos) + 1
        line = self.text[line_start:pos]
        return line[: len(line) - len(line.lstrip(" \t"))]

    def _render(self, value: Any, line: str, *, inline: bool) -> str:
        """``value`` as JSON: on one line where its neighbours are (``inline``) if that is short, else indented
        like the file from ``line`` (the indentation of the line it starts on)."""
        if self.one_line is not None:
            return json.dumps(value, ensure_ascii=False, separators=self.one_line)
        compact = json.dumps(value, ensure_ascii=False)
        if not isinstance(value, dict | list) or not value or (inline and len(compact) <= INLINE_WIDTH):
            return compact
        return json.dumps(value, indent=self.indent, ensure_ascii=False).replace("\n", self.newline + line)


def edit_text(text: str, old: Any, new: Any, *, indent: str = "  ") -> str | None:
    """``text``, which parses to ``old``, edited to parse to ``new``: values that differ are rewritten, entries
    that went are cut with their separators, new ones inserted after the entry they follow -- spaced, indented
    and line-ended like their neighbours, nested levels by ``indent`` -- and every other byte kept.

    None if that cannot be done (keys reordered, a repeated key) or would not give exactly ``new`` -- the same
    data, key order and number types: then the caller renders ``new`` itself.
    """
    try:
        editor = _Editor(text, indent)
        editor.diff(_Scanner(text).value(0), old, new)
        edited = editor.apply()
        return edited if _canon(json.loads(edited)) == _canon(new) else None
    except (_CannotEdit, ValueError, KeyError, IndexError, RecursionError):
        return None
