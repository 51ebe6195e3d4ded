"""``ultramax-hook EVENT``: the process Claude Code spawns for every hook event.

It must cost next to nothing, so it imports nothing beyond what the interpreter has already loaded plus the
C module ``_socket`` (no ``json``, no ``socket``, no ``os``): it forwards stdin (what came within the timeout,
if the writer never closes it) to the daemon over the Unix socket in ULTRAMAX_HOME, and copies the daemon's
reply to stdout/stderr with the daemon's exit code. The payload is not parsed here -- the daemon validates it.

If no daemon answers (no socket, a stale socket, a daemon that hangs past the timeout) it runs the
pipeline in-process (``ultramax.hook.fallback``) and starts the daemon in the background for next time.
Whatever happens it never lets a traceback reach Claude Code: a failure is one line on stderr and exit 0.

Wire format: request ``EVENT \\t PROJECT_DIR \\n`` + payload, then EOF; reply ``EXIT LEN \\n`` + LEN bytes of
stdout + the rest as stderr.
"""

import posix  # builtin module; loaded at start-up already
import sys

DEFAULT_TIMEOUT_MS = 5000


def _env(name: str) -> str:
    value = posix.environ.get(name.encode())
    return value.decode() if value else ""


def _home() -> str:
    home = _env("ULTRAMAX_HOME")
    if home:
        return home
    claude = _env("CLAUDE_CONFIG_DIR") or (_env("HOME") + "/.claude")
    return claude + "/ultramax"


def _timeout_ms(argv: list[str]) -> int:
    for arg in argv:
        if arg.startswith("--timeout-ms="):
            try:
                return max(50, int(arg.split("=", 1)[1]))
            except ValueError:
                break
    value = _env("ULTRAMAX_HOOK_TIMEOUT_MS")
    return int(value) if value.isdigit() else DEFAULT_TIMEOUT_MS


class _StdinTimeout(Exception):
    pass


def _stdin_expired(signum: int, frame: object) -> None:
    raise _StdinTimeout


def _read_stdin(timeout: float) -> tuple[bytes, float]:
    """stdin up to EOF, or what came within ``timeout`` seconds (a writer that never closes it must not hold
    the hook past its time); returns the bytes and the seconds left of ``timeout``."""
    import _signal  # type: ignore[import-not-found]  # builtin and loaded at start-up; `signal` costs ~6 ms

    chunks: list[bytes] = []
    previous = _signal.signal(_signal.SIGALRM, _stdin_expired)
    _signal.setitimer(_signal.ITIMER_REAL, timeout)
    try:
        while True:
            chunk = posix.read(0, 1 << 20)  # SIGALRM's exception ends a read that waits
            if not chunk:
                break
            chunks.append(chunk)
    except _StdinTimeout:
        pass  # decide what came: the daemon judges a cut payload like any malformed one, and audits it
    finally:
        left = float(_signal.setitimer(_signal.ITIMER_REAL, 0)[0])
        _signal.signal(_signal.SIGALRM, previous)
    return b"".join(chunks), left


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view) :]


def _ask_daemon(sock_path: str, request: bytes, timeout: float) -> bytes:
    import _socket  # C module: no enum/selectors import chain like `socket` has

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(request)
        s.shutdown(_socket.SHUT_WR)
        parts: list[bytes] = []
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    finally:
        s.close()


def _emit(reply: bytes) -> int:
    header, sep, body = reply.partition(b"\n")
    fields = header.split(b" ")
    if not sep or len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
        raise ValueError("malformed reply from the ultramax daemon")
    n = int(fields[1])
    _write(1, body[:n])
    if len(body) > n:
        _write(2, body[n:])
    return int(fields[0])


USAGE = b"""usage: ultramax-hook EVENT [--timeout-ms=MS] < payload.json

The command Claude Code runs for each hook event (`ultramax install` registers it): reads the event's JSON
from stdin, has the ultramax daemon decide it, and prints the decision for Claude Code. EVENT is the hook
event name (PreToolUse, UserPromptSubmit, ...). To try a decision by hand: `ultramax safety check 'CMD'`.
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--help" in args or "-h" in args:
        _write(1, USAGE)
        return 0
    positional = [a for a in args if not a.startswith("--")]
    event = positional[0] if positional else ""
    if not event and posix.isatty(0):  # run by hand with nothing to read: say what it is instead of waiting
        _write(2, USAGE)
        return 2
    timeout_ms = _timeout_ms(args)
    try:
        payload, left = _read_stdin(timeout_ms / 1000)
    except OSError as exc:
        _write(2, f"ultramax-hook: cannot read stdin ({exc}); the event continues\n".encode())
        return 0
    project = _env("CLAUDE_PROJECT_DIR")
    try:
        # the wait for stdin and for the daemon share the hook's time (at least a moment is left to ask)
        request = f"{event}\t{project}\n".encode() + payload
        reply = _ask_daemon(_home() + "/daemon.sock", request, max(left, 0.2))
        return _emit(reply)
    except (OSError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    return _fallback(event, payload, project, reason, timeout_ms)


def _fallback(event: str, payload: bytes, project: str, reason: str, timeout_ms: int) -> int:
    """No daemon answered: run the same pipeline in this process (slower, still correct)."""
    try:
        here = __file__.rsplit("/", 3)[0]  # the directory holding the ultramax package
        if here not in sys.path:
            sys.path.insert(0, here)
        if "site" not in sys.modules:  # started with -S: make the venv's packages importable
            import site

            site.main()
        from ultramax.hook.fallback import run_in_process

        return run_in_process(event, payload, project, reason, timeout_ms)
    except BaseException as exc:  # top-level: never a traceback in Claude Code's session
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            raise
        _write(2, f"ultramax-hook: {type(exc).__name__}: {exc}; the event continues (failure policy)\n".encode())
        return 0


if __name__ == "__main__":
    sys.exit(main())
