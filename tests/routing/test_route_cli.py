"""``ultramax route explain|eval|ledger|catalog`` and ``ultramax proxy``, run as a user runs them."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import UltramaxEnv
from tests.routing.conftest import KEY, cli_proxy
from tests.support.upstream import StandInUpstream
from ultramax.cli.main import main
from ultramax.routing import Ledger, LedgerEntry, Usage

DEV_SET = Path(__file__).parent / "data" / "claude_code_dev.jsonl"


def test_route_explain_names_the_tier_the_model_and_the_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "explain", "Fix the typo in README.md"]) == 0
    out = capsys.readouterr().out
    assert "tier:       haiku" in out and "claude-haiku-4-5" in out and "tier model picks haiku" in out
    assert main(["route", "explain", "--json", "Design a distributed consensus architecture"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tier"] == "opus" and data["analysis"]["task_type"] == "architecture"


def test_route_explain_for_a_model_outside_the_catalog_says_it_has_no_tier_and_passes_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["route", "explain", "--model", "nosuch", "Fix the typo in README.md"]) == 0
    out = capsys.readouterr().out
    assert "tier:       (none: the model is not in the catalog)" in out and "nosuch (as requested)" in out


def test_route_eval_on_the_claude_code_dev_set_reaches_the_issues_goal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "eval", str(DEV_SET), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 45
    assert report["accuracy"] >= 0.85 and report["under_routing"] <= 0.05
    assert report["under_routing"] + report["over_routing"] + report["accuracy"] == pytest.approx(1.0)
    assert 0 < report["cost_vs_top_tier"] < 1.0
    assert main(["route", "eval", str(DEV_SET)]) == 0
    assert "under-routing" in capsys.readouterr().out


def test_route_eval_says_which_model_scored_the_prompts_so_a_fallback_run_is_visible(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["route", "eval", str(DEV_SET), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["scored_by"]
    assert scored["tier model"] > 15 and scored["tier model, sure without the embedding"] > 0
    assert scored["tier model fallback"] == 0
    assert sum(scored.values()) == 45
    assert main(["route", "eval", str(DEV_SET)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("scored by"))
    assert line.split(None, 2)[2].split("; ") == [f"{k} {v}" for k, v in scored.items() if v]
    umx.update_user_settings({"routing": {"sentenceEmbedding": False}})
    assert main(["route", "eval", str(DEV_SET)]) == 0
    out = capsys.readouterr().out
    assert "scored by      tier model fallback 45\n" in out


def test_route_eval_names_the_line_of_a_bad_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "tier": "opus"}\n{"prompt": "y"}\n', encoding="utf-8")
    assert main(["route", "eval", str(bad)]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_route_ledger_and_catalog_show_spend_and_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "ledger"]) == 0
    assert "no requests recorded" in capsys.readouterr().out
    assert main(["route", "catalog", "--json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    assert catalog["prices_as_of"] == "2026-08-21"


def test_route_ledger_and_catalog_show_web_searches_fast_mode_and_us_inference(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_us = Usage(input_tokens=100, output_tokens=10, web_search_requests=3, speed="fast", inference_geo="us")
    with Ledger.open(umx.paths) as ledger:
        ledger.record(LedgerEntry("claude-opus-5", fast_us, 0.05, 0.05, "claude-opus-5", "opus"))
        ledger.record(LedgerEntry("claude-opus-5", Usage(input_tokens=100, speed="standard"), 0.01))
    assert main(["route", "ledger"]) == 0
    header, row, total = capsys.readouterr().out.splitlines()
    assert header.split()[6:8] == ["searches", "fast/us"]  # after "cache r/w"
    assert row.split()[0] == "claude-opus-5" and row.split()[5:7] == ["3", "1/1"]
    assert total.split()[2] == "3"
    assert main(["route", "catalog"]) == 0
    out = capsys.readouterr().out
    assert "server tools, USD per 1,000 requests: web_search 10, web_fetch 0" in out
    [opus5] = [line.split() for line in out.splitlines() if line.startswith("claude-opus-5 ")]
    [haiku] = [line.split() for line in out.splitlines() if line.startswith("claude-haiku-4-5 ")]
    assert opus5[-2:] == ["x2", "x1.1"] and haiku[-2:] == ["-", "-"]
    assert main(["route", "catalog", "--json"]) == 0
    [spec] = [m for m in json.loads(capsys.readouterr().out)["models"] if m["id"] == "claude-opus-5"]
    assert spec["speed"] == {"fast": 2.0} and spec["inference_geo"]["us"] == 1.1 and spec["web_search_per_1000"] == 10


def test_ultramax_proxy_serves_records_spend_and_stops_on_sigterm(
    umx: UltramaxEnv, upstream: StandInUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    with cli_proxy(umx, upstream.base_url) as (proc, line):
        base_url = line.split()[3]
        with anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0) as sdk:
            answer = sdk.messages.create(
                model="claude-opus-5", max_tokens=8, messages=[{"role": "user", "content": "Fix the typo"}]
            )
        assert answer.model == "claude-haiku-4-5"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
    assert "claude-opus-5 -> claude-haiku-4-5" in log and KEY not in log
    assert main(["route", "ledger", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["rows"]
    assert row["model"] == "claude-haiku-4-5" and row["cost"] > 0 and row["saved"] > 0


def test_route_calibrate_moves_the_thresholds_to_a_labellers_lines_and_reports_a_cross_validated_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a frugal labeller: everything the dev set calls sonnet, this one calls haiku
    rows = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    frugal = tmp_path / "frugal.jsonl"
    frugal.write_text(
        "".join(json.dumps({**r, "tier": "haiku" if r["tier"] == "sonnet" else r["tier"]}) + "\n" for r in rows),
        encoding="utf-8",
    )
    assert main(["route", "calibrate", str(frugal), "--max-under", "0.1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 45 and report["scored"] == 45
    assert report["sonnet_threshold"] > 0.3  # the haiku line moved up
    assert report["fitted"][0] > report["before"][0] and report["fitted"][1] <= 0.1
    assert report["before"][0] < report["cross_validated"][0] <= report["fitted"][0]
    assert report["settings"] == {
        "routing": {"sonnetThreshold": report["sonnet_threshold"], "opusThreshold": report["opus_threshold"]}
    }
    assert main(["route", "calibrate", str(frugal)]) == 0
    assert "cross-validated (5 folds)" in capsys.readouterr().out


def test_route_calibrate_on_an_unknown_tier_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fix the typo", "tier": "gpt-9"}\n', encoding="utf-8")
    assert main(["route", "calibrate", str(bad)]) != 0
    assert "gpt-9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("upstream", "why"),
    [
        ("ftp://x", "must be an http:// or https:// URL"),
        ("not a url", "must be an http:// or https:// URL"),
        ("http://", "must name a host"),
        ("http://:8080", "must name a host"),
        ("http://h:99999", "valid port"),
    ],
)
def test_proxy_with_a_bad_upstream_says_what_is_wrong_in_one_line(
    upstream: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy", "--port", "0", "--upstream", upstream]) == 2  # a usage error, like a bad --port
    err = capsys.readouterr().err
    assert err.startswith("ultramax: --upstream ") and why in err and json.dumps(upstream) in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_proxy_refuses_a_port_outside_0_to_65535_before_starting(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["proxy", "--port", port])
    assert exit_.value.code == 2
    assert "argument --port:" in capsys.readouterr().err


def test_proxy_turns_an_address_the_socket_layer_refuses_into_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(coro: Any) -> None:
        coro.close()
        raise OverflowError("bind(): port must be 0-65535.")

    monkeypatch.setattr("ultramax.cli.route_cmd.asyncio.run", refuse)
    assert main(["proxy", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ultramax: cannot run the proxy on 127.0.0.1:0") and "--port" in err


def test_proxy_on_a_port_already_in_use_says_so_and_how_to_choose_another(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["proxy", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ultramax: cannot listen on 127.0.0.1:{port}: something already listens there")
    assert "--port or routing.proxyPort" in err and "Traceback" not in err


@pytest.mark.parametrize("hours", ["-1", "nan", "inf", "soon"])
def test_route_ledger_refuses_hours_that_are_negative_or_not_finite(
    hours: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["route", "ledger", "--hours", hours])
    assert exit_.value.code == 2
    assert "argument --hours:" in capsys.readouterr().err


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.2", False), ("::1", False), ("0.0.0.0", True)])
def test_proxy_warns_only_about_an_address_that_is_not_loopback(
    host: str, warned: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("ultramax.cli.route_cmd.asyncio.run", lambda coro: coro.close())
    assert main(["proxy", "--host", host, "--port", "0"]) == 0
    assert ("not loopback" in capsys.readouterr().err) is warned


@pytest.mark.parametrize(
    "command", [["route", "explain", "fix the typo"], ["route", "catalog"], ["proxy", "--port", "0"]]
)
def test_an_unknown_tier_in_the_fallback_chain_is_one_line_naming_the_setting(
    umx: UltramaxEnv, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    umx.update_user_settings({"routing": {"fallbackChain": ["opus", "gpt"]}})
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err == "ultramax: routing.fallbackChain: unknown tier 'gpt' (tiers: haiku, sonnet, opus, fable)\n"


def labelled(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(content)
    return path


def test_route_eval_reads_a_file_with_a_byte_order_mark_and_tier_names_in_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = labelled(tmp_path, b'\xef\xbb\xbf{"prompt": "Fix the typo in README.md", "tier": "HAIKU"}\n')
    assert main(["route", "eval", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 1 and report["confusion"] == {"haiku": {"haiku": 1}}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"prompt": "Fix the typo \xff", "tier": "haiku"}\n', "labels.jsonl: not UTF-8 text"),
        (b'{"prompt": "a", "tier": "haiku"}\n{"prompt": "b", "tier": "gpt"}\n', "labels.jsonl:2: tier 'gpt' is"),
        (b'{"prompt": null, "tier": "haiku"}\n', 'labels.jsonl:1: "prompt" must be a non-empty string, got null'),
        (b'{"prompt": "x", "tier": 3}\n', 'labels.jsonl:1: "tier" must be a tier name'),
        (b"[1, 2]\n", "labels.jsonl:1: expected an object"),
        (b'{"prompt": "Design a consensus protocol", "tier": "fable"}\n', "labels.jsonl:1: tier 'fable' is never"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_route_eval_and_calibrate_refuse_a_bad_labelled_file_in_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, says: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["route", command, str(labelled(tmp_path, content))]) == 1
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_route_calibrate_refuses_a_single_scored_prompt_it_cannot_cross_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = labelled(tmp_path, b'{"prompt": "Fix the typo in the README heading", "tier": "haiku"}\n')
    assert main(["route", "calibrate", str(path)]) == 1
    assert "cross-validation needs at least 2" in capsys.readouterr().err


def test_route_calibrate_prints_the_folds_it_really_used_and_warns_about_few_prompts_of_one_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    haiku = [line for line in DEV_SET.read_text(encoding="utf-8").splitlines() if '"tier": "haiku"' in line][:3]
    path = labelled(tmp_path, ("\n".join(haiku) + "\n").encode())
    assert main(["route", "calibrate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "cross-validated (3 folds)" in out and "5 folds" not in out
    assert "warning: only 3 prompts inform the fit" in err and "every scored prompt is labelled haiku" in err
    assert main(["route", "calibrate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["folds"] == 3 and len(report["warnings"]) == 2
