"""What the proxy keeps and prints holds no secret: not the ledger's rows, not its error answers, not its log."""

from __future__ import annotations

import http.client
import json
import signal
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import UltramaxEnv, wait_for
from tests.routing.conftest import KEY, cli_proxy
from tests.support.proxy_thread import run_proxy
from tests.support.raw_upstream import CLOSE, run_raw_upstream
from tests.support.upstream import StandInUpstream
from ultramax.cli.main import main
from ultramax.routing import Ledger, Router

ANTHROPIC_KEY = "sk-ant-api03-" + "Zq8vR2mXk4Lp9TnW7bYc3Hd6Jf1Gs5Ae0Ku" * 2 + "AAAAAA"
DB_PASSWORD = "Pg9sEcretPw42x"
GITHUB_TOKEN = "ghp_a1B2c3D4e5F6g7H8i9J0a1B2c3D4e5F6g7H8"
UPSTREAM_PASSWORD = "UpStr3amPassw0rd"
PROMPT = f"deploy with ANTHROPIC_API_KEY={ANTHROPIC_KEY} and DATABASE_URL=postgres://app:{DB_PASSWORD}@db/prod"
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}


def post(base_url: str, body: dict[str, Any] = BODY, **headers: str) -> tuple[int, bytes]:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/messages",
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json", "x-api-key": KEY, **headers},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_an_upstream_error_quoting_the_request_reaches_the_client_but_the_ledger_keeps_it_redacted(
    router: Router, ledger: Ledger
) -> None:
    # some gateways, and the API's own 400s, quote the part of the request they refuse
    error = {"type": "invalid_request_error", "message": f"messages.0.content: cannot parse {PROMPT!r}"}
    payload = json.dumps({"type": "error", "error": error}).encode()
    answer = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(payload),
        payload,
    )
    with run_raw_upstream([answer]) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        status, body = post(proxy.base_url, BODY, **{"x-claude-code-session-id": f"s-{GITHUB_TOKEN}"})
        assert (status, body) == (400, payload), "the upstream's answer is the client's, relayed as it came"
        wait_for(lambda: bool(ledger.entries()), 5, "the ledger row")
    [row] = ledger.entries()
    stored = json.dumps(row)
    assert ANTHROPIC_KEY not in stored and DB_PASSWORD not in stored and GITHUB_TOKEN not in stored
    assert row["error"].startswith("invalid_request_error: messages.0.content: cannot parse")
    assert "[REDACTED:anthropic-key]" in row["error"] and row["status"] == 400


def test_an_upstream_that_fails_is_named_in_the_502_without_the_credentials_in_its_url(
    router: Router, ledger: Ledger
) -> None:
    with run_raw_upstream([CLOSE]) as upstream:
        port = urlsplit(upstream.base_url).port
        url = f"http://apiuser:{UPSTREAM_PASSWORD}@127.0.0.1:{port}/?api_key={GITHUB_TOKEN}"
        with run_proxy(router, ledger, url) as proxy:
            status, body = post(proxy.base_url)
    message = json.loads(body)["error"]["message"]
    assert status == 502 and f"upstream http://[REDACTED:credentials]@127.0.0.1:{port}/?api_key=" in message
    assert UPSTREAM_PASSWORD not in message and "apiuser" not in message and GITHUB_TOKEN not in message


def test_ultramax_proxy_names_its_upstream_on_stderr_without_the_password_in_its_url(
    umx: UltramaxEnv, upstream: StandInUpstream
) -> None:
    url = upstream.base_url.replace("http://", f"http://apiuser:{UPSTREAM_PASSWORD}@")
    with cli_proxy(umx, url) as (proc, line):
        assert post(line.split()[3])[0] == 200  # answered: it now stops on SIGTERM rather than dies of it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert line.rstrip().endswith("-> " + upstream.base_url.replace("http://", "http://[REDACTED:credentials]@"))
    assert UPSTREAM_PASSWORD not in line


def test_a_bad_upstream_on_the_command_line_is_named_without_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--port", "0", "--upstream", f"http://apiuser:{UPSTREAM_PASSWORD}@h:99999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ultramax: --upstream ") and "valid port" in err and UPSTREAM_PASSWORD not in err


def test_a_malformed_header_line_is_refused_with_a_400_that_does_not_quote_the_key_in_it(
    router: Router, ledger: Ledger
) -> None:
    with run_raw_upstream([]) as upstream, run_proxy(router, ledger, upstream.base_url) as proxy:
        parts = urlsplit(proxy.base_url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
            # the colon lost: the line the proxy names is the key itself
            sock.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key {ANTHROPIC_KEY}\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"malformed header line" in answer
    assert ANTHROPIC_KEY.encode() not in answer and b"[REDACTED:anthropic-key]" in answer


def test_a_key_sent_as_the_model_is_kept_out_of_the_proxys_log_and_its_ledger(
    umx: UltramaxEnv, upstream: StandInUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    # ANTHROPIC_MODEL set to the API key by mistake: the proxy passes the model through, names it in its log
    # line and its unpriced-model warning, and the ledger groups by it
    with cli_proxy(umx, upstream.base_url) as (proc, line):
        body = {**BODY, "model": ANTHROPIC_KEY, "messages": [{"role": "user", "content": "hi"}]}
        assert post(line.split()[3], body)[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
    assert "[REDACTED:anthropic-key] -> [REDACTED:anthropic-key]" in log and ANTHROPIC_KEY not in log
    with Ledger.open(umx.paths) as ledger:
        [row] = ledger.entries()
    assert row["model"] == row["requested_model"] == "[REDACTED:anthropic-key]"
    assert main(["route", "ledger"]) == 0
    assert ANTHROPIC_KEY not in capsys.readouterr().out
