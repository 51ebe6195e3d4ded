"""What the ledger and the budget charge beyond token counts, through the proxy against the stand-in upstream:
fast mode, inference in the US, web searches -- streamed and not -- and what a request in flight holds."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_for
from tests.routing.conftest import KEY, client
from tests.support.proxy_thread import ProxyThread, run_proxy
from tests.support.raw_upstream import HANG, RawUpstream, run_raw_upstream
from tests.support.upstream import StandInUpstream, usage_for
from ultramax.routing import Ledger, Router, RouterConfig, Usage, load_catalog

EASY = "Fix the typo in README.md"
HARD = "Design the architecture of a distributed, fault-tolerant consensus service and explain the trade-offs."


def price(model: str, usage: Usage) -> float:
    spec = load_catalog().spec(model)
    assert spec is not None
    return spec.cost(usage)


def only_row(ledger: Ledger) -> dict[str, Any]:
    wait_for(lambda: len(ledger.entries()) == 1, 5, "the ledger row")
    [row] = ledger.entries()
    return row


def test_a_fast_mode_stream_costs_twice_the_opus_prices_in_the_ledger_and_in_the_hourly_spend(
    upstream: StandInUpstream, router: Router, proxy: ProxyThread, ledger: Ledger
) -> None:
    with (
        client(proxy.base_url) as sdk,
        sdk.messages.stream(
            model="claude-opus-5",
            max_tokens=64,
            messages=[{"role": "user", "content": EASY}],
            extra_body={"speed": "fast"},
        ) as stream,
    ):
        stream.until_done()
    seen = upstream.recorded()[-1]
    assert seen.json["model"] == "claude-opus-5", "an easy prompt, but only Opus takes speed: fast"
    assert seen.json["speed"] == "fast"
    row = only_row(ledger)
    assert (row["model"], row["speed"], row["inference_geo"]) == ("claude-opus-5", "fast", "")
    standard = Usage.from_api(usage_for(seen.body, 8, 16) | {"speed": "standard"})
    assert row["output_tokens"] == standard.output_tokens and row["cache_write_1h"] == 40
    assert row["cost"] == pytest.approx(2 * price("claude-opus-5", standard))
    assert router.hourly_spend() == pytest.approx(row["cost"]), "the budget counts what the ledger charged"
    [by_model] = ledger.totals("model")
    assert (by_model["fast_requests"], by_model["us_requests"]) == (1, 0)


def test_a_non_streamed_answer_run_in_the_us_costs_1_1x_and_never_goes_to_a_model_older_than_4_6(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    with client(proxy.base_url) as sdk:
        message = sdk.messages.create(
            model="claude-opus-5",
            max_tokens=64,
            messages=[{"role": "user", "content": EASY}],
            extra_body={"inference_geo": "us"},
        )
    assert message.model == "claude-sonnet-5", "the cheapest model that takes inference_geo, not claude-haiku-4-5"
    seen = upstream.recorded()[-1]
    row = only_row(ledger)
    assert (row["model"], row["inference_geo"], row["speed"]) == ("claude-sonnet-5", "us", "standard")
    plain = Usage.from_api(usage_for(seen.body, 8, 16) | {"inference_geo": ""})
    assert row["cost"] == pytest.approx(1.1 * price("claude-sonnet-5", plain))
    assert row["requested_cost"] == pytest.approx(1.1 * price("claude-opus-5", plain)), "the asked-for model, in the US"
    assert ledger.totals("model")[0]["us_requests"] == 1


def test_web_searches_are_charged_per_thousand_from_the_count_message_delta_gives_and_from_a_whole_answer(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    headers = {"x-test-web-searches": "3", "x-test-web-fetches": "2"}
    with (
        client(proxy.base_url, **headers) as sdk,
        sdk.messages.stream(model="claude-opus-5", max_tokens=64, messages=[{"role": "user", "content": HARD}]) as s,
    ):
        s.until_done()
    streamed = upstream.recorded()[-1]
    row = only_row(ledger)
    assert (row["web_search_requests"], row["web_fetch_requests"]) == (3, 2), "message_start said 0 of each"
    no_tools = Usage.from_api({k: v for k, v in usage_for(streamed.body, 8, 16).items() if k != "server_tool_use"})
    assert row["cost"] == pytest.approx(price(row["model"], no_tools) + 3 * 10 / 1000), "fetches cost only tokens"
    with client(proxy.base_url, **{"x-test-web-searches": "5"}) as sdk:
        sdk.messages.create(model="claude-opus-5", max_tokens=64, messages=[{"role": "user", "content": HARD}])
    wait_for(lambda: len(ledger.entries()) == 2, 5, "the second ledger row")
    whole = ledger.entries()[1]
    assert whole["web_search_requests"] == 5
    assert sum(r["web_search_requests"] for r in ledger.totals("model")) == 8


def received(upstream: RawUpstream, requests: int) -> Callable[[], bool]:
    return lambda: upstream.requests == requests


def test_a_request_in_flight_holds_its_estimate_at_the_price_of_its_speed_and_geography(ledger: Ledger) -> None:
    router = Router(load_catalog(), RouterConfig(budget_per_hour=100))
    held = {}
    with run_raw_upstream([HANG, HANG, HANG]) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        parts = urlsplit(proxy.base_url)
        for name, extra in [
            ("standard", {}),
            ("fast", {"speed": "fast"}),
            ("fast in the us", {"speed": "fast", "inference_geo": "us"}),
        ]:
            body = json.dumps(
                {"model": "claude-opus-5", "max_tokens": 4096, "messages": [{"role": "user", "content": HARD}], **extra}
            ).encode()
            body = body.ljust(200 + len(HARD))  # one size for all three: the same tokens to estimate
            sent = upstream.requests
            with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-api-key: %s\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (KEY.encode(), len(body), body)
                )
                wait_for(received(upstream, sent + 1), 5, "the request to reach the upstream")
                held[name] = router.reserved
            wait_for(lambda: router.reserved == 0, 5, "the estimate released once the client has gone")
    assert held["standard"] > 0
    assert held["fast"] == pytest.approx(2 * held["standard"])
    assert held["fast in the us"] == pytest.approx(2.2 * held["standard"])


def test_a_model_the_catalog_cannot_price_is_charged_as_its_dearest_model_and_the_ledger_says_so(
    upstream: StandInUpstream, router: Router, proxy: ProxyThread, ledger: Ledger
) -> None:
    with client(proxy.base_url) as sdk:
        message = sdk.messages.create(
            model="acme-finetune-7", max_tokens=64, messages=[{"role": "user", "content": EASY}]
        )
    assert message.model == "acme-finetune-7", "a model the router does not know is sent as asked"
    seen = upstream.recorded()[-1]
    row = only_row(ledger)
    catalog = load_catalog()
    usage = Usage.from_api(usage_for(seen.body, 8, 16))
    assert row["cost"] == pytest.approx(catalog.dearest.cost(usage)) and row["cost"] > 0
    assert row["requested_cost"] == pytest.approx(row["cost"]), "no saving claimed against a model without prices"
    assert f"acme-finetune-7 is not in the model catalog: priced as {catalog.dearest.id}" in row["error"]
    assert router.hourly_spend() == pytest.approx(row["cost"]), "the budget counts it"
