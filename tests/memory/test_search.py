"""Hybrid search, fusion, time filters and the L1-L4 tiers (with the deterministic test embedder)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from ultramax.memory.fts import fts_query
from ultramax.memory.models import NewPassage
from ultramax.memory.search import fuse
from ultramax.memory.service import MemoryService
from ultramax.memory.tiers import HotSet, Tier
from ultramax.memory.timefilter import parse_time_filter

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


def test_fts_query_keeps_content_words_quoted_and_ored() -> None:
    assert fts_query("Which port does the billing service listen on?") == '"port" OR "billing" OR "service" OR "listen"'
    assert fts_query('a "quoted" AND (weird) query*') == '"quoted" OR "weird" OR "query"'
    assert fts_query("the and of") == ""


def test_a_long_lower_case_word_in_a_query_or_a_passage_is_handled_in_linear_time() -> None:
    """A 10,000-character token (a hash, base64, minified code) once held the MCP server and the hook for minutes.
    A child process: the regex engine holds the GIL, so a thread's timeout could not fire."""
    code = (
        "from ultramax.memory.fts import fts_query, identifier_terms; "
        "print(fts_query('x' * 10_000 + ' InvoiceService')); "
        "print(identifier_terms('y' * 4_000 + ' retry_backoff HTTPServer ' + 'aB' * 2_000)[:40])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True)
    query, terms = done.stdout.splitlines()
    assert query == f'"{"x" * 10_000}" OR "invoiceservice" OR "invoice" OR "service"'
    assert terms == "retrybackoff http server a ba ba ba ba b"


def test_rrf_rewards_agreement_between_keyword_and_vector_ranks() -> None:
    fused = fuse([(1, -5.0), (2, -4.0)], [(2, 0.9), (3, 0.8)], "rrf")
    assert [c.id for c in fused] == [2, 1, 3]
    assert fused[0].ranks == {"bm25": 2, "vector": 1}
    weighted = fuse([(1, -5.0), (2, -4.9), (4, -1.0)], [(2, 0.9), (3, 0.8)], "weighted")
    assert weighted[0].id == 2


def test_time_phrases_become_ranges_relative_to_now_and_leave_the_query() -> None:
    rng, rest = parse_time_filter("what did we decide about caching last week?", NOW)
    assert rng is not None and rng.hard and rest == "what did we decide about caching ?"
    assert datetime.fromtimestamp(rng.start or 0, UTC).date().isoformat() == "2026-11-09"
    assert datetime.fromtimestamp(rng.end or 0, UTC).date().isoformat() == "2026-11-16"
    rng, _ = parse_time_filter("failures since 2026-11-01", NOW)
    assert rng is not None and rng.start == datetime(2026, 11, 1, tzinfo=UTC).timestamp() and rng.end is None
    rng, _ = parse_time_filter("what broke yesterday", NOW)
    assert rng is not None and rng.end == datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    rng, rest = parse_time_filter("where did she travel in March 2025", NOW)
    assert rng is not None and not rng.hard and rest == "where did she travel in March 2025", "event dates are hints"
    assert parse_time_filter("we may use redis", NOW)[0] is None


def test_hybrid_search_finds_by_keywords_and_by_meaning(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    service.store.add_passages(
        "acme",
        [
            NewPassage("the billing service listens on port 8123", kind="decision"),
            NewPassage("auth tokens expire after one hour"),
            NewPassage("we deploy on fridays only after the smoke tests"),
        ],
    )
    service.flush()
    result = service.search("billing port", project="acme", limit=2)
    assert result.hits[0].passage.text == "the billing service listens on port 8123"
    assert result.hits[0].signals.keys() == {"bm25", "vector"}
    assert [t.tier for t in result.tiers][-1] == "L3" and all(t.ms >= 0 for t in result.tiers)


def test_a_hard_time_range_filters_and_an_empty_range_falls_back_to_everything(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    service.store.add_passages(
        "acme",
        [
            NewPassage("cache invalidation bug in the cart", created_at=NOW - 10 * DAY),
            NewPassage("cache warmup added to the deploy", created_at=NOW - 0.5 * DAY),
        ],
    )
    service.flush()
    today = service.search("cache today", project="acme", now=NOW)
    assert [h.passage.text for h in today.hits] == ["cache warmup added to the deploy"]
    assert today.time_range is not None and today.time_range.phrase == "today"
    last_year = service.search("cache last month", project="acme", now=NOW, limit=5)
    assert len(last_year.hits) == 2, "nothing in range: the range is dropped rather than answering nothing"


def test_a_repeated_query_is_answered_by_l1_and_the_store_changing_invalidates_it(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    service.store.add_passages("acme", [NewPassage("feature flags live in flags.yaml")])
    service.flush()
    first = service.search("where do feature flags live", project="acme", limit=1)
    again = service.search("where do feature flags live", project="acme", limit=1)
    assert first.answered_by == "L3" and again.answered_by == "L1"
    assert again.hits[0].passage.id == first.hits[0].passage.id
    service.store.add_passages("acme", [NewPassage("feature flags are reviewed weekly")])
    service.flush()
    assert service.search("where do feature flags live", project="acme", limit=1).answered_by != "L1"


def test_hot_set_promotes_on_repeated_access_and_demotes_least_recently_used() -> None:
    import numpy as np

    hot = HotSet(capacity=2, promote_after=2)
    vec = np.full(4, 0.5, dtype=np.float32)
    for pid in (1, 2, 3):
        hot.touch(7, pid, vec, 0.0)
    assert hot.hot_ids(7) == []
    for pid in (1, 2, 3):
        hot.touch(7, pid, vec, 0.0)
    assert hot.hot_ids(7) == [2, 3], "capacity 2: the least recently used was demoted"
    assert hot.stats()["promotions"] == 3 and hot.stats()["demotions"] == 1


def test_this_sessions_passages_answer_at_l2_before_the_archive(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    service.store.add_passages("acme", [NewPassage("retry the payment webhook three times", session_id="s1")])
    service.store.add_passages("acme", [NewPassage("the payment webhook retries were removed", session_id="old")])
    service.flush()
    service.tiers.hot = HotSet()  # start cold: no recent writes in L1
    result = service.search("payment webhook retry", project="acme", session_id="s1", limit=1)
    assert result.answered_by in ("L2", "L3")
    assert [t.tier for t in result.tiers][:2] == ["L1", "L2"]


def test_l4_searches_every_project_after_the_current_ones_hits(service: MemoryService) -> None:
    service.store.ensure_project("web")
    service.store.ensure_project("api")
    service.store.add_passages("web", [NewPassage("the frontend calls billing through /api/billing")])
    service.store.add_passages("api", [NewPassage("billing exposes /api/billing on port 8123")])
    service.flush()
    own = service.search("billing api", project="web", limit=5)
    deep = service.search("billing api", project="web", limit=5, max_tier=Tier.L4)
    assert {h.passage.project for h in own.hits} == {"web"}
    assert [h.passage.project for h in deep.hits] == ["web", "api"]
    assert deep.hits[1].tier == "L4" and deep.answered_by == "L4"


def test_a_forgotten_passage_is_gone_from_every_tier(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    (pid,) = service.store.add_passages("acme", [NewPassage("the staging password rotates monthly")])
    service.flush()
    assert service.search("staging password", project="acme").hits
    assert service.forget(pid)
    assert service.search("staging password rotates", project="acme").hits == []


def test_the_passage_after_a_hit_in_the_same_session_ranks_above_its_twin_elsewhere(service: MemoryService) -> None:
    service.store.ensure_project("acme")
    # as unrelated to the query as the answer below (no shared word), stored first so it wins a tie
    service.store.add_passages("acme", [NewPassage("let us go with 9001", session_id="other")])
    service.store.add_passages(
        "acme",
        [
            NewPassage("which port should the billing service listen on?", session_id="s1"),
            NewPassage("let us go with 8123", session_id="s1"),  # the answer: no word of the query
        ],
    )
    service.flush()
    hits = service.search("billing service port", project="acme", limit=3).hits
    order = [h.passage.text for h in hits]
    assert order[0].startswith("which port")
    assert order.index("let us go with 8123") < order.index("let us go with 9001")


def test_the_answer_after_a_question_that_matches_ranks_next_to_it_and_a_statements_neighbour_does_not(
    service: MemoryService,
) -> None:
    service.store.ensure_project("acme")
    service.store.add_passages(
        "acme",
        [
            NewPassage("which port should the billing service listen on?", session_id="s1"),
            NewPassage("let us go with 8123", session_id="s1"),  # the answer: no word of the query
            NewPassage("the billing service port moved, see the wiki", session_id="s2"),
            NewPassage("let us go with 9001", session_id="s2"),  # after a statement, not an answer
        ],
    )
    service.flush()
    order = [h.passage.text for h in service.search("billing service port", project="acme", limit=5).hits]
    assert order.index("let us go with 8123") == order.index("which port should the billing service listen on?") + 1
    # the statement outranks the question, yet the question's answer outranks the statement's neighbour
    assert order.index("the billing service port moved, see the wiki") < order.index(order[1])
    assert order[1].startswith("which port")
    assert order.index("let us go with 8123") < order.index("let us go with 9001")
