"""The proxy's side of prewarm hints: score a hinted prompt on a worker thread, and tell its request.

Why, and the daemon's side: ``ultramax.prewarm``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ultramax.routing.analyzer import analyze_prompt, typed_text

__all__ = ["PromptScorer"]

log = logging.getLogger("ultramax.proxy")


class PromptScorer:
    """The proxy's side: scores hinted prompts on one worker thread, and tells a request whose prompt was
    scored ahead (``claim``). Used from the proxy's event loop only."""

    WAIT_LIMIT = 0.25
    """The longest a request waits for a scoring in flight before it scores on its own."""
    MAX_PENDING = 4
    """Scorings in flight at most: one person types one prompt at a time; a flood of hints is dropped, so it can
    neither queue work without end nor hold requests past ``WAIT_LIMIT``."""

    def __init__(self, *, sentence_embedding: bool, remember: int = 64) -> None:
        self.sentence_embedding = sentence_embedding
        self.remember = remember
        self.hints = 0
        self.dropped = 0
        self.claimed = 0
        self._pool: ThreadPoolExecutor | None = None
        self._scoring: dict[str, asyncio.Future[Any]] = {}
        self._ready: OrderedDict[str, float] = OrderedDict()  # prompt -> when its estimate was ready (monotonic)

    def hint(self, prompt: str) -> None:
        """Start scoring ``prompt`` (as the request will carry it) unless it is scored or being scored."""
        self.hints += 1
        prompt = typed_text(prompt)
        if not prompt or prompt in self._ready or prompt in self._scoring:
            return
        if len(self._scoring) >= self.MAX_PENDING:
            self.dropped += 1
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ultramax-prewarm")
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._score, prompt)
        self._scoring[prompt] = future
        future.add_done_callback(lambda f: self._done(prompt, f))

    def _score(self, prompt: str) -> None:
        # Claude Code's hook sent it, so its request will be Claude Code's: score it as the router will
        analyze_prompt(prompt, sentence_embedding=self.sentence_embedding, claude_code=True)

    def _done(self, prompt: str, future: asyncio.Future[Any]) -> None:
        self._scoring.pop(prompt, None)
        if future.cancelled():
            return
        if (exc := future.exception()) is not None:
            log.warning("scoring a prompt ahead failed (%s); its request will score it itself", exc)
            return
        self._ready[prompt] = time.monotonic()
        while len(self._ready) > self.remember:
            self._ready.popitem(last=False)

    async def settle(self) -> None:
        """Wait (a little at most) for scorings in flight, so a request does not score its prompt twice."""
        if self._scoring:
            await asyncio.wait(list(self._scoring.values()), timeout=self.WAIT_LIMIT)

    def claim(self, prompt: str, arrived: float) -> str:
        """A reason to log if ``prompt`` was scored ahead (once per hint), else ""; ``arrived``: when its
        request came (monotonic)."""
        ready = self._ready.pop(prompt, None)
        if ready is None:
            return ""
        self.claimed += 1
        lead = (arrived - ready) * 1000
        if lead >= 0:
            return f"prompt scored ahead from the UserPromptSubmit hook ({lead:.0f} ms before its request)"
        return f"prompt scored ahead from the UserPromptSubmit hook (its request waited {-lead:.1f} ms for it)"

    def close(self) -> None:
        for future in self._scoring.values():
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
