"""The proxy against a real stand-in upstream on loopback, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from tests.conftest import wait_for
from tests.routing.conftest import KEY, client
from tests.support.proxy_thread import ProxyThread, run_proxy
from tests.support.upstream import StandInUpstream, usage_for
from ultramax.routing import Ledger, Router, RouterConfig, Usage, load_catalog
from ultramax.routing.difficulty import DifficultyModelError
from ultramax.routing.proxy import splice_model
from ultramax.routing.tier_model import TierModelError

HARD = "Design the architecture of a distributed, fault-tolerant consensus service and explain the trade-offs."
EASY = "Fix the typo in README.md"
BETA = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"


def raw_post(
    base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={
                "content-type": "application/json",
                "x-api-key": KEY,
                "anthropic-version": "2023-06-01",
                **(headers or {}),
            },
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def messages(prompt: str) -> list[MessageParam]:
    return [{"role": "user", "content": prompt}]


BASH: list[ToolParam] = [{"name": "Bash", "input_schema": {"type": "object"}}]


def stream_through(
    proxy: ProxyThread, prompt: str, headers: dict[str, str], tools: list[ToolParam] | None = None
) -> None:
    """One streamed request for the top model through the proxy with the SDK, read to its end."""
    with (
        client(proxy.base_url) as sdk,
        sdk.messages.stream(
            model="claude-opus-5",
            max_tokens=64,
            messages=messages(prompt),
            tools=anthropic.omit if tools is None else tools,
            extra_headers=headers,
        ) as stream,
    ):
        stream.until_done()


def test_a_streamed_answer_through_the_proxy_is_identical_to_the_direct_one(
    upstream: StandInUpstream, proxy: ProxyThread
) -> None:
    events = {}
    for name, base in (("direct", upstream.base_url), ("proxy", proxy.base_url)):
        with (
            client(base) as sdk,
            sdk.messages.stream(model="claude-opus-5", max_tokens=64, messages=messages(HARD)) as s,
        ):
            events[name] = [e.to_dict() for e in s]
            final = s.get_final_message()
        assert final.model == "claude-opus-5"
    assert events["proxy"] == events["direct"]
    assert len(events["direct"]) > 10
    body = {"model": "claude-opus-5", "max_tokens": 64, "stream": True, "messages": messages(HARD)}
    direct, proxied = raw_post(upstream.base_url, "/v1/messages", body), raw_post(proxy.base_url, "/v1/messages", body)
    assert proxied[0] == direct[0] == 200
    assert proxied[2] == direct[2], "the SSE bytes, pings included, arrive unchanged"
    assert b"event: ping" in proxied[2]
    assert proxied[1]["content-type"] == "text/event-stream; charset=utf-8"


def test_a_non_streamed_answer_through_the_proxy_is_identical_to_the_direct_one(
    upstream: StandInUpstream, proxy: ProxyThread
) -> None:
    answers = []
    for base in (upstream.base_url, proxy.base_url):
        with client(base) as sdk:
            answers.append(sdk.messages.create(model="claude-opus-5", max_tokens=64, messages=messages(HARD)))
    assert answers[0].to_dict() == answers[1].to_dict()
    assert (answers[0].usage.cache_read_input_tokens or 0) > 0


def test_only_the_model_value_changes_in_the_bytes_the_upstream_receives(
    upstream: StandInUpstream, proxy: ProxyThread
) -> None:
    body = {
        "model": "claude-opus-5",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328"},
            {"type": "text", "text": "You are Claude Code. Ünïcödé ✓", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": messages(EASY),
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}, "defer_loading": True}],
        "metadata": {"user_id": "u"},
        "stream": True,
        "zzz_unknown_field": {"model": "keep me"},
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    parts = urlsplit(proxy.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {
        "Content-Type": "application/json",
        "X-Api-Key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": BETA,
        "X-Claude-Code-Session-Id": "s-1",
        "User-Agent": "claude-cli/2.1.328",
    }
    conn.request("POST", "/v1/messages?beta=true", body=raw, headers=headers)
    assert conn.getresponse().read()
    conn.close()
    seen = upstream.recorded()[-1]
    assert seen.target == "/v1/messages?beta=true"
    assert seen.body == raw.replace(b'"model": "claude-opus-5"', b'"model": "claude-haiku-4-5"', 1)
    assert json.loads(seen.body)["zzz_unknown_field"] == {"model": "keep me"}
    # http.client adds Accept-Encoding: identity itself; Host and Content-Length are the proxy's to set
    forwarded = [(n, v) for n, v in seen.headers if n.lower() not in ("host", "content-length", "accept-encoding")]
    assert forwarded == [(n, v) for n, v in headers.items()], "every header verbatim, in order, same case"


def test_splicing_keeps_every_byte_but_the_top_level_model_value() -> None:
    raw = '{"messages":[{"model":"inner"}],  "model" :  "claude-opus-5" ,"x":"é"}'.encode()
    assert (
        splice_model(raw, "claude-haiku-4-5")
        == '{"messages":[{"model":"inner"}],  "model" :  "claude-haiku-4-5" ,"x":"é"}'.encode()
    )
    with pytest.raises(ValueError):
        splice_model(b'{"messages": []}', "m")


def test_upstream_errors_reach_the_client_unmodified(upstream: StandInUpstream, proxy: ProxyThread) -> None:
    body = {"model": "claude-opus-5", "max_tokens": 8, "messages": messages(HARD)}
    direct = raw_post(upstream.base_url, "/v1/messages", body, {"x-test-status": "400"})
    proxied = raw_post(proxy.base_url, "/v1/messages", body, {"x-test-status": "400"})
    assert proxied[0] == direct[0] == 400
    assert proxied[2] == direct[2]
    with client(proxy.base_url, **{"x-test-status": "400"}) as sdk, pytest.raises(anthropic.BadRequestError) as err:
        sdk.messages.create(model="claude-opus-5", max_tokens=8, messages=messages(HARD))
    assert "stand-in error 400" in str(err.value)


def test_an_overloaded_model_falls_back_to_the_next_tier_before_any_content(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    with client(proxy.base_url, **{"x-test-overload": "claude-opus-5"}) as sdk:
        message = sdk.messages.create(model="claude-opus-5", max_tokens=8, messages=messages(HARD))
    assert message.model == "claude-sonnet-5"
    with (
        client(proxy.base_url, **{"x-test-overload-stream": "claude-opus-5"}) as sdk,
        sdk.messages.stream(model="claude-opus-5", max_tokens=8, messages=messages(HARD)) as stream,
    ):
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert final.model == "claude-sonnet-5"
    assert kinds.count("message_start") == 1 and "error" not in kinds
    models = [json.loads(r.body)["model"] for r in upstream.recorded()]
    assert models == ["claude-opus-5", "claude-sonnet-5", "claude-opus-5", "claude-sonnet-5"]
    wait_for(lambda: len(ledger.entries()) == 4, 5, "four ledger rows")
    rows = ledger.entries()
    assert [(r["model"], r["status"], r["fallback_from"]) for r in rows] == [
        ("claude-opus-5", 529, ""),
        ("claude-sonnet-5", 200, "claude-opus-5"),
        ("claude-opus-5", 200, ""),
        ("claude-sonnet-5", 200, "claude-opus-5"),
    ]
    assert rows[0]["error"].startswith("overloaded_error") and rows[2]["error"].startswith("overloaded_error")
    # an attempt overloaded before its first content is not billed: neither ledger nor budget counts it
    assert (rows[0]["cost"], rows[2]["cost"], rows[2]["input_tokens"]) == (0.0, 0.0, 0)
    assert rows[3]["cost"] > 0


def test_the_last_model_of_the_chain_relays_its_overload_as_it_is(upstream: StandInUpstream, ledger: Ledger) -> None:
    router = Router(load_catalog(), RouterConfig(budget_per_hour=0, fallback_chain=("opus",)))
    with run_proxy(router, ledger, upstream.base_url) as proxy:
        body = {"model": "claude-opus-5", "max_tokens": 8, "messages": messages(HARD)}
        direct = raw_post(upstream.base_url, "/v1/messages", body, {"x-test-overload": "claude-opus-5"})
        proxied = raw_post(proxy.base_url, "/v1/messages", body, {"x-test-overload": "claude-opus-5"})
    assert proxied[0] == direct[0] == 529
    assert proxied[2] == direct[2]


def test_count_tokens_models_and_hello_pass_through(upstream: StandInUpstream, proxy: ProxyThread) -> None:
    with client(proxy.base_url) as sdk:
        counted = sdk.messages.count_tokens(model="claude-opus-5", messages=messages(EASY))
        listed = [m.id for m in sdk.models.list()]
    assert counted.input_tokens > 0
    assert listed == ["claude-opus-5", "claude-sonnet-5", "claude-haiku-4-5"]
    assert json.loads(upstream.recorded()[0].body)["model"] == "claude-opus-5", "count_tokens is not routed"
    parts = urlsplit(proxy.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request("HEAD", "/api/hello")
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200
    assert [r.target for r in upstream.recorded()][-1] == "/api/hello"


def test_the_ledger_prices_the_streamed_usage_with_cache_tokens(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    stream_through(proxy, EASY, {"x-claude-code-session-id": "s-9"})
    seen = upstream.recorded()[-1]
    reported = Usage.from_api(usage_for(seen.body, 8, 16))
    haiku = load_catalog().spec("claude-haiku-4-5")
    opus = load_catalog().spec("claude-opus-5")
    assert haiku is not None and opus is not None
    wait_for(lambda: len(ledger.entries()) == 1, 5, "the ledger row")
    [row] = ledger.entries()
    assert (row["model"], row["session"], row["requested_model"]) == ("claude-haiku-4-5", "s-9", "claude-opus-5")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read"]) == (
        reported.input_tokens,
        reported.output_tokens,
        reported.cache_read,
    )
    assert (row["cache_write_5m"], row["cache_write_1h"]) == (80, 40)
    assert row["cost"] == pytest.approx(haiku.cost(reported))
    assert row["requested_cost"] == pytest.approx(opus.cost(reported))
    [by_session] = ledger.totals("session")
    assert by_session["session"] == "s-9" and by_session["saved"] > 0


def test_a_spent_hourly_budget_gets_a_clear_error_the_sdk_does_not_retry(
    upstream: StandInUpstream, ledger: Ledger
) -> None:
    router = Router(load_catalog(), RouterConfig(budget_per_hour=1.0))
    router.record_spend(1.25)
    with run_proxy(router, ledger, upstream.base_url) as proxy:
        sdk = anthropic.Anthropic(base_url=proxy.base_url, api_key=KEY, max_retries=2)
        with sdk, pytest.raises(anthropic.RateLimitError) as err:
            sdk.messages.create(model="claude-opus-5", max_tokens=8, messages=messages(EASY))
    body = err.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "hourly model budget of $1.00 is spent" in body["error"]["message"]
    assert err.value.response.headers["x-should-retry"] == "false"
    assert upstream.recorded() == [], "nothing reached the upstream, retries included"


def test_api_keys_never_reach_the_log(
    upstream: StandInUpstream, proxy: ProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ultramax.proxy")
    with client(proxy.base_url) as sdk:
        sdk.messages.create(model="claude-opus-5", max_tokens=8, messages=messages(EASY))
    wait_for(lambda: bool(caplog.records), 5, "the proxy's log line for the request")
    assert KEY not in caplog.text and KEY[:16] not in caplog.text


def test_fifty_concurrent_streams_complete_without_an_error(upstream: StandInUpstream, proxy: ProxyThread) -> None:
    async def run() -> list[int]:
        async with anthropic.AsyncAnthropic(base_url=proxy.base_url, api_key=KEY, max_retries=0) as sdk:

            async def one(i: int) -> int:
                async with sdk.messages.stream(
                    model="claude-opus-5",
                    max_tokens=64,
                    messages=messages(f"{HARD} #{i}"),
                    extra_headers={"x-test-deltas": "40"},
                ) as stream:
                    return len([e async for e in stream])

            return await asyncio.gather(*(one(i) for i in range(50)))

    counts = asyncio.run(run())
    assert len(counts) == 50 and min(counts) == max(counts) > 40


def test_a_slow_upstream_does_not_hold_the_first_events_past_the_hold_limit(
    upstream: StandInUpstream, router: Router, ledger: Ledger
) -> None:
    with run_proxy(router, ledger, upstream.base_url, hold_limit=0.05) as proxy:
        parts = urlsplit(proxy.base_url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        body = {"model": "claude-opus-5", "max_tokens": 8, "stream": True, "messages": messages(HARD)}
        conn.request(
            "POST",
            "/v1/messages",
            body=json.dumps(body),
            headers={
                "content-type": "application/json",
                "x-api-key": KEY,
                "x-test-interval-ms": "150",
                "x-test-deltas": "1",
            },
        )
        response = conn.getresponse()
        first = response.read1(65536)
        rest = response.read()
        conn.close()
    assert first.startswith(b"event: message_start"), "released by the clock, before the first content block"
    assert b"content_block_start" not in first
    assert b"message_stop" in rest


@pytest.mark.parametrize(
    "weights",
    [
        ("load_difficulty_model", DifficultyModelError, "difficulty.json"),
        ("load_tier_model", TierModelError, "tiers.json"),
    ],
)
def test_unusable_router_weights_stop_the_proxy_at_startup_not_on_the_first_request(
    upstream: StandInUpstream,
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    weights: tuple[str, type[Exception], str],
) -> None:
    from ultramax.routing import proxy as proxy_module

    loader, error, name = weights
    from ultramax.routing.proxy import ProxyServer

    def unusable() -> None:
        raise error(f"the router's weights in {name} are unusable")

    monkeypatch.setattr(proxy_module, loader, unusable)
    server = ProxyServer(Router(load_catalog(), RouterConfig()), ledger, upstream.base_url)
    with pytest.raises(error, match=name.replace(".", r"\.")):
        asyncio.run(server.start())


def test_the_router_learns_how_much_an_answer_writes_from_the_usage_the_proxy_reads(
    upstream: StandInUpstream, router: Router, proxy: ProxyThread, ledger: Ledger
) -> None:
    before = router.output_per_request
    answer = {"x-test-deltas": "50", "x-test-delta-bytes": "400"}
    stream_through(proxy, HARD, {"x-claude-code-session-id": "s-10", **answer}, BASH)
    wait_for(lambda: len(ledger.entries()) == 1, 5, "the ledger row")
    written = ledger.entries()[0]["output_tokens"]
    assert written == 50 * 100
    assert router.output_per_request == pytest.approx(before + 0.1 * (written - before))


def test_the_ledger_prices_what_the_asked_for_model_would_have_cost_with_its_cache_kept_warm(
    upstream: StandInUpstream, proxy: ProxyThread, ledger: Ledger
) -> None:
    for prompt in (HARD, EASY):  # the hard turn stays on opus; the easy one is routed to a cheaper model
        stream_through(proxy, prompt, {"x-claude-code-session-id": "s-11"}, BASH)
    wait_for(lambda: len(ledger.entries()) == 2, 5, "two ledger rows")
    first, second = upstream.recorded()[-2:]
    [row] = [r for r in ledger.entries() if r["model"] != "claude-opus-5"]
    used = Usage.from_api(usage_for(second.body, 8, 16))
    previous = Usage.from_api(usage_for(first.body, 8, 16)).total_input
    cached = used.cache_write + used.cache_read
    read = min(previous, cached)  # staying on opus, its cache would have held the previous prompt
    one_hour = min(used.cache_write_1h, cached - read)
    as_asked = Usage(used.input_tokens, used.output_tokens, cached - read - one_hour, one_hour, read)
    opus = load_catalog().spec("claude-opus-5")
    assert opus is not None
    assert row["requested_cost"] == pytest.approx(opus.cost(as_asked))
    assert row["requested_cost"] < opus.cost(used)  # the switch's own cache writes are not counted as opus's
