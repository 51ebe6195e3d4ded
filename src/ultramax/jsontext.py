"""Remove members and elements from JSON text in place, every other byte kept as the user wrote it.

``json.dumps`` of a parsed file gives back the same data in ultramax's layout: another indentation, keys
re-spaced, non-ASCII escaped or not, numbers re-printed (``1.0e3`` becomes ``1000.0``). Taking ultramax's
entries out of a user's settings file should show, in a diff, only those entries going. So the text is
scanned for the spans of its values, and each removal cuts the entry with the separator and the whitespace
that belonged to it:

- an entry followed by a kept one: from its start to the next one's start (its comma, the next one's indent
  stays as it was);
- a run of entries that ends the container: from the end of the last kept entry to the end of the run;
- every entry of a container: its inside, leaving ``{}`` or ``[]``.

The caller checks the result parses to what it meant (``remove_entries`` does that itself), so a layout this
does not foresee can only lead to a fall-back, never to a wrong file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

__all__ = ["JsonPath", "remove_entries"]

JsonPath = tuple[str | int, ...]
"""Where a value is: object keys and array indices from the top."""

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SCALAR = re.compile(r"[^,\]}\s]+")


@dataclass(slots=True)
class _Node:
    start: int
    end: int
    entries: list[tuple[int, _Node]] = field(default_factory=list)  # (where the entry starts, its value)
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
            if keyed:
                match = _STRING.match(self.text, pos)
                if match is None:
                    raise ValueError(f"expected a key at offset {pos}")
                key: str | int = json.loads(match.group(0))
                pos = self.skip(match.end())
                if self.text[pos : pos + 1] != ":":
                    raise ValueError(f"expected ':' at offset {pos}")
                pos += 1
            else:
                key = len(node.entries)
            child = self.value(pos)
            node.keys[key] = len(node.entries)  # a repeated key: the last one wins, as in json.loads
            node.entries.append((entry, child))
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
        node = node.entries[node.keys[step]][1]
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
            cuts.append((entries[first][0], entries[index][0]))
        else:  # the run ends the container: cut from the end of the kept entry before it
            cuts.append((entries[first - 1][1].end, entries[last][1].end))
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
