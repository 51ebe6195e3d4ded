"""``ultramax install`` hands over from a daemon another install of ultramax started (an upgrade, another virtual
environment): that daemon would keep answering every hook with its own code.

The other install is real: a copy of the package in another directory, its daemon started from there. Install
runs as the user runs it, in a process of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ultramax
from tests.conftest import DaemonProcess, UltramaxEnv, finish_daemon, process_gone, spawn_daemon_process, wait_for
from ultramax.daemon import daemon_status, stop_daemon
from ultramax.daemon.handover import other_install, restart_command, this_package


@pytest.fixture
def other_daemon(umx: UltramaxEnv) -> Iterator[DaemonProcess]:
    """A daemon started from another copy of ultramax, as another virtual environment holds one."""
    here = Path(ultramax.__file__).resolve().parent
    site = umx.root / "other-venv" / "site-packages"
    shutil.copytree(here, site / "ultramax", ignore=shutil.ignore_patterns("__pycache__", "model"))
    (site / "ultramax" / "memory" / "model").symlink_to(here / "memory" / "model")  # 20 MB: shared, not copied
    daemon = spawn_daemon_process(umx, PYTHONPATH=str(site))
    try:
        yield daemon
    finally:
        finish_daemon(daemon)


def run_install(umx: UltramaxEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "install", *args],
        capture_output=True,
        text=True,
        env=umx.environ(),
        cwd=umx.root,
        timeout=120,
        check=False,
    )


def test_install_restarts_a_daemon_that_another_install_started(other_daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    before = daemon_status(umx.paths)
    assert before.detail["package"] == str(umx.root / "other-venv" / "site-packages" / "ultramax")
    assert other_install(before) is not None

    run = run_install(umx)

    new_pid: int | None = None
    try:
        assert run.returncode == 0, run.stderr
        assert other_daemon.proc.wait(timeout=30) == 0, "the other daemon stopped gracefully"
        after = daemon_status(umx.paths)
        new_pid = after.pid
        assert after.running and after.detail["package"] == this_package() and other_install(after) is None
        assert f"restarted the daemon from this install (pid {new_pid})" in run.stdout
        assert f"from {before.detail['package']}" in run.stdout
    finally:
        stop_daemon(umx.paths)
    if new_pid is not None:
        wait_for(lambda: process_gone(new_pid), 20, "this install's daemon to exit")


def test_install_leaves_a_daemon_of_this_install_alone(daemon: DaemonProcess, umx: UltramaxEnv) -> None:
    run = run_install(umx, "--json")
    assert run.returncode == 0, run.stderr
    assert '"daemon": null' in run.stdout
    assert daemon_status(umx.paths).pid == daemon.pid


def test_when_the_handover_fails_install_says_so_with_the_command_that_fixes_it(
    other_daemon: DaemonProcess, umx: UltramaxEnv
) -> None:
    umx.paths.daemon_info.unlink()  # a folder where a starting daemon writes daemon.json: starting one fails
    umx.paths.daemon_info.mkdir()

    run = run_install(umx)

    assert run.returncode == 0, run.stderr  # the hooks are installed all the same
    assert "restarting it from this install failed" in run.stderr
    assert "it is stopped: hooks run in-process (slower)" in run.stderr
    assert f"fix: {restart_command()}" in run.stderr
    assert not daemon_status(umx.paths).running
