"""Run ultramax's model proxy on its own event loop in a background thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ultramax.routing.ledger import Ledger
from ultramax.routing.proxy import ProxyServer
from ultramax.routing.router import Router

__all__ = ["ProxyThread", "run_proxy"]


class ProxyThread:
    def __init__(self, router: Router, ledger: Ledger | None, upstream: str, **options: float) -> None:
        self._loop = asyncio.new_event_loop()
        self.server = ProxyServer(router, ledger, upstream, **options)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._loop.run_forever, name="ultramax-proxy", daemon=True)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def run_proxy(router: Router, ledger: Ledger | None, upstream: str, **options: float) -> Iterator[ProxyThread]:
    proxy = ProxyThread(router, ledger, upstream, **options)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
