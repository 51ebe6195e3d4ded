"""Which skills a prompt gets, in which order, within which budget.

1. **Match.** A trigger matches a prompt as a whole word, case-insensitively, in any inflected form --
   ``deploy`` matches *deploying*, *deployed*, *deploys*; ``test`` *tests*, *testing*; ``backtest``
   *backtesting*; ``strategy`` *strategies*; ``trade`` *trading*, *trader* -- but never inside another word:
   ``system`` does not match *systematic*, ``test`` not *latest*. A word is what an editor's "match whole
   word" means (``\b``): letters, digits and underscores, so ``pre-deploy`` contains the word *deploy* but
   ``test_auth`` does not contain *test*. A multi-word trigger (``position sizing``) matches its words in
   sequence, separated by spaces or hyphens, the last word inflected. In scripts without spaces between words
   (Chinese, Japanese, Thai, ...; Korean, which glues particles on) there is no boundary to check.
2. **Rank.** Required skills first, then matched skills by priority (1 is highest), then by where the prompt
   first mentions them, then by config order -- the seed's ``conflict_resolution: priority``.
3. **Keep.** In rank order each skill is kept *together with every dependency it needs* (transitively,
   ``dependency-first``) if the whole unit fits: at most ``max_skills`` skills, at most ``token_budget``
   tokens of content in total, and, when the caller says so, at most ``max_chars`` characters of rendered
   context. A unit that does not fit is dropped whole, so a skill is never kept without its dependencies and
   a dependency is never kept for a skill that was dropped.
4. **Order.** Units are appended dependencies first, so every skill comes after everything it depends on.

Each skill's text is cut (at a line) to ``tokens_per_skill``; tokens are estimated from the UTF-8 size of the
text actually injected (3.5 bytes per token: a little above the rate of Claude's tokenizer on English
Markdown, so the estimate errs high). The seed's resolver instead capped the total at
``MAX_TOKENS_PER_SKILL * max_skills`` and could keep a skill whose dependency it had dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ultramax.skills.graph import SkillGraph

__all__ = [
    "BYTES_PER_TOKEN",
    "DroppedSkill",
    "Match",
    "ResolvedSkill",
    "SkillResolution",
    "SkillResolver",
    "estimate_tokens",
    "trigger_pattern",
]

BYTES_PER_TOKEN = 3.5
DEFAULT_MAX_SKILLS = 5
DEFAULT_TOKENS_PER_SKILL = 700
DEFAULT_TOKEN_BUDGET = 2800
HEADER = "[ultramax skills] Expertise loaded for this prompt, dependencies first: "
REPEATED = "Already in context from an earlier prompt of this session: "
FOOTER = "Also matched but not loaded (skill cap or budget): "
NOTHING_LOADED = "[ultramax skills] Matched but not loaded (skill cap, budget or no room left): "
_SEPARATOR = "\n\n"
MIN_FIT_CHARS = 600
"""The least of a skill's text worth injecting when it is shortened to fit the room left under the hook cap."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` costs in the model's context, estimated from its UTF-8 size (errs high)."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


# -- trigger matching ------------------------------------------------------------------------------------
_VOWELS = frozenset("aeiou")
_WORD_SPLIT = re.compile(r"[\s\-]+")
_WORD = re.compile(r"\w+")
# Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) or gluing
# particles onto them (Korean): no boundary is marked inside them, so a trigger edge in such a script matches
# wherever it occurs (部署 in 请部署应用) and is not inflected, and a letter of theirs next to a Latin word is a
# boundary (docker in 用docker部署).
_UNSPACED = (
    r"\u0e00-\u0eff"  # Thai, Lao
    r"\u1000-\u109f"  # Myanmar
    r"\u1780-\u17ff"  # Khmer
    r"\u3040-\u30ff"  # Hiragana, Katakana
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"  # Han
    r"\uac00-\ud7af"  # Hangul syllables
)
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
_BEFORE = rf"(?<![^\W{_UNSPACED}])"  # not preceded by a word character (letter, digit, underscore) of a spaced script
_AFTER = rf"(?![^\W{_UNSPACED}])"  # not followed by one
_WORDS_JOIN = r"[\s\-]+"


def _unspaced(ch: str) -> bool:
    return _UNSPACED_CHAR.match(ch) is not None


def _in_word(text: str, index: int) -> bool:
    """Whether the character before ``index`` is a word character of a spaced script (so ``index`` is not a
    word start)."""
    if index == 0:
        return False
    ch = text[index - 1]
    return (ch.isalnum() or ch == "_") and not _unspaced(ch)


def _inflections(word: str) -> str:
    """A regex for ``word`` and its inflected forms (plural, 3rd person, past, -ing, -er/-est)."""
    w = word.lower()
    if _unspaced(w[-1]):
        return re.escape(w)
    if len(w) < 3 or not w[-1].isalpha():
        return re.escape(w) + ("s?" if w[-1:].isalpha() else "")
    if w.endswith("e") and w[-2] not in "eoy":  # trade: trades traded trader trading; safe: safer safest
        return re.escape(w[:-1]) + "(?:e|es|ed|er|ers|est|ing)"
    if w.endswith("y") and w[-2] not in _VOWELS:  # study: studies studied studying; strategy: strategies
        return re.escape(w[:-1]) + "(?:y|ies|ied|ier|iest|ying)"
    if w.endswith(("s", "x", "z", "ch", "sh", "o")):  # research: researches researched researching
        return re.escape(w) + "(?:es|ed|ing|er|ers)?"
    suffixes = "s|ed|ing|er|ers|est"
    last = w[-1]
    if last not in _VOWELS and last not in "wxy":  # plan: planned planning (doubling where English does)
        suffixes += f"|{re.escape(last)}(?:ed|ing|er|ers)"
    return re.escape(w) + f"(?:{suffixes})?"


def trigger_pattern(trigger: str) -> str:
    """The regex that finds ``trigger`` as whole words in a lowercased prompt, its last word inflected (an
    edge in a script without spaces has no boundary to check)."""
    words = [w for w in _WORD_SPLIT.split(trigger.strip().lower()) if w]
    head = [re.escape(w) for w in words[:-1]]
    before = "" if _unspaced(words[0][0]) else _BEFORE
    after = "" if _unspaced(words[-1][-1]) else _AFTER
    return before + _WORDS_JOIN.join([*head, _inflections(words[-1])]) + after


# -- results --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Match:
    """A skill whose trigger occurs in the prompt: the trigger, the text it matched and where."""

    skill: str
    trigger: str
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class ResolvedSkill:
    name: str
    reason: str  # 'matched "deploying"' | "needed by code-master" | "required"
    text: str  # what is injected ("" if already in context)
    tokens: int
    truncated: bool = False
    repeated: bool = False  # loaded by an earlier prompt of the session; not injected again


@dataclass(frozen=True, slots=True)
class DroppedSkill:
    name: str
    why: str  # "cap" | "budget" | "space" | "unknown"
    needs: tuple[str, ...] = ()  # the dependencies that would have come with it


@dataclass(slots=True)
class SkillResolution:
    """The outcome for one prompt: skills in load order, what matched, what was dropped and why."""

    skills: list[ResolvedSkill]
    matched: list[Match]
    dropped: list[DroppedSkill] = field(default_factory=list)
    max_chars: int | None = None

    @property
    def load_order(self) -> list[str]:
        return [s.name for s in self.skills]

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.skills)

    def context(self) -> str:
        """The additionalContext to inject ("" if nothing new): a header, then one block per skill."""
        fresh = [s for s in self.skills if not s.repeated]
        missed = [d.name for d in self.dropped if d.why != "unknown"]
        if not fresh:
            if not missed or self.skills:
                return ""
            only = NOTHING_LOADED + ", ".join(missed) + "."
            return only if self.max_chars is None or len(only) <= self.max_chars else ""
        parts = [_header([s.name for s in fresh], [s.name for s in self.skills if s.repeated])]
        parts += [_block(s) for s in fresh]
        text = _SEPARATOR.join(parts)
        if missed:
            footer = FOOTER + ", ".join(missed) + "."
            if self.max_chars is None or len(text) + len(_SEPARATOR) + len(footer) <= self.max_chars:
                text += _SEPARATOR + footer
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_order": self.load_order,
            "skills": [
                {
                    "name": s.name,
                    "reason": s.reason,
                    "tokens": s.tokens,
                    "truncated": s.truncated,
                    "repeated": s.repeated,
                }
                for s in self.skills
            ],
            "matched": [
                {"skill": m.skill, "trigger": m.trigger, "text": m.text, "position": m.position} for m in self.matched
            ],
            "dropped": [{"name": d.name, "why": d.why, "needs": list(d.needs)} for d in self.dropped],
            "total_tokens": self.total_tokens,
        }


def _header(fresh: Iterable[str], repeated: list[str]) -> str:
    line = HEADER + ", ".join(fresh) + ". Apply them where they fit the task."
    if repeated:
        line += "\n" + REPEATED + ", ".join(repeated) + "."
    return line


def _block(skill: ResolvedSkill) -> str:
    reason = skill.reason.replace('"', "'")
    return f'<skill name="{skill.name}" reason="{reason}">\n{skill.text}\n</skill>'


def _truncate(text: str, max_tokens: int, name: str, path: Path) -> tuple[str, bool]:
    if estimate_tokens(text) <= max_tokens:
        return text, False
    # where the rest is, so Claude can Read it when the cut part matters
    note = f"\n[… {name} cut to its {max_tokens}-token share; the rest is in {path}]"
    room = int(max_tokens * BYTES_PER_TOKEN) - len(note.encode("utf-8"))
    cut = text.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
    line = cut.rfind("\n")
    if line > len(cut) // 2:
        cut = cut[:line]
    return cut.rstrip() + note, True


def _cut_to_fit(text: str, max_chars: int, name: str, path: Path) -> str:
    """``text`` cut at a line to at most ``max_chars`` characters, ending with where the rest is."""
    note = f"\n[… {name} shortened to fit the room left in this prompt's context; the rest is in {path}]"
    cut = text[: max(max_chars - len(note), 0)]
    line = cut.rfind("\n")
    if line > len(cut) // 2:
        cut = cut[:line]
    return cut.rstrip() + note


# -- the resolver ---------------------------------------------------------------------------------------
class SkillResolver:
    """Resolves prompts against one graph; build once (triggers are compiled here), call per prompt."""

    def __init__(
        self,
        graph: SkillGraph,
        *,
        max_skills: int = DEFAULT_MAX_SKILLS,
        tokens_per_skill: int = DEFAULT_TOKENS_PER_SKILL,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
    ) -> None:
        self.graph = graph
        self.max_skills = max_skills
        self.tokens_per_skill = tokens_per_skill
        self.token_budget = token_budget
        # Single-word triggers (the common case) share one alternation, scanned once over the lowercased
        # prompt; the word-start boundary is checked on each hit. (A leading lookbehind or IGNORECASE would
        # stop the regex engine from skipping ahead on the first letter: ~40x slower on a pasted log.)
        # Multi-word and punctuated triggers get their own pattern each.
        self._words: list[tuple[str, str, re.Pattern[str]]] = []
        self._phrases: list[tuple[str, str, re.Pattern[str], bool]] = []  # ..., whether its start is checked
        for skill in graph:
            for trigger in skill.triggers:
                words = [w for w in _WORD_SPLIT.split(trigger.lower()) if w]
                unspaced = _unspaced(words[0][0]) or _unspaced(words[-1][-1])
                if len(words) == 1 and _WORD.fullmatch(words[0]) and not unspaced:
                    self._words.append((skill.name, trigger, re.compile(_inflections(words[0]))))
                else:
                    unanchored = trigger_pattern(trigger).removeprefix(_BEFORE)  # the start is checked per hit
                    self._phrases.append((skill.name, trigger, re.compile(unanchored), not _unspaced(words[0][0])))
        forms = sorted({p.pattern for _s, _t, p in self._words}, key=len, reverse=True)
        self._word_scan = re.compile("(?:" + "|".join(forms) + ")" + _AFTER) if forms else None
        self._word_hits: dict[str, tuple[tuple[str, str], ...]] = {}
        self._texts: dict[str, tuple[object, str, int, bool]] = {}

    def _hits(self, word: str) -> tuple[tuple[str, str], ...]:
        """(skill, trigger) pairs whose single-word trigger has ``word`` as a form (memoised)."""
        hits = self._word_hits.get(word)
        if hits is None:
            hits = tuple((skill, trigger) for skill, trigger, form in self._words if form.fullmatch(word))
            if len(self._word_hits) > 4096:
                self._word_hits.clear()
            self._word_hits[word] = hits
        return hits

    def match(self, prompt: str) -> list[Match]:
        """Skills whose triggers occur in ``prompt``, each once, in order of first mention."""
        low = prompt.lower()
        same = len(low) == len(prompt)  # lowercasing kept offsets (not so for a few non-ASCII letters)
        first: dict[str, tuple[str, int, int]] = {}
        if self._word_scan is not None:
            for m in self._word_scan.finditer(low):
                start = m.start()
                if _in_word(low, start):
                    continue  # inside a longer word: "latest" is not "test"
                for skill, trigger in self._hits(m.group()):
                    if skill not in first:
                        first[skill] = (trigger, start, m.end())
        for skill, trigger, pattern, bounded in self._phrases:
            for hit in pattern.finditer(low):
                if bounded and _in_word(low, hit.start()):
                    continue
                if skill not in first or hit.start() < first[skill][1]:
                    first[skill] = (trigger, hit.start(), hit.end())
                break
        found = [
            Match(skill, trigger, (prompt if same else low)[start:end], start)
            for skill, (trigger, start, end) in first.items()
        ]
        found.sort(key=lambda x: (x.position, self.graph[x.skill].order))
        return found

    def prepared(self, name: str) -> tuple[str, int, bool]:
        """The skill's injectable text (cut to its token share), its tokens, and whether it was cut."""
        doc = self.graph.document(name)
        cached = self._texts.get(name)
        if cached is not None and cached[0] is doc:
            return cached[1], cached[2], cached[3]
        text, cut = _truncate(self._body(name), self.tokens_per_skill, name, self.graph[name].path)
        tokens = estimate_tokens(text)
        self._texts[name] = (doc, text, tokens, cut)
        return text, tokens, cut

    def _body(self, name: str) -> str:
        body = self.graph.document(name).body.strip()
        if not body:  # an empty block would say nothing: say where the text was expected
            body = f"[{name} has no guidance: its SKILL.md ({self.graph[name].path}) is empty or missing]"
        return body.replace("</skill>", "&lt;/skill&gt;")  # the text must not close the element that wraps it

    def _fit(self, entries: list[ResolvedSkill], room: int) -> list[ResolvedSkill] | None:
        """``entries`` (a skill and its dependencies) cut to share ``room`` characters of context, each keeping
        at least ``MIN_FIT_CHARS`` of its text and saying where the rest is; None if they cannot."""
        fresh = [e for e in entries if not e.repeated]
        if not fresh:
            return None
        overhead = sum(len(_block(replace(e, text=""))) + len(_SEPARATOR) for e in fresh)
        share = (room - overhead) // len(fresh)
        if share < MIN_FIT_CHARS:
            return None
        fitted: list[ResolvedSkill] = []
        for e in entries:
            if e.repeated or len(e.text) <= share:
                fitted.append(e)
                continue
            text = _cut_to_fit(self._body(e.name), share, e.name, self.graph[e.name].path)
            fitted.append(replace(e, text=text, tokens=estimate_tokens(text), truncated=True))
        return fitted

    def resolve(
        self,
        prompt: str,
        *,
        required: Iterable[str] = (),
        preferred: Collection[str] = (),
        already_loaded: frozenset[str] | set[str] = frozenset(),
        max_chars: int | None = None,
    ) -> SkillResolution:
        """Resolve ``prompt``; ``already_loaded`` skills count toward the cap but cost no tokens again;
        ``max_chars`` bounds the rendered context (the room left under Claude Code's hook output cap).
        Among matched skills, ``preferred`` ones (the project mode's) come before the others, then priority."""
        graph = self.graph
        matched = self.match(prompt)
        dropped: list[DroppedSkill] = []
        wanted: dict[str, str] = {}
        rank: dict[str, tuple[int, int, int, int, int]] = {}
        for name in required:
            if name not in graph:
                dropped.append(DroppedSkill(name, "unknown"))
            elif name not in wanted:
                wanted[name] = "required"
                rank[name] = (0, 0, 0, 0, graph[name].order)
        for m in matched:
            if m.skill not in wanted:
                wanted[m.skill] = f"matched '{m.text}'"
                first = 0 if m.skill in preferred else 1
                rank[m.skill] = (1, first, graph[m.skill].priority, m.position, graph[m.skill].order)
        ordered = sorted(wanted, key=rank.__getitem__)
        kept: dict[str, ResolvedSkill] = {}
        tokens = 0
        chars = 0
        if max_chars is not None:
            candidates = dict.fromkeys(n for w in ordered for n in graph.closure(w))
            chars = len(_header(candidates, list(already_loaded & candidates.keys())))
        for name in ordered:
            if name in kept:
                continue
            unit = [n for n in graph.closure(name) if n not in kept]
            needs = tuple(n for n in unit if n != name)
            if len(kept) + len(unit) > self.max_skills:
                dropped.append(DroppedSkill(name, "cap", needs))
                continue
            entries = [self._entry(n, wanted.get(n) or f"needed by {name}", already_loaded) for n in unit]
            unit_tokens = sum(e.tokens for e in entries)
            if tokens + unit_tokens > self.token_budget:
                dropped.append(DroppedSkill(name, "budget", needs))
                continue
            unit_chars = sum(len(_block(e)) + len(_SEPARATOR) for e in entries if not e.repeated)
            if max_chars is not None and chars + unit_chars > max_chars:
                # what does not fit whole may still fit shortened: the head of a skill beats none of it
                fitted = self._fit(entries, max_chars - chars)
                if fitted is None:
                    dropped.append(DroppedSkill(name, "space", needs))
                    continue
                entries = fitted
                unit_tokens = sum(e.tokens for e in entries)
                unit_chars = sum(len(_block(e)) + len(_SEPARATOR) for e in entries if not e.repeated)
            for entry in entries:
                kept[entry.name] = entry
            tokens += unit_tokens
            chars += unit_chars
        return SkillResolution(list(kept.values()), matched, dropped, max_chars)

    def _entry(self, name: str, reason: str, already_loaded: frozenset[str] | set[str]) -> ResolvedSkill:
        if name in already_loaded:
            return ResolvedSkill(name, reason, "", 0, repeated=True)
        text, tokens, cut = self.prepared(name)
        return ResolvedSkill(name, reason, text, tokens, truncated=cut)
