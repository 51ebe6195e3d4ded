"""The shell analyser: what a command line would run, in canonical form, without running it."""

from __future__ import annotations

from ultramax.safety.shell import DYN, ShellContext, analyze

CTX = ShellContext(home="/home/dev", cwd="/home/dev/work/demo", project="/home/dev/work/demo")


def ran(command: str, ctx: ShellContext = CTX) -> list[str]:
    return [c.text for c in analyze(command, ctx).commands]


def test_lists_pipelines_subshells_and_substitutions_are_split_into_simple_commands() -> None:
    assert ran("a && b || c; d & e | f") == ["a", "b", "c", "d", "e", "f"]
    assert ran("(cd src && make) > log.txt") == ["cd src", "make"]
    assert ran("echo $(date) `whoami` <(ls) >(cat)") == [
        "date",
        "whoami",
        "ls",
        "cat",
        "echo $? dev /dev/fd/63 /dev/fd/63",
    ]


def test_wrappers_are_peeled_off_with_their_own_options() -> None:
    assert ran("sudo -u root -- env -i FOO=1 nice -n 19 timeout 10 command rm -rf /tmp/x") == ["rm -rf /tmp/x"]
    assert ran("nohup time stdbuf -oL ionice -c3 rm x") == ["rm x"]
    assert analyze("sudo rm -rf /", CTX).commands[0].privileged


def test_quotes_backslashes_case_and_absolute_paths_are_normalised() -> None:
    assert [c.name for c in analyze("\\rm a; 'rm' b; r''m c; /usr/bin/rm d; RM e; git.exe f", CTX).commands] == [
        "rm", "rm", "rm", "rm", "rm", "git",
    ]  # fmt: skip
    assert ran("rm \\\n  -rf build") == ["rm -rf build"]


def test_known_variables_are_resolved_and_unknown_ones_stay_run_time_values() -> None:
    assert ran('R="rm -rf"; $R ~') == ["rm -rf /home/dev"]
    assert ran("rm -rf ${TMPDIR:-/tmp}/x") == ["rm -rf /tmp/x"]
    cmd = analyze('rm -rf "$BUILD_DIR/"', CTX).commands[0]
    assert cmd.argv[2].text == DYN + "/" and cmd.argv[2].vars == ("BUILD_DIR",)
    assert analyze("$TOOL --version", CTX).commands[0].name == ""


def test_ifs_splicing_is_undone_like_bash_does() -> None:
    assert ran("rm$IFS-rf$IFS/") == ["rm -rf /"]


def test_cd_changes_the_directory_that_later_commands_resolve_against() -> None:
    cmds = analyze("cd .. && rm -rf demo; cd /tmp && ls", CTX).commands
    assert [c.cwd for c in cmds] == ["/home/dev/work", "/home/dev/work", "/tmp", "/tmp"]
    assert analyze("cd $(mktemp -d) && rm -rf *", CTX).commands[-1].cwd == "/tmp/tmp.mktemp"


def test_code_handed_to_a_shell_is_followed_recursively() -> None:
    for command in ["bash -c 'rm -rf ~'", "sh -lc 'rm -rf ~'", "eval 'rm -rf ~'", "echo 'rm -rf ~' | sh",
                    "sh <<< 'rm -rf ~'", "bash <<'EOF'\nrm -rf ~\nEOF", "ssh host 'rm -rf ~'",
                    "watch -n1 'rm -rf ~'", "su -c 'rm -rf ~'", "xargs -I{} sh -c 'rm -rf ~' <<< x"]:  # fmt: skip
        assert "rm -rf /home/dev" in ran(command), command
    nested = next(c for c in analyze("bash -c \"sh -c 'rm -rf ~'\"", CTX).commands if c.name == "rm")
    assert nested.via == ("bash -c", "sh -c") and nested.depth == 2


def test_decodable_payloads_are_decoded_before_they_are_judged() -> None:
    assert "rm -rf /home/dev" in ran('eval "$(echo cm0gLXJmIH4= | base64 -d)"')
    assert "rm -rf /" in ran("$(printf 'rm') -rf /")


def test_nesting_stops_at_the_depth_limit_with_a_fact_instead_of_recursing_forever() -> None:
    command = "rm -rf build"
    for level in range(10):
        command = f"sh <<'END{level}'\n{command}\nEND{level}"
    analysis = analyze(command, CTX)
    assert "depth_limit" in analysis.facts
    assert max(c.depth for c in analysis.commands) == CTX.max_depth


def test_heredocs_fed_to_data_commands_and_commit_messages_stay_data() -> None:
    assert ran("cat <<'EOF' > notes.md\nrm -rf /\nEOF") == ["cat"]
    assert ran("git commit -m \"$(cat <<'EOF'\nfix: rm -rf ~\nEOF\n)\"")[-1] == "git commit -m 'fix: rm -rf ~'"
    assert ran("grep -rn 'rm -rf /' .") == ["grep -rn 'rm -rf /' ."]


def test_find_exec_xargs_and_parallel_run_their_commands_on_the_found_paths() -> None:
    assert "rm -r -rf /home/dev" in ran("find ~ -exec rm -rf {} +")
    assert "rm -r -f ./{}" in ran("find . -name '*.o' -exec rm -f {} +")
    assert "rm -rf /" in ran("echo / | xargs rm -rf")
    assert "rm -rf /" in ran("parallel rm -rf {} ::: /")
    assert "rm -r -f /home/dev/{}" in ran("find ~ -type f | xargs rm -f")


def test_fd_exec_runs_its_command_on_every_result_under_the_search_roots() -> None:
    # a pattern that matches everything (".", "^" or none) leaves the whole tree; a pattern or -e narrows it
    assert "rm -r /home/dev" in ran("fd -t f . ~ -x rm {}")
    assert "rm -r /home/dev" in ran("fdfind --type f --search-path ~ --exec rm")  # no placeholder: appended
    assert "rm -r -f ./{}" in ran("fd -e o -X rm -f")
    assert "rm -r -rf /etc" in ran("fd -x rm -rf {} \\; . /etc")  # options and paths after the command's ';'
    assert "cat /etc" in ran("fd -tf --search-path=/etc -x cat {/}")
    assert "rm -r /home/dev/{}" in ran("fd -t f . ~ | xargs rm")  # fd lists recursively, like find


def test_interpreter_one_liners_are_read_for_shell_calls_and_deletions() -> None:
    assert "rm -rf /home/user" in ran("python3 -c \"import shutil; shutil.rmtree('/home/user')\"")
    assert "rm -f /etc/passwd" in ran("python3 -c \"import os; os.remove('/etc/passwd')\"")
    assert "rm -rf /" in ran("python3 -c \"import subprocess; subprocess.run(['rm', '-rf', '/'])\"")
    assert "rm -rf /home/dev" in ran("node -e \"require('fs').rmSync(require('os').homedir(), {recursive: true})\"")
    assert "rm -rf /home/dev" in ran("ruby -e 'FileUtils.rm_rf(Dir.home)'")
    assert "rm -rf /" in ran("perl -e 'system(\"rm -rf /\")'")
    assert "rm -rf /home/dev" in ran("awk 'BEGIN { system(\"rm -rf ~\") }'")
    assert ran("python3 -c 'print(\"rm -rf /\")'") == ["python3 -c 'print(\"rm -rf /\")'"]


def test_a_container_command_touches_the_host_only_through_its_mounts() -> None:
    cmds = analyze("docker run --rm -v /:/host alpine rm -rf /host/etc", CTX).commands
    inner = next(c for c in cmds if c.name == "rm")
    assert inner.container == "run" and inner.mounts == (("/host", "/"),)


def test_a_function_defined_and_called_runs_its_body_and_one_that_is_never_called_does_not() -> None:
    assert "rm -rf /home/dev" in ran("f(){ rm -rf ~; }; f")
    assert ran("cleanup() { rm -rf ~; }") == []
    assert "fork_bomb" in analyze(":(){ :|:& };:", CTX).facts


def test_broken_input_is_a_parse_error_fact_never_an_exception() -> None:
    analysis = analyze('echo "unterminated', CTX)
    assert "parse_error" in analysis.facts
    assert analysis.error and "syntax error" in analysis.error


def test_a_huge_command_is_cut_off_by_the_time_budget_while_parsing_or_walking() -> None:
    small_budget = ShellContext(home="/home/dev", cwd="/home/dev/work/demo", budget_s=0.002)
    assert "budget" in analyze("; ".join(f"rm -f file{i}.txt" for i in range(5000)), small_budget).facts
    assert "budget" in analyze("ls | " * 20000 + "cat", small_budget).facts


def test_analyses_are_cached_on_the_command_and_its_context() -> None:
    assert analyze("ls -la", CTX) is analyze("ls -la", CTX)
    other = ShellContext(home="/home/dev", cwd="/tmp")
    assert analyze("ls -la", other) is not analyze("ls -la", CTX)
