"""Middleware on its own: token-bucket rate limiter, circuit breaker with half-open probe, retry with backoff."""

from __future__ import annotations

import threading

import pytest

from ultramax.pipeline.middleware import CircuitBreaker, CircuitOpenError, RateLimiter, RetryPolicy
from ultramax.pipeline.stage import TransientStageError


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fail(message: str = "down") -> int:
    raise ConnectionError(message)


# -- rate limiter ----------------------------------------------------------------------------------------
def test_a_session_gets_its_burst_and_then_is_refused() -> None:
    limiter = RateLimiter(3, 60.0, clock=Clock())
    assert [limiter.allow("s1:PreToolUse") for _ in range(4)] == [True, True, True, False]


def test_sessions_and_operations_have_separate_buckets() -> None:
    limiter = RateLimiter(1, 60.0, clock=Clock())
    assert limiter.allow("s1:PreToolUse")
    assert not limiter.allow("s1:PreToolUse")
    assert limiter.allow("s2:PreToolUse")
    assert limiter.allow("s1:PostToolUse")


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(6, 60.0, clock=clock)  # one token every 10 s
    for _ in range(6):
        assert limiter.allow("s")
    assert not limiter.allow("s")
    clock.now += 10.0
    assert limiter.allow("s")
    assert not limiter.allow("s")
    clock.now += 3600.0  # an hour idle refills to the burst, not beyond
    assert sum(limiter.allow("s") for _ in range(10)) == 6


def test_a_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(0, 60.0, clock=Clock())
    assert all(limiter.allow("s") for _ in range(1000))


def test_the_limiter_forgets_the_stalest_sessions_beyond_its_capacity() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 60.0, clock=clock, max_keys=10)
    limiter.allow("oldest")
    for i in range(10):
        clock.now += 1
        limiter.allow(f"s{i}")
    assert limiter.allow("oldest"), "its exhausted bucket was forgotten"
    assert not limiter.allow("s9")


def test_concurrent_callers_never_get_more_than_the_burst() -> None:
    limiter = RateLimiter(50, 60.0, clock=Clock())
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        for _ in range(20):
            ok = limiter.allow("shared")
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert granted.count(True) == 50
    assert len(granted) == 160


# -- circuit breaker --------------------------------------------------------------------------------------
def test_the_breaker_opens_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker("memory_sync", threshold=3, reset_after=30.0, clock=Clock())
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert breaker.is_open
    calls: list[int] = []

    def succeed() -> int:
        calls.append(1)
        return 1

    with pytest.raises(CircuitOpenError, match=r"memory_sync is open after 3 failures \(last: ConnectionError: down\)"):
        breaker.call(succeed)
    assert calls == [], "an open breaker does not call through"
    assert breaker.snapshot() == {"open": True, "failures": 3, "last_error": "ConnectionError: down"}


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker("s", threshold=2, clock=Clock())
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert breaker.call(lambda: 7) == 7
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert not breaker.is_open


def test_after_the_reset_time_one_probe_that_succeeds_closes_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker("s", threshold=1, reset_after=30.0, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    clock.now += 29.9
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    clock.now += 0.2
    assert not breaker.is_open
    assert breaker.call(lambda: 42) == 42
    assert breaker.snapshot() == {"open": False, "failures": 0, "last_error": None}


def test_a_probe_that_fails_opens_the_breaker_for_another_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker("s", threshold=2, reset_after=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    clock.now += 31
    with pytest.raises(ConnectionError):
        breaker.call(lambda: fail("still down"))
    assert breaker.is_open
    clock.now += 29
    with pytest.raises(CircuitOpenError, match="still down"):
        breaker.call(lambda: 1)


# -- retry -----------------------------------------------------------------------------------------------
def test_transient_errors_are_retried_with_exponential_backoff_up_to_the_cap() -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 5:
            raise TransientStageError("database is locked")
        return "ok"

    policy = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.15, sleep=sleeps.append)
    assert policy.call(flaky) == "ok"
    assert sleeps == [0.05, 0.1, 0.15, 0.15]


def test_the_last_transient_error_is_raised_when_attempts_run_out() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=sleeps.append)
    with pytest.raises(TransientStageError, match="busy"):
        policy.call(lambda: (_ for _ in ()).throw(TransientStageError("busy")))
    assert len(sleeps) == 2


def test_other_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        RetryPolicy(attempts=5, sleep=sleeps.append).call(broken)
    assert calls == [1]
    assert sleeps == []
