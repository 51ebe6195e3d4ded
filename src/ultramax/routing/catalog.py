"""The model catalog: routing tiers, the model ids in each, their prices and limits -- data, not code.

The packaged ``data/models.toml`` holds the defaults (prices from the reference's price table, with the date
they were taken). A user overrides them with ``routing.catalogFile`` (a TOML file of the same shape whose
tiers and models replace the packaged ones by name / id; tiers are ordered by the price of the model each sends,
so a cheaper tier it adds becomes the cheapest) and ``routing.tierModels`` (``"tier=model-id"``:
the id sent upstream for a tier).

Prices are USD per million tokens. ``ModelSpec.cost`` follows the API's billing: input, output, cache writes
(5-minute and 1-hour, priced separately) and cache reads are disjoint token counts; every token price is
multiplied by the factor of the speed the answer was served at (``speed``: fast mode) and of the geography
its inference ran in (``inference_geo``), where the model has one; server tools (web search) cost a fee per
1,000 requests on top of the tokens their results add.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ultramax.errors import ConfigError, SettingError

__all__ = ["FAST_MODE", "INFERENCE_GEO", "Catalog", "ModelSpec", "Tier", "Usage", "load_catalog"]

FAST_MODE = "fast-mode"
"""The feature of a model that takes ``speed: "fast"``: one whose catalog entry prices that speed."""
INFERENCE_GEO = "inference-geo"
"""The feature of a model that takes ``inference_geo``: one whose catalog entry prices geographies (the API
answers 400 to the parameter on models older than Claude 4.6)."""


def _count_of(value: Any) -> int:
    """A count from an API object; anything else (negative, NaN, text) counts as none."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return max(0, int(value)) if ok else 0


def _label(value: Any) -> str:
    """A short label from an API object ("fast", "us"); "" for anything that is not a non-empty string."""
    return value.strip().lower()[:32] if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Usage:
    """What one response used, as the Messages API reports it: token counts (all disjoint), server tool
    requests, and the speed and geography it was served at, which set the prices of its tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    speed: str = ""
    """"standard" or "fast" (fast mode); "" when the answer does not say (priced as standard)."""
    inference_geo: str = ""
    """Where inference ran: "global", "us"; "" when the answer does not say (priced as global)."""

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_write + self.cache_read

    @classmethod
    def from_api(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From a ``usage`` object (message_start, message_delta or a whole message)."""
        if not usage:
            return cls()
        num = _count_of
        created = num(usage.get("cache_creation_input_tokens"))
        split = usage.get("cache_creation")
        one_hour = num(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
        five_min = num(split.get("ephemeral_5m_input_tokens")) if isinstance(split, dict) else 0
        if five_min + one_hour != created:  # no split given (or an inconsistent one): the total is 5-minute writes
            five_min, one_hour = max(created - one_hour, 0), min(one_hour, created)
        tools = usage.get("server_tool_use")
        tools = tools if isinstance(tools, dict) else {}
        return cls(
            input_tokens=num(usage.get("input_tokens")),
            output_tokens=num(usage.get("output_tokens")),
            cache_write_5m=five_min,
            cache_write_1h=one_hour,
            cache_read=num(usage.get("cache_read_input_tokens")),
            web_search_requests=num(tools.get("web_search_requests")),
            web_fetch_requests=num(tools.get("web_fetch_requests")),
            speed=_label(usage.get("speed")),
            inference_geo=_label(usage.get("inference_geo")),
        )

    def merged(self, later: Mapping[str, Any] | None) -> Usage:
        """This usage updated by a later ``usage`` object: fields it carries replace ours (they are cumulative;
        an empty ``speed`` or ``inference_geo`` says nothing, and keeps ours)."""
        if not later:
            return self
        update = Usage.from_api(later)
        five_min, one_hour = self.cache_write_5m, self.cache_write_1h
        if "cache_creation_input_tokens" in later:
            if isinstance(later.get("cache_creation"), dict):
                five_min, one_hour = update.cache_write_5m, update.cache_write_1h
            else:
                # message_delta repeats the total without its 5m/1h split: keep the split message_start gave,
                # and count only an increase as 5-minute writes
                total = update.cache_write_5m + update.cache_write_1h
                one_hour = min(one_hour, total)
                five_min = total - one_hour
        tools = later.get("server_tool_use")
        tools = tools if isinstance(tools, dict) else {}
        return Usage(
            input_tokens=update.input_tokens if "input_tokens" in later else self.input_tokens,
            output_tokens=update.output_tokens if "output_tokens" in later else self.output_tokens,
            cache_write_5m=five_min,
            cache_write_1h=one_hour,
            cache_read=update.cache_read if "cache_read_input_tokens" in later else self.cache_read,
            web_search_requests=(
                update.web_search_requests if "web_search_requests" in tools else self.web_search_requests
            ),
            web_fetch_requests=update.web_fetch_requests if "web_fetch_requests" in tools else self.web_fetch_requests,
            speed=update.speed or self.speed,
            inference_geo=update.inference_geo or self.inference_geo,
        )

    def to_dict(self) -> dict[str, int | str]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_5m": self.cache_write_5m,
            "cache_write_1h": self.cache_write_1h,
            "cache_read": self.cache_read,
            "web_search_requests": self.web_search_requests,
            "web_fetch_requests": self.web_fetch_requests,
            "speed": self.speed,
            "inference_geo": self.inference_geo,
        }


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model id: its tier, prices (USD per million tokens; server tools per 1,000 requests) and limits."""

    id: str
    tier: str
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    context: int = 200_000
    max_output: int = 64_000
    aliases: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()
    speeds: tuple[tuple[str, float], ...] = ()
    """Speed ("fast") -> the factor on every token price; a speed not listed costs the standard prices."""
    geos: tuple[tuple[str, float], ...] = ()
    """Inference geography ("us") -> the factor on every token price; none for a model that does not take
    ``inference_geo``."""
    web_search: float = 0.0
    """USD per 1,000 web searches."""
    web_fetch: float = 0.0
    """USD per 1,000 web fetches."""

    def multiplier(self, speed: str = "", inference_geo: str = "") -> float:
        """The factor on every token price of an answer served at ``speed`` in ``inference_geo`` (they stack)."""
        factor = 1.0
        for name, value in self.speeds:
            if name == speed:
                factor *= value
        for name, value in self.geos:
            if name == inference_geo:
                factor *= value
        return factor

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` at this model's prices: its tokens at the prices of its speed and geography, and
        its server tool requests."""
        tokens = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_5m * self.cache_write_5m
            + usage.cache_write_1h * self.cache_write_1h
            + usage.cache_read * self.cache_read
        ) * self.multiplier(usage.speed, usage.inference_geo)
        tools = usage.web_search_requests * self.web_search + usage.web_fetch_requests * self.web_fetch
        return tokens / 1_000_000 + tools / 1_000

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a request of that size with no prompt cache."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    rank: int
    model: str
    families: tuple[str, ...] = ()
    routable: bool = True


@dataclass(frozen=True)
class Catalog:
    """Tiers (cheapest first) and models; lookups by id, alias or family prefix."""

    tiers: tuple[Tier, ...]
    models: tuple[ModelSpec, ...]
    prices_as_of: str = ""
    prices_source: str = ""
    server_tools: tuple[tuple[str, float], ...] = ()
    """Server tool ("web_search") -> its default fee, USD per 1,000 requests (a model may set its own)."""
    _by_id: dict[str, ModelSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"model catalog: duplicate tier names in {names}")
        if not self.routable:
            raise ConfigError("model catalog: no routable tier")
        for spec in self.models:
            if spec.tier not in names:
                raise ConfigError(f"model catalog: model {spec.id!r} names unknown tier {spec.tier!r}")
            for key in (spec.id, *spec.aliases):
                self._by_id[key] = spec
        for tier in self.tiers:
            if tier.model not in self._by_id:
                raise ConfigError(f"model catalog: tier {tier.name!r} sends {tier.model!r}, which has no prices")

    # -- tiers -------------------------------------------------------------------------------------
    @property
    def routable(self) -> tuple[Tier, ...]:
        """Tiers the router may choose, cheapest first."""
        return tuple(t for t in self.tiers if t.routable)

    @property
    def cheapest(self) -> Tier:
        return self.routable[0]

    @property
    def top(self) -> Tier:
        return self.routable[-1]

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(f"unknown tier {name!r} (tiers: {', '.join(t.name for t in self.tiers)})")

    def tier_of(self, model: str) -> Tier | None:
        """The tier a model id belongs to: by exact id or alias, else by family prefix; None if unknown."""
        model = _bare(model)
        spec = self._by_id.get(model)
        if spec is not None:
            return self.tier(spec.tier)
        best: tuple[int, Tier] | None = None
        for tier in self.tiers:
            for prefix in tier.families:
                if model.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), tier)
        return best[1] if best else None

    def resolve_tier(self, value: str) -> Tier:
        """A tier from a setting value: a tier name ("sonnet"), a model id, or a family ("sonnet-4-5")."""
        for t in self.tiers:
            if value == t.name:
                return t
        tier = self.tier_of(value) or self.tier_of(f"claude-{value}")
        if tier is None:
            for t in self.tiers:
                if value.startswith(t.name):
                    return t
            raise ConfigError(
                f"{value!r} is neither a tier ({', '.join(t.name for t in self.tiers)}) nor a known model"
            )
        return tier

    # -- models ------------------------------------------------------------------------------------
    def spec(self, model: str) -> ModelSpec | None:
        """Prices for a model id: exact id or alias, else its tier's default model; None if unknown."""
        model = _bare(model)
        found = self._by_id.get(model)
        if found is not None:
            return found
        tier = self.tier_of(model)
        return self._by_id[tier.model] if tier else None

    @property
    def dearest(self) -> ModelSpec:
        """The model with the highest token prices: what a model the catalog cannot price is charged as."""
        return max(self.models, key=lambda m: (m.output, m.input))

    def cost(self, model: str, usage: Usage) -> float:
        """USD for ``usage`` on ``model``. A model the catalog cannot price is charged as its dearest model
        (``price_note`` says so): a budget may then overcount it, never let it through for free."""
        return (self.spec(model) or self.dearest).cost(usage)

    def price_note(self, model: str) -> str:
        """ "" if ``model`` has prices (its own, or its family's); else what it was priced as and how to fix it."""
        if not model or self.spec(model) is not None:
            return ""
        return (
            f"{model} is not in the model catalog: priced as {self.dearest.id}, its dearest model "
            "(add the model's prices in a file named by routing.catalogFile)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prices_as_of": self.prices_as_of,
            "prices_source": self.prices_source,
            "server_tools_per_1000": dict(self.server_tools),
            "tiers": [
                {"name": t.name, "model": t.model, "routable": t.routable, "families": list(t.families)}
                for t in self.tiers
            ],
            "models": [
                {
                    "id": m.id,
                    "tier": m.tier,
                    "input": m.input,
                    "output": m.output,
                    "cache_write_5m": m.cache_write_5m,
                    "cache_write_1h": m.cache_write_1h,
                    "cache_read": m.cache_read,
                    "context": m.context,
                    "max_output": m.max_output,
                    "features": sorted(m.features),
                    "speed": dict(m.speeds),
                    "inference_geo": dict(m.geos),
                    "web_search_per_1000": m.web_search,
                    "web_fetch_per_1000": m.web_fetch,
                }
                for m in self.models
            ],
        }


def _bare(model: str) -> str:
    """A model id without Claude Code's ``[1m]`` context suffix."""
    return model.split("[", 1)[0].strip()


# -- loading --------------------------------------------------------------------------------------------
def _packaged() -> dict[str, Any]:
    text = resources.files("ultramax.routing").joinpath("data/models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError('does not exist; fix the path or set routing.catalogFile to ""') from exc
    except IsADirectoryError as exc:
        raise ConfigError("is a directory, not a TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror or exc})") from exc


def _merge_named(base: list[dict[str, Any]], extra: Any, key: str, what: str) -> list[dict[str, Any]]:
    if not isinstance(extra, list):
        raise ConfigError(f"{what}s must be an array of tables ([[{what}s]]), got {type(extra).__name__}")
    out = [dict(item) for item in base]
    index = {item[key]: i for i, item in enumerate(out)}
    for item in extra:
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            raise ConfigError(f"every {what} needs a string {key!r}, got {item!r}")
        if item[key] in index:
            out[index[item[key]]] = {**out[index[item[key]]], **item}
        else:
            index[item[key]] = len(out)
            out.append(dict(item))
    return out


PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


def _price(model: Mapping[str, Any], key: str) -> float:
    """A price field of a ``[[models]]`` entry: a finite number >= 0 (USD per million tokens); cache prices
    default to the API's multiples of the input price."""
    multiple = {"cache_write_5m": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1}
    value = model[key] if key in model or key not in multiple else _price(model, "input") * multiple[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"model {model.get('id')!r}: {key} must be a finite number >= 0 (USD per million tokens), got {value!r}"
        )
    return float(value)


def _fee(value: Any, where: str) -> float:
    """A server tool's fee: a finite number >= 0 (USD per 1,000 requests)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} must be a finite number >= 0 (USD per 1,000 requests), got {value!r}")
    return float(value)


def _server_tools(data: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    tools = data.get("server_tools", {})
    if not isinstance(tools, dict):
        raise ConfigError(f"server_tools must be a table (web_search = 10.0), got {type(tools).__name__}")
    return tuple((str(name), _fee(value, f"server_tools.{name}")) for name, value in tools.items())


def _multipliers(model: Mapping[str, Any], key: str) -> tuple[tuple[str, float], ...]:
    """A ``speed`` or ``inference_geo`` table of a ``[[models]]`` entry: name -> a finite factor > 0 on every
    token price."""
    table = model.get(key, {})
    example = "{ fast = 2.0 }" if key == "speed" else "{ global = 1.0, us = 1.1 }"
    if not isinstance(table, dict):
        raise ConfigError(f"model {model.get('id')!r}: {key} must be a table like {example}, got {table!r}")
    out = []
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"model {model.get('id')!r}: {key}.{name} must be a finite number > 0 (a factor on every token "
                f"price), got {value!r}"
            )
        out.append((str(name).lower(), float(value)))
    return tuple(out)


def _model(m: Mapping[str, Any], fees: Mapping[str, float]) -> ModelSpec:
    """A ``[[models]]`` entry; ``fees``: the catalog's server tool fees, which the entry may override. The
    request features it accepts are those listed, plus fast mode and ``inference_geo`` where its entry prices
    them (one fact, kept in one place)."""
    speeds, geos = _multipliers(m, "speed"), _multipliers(m, "inference_geo")
    features = {str(f) for f in m.get("features", ())}
    if any(name == "fast" for name, _ in speeds):
        features.add(FAST_MODE)
    if geos:
        features.add(INFERENCE_GEO)
    where = f"model {m.get('id')!r}"
    return ModelSpec(
        id=str(m["id"]),
        tier=str(m["tier"]),
        input=_price(m, "input"),
        output=_price(m, "output"),
        cache_write_5m=_price(m, "cache_write_5m"),
        cache_write_1h=_price(m, "cache_write_1h"),
        cache_read=_price(m, "cache_read"),
        context=_count(m, "context", 200_000),
        max_output=_count(m, "max_output", 64_000),
        aliases=tuple(str(a) for a in m.get("aliases", ())),
        features=frozenset(features),
        speeds=speeds,
        geos=geos,
        web_search=_fee(m.get("web_search", fees.get("web_search", 0.0)), f"{where}: web_search"),
        web_fetch=_fee(m.get("web_fetch", fees.get("web_fetch", 0.0)), f"{where}: web_fetch"),
    )


def _count(model: Mapping[str, Any], key: str, default: int) -> int:
    value = model.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {model.get('id')!r}: {key} must be a positive whole number of tokens, got {value!r}")
    return value


def _build(data: Mapping[str, Any]) -> Catalog:
    """The catalog from merged data. Tiers are ordered by the price of the model each sends (output, then input;
    ties keep file order), cheapest first: a tier added by a catalog file takes its place by price, not last."""
    try:
        server_tools = _server_tools(data)
        fees = dict(server_tools)
        models = tuple(_model(m, fees) for m in data["models"])
        prices = {key: (spec.output, spec.input) for spec in models for key in (spec.id, *spec.aliases)}
        entries = sorted(data["tiers"], key=lambda t: prices.get(str(t["model"]), (math.inf, math.inf)))
        tiers = tuple(
            Tier(
                name=str(t["name"]),
                rank=i,
                model=str(t["model"]),
                families=tuple(str(f) for f in t.get("families", ())),
                routable=bool(t.get("routable", True)),
            )
            for i, t in enumerate(entries)
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"model catalog: malformed entry ({exc!r})") from exc
    return Catalog(
        tiers=tiers,
        models=models,
        prices_as_of=str(data.get("prices_as_of", "")),
        prices_source=str(data.get("prices_source", "")),
        server_tools=server_tools,
    )


def load_catalog(catalog_file: str | Path | None = None, tier_models: Iterable[str] = ()) -> Catalog:
    """The packaged catalog, with ``catalog_file`` merged over it and ``tier_models`` overrides applied."""
    data = _packaged()
    if catalog_file:
        path = Path(catalog_file).expanduser()
        try:
            extra = _read_toml(path)
            data["tiers"] = _merge_named(data["tiers"], extra.get("tiers", []), "name", "tier")
            data["models"] = _merge_named(data["models"], extra.get("models", []), "id", "model")
            for key in ("prices_as_of", "prices_source"):
                if key in extra:
                    data[key] = extra[key]
            if "server_tools" in extra:  # merged fee by fee (anything but a table is refused when it is read)
                tools = extra["server_tools"]
                data["server_tools"] = {**data.get("server_tools", {}), **tools} if isinstance(tools, dict) else tools
            catalog = _build(data)
        except SettingError:
            raise
        except ConfigError as exc:
            raise SettingError("routing.catalogFile", f"{path}: {str(exc).removeprefix('model catalog: ')}") from exc
    else:
        catalog = _build(data)
    overrides: dict[str, str] = {}
    for item in tier_models:
        name, sep, model = item.partition("=")
        if not sep or not name.strip() or not model.strip():
            raise SettingError("routing.tierModels", f"{item!r} is not 'tier=model-id' (e.g. 'haiku=claude-haiku-4-5')")
        overrides[name.strip()] = model.strip()
    if overrides:
        tiers = []
        for tier in catalog.tiers:
            model = overrides.pop(tier.name, tier.model)
            tiers.append(replace(tier, model=model))
        if overrides:
            raise SettingError(
                "routing.tierModels",
                f"unknown tier(s) {', '.join(sorted(overrides))} (tiers: {', '.join(t.name for t in catalog.tiers)})",
            )
        models = list(catalog.models)
        known = {m.id for m in models} | {a for m in models for a in m.aliases}
        for tier in tiers:
            if tier.model not in known:  # a new id for a tier: priced like the tier's packaged default
                base = catalog.spec(catalog.tier(tier.name).model)
                assert base is not None
                models.append(replace(base, id=tier.model, aliases=()))
                known.add(tier.model)
        catalog = Catalog(
            tuple(tiers), tuple(models), catalog.prices_as_of, catalog.prices_source, catalog.server_tools
        )
    return catalog
