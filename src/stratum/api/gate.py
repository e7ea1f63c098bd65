"""A bound on blocking work the API runs at once (user SQL): it runs on a worker thread, never on the event
loop, and requests past the bound wait without holding a thread, so /v1/status and other routes are
answered meanwhile."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from stratum.errors import Unavailable

T = TypeVar("T")


class Gate:
    def __init__(self, what: str, concurrent: int, queue_seconds: float) -> None:
        self.what = what
        self.concurrent = concurrent
        self.queue_seconds = queue_seconds
        # made on first use, inside an event loop; one limiter per process (uvicorn runs one loop; Mangum on
        # Lambda serves one request at a time, so nothing ever waits across loops there)
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrent)
        try:
            with anyio.fail_after(self.queue_seconds):
                await self._limiter.acquire()
        except TimeoutError:
            err = Unavailable(
                f"{self.concurrent} {self.what} are running and this one waited {self.queue_seconds:g} s; retry later"
            )
            err.headers = {"Retry-After": str(max(1, math.ceil(self.queue_seconds)))}  # type: ignore[attr-defined]
            raise err from None
        try:
            return await anyio.to_thread.run_sync(fn, abandon_on_cancel=False)
        finally:
            self._limiter.release()
