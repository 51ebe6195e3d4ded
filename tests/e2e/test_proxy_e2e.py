"""The real Claude Code CLI with ``ANTHROPIC_BASE_URL`` at ultramax's proxy, whose upstream is the scripted model
server: a two-turn session (a simple fix, then a hard design question, resumed with ``--continue``) plus a
prompt-type Stop hook, which Claude Code answers with its small fast model in the background.

What the upstream sees is the proof: the simple turn goes to a cheaper model than Claude Code asked for, the
background requests to the cheapest tier, the hard turn to the top model; and the ledger's cost is exactly the
cost of the usage the upstream reported. A second session shows the prompt cache counted: after a hard turn
that read a long file, a follow-up the middle tier could do stays on the top model, whose cache holds the
conversation, unless ``routing.cacheAwareSwitching`` is off.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, UltramaxEnv, wait_for
from tests.e2e.conftest import ultramax_cli
from tests.support.claude_cli import run_claude, write_project_settings
from tests.support.model_server import (
    RecordedRequest,
    Turn,
    aux_answer,
    bash_turn,
    run_model_server,
    sse_events,
    text_turn,
)
from tests.support.proxy_thread import run_proxy
from ultramax.prewarm import announced_proxy
from ultramax.routing import Ledger, Router, RouterConfig, Usage, load_catalog

pytestmark = pytest.mark.e2e

SIMPLE = "Fix the typo in README.md"
HARD = (
    "Design the architecture for a distributed, fault-tolerant job scheduler across three regions: "
    "consensus, failure handling and the trade-offs."
)
SCRIPT = [
    bash_turn("sed -i s/teh/the/ README.md", description="Fix the typo"),
    text_turn("Fixed."),
    text_turn("Here is the design."),
]


@pytest.fixture
def ledger(umx: UltramaxEnv) -> Iterator[Ledger]:
    with Ledger.open(umx.paths) as led:
        yield led


def reported_usage(request: RecordedRequest) -> Usage:
    """The usage the model server put in its stream for ``request`` (recomputed from its own functions)."""
    turn = SCRIPT[request.turn] if request.turn is not None else Turn(text=aux_answer(request.body, "OK"))
    usage = Usage()
    for name, data in sse_events(
        turn, message_id="m", model="m", input_tokens=max(1, len(request.raw_body) // 4), tool_id_prefix="t"
    ):
        if name == "message_start":
            usage = Usage.from_api(data["message"]["usage"])
        elif name == "message_delta":
            usage = usage.merged(data["usage"])
    return usage


@pytest.mark.parametrize(
    ("haiku_takes_claude_codes_features", "cheap"),
    [(False, "sonnet"), (True, "haiku")],
    ids=["packaged-catalog", "catalog-where-haiku-takes-effort-and-adaptive-thinking"],
)
def test_claude_code_through_the_proxy_gets_cheap_models_for_simple_and_background_work_and_the_top_one_for_hard(
    claude_bin: Path, umx: UltramaxEnv, ledger: Ledger, haiku_takes_claude_codes_features: bool, cheap: str
) -> None:
    project = umx.project("webapp")
    (project / "README.md").write_text("teh app\n", encoding="utf-8")
    write_project_settings(project, {"hooks": {"Stop": [{"hooks": [{"type": "prompt", "prompt": "Is it done?"}]}]}})
    catalog_file = None
    if haiku_takes_claude_codes_features:
        # What a user writes (routing.catalogFile) once their cheapest model accepts Claude Code's requests
        catalog_file = umx.root / "catalog.toml"
        catalog_file.write_text(
            '[[models]]\nid = "claude-haiku-4-5"\ntier = "haiku"\nfeatures = ["adaptive-thinking", "effort"]\n',
            encoding="utf-8",
        )
    catalog = load_catalog(catalog_file)
    router = Router(catalog, RouterConfig(budget_per_hour=0))
    with run_model_server(SCRIPT) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        first = run_claude(
            SIMPLE, cwd=project, home=umx.home, base_url=proxy.base_url, allowed_tools=["Bash"], claude=claude_bin
        ).check()
        second = run_claude(
            HARD,
            cwd=project,
            home=umx.home,
            base_url=proxy.base_url,
            allowed_tools=["Bash"],
            extra_args=["--continue"],
            claude=claude_bin,
        ).check()
        upstream.wait_until_script_finished()
        requests = [r for r in upstream.requests if r.route == "/v1/messages"]
        wait_for(lambda: len(ledger.entries()) == len(requests), 10, "a ledger row for every model request")
    assert first.text == "Fixed." and second.text == "Here is the design."
    assert (project / "README.md").read_text(encoding="utf-8") == "the app\n"
    assert not upstream.problems

    asked = {r.body["model"] for r in requests if r.kind == "main"}
    main = [r for r in requests if r.kind == "main"]
    simple_turn = [r for r in main if r.turn in (0, 1)]
    hard_turn = [r for r in main if r.turn == 2]
    background = [r for r in requests if r.kind == "aux"]
    assert simple_turn and hard_turn and background, [(r.kind, r.turn) for r in requests]

    def tier(r: RecordedRequest) -> str:
        found = catalog.tier_of(r.body["model"])
        assert found is not None
        return found.name

    # Claude Code asked for its default (top-tier) model on every main request; the proxy changed only that.
    requested_rows = {row["requested_model"] for row in ledger.entries() if row["tier"] != "haiku"}
    assert requested_rows <= {"claude-opus-5-5", *asked}
    # The simple turn (both of its requests: the tool call and the answer) and the background requests (the
    # prompt hook) went to the cheapest tier whose model accepts them. Claude Code 2.1.328's requests carry
    # adaptive thinking and effort, which the packaged catalog's Haiku 4.5 does not accept: there the cheapest
    # such model is the middle tier's; with a catalog whose Haiku takes them, it is Haiku.
    assert {tier(r) for r in simple_turn} == {cheap}
    assert {r.body["model"] for r in simple_turn} == {catalog.tier(cheap).model}
    assert {tier(r) for r in background} == {cheap}
    # The hard turn got the top tier: the model Claude Code asked for, untouched.
    assert {tier(r) for r in hard_turn} == {"opus"}
    assert {r.body["model"] for r in hard_turn} == {"claude-opus-5-5"}

    expected = sum(catalog.cost(r.body["model"], reported_usage(r)) for r in requests)
    rows = ledger.entries()
    assert sum(row["cost"] for row in rows) == pytest.approx(expected, rel=1e-9)
    assert sorted(row["model"] for row in rows) == sorted(r.body["model"] for r in requests)
    assert all(row["status"] == 200 for row in rows)
    assert first.result is not None and second.result is not None
    assert {row["session"] for row in rows} == {first.result["session_id"], second.result["session_id"]}


FOLLOW_UP = "add a created_at column to the orders table and backfill it"
READS = 6
LONG_SCRIPT = [
    *(
        bash_turn(f"sed -n '{600 * i + 1},{600 * (i + 1)}p' notes.txt", description="Read the notes")
        for i in range(READS)
    ),
    text_turn("Here is the design."),
    text_turn("Added."),
]


@pytest.mark.parametrize(("cache_aware", "follow_up_tier"), [(True, "opus"), (False, "sonnet")])
def test_a_follow_up_in_a_long_conversation_cached_on_the_top_model_stays_there_when_moving_costs_more(
    claude_bin: Path, umx: UltramaxEnv, ledger: Ledger, cache_aware: bool, follow_up_tier: str
) -> None:
    project = umx.project("ledger")
    # the hard turn reads a long file in six pieces (each under the size Claude Code keeps inline), so the
    # conversation carries ~50k tokens into the follow-up
    notes = "".join(f"note {i:04}: the ledger posts entries twice\n" for i in range(600 * READS))
    (project / "notes.txt").write_text(notes, encoding="utf-8")
    catalog = load_catalog()
    assert Router(catalog).explain_prompt(FOLLOW_UP).tier == "sonnet"  # on its own, the middle tier
    router = Router(catalog, RouterConfig(budget_per_hour=0, cache_aware=cache_aware))
    with run_model_server(LONG_SCRIPT) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        for prompt, extra in ((HARD, []), (FOLLOW_UP, ["--continue"])):
            run_claude(
                prompt,
                cwd=project,
                home=umx.home,
                base_url=proxy.base_url,
                allowed_tools=["Bash"],
                extra_args=extra,
                claude=claude_bin,
            ).check()
        upstream.wait_until_script_finished()
        requests = [r for r in upstream.requests if r.route == "/v1/messages"]
        wait_for(lambda: len(ledger.entries()) == len(requests), 10, "a ledger row for every model request")
    assert not upstream.problems
    follow_up = [r for r in requests if r.kind == "main" and r.turn == READS + 1]
    assert follow_up and min(len(r.raw_body) for r in follow_up) > 160_000
    found = {catalog.tier_of(r.body["model"]) for r in follow_up}
    assert {t.name for t in found if t is not None} == {follow_up_tier}
    reasons = [row["reason"] for row in ledger.entries() if row["tier"] == follow_up_tier]
    assert any("prompt cache warm on opus" in why for why in reasons) == cache_aware


RENAME = "rename the retry helper in src/jobs/queue.py to retry_with_backoff and update its callers"


def test_with_hooks_installed_a_new_prompt_is_scored_before_claude_code_sends_it_to_the_real_proxy(
    claude_bin: Path, umx: UltramaxEnv, daemon: DaemonProcess, ledger: Ledger
) -> None:
    project = umx.project("jobs")
    ultramax_cli("install", "--project", project=project)
    with run_model_server([text_turn("Renamed.")]) as upstream:
        log = umx.root / "proxy.log"
        with log.open("wb") as out:
            proxy = subprocess.Popen(
                [sys.executable, "-m", "ultramax.cli.main", "proxy", "--port", "0", "--upstream", upstream.base_url],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=umx.environ(),
            )
        try:
            wait_for(lambda: announced_proxy(umx.paths) is not None or proxy.poll() is not None, 60, "the proxy")
            url = announced_proxy(umx.paths)
            assert url is not None, log.read_text(encoding="utf-8")
            run = run_claude(
                RENAME,
                cwd=project,
                home=umx.home,
                base_url=url,
                allowed_tools=[],
                env={"ULTRAMAX_HOME": str(umx.ultramax_home)},
                claude=claude_bin,
            ).check()
            upstream.wait_until_script_finished()
            requests = [r for r in upstream.requests if r.route == "/v1/messages"]
            wait_for(lambda: len(ledger.entries()) == len(requests), 10, "a ledger row for every model request")
        finally:
            proxy.send_signal(signal.SIGTERM)
            assert proxy.wait(timeout=20) == 0, log.read_text(encoding="utf-8")
    assert run.text == "Renamed." and not upstream.problems
    assert announced_proxy(umx.paths) is None  # withdrawn as the proxy stopped
    main = [row for row in ledger.entries() if row["tier"] != "haiku" and "background" not in row["reason"]]
    ahead = [row["reason"] for row in main if "prompt scored ahead from the UserPromptSubmit hook" in row["reason"]]
    assert len(ahead) == 1, [row["reason"] for row in ledger.entries()]
    print(ahead[0])  # the lead the hint gave, for docs/benchmarks.md (pytest -s)
