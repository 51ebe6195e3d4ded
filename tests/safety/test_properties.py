"""Robustness: random and adversarial commands and payloads always get a decision -- no exception, no hang."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.safety.conftest import Gate
from ultramax.safety.sanitize import SanitisationLayer
from ultramax.safety.shell import ShellContext, analyze

PROFILE = settings(max_examples=120, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
CTX = ShellContext(home="/home/dev", cwd="/home/dev/work/demo", project="/home/dev/work/demo")

WORDS = [
    "rm", "-rf", "-r", "-f", "/", "~", "..", ".", "*", "$HOME", "$IFS", "${X:-/}", "$(", ")", "`", "'", '"', "\\",
    "sudo", "env", "xargs", "find", "-exec", "{}", ";", "\\;", "+", "-delete", "bash", "sh", "-c", "eval", "echo",
    "printf", "|", "||", "&&", "&", ";;", "<<", "<<<", "<<-", "EOF", "'EOF'", "\n", ">", ">>", "2>&1", "<(", ">(",
    "(", "{", "}", "[[", "]]", "if", "then", "fi", "for", "in", "do", "done", "case", "esac", "function", "f()",
    "git", "push", "--force", "reset", "--hard", "curl", "https://x.sh", "python3", "-c",
    "import os;os.system('rm -rf /')",
    "dd", "of=/dev/sda", "chmod", "777", "psql", "DROP TABLE t", "base64", "-d", "cm0gLXJmIC8=", "/dev/tcp/1.2.3.4/1",
    "~/.ssh/id_rsa", ".env", "docker", "run", "-v", "/:/h", "ssh", "host", "#", "!", "$((1+2))", "$'\\x72m'", "\x00",
]  # fmt: skip

commands = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=40).map("".join),
    st.builds(
        lambda a, b: a * b, st.sampled_from(["$(", "`", "(", "{ ", "bash -c '", "'", '"', "<<E\n"]), st.integers(0, 300)
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
tools = st.sampled_from(["Bash", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Grep", "Glob", "WebFetch",
                         "Task", "mcp__postgres__query", "mcp__shell__run_command", "mcp__fs__delete_file",
                         "mcp__alpaca__place_order", "mcp__x__y", "mcp__", "", "Unknown"])  # fmt: skip
inputs = st.dictionaries(
    st.sampled_from(["command", "file_path", "path", "content", "sql", "query", "edits", "notebook_path", "url", "x"]),
    json_values,
    max_size=5,
)


@PROFILE
@given(command=commands)
def test_the_analyser_always_returns_an_analysis_for_any_text(command: str) -> None:
    started = time.perf_counter()
    analysis = analyze(command, CTX)
    assert isinstance(analysis.commands, list)
    assert time.perf_counter() - started < 2.0


@PROFILE
@given(command=commands)
def test_the_engine_always_decides_a_bash_command_without_a_layer_error(gate: Gate, command: str) -> None:
    decision = gate.decide(command)
    assert decision.permission in ("allow", "ask", "deny")
    assert all(row.outcome != "error" for row in decision.trace if row.layer == "sanitisation"), decision.reason


@PROFILE
@given(tool=tools, data=inputs)
def test_any_tool_with_any_input_gets_a_decision_and_the_layer_never_raises(
    gate: Gate, tool: str, data: dict[str, Any]
) -> None:
    request = gate.request(tool=tool, data=data)
    verdict = SanitisationLayer().check(request)
    assert verdict is None or verdict.permission in ("ask", "deny")
    assert gate.engine.evaluate(request).permission in ("allow", "ask", "deny")


@PROFILE
@given(command=commands)
def test_the_same_command_gets_the_same_decision_every_time(gate: Gate, command: str) -> None:
    first = gate.decide(command)
    again = gate.decide(command)
    assert (first.permission, first.rule) == (again.permission, again.rule)


def test_a_hundred_kilobyte_command_is_decided_within_the_budget(gate: Gate) -> None:
    for command in ("ls | " * 20000 + "cat", "; ".join(f"rm -f f{i}" for i in range(9000)), "$(" * 3000 + ")" * 3000,
                    "echo '" + "a" * 100_000 + "'", "cat <<'EOF'\n" + "rm -rf /\n" * 12000 + "EOF"):  # fmt: skip
        started = time.perf_counter()
        decision = gate.decide(command)
        elapsed = time.perf_counter() - started
        assert decision.permission in ("allow", "ask", "deny")
        assert elapsed < 1.0, f"{len(command)} bytes took {elapsed:.3f} s"


def test_code_points_that_crash_tree_sitter_bash_after_a_brace_are_analysed_in_a_surviving_process() -> None:
    """tree-sitter-bash 0.25 reads out of bounds on ``{`` followed by a code point from about U+58000 up and
    kills the process (a segfault, not an exception); the analyser parses such characters as U+FFFD."""
    import subprocess
    import sys

    code = (
        "from ultramax.safety.shell import ShellContext, analyze\n"
        "ctx = ShellContext(home='/home/dev', cwd='/tmp')\n"
        "for cp in (0x58000, 0x80000, 0xE0001, 0xF1EB9, 0xFFFFD, 0x100000, 0x10FFFF):\n"
        "    for text in ('{' + chr(cp), 'x{' + chr(cp) + '}', 'rm -rf {' + chr(cp) + ',/}'):\n"
        "        analyze(text, ctx)\n"
        "print('survived')\n"
    )
    for _ in range(5):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert (proc.returncode, proc.stdout.strip()) == (0, "survived"), proc.stderr[-500:]
