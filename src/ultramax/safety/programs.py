"""What the shell analysis knows about particular programs: the shells and interpreters that run code handed
to them, the wrappers that run another command (``sudo``, ``env``, ``timeout``, ``xargs`` ...) with the options
that take a value, the option tables of ``ssh``, ``docker run``, ``find`` and the like, and how to peel a
wrapper's own options off the command it runs. Facts about programs, no policy (that is ``rules``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ultramax.safety.shellmodel import Command, Word

__all__ = [
    "AWKS",
    "DELETERS",
    "DOCKER_GLOBAL",
    "DOCKER_RUN_VALUE",
    "FIND_FILTERS",
    "GIT_COMMAND_KEYS",
    "INTERPRETERS",
    "PARALLEL_VALUE",
    "PRIVILEGED",
    "PY_VERSIONED",
    "SCREEN_VALUE",
    "SHELLS",
    "SSH_VALUE",
    "WRAPPERS",
    "XARGS_VALUE",
    "cron_command",
    "fd_parse",
    "option_value",
    "peel",
    "producer_roots",
    "skip_options",
]

SHELLS = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "rbash", "tcsh", "csh", "yash", "busybox-sh"}
)
INTERPRETERS = frozenset({"python", "python2", "python3", "pypy", "pypy3", "node", "nodejs", "perl", "ruby", "php",
                          "deno", "bun", "osascript", "lua", "luajit", "rscript", "pwsh", "powershell"})  # fmt: skip
AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
PY_VERSIONED = re.compile(r"^(python|pypy)\d+(\.\d+)*$")

# wrapper name -> (options that take a value, positionals to skip before the command)
WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group", "--chdir",
                        "--host", "--prompt", "--role", "--type", "--other-user", "--close-from",
                        "--command-timeout"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "nohup": (frozenset(), 0),
    "time": (frozenset({"-f", "--format", "-o", "--output"}), 0),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}), 0),
    "setsid": (frozenset(), 0),
    "chronic": (frozenset(), 0),
    "unbuffer": (frozenset(), 0),
    "caffeinate": (frozenset({"-t", "-w"}), 0),
    "chroot": (frozenset({"--userspec", "--groups"}), 1),
    "nsenter": (frozenset({"-t", "--target", "-S", "-G", "--setuid", "--setgid"}), 0),
    "unshare": (frozenset(), 0),
    "fakeroot": (frozenset(), 0),
    "firejail": (frozenset(), 0),
    "proxychains": (frozenset({"-f"}), 0),
    "proxychains4": (frozenset({"-f"}), 0),
    "torsocks": (frozenset(), 0),
    "eatmydata": (frozenset(), 0),
    "systemd-run": (frozenset({"-p", "--property", "-u", "--unit", "--description", "--slice", "-E", "--setenv",
                               "--uid", "--gid", "--working-directory", "-M", "-H", "--machine", "--host"}), 0),
    "strace": (frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X"}), 0),
    "ltrace": (frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-n"}), 0),
    "busybox": (frozenset(), 0),
    "!": (frozenset(), 0),
    "runuser": (frozenset({"-u", "-g", "-G", "--user", "--group"}), 0),
    "watchexec": (frozenset({"-w", "--watch", "-e", "--exts", "-i", "--ignore", "-s", "--signal"}), 0),
    "env": (frozenset({"-u", "--unset", "-C", "--chdir", "-P"}), 0),
    "pkexec": (frozenset({"--user"}), 0),
    "run0": (frozenset({"-u", "--user", "-g", "--group", "-D", "--chdir", "--unit", "--property", "--description",
                        "--slice", "--nice", "--setenv", "--machine"}), 0),
    "gosu": (frozenset(), 1),
    "su-exec": (frozenset(), 1),
    "setpriv": (frozenset({"--groups", "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits",
                           "--selinux-label", "--apparmor-profile", "--ruid", "--euid", "--rgid", "--egid",
                           "--reuid", "--regid", "--pdeathsig"}), 0),
    "taskset": (frozenset(), 1),
    "chrt": (frozenset({"-T", "--sched-runtime", "-P", "--sched-period", "-D", "--sched-deadline"}), 1),
    "numactl": (frozenset({"-N", "-m", "-C", "-i", "-p", "-P", "--cpunodebind", "--membind", "--physcpubind",
                           "--interleave", "--preferred", "--preferred-many"}), 0),
    "prlimit": (frozenset({"-p", "--pid", "-o", "--output"}), 0),
    "cpulimit": (frozenset({"-l", "--limit", "-c", "--cpu", "-i"}), 0),
    "xvfb-run": (frozenset({"-n", "--server-num", "-s", "--server-args", "-f", "--auth-file", "-e",
                            "--error-file", "-p", "--xauth-protocol", "-w", "--wait", "-l"}), 0),
    "dbus-run-session": (frozenset(), 0),
    "dbus-launch": (frozenset(), 0),
    "nocache": (frozenset(), 0),
    "catchsegv": (frozenset(), 0),
    "valgrind": (frozenset(), 0),
    "tini": (frozenset({"-p", "-e"}), 0),
    "dumb-init": (frozenset({"-r", "--rewrite"}), 0),
    "torify": (frozenset(), 0),
    "tsocks": (frozenset(), 0),
    "trickle": (frozenset({"-u", "-d", "-w", "-t", "-l", "-n"}), 0),
    "entr": (frozenset(), 0),
    "uvx": (frozenset({"--from", "--with", "-p", "--python"}), 0),
    "bunx": (frozenset({"-p", "--package"}), 0),
    "pnpx": (frozenset({"-p", "--package"}), 0),
    "npx": (frozenset({"-p", "--package", "--registry", "--cache", "--userconfig"}), 0),
}  # fmt: skip
PRIVILEGED = frozenset(
    {"sudo", "doas", "runuser", "chroot", "nsenter", "systemd-run", "pkexec", "run0", "gosu", "su-exec", "setpriv"}
)
SSH_VALUE = frozenset(
    [
        "-b",
        "-c",
        "-D",
        "-E",
        "-e",
        "-F",
        "-I",
        "-i",
        "-J",
        "-L",
        "-l",
        "-m",
        "-O",
        "-o",
        "-p",
        "-Q",
        "-R",
        "-S",
        "-W",
        "-w",
    ]
)
XARGS_VALUE = frozenset({"-n", "-P", "-L", "-l", "-d", "-E", "-e", "-s", "-a", "-R", "-S", "--arg-file",
                          "--max-args", "--max-procs", "--delimiter", "--process-slot-var", "--max-lines",
                          "--max-chars", "--eof"})  # fmt: skip
PARALLEL_VALUE = frozenset({"-j", "--jobs", "-S", "--sshlogin", "--results", "--joblog", "--tmpdir", "--delay",
                             "--timeout", "-N", "--max-args", "-n", "--colsep", "-C", "--sshloginfile", "--slf",
                             "-L", "--max-lines", "--block", "--block-size", "--header", "--retries", "--memfree",
                             "--load", "--tag-string", "--tagstring", "--workdir", "--wd", "--env", "--basefile",
                             "--bf", "-a", "--arg-file", "--arg-sep", "--arg-file-sep", "-d", "--delimiter",
                             "-E", "--eof", "-I", "--replace", "--process-slot-var", "--shebang-wrap"})  # fmt: skip
DOCKER_GLOBAL = frozenset({"-H", "--host", "--context", "-c", "--config", "-l", "--log-level", "--tlscacert",
                            "--tlscert", "--tlskey"})  # fmt: skip
DOCKER_RUN_VALUE = frozenset(
    [
        "-v",
        "--volume",
        "-e",
        "--env",
        "-p",
        "--publish",
        "--name",
        "-w",
        "--workdir",
        "-u",
        "--user",
        "--entrypoint",
        "--network",
        "--net",
        "--mount",
        "-l",
        "--label",
        "--env-file",
        "--platform",
        "-m",
        "--memory",
        "--cpus",
        "--restart",
        "-h",
        "--hostname",
        "--add-host",
        "--device",
        "--cap-add",
        "--cap-drop",
        "--security-opt",
        "--tmpfs",
        "--ulimit",
        "--pull",
        "--log-driver",
        "--log-opt",
        "--gpus",
        "--ipc",
        "--pid",
        "--shm-size",
        "--runtime",
        "--volumes-from",
        "-a",
        "--attach",
        "--cidfile",
        "--dns",
        "--group-add",
        "--health-cmd",
        "--isolation",
        "--link",
        "--mac-address",
        "--stop-signal",
        "--stop-timeout",
        "--userns",
        "--uts",
        "--expose",
        "--label-file",
        "--network-alias",
        "--ip",
        "--cpu-shares",
        "-c",
        "--memory-swap",
        "--detach-keys",
        "--cgroupns",
        "--cgroup-parent",
        "--storage-opt",
        "--sysctl",
        "--oom-score-adj",
    ]
)
DELETERS = frozenset({"rm", "unlink", "shred"})
SCREEN_VALUE = frozenset({"-S", "-c", "-e", "-h", "-p", "-t", "-T", "-X", "-s", "-L", "-Logfile"})
FIND_FILTERS = frozenset({
    "-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-newer", "-newermt",
    "-anewer", "-cnewer", "-mtime", "-mmin", "-atime", "-amin", "-ctime", "-cmin", "-used", "-size", "-empty",
    "-user", "-group", "-uid", "-gid", "-nouser", "-nogroup", "-perm", "-links", "-inum", "-samefile", "-lname",
    "-ilname", "-prune",
})  # fmt: skip
FD_VALUE = frozenset({"-t", "--type", "-e", "--extension", "-d", "--max-depth", "--maxdepth", "--min-depth",
                       "--exact-depth", "-E", "--exclude", "-S", "--size", "--changed-within", "--change-newer-than",
                       "--newer", "--changed-before", "--change-older-than", "--older", "-o", "--owner", "-j",
                       "--threads", "--max-results", "-c", "--color", "--base-directory", "--path-separator",
                       "--search-path", "--ignore-file", "--batch-size", "--format", "--max-buffer-time",
                       "--and"})  # fmt: skip
FD_FILTERS = frozenset({"-e", "--extension", "-E", "--exclude", "-S", "--size", "--changed-within",
                         "--change-newer-than", "--newer", "--changed-before", "--change-older-than", "--older", "-o",
                         "--owner", "--and", "--max-results", "-1"})  # fmt: skip
FD_EXEC = frozenset({"-x", "--exec", "-X", "--exec-batch"})
FD_MATCH_ALL = frozenset({"", ".", "^", ".*", "*", "**"})
GIT_COMMAND_KEYS = frozenset({"core.sshcommand", "core.pager", "core.editor", "core.fsmonitor", "diff.external",
                               "core.askpass", "sequence.editor", "gpg.program"})  # fmt: skip


def peel(name: str, args: Sequence[Word]) -> tuple[list[Word], list[Word], dict[str, str]]:
    """Strip one wrapper's own options; returns (the wrapped command, the options consumed, env assignments)."""
    value_opts, skip = WRAPPERS.get(name, (frozenset(), 0))
    consumed: list[Word] = []
    assigns: dict[str, str] = {}
    i = 0
    ended = False
    while i < len(args):
        text = args[i].text
        if not ended and text == "--":
            consumed.append(args[i])
            ended = True
            i += 1
            continue
        if not ended and text.startswith("-") and (len(text) > 1 or name == "env"):
            consumed.append(args[i])
            opt = text.split("=", 1)[0]
            if name == "env" and text == "-S" and i + 1 < len(args):
                consumed[-1] = Word("-S" + args[i + 1].text)
                i += 2
                continue
            if opt in value_opts and "=" not in text:
                if i + 1 < len(args):
                    consumed.append(args[i + 1])
                i += 2
                continue
            i += 1
            continue
        if name == "env" and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", text):
            key, _, value = text.partition("=")
            assigns[key] = value
            consumed.append(args[i])
            i += 1
            continue
        if skip > 0:
            consumed.append(args[i])
            skip -= 1
            i += 1
            continue
        break
    return list(args[i:]), consumed, assigns


def skip_options(args: Sequence[Word], value_opts: frozenset[str]) -> list[Word]:
    """The arguments after the options (a bundle such as ``-dmS`` takes a value if its last letter does)."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        text = args[i].text
        if text == "--":
            i += 1
            break
        bundled = len(text) > 2 and not text.startswith("--") and "-" + text[-1] in value_opts
        if text in value_opts or bundled:
            i += 1
        i += 1
    return list(args[i:])


def option_value(args: Sequence[Word], names: tuple[str, ...]) -> Word | None:
    for i, w in enumerate(args):
        for name in names:
            if w.text == name and i + 1 < len(args):
                return args[i + 1]
            bundle = len(name) == 2 and re.fullmatch(r"-[A-Za-z]+", w.text) and w.text.endswith(name[1])
            if bundle and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and w.text.startswith(name + "="):
                return Word(w.text[len(name) + 1 :])
            if not name.startswith("--") and w.text.startswith(name) and len(w.text) > len(name) and name == "-c":
                continue
    return None


def cron_command(line: str) -> str | None:
    line = line.strip()
    if not line or line.startswith("#") or re.match(r"^[A-Za-z_]+=", line):
        return None
    if line.startswith("@"):
        parts = line.split(None, 1)
        return parts[1] if len(parts) > 1 else None
    parts = line.split(None, 5)
    return parts[5] if len(parts) == 6 else None


def fd_parse(args: Sequence[Word]) -> tuple[list[Word], bool, list[tuple[str, list[Word]]]]:
    """``fd [OPTIONS] [PATTERN] [PATH]...``: the search roots (``--search-path`` too; none: "."), whether a
    pattern or option narrows the results (a pattern of "." or "^" matches every entry), and each
    ``-x``/``--exec``/``-X``/``--exec-batch`` command (the words after it, up to ``;``)."""
    roots: list[Word] = []
    positionals: list[Word] = []
    execs: list[tuple[str, list[Word]]] = []
    filtered = False
    ended = False
    i = 0
    while i < len(args):
        text = args[i].text
        if not ended and text == "--":
            ended = True
        elif not ended and text in FD_EXEC:
            k = i + 1
            sub: list[Word] = []
            while k < len(args) and args[k].text not in (";", "\\;"):
                sub.append(args[k])
                k += 1
            execs.append((text, sub))
            i = k
        elif not ended and text.startswith("--") and len(text) > 2:
            opt, eq, val = text.partition("=")
            filtered = filtered or opt in FD_FILTERS
            if opt in FD_VALUE and not eq:
                if opt == "--search-path" and i + 1 < len(args):
                    roots.append(args[i + 1])
                i += 1
            elif opt == "--search-path":
                roots.append(Word(val))
        elif not ended and text.startswith("-") and len(text) > 1:
            # a cluster of short flags; the first that takes a value takes the rest of the word or the next word
            for pos, letter in enumerate(text[1:], start=1):
                flag = "-" + letter
                filtered = filtered or flag in FD_FILTERS
                if flag in FD_VALUE:
                    if pos == len(text) - 1:
                        i += 1
                    break
        else:
            positionals.append(args[i])
        i += 1
    if positionals:
        pattern = positionals[0]
        filtered = filtered or pattern.dynamic or pattern.text not in FD_MATCH_ALL
        roots = [*positionals[1:], *roots]
    return roots or [Word(".")], filtered, execs


def producer_roots(cmd: Command) -> list[str]:
    """Directories whose entries a listing command (find, ls, fd, git ls-files) prints."""
    if cmd.name == "find":
        return [w.text for w in cmd.roots if not w.dynamic]
    if cmd.name in ("fd", "fdfind") and cmd.roots:
        return [w.text for w in cmd.roots if not w.dynamic]
    if cmd.name in ("ls", "fd", "fdfind"):
        paths = [w.text for w in cmd.args if not w.text.startswith("-") and not w.dynamic]
        return paths or ["."]
    if cmd.name == "git" and any(w.text in ("ls-files", "ls-tree", "diff") for w in cmd.args[:3]):
        return ["."]
    return []
