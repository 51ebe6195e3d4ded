"""The model catalog: prices from the reference table, lookups, cost arithmetic, user overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ultramax.errors import ConfigError
from ultramax.routing import Usage, load_catalog


def test_prices_are_the_reference_tables_with_the_date_they_were_taken() -> None:
    catalog = load_catalog()
    assert catalog.prices_as_of == "2026-08-21"
    prices = {m.id: (m.input, m.output, m.cache_write_5m, m.cache_write_1h, m.cache_read) for m in catalog.models}
    assert prices["claude-opus-4-5"] == (5.0, 25.0, 6.25, 10.0, 0.5), "Opus 4.5 is $5/$25, not the seed's $15/$75"
    assert prices["claude-sonnet-5"] == (2.0, 10.0, 2.5, 4.0, 0.2)
    assert prices["claude-haiku-4-5"] == (1.0, 5.0, 1.25, 2.0, 0.1)
    assert [t.name for t in catalog.routable] == ["haiku", "sonnet", "opus"]
    spec = catalog.spec("claude-opus-5")
    assert spec is not None and (spec.context, spec.max_output) == (1_000_000, 128_000)


def test_a_model_is_known_by_its_id_alias_family_or_with_claude_codes_1m_suffix() -> None:
    catalog = load_catalog()
    for model, tier in [
        ("claude-haiku-4-5-20251001", "haiku"),
        ("claude-sonnet-4-5", "sonnet"),
        ("claude-opus-5-5", "opus"),
        ("claude-opus-4-6[1m]", "opus"),
        ("claude-fable-5", "fable"),
    ]:
        found = catalog.tier_of(model)
        assert found is not None and found.name == tier, model
    assert catalog.tier_of("gpt-4o") is None
    unknown_opus = catalog.spec("claude-opus-5-5")
    assert unknown_opus is not None and unknown_opus.id == "claude-opus-5", "an unknown id is priced as its tier"
    assert catalog.resolve_tier("sonnet-4-5").name == "sonnet", "the seed's routing.defaultModel value"


def test_cost_counts_input_output_cache_writes_and_reads_each_at_its_own_price() -> None:
    usage = Usage.from_api(
        {
            "input_tokens": 1_000_000,
            "output_tokens": 1_000_000,
            "cache_creation_input_tokens": 3_000_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 2_000_000, "ephemeral_1h_input_tokens": 1_000_000},
            "cache_read_input_tokens": 10_000_000,
        }
    )
    assert load_catalog().cost("claude-opus-5", usage) == pytest.approx(5 + 25 + 2 * 6.25 + 10 + 10 * 0.5)
    no_split = Usage.from_api({"input_tokens": 0, "cache_creation_input_tokens": 1_000_000})
    assert (no_split.cache_write_5m, no_split.cache_write_1h) == (1_000_000, 0)
    later = no_split.merged({"output_tokens": 7})
    assert (later.output_tokens, later.cache_write_5m) == (7, 1_000_000), "a delta only replaces what it carries"


def test_a_usage_with_negative_or_non_numeric_counts_never_makes_a_negative_cost() -> None:
    odd = Usage.from_api(
        {"input_tokens": -500, "output_tokens": float("nan"), "cache_read_input_tokens": "12", "cache_creation": 3}
    )
    assert odd == Usage()
    assert load_catalog().cost("claude-opus-5", odd) == 0.0


def test_a_catalog_file_and_tier_models_override_the_packaged_catalog(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text(
        'prices_as_of = "2027-01-01"\n[[models]]\nid = "claude-haiku-4-5"\ninput = 0.5\n'
        '[[models]]\nid = "claude-haiku-5"\ntier = "haiku"\ninput = 1.5\noutput = 7.5\n',
        encoding="utf-8",
    )
    catalog = load_catalog(extra, ["haiku=claude-haiku-5", "opus=claude-opus-4-8"])
    assert catalog.prices_as_of == "2027-01-01"
    haiku45 = catalog.spec("claude-haiku-4-5")
    assert haiku45 is not None and (haiku45.input, haiku45.output) == (0.5, 5.0), "merged field by field"
    assert catalog.tier("haiku").model == "claude-haiku-5"
    assert catalog.tier("opus").model == "claude-opus-4-8"
    with pytest.raises(ConfigError, match="not 'tier=model-id'"):
        load_catalog(None, ["haiku"])
    with pytest.raises(ConfigError, match="unknown tier"):
        load_catalog(None, ["gigantic=claude-x"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "missing.toml")


MINI = (
    '[[tiers]]\nname = "mini"\nmodel = "claude-mini-1"\nfamilies = ["claude-mini-"]\n'
    '[[models]]\nid = "claude-mini-1"\ntier = "mini"\ninput = {input}\noutput = 1.25\n'
)


def test_a_cheaper_tier_added_by_a_catalog_file_becomes_the_cheapest_not_the_top(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text(MINI.format(input=0.25), encoding="utf-8")
    catalog = load_catalog(extra)
    assert [t.name for t in catalog.tiers] == ["mini", "haiku", "sonnet", "opus", "fable"]
    assert [t.rank for t in catalog.tiers] == [0, 1, 2, 3, 4]
    assert catalog.cheapest.name == "mini" and catalog.top.name == "opus"


@pytest.mark.parametrize("price", ["-1.0", "nan", "inf", "-inf", '"3"', "true"])
def test_a_price_that_is_negative_not_finite_or_not_a_number_is_refused_naming_file_and_field(
    tmp_path: Path, price: str
) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text(MINI.format(input=price), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_catalog(extra)
    message = str(error.value)
    assert message.startswith(f"routing.catalogFile: {extra}: model 'claude-mini-1': input must be a finite number")


def test_a_catalog_file_whose_tiers_are_not_an_array_of_tables_is_a_config_error(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text("tiers = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tiers must be an array of tables"):
        load_catalog(extra)


def test_a_stream_keeps_message_starts_one_hour_cache_writes_when_message_delta_repeats_only_the_total() -> None:
    start = Usage.from_api(
        {
            "input_tokens": 68,
            "cache_creation_input_tokens": 120,
            "cache_creation": {"ephemeral_5m_input_tokens": 80, "ephemeral_1h_input_tokens": 40},
            "cache_read_input_tokens": 204,
            "output_tokens": 1,
        }
    )
    # the API's message_delta carries the cumulative totals but no cache_creation breakdown
    final = start.merged({"input_tokens": 68, "cache_creation_input_tokens": 120, "cache_read_input_tokens": 204,
                          "output_tokens": 32})  # fmt: skip
    assert (final.cache_write_5m, final.cache_write_1h, final.output_tokens) == (80, 40, 32)
    grown = start.merged({"cache_creation_input_tokens": 150})
    assert (grown.cache_write_5m, grown.cache_write_1h) == (110, 40)


#: Every kind of token, a million of each (5-minute and 1-hour writes split), as a usage object reports them.
ALL_KINDS = {
    "input_tokens": 1_000_000,
    "output_tokens": 1_000_000,
    "cache_creation_input_tokens": 2_000_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1_000_000, "ephemeral_1h_input_tokens": 1_000_000},
    "cache_read_input_tokens": 1_000_000,
}


def test_fast_mode_doubles_every_token_price_of_opus_5_and_opus_4_8_and_no_other_model() -> None:
    catalog = load_catalog()
    standard, fast = Usage.from_api({**ALL_KINDS, "speed": "standard"}), Usage.from_api({**ALL_KINDS, "speed": "fast"})
    assert catalog.cost("claude-opus-5", standard) == pytest.approx(5 + 25 + 6.25 + 10 + 0.5)
    for model in ("claude-opus-5", "claude-opus-4-8"):
        # $10 / $50 input and output, and the cache writes and reads scaled by the same factor
        assert catalog.cost(model, fast) == pytest.approx(10 + 50 + 12.5 + 20 + 1.0), model
    for model in ("claude-opus-4-7", "claude-sonnet-5", "claude-haiku-4-5"):  # no fast mode: standard prices
        assert catalog.cost(model, fast) == pytest.approx(catalog.cost(model, standard)), model


def test_inference_in_the_us_costs_1_1x_on_claude_4_6_and_newer_and_stacks_with_fast_mode() -> None:
    catalog = load_catalog()
    us, plain = Usage.from_api({**ALL_KINDS, "inference_geo": "us"}), Usage.from_api(ALL_KINDS)
    for model in ("claude-sonnet-5", "claude-sonnet-4-6", "claude-opus-4-6", "claude-opus-5", "claude-fable-5"):
        assert catalog.cost(model, us) == pytest.approx(1.1 * catalog.cost(model, plain)), model
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"):  # older: one price everywhere
        assert catalog.cost(model, us) == pytest.approx(catalog.cost(model, plain)), model
    assert catalog.cost("claude-opus-5", Usage.from_api({**ALL_KINDS, "inference_geo": "global"})) == pytest.approx(
        catalog.cost("claude-opus-5", plain)
    )
    both = Usage.from_api({**ALL_KINDS, "speed": "fast", "inference_geo": "us"})
    assert catalog.cost("claude-opus-5", both) == pytest.approx(2.2 * catalog.cost("claude-opus-5", plain))


def test_web_searches_cost_ten_dollars_a_thousand_on_top_of_tokens_and_web_fetches_only_their_tokens() -> None:
    catalog = load_catalog()
    usage = Usage.from_api(
        {
            "input_tokens": 1000,
            "output_tokens": 100,
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 5},
        }
    )
    assert (usage.web_search_requests, usage.web_fetch_requests) == (3, 5)
    tokens = (1000 * 2 + 100 * 10) / 1e6
    assert catalog.cost("claude-sonnet-5", usage) == pytest.approx(tokens + 3 * 10 / 1000)
    fast_us = Usage.from_api({"server_tool_use": {"web_search_requests": 1000}, "speed": "fast", "inference_geo": "us"})
    assert catalog.cost("claude-opus-5", fast_us) == pytest.approx(10.0), "the search fee has no speed or geography"


def test_a_usage_objects_speed_geography_and_server_tools_are_read_and_merged_like_its_counts() -> None:
    # a usage object as Claude Code's transcript records it
    recorded = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 20,
        "output_tokens_details": {"thinking_tokens": 0},
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
        "fallback_credit": None,
    }
    start = Usage.from_api({**recorded, "speed": "fast", "inference_geo": "us"})
    assert (start.speed, start.inference_geo, start.web_search_requests) == ("fast", "us", 0)
    assert Usage.from_api(recorded) == Usage(input_tokens=100, output_tokens=20, speed="standard")
    # message_delta: cumulative server tool counts replace message_start's; what it leaves out is kept
    final = start.merged({"output_tokens": 300, "server_tool_use": {"web_search_requests": 2}})
    assert (final.output_tokens, final.web_search_requests, final.web_fetch_requests) == (300, 2, 0)
    assert (final.speed, final.inference_geo) == ("fast", "us")
    assert start.merged({"speed": "", "inference_geo": None}) == start, "an empty or odd value says nothing"
    assert start.merged({"speed": "standard"}).speed == "standard"
    odd = Usage.from_api({"server_tool_use": {"web_search_requests": -3, "web_fetch_requests": "2"}, "speed": 7})
    assert odd == Usage()


def test_a_catalog_file_changes_speed_and_geography_factors_and_fees_and_bad_ones_are_refused(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text(
        '[server_tools]\nweb_search = 12.5\n[[models]]\nid = "claude-opus-4-7"\nspeed = { fast = 6.0 }\n',
        encoding="utf-8",
    )
    catalog = load_catalog(extra)
    opus47, opus5 = catalog.spec("claude-opus-4-7"), catalog.spec("claude-opus-5")
    assert opus47 is not None and opus5 is not None
    assert opus47.multiplier("fast", "us") == pytest.approx(6.6) and "fast-mode" in opus47.features
    assert (opus5.web_search, opus5.web_fetch) == (12.5, 0.0), "fees merged one by one over the packaged ones"
    assert dict(catalog.server_tools) == {"web_search": 12.5, "web_fetch": 0.0}
    for bad, message in [
        ('[[models]]\nid = "claude-opus-5"\nspeed = { fast = -2.0 }\n', "'claude-opus-5': speed.fast must be"),
        ('[[models]]\nid = "claude-opus-5"\ninference_geo = 1.1\n', "'claude-opus-5': inference_geo must be a table"),
        ('[server_tools]\nweb_search = "ten"\n', "server_tools.web_search must be a finite number >= 0"),
        ("server_tools = 10\n", "server_tools must be a table"),
    ]:
        extra.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_catalog(extra)
