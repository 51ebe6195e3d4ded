"""ultramax's settings: one declared table, read from Claude Code's settings files with its precedence.

The seed puts ultramax's configuration in Claude Code's own ``settings.json`` (sections ``memory``,
``routing``, ``safety``, ``observability``, ``autonomy``, ``version``; Claude Code ignores keys it does not
know), plus an ``ultramax`` section for the hook client and daemon. Files are read lowest precedence first:
user ``~/.claude/settings.json`` < project ``.claude/settings.json`` < local ``.claude/settings.local.json``,
per leaf key. ultramax never rewrites a file it could not parse.

``SETTINGS`` feeds validation, ``ultramax config show`` and the generated configuration reference.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ultramax.errors import ConfigError, json_problem
from ultramax.paths import Paths, project_settings_files

__all__ = [
    "CONSTRAINTS",
    "SECTIONS",
    "SETTINGS",
    "Constraint",
    "Problem",
    "Setting",
    "Settings",
    "http_url_problem",
    "load_settings",
    "parse_settings_bytes",
    "read_settings_file",
    "settings_reference_markdown",
]


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration key: dotted name, JSON type, default and help text."""

    key: str
    type: str  # "bool" | "int" | "number" | "str" | "list[str]"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    validator: Callable[[Any], str | None] | None = None
    """A further check of a value of the right type: why it is not acceptable, or None."""

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this key, or None if it is."""
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "dict[str,number]": isinstance(value, dict)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()),
            "dict[str,list[str]]": isinstance(value, dict)
            and all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in value.values()),
            "list[rule]": isinstance(value, list) and all(isinstance(v, str | dict) for v in value),
        }[self.type]
        if not ok:
            return f"must be {_TYPE_WORDS[self.type]}, got {json.dumps(value)}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}; got {json.dumps(value)}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, got {value}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, got {value}"
        if self.validator is not None:
            return self.validator(value)
        return None


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL with a host and a valid port, or None if it is one."""
    from ultramax.redact import redact  # here: the hook's in-process path imports config, and seldom needs this

    shown = json.dumps(redact(value))  # the URL may carry a password or a token: the message must not
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when it is not a number in 0-65535
    except ValueError:
        return f"must be an http(s) URL with a valid port (1-65535), got {shown}"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL (e.g. https://api.anthropic.com), got {shown}"
    if not parts.hostname:
        return f"must name a host (e.g. https://api.anthropic.com), got {shown}"
    if port == 0:
        return f"must have a port from 1 to 65535, got {shown}"
    return None


_TYPE_WORDS = {
    "bool": "true or false",
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "list[str]": "an array of strings",
    "dict[str,number]": "an object mapping names to numbers",
    "dict[str,list[str]]": "an object mapping names to arrays of strings",
    "list[rule]": "an array of rule objects or rule strings",
}


def _mode_problem(value: Any) -> str | None:
    """Why ``value`` is not a mode name or alias, or None (modes are data: read through ``ultramax.modes``)."""
    from ultramax.errors import ModeError
    from ultramax.modes import get_mode

    if value == "":
        return None
    if not isinstance(value, str):
        return f"must be a mode name, got {type(value).__name__}"
    try:
        get_mode(value)
    except ModeError as exc:
        return str(exc)
    return None


SETTINGS: tuple[Setting, ...] = (
    Setting("version", "str", "8.0", "Configuration format version (the seed's V8)."),
    # autonomy -- read by Claude Code workflows and reported by ultramax; ultramax does not enforce them
    Setting("autonomy.maxIterations", "int", 500, "Upper bound on agent iterations per task.", minimum=1),
    Setting("autonomy.subscriptionMode", "bool", True, "Running on a subscription rather than pay-per-token."),
    Setting("autonomy.unlimitedBudget", "bool", True, "No spending cap beyond routing.costBudgetPerHour."),
    Setting("autonomy.checkpointInterval", "int", 10, "Turns between checkpoints.", minimum=1),
    Setting("autonomy.maxParallelAgents", "int", 16, "Most subagents run at once.", minimum=1),
    Setting("autonomy.enableUltrathink", "bool", True, "Allow the maximum thinking budget."),
    Setting("autonomy.enableDeepResearch", "bool", True, "Allow long research runs."),
    # memory
    Setting(
        "memory.provider",
        "str",
        "embedded",
        "Memory backend: embedded SQLite (the only one built so far; postgres and letta are reserved, and with "
        "them memory is off -- `ultramax doctor` warns).",
        choices=("embedded", "postgres", "letta"),
    ),
    Setting(
        "memory.sleeptimeEnabled",
        "bool",
        True,
        "Consolidate memory in the background between turns (reserved: not built in this version).",
    ),
    Setting(
        "memory.sleeptimeFrequency",
        "int",
        5,
        "Turns between consolidations, adaptive within 2-15 (reserved: not built in this version).",
        minimum=1,
        maximum=100,
    ),
    Setting(
        "memory.predictivePreload",
        "bool",
        True,
        "Preload context predicted for the next prompt (reserved: not built in this version).",
    ),
    Setting("memory.hierarchicalTiers", "bool", True, "Search L1 hot to L4 deep tiers with early stop."),
    Setting("memory.captureEnabled", "bool", True, "Capture prompts, edits, commands and answers as memory."),
    Setting(
        "memory.injectionBudgetChars",
        "int",
        6000,
        "Characters of memory injected per hook (0 turns injection off).",
        minimum=0,
        maximum=10000,
    ),
    Setting(
        "memory.project",
        "str",
        "",
        "Memory project this directory writes to and reads from (empty = one per project directory).",
    ),
    Setting("memory.recallLimit", "int", 5, "Most memories injected for one prompt.", minimum=0, maximum=50),
    Setting(
        "memory.injectionMinSimilarity",
        "number",
        0.35,
        "Cosine similarity a memory needs to be injected for a prompt (0-1).",
        minimum=0,
        maximum=1,
    ),
    # routing
    Setting("routing.enabled", "bool", True, "Route model requests through the cost-aware router."),
    Setting("routing.defaultModel", "str", "sonnet-4-5", "Tier used when the analyzer has no preference."),
    Setting(
        "routing.costBudgetPerHour",
        "number",
        10.0,
        "Hourly spend (USD, rolling 60 minutes) before requests go to the cheapest tier (0 = no budget).",
        minimum=0,
    ),
    Setting(
        "routing.allowModelOverride",
        "bool",
        True,
        "Honour an explicit model in the request's x-ultramax-model header (set it with ANTHROPIC_CUSTOM_HEADERS).",
    ),
    Setting(
        "routing.budgetHardStop",
        "bool",
        True,
        "Once the hourly budget is spent, refuse requests with a clear error instead of only downgrading.",
    ),
    Setting(
        "routing.opusThreshold",
        "number",
        0.7,
        "Complexity above which a request goes to the top tier (the seed's 0.7).",
        minimum=0,
        maximum=1,
    ),
    Setting(
        "routing.sonnetThreshold",
        "number",
        0.3,
        "Complexity above which a request goes to the middle tier (the seed's 0.3); below routing.opusThreshold.",
        minimum=0,
        maximum=1,
    ),
    Setting(
        "routing.maxCostPerRequest",
        "number",
        0.0,
        "Estimated USD above which a request steps down a tier at a time (the seed's max_cost; 0 = off). The "
        "estimate reads what the conversation's warm prompt cache holds at the cache-read price.",
        minimum=0,
    ),
    Setting(
        "routing.fallbackChain",
        "list[str]",
        ["opus", "sonnet", "haiku"],
        "Tiers tried in this order when a model is overloaded (only before its first content block).",
    ),
    Setting(
        "routing.stickyTurns",
        "bool",
        True,
        "Keep every request of one agentic turn on the same model, so its prompt cache is reused.",
    ),
    Setting(
        "routing.cacheAwareSwitching",
        "bool",
        True,
        "Send each new turn to the tier that makes it cheapest among those adequate for it, counting where the "
        "conversation's prompt cache is warm (the cache is per model: a long session's prefix can cost more to "
        "write anew on a cheaper model than to read on a dearer one). false: the cheapest adequate tier.",
    ),
    Setting(
        "routing.sentenceEmbedding",
        "bool",
        True,
        "Let the tier model read a new prompt's sentence embedding where it is not sure without it (more accurate; "
        "~3-5 ms once per such prompt, ~70 MB more in the proxy). false routes with the fallback model (no "
        "transformer, ~1.5 ms).",
    ),
    Setting(
        "routing.prewarm",
        "bool",
        True,
        "On UserPromptSubmit the daemon posts the prompt to the running `ultramax proxy` (the address it "
        "announces in ~/.claude/ultramax/proxy.json), which scores it while Claude Code prepares the request: a "
        "new prompt's first request then finds its estimate ready. A hint only: it never changes where a request "
        "goes.",
    ),
    Setting(
        "routing.tierModels",
        "list[str]",
        [],
        'Model id sent for a tier, as "tier=model-id" (e.g. "haiku=claude-haiku-4-5"); overrides the catalog.',
    ),
    Setting(
        "routing.catalogFile",
        "str",
        "",
        "A TOML file merged over the packaged model catalog (tiers, model ids, prices, limits, features).",
    ),
    Setting("routing.proxyHost", "str", "127.0.0.1", "Address `ultramax proxy` listens on (keep it loopback)."),
    Setting(
        "routing.proxyPort",
        "int",
        8787,
        "Port `ultramax proxy` listens on (0 picks a free one).",
        minimum=0,
        maximum=65535,
    ),
    Setting(
        "routing.upstream",
        "str",
        "https://api.anthropic.com",
        "Where the proxy sends requests (the Anthropic API or another gateway): an http(s) URL with a host.",
        validator=http_url_problem,
    ),
    Setting(
        "routing.ledgerRetentionDays",
        "int",
        90,
        "Days of requests the cost ledger keeps (older rows are deleted when the proxy starts; 0 keeps all).",
        minimum=0,
    ),
    Setting(
        "routing.upstreamTimeoutSeconds",
        "int",
        600,
        "How long the proxy waits for the upstream's answer to begin before answering 504 (a non-streamed "
        "answer arrives whole, so keep it at least as long as the slowest one).",
        minimum=1,
    ),
    Setting(
        "routing.upstreamIdleSeconds",
        "int",
        300,
        "How long an answer may go silent mid-body before the proxy ends it (streams send pings far more often).",
        minimum=1,
    ),
    # safety
    Setting(
        "safety.level",
        "str",
        "standard",
        "Safety level: minimal, standard or maximum.",
        choices=("minimal", "standard", "maximum"),
    ),
    Setting(
        "safety.layers",
        "int",
        16,
        "Number of safety layers the gate runs (the seed has 16).",
        minimum=1,
        maximum=16,
    ),
    Setting("safety.tradingMode", "str", "paper", "Broker mode: paper or live.", choices=("paper", "live")),
    Setting(
        "safety.requireConfirmation",
        "list[str]",
        ["execute_trade", "deploy_production", "delete_*"],
        "Operations (glob patterns) that need an explicit confirmation.",
    ),
    Setting(
        "safety.killSwitchAllowsReads",
        "bool",
        True,
        "Outside trading mode, let read-only tools through while the kill switch is on.",
    ),
    Setting(
        "safety.rateLimitPerMinute",
        "int",
        600,
        "Hook events per session per minute before the rate limiter refuses (0 = no limit).",
        minimum=0,
    ),
    # safety: the rule packs of the sanitisation layer (ultramax.safety.rules; `ultramax safety rules` lists them)
    Setting(
        "safety.rules",
        "list[rule]",
        [],
        "Your own rules and changes to packaged ones: objects in the rule-pack schema (id, decision -- allow/ask/deny "
        'or per mode --, reason, match; a packaged id changes that rule, e.g. {"id": "git.push.force_lease", '
        '"decision": "deny"}) or strings "deny Bash(git push:*)".',
    ),
    Setting(
        "safety.allow",
        "list[str]",
        [],
        "Claude Code rules (Bash(npm run build), Bash(git push:*), Read(./.env), mcp__server__tool) whose calls the "
        "rule packs leave alone; guard-tampering rules still apply.",
    ),
    Setting(
        "safety.ask",
        "list[str]",
        [],
        "Claude Code rules whose calls are always put to the user (e.g. Bash(git push:*)).",
    ),
    Setting(
        "safety.deny",
        "list[str]",
        [],
        "Claude Code rules whose calls are always denied (Read(...)/Edit(...) rules also cover shell reads and "
        "writes of the same paths).",
    ),
    Setting(
        "safety.buildDirs",
        "list[str]",
        [],
        "More directory or file names (globs) that are build output: deleting them inside the project is fine.",
    ),
    Setting(
        "safety.allowedTools",
        "list[str]",
        [],
        "If not empty, PreToolUse denies any tool not in this list (names or mcp__ prefixes).",
    ),
    # safety: the engine's layers (ultramax.safety.layers_core, trading, confirm, override, anomaly)
    Setting(
        "safety.maxInputBytes",
        "int",
        8 * 1024 * 1024,
        "Largest tool input (characters of text in it) the input-validation layer accepts; larger follows the "
        "failure policy (ask, or deny in trading mode).",
        minimum=1024,
    ),
    Setting(
        "safety.requireUser",
        "bool",
        False,
        "Deny tool calls that carry no authenticated principal (the hook path always has one; the MCP gateway "
        "and the CLI must name one). Trading writes in trading mode always need one.",
    ),
    Setting(
        "safety.userPermissions",
        "dict[str,list[str]]",
        {},
        'Per-principal allow-lists of operations (glob patterns over tool names, e.g. "mcp__alpaca__get_*", '
        'or operation names such as "trade:*"); key "*" covers everyone else. Empty = no per-user limits.',
    ),
    Setting(
        "safety.sessionCallsPerMinute",
        "int",
        240,
        "Token bucket per session: tool calls per minute (burst = the same number). 0 = no limit.",
        minimum=0,
    ),
    Setting(
        "safety.operationCallsPerMinute",
        "int",
        60,
        "Token bucket per session and MCP operation: calls per minute of one MCP tool. 0 = no limit.",
        minimum=0,
    ),
    Setting(
        "safety.orderRatePerMinute",
        "int",
        5,
        "Orders (place/exercise/locate tools of trading servers) per minute, all sessions together; kept on "
        "disk so restarts do not refill it. 0 = no limit.",
        minimum=0,
    ),
    Setting(
        "safety.orderRatePerDay", "int", 30, "Orders per 24 hours, all sessions together. 0 = no limit.", minimum=0
    ),
    Setting(
        "safety.modifyRatePerMinute",
        "int",
        10,
        "Order replacements per minute, all sessions together. 0 = no limit.",
        minimum=0,
    ),
    Setting(
        "safety.tradingServers",
        "list[str]",
        ["alpaca"],
        "MCP server names (as in mcp__NAME__tool) that get the Alpaca risk table, position limits and market hours.",
    ),
    Setting(
        "safety.maxOrderNotional",
        "number",
        1000.0,
        "Largest value (USD) of one order: qty x price, or its notional; options count 100 shares a contract.",
        minimum=0,
    ),
    Setting(
        "safety.positionLimits",
        "dict[str,number]",
        {"*": 5000.0},
        'Largest absolute position value (USD) per symbol after an order, from the exposure ledger; key "*" '
        "is the limit for symbols not named.",
    ),
    Setting(
        "safety.maxTotalExposure",
        "number",
        10000.0,
        "Largest gross exposure (USD): the sum of absolute position values plus open orders, after the order.",
        minimum=0,
    ),
    Setting(
        "safety.duplicateOrderSeconds",
        "int",
        60,
        "Deny an order identical to one executed within this many seconds (duplicative orders). 0 = off.",
        minimum=0,
    ),
    Setting(
        "safety.exchange",
        "str",
        "XNYS",
        "exchange_calendars code whose sessions, holidays and early closes gate stock and option orders.",
    ),
    Setting(
        "safety.extendedHours",
        "bool",
        False,
        "Allow stock orders in pre-market (04:00) and after-hours (to 20:00, exchange time) when the order "
        "itself qualifies: limit type, extended_hours=true, time_in_force day or gtc.",
    ),
    Setting(
        "safety.breakerFailures",
        "int",
        3,
        "Consecutive failed calls of one MCP server (PostToolUseFailure or an error result) that open its "
        "circuit breaker.",
        minimum=1,
    ),
    Setting(
        "safety.breakerCooldownSeconds",
        "int",
        900,
        "How long an open circuit breaker refuses calls before letting one through as a probe.",
        minimum=1,
    ),
    Setting(
        "safety.anomalyThreshold",
        "number",
        4.0,
        "z-score of an operation's calls this minute against its EWMA baseline above which the call is put "
        "to the user (anomaly detection only escalates).",
        minimum=1,
    ),
    Setting(
        "safety.confirmationTtlSeconds",
        "int",
        300,
        "Lifetime of a confirmation: the prompt's one-time token must be redeemed (`ultramax confirm TOKEN`) and "
        "the call retried within it.",
        minimum=10,
        maximum=86400,
    ),
    Setting(
        "safety.confirmPaperOrders",
        "bool",
        True,
        "Put every paper order to the user (false: paper orders within every limit run without asking; live "
        "orders are always confirmed).",
    ),
    Setting(
        "safety.overrideMaxSeconds",
        "int",
        86400,
        "Longest lifetime a manual override (~/.claude/OVERRIDE) may have; one that expires later is ignored.",
        minimum=60,
    ),
    # observability
    Setting("observability.telemetryEnabled", "bool", True, "Collect per-event and per-stage Prometheus metrics."),
    Setting(
        "observability.metricsPort",
        "int",
        9090,
        "Loopback port of the daemon's Prometheus endpoint (0 picks a free port).",
        minimum=0,
        maximum=65535,
    ),
    Setting("observability.metricsHost", "str", "127.0.0.1", "Address the metrics endpoint binds (loopback)."),
    Setting("observability.tracingEnabled", "bool", True, "Keep each stage's time in the event's audit record."),
    Setting(
        "observability.logLevel",
        "str",
        "INFO",
        "Level of the JSON logs in ~/.claude/logs/.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    # ultramax's own knobs
    Setting(
        "ultramax.mode",
        "str",
        "",
        "Explicit project mode (the per-project marker written by "
        "`ultramax mode activate`); a name or an alias (trading, dev, creative); empty means detect from the "
        "project path.",
        validator=_mode_problem,
    ),
    Setting("ultramax.hookStages", "list[str]", [], "Override the mode's pipeline stage list (empty = mode's)."),
    Setting(
        "ultramax.skills",
        "list[str]",
        [],
        "The project mode's skills (written by mode activate): listed at session start with where their text is, "
        "and preferred among the skills a prompt matches.",
    ),
    Setting(
        "ultramax.skillsEnabled",
        "bool",
        True,
        "Inject the skills whose triggers match the prompt, dependencies first, on UserPromptSubmit.",
    ),
    Setting(
        "ultramax.skillsMax", "int", 5, "Most skills injected for one prompt (kept by priority).", minimum=1, maximum=20
    ),
    Setting(
        "ultramax.skillsTokensPerSkill",
        "int",
        700,
        "Token share of one skill; a longer SKILL.md is cut at a line (estimated at 3.5 bytes a token).",
        minimum=50,
        maximum=20000,
    ),
    Setting(
        "ultramax.skillsTokenBudget",
        "int",
        2800,
        "Tokens of skill text injected per prompt in total; the 10,000-character hook cap also applies.",
        minimum=0,
        maximum=100000,
    ),
    Setting(
        "ultramax.skillsOncePerSession",
        "bool",
        True,
        "Inject a skill's text once per session (named, not repeated, on later prompts; reset by compaction).",
    ),
    Setting(
        "ultramax.mcpServers",
        "list[str]",
        [],
        "MCP servers the project's mode enables (written by mode activate).",
    ),
    Setting(
        "ultramax.mcpNamespacing",
        "str",
        "prefix",
        "How the MCP gateway names pooled tools and prompts: prefix (<server>__<tool>) or none (pass-through).",
        choices=("prefix", "none"),
    ),
    Setting("ultramax.mcpPageSize", "int", 100, "Items per page of the MCP gateway's list results.", minimum=1),
    Setting(
        "ultramax.mcpEnvAllowlist",
        "list[str]",
        [],
        "Extra environment variables (globs) MCP servers inherit from the gateway; others must be set in the "
        "server's env.",
    ),
    Setting(
        "ultramax.hookTimeoutMs",
        "int",
        5000,
        "How long the hook client waits for the daemon before running the pipeline in-process.",
        minimum=50,
        maximum=600000,
    ),
    Setting("ultramax.maxPayloadBytes", "int", 8 * 1024 * 1024, "Largest hook payload accepted.", minimum=1024),
    Setting(
        "ultramax.auditFsync",
        "bool",
        False,
        "fsync the audit log on every record (survives power loss, "
        "slower); without it a record survives any process crash once the decision is returned.",
    ),
    Setting("ultramax.daemonWorkers", "int", 8, "Threads the daemon runs pipelines on.", minimum=1, maximum=64),
    Setting("ultramax.requireUser", "str", "", "If set, only this principal (USER) may drive the pipeline."),
)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A rule between two settings, checked on the effective values: ``low`` must be below ``high``."""

    low: str
    high: str

    def holds(self, values: Mapping[str, Any]) -> bool:
        return bool(values[self.low] < values[self.high])


CONSTRAINTS: tuple[Constraint, ...] = (Constraint("routing.sonnetThreshold", "routing.opusThreshold"),)
"""Rules between settings; when one is broken both keys fall back to their defaults (which keep it)."""

_BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = ("autonomy", "memory", "routing", "safety", "observability", "ultramax")


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad value or unreadable file, located precisely."""

    file: str
    key: str
    message: str

    def __post_init__(self) -> None:
        # a message quotes the bad value (a DSN where a name belongs, a key in the wrong place), and problems are
        # printed by config, doctor and status and logged: redacted once here, wherever the message came from
        from ultramax.redact import redact

        object.__setattr__(self, "message", redact(self.message))

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Settings:
    """Effective settings with the file each value came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def get(self, key: str) -> Any:
        if key not in _BY_KEY:
            raise KeyError(f"unknown setting {key!r}")
        return self.values[key]

    def rows(self) -> list[tuple[str, Any, str]]:
        """(key, value, source) for every declared setting, in table order."""
        return [(s.key, self.values[s.key], self.sources[s.key]) for s in SETTINGS]

    @classmethod
    def defaults(cls) -> Settings:
        return cls(values={s.key: _copy(s.default) for s in SETTINGS}, sources={s.key: "default" for s in SETTINGS})


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


def read_settings_file(path: Path) -> dict[str, Any] | None:
    """Parse one settings file; None if it does not exist. Raises ConfigError naming file, line and column."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file ({exc})") from exc
    return parse_settings_bytes(path, raw)


def parse_settings_bytes(path: Path, raw: bytes) -> dict[str, Any]:
    """Parse the bytes of a settings file; ConfigError names the file, line and column of a problem."""
    try:
        text = raw.decode("utf-8-sig")  # Claude Code reads a settings file that starts with a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc}); fix the file by hand") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({json_problem(exc)}); "
            "fix the file by hand -- ultramax never rewrites a settings file it cannot parse"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: settings must be a JSON object, got {type(data).__name__}; fix it by hand")
    return data


def _flatten(data: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    if "version" in data:
        yield "version", data["version"]
    for section in SECTIONS:
        block = data.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            yield section, block
            continue
        for key, value in block.items():
            yield f"{section}.{key}", value


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _apply_file(settings: Settings, path: Path, data: Mapping[str, Any]) -> None:
    for key, value in _flatten(data):
        label = str(path)
        if key in SECTIONS:
            settings.problems.append(Problem(label, key, f"must be an object, got {json.dumps(value)[:60]}"))
            continue
        spec = _BY_KEY.get(key)
        if spec is None:
            settings.problems.append(Problem(label, key, "unknown ultramax setting" + _suggest(key)))
            continue
        why = spec.check(value)
        if why is not None:
            settings.problems.append(Problem(label, key, why + f"; using {json.dumps(settings.values[key])}"))
            continue
        settings.values[key] = _copy(value)
        settings.sources[key] = label


def settings_files(paths: Paths, project_dir: Path | None) -> list[Path]:
    """Files read, lowest precedence first, each once: run from the home folder, the project's
    ``.claude/settings.json`` is the user's own, and reading it twice would report each of its problems twice."""
    files = [paths.user_settings]
    if project_dir is not None:
        seen = {os.path.realpath(paths.user_settings)}
        files += [f for f in project_settings_files(project_dir) if os.path.realpath(f) not in seen]
    return files


def load_settings(paths: Paths, project_dir: Path | None = None, *, strict: bool = False) -> Settings:
    """Effective settings for ``project_dir``.

    With ``strict`` a file that cannot be parsed raises ConfigError; otherwise it is skipped and reported in
    ``problems`` (the hook path must keep working with a broken file). Bad values are always reported and
    replaced by the value of lower precedence.
    """
    settings = Settings.defaults()
    for path in settings_files(paths, project_dir):
        try:
            data = read_settings_file(path)
        except ConfigError as exc:
            if strict:
                raise
            settings.problems.append(Problem(str(path), "", str(exc).removeprefix(f"{path}: ")))
            continue
        if data is None:
            continue
        settings.files.append(path)
        _apply_file(settings, path, data)
    _check_constraints(settings)
    return settings


def _origin(source: str, reported_in: str) -> str:
    """Where a value came from, for a problem reported in another file (nothing if it is that file)."""
    return "" if source == reported_in else " (the default)" if source == "default" else f" (from {source})"


def _check_constraints(settings: Settings) -> None:
    """Report each broken ``CONSTRAINTS`` rule against the file of higher precedence that set one of its keys,
    naming both values and where they came from, and put both keys back to their defaults."""
    order = {str(path): i for i, path in enumerate(settings.files)}
    for rule in CONSTRAINTS:
        if rule.holds(settings.values):
            continue
        low, high = settings.values[rule.low], settings.values[rule.high]
        low_from, high_from = settings.sources[rule.low], settings.sources[rule.high]
        file = max((low_from, high_from), key=lambda source: order.get(source, -1))
        defaults = [_BY_KEY[key].default for key in (rule.low, rule.high)]

        settings.problems.append(
            Problem(
                file,
                rule.low,
                f"must be below {rule.high}; got {json.dumps(low)}{_origin(low_from, file)} and "
                f"{json.dumps(high)}{_origin(high_from, file)}; using the defaults {defaults[0]} and {defaults[1]}",
            )
        )
        for key, value in zip((rule.low, rule.high), defaults, strict=True):
            settings.values[key] = _copy(value)
            settings.sources[key] = "default"


def settings_reference_markdown() -> str:
    """The configuration reference for docs/configuration.md, generated from SETTINGS."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `ultramax.config.SETTINGS` by `ultramax config reference`; do not edit by hand.",
        "",
        "Keys live in Claude Code's settings files (`~/.claude/settings.json` < `.claude/settings.json` <",
        '`.claude/settings.local.json`), as nested objects: `safety.level` is `{"safety": {"level": ...}}`.',
        "",
        "| key | type | default | help |",
        "|---|---|---|---|",
    ]
    for s in SETTINGS:
        extra = f" One of: {', '.join(repr(c) for c in s.choices)}." if s.choices else ""
        lines.append(f"| `{s.key}` | {s.type} | `{json.dumps(s.default)}` | {s.help}{extra} |")
    return "\n".join(lines) + "\n"
