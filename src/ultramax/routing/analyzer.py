"""What a request needs: the seed's task signals from the prompt, plus the request's own signals.

``analyze_prompt`` gives the seed's ``TaskAnalysis`` (complexity 0-1, task type, estimated tokens, the
patterns that fired) with the seed's defects fixed: patterns match whole words, one strong architecture
signal is enough to matter, a small learned estimate (``difficulty``: how much a prompt needs the
stronger model, among prompts of its kind) orders prompts the patterns cannot tell apart, and software work
is scored by a tier model learned from labelled Claude Code prompts (``tier_model``).
``request_signals`` reads a Messages API request -- never changing it -- for what the prompt alone does
not say: the model the client asked for (a ceiling), thinking and effort, tools, context size, images,
plan mode, subagent headers, and whether it is one of Claude Code's background requests (title
generation, summaries, prompt hooks: no tools or a haiku-class model).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ultramax.routing.difficulty import Difficulty, estimate_difficulty
from ultramax.routing.tier_model import estimate_tier, split_prompt

__all__ = [
    "BACKGROUND_REASONS",
    "PatternSignals",
    "RequestSignals",
    "TaskAnalysis",
    "analyze_prompt",
    "forget_analyses",
    "latest_prompt",
    "pattern_signals",
    "request_signals",
    "session_id_of",
    "typed_text",
]


def _rx(*patterns: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((p, re.compile(p, re.I)) for p in patterns)


# The seed's three pattern families, as whole-word expressions (its substrings matched "format" in "information").
COMPLEX = _rx(
    r"\barchitect(?:ure|ures|ural|ing)\b",
    r"\b(?:re)?design(?:ing)?\b.{0,40}\b(?:system|service|platform|architecture|schema|protocol|api)s?\b",
    r"\bscalab(?:le|ility)\b",
    r"\bdistributed\b",
    r"\bsecurity (?:audit|review|assessment)\b",
    r"\bvulnerabilit(?:y|ies)\b",
    r"\bthreat model",
    r"\b(?:comprehensive|in-depth|thorough)\b.{0,30}\b(?:research|analysis|review|audit|investigation)\b",
    r"\bdeep(?:ly)? analy[sz]",
    r"\bcomplex\b.{0,20}\balgorithms?\b",
    r"\boptimi[sz]e\b.{0,30}\bperformance\b",
    r"\brace conditions?\b",
    r"\bdeadlocks?\b",
    r"\bconcurren(?:cy|t)\b",
    r"\bmigrat(?:e|ion)\b.{0,40}\b(?:codebase|architecture|monolith|microservices?|framework)\b",
    r"\bmicroservices?\b",
    r"\bfrom scratch\b",
    r"\btrade-?offs?\b",
    r"\broot cause\b",
    r"\bformal(?:ly)? verif",
    r"\bfault[- ]toleran",
    r"\bconsensus\b",
    r"\boverhaul\b",
    r"\bend-to-end\b",
    r"\bacross the (?:whole |entire )?(?:codebase|repo(?:sitory)?|project)\b",
)
CODING = _rx(
    r"\bimplement(?:s|ed|ing|ation)?\b",
    r"\bcode\b",
    r"\bfunctions?\b",
    r"\bclass(?:es)?\b",
    r"\bmethods?\b",
    r"\brefactor(?:s|ed|ing)?\b",
    r"\b(?:unit )?tests?\b",
    r"\bdebug(?:ging)?\b",
    r"\bfix(?:es|ed|ing)?\b.{0,40}\b(?:bugs?|errors?|failing|failures?|crash(?:es)?|exceptions?|leaks?|tests?)\b",
    r"\b(?:python|typescript|javascript|rust|golang|java|c\+\+|sql|bash|kotlin|swift)\b",
    r"\b(?:program|script|endpoint|module|regex|compiler?|parser)s?\b",
    r"\b(?:stack ?trace|traceback|segfault|exception)s?\b",
    r"\bapi\b",
)
SIMPLE = _rx(
    r"\bexplain\b",
    r"\bwhat (?:is|are|does|do|was)\b",
    r"\bwhat's\b",
    r"\bhow (?:do|does|can) (?:i|you|we)\b",
    r"\blist\b",
    r"\bsummari[sz]e\b",
    r"\btranslate\b",
    r"\bformat\b",
    r"\bconvert\b",
    r"\brename\b",
    r"\btypos?\b",
    r"\bspelling\b",
    r"\bshow me\b",
    r"\bwhere (?:is|are|do)\b",
    r"\bwhich (?:file|files|function|version)\b",
    r"\bdescribe\b",
    r"\bdefine\b",
    r"\bcomment\b",
    r"\bdocstrings?\b",
)
# Quantitative reasoning: its own type (the seed folds it into "general", where it is under-served).
REASONING = _rx(
    r"\bsolve\b",
    r"\bequations?\b",
    r"\bprobabilit(?:y|ies)\b",
    r"\bcalculate\b",
    r"\bcompute\b",
    r"\bintegrals?\b",
    r"\bderivatives?\b",
    r"\bprove\b|\bproof\b",
    r"\btheorem\b",
    r"\bpuzzle\b",
    r"\b\d+\s*[-+*/^]\s*\d+",
    r"\bx\s*[=^]\s*\d",
)

_COMMON = frozenset(
    ("this", "that", "with", "from", "have", "been", "will", "would", "could", "should", "there", "their", "about")
)


@dataclass(frozen=True, slots=True)
class TaskAnalysis:
    """The seed's analysis of one prompt."""

    complexity_score: float
    requires_thinking: bool
    estimated_tokens: int
    """Estimated output tokens for the answer (the seed's estimate)."""
    task_type: str
    keywords: list[str]
    difficulty: float
    """The learned estimate: share (0-1) of prompts of the same kind that need the stronger model less."""
    prompt_kind: str = ""
    """The kind the learned estimate judged it as: ``choice``, ``word_problem`` or ``open``."""
    matched: dict[str, list[str]] = field(default_factory=dict)
    learned_tier: str = ""
    """For a prompt Claude Code sent, or another client's open prompt that the gate judges software work, the
    tier model's pick; its score is then the complexity, and the router goes by the thresholds alone. Empty
    otherwise (other clients' general chat and benchmark kinds)."""
    learned_head: str = ""
    """Which of the tier model's heads decided (``tier_model.HEADS``): ``main`` read the prompt's sentence
    embedding; ``confident`` is the fallback where it was sure enough that the embedding was not run;
    ``fallback`` stood in because the embedding could not run or is switched off."""

    @property
    def learned_contextual(self) -> bool:
        """Whether the tier model read the prompt's sentence embedding."""
        return self.learned_head == "main"

    def to_dict(self) -> dict[str, Any]:
        return {
            "complexity": round(self.complexity_score, 4),
            "task_type": self.task_type,
            "requires_thinking": self.requires_thinking,
            "estimated_output_tokens": self.estimated_tokens,
            "difficulty": round(self.difficulty, 4),
            "prompt_kind": self.prompt_kind,
            "learned_tier": self.learned_tier,
            "learned_head": self.learned_head,
            "matched": self.matched,
            "keywords": self.keywords,
        }


def _hits(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> list[str]:
    out = []
    for _, pattern in patterns:
        m = pattern.search(text)
        if m:
            out.append(m.group(0).strip().lower())
    return out


@dataclass(frozen=True, slots=True)
class PatternSignals:
    """The seed's pattern families that fired on a prompt, and the score they give before the learned shift."""

    complex_hits: list[str]
    coding_hits: list[str]
    simple_hits: list[str]
    reasoning_hits: list[str]
    base: float

    def values(self) -> tuple[float, ...]:
        """The counts of each family's hits and the score: the tier model's ``PATTERN_FEATURES``."""
        hits = (self.complex_hits, self.coding_hits, self.simple_hits, self.reasoning_hits)
        return (*(float(len(h)) for h in hits), self.base)

    @property
    def coding(self) -> bool:
        return len(self.coding_hits) >= 2 or bool(self.coding_hits and not self.simple_hits)

    def complexity(self, shift: float) -> float:
        """The complexity score with the learned estimate's ``shift`` added (clamped as the seed does)."""
        score = max(0.0, min(1.0, self.base + shift))
        if self.coding and not self.complex_hits:
            score = max(0.31, min(0.7, score))  # the seed: coding is medium complexity
        return score


def pattern_signals(text: str) -> PatternSignals:
    """The seed's pattern score for ``text`` (already truncated to 20,000 characters)."""
    complex_hits = _hits(COMPLEX, text)
    coding_hits = _hits(CODING, text)
    simple_hits = _hits(SIMPLE, text)
    reasoning_hits = _hits(REASONING, text)
    score = 0.25
    if complex_hits:  # one clear architecture / concurrency / security signal is enough for the top tier
        score += 0.55 + 0.15 * min(len(complex_hits) - 1, 2)
    if len(coding_hits) >= 2 or (coding_hits and not simple_hits):
        score += 0.15
    if reasoning_hits:
        score += 0.1 + 0.05 * min(len(reasoning_hits) - 1, 2)
    if not complex_hits:
        score -= 0.12 * min(len(simple_hits), 2)
    if len(text) > 2000:
        score += 0.2
    elif len(text) > 500:
        score += 0.1
    return PatternSignals(complex_hits, coding_hits, simple_hits, reasoning_hits, score)


def analyze_prompt(
    prompt: str, *, difficulty: Difficulty | None = None, sentence_embedding: bool = True, claude_code: bool = False
) -> TaskAnalysis:
    """Complexity, task type and token estimate for ``prompt``.

    For any prompt Claude Code sent (``claude_code``), and for an open prompt from another client that the
    tier model's gate judges to be software work like Claude Code's, the complexity is the tier model's score
    (``tier_model``): a chatty prompt typed into Claude Code, or one with numbers in it that reads like a maths
    word problem, is still Claude Code work, which is what the tier model learned (and what its
    cross-validation measured, with no gate and no prompt kinds).
    Otherwise it is the seed's pattern score plus the learned estimate's ``shift``: ``weight * (percentile -
    0.5)``, where the weight is per prompt kind (0.2 for open prompts, more where the trainer's
    cross-validation showed the estimate ranks prompts of that kind well). ``difficulty`` replaces the shipped
    model's estimate; ``sentence_embedding=False`` scores software work with the tier model's fallback, which
    runs no transformer.
    """
    text = prompt[:20_000]
    if difficulty is None:
        return _analyze_cached(text, sentence_embedding, claude_code)
    return _analyze(text, difficulty, sentence_embedding, claude_code)


@lru_cache(maxsize=512)
def _analyze_cached(text: str, sentence_embedding: bool, claude_code: bool) -> TaskAnalysis:
    """A turn's requests all carry its prompt, and a prewarm hint scores it before the first: analyse it once."""
    return _analyze(text, estimate_difficulty(text), sentence_embedding, claude_code)


def forget_analyses() -> None:
    """Drop every cached analysis and estimate (for a process whose models changed, and for tests)."""
    _analyze_cached.cache_clear()
    estimate_tier.cache_clear()


def _analyze(text: str, learned: Difficulty, sentence_embedding: bool, claude_code: bool) -> TaskAnalysis:
    signals = pattern_signals(text)
    complex_hits, coding_hits = signals.complex_hits, signals.coding_hits
    simple_hits, reasoning_hits = signals.simple_hits, signals.reasoning_hits
    learned_tier, head = "", ""
    score = signals.complexity(learned.shift)
    if learned.kind == "open" or claude_code:  # Claude Code's work: the tier model, learned from its prompts
        ask, pasted = split_prompt(text)
        patterns = (signals if ask == text else pattern_signals(ask)).values()
        estimate = estimate_tier(ask, patterns, pasted, sentence_embedding=sentence_embedding, gated=not claude_code)
        if claude_code or estimate.software >= 0.5:
            score, learned_tier, head = estimate.complexity, estimate.tier, estimate.head
    coding = signals.coding

    if len(complex_hits) >= 2 or (complex_hits and not coding_hits):
        task_type = "architecture"
    elif coding:
        task_type = "coding"
    elif reasoning_hits:
        task_type = "reasoning"
    elif simple_hits:
        task_type = "simple"
    else:
        task_type = "general"

    estimated = len(text) // 4 + 500
    if score > 0.7:
        estimated += 5000
    elif score > 0.4:
        estimated += 2000
    words = re.findall(r"\b[a-z]{4,}\b", text.lower())
    return TaskAnalysis(
        complexity_score=score,
        requires_thinking=score > 0.5,
        estimated_tokens=estimated,
        task_type=task_type,
        keywords=[w for w in words[:20] if w not in _COMMON],
        difficulty=learned.percentile,
        prompt_kind=learned.kind,
        learned_tier=learned_tier,
        learned_head=head,
        matched={
            k: v
            for k, v in (
                ("complex", complex_hits),
                ("coding", coding_hits),
                ("simple", simple_hits),
                ("reasoning", reasoning_hits),
            )
            if v
        },
    )


# -- the request's own signals -------------------------------------------------------------------------
SMALL_MODEL_REASON = "the client asked for its small fast model (background work)"
AUXILIARY_REASON = "no tools: an auxiliary request (title, summary, classifier or hook prompt)"
BACKGROUND_REASONS = (SMALL_MODEL_REASON, AUXILIARY_REASON)
"""The reasons a background request is routed for; the ledger keeps them, and reads them back on restart."""
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
_PLAN_MODE = re.compile(r"plan mode is active", re.I)


@dataclass(frozen=True, slots=True)
class RequestSignals:
    """What a Messages API request says about itself (read-only; the request is never changed)."""

    model: str
    prompt: str
    """The newest text a person typed (system reminders removed); empty for a pure tool-result turn."""
    turn_key: str
    """Identifies the person's current prompt: every request of one agentic turn shares it."""
    session_id: str = ""
    agent_id: str = ""
    parent_agent_id: str = ""
    has_tools: bool = False
    tool_count: int = 0
    web_search: bool = False
    thinking: str = ""
    """"", "enabled", "adaptive" or "disabled"."""
    thinking_budget: int = 0
    effort: str = ""
    context_tokens: int = 0
    """Estimated input tokens (the request's size / 4)."""
    max_tokens: int = 0
    images: int = 0
    plan_mode: bool = False
    tool_loop: bool = False
    """The newest user message only carries tool results (the model is mid-task)."""
    background: bool = False
    background_reason: str = ""
    from_claude_code: bool = False
    """Claude Code sent it (its session header, user agent or ``x-app``)."""
    speed: str = ""
    """The ``speed`` it asks for ("fast": fast mode); "" when it does not say."""
    inference_geo: str = ""
    """The ``inference_geo`` it asks for ("us", "global"); "" when it does not say."""

    @property
    def is_subagent(self) -> bool:
        return bool(self.agent_id)

    @property
    def conversation(self) -> str:
        """The conversation whose prompt cache this request reads: the session's main agent or one subagent;
        "" for background requests (titles, summaries: conversations of their own) and without a session."""
        return f"{self.session_id}\x00{self.agent_id}" if self.session_id and not self.background else ""

    @property
    def required_features(self) -> frozenset[str]:
        """Model features the request uses; a model without one of them would reject it."""
        out = set()
        if self.thinking == "adaptive":
            out.add("adaptive-thinking")
        if self.effort:
            out.add("effort")
        if self.speed == "fast":
            out.add("fast-mode")  # the catalog's FAST_MODE: models that price fast mode
        if self.inference_geo:
            out.add("inference-geo")  # the catalog's INFERENCE_GEO: Claude 4.6 and newer
        return frozenset(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "has_tools": self.has_tools,
            "tool_count": self.tool_count,
            "web_search": self.web_search,
            "thinking": self.thinking,
            "thinking_budget": self.thinking_budget,
            "effort": self.effort,
            "context_tokens": self.context_tokens,
            "max_tokens": self.max_tokens,
            "images": self.images,
            "plan_mode": self.plan_mode,
            "tool_loop": self.tool_loop,
            "background": self.background,
            "background_reason": self.background_reason,
            "speed": self.speed,
            "inference_geo": self.inference_geo,
        }


def _blocks(content: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                yield block


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _count_images(value: Any) -> int:
    n = 0
    for message in value if isinstance(value, list) else ():
        if not isinstance(message, dict):
            continue
        for block in _blocks(message.get("content")):
            if block.get("type") in ("image", "document"):
                n += 1
            elif block.get("type") == "tool_result":
                n += sum(1 for b in _blocks(block.get("content")) if b.get("type") in ("image", "document"))
    return n


def typed_text(raw: str) -> str:
    """What a person typed in a user message's text: Claude Code's system reminders removed, trimmed."""
    return _REMINDER.sub("", raw).strip()


def latest_prompt(messages: Any) -> tuple[str, bool, bool]:
    """(the newest text a person typed, whether the newest user message is only tool results, plan mode)."""
    if not isinstance(messages, list):
        return "", False, False
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    tool_loop = False
    if users:
        last = list(_blocks(users[-1].get("content")))
        tool_loop = bool(last) and all(b.get("type") == "tool_result" for b in last)
    plan_mode = False
    for message in reversed(users):
        raw = _text_of(message.get("content"))
        if _PLAN_MODE.search(raw):
            plan_mode = True
        text = typed_text(raw)
        if text:
            return text, tool_loop, plan_mode
    return "", tool_loop, plan_mode


def _session_from_metadata(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata")
    user_id = meta.get("user_id") if isinstance(meta, dict) else None
    if not isinstance(user_id, str):
        return ""
    if user_id.startswith("{"):
        try:
            parsed = json.loads(user_id)
        except ValueError:
            return ""
        value = parsed.get("session_id") if isinstance(parsed, dict) else None
        return value if isinstance(value, str) else ""
    return user_id.rsplit("_session_", 1)[1] if "_session_" in user_id else ""


def session_id_of(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """Claude Code's session id: its header, else the one inside ``metadata.user_id``."""
    return headers.get("x-claude-code-session-id", "") or _session_from_metadata(body)


def request_signals(
    body: Mapping[str, Any], headers: Mapping[str, str], *, raw_size: int = 0, background_tier_model: bool = False
) -> RequestSignals:
    """Signals of one ``POST /v1/messages`` body. ``headers`` have lower-case names.

    A request without tools counts as background only when Claude Code sent it (its session header,
    user agent or ``x-app``): other clients' plain chats are analysed like any prompt.

    ``background_tier_model`` says the requested model is in the cheapest tier -- Claude Code's "small fast
    model" for titles, summaries and prompt hooks (the caller knows the catalog; this module does not).
    """
    model = body.get("model")
    model = model if isinstance(model, str) else ""
    messages = body.get("messages")
    prompt, tool_loop, plan_mode = latest_prompt(messages)
    tools = body.get("tools")
    tools = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    thinking = body.get("thinking")
    thinking_type = str(thinking.get("type", "")) if isinstance(thinking, dict) else ""
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    max_tokens = body.get("max_tokens")
    speed, geo = body.get("speed"), body.get("inference_geo")
    session = session_id_of(body, headers)
    agent = headers.get("x-claude-code-agent-id", "")
    from_claude_code = (
        "x-claude-code-session-id" in headers
        or headers.get("user-agent", "").startswith("claude-cli")
        or headers.get("x-app", "") == "cli"
    )
    if background_tier_model:
        background, why = True, SMALL_MODEL_REASON
    elif not tools and from_claude_code:
        background, why = True, AUXILIARY_REASON
    else:
        background, why = False, ""
    first_user = ""
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        first_user = _text_of(messages[0].get("content"))[:2000]
    key_source = f"{session}\x00{agent}\x00{first_user}\x00{prompt}"
    return RequestSignals(
        model=model,
        prompt=prompt,
        turn_key=hashlib.sha256(key_source.encode("utf-8", "replace")).hexdigest()[:24],
        session_id=session,
        agent_id=agent,
        parent_agent_id=headers.get("x-claude-code-parent-agent-id", ""),
        has_tools=bool(tools),
        tool_count=len(tools),
        web_search=any(str(t.get("type", "")).startswith("web_search") for t in tools),
        thinking=thinking_type,
        thinking_budget=budget if isinstance(budget, int) else 0,
        effort=effort if isinstance(effort, str) else "",
        context_tokens=max(raw_size, 0) // 4,
        max_tokens=max_tokens if isinstance(max_tokens, int) else 0,
        images=_count_images(messages),
        plan_mode=plan_mode,
        tool_loop=tool_loop,
        background=background,
        background_reason=why,
        from_claude_code=from_claude_code,
        speed=speed.strip().lower() if isinstance(speed, str) else "",
        inference_geo=geo.strip().lower() if isinstance(geo, str) else "",
    )
