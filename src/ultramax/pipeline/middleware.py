"""Pipeline middleware (seed section 5): rate limiter, circuit breaker, retry with backoff.

The rate limiter guards the pipeline's entrance per session; the circuit breaker and retry wrap each stage
call, so a stage that keeps failing stops costing time and is handled by the failure policy instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ultramax.pipeline.stage import TransientStageError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError", "RateLimiter", "RetryPolicy"]

T = TypeVar("T")
Clock = Callable[[], float]


class RateLimiter:
    """Token buckets keyed by (session, operation): ``rate`` tokens per ``per`` seconds, burst = rate."""

    def __init__(self, rate: float, per: float = 60.0, *, clock: Clock = time.monotonic, max_keys: int = 10_000):
        self.rate, self.per, self._clock, self._max_keys = rate, per, clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def allow(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False if there are not enough."""
        if self.rate <= 0:
            return True
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate / self.per)
            ok = tokens >= cost
            self._buckets[key] = (tokens - cost if ok else tokens, now)
            if len(self._buckets) > self._max_keys:  # forget the stalest sessions
                for stale in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self._max_keys // 10]:
                    del self._buckets[stale]
            return ok


class CircuitOpenError(Exception):
    """The breaker is open: the call was not attempted."""


@dataclass(slots=True)
class BreakerState:
    failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_after`` seconds lets one call probe."""

    name: str
    threshold: int = 5
    reset_after: float = 30.0
    clock: Clock = time.monotonic
    state: BreakerState = field(default_factory=BreakerState)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_now()

    def _open_now(self) -> bool:
        opened = self.state.opened_at
        return opened is not None and self.clock() - opened < self.reset_after

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._open_now():
                raise CircuitOpenError(
                    f"circuit breaker for {self.name} is open after {self.state.failures} "
                    f"failures (last: {self.state.last_error})"
                )
        try:
            result = fn()
        except Exception as exc:
            with self._lock:
                self.state.failures += 1
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                if self.state.failures >= self.threshold:
                    self.state.opened_at = self.clock()
            raise
        with self._lock:
            self.state = BreakerState()
        return result

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "open": self._open_now(),
                "failures": self.state.failures,
                "last_error": self.state.last_error,
            }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a call that raised TransientStageError, with exponential backoff."""

    attempts: int = 3
    base_delay: float = 0.01
    max_delay: float = 0.2
    sleep: Callable[[float], None] = time.sleep

    def call(self, fn: Callable[[], T]) -> T:
        delay = self.base_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except TransientStageError:
                if attempt == self.attempts:
                    raise
                self.sleep(delay)
                delay = min(self.max_delay, delay * 2)
        raise AssertionError("unreachable")  # pragma: no cover
