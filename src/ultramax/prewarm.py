"""Scoring a prompt before its request: the UserPromptSubmit hook tells the proxy what was typed.

Claude Code runs UserPromptSubmit hooks after a prompt is typed and before it sends the turn's first request.
A new prompt is the one request the proxy cannot answer from its caches: the tier model may run the sentence
embedding on it (~3-5 ms on two cores). So the daemon, as it handles that hook, posts the prompt to the proxy
(``POST /ultramax/v1/prewarm``), and the proxy scores it on a worker thread while the hook's other stages and
Claude Code itself are still busy; when the request comes, its estimate is already cached.

The prompt goes only to the user's own proxy on loopback, which Claude Code is about to send it through anyway;
the proxy keeps it in memory with the analysis caches and never logs or stores it. It is a hint, never a
dependency: the estimate is a pure function of the prompt, so scoring it early cannot change where a request
goes; a proxy that is not running, not announced, or slow costs the hook nothing (the post happens on a
background thread, and a refused connection silences the sender for a while).

Standard library only: the hook path imports it. The proxy's side is ``ultramax.routing.prewarm``.

How the daemon finds the proxy: ``ultramax proxy`` writes its address to ``~/.claude/ultramax/proxy.json``
while it runs (``announce_proxy``) and removes it when it stops.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ultramax.fsutil import atomic_write_text
from ultramax.paths import Paths

__all__ = [
    "MAX_PROMPT_CHARS",
    "PREWARM_PATH",
    "PrewarmSender",
    "announce_proxy",
    "announced_proxy",
    "is_loopback_host",
    "parse_hint",
    "proxy_file",
    "withdraw_proxy",
]

log = logging.getLogger("ultramax.prewarm")

PREWARM_PATH = "/ultramax/v1/prewarm"
MAX_PROMPT_CHARS = 20_000
"""The analyzer reads no more than this of a prompt; the hint carries no more either."""
RETRY_AFTER = 30.0
"""Seconds the sender stays quiet after the proxy could not be reached."""


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1), bracketed or not."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_file(paths: Paths) -> Path:
    return paths.home / "proxy.json"


def announce_proxy(paths: Paths, base_url: str) -> Path:
    """Record where the running proxy listens, for the daemon's prewarm hints."""
    paths.ensure_home()
    target = proxy_file(paths)
    atomic_write_text(target, json.dumps({"url": base_url, "pid": os.getpid()}) + "\n", mode=0o600)
    return target


def withdraw_proxy(paths: Paths, base_url: str) -> None:
    """Remove the announcement if it is still this proxy's (another proxy may have started since). It is
    compared as written, not as ``announced_proxy`` reads it: a proxy on a non-loopback address announces an
    address the daemon ignores, and must still take it away."""
    try:
        data = json.loads(proxy_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("url") == base_url:
        proxy_file(paths).unlink(missing_ok=True)


def announced_proxy(paths: Paths) -> str | None:
    """The announced proxy's base URL, or None (no file, unreadable, or not a loopback http URL: the prompt
    would leave the machine, so such an address is ignored)."""
    try:
        data = json.loads(proxy_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not is_loopback_host(parts.hostname) or port is None:
        return None
    return url


class PrewarmSender:
    """Posts prompts to the announced proxy from one background thread; ``submit`` never blocks or raises."""

    def __init__(self, paths: Paths, *, timeout: float = 0.5, retry_after: float = RETRY_AFTER) -> None:
        self.paths = paths
        self.timeout = timeout
        self.retry_after = retry_after
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=8)  # (proxy URL, prompt)
        self._quiet_until = 0.0
        self._quiet_url = ""  # the address that failed: a proxy announced since is tried at once
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._delivered = threading.Condition(self._lock)

    def submit(self, prompt: str) -> bool:
        """Queue ``prompt`` for the proxy; False if it was dropped (nothing announced, quiet, or a backlog)."""
        prompt = prompt.strip()[:MAX_PROMPT_CHARS]
        url = announced_proxy(self.paths) if prompt else None
        if url is None or self._quiet(url):
            return False
        try:
            self._queue.put_nowait((url, prompt))
        except queue.Full:  # a proxy that keeps us waiting: hints are worthless once their request has gone
            return False
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ultramax-prewarm", daemon=True)
                self._thread.start()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued prompt was posted or given up on (for tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        with self._delivered:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._delivered.wait(left)
        return True

    def _run(self) -> None:
        while True:
            try:
                url, prompt = self._queue.get(timeout=60)
            except queue.Empty:
                with self._lock:  # idle: exit, unless a prompt arrived just now (its submit saw this thread)
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._post(url, prompt)
            finally:
                with self._delivered:
                    self._queue.task_done()
                    self._delivered.notify_all()

    def _quiet(self, url: str) -> bool:
        """True when the proxy at ``url`` failed within ``retry_after``."""
        return url == self._quiet_url and time.monotonic() < self._quiet_until

    def _fail(self, url: str) -> None:
        self.failed += 1
        self._quiet_url, self._quiet_until = url, time.monotonic() + self.retry_after

    def _post(self, url: str, prompt: str) -> None:
        if self._quiet(url):  # it failed since this prompt was queued
            return
        import http.client  # here: its import costs ~20 ms, and hook processes that never post should not pay it

        parts = urlsplit(url)
        body = json.dumps({"prompt": prompt}).encode()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        try:
            conn.request("POST", PREWARM_PATH, body=body, headers={"Content-Type": "application/json"})
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            self._fail(url)
            log.info("the proxy at %s did not take a prewarm hint (%s); quiet for %.0f s", url, exc, self.retry_after)
            return
        finally:
            conn.close()
        if status == 202:
            self.sent += 1
        else:  # an older proxy, or something else on that port: not worth asking again soon
            self._fail(url)


def parse_hint(body: bytes) -> str:  # the proxy's reading of what ``PrewarmSender`` posts
    """The prompt in a prewarm hint's body; ValueError with the reason if it is not one."""
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON ({exc})") from exc
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError('expected {"prompt": "<the text typed>"}')
    return prompt[:MAX_PROMPT_CHARS]
