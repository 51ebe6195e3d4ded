"""The skill graph (seed section 6): which skills exist, what each depends on, and what triggers it.

The format is the seed's ``~/.claude/skills/graphs/config.json``::

    {"version": "8.0",
     "skills": {"code-master": {"path": "skills/graphs/code-master/SKILL.md",
                                "dependencies": ["system-architect"], "provides": ["testing"],
                                "triggers": ["code", "implement", "refactor", "test"], "priority": 2}},
     "resolution": {"strategy": "dependency-first", "max_depth": 3, "conflict_resolution": "priority"}}

ultramax ships the seed's eleven skills (``skills/data/config.json``). The user's file is layered on top: an
entry for a shipped skill overrides only the fields it gives (``{"priority": 1}`` is enough), a new name adds
a skill (``path`` required), and ``"enabled": false`` removes one. Optional ``description`` overrides the
SKILL.md frontmatter's. Priority 1 is the highest. A relative ``path`` is looked up next to the config file,
then under the Claude directory (the seed's convention, ``skills/graphs/<name>/SKILL.md``); a shipped skill
whose file the user has not written keeps the shipped text.

Validation collects every problem -- bad fields, an unknown dependency, a cycle (named, ``a → b → a``), a
dependency chain deeper than ``resolution.max_depth``, a skill or field given twice -- each naming the file
and the skill, and raises them together as one ``SkillGraphError``.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultramax.errors import UltramaxError
from ultramax.skills.document import NAME_RE, SkillDocument, parse_skill_document

__all__ = [
    "PACKAGED_CONFIG",
    "GraphProblem",
    "Skill",
    "SkillGraph",
    "SkillGraphError",
    "UnknownSkillError",
    "load_graph",
    "user_graph_path",
]

PACKAGED_DIR = Path(__file__).resolve().parent / "data"
PACKAGED_CONFIG = PACKAGED_DIR / "config.json"

SKILL_FIELDS = ("path", "dependencies", "provides", "triggers", "priority", "description", "enabled")
RESOLUTION_DEFAULTS: dict[str, Any] = {
    "strategy": "dependency-first",
    "max_depth": 3,
    "conflict_resolution": "priority",
}
MAX_PRIORITY = 100
MAX_DEPTH_LIMIT = 10
RETRY_INVALID_SECONDS = 5.0


def user_graph_path(claude_dir: Path) -> Path:
    """Where the user's graph lives: ``~/.claude/skills/graphs/config.json``."""
    return claude_dir / "skills" / "graphs" / "config.json"


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """One thing wrong with a graph file, located by file and skill."""

    file: str
    skill: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: skill {self.skill!r}" if self.skill else self.file
        return f"{where}: {self.message}"


class SkillGraphError(UltramaxError):
    """A skill graph file is unreadable or invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[GraphProblem]) -> None:
        self.problems = problems
        super().__init__("invalid skill graph:\n  " + "\n  ".join(str(p) for p in problems))

    def details(self) -> dict[str, Any]:
        return {"problems": [{"file": p.file, "skill": p.skill, "message": p.message} for p in self.problems]}


class UnknownSkillError(UltramaxError):
    """A skill named on the command line is not in the graph."""


@dataclass(frozen=True, slots=True)
class Skill:
    """One node of the graph, with its content file resolved."""

    name: str
    path: Path
    dependencies: tuple[str, ...]
    provides: tuple[str, ...]
    triggers: tuple[str, ...]
    priority: int
    source: str  # the config file that defined it ("packaged" for ultramax's own)
    order: int  # position in the merged config, a stable tie-break
    description: str = ""  # from the graph; else the SKILL.md frontmatter's


@dataclass(slots=True)
class _Entry:
    fields: dict[str, Any]
    source: str
    base_dirs: tuple[Path, ...]
    fallback: Path | None = None  # the shipped file for a shipped skill the user overrides
    dep_source: str = ""  # the file that set its dependencies (an override may change only other fields)


class SkillGraph:
    """A validated graph: skills in config order, resolution settings, and cached SKILL.md contents."""

    def __init__(
        self,
        skills: Mapping[str, Skill],
        *,
        max_depth: int = 3,
        strategy: str = "dependency-first",
        conflict_resolution: str = "priority",
        sources: tuple[str, ...] = ("packaged",),
        notes: tuple[str, ...] = (),
    ) -> None:
        self.skills = dict(skills)
        self.max_depth = max_depth
        self.strategy = strategy
        self.conflict_resolution = conflict_resolution
        self.sources = sources
        self.notes = notes
        self._closures: dict[str, tuple[str, ...]] = {}
        self._docs: dict[Path, tuple[int, SkillDocument]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.skills

    def __getitem__(self, name: str) -> Skill:
        return self.skills[name]

    def __iter__(self) -> Iterator[Skill]:
        return iter(self.skills.values())

    def __len__(self) -> int:
        return len(self.skills)

    def closure(self, name: str) -> tuple[str, ...]:
        """``name`` and everything it needs, transitively, dependencies first (declared order)."""
        cached = self._closures.get(name)
        if cached is not None:
            return cached
        out: list[str] = []
        seen: set[str] = set()

        def visit(node: str) -> None:
            if node in seen:
                return
            seen.add(node)
            for dep in self.skills[node].dependencies:
                visit(dep)
            out.append(node)

        visit(name)
        result = self._closures[name] = tuple(out)
        return result

    def document(self, name: str) -> SkillDocument:
        """The skill's SKILL.md, re-read when the file changes; empty if it vanished since loading."""
        path = self.skills[name].path
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return SkillDocument({}, "")
        cached = self._docs.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            doc = parse_skill_document(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return SkillDocument({}, "")
        self._docs[path] = (stamp, doc)
        return doc

    def unknown(self, name: str) -> str:
        """What to say about a name that is not a skill of this graph: a did-you-mean and where to look."""
        return f"no skill named {name!r}{_suggest(name, list(self.skills))}; `ultramax skills list` shows them"

    def body(self, name: str) -> str:
        return self.document(name).body

    def description(self, name: str) -> str:
        return self.skills[name].description or self.document(name).description


# -- loading ---------------------------------------------------------------------------------------------
class _Object(dict[str, Any]):
    """A parsed JSON object that remembers the keys it was given more than once (JSON keeps only the last)."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        obj.repeated = tuple(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    return obj


def _repeated_keys(data: Any, label: str, where: tuple[str, ...] = ()) -> list[GraphProblem]:
    """A key given twice in one object: json.loads would silently keep the second (a pasted skill replacing
    another of the same name, a second ``priority`` overriding the first), so it is a problem to fix."""
    if not isinstance(data, dict):
        return []
    problems = []
    for key in getattr(data, "repeated", ()):
        if where == ("skills",):
            problems.append(
                GraphProblem(label, key, "is defined more than once in this file; merge the entries into one")
            )
        elif len(where) == 2 and where[0] == "skills":
            problems.append(GraphProblem(label, where[1], f"field {key!r} is given more than once"))
        else:
            inside = ".".join(where) or "the top level"
            problems.append(GraphProblem(label, "", f"{inside}: field {key!r} is given more than once"))
    for key, value in data.items():
        problems.extend(_repeated_keys(value, label, (*where, key)))
    return problems


def _read_json(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is not JSON
    except OSError as exc:
        raise SkillGraphError([GraphProblem(label, "", f"cannot read the file ({exc.strerror or exc})")]) from exc
    except UnicodeDecodeError as exc:
        raise SkillGraphError([GraphProblem(label, "", "not UTF-8 text")]) from exc
    if not text.strip():
        return {}  # an empty file (just created) overrides nothing, as an empty settings file sets nothing
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise SkillGraphError([GraphProblem(label, "", f"not valid JSON ({exc.msg} at {where})")]) from exc
    if not isinstance(data, dict):
        raise SkillGraphError([GraphProblem(label, "", f"must be a JSON object, got {type(data).__name__}")])
    return data


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _check_entry(label: str, name: str, entry: Any, *, new: bool) -> list[GraphProblem]:
    """Field-level problems of one skill entry (``new``: not a shipped skill, so ``path`` is required)."""
    if not isinstance(entry, dict):
        return [GraphProblem(label, name, f"must be an object, got {json.dumps(entry)[:60]}")]
    problems: list[GraphProblem] = []

    def bad(message: str) -> None:
        problems.append(GraphProblem(label, name, message))

    if not NAME_RE.match(name):
        bad("the name must be 1-64 characters of a-z, 0-9 and '-' (it becomes the skill's directory name)")
    for key in entry:
        if key not in SKILL_FIELDS and not key.startswith(("$", "_")):
            bad(f"unknown field {key!r}{_suggest(key, SKILL_FIELDS)}; fields are {', '.join(SKILL_FIELDS)}")
    if entry.get("enabled", True) is False:
        return problems
    if "enabled" in entry and not isinstance(entry["enabled"], bool):
        bad(f"enabled must be true or false, got {json.dumps(entry['enabled'])}")
    if "path" in entry:
        if not isinstance(entry["path"], str) or not entry["path"].strip():
            bad(f"path must be a non-empty string, got {json.dumps(entry['path'])}")
    elif new:
        bad("path is required (where its SKILL.md is)")
    for key in ("dependencies", "provides", "triggers"):
        if key in entry and not _is_str_list(entry[key]):
            bad(f"{key} must be an array of non-empty strings, got {json.dumps(entry[key])[:80]}")
    if _is_str_list(entry.get("triggers")):
        for trigger in entry["triggers"]:
            if not any(ch.isalnum() for ch in trigger):
                bad(f"trigger {trigger!r} has no letter or digit to match")
    if "priority" in entry:
        value = entry["priority"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PRIORITY:
            bad(f"priority must be an integer from 1 (highest) to {MAX_PRIORITY}, got {json.dumps(value)}")
    if "description" in entry:
        value = entry["description"]
        if not isinstance(value, str) or not value.strip() or len(value) > 1024:
            bad("description must be a non-empty string of at most 1024 characters")
    return problems


def _check_resolution(label: str, block: Any) -> list[GraphProblem]:
    if not isinstance(block, dict):
        return [GraphProblem(label, "", f"resolution must be an object, got {json.dumps(block)[:60]}")]
    problems = []
    for key in block:
        if key not in RESOLUTION_DEFAULTS:
            hint = _suggest(key, tuple(RESOLUTION_DEFAULTS))
            problems.append(GraphProblem(label, "", f"resolution: unknown field {key!r}{hint}"))
    if "strategy" in block and block["strategy"] != "dependency-first":
        problems.append(GraphProblem(label, "", 'resolution.strategy must be "dependency-first"'))
    if "conflict_resolution" in block and block["conflict_resolution"] != "priority":
        problems.append(GraphProblem(label, "", 'resolution.conflict_resolution must be "priority"'))
    if "max_depth" in block:
        value = block["max_depth"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DEPTH_LIMIT:
            problems.append(
                GraphProblem(label, "", f"resolution.max_depth must be an integer from 1 to {MAX_DEPTH_LIMIT}")
            )
    return problems


def _find_file(raw: str, base_dirs: tuple[Path, ...]) -> Path | None:
    candidate = Path(raw).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in base_dirs:
        if (base / candidate).is_file():
            return base / candidate
    return None


def _entries(
    data: dict[str, Any],
    label: str,
    base_dirs: tuple[Path, ...],
    into: dict[str, _Entry],
    problems: list[GraphProblem],
    *,
    invalid: set[str],
) -> dict[str, Any]:
    """Merge one file's skills into ``into`` (``invalid``: the names of entries rejected for their fields);
    return its resolution block (validated)."""
    problems.extend(_repeated_keys(data, label))
    for key in data:
        if key not in ("version", "skills", "resolution") and not key.startswith(("$", "_")):
            hint = _suggest(key, ("version", "skills", "resolution"))
            problems.append(GraphProblem(label, "", f"unknown top-level field {key!r}{hint}"))
    if "version" in data and not isinstance(data["version"], str | int | float):
        problems.append(GraphProblem(label, "", 'version must be a string such as "8.0"'))
    skills = data.get("skills", {})
    if not isinstance(skills, dict):
        problems.append(GraphProblem(label, "", f"skills must be an object, got {json.dumps(skills)[:60]}"))
        skills = {}
    for name, entry in skills.items():
        shipped = into.get(name)
        found = _check_entry(label, name, entry, new=shipped is None)
        problems.extend(found)
        if found or not isinstance(entry, dict):
            invalid.add(name)
            continue
        if entry.get("enabled", True) is False:
            into.pop(name, None)
            continue
        if shipped is None:
            into[name] = _Entry(dict(entry), label, base_dirs, dep_source=label)
        else:
            fallback = shipped.fallback or _find_file(shipped.fields["path"], shipped.base_dirs)
            into[name] = _Entry(
                {**shipped.fields, **entry},
                label,
                base_dirs if "path" in entry else shipped.base_dirs,
                fallback=fallback,
                dep_source=label if "dependencies" in entry else shipped.dep_source,
            )
    resolution = data.get("resolution", {})
    problems.extend(_check_resolution(label, resolution))
    return resolution if isinstance(resolution, dict) else {}


def _cycles(graph: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search, each once (rotated to start at its least name)."""
    found: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :]
                start = cycle.index(min(cycle))
                key = tuple(cycle[start:] + cycle[:start])
                found.setdefault(key, [*key, key[0]])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return list(found.values())


def _longest_chains(graph: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """For an acyclic graph: each skill's longest dependency chain, the skill first."""
    memo: dict[str, list[str]] = {}

    def chain(node: str) -> list[str]:
        if node not in memo:
            best: list[str] = []
            for dep in graph[node]:
                candidate = chain(dep)
                if len(candidate) > len(best):
                    best = candidate
            memo[node] = [node, *best]
        return memo[node]

    for node in graph:
        chain(node)
    return memo


def _blame(sources: list[str]) -> str:
    """The file a problem made of parts from ``sources`` is reported against: the user's file(s) if any part
    came from one (the packaged graph is valid on its own), else the packaged graph."""
    mine = list(dict.fromkeys(s for s in sources if s != "packaged"))
    return ", ".join(mine) if mine else "packaged"


def _edge_note(edges: list[tuple[str, str]], entries: Mapping[str, _Entry], blamed: str) -> str:
    """Which of ``edges`` the blamed file set, when the packaged graph set the others."""
    if blamed == "packaged":
        return ""
    mine = [f"{a} → {b}" for a, b in edges if entries[a].dep_source != "packaged"]
    if not mine or len(mine) == len(edges):
        return ""
    return f" ({', '.join(mine)} set here; the rest by the packaged graph)"


def _cycle_problem(cycle: list[str], entries: Mapping[str, _Entry]) -> GraphProblem:
    edges = list(itertools.pairwise(cycle))
    blamed = _blame([entries[a].dep_source for a, _ in edges])
    skill = next((a for a, _ in edges if entries[a].dep_source in blamed.split(", ")), cycle[0])
    return GraphProblem(blamed, skill, "dependency cycle: " + " → ".join(cycle) + _edge_note(edges, entries, blamed))


def _depth_problem(chain: list[str], max_depth: int, depth_source: str, entries: Mapping[str, _Entry]) -> GraphProblem:
    edges = list(itertools.pairwise(chain))
    blamed = _blame([depth_source] + [entries[a].dep_source for a, _ in edges])
    where = " (set here)" if depth_source != "packaged" else ""
    return GraphProblem(
        blamed,
        chain[0],
        f"dependency chain {' → '.join(chain)} is {len(chain) - 1} deep; resolution.max_depth is {max_depth}{where}",
    )


def load_graph(user_config: Path | None = None, *, claude_dir: Path | None = None) -> SkillGraph:
    """The packaged graph, with ``user_config`` (if given and present) layered on top; validated.

    Raises SkillGraphError listing every problem, each naming the file and the skill.
    """
    problems: list[GraphProblem] = []
    entries: dict[str, _Entry] = {}
    invalid: set[str] = set()  # skills the file defines with bad fields: reported as such, not as unknown
    resolution = dict(RESOLUTION_DEFAULTS)
    packaged = _read_json(PACKAGED_CONFIG, str(PACKAGED_CONFIG))
    resolution.update(_entries(packaged, "packaged", (PACKAGED_DIR,), entries, problems, invalid=invalid))
    sources = ["packaged"]
    depth_source = "packaged"  # the file that set resolution.max_depth
    if user_config is not None and user_config.exists():
        label = str(user_config)
        data = _read_json(user_config, label)
        bases = (user_config.parent,) + ((claude_dir,) if claude_dir is not None else ())
        block = _entries(data, label, bases, entries, problems, invalid=invalid)
        resolution.update(block)
        depth_source = label if "max_depth" in block else depth_source
        sources.append(label)
    notes: list[str] = []
    skills: dict[str, Skill] = {}
    for order, (name, entry) in enumerate(entries.items()):
        f = entry.fields
        path = _find_file(f["path"], entry.base_dirs)
        if path is None and entry.fallback is not None:
            path = entry.fallback
            notes.append(f"{entry.source}: skill {name!r}: {f['path']} not found; using the shipped SKILL.md")
        if path is None:
            looked = ", ".join(str(b) for b in entry.base_dirs) if not Path(f["path"]).is_absolute() else "-"
            problems.append(GraphProblem(entry.source, name, f"path {f['path']!r}: no such file (looked in {looked})"))
            continue
        skills[name] = Skill(
            name=name,
            path=path,
            dependencies=tuple(dict.fromkeys(f.get("dependencies", []))),
            provides=tuple(f.get("provides", [])),
            triggers=tuple(dict.fromkeys(t.strip() for t in f.get("triggers", []))),
            priority=int(f.get("priority", 2)),
            source=entry.source,
            order=order,
            description=str(f.get("description", "")).strip(),
        )
    # checked over every entry, not only those whose file was found, so one pass reports all the problems
    deps = {name: tuple(dict.fromkeys(e.fields.get("dependencies", []))) for name, e in entries.items()}
    for name, needs in deps.items():
        for dep in needs:
            if dep not in entries and dep not in invalid:
                hint = _suggest(dep, list(entries))
                problems.append(GraphProblem(entries[name].source, name, f"depends on unknown skill {dep!r}{hint}"))
    cycles = _cycles({n: tuple(d for d in ds if d in entries) for n, ds in deps.items()})
    for cycle in cycles:
        problems.append(_cycle_problem(cycle, entries))
    if not problems:
        max_depth = int(resolution["max_depth"])
        for chain in _longest_chains(deps).values():
            if len(chain) - 1 > max_depth:
                problems.append(_depth_problem(chain, max_depth, depth_source, entries))
    if problems:
        raise SkillGraphError(problems)
    return SkillGraph(
        skills,
        max_depth=int(resolution["max_depth"]),
        strategy=str(resolution["strategy"]),
        conflict_resolution=str(resolution["conflict_resolution"]),
        sources=tuple(sources),
        notes=tuple(notes),
    )


@dataclass(slots=True)
class GraphCache:
    """The effective graph for one Claude directory, re-validated only when the user's file changes.

    An invalid user file never breaks the hook: the shipped graph is used and ``error`` says why. While it
    is invalid it is re-checked every few seconds too (a SKILL.md it names may have been written since).
    """

    claude_dir: Path
    retry_seconds: float = RETRY_INVALID_SECONDS
    _stamp: tuple[int, int] | None = None
    _graph: SkillGraph | None = None
    error: SkillGraphError | None = None
    generation: int = 0
    _packaged: SkillGraph | None = field(default=None, repr=False)
    _checked: float = 0.0

    @property
    def user_config(self) -> Path:
        return user_graph_path(self.claude_dir)

    def get(self) -> SkillGraph:
        try:
            st = os.stat(self.user_config)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, -1)
        retry = self.error is not None and time.monotonic() - self._checked >= self.retry_seconds
        if self._graph is not None and stamp == self._stamp and not retry:
            return self._graph
        self._checked = time.monotonic()
        before = str(self.error)
        try:
            graph = load_graph(self.user_config, claude_dir=self.claude_dir)
            self.error = None
        except SkillGraphError as exc:
            self.error = exc
            if self._packaged is None:
                self._packaged = load_graph(None)
            graph = self._packaged
        if graph is not self._graph or str(self.error) != before:
            self.generation += 1
        self._graph, self._stamp = graph, stamp
        return graph
