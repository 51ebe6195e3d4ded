"""Server health: real protocol probes, latency, a consecutive-failure threshold and the seed's Prometheus metrics.

A probe is an MCP request the server must answer: ``ping`` on a handshake-era connection (up to 2025-11-25) and
a cheap ``tools/list`` on a 2026-07-28 connection, where ``ping`` no longer exists (the listing doubles as the
change detector, since such servers only announce list changes to ``subscriptions/listen`` streams). Each
probe has a timeout. A server is

- ``healthy``   -- connected and its last probe answered within ``degraded_latency_ms``;
- ``degraded``  -- connected, but the last probe was slow or failed fewer than ``failure_threshold`` times in a row;
- ``unhealthy`` -- not connected (exited, crashed, restarting) or ``failure_threshold`` probes failed in a row
  (then it is restarted: a server that no longer answers is as good as dead).

Metrics (names from the seed): ``mcp_server_health{server_name}`` (1 healthy, 0.5 degraded, 0 otherwise),
``mcp_server_latency_seconds{server_name}`` (probe round trips), ``mcp_failover_total{from_server,to_server}``;
plus ``mcp_server_restarts_total{server_name}``, ``mcp_gateway_calls_total{server_name,outcome}`` and
``mcp_gateway_fast_path_total{decision}`` (tools/call on the raw path, or why it was left to the SDK path).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["HEALTH_VALUE", "HealthRecord", "McpMetrics", "Status"]

Status = Literal["starting", "healthy", "degraded", "unhealthy", "stopped"]
HEALTH_VALUE: dict[str, float] = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0, "starting": 0.0, "stopped": 0.0}

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class HealthRecord:
    """What is known about one server process right now."""

    server: str
    status: Status = "starting"
    latency_ms: float | None = None
    last_check: float | None = None  # wall clock of the last probe
    consecutive_failures: int = 0
    failures_total: int = 0
    checks: int = 0
    last_error: str | None = None
    down_since: float | None = None  # monotonic time the server was last seen to go down
    detected_in_ms: float | None = None  # death -> detection, for the last death that was timed

    def record_success(self, latency_s: float, degraded_after_s: float) -> Status:
        self.checks += 1
        self.last_check = time.time()
        self.latency_ms = latency_s * 1000
        self.consecutive_failures = 0
        self.last_error = None
        self.status = "degraded" if latency_s > degraded_after_s else "healthy"
        return self.status

    def record_failure(self, error: str, threshold: int) -> bool:
        """Count a failed probe; True when this failure reaches the threshold (the server must be restarted)."""
        self.checks += 1
        self.failures_total += 1
        self.last_check = time.time()
        self.consecutive_failures += 1
        self.last_error = error
        if self.consecutive_failures >= threshold:
            self.status = "unhealthy"
            return self.consecutive_failures == threshold
        self.status = "degraded"
        return False

    def mark_up(self, latency_s: float | None = None) -> None:
        self.status = "healthy"
        self.consecutive_failures = 0
        self.last_error = None
        self.down_since = None
        if latency_s is not None:
            self.latency_ms = latency_s * 1000
        self.last_check = time.time()

    def mark_down(self, reason: str, *, stopped: bool = False) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.status = "stopped" if stopped else "unhealthy"
        self.last_error = reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "status": self.status,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "last_check": self.last_check,
            "consecutive_failures": self.consecutive_failures,
            "failures_total": self.failures_total,
            "checks": self.checks,
            "error": self.last_error,
            "detected_in_ms": None if self.detected_in_ms is None else round(self.detected_in_ms, 3),
        }


class McpMetrics:
    """The gateway's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.health = Gauge(
            "mcp_server_health",
            "Server health status (1 healthy, 0.5 degraded, 0 unhealthy/down)",
            ["server_name"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcp_server_latency_seconds",
            "Server response latency of health probes",
            ["server_name"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.failovers = Counter(
            "mcp_failover_total",
            "Total failover events (traffic moved off a failed server)",
            ["from_server", "to_server"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "mcp_server_restarts_total", "Server process restarts", ["server_name"], registry=self.registry
        )
        self.calls = Counter(
            "mcp_gateway_calls_total",
            "Tool calls forwarded, by the server that answered and the outcome",
            ["server_name", "outcome"],
            registry=self.registry,
        )
        self.fast = Counter(
            "mcp_gateway_fast_path_total",
            "tools/call requests on the raw path (decision=taken) or left to the SDK path (decision=why)",
            ["decision"],
            registry=self.registry,
        )
        self._call_children: dict[tuple[str, str], Any] = {}  # labels() costs more than the increment itself
        self._fast_children: dict[str, Any] = {}

    def set_health(self, server: str, status: Status) -> None:
        self.health.labels(server_name=server).set(HEALTH_VALUE[status])

    def observe_latency(self, server: str, seconds: float) -> None:
        self.latency.labels(server_name=server).observe(seconds)

    def failover(self, from_server: str, to_server: str) -> None:
        self.failovers.labels(from_server=from_server, to_server=to_server).inc()

    def restarted(self, server: str) -> None:
        self.restarts.labels(server_name=server).inc()

    def call(self, server: str, outcome: str) -> None:
        child = self._call_children.get((server, outcome))
        if child is None:
            child = self._call_children[(server, outcome)] = self.calls.labels(server_name=server, outcome=outcome)
        child.inc()

    def fast_path(self, decision: str) -> None:
        child = self._fast_children.get(decision)
        if child is None:
            child = self._fast_children[decision] = self.fast.labels(decision=decision)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def failover_count(self) -> float:
        return sum(
            sample.value
            for metric in self.failovers.collect()
            for sample in metric.samples
            if sample.name == "mcp_failover_total"
        )
