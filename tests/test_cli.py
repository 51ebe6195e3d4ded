"""The command line as a whole, run as a user's shell runs it: exit statuses, a closed pipe, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UltramaxEnv, wait_for
from ultramax.cli.main import main
from ultramax.daemon import daemon_status
from ultramax.prewarm import announced_proxy

# Ctrl-C pressed while `ultramax` is still importing its command modules (the first few hundred ms of every
# command): a real SIGINT, sent by the process to itself the moment the import of the last group starts
INTERRUPT_DURING_IMPORT = """
import importlib.abc, os, signal, sys

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ultramax.cli.route_cmd":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
from ultramax.cli.main import main
sys.exit(main(["config", "show"]))
"""


def ultramax(
    env: UltramaxEnv, *argv: str, cwd: Path, stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ultramax.cli.main", *argv],
        env=env.environ(), cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("argv", [["safety", "check", "rm -rf ~"], ["config", "reference"], ["kill", "status"]])
def test_output_cut_off_by_a_closed_pipe_exits_141_with_no_traceback_not_0(umx: UltramaxEnv, argv: list[str]) -> None:
    project = umx.project("acme")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte, as `| head -0` or a reader that quit
    try:
        proc = ultramax(umx, *argv, cwd=project, stdout=write)
    finally:
        os.close(write)
    assert proc.returncode == 141  # as a shell reports any tool SIGPIPE stopped; a deny must never read as 0
    assert proc.stderr == ""


def test_ctrl_c_while_the_commands_load_exits_130_with_no_traceback(umx: UltramaxEnv) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPT_DURING_IMPORT],
        env=umx.environ(), cwd=umx.project("acme"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["search", "--json", "--project", "nope", "--query", "x"], 1, "no memory project named 'nope'"),
        (["search", "--json", "--query", "x", "--limit", "many"], 2, "argument --limit: not a whole number: 'many'"),
        (["search", "--json"], 2, "the following arguments are required: --query"),
        (["safety", "check", "--json", "--input", "{"], 2, "--input is not valid JSON"),
        (["config", "show", "--json", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["list-projects", "--json"], 1, "memory.db: memory database error (file is not a database)"),
    ],
)
def test_with_json_an_error_is_one_json_object_on_stderr_and_stdout_stays_empty(
    umx: UltramaxEnv, argv: list[str], status: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "database" in said:
        umx.paths.home.mkdir(parents=True, exist_ok=True)
        (umx.paths.home / "memory.db").write_bytes(b"not a database, " * 512)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors end in sys.exit(2)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == status and out == ""
    error = json.loads(err)
    assert said in error["error"] and error["status"] == status


def test_without_json_an_error_stays_one_line_of_text(umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--project", "nope", "--query", "x"]) == 1
    assert capsys.readouterr().err.startswith("ultramax: no memory project named 'nope'")


@pytest.mark.parametrize("argv", [["confirm"], ["confirm", "0123abcd"], ["override", "show"]])
def test_a_damaged_safety_database_is_named_with_the_way_back_not_a_traceback(
    umx: UltramaxEnv, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    database = umx.paths.home / "safety.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_bytes(b"not a database, " * 512)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{database}: the safety database is damaged (file is not a database)" in err
    assert f"mv {database} {database}.broken" in err


def test_a_kill_switch_made_as_a_folder_is_reported_on_and_kill_off_removes_it(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = umx.paths.kill_switch
    switch.mkdir()  # `mkdir ~/.claude/KILL_SWITCH`: its presence engages the switch as the file's does
    assert main(["kill", "on", "--reason", "freeze"]) == 1
    assert "(Is a directory); the switch is on anyway" in capsys.readouterr().err
    (switch / "note").write_text("x")
    assert main(["kill", "off"]) == 1
    assert "(Directory not empty): it stays ON; remove it by hand" in capsys.readouterr().err
    (switch / "note").unlink()
    assert main(["kill", "off"]) == 0
    assert capsys.readouterr().out == "kill switch off\n" and not switch.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["route", "calibrate", "prompts.jsonl", "--max-under", "5"], "--max-under: must be at least 0 and under 1"),
        (["route", "calibrate", "prompts.jsonl", "--max-under", "nan"], "--max-under: must be at least 0 and under 1"),
        (["install", "--timeout-ms", "-5"], "--timeout-ms: must be 50 or more, not -5"),
        (["proxy", "--upstream", "ftp://example.com"], "--upstream must be an http:// or https:// URL"),
    ],
)
def test_an_option_value_out_of_range_is_a_usage_error_before_any_work(
    umx: UltramaxEnv, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = umx.user_settings.read_text(encoding="utf-8")
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors end in sys.exit(2)
        code = int(exc.code or 0)
    assert code == 2
    assert said in capsys.readouterr().err
    assert umx.user_settings.read_text(encoding="utf-8") == settings  # install wrote nothing


def test_daemon_serve_offers_no_json_it_would_ignore(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["daemon", "serve", "--json"])
    assert exit_.value.code == 2 and "unrecognized arguments: --json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["daemon", "status", "--help"])
    assert "--json" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["status"], ["audit", "verify"], ["daemon", "start"], ["kill", "on"]])
@pytest.mark.parametrize("variable", ["ULTRAMAX_HOME", "CLAUDE_CONFIG_DIR"])
def test_a_state_folder_variable_naming_a_file_is_one_clear_error(
    umx: UltramaxEnv,
    argv: list[str],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = umx.root / "notes.txt"
    a_file.write_text("mine")
    monkeypatch.setenv(variable, str(a_file))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ultramax: ") and f"${variable}" in err and f"{a_file} is not a folder" in err
    assert a_file.read_text() == "mine"


def test_an_override_that_cannot_be_read_lifts_nothing_and_set_and_clear_say_why_they_cannot(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    umx.paths.override.mkdir()  # a folder where ~/.claude/OVERRIDE goes
    assert main(["override", "show"]) == 0
    assert f"override IGNORED ({umx.paths.override}): cannot read it (Is a directory)" in capsys.readouterr().out
    assert main(["--project-dir", str(umx.project("acme")), "safety", "check", "ls"]) == 0  # judged as without it
    capsys.readouterr()
    assert main(["override", "set", "trade:*", "--for", "10m"]) == 1
    assert f"cannot write the override {umx.paths.override} (Is a directory); nothing was lifted" in (
        capsys.readouterr().err
    )
    assert main(["override", "clear"]) == 1
    assert "(Is a directory); remove it by hand" in capsys.readouterr().err


def test_mcp_serve_on_a_port_already_taken_says_so_in_one_line(umx: UltramaxEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "ultramax.cli.main", "mcp", "serve", "--transport", "http", "--port", str(port)],
            env=umx.environ(), cwd=umx.project("acme"), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == f"ultramax: cannot listen on 127.0.0.1:{port} (Address already in use); choose another " \
        "--port (0 picks a free one) or --host\n"  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["audit", "tail", "-n", "99999999999999999999999"],
     ["memory", "blocks", "edit", "human", "--limit", "99999999999999999999999"]],
)  # fmt: skip
def test_a_count_too_large_for_any_file_is_a_usage_error_not_an_overflow(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"must be at most {2**63 - 1}, not 99999999999999999999999" in capsys.readouterr().err


def test_claude_project_dir_naming_a_missing_directory_is_refused_and_nothing_is_created(
    umx: UltramaxEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = umx.root / "no-such-project"
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(missing))
    assert main(["mode", "activate", "alphaforge"]) == 1
    assert f"$CLAUDE_PROJECT_DIR is {missing}, which is not an existing directory" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
@pytest.mark.parametrize("server", ["proxy", "daemon serve"])
def test_a_server_stopped_with_ctrl_c_exits_130_and_one_asked_to_stop_exits_0(
    umx: UltramaxEnv, server: str, stop: signal.Signals, status: int
) -> None:
    argv = ["proxy", "--port", "0", "--quiet"] if server == "proxy" else ["daemon", "serve"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultramax.cli.main", *argv], env=umx.environ(), cwd=umx.project("acme"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if server == "proxy":
            wait_for(lambda: announced_proxy(umx.paths) is not None, 60, "the proxy to announce itself")
        else:
            wait_for(lambda: daemon_status(umx.paths).running, 60, "the daemon to answer")
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "status"), [("status", 0), ("config show --json", 0), ("safety check 'rm -rf ~'", 1)])
def test_with_stdout_closed_a_command_still_runs_and_exits_with_its_status_without_a_traceback(
    umx: UltramaxEnv, argv: str, status: int
) -> None:
    proc = subprocess.run(
        ["sh", "-c", f'exec "$0" -m ultramax.cli.main {argv} >&-', sys.executable],
        env=umx.environ(), cwd=umx.project("acme"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == status, proc.stderr
    assert proc.stderr == ""


def test_override_set_refuses_an_override_the_layer_would_ignore_and_writes_nothing(
    umx: UltramaxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["override", "set", "trade:*", "", "--for", "10m"]) == 1
    assert "this override would be ignored (allowed_operations must be a non-empty list" in capsys.readouterr().err
    assert not umx.paths.override.exists()
