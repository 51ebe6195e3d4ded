"""Prewarm hints: the daemon's UserPromptSubmit stage tells the running proxy the prompt, the proxy scores it on a
worker thread, and the prompt's request finds its estimate ready -- without a hint ever being forwarded, changing
where a request goes, or costing the hook anything when no proxy listens."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.conftest import ContextFactory, UltramaxEnv, wait_for
from tests.routing.test_proxy import BASH, raw_post, stream_through
from tests.support.proxy_thread import ProxyThread
from tests.support.upstream import StandInUpstream
from ultramax.config import load_settings
from ultramax.pipeline.stages import PrewarmStage
from ultramax.prewarm import (
    PREWARM_PATH,
    PrewarmSender,
    announce_proxy,
    announced_proxy,
    is_loopback_host,
    proxy_file,
    withdraw_proxy,
)
from ultramax.routing import Ledger
from ultramax.routing.prewarm import PromptScorer
from ultramax.routing.tier_model import estimate_tier

PROMPT = "Rename the retry helper in src/jobs/queue.py to retry_with_backoff and update its callers"
CLAUDE_CODE = {"x-claude-code-session-id": "s-prewarm", "user-agent": "claude-cli/2.1.328 (external, cli)"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


def test_a_prompt_hinted_by_the_stage_is_scored_before_its_request_and_the_ledger_says_so(
    umx: UltramaxEnv, proxy: ProxyThread, ledger: Ledger, make_context: ContextFactory
) -> None:
    announce_proxy(umx.paths, proxy.base_url)
    sender = PrewarmSender(umx.paths)
    ctx = make_context("UserPromptSubmit", prompt=PROMPT)
    out = PrewarmStage(sender).process(ctx)
    assert out.metadata == {"route_prewarm": "sent"}
    assert sender.wait_idle(5) and sender.sent == 1
    scorer = proxy.server.scorer
    wait_for(lambda: PROMPT in scorer._ready, 10, "the hinted prompt scored on the proxy's worker thread")

    scored = estimate_tier.cache_info()
    stream_through(proxy, PROMPT, CLAUDE_CODE, BASH)
    assert estimate_tier.cache_info().misses == scored.misses  # the request did not score its prompt again
    wait_for(lambda: len(ledger.entries()) == 1, 5, "the ledger row")
    assert "prompt scored ahead from the UserPromptSubmit hook" in ledger.entries()[0]["reason"]
    assert scorer.claimed == 1

    stream_through(proxy, PROMPT, CLAUDE_CODE, BASH)  # the turn's next request: no second claim
    wait_for(lambda: len(ledger.entries()) == 2, 5, "the second ledger row")
    assert "scored ahead" not in ledger.entries()[1]["reason"]


def test_a_request_without_a_hint_is_routed_as_before_and_claims_nothing(proxy: ProxyThread, ledger: Ledger) -> None:
    stream_through(proxy, PROMPT + " (no hint)", CLAUDE_CODE, BASH)
    wait_for(lambda: len(ledger.entries()) == 1, 5, "the ledger row")
    assert "scored ahead" not in ledger.entries()[0]["reason"]
    assert proxy.server.scorer.claimed == 0


def test_hints_are_answered_by_the_proxy_and_never_forwarded_and_bad_ones_get_a_clear_400(
    upstream: StandInUpstream, proxy: ProxyThread
) -> None:
    status, _, body = raw_post(proxy.base_url, PREWARM_PATH, {"prompt": PROMPT})
    assert (status, body) == (202, b"")
    status, _, body = raw_post(proxy.base_url, PREWARM_PATH, {"text": PROMPT})
    assert status == 400
    assert json.loads(body)["error"]["message"] == (
        'ultramax proxy: prewarm hint: expected {"prompt": "<the text typed>"}'
    )
    assert upstream.recorded() == []
    assert proxy.server.scorer.hints == 1


def test_the_stage_sends_nothing_when_prewarm_is_off_or_no_proxy_is_announced(
    umx: UltramaxEnv, proxy: ProxyThread, make_context: ContextFactory
) -> None:
    sender = PrewarmSender(umx.paths)
    assert PrewarmStage(sender).process(make_context("UserPromptSubmit", prompt=PROMPT)).metadata == {}
    announce_proxy(umx.paths, proxy.base_url)
    umx.update_user_settings({"routing": {"prewarm": False}})
    settings = load_settings(umx.paths, None)
    assert settings.get("routing.prewarm") is False
    ctx = make_context("UserPromptSubmit", settings=settings, prompt=PROMPT)
    assert PrewarmStage(sender).process(ctx).metadata == {}
    assert PrewarmStage(sender).process(make_context("PreToolUse")).metadata == {}
    assert sender.sent == 0 and proxy.server.scorer.hints == 0


def test_a_proxy_that_is_gone_costs_the_hook_nothing_and_quiets_the_sender_until_another_is_announced(
    umx: UltramaxEnv, proxy: ProxyThread
) -> None:
    announce_proxy(umx.paths, f"http://127.0.0.1:{free_port()}")  # a proxy killed without withdrawing
    sender = PrewarmSender(umx.paths)
    assert sender.submit(PROMPT)  # queued: the post happens on the sender's thread
    assert sender.wait_idle(5)
    assert (sender.sent, sender.failed) == (0, 1)
    assert not sender.submit(PROMPT)  # quiet for a while: no connection attempt per prompt
    announce_proxy(umx.paths, proxy.base_url)  # a proxy started since is hinted at once
    assert sender.submit(PROMPT) and sender.wait_idle(5)
    assert sender.sent == 1


@pytest.mark.parametrize(
    "content",
    [
        '{"url": "http://192.0.2.7:8787"}',  # not loopback: the prompt would leave the machine
        '{"url": "https://127.0.0.1:8787"}',
        '{"url": "http://127.0.0.1"}',
        '{"url": 8787}',
        "{not json",
    ],
)
def test_an_announcement_that_is_not_a_loopback_http_address_is_ignored(umx: UltramaxEnv, content: str) -> None:
    umx.paths.ensure_home()
    proxy_file(umx.paths).write_text(content, encoding="utf-8")
    assert announced_proxy(umx.paths) is None
    assert not PrewarmSender(umx.paths).submit(PROMPT)


def test_a_stopping_proxy_withdraws_only_its_own_announcement(umx: UltramaxEnv) -> None:
    announce_proxy(umx.paths, "http://127.0.0.1:8787")
    withdraw_proxy(umx.paths, "http://127.0.0.1:9999")  # an older proxy stopping after a newer one started
    assert announced_proxy(umx.paths) == "http://127.0.0.1:8787"
    withdraw_proxy(umx.paths, "http://127.0.0.1:8787")
    assert announced_proxy(umx.paths) is None
    assert not proxy_file(umx.paths).exists()


def test_the_announcement_is_private_to_the_user(umx: UltramaxEnv) -> None:
    assert announce_proxy(umx.paths, "http://127.0.0.1:8787").stat().st_mode & 0o777 == 0o600


def test_a_flood_of_hints_is_dropped_past_a_few_scorings_in_flight() -> None:
    async def flood() -> tuple[int, int]:
        scorer = PromptScorer(sentence_embedding=False)
        for i in range(10):  # all in one go: none can finish in between
            scorer.hint(f"{PROMPT} #{i}")
        in_flight = len(scorer._scoring)
        await scorer.settle()
        scorer.close()
        return in_flight, scorer.dropped

    assert asyncio.run(flood()) == (PromptScorer.MAX_PENDING, 10 - PromptScorer.MAX_PENDING)


def test_a_proxy_on_a_non_loopback_address_withdraws_its_announcement_when_it_stops(umx: UltramaxEnv) -> None:
    announce_proxy(umx.paths, "http://0.0.0.0:8787")  # the daemon ignores it, but it is still this proxy's
    withdraw_proxy(umx.paths, "http://0.0.0.0:8787")
    assert not proxy_file(umx.paths).exists()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_every_loopback_address_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_an_announcement_on_another_loopback_address_is_used(umx: UltramaxEnv) -> None:
    announce_proxy(umx.paths, "http://127.0.0.2:8787")
    assert announced_proxy(umx.paths) == "http://127.0.0.2:8787"
