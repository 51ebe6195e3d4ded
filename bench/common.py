"""Shared helpers for the benchmarks: an isolated ultramax home, a daemon, percentiles, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ultramax.daemon.control import start_daemon, stop_daemon
from ultramax.paths import Paths

__all__ = ["code_under_test", "isolated_env", "machine", "percentile", "running_daemon", "summary"]

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def isolated_env() -> Iterator[dict[str, str]]:
    """A fresh HOME and ULTRAMAX_HOME (metrics on a free port), set in os.environ for the duration."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="ultramax-bench-") as tmp:
        home = Path(tmp) / "home"
        (home / ".claude").mkdir(parents=True)
        (home / ".claude" / "settings.json").write_text('{"observability": {"metricsPort": 0}}\n')
        os.environ.update(HOME=str(home), ULTRAMAX_HOME=str(home / ".claude" / "ultramax"), ULTRAMAX_NO_AUTOSTART="1")
        os.environ.pop("CLAUDE_CONFIG_DIR", None)
        os.environ.pop("CLAUDE_PROJECT_DIR", None)
        try:
            yield dict(os.environ)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def code_under_test() -> dict[str, str]:
    """Environment that makes a child ``python -m ultramax...`` import the ultramax this process imported.

    A benchmark's child processes get a pared-down environment; without this they would import whatever
    ultramax the interpreter has installed, which in a second work tree sharing a virtualenv is another checkout.
    """
    import ultramax

    source = str(Path(ultramax.__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": source + (os.pathsep + rest if rest else "")}


@contextlib.contextmanager
def running_daemon() -> Iterator[Paths]:
    paths = Paths.from_env()
    start_daemon(paths)
    try:
        yield paths
    finally:
        stop_daemon(paths)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> tuple[float, float, float]:
    """(p50, p95, mean)."""
    return percentile(values, 0.5), percentile(values, 0.95), statistics.fmean(values)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    py = f"{platform.python_implementation()} {platform.python_version()}"
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu}); Linux {kernel}; {py} "
        f"({sys.executable.replace(str(REPO), '.')}); load average {load}"
    )
