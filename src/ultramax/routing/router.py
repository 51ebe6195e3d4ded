"""The router: which tier (and so which model id) answers a request.

The seed's policy, with its defaults: complexity above ``routing.opusThreshold`` (0.7) goes to the top tier,
coding work or complexity above ``routing.sonnetThreshold`` (0.3) to the middle one, simple tasks to the
cheapest, anything else to ``routing.defaultModel``; a per-request ``max_cost`` steps down a tier at a time;
an hourly budget sends everything to the cheapest tier when the next request would cross it (and, with
``routing.budgetHardStop``, refuses requests once it is spent); each tier keeps an EWMA of its success rate
and latency, and an unhealthy tier hands its requests to the next one in the fallback chain.

What the seed did not have, and Claude Code needs:

- the model the client asked for is a **ceiling** -- the router only ever saves money, never upgrades;
- Claude Code's background requests (its small fast model, no-tools side calls) go to the cheapest tier;
- a request is never sent to a model lacking a feature it uses (adaptive thinking, effort): it would be
  rejected;
- every request of one agentic turn (same session, agent and prompt) keeps the first request's tier, so the
  prompt cache built in the turn is reused instead of re-read on another model;
- each new turn goes to the tier that makes it cheapest among those adequate for it, given where the
  conversation's prompt cache is warm: the cache is per model, and a long session's prefix costs more to write
  anew on Sonnet than to read on Opus, so a turn that Sonnet could do stays on a warm Opus;
- software work (Claude Code's prompts) is scored by a tier model learned from labelled prompts
  (``tier_model``), whose score the thresholds alone divide: the seed's coding rule sent every prompt that
  mentions code to the middle tier, however small the job;
- plan mode gets the top tier (as Claude Code's ``opusplan`` does);
- a resumed session (``claude --continue``) asks for the model that answered last, which may be one the
  router chose: the router remembers what each session asked for, so its ceiling stays the user's choice.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from ultramax.config import Problem, Settings
from ultramax.errors import ConfigError, SettingError
from ultramax.routing.analyzer import RequestSignals, TaskAnalysis, analyze_prompt, request_signals, session_id_of
from ultramax.routing.catalog import Catalog, Tier, Usage, load_catalog

__all__ = ["MIN_LATIN_SHARE", "Decision", "Router", "RouterConfig", "TierStats", "latin_share", "routing_problems"]

EWMA_ALPHA = 0.1
CACHE_TTL_S = 300.0
"""How long a conversation's prompt cache stays warm after its last request (Anthropic's default, 5 minutes)."""
CACHE_TTL_1H_S = 3600.0
"""The same for one-hour cache writes, when the client asks for them (``ttl: "1h"`` breakpoints)."""
TURN_REQUESTS_START = 3.0
"""Requests per agentic turn assumed before any turn has been seen (then an EWMA of the turns seen)."""
OUTPUT_TOKENS_START = 800.0
"""Output tokens per request assumed before the proxy has reported any (then an EWMA of the real usage)."""
UNHEALTHY_SUCCESS = 0.5
MIN_SAMPLES = 5
_STICKY_MAX = 10_000
MIN_LATIN_SHARE = 0.5
"""Below this share of Latin letters among a prompt's letters, the router does not trust its own reading."""


@lru_cache(maxsize=256)  # every request of a turn carries the same prompt, which may be a long paste
def latin_share(text: str) -> float:
    """The share of a text's letters that are Latin (ASCII or accented); 1.0 for a text with no letters."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    latin = sum(1 for c in letters if c < "\u0250")  # Basic Latin through Latin Extended-B
    return latin / len(letters)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    enabled: bool = True
    default_tier: str = "sonnet"
    opus_threshold: float = 0.7
    sonnet_threshold: float = 0.3
    max_cost: float = 0.0
    budget_per_hour: float = 10.0
    budget_hard_stop: bool = True
    allow_model_override: bool = True
    fallback_chain: tuple[str, ...] = ("opus", "sonnet", "haiku")
    sticky_turns: bool = True
    sentence_embedding: bool = True
    cache_aware: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Catalog) -> RouterConfig:
        """The router's settings; SettingError names the setting whose tier or model the catalog lacks."""
        chain = tuple(settings.get("routing.fallbackChain"))
        for name in chain:
            try:
                catalog.tier(name)
            except KeyError as exc:
                raise SettingError("routing.fallbackChain", exc.args[0]) from exc
        try:
            default_tier = catalog.resolve_tier(str(settings.get("routing.defaultModel"))).name
        except ConfigError as exc:
            raise SettingError("routing.defaultModel", str(exc)) from exc
        return cls(
            enabled=bool(settings.get("routing.enabled")),
            default_tier=default_tier,
            opus_threshold=float(settings.get("routing.opusThreshold")),
            sonnet_threshold=float(settings.get("routing.sonnetThreshold")),
            max_cost=float(settings.get("routing.maxCostPerRequest")),
            budget_per_hour=float(settings.get("routing.costBudgetPerHour")),
            budget_hard_stop=bool(settings.get("routing.budgetHardStop")),
            allow_model_override=bool(settings.get("routing.allowModelOverride")),
            fallback_chain=chain,
            sticky_turns=bool(settings.get("routing.stickyTurns")),
            sentence_embedding=bool(settings.get("routing.sentenceEmbedding")),
            cache_aware=bool(settings.get("routing.cacheAwareSwitching")),
        )


def routing_problems(settings: Settings) -> list[Problem]:
    """What building the catalog and the router from ``settings`` finds wrong: a value of the right type that
    names a tier, model or catalog file that is not there. Each problem names the file that set the key."""
    try:
        Router.from_settings(settings)
    except SettingError as exc:
        source = settings.sources.get(exc.key, "default")
        return [Problem(source, exc.key, exc.message + ("" if source != "default" else " (the default)"))]
    except ConfigError as exc:
        return [Problem("model catalog", "", str(exc))]
    return []


@dataclass(slots=True)
class TierStats:
    """The seed's per-tier performance record: EWMA of success (1/0) and latency (ms)."""

    success_rate: float = 1.0
    avg_latency_ms: float = 0.0
    samples: int = 0

    def update(self, success: bool, latency_ms: float) -> None:
        a = EWMA_ALPHA
        self.success_rate = self.success_rate * (1 - a) + (1.0 if success else 0.0) * a
        self.avg_latency_ms = latency_ms if self.samples == 0 else self.avg_latency_ms * (1 - a) + latency_ms * a
        self.samples += 1

    @property
    def healthy(self) -> bool:
        return self.samples < MIN_SAMPLES or self.success_rate >= UNHEALTHY_SUCCESS


def _keep(memory: OrderedDict[str, Any], key: str) -> None:
    """Mark ``key`` the most recently used, and forget the least recent entries past ``_STICKY_MAX``."""
    memory.move_to_end(key)
    while len(memory) > _STICKY_MAX:
        memory.popitem(last=False)


@dataclass(slots=True)
class _SessionMemory:
    tier: str
    model: str
    routed_to: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Conversation:
    """One conversation (a session's main agent, or one subagent): its current turn, and where its prompt cache is."""

    turn_key: str
    requests: int = 0
    """Requests so far in its current turn."""
    caches: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Tier -> (the context tokens its cache holds, when it was last read or written)."""


@dataclass(slots=True)
class _Answered:
    """A conversation's last answered request: how many prompt tokens it had, when, and whether it was switched."""

    prompt_tokens: int
    at: float
    switched: bool
    """It went to another model than the client asked for."""


@dataclass(slots=True)
class Decision:
    """Where one request goes, and why."""

    requested_model: str
    model: str
    tier: str
    reasons: list[str]
    complexity: float = 0.0
    task_type: str = ""
    estimated_cost: float = 0.0
    confidence: float = 1.0
    fallbacks: list[str] = field(default_factory=list)
    """Model ids to try, in order, if the chosen one is overloaded."""
    reject: str = ""
    """Non-empty: refuse the request with this message (budget exhausted)."""
    routed: bool = True
    """False when the request passes through untouched (routing off, unknown model, explicit override)."""
    analysis: TaskAnalysis | None = None
    signals: RequestSignals | None = None

    @property
    def changed(self) -> bool:
        return self.model != self.requested_model

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested_model": self.requested_model,
            "model": self.model,
            "tier": self.tier,
            "changed": self.changed,
            "routed": self.routed,
            "reasons": self.reasons,
            "complexity": round(self.complexity, 4),
            "task_type": self.task_type,
            "estimated_cost": round(self.estimated_cost, 6),
            "confidence": round(self.confidence, 3),
            "fallbacks": self.fallbacks,
            "reject": self.reject,
            "analysis": self.analysis.to_dict() if self.analysis else None,
            "signals": self.signals.to_dict() if self.signals else None,
        }


class Router:
    """Decides per request; remembers hourly spend, per-tier health and each turn's tier."""

    def __init__(self, catalog: Catalog, config: RouterConfig | None = None, *, clock: Any = time.time) -> None:
        self.catalog = catalog
        self.config = config or RouterConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._spend: deque[tuple[float, float]] = deque()
        self._spend_total = 0.0
        self._reserved = 0.0  # estimates of requests routed but not yet answered (``reserve``/``settle``)
        self.stats: dict[str, TierStats] = {t.name: TierStats() for t in catalog.tiers}
        self._sticky: OrderedDict[str, str] = OrderedDict()
        self._sessions: OrderedDict[str, _SessionMemory] = OrderedDict()
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._answered: OrderedDict[str, _Answered] = OrderedDict()
        self.turn_requests = TURN_REQUESTS_START
        """EWMA of the requests per agentic turn (the tool loop), from the conversations seen."""
        self.output_per_request = OUTPUT_TOKENS_START
        """EWMA of the output tokens of a request (not background), from the usage the proxy reports."""
        self.one_hour_writes = 0.0
        """EWMA of the share of cache writes that were one-hour writes (dearer, and warm for an hour)."""
        try:
            catalog.tier(self.config.default_tier)
        except KeyError as exc:
            raise SettingError("routing.defaultModel", exc.args[0]) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Router:
        catalog = load_catalog(
            str(settings.get("routing.catalogFile")) or None, list(settings.get("routing.tierModels"))
        )
        return cls(catalog, RouterConfig.from_settings(settings, catalog))

    # -- spend and health ----------------------------------------------------------------------------
    def _budget_spent(self) -> str:
        """The refusal when the hourly budget is spent and its hard stop is on; "" otherwise."""
        cfg = self.config
        if cfg.budget_per_hour <= 0 or not cfg.budget_hard_stop:
            return ""
        spent = self.hourly_spend() + self._reserved
        if spent < cfg.budget_per_hour:
            return ""
        minutes = max(1, round(self.budget_resets_in() / 60))
        return (
            f"ultramax: the hourly model budget of ${cfg.budget_per_hour:.2f} is spent "
            f"(${spent:.2f} in the last 60 minutes); requests resume in about {minutes} min. "
            "Raise routing.costBudgetPerHour or set routing.budgetHardStop to false to keep going "
            "on the cheapest tier."
        )

    def reserve(self, cost: float) -> None:
        """Count a routed request's estimated cost against the budget until its answer is recorded, so that
        requests in flight at once cannot all pass a budget that only their sum would exceed."""
        with self._lock:
            self._reserved += max(cost, 0.0)

    @property
    def reserved(self) -> float:
        """USD held by ``reserve`` for requests routed and not yet answered."""
        with self._lock:
            return self._reserved

    def settle(self, cost: float) -> None:
        """Release what ``reserve`` held for a request (its real cost is recorded with ``record_spend``)."""
        with self._lock:
            self._reserved = max(self._reserved - max(cost, 0.0), 0.0)

    def record_spend(self, cost: float, ts: float | None = None) -> None:
        if cost <= 0:  # an error or a refusal: nothing spent, and nothing to keep in the window
            return
        with self._lock:
            self._spend.append((self._clock() if ts is None else ts, cost))
            self._spend_total += cost

    def hourly_spend(self) -> float:
        """USD spent in the last 60 minutes (a rolling window)."""
        horizon = self._clock() - 3600.0
        with self._lock:
            while self._spend and self._spend[0][0] < horizon:
                self._spend_total -= self._spend.popleft()[1]
            if not self._spend:
                self._spend_total = 0.0
            return max(self._spend_total, 0.0)

    def budget_resets_in(self) -> float:
        """Seconds until enough of the window's spend has left it for the spend to be under the budget again
        (until the oldest spend leaves, without a budget)."""
        now = float(self._clock())
        with self._lock:
            budget = self.config.budget_per_hour
            remaining = self._spend_total
            for ts, cost in self._spend:
                if ts + 3600.0 <= now:
                    remaining -= cost
                    continue
                if budget <= 0 or remaining < budget:
                    return max(0.0, ts + 3600.0 - now) if budget <= 0 else 0.0
                remaining -= cost
                if remaining < budget:
                    return max(0.0, ts + 3600.0 - now)
            return 0.0

    def record_outcome(self, tier: str, success: bool, latency_ms: float) -> None:
        with self._lock:
            self.stats.setdefault(tier, TierStats()).update(success, latency_ms)

    # -- deciding ------------------------------------------------------------------------------------
    def _spec_ok(self, tier: Tier, needs: frozenset[str]) -> bool:
        spec = self.catalog.spec(tier.model)
        return spec is not None and needs <= spec.features

    def _model_for(self, tier: Tier, ceiling: Tier, requested: str) -> str:
        return requested if tier.name == ceiling.name else tier.model

    def explain_prompt(self, prompt: str, *, requested_model: str | None = None) -> Decision:
        """The decision for a prompt alone, as if Claude Code sent it with tools and the top tier's model."""
        model = requested_model or self.catalog.top.model
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "tools": [{"name": "Bash"}]}
        size = len(prompt.encode("utf-8")) + 2000
        return self.route(body, {"user-agent": "claude-cli (ultramax route explain)"}, raw_size=size)

    def route(self, body: Mapping[str, Any], headers: Mapping[str, str], *, raw_size: int = 0) -> Decision:
        """The decision for one ``POST /v1/messages`` body (headers with lower-case names)."""
        requested = body.get("model")
        requested = requested if isinstance(requested, str) else ""
        cfg = self.config
        cat = self.catalog
        override = headers.get("x-ultramax-model", "").strip()
        # a request the router does not choose for is still held to the hourly budget's hard stop
        if override and cfg.allow_model_override:
            tier_name = getattr(cat.tier_of(override), "name", "")
            return Decision(
                requested, override, tier_name, ["explicit override"], routed=False, reject=self._budget_spent()
            )
        if not cfg.enabled:
            off = ["routing is off (routing.enabled)"]
            return Decision(requested, requested, "", off, routed=False, reject=self._budget_spent())
        ceiling = cat.tier_of(requested)
        if ceiling is None:
            unknown = [f"{requested!r} is not in the model catalog: passed through"]
            return Decision(requested, requested, "", unknown, routed=False, reject=self._budget_spent())
        reasons: list[str] = []
        asked = requested  # the model the session chose: the id sent when the ceiling tier is chosen
        sid = session_id_of(body, headers)
        session = self._sessions.get(sid) if sid else None
        echo = session is not None and requested in session.routed_to
        signals = request_signals(
            body, headers, raw_size=raw_size, background_tier_model=ceiling == cat.cheapest and not echo
        )
        if session is not None and echo and not signals.background:
            chosen = cat.tier(session.tier)
            if chosen.rank > ceiling.rank:
                # Claude Code resumes a session (--continue, --resume) on the model that answered last: one
                # ultramax chose. The session's own choice stays the ceiling.
                reasons.append(
                    f"{requested} is the model ultramax routed this session to; its ceiling stays {session.model}"
                )
                ceiling, asked = chosen, session.model
        routable = cat.routable
        # a non-routable ceiling (fable): the router may go below it, to the top routable tier at most
        top_allowed = ceiling if ceiling.routable else routable[-1]
        allowed = [t for t in routable if t.rank <= top_allowed.rank]
        # background requests go to the cheapest tier whatever their prompt: no transformer run for them
        contextual = cfg.sentence_embedding and not signals.background
        analysis = (
            analyze_prompt(signals.prompt, sentence_embedding=contextual, claude_code=signals.from_claude_code)
            if signals.prompt
            else None
        )
        needs = signals.required_features
        tier: Tier
        confidence = 0.7
        sticky = self._sticky.get(signals.turn_key) if cfg.sticky_turns and not signals.background else None

        def rank_index(t: Tier) -> int:
            return [x.name for x in allowed].index(t.name) if t in allowed else len(allowed) - 1

        mid = allowed[min(1, len(allowed) - 1)]
        if sticky is not None and any(t.name == sticky for t in allowed):
            tier = cat.tier(sticky)
            reasons.append(f"same turn as an earlier request: stays on {sticky} (its prompt cache is warm)")
            confidence = 0.9
        elif signals.background:
            tier = allowed[0]
            reasons.append(signals.background_reason)
            confidence = 0.95
        elif signals.plan_mode:
            tier = allowed[-1]
            reasons.append("plan mode: planning gets the top tier (like opusplan)")
            confidence = 0.85
        elif analysis is None:
            tier = cat.tier(cfg.default_tier)
            reasons.append("no prompt text to analyze: the default tier")
        elif latin_share(signals.prompt) < MIN_LATIN_SHARE:
            # the patterns, the word features and the sentence model all read English: a hard ask in Japanese
            # scores as trivial, so such prompts get the default tier instead of a guess
            tier = cat.tier(cfg.default_tier)
            reasons.append("the router reads prompts written in Latin letters; this one gets the default tier")
        else:
            c = analysis.complexity_score
            if c > cfg.opus_threshold:
                tier, confidence = allowed[-1], 0.85
                reasons.append(f"high complexity {c:.2f} > {cfg.opus_threshold:g} ({analysis.task_type})")
            elif analysis.learned_tier:  # the tier model's score: the thresholds alone decide
                above = c > cfg.sonnet_threshold
                tier, confidence = (mid, 0.8) if above else (allowed[0], 0.8)
                reasons.append(
                    f"tier model: complexity {c:.2f} {'>' if above else '<='} {cfg.sonnet_threshold:g} "
                    f"({analysis.task_type} task)"
                )
            elif analysis.task_type == "coding":
                tier, confidence = mid, 0.9
                reasons.append(f"coding task (complexity {c:.2f})")
            elif c > cfg.sonnet_threshold:
                tier, confidence = mid, 0.8
                reasons.append(f"medium complexity {c:.2f} > {cfg.sonnet_threshold:g}")
            elif analysis.task_type == "simple":
                tier, confidence = allowed[0], 0.95
                reasons.append(f"simple task (complexity {c:.2f})")
            else:
                tier = cat.tier(cfg.default_tier)
                reasons.append(f"general task (complexity {c:.2f}): the default tier")
            if analysis.learned_head == "confident":
                reasons.append("the tier model was sure without the sentence embedding (far from both cut points)")
            elif analysis.learned_head == "fallback":
                reasons.append(
                    "the tier model's fallback decided: routing.sentenceEmbedding is off"
                    if not cfg.sentence_embedding
                    else "the sentence embedding could not run: the tier model's fallback decided"
                )
            deep = signals.effort in ("high", "max", "xhigh") or signals.thinking_budget >= 32_000
            if deep and rank_index(tier) < rank_index(mid):
                tier = mid
                reasons.append("the client asked for deep thinking: at least the middle tier")
        if tier.rank > top_allowed.rank:
            tier = top_allowed
        if tier.rank < top_allowed.rank and tier.name != top_allowed.name:
            reasons.append(f"{ceiling.name} requested; {tier.name} is enough")

        # context and features the model must accept
        def fits(t: Tier) -> bool:
            spec = cat.spec(t.model)
            return spec is not None and signals.context_tokens + signals.max_tokens // 8 < spec.context * 0.9

        i = rank_index(tier)
        while i < len(allowed) - 1 and not (self._spec_ok(allowed[i], needs) and fits(allowed[i])):
            i += 1
        if allowed[i].name != tier.name:
            why = "features " + ", ".join(sorted(needs)) if not self._spec_ok(tier, needs) else "the context size"
            reasons.append(f"{tier.name}'s model cannot take {why}: {allowed[i].name}")
            tier = allowed[i]

        est_output = min(analysis.estimated_tokens if analysis else 1000, signals.max_tokens or 1_000_000)
        conversation = signals.conversation
        known, same_turn = self._caches(conversation, signals.turn_key)
        if known and cfg.cache_aware and sticky is None and not same_turn:
            # a new turn: the cheapest adequate tier given where the conversation's cache is warm
            options = [t for t in allowed if t.rank >= tier.rank and self._spec_ok(t, needs) and fits(t)]
            costs = {
                t.name: self.turn_cost(
                    t,
                    known.get(t.name),
                    signals.context_tokens,
                    speed=signals.speed,
                    inference_geo=signals.inference_geo,
                )
                for t in options
            }
            best = min(options, key=lambda t: (costs[t.name], t.rank), default=tier)
            if best.name != tier.name and costs[best.name] < costs.get(tier.name, 0.0):
                reasons.append(
                    f"prompt cache warm on {best.name}: ~${costs[best.name]:.4f} for this turn there, against "
                    f"~${costs[tier.name]:.4f} on {tier.name} (writing {signals.context_tokens / 1000:.0f}k "
                    "cached tokens anew)"
                )
                tier, i = best, rank_index(best)

        def cost_of(t: Tier) -> float:
            """This request on ``t``: what the conversation's warm cache there holds read, the rest at the input
            price, and the answer, at the prices of the speed and geography it asks for."""
            spec = cat.spec(t.model)
            if spec is None:
                return 0.0
            warm = self._warm(known.get(t.name), signals.context_tokens)
            return spec.cost(
                Usage(
                    signals.context_tokens - warm,
                    est_output,
                    cache_read=warm,
                    speed=signals.speed,
                    inference_geo=signals.inference_geo,
                )
            )

        # max_cost: step down while the estimate exceeds it
        estimate = cost_of(tier)
        if cfg.max_cost > 0:
            while estimate > cfg.max_cost and i > 0 and self._spec_ok(allowed[i - 1], needs):
                i -= 1
                reasons.append(f"estimated ${estimate:.4f} > max_cost ${cfg.max_cost:.4f}: down to {allowed[i].name}")
                tier = allowed[i]
                confidence *= 0.8
                estimate = cost_of(tier)

        # hourly budget
        reject = self._budget_spent()
        if cfg.budget_per_hour > 0 and not reject:
            spent = self.hourly_spend() + self._reserved
            if spent + estimate > cfg.budget_per_hour:
                j = 0
                while j < i and not self._spec_ok(allowed[j], needs):
                    j += 1
                if j < i:
                    reasons.append(
                        f"hourly budget: ${spent:.2f} of ${cfg.budget_per_hour:.2f} spent, so {allowed[j].name}"
                    )
                    tier, i, confidence = allowed[j], j, 0.6
                    estimate = cost_of(tier)

        # health: hand an unhealthy tier's work to the next in the fallback chain
        chain = [cat.tier(n) for n in cfg.fallback_chain]
        names = [t.name for t in chain]
        if not self.stats[tier.name].healthy and tier.name in names:
            for nxt in chain[names.index(tier.name) + 1 :]:
                if nxt in allowed and self._spec_ok(nxt, needs) and self.stats[nxt.name].healthy:
                    reasons.append(
                        f"{tier.name} is failing (success {self.stats[tier.name].success_rate:.2f}): {nxt.name}"
                    )
                    tier = nxt
                    break

        fallbacks: list[str] = []
        if tier.name in names:
            for nxt in chain[names.index(tier.name) + 1 :]:
                if nxt in allowed and self._spec_ok(nxt, needs):
                    fallbacks.append(self._model_for(nxt, ceiling, asked))
        if not ceiling.routable and tier.name == top_allowed.name and not signals.background and not reject:
            # a model that is never a routing target (fable) is still the ceiling it was asked as: work that
            # needs the top routable tier keeps the model asked for, and falls back to that tier if overloaded
            reasons.append(f"needs the top tier: keeps {ceiling.name}, the model asked for")
            fallbacks = [self._model_for(tier, ceiling, asked), *fallbacks]
            tier = ceiling
        model = self._model_for(tier, ceiling, asked)
        if signals.session_id and not signals.background:
            self.remember_session(signals.session_id, asked, model)
        if conversation and not reject:
            self._note_conversation(conversation, tier.name, signals.turn_key, signals.context_tokens)
        if cfg.sticky_turns and not signals.background and not reject:
            with self._lock:
                self._sticky[signals.turn_key] = tier.name
                _keep(self._sticky, signals.turn_key)
        return Decision(
            requested_model=requested,
            model=model,
            tier=tier.name,
            reasons=reasons,
            complexity=analysis.complexity_score if analysis else 0.0,
            task_type=analysis.task_type if analysis else "",
            estimated_cost=estimate,
            confidence=confidence,
            fallbacks=fallbacks,
            reject=reject,
            analysis=analysis,
            signals=signals,
        )

    # -- prompt caches ---------------------------------------------------------------------------------
    def _caches(self, conversation: str, turn_key: str) -> tuple[dict[str, tuple[int, float]], bool]:
        """Where the conversation's prompt cache is -- tier -> (the tokens it holds, when it was last used) --
        and whether its last request was of this turn."""
        with self._lock:
            known = self._conversations.get(conversation) if conversation else None
            return (dict(known.caches), known.turn_key == turn_key) if known is not None else ({}, False)

    def _warm(self, cache: tuple[int, float] | None, context_tokens: int) -> int:
        """The tokens a tier's cache (``(tokens, when)``, or None) still holds for a request of that size: all
        of them while it lives and the request extends them, else none."""
        if cache is None:
            return 0
        held, at = cache
        return held if self._clock() - at <= self.cache_ttl and held <= context_tokens else 0

    def turn_cost(
        self,
        tier: Tier,
        cache: tuple[int, float] | None,
        context_tokens: int,
        *,
        speed: str = "",
        inference_geo: str = "",
    ) -> float:
        """USD for one agentic turn on ``tier`` -- ``turn_requests`` requests, each reading a ``context_tokens``
        prefix and writing ``output_per_request`` tokens (both learned from what was seen) -- given its cache
        for the conversation (``(tokens, when)``, or None): the first request reads what a warm cache holds and
        writes the rest (at the 5-minute or one-hour price, as the client's writes have been); the others read
        it all, every token at the prices of the turn's ``speed`` and ``inference_geo``. The turns after this
        one are not projected."""
        spec = self.catalog.spec(tier.model)
        if spec is None:
            return float("inf")
        n = max(1.0, self.turn_requests)
        warm = self._warm(cache, context_tokens)
        share = self.one_hour_writes
        write = (1 - share) * spec.cache_write_5m + share * spec.cache_write_1h
        first = warm * spec.cache_read + (context_tokens - warm) * write
        tokens = first + (n - 1) * context_tokens * spec.cache_read + n * self.output_per_request * spec.output
        return tokens * spec.multiplier(speed, inference_geo) / 1e6

    @property
    def cache_ttl(self) -> float:
        """How long a conversation's cache stays warm: five minutes, or an hour where the client's cache writes
        are mostly one-hour writes."""
        return CACHE_TTL_1H_S if self.one_hour_writes > 0.5 else CACHE_TTL_S

    def record_usage(self, usage: Usage) -> None:
        """Learn from the usage an answer reported (the proxy calls this): how much a request writes, and
        which cache life the client's writes ask for."""
        with self._lock:
            if usage.output_tokens > 0:
                self.output_per_request += EWMA_ALPHA * (usage.output_tokens - self.output_per_request)
            if usage.cache_write > 0:
                share = usage.cache_write_1h / usage.cache_write
                self.one_hour_writes += EWMA_ALPHA * (share - self.one_hour_writes)

    def usage_as_asked(self, conversation: str, usage: Usage, *, switched: bool) -> Usage:
        """The usage an answered request would have reported on the model the client asked for, had the
        conversation stayed on it -- what the ledger prices ``requested_cost`` with -- and noted for the next.

        Staying, that model's cache would hold the conversation's previous prompt whenever the previous request
        came within the cache's life, so what a switch wrote anew would have been read. Requests of a
        conversation that never left the asked-for model keep their own usage."""
        now = self._clock()
        with self._lock:
            last = self._answered.get(conversation) if conversation else None
            if conversation and usage.total_input:
                self._answered[conversation] = _Answered(usage.total_input, now, switched)
                _keep(self._answered, conversation)
        if last is None or not (switched or last.switched):
            return usage
        cached = usage.cache_write + usage.cache_read
        read = min(last.prompt_tokens, cached) if now - last.at <= self.cache_ttl else 0
        one_hour = min(usage.cache_write_1h, cached - read)
        return replace(usage, cache_write_5m=cached - read - one_hour, cache_write_1h=one_hour, cache_read=read)

    def _note_conversation(self, conversation: str, tier: str, turn_key: str, context_tokens: int) -> None:
        now = self._clock()
        with self._lock:
            known = self._conversations.get(conversation)
            if known is None:
                known = self._conversations[conversation] = _Conversation(turn_key)
            elif known.turn_key != turn_key:  # a turn ended: how many requests it took
                self.turn_requests += 0.2 * (known.requests - self.turn_requests)
                known.turn_key, known.requests = turn_key, 0
            known.requests += 1
            known.caches[tier] = (context_tokens, now)
            _keep(self._conversations, conversation)

    def remember_session(self, session_id: str, requested: str, sent: str) -> None:
        """Note what a session asked for (its highest tier) and the models ultramax sent it to instead."""
        tier = self.catalog.tier_of(requested)
        if tier is None:
            return
        with self._lock:
            memory = self._sessions.get(session_id)
            if memory is None:
                memory = self._sessions[session_id] = _SessionMemory(tier.name, requested)
                _keep(self._sessions, session_id)
            elif tier.rank > self.catalog.tier(memory.tier).rank:
                memory.tier, memory.model = tier.name, requested
            if sent != memory.model:
                memory.routed_to.add(sent)

    def snapshot(self) -> dict[str, Any]:
        return {
            "hourly_spend": round(self.hourly_spend(), 6),
            "hourly_budget": self.config.budget_per_hour,
            "requests_per_turn": round(self.turn_requests, 2),
            "output_tokens_per_request": round(self.output_per_request, 1),
            "tiers": {
                name: {
                    "success_rate": round(s.success_rate, 3),
                    "avg_latency_ms": round(s.avg_latency_ms, 1),
                    "samples": s.samples,
                }
                for name, s in self.stats.items()
            },
        }
