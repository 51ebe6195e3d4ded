"""Capture: hook events become passages -- prompts, edits as compact diffs, failing commands and their fixes,
test runs and each turn's final answer.

Everything passes ``clean`` first: ``<private>...</private>`` spans are dropped (an unclosed tag drops the
rest, a closing tag without its opening drops what came before), then secrets are redacted
(``ultramax.redact``; files such as ``.env`` lose every value). Nothing else is stored: reads, searches and
ordinary successful commands are noise for memory.

A failed command is remembered per session; when the same command later succeeds, the failure, the edits
made in between and the success are stored together as a ``bug_fix``.

Standard library only (the hook fallback runs it).
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ultramax.events import HookEvent
from ultramax.memory.models import NewPassage
from ultramax.redact import (
    dumps_environment,
    is_env_file,
    is_key_file,
    prints_secret_variable,
    redact,
    redact_env,
    redact_path,
    strip_private,
)

__all__ = [
    "CAPTURED_EVENTS",
    "MAX_PASSAGE_CHARS",
    "Capture",
    "classify",
    "clean",
    "compact_diff",
    "is_question",
    "strip_private",
]

CAPTURED_EVENTS = frozenset({"UserPromptSubmit", "PostToolUse", "PostToolUseFailure", "Stop", "SubagentStop"})
MAX_PASSAGE_CHARS = 4000
_TEST_COMMAND = re.compile(
    r"(?:^|[\s;&|(])(?:pytest|py\.test|tox|nox|jest|vitest|mocha|rspec|phpunit|ctest"
    r"|(?:python3?|uv run|poetry run)\s+-m\s+(?:pytest|unittest)|go\s+test|cargo\s+(?:test|nextest)"
    r"|(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?test|make\s+(?:test|check)|gradle\w*\s+test|mvn\s+\S*\s*test|dotnet\s+test)\b"
)
_TEST_SUMMARY = re.compile(
    r"(?im)^.*\b(?:\d+\s+(?:passed|failed|errors?|skipped|tests?)|tests?:\s+\d+|ok\s+\S+\s+\d|FAIL\b|PASS\b|"
    r"test result:).*$"
)
_DECISION = re.compile(
    r"(?i)\b(?:we(?:'ll| will| should)? (?:use|go with|standardi[sz]e on|switch to)|let's (?:use|go with|switch to)|"
    r"decided|decision|chose|going with|from now on|must always|must never)\b"
)
_LEARNING = re.compile(r"(?i)\b(?:learned|turns out|root cause|the (?:fix|problem|issue) (?:was|is)|gotcha|lesson)\b")
# A standing instruction -- a convention to keep, the seed's "pattern": "always use pytest -q", "never push to
# main", "I prefer httpx over requests", "from here on use tabs". At a sentence's start or after I/we, so
# "it always fails on CI" is not one; "never mind" is not either.
_CONVENTION = re.compile(
    r"(?i)(?:^|(?<=[.!\n;])\s*|\b(?:i|we)\s+)(?:please\s+)?(?:always|never(?!\s+mind)|prefer\s+\S+\s+(?:over|to)\b)"
)
_QUESTION = re.compile(
    r"(?i)\s*(?:should|shall|do|does|did|have|has|had|is|are|was|were|can|could|would|will|which|what|why|how|"
    r"when|where|who|remind me)\b"
)
_ECHO = re.compile(r"(?m)^[ \t]*(?:-[ \t]*\[\d{4}-\d{2}-\d{2} · [^\]\n]*#\d+\]|\[ultramax memory\]).*(?:\n|$)")
"""A line of injected memory (an item, or the header) that the model or the user quoted back."""
_SHELL_SEPARATORS = re.compile(r"[\s;|&\"'()<>`]+")
_EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
# Programs whose exit status 1 is an answer, not a failure: no match (grep), a difference (diff, cmp), false
# (test). Claude Code reports any non-zero exit as a failure whose error starts "Exit code N".
_ONE_IS_AN_ANSWER = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "diff", "cmp", "test", "[", "[["})
_EXIT_ONE = re.compile(r"\AExit code 1\s*\Z")


def _last_lines(text: str, limit: int) -> str:
    """The end of an error, where its conclusion is, cut at a line start so it does not begin mid-word."""
    text = text.strip()
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    return tail.split("\n", 1)[1] if "\n" in tail[:-1] else tail


def _answered_no(command: str, error: str) -> bool:
    """A command whose last program answered "no" (exit 1, nothing on stderr): ``grep`` found no match."""
    if not _EXIT_ONE.match(error):
        return False
    last = re.split(r"\|\||&&|[|;&]", command)[-1]
    words = [w for w in _shell_words(last) if not re.fullmatch(r"[A-Za-z_]\w*=.*", w)]  # VAR=value prefixes
    if words[:1] == ["git"] and len(words) > 1 and words[1] in ("grep", "diff"):
        return True
    return bool(words) and words[0].rsplit("/", 1)[-1] in _ONE_IS_AN_ANSWER


def clean(text: str, *, env_file: bool = False, max_chars: int | None = MAX_PASSAGE_CHARS) -> str:
    """What may be stored of ``text``: no private spans, no secrets, trimmed to ``max_chars`` (None for a
    core block, whose own limit is enforced -- never silently cut -- by the store)."""
    text = strip_private(text)
    text = redact_env(text) if env_file else redact(text)
    text = text.strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 20].rstrip() + "\n[... truncated]"
    return text


def classify(text: str, default: str) -> str:
    """A prompt or answer that states a decision or a lesson is stored as one (the seed's kinds). A question
    is not a statement: "have we decided on the DB yet?" stays a prompt, so it never takes a decision's place."""
    for pattern, kind in ((_DECISION, "decision"), (_LEARNING, "learning"), (_CONVENTION, "pattern")):
        if any(not _asks(text, m.start()) for m in pattern.finditer(text)):
            return kind
    return default


def is_question(text: str) -> bool:
    """Whether a prompt opens with a question ("what port does it use now? I need it for nginx"): what it
    asked is no information; what answered it is its own passage."""
    return _asks(text, 0)


def _asks(text: str, at: int) -> bool:
    """Whether the sentence around position ``at`` is a question (a question word first, or a '?' last)."""
    start = max(text.rfind(c, 0, at) for c in ".!?\n") + 1
    ends = [i for i in (text.find(c, at) for c in ".!?\n") if i >= 0]
    end = min(ends) if ends else len(text)
    return (end < len(text) and text[end] == "?") or bool(_QUESTION.match(text, start))


def compact_diff(old: str, new: str, *, max_lines: int = 40) -> str:
    """A unified diff without context lines or headers, capped: what changed, in few characters."""
    lines = [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if not line.startswith(("---", "+++"))
    ]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more diff lines)"]
    return "\n".join(lines)


def _shell_words(command: str) -> list[str]:
    """A command line's words as the shell splits them (by blanks when its quoting is unfinished)."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _command_key(command: str) -> str:
    """The program and its first argument: 'pytest tests/x' and 'pytest tests/x -q' are the same command."""
    words = [w for w in _shell_words(command) if "=" not in w or w.startswith("-")][:2]
    return " ".join(words)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [str(value.get(k)) for k in ("stdout", "stderr", "output", "error", "message") if value.get(k)]
        return "\n".join(parts)
    return "" if value is None else str(value)


def _recent(text: str, limit: int = 200_000) -> str:
    """The end of a huge output, from a line start: all of it is redacted before any tail is taken, and this
    bounds that work. What a cut leaves half (a key without its BEGIN line, a span without its opening tag)
    is still recognised and dropped."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return cut[cut.find("\n") + 1 :]


def _tail(text: str, lines: int = 12, chars: int = 800) -> str:
    kept = "\n".join(text.strip().splitlines()[-lines:])
    return kept[-chars:]


def _unechoed(text: str) -> str:
    """``text`` without the lines of injected memory it quotes: they are stored already, as themselves."""
    return _ECHO.sub("", text)


def _relative(path: str, cwd: str | None) -> str:
    """A path inside the project as the project names it (``config/settings.toml``), others whole."""
    root = (cwd or "").rstrip("/")
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path


@dataclass(frozen=True, slots=True)
class _Origin:
    session_id: str
    source_event: str
    cwd: str | None = None


@dataclass(slots=True)
class Capture:
    """Turns one hook event into passages. ``get_state``/``set_state`` keep per-session capture state."""

    get_state: Callable[[str], Any]
    set_state: Callable[[str, Any], None]

    def passages(self, event: HookEvent) -> list[NewPassage]:
        name = event.hook_event_name
        base = _Origin(event.session_id, name, getattr(event, "cwd", None))
        if name == "UserPromptSubmit":
            prompt = clean(_unechoed(str(getattr(event, "prompt", "") or "")))
            if len(prompt) < 12:
                return []
            self.set_state("last_prompt", prompt[:500])
            return [
                NewPassage(
                    prompt,
                    kind=classify(prompt, "prompt"),
                    source="user prompt",
                    session_id=base.session_id,
                    source_event=base.source_event,
                )
            ]
        if name in ("Stop", "SubagentStop"):
            answer = clean(_unechoed(str(getattr(event, "last_assistant_message", "") or "")))
            if len(answer) < 20:
                return []
            context = str(self.get_state("last_prompt") or "")
            source = "final answer" if name == "Stop" else "subagent answer"
            return [
                NewPassage(
                    answer,
                    kind=classify(answer, "answer"),
                    source=source,
                    context=context,
                    session_id=base.session_id,
                    source_event=base.source_event,
                )
            ]
        if name in ("PostToolUse", "PostToolUseFailure"):
            tool = str(getattr(event, "tool_name", "") or "")
            tool_input = getattr(event, "tool_input", None) or {}
            if not isinstance(tool_input, dict):
                return []
            if tool in _EDIT_TOOLS and name == "PostToolUse":
                return self._edit(tool, tool_input, base)
            if tool == "Bash":
                failed = name == "PostToolUseFailure" or bool(
                    isinstance(getattr(event, "tool_response", None), dict)
                    and getattr(event, "tool_response", {}).get("interrupted")
                )
                output = _text(getattr(event, "error", None) if name == "PostToolUseFailure" else None) or _text(
                    getattr(event, "tool_response", None)
                )
                if failed and _answered_no(str(tool_input.get("command", "")), output):
                    return []  # a search that found nothing is not a failure to remember, nor one to fix
                return self._command(str(tool_input.get("command", "")), output, failed, base)
        return []

    # -- edits -----------------------------------------------------------------------------------------------
    def _edit(self, tool: str, tool_input: dict[str, Any], base: _Origin) -> list[NewPassage]:
        path = str(tool_input.get("file_path") or tool_input.get("notebook_path") or "")
        if not path:
            return []
        env, key = is_env_file(path), is_key_file(path)
        path = redact_path(_relative(path, base.cwd))  # a secret can be a file or folder name
        if tool == "Edit":
            body = compact_diff(str(tool_input.get("old_string", "")), str(tool_input.get("new_string", "")))
            summary = f"Edited {path}"
        elif tool == "MultiEdit":
            edits = tool_input.get("edits") or []
            body = "\n".join(
                compact_diff(str(e.get("old_string", "")), str(e.get("new_string", "")))
                for e in edits
                if isinstance(e, dict)
            )
            summary = f"Edited {path} ({len(edits)} changes)"
        elif tool == "Write":
            content = str(tool_input.get("content", ""))
            head = "\n".join(content.splitlines()[:15])
            summary = f"Wrote {path} ({len(content.splitlines())} lines)"
            body = head
        else:
            summary = f"Edited notebook {path}"
            body = str(tool_input.get("new_source", ""))[:800]
        if key:
            body = ""  # every line of a key is secret, not only the BEGIN/END block a pattern could see
            summary += " (a key file: content not stored)"
        text = clean(f"{summary}\n{body}".strip(), env_file=env)
        edits = list(self.get_state("edits_since_failure") or [])
        if self.get_state("last_failure"):
            edits.append(summary)
            self.set_state("edits_since_failure", edits[-10:])
        context = str(self.get_state("last_prompt") or "")
        return [
            NewPassage(
                text,
                kind="file_change",
                source=path,
                context=context,
                tags=(tool,),
                session_id=base.session_id,
                source_event=base.source_event,
            )
        ]

    # -- commands and test runs ------------------------------------------------------------------------------
    def _command(self, command: str, output: str, failed: bool, base: _Origin) -> list[NewPassage]:
        command = command.strip()
        if not command:
            return []
        words = [w for w in _SHELL_SEPARATORS.split(command) if w]
        env = any(is_env_file(w) for w in words) or dumps_environment(command)
        shown = clean(command, env_file=False)
        if prints_secret_variable(command):
            out = "(output not stored: the command uses a secret variable)"
        else:
            # Redact the whole output, then cut: a cut first can separate a secret from what marks it as one.
            out = _tail(clean(_recent(output), env_file=env, max_chars=None))
        is_test = bool(_TEST_COMMAND.search(command))
        context = str(self.get_state("last_prompt") or "")
        key = _command_key(command)
        passages: list[NewPassage] = []
        if failed:
            error = re.sub(r"\AExit code \d+\s*", "", out)  # Claude Code's first line: the status, not the error
            self.set_state("last_failure", {"key": key, "command": shown, "error": error[-400:]})
            self.set_state("edits_since_failure", [])
            kind = "test_run" if is_test else "command"
            text = f"Command failed: {shown}" + (f"\n{out}" if out else "")
            passages.append(
                NewPassage(
                    text,
                    kind=kind,
                    source=shown[:200],
                    context=context,
                    tags=("failed",),
                    session_id=base.session_id,
                    source_event=base.source_event,
                )
            )
            return passages
        failure = self.get_state("last_failure")
        if isinstance(failure, dict) and failure.get("key") == key:
            edits = list(self.get_state("edits_since_failure") or [])
            changes = ("; changes: " + ", ".join(edits)) if edits else ""
            error = _last_lines(str(failure.get("error", "")), 300)
            text = clean(f"Fixed: `{failure.get('command')}` failed with: {error}{changes}; then `{shown}` succeeded.")
            passages.append(
                NewPassage(
                    text,
                    kind="bug_fix",
                    source=shown[:200],
                    context=context,
                    tags=("fix",),
                    session_id=base.session_id,
                    source_event=base.source_event,
                )
            )
            self.set_state("last_failure", None)
            self.set_state("edits_since_failure", None)
        if is_test:
            summary = "\n".join(m.group(0).strip() for m in _TEST_SUMMARY.finditer(out))[-400:] or _tail(out, 3, 300)
            text = f"Test run: {shown}" + (f"\n{summary}" if summary else "")
            passages.append(
                NewPassage(
                    text,
                    kind="test_run",
                    source=shown[:200],
                    context=context,
                    session_id=base.session_id,
                    source_event=base.source_event,
                )
            )
        return passages
