"""Fixtures for the trading and core layers: a paper-trading project, the default engine, request builders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.config import Settings
from ultramax.modes import get_mode
from ultramax.pipeline.stages.safety import default_layers
from ultramax.safety.engine import SafetyDecision, SafetyEngine, SafetyLayer, SafetyRequest

OPEN = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York: the market is open
THANKSGIVING = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def paper_mcp(project: Path, paper: str | None = "true", server: str = "alpaca") -> None:
    env = {} if paper is None else {"ALPACA_PAPER_TRADE": paper}
    (project / ".mcp.json").write_text(
        json.dumps({"mcpServers": {server: {"command": "alpaca-mcp-server", "env": env}}}), encoding="utf-8"
    )


def order_response(
    symbol: str, side: str, qty: str, price: str, *, order_id: str = "o-1", filled: str | None = None, **extra: Any
) -> str:
    """The text an Alpaca v2 order tool returns (the order inside the security envelope)."""
    order = {
        "id": order_id,
        "client_order_id": f"c-{order_id}",
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "filled_qty": qty if filled is None else filled,
        "filled_avg_price": price,
        "status": "filled" if filled is None or filled == qty else "partially_filled",
        "asset_class": "crypto" if "/" in symbol else "us_equity",
        **extra,
    }
    return json.dumps({"_alpaca_mcp_security": {"trust": "untrusted_tool_output"}, "data": order})


@dataclass
class Desk:
    """A trading project, its settings and the engine judging its calls."""

    umx: UltramaxEnv
    project: Path
    settings: Settings
    engine: SafetyEngine
    mode: str = "alphaforge"
    requests: list[SafetyRequest] = field(default_factory=list)

    def set(self, **values: Any) -> None:
        for key, value in values.items():
            self.settings.values[f"safety.{key}"] = value

    def request(
        self,
        tool: str,
        tool_input: dict[str, Any],
        /,
        *,
        phase: str = "pre",
        response: Any = None,
        error: str | None = None,
        now: datetime | None = OPEN,
        mode: str | None = None,
        principal: str | None = "dev",
        session: str = "session-1",
        metadata: dict[str, Any] | None = None,
    ) -> SafetyRequest:
        return SafetyRequest(
            tool=tool,
            input=tool_input,
            mode=get_mode(mode or self.mode),
            settings=self.settings,
            paths=self.umx.paths,
            cwd=self.project,
            home=self.umx.home,
            project_dir=self.project,
            session_id=session,
            principal=principal,
            phase=phase,  # type: ignore[arg-type]
            response=response,
            error=error,
            now=now,
            metadata=dict(metadata or {}),
        )

    def call(self, tool: str, tool_input: dict[str, Any], /, **kw: Any) -> SafetyDecision:
        request = self.request(tool, tool_input, **kw)
        self.requests.append(request)
        return self.engine.evaluate(request)

    def fill(self, tool: str, tool_input: dict[str, Any], response: str, **kw: Any) -> SafetyDecision:
        """PostToolUse for ``tool`` with the broker's ``response``."""
        return self.call(tool, tool_input, phase="post", response=response, **kw)

    def execute(self, tool: str, tool_input: dict[str, Any], response: str, **kw: Any) -> SafetyDecision:
        """The whole call: PreToolUse must allow it, then PostToolUse sees the broker's ``response``."""
        pre = self.call(tool, tool_input, **kw)
        assert pre.permission == "allow", pre.reason
        return self.fill(tool, tool_input, response, **kw)


@pytest.fixture
def desk(umx: UltramaxEnv) -> Desk:
    """An alphaforge project whose Alpaca server is registered on paper; orders need no confirmation."""
    project = umx.project("desk")
    paper_mcp(project)
    settings = Settings.defaults()
    settings.values["safety.confirmPaperOrders"] = False
    settings.values["safety.orderRatePerMinute"] = 100  # rate limits have tests of their own
    umx.paths.ensure_home()
    return Desk(umx, project, settings, SafetyEngine(guard_layers()))


def crypto(qty: str = "0.01", price: str = "60000", side: str = "buy", **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTC/USD", "side": side, "qty": qty, "type": "limit", "limit_price": price, **extra}


def stock(symbol: str = "AAPL", qty: str = "1", price: str = "190", side: str = "buy", **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "qty": qty, "type": "limit", "limit_price": price, **extra}


def guard_layers() -> list[SafetyLayer]:
    """The default layers except layer 4 (shell and file rules), which has its own suite."""
    return [layer for layer in default_layers() if layer.name != "sanitisation"]


STOCK = "mcp__alpaca__place_stock_order"
CRYPTO = "mcp__alpaca__place_crypto_order"
