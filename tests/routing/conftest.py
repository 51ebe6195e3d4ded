"""Fixtures for the routing tests: the stand-in upstream, the proxy in front of it, a ledger, the SDK."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import anthropic
import pytest

from tests.conftest import UltramaxEnv
from tests.support.proxy_thread import ProxyThread, run_proxy
from tests.support.upstream import StandInUpstream, run_upstream
from ultramax.routing import Ledger, Router, RouterConfig, load_catalog

KEY = "sk-ant-api03-ultramaxTESTkey0123456789abcdefghij"


@pytest.fixture
def upstream() -> Iterator[StandInUpstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def ledger(umx: UltramaxEnv) -> Iterator[Ledger]:
    with Ledger.open(umx.paths) as led:
        yield led


@pytest.fixture
def router() -> Router:
    return Router(load_catalog(), RouterConfig(budget_per_hour=0))


@pytest.fixture
def proxy(router: Router, ledger: Ledger, upstream: StandInUpstream) -> Iterator[ProxyThread]:
    with run_proxy(router, ledger, upstream.base_url) as running:
        yield running


def client(base_url: str, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0, default_headers=headers or None)


@contextlib.contextmanager
def cli_proxy(umx: UltramaxEnv, upstream_url: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``ultramax proxy`` as a user runs it, in its own process: yields it and its start-up line (``ultramax
    proxy on URL -> UPSTREAM``; stderr stays open for the caller to read); killed at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultramax.cli.main", "proxy", "--port", "0", "--upstream", upstream_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=umx.environ(),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("ultramax proxy on http://127.0.0.1:"), line
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
