"""`ultramax demo` replays a recorded session through the whole pipeline without touching the user's files."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import UltramaxEnv
from ultramax.cli.main import main
from ultramax.demo import run_demo


def test_the_demo_replays_every_event_stops_the_dangerous_ones_and_verifies_the_chain(umx: UltramaxEnv) -> None:
    lines: list[str] = []
    assert run_demo(lines.append) is True
    text = "\n".join(lines)
    assert "22 hook events replayed: 17 continue, 5 deny" in text
    assert "[rule fs.rm.catastrophic]" in text  # rm -rf ~/ stopped by the shell analysis
    assert "[rule files.read.secret]" in text  # the .env read stopped by the file policy
    assert "KILL SWITCH is on" in text
    assert "hook input is not valid JSON" in text  # the malformed payload in trading mode
    assert lines[-2].startswith("audit chain verified: 22 records")
    assert "fails verification" in lines[-1]


def test_the_demo_leaves_the_users_own_home_untouched(umx: UltramaxEnv) -> None:
    before = sorted(p.relative_to(umx.root) for p in umx.root.rglob("*"))
    run_demo(lambda line: None)
    assert sorted(p.relative_to(umx.root) for p in umx.root.rglob("*")) == before


def test_a_fresh_demo_process_writes_nothing_into_the_users_home(umx: UltramaxEnv) -> None:
    # a new process parses the safety data and caches it; that cache belongs to the demo's home too
    before = sorted(p.relative_to(umx.root) for p in umx.root.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", "demo"],
        env=umx.environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "audit chain verified" in done.stdout
    assert sorted(p.relative_to(umx.root) for p in umx.root.rglob("*")) == before


def test_keeping_the_demo_in_a_file_or_an_unwritable_place_is_a_clear_error(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = umx.root / "notes.txt"
    a_file.write_text("mine")
    assert main(["demo", "--keep", str(a_file)]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"ultramax: cannot keep the demo's files in {a_file}: Not a directory") and err.count("\n") == 1
    )
    assert a_file.read_text() == "mine"
    assert main(["demo", "--keep", "/proc/no-such-process/demo"]) == 1
    assert "give a folder you can write" in capsys.readouterr().err
