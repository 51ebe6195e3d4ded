"""The analyzer: the seed's prompt signals, done right, and the request's own signals."""

from __future__ import annotations

from typing import Any

from ultramax.routing import analyze_prompt, request_signals


def test_patterns_match_whole_words_not_substrings() -> None:
    analysis = analyze_prompt("Give me information about the architect Frank Gehry's contractual obligations")
    assert "format" not in str(analysis.matched), "the seed's 'format' matched 'information'"
    assert analysis.matched.get("complex") is None, "'architect' the profession is not 'architecture'"


def test_the_seeds_three_kinds_of_prompt_get_low_middle_and_high_complexity() -> None:
    simple = analyze_prompt("Explain what a Python list comprehension is")
    coding = analyze_prompt("Add pagination to the /orders endpoint with a unit test for it")
    hard = analyze_prompt(
        "Design the architecture of a distributed, fault-tolerant rate limiter and analyse the trade-offs"
    )
    assert simple.task_type == "simple" and simple.complexity_score <= 0.3
    assert coding.task_type == "coding" and 0.3 < coding.complexity_score <= 0.7
    assert hard.task_type == "architecture" and hard.complexity_score > 0.7
    assert hard.requires_thinking and hard.estimated_tokens > coding.estimated_tokens > simple.estimated_tokens


CLAUDE_CODE = {
    "x-claude-code-session-id": "s-1",
    "user-agent": "claude-cli/2.1.328 (external, sdk-cli)",
    "x-app": "cli",
}


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-5",
        "max_tokens": 32000,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "Refactor the parser"},
                ],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
                        ],
                    }
                ],
            },
        ],
        "tools": [{"name": "Read"}, {"type": "web_search_20250305", "name": "web_search"}],
        **extra,
    }


def test_request_signals_read_thinking_effort_tools_images_and_subagent_headers() -> None:
    signals = request_signals(
        body(thinking={"type": "adaptive"}, output_config={"effort": "high"}),
        {**CLAUDE_CODE, "x-claude-code-agent-id": "agent-7", "x-claude-code-parent-agent-id": "main"},
        raw_size=4000,
    )
    assert signals.prompt == "Refactor the parser", "the newest typed text, system reminders removed"
    assert signals.tool_loop and signals.images == 1
    assert (signals.tool_count, signals.web_search) == (2, True)
    assert (signals.thinking, signals.effort, signals.context_tokens) == ("adaptive", "high", 1000)
    assert signals.is_subagent and signals.parent_agent_id == "main"
    assert signals.required_features == {"adaptive-thinking", "effort"}
    assert not signals.background


def test_plan_mode_is_read_from_claude_codes_reminder() -> None:
    b = body()
    b["messages"][0]["content"][0]["text"] = "<system-reminder>Plan mode is active. Do not edit.</system-reminder>"
    assert request_signals(b, CLAUDE_CODE).plan_mode


def test_claude_codes_requests_without_tools_are_background_but_other_clients_chats_are_not() -> None:
    no_tools = {k: v for k, v in body().items() if k != "tools"}
    assert request_signals(no_tools, CLAUDE_CODE).background
    assert not request_signals(no_tools, {"user-agent": "python-httpx/0.28"}).background
    assert request_signals(body(), CLAUDE_CODE, background_tier_model=True).background


def test_every_request_of_one_turn_shares_a_turn_key_and_a_new_prompt_gets_a_new_one() -> None:
    first = request_signals(body(), CLAUDE_CODE)
    b = body()
    b["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "done"}]})
    b["messages"].append({"role": "user", "content": "now write the docs"})
    later = request_signals(b, CLAUDE_CODE)
    assert first.turn_key == request_signals(body(), CLAUDE_CODE).turn_key
    assert later.turn_key != first.turn_key and later.prompt == "now write the docs"
    metadata_session = request_signals(body(metadata={"user_id": '{"session_id": "abc"}'}), {})
    assert metadata_session.session_id == "abc"
