"""Fixtures of the gateway tests that run the official MCP servers behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv
from tests.mcp.harness import Servers, require_servers


@pytest.fixture
def servers() -> Servers:
    """The pinned official servers (skips when they are not installed)."""
    return Servers(require_servers())


@pytest.fixture
def project(umx: UltramaxEnv) -> Path:
    return umx.project("webapp")
