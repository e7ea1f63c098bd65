"""The local delivery worker (inside ``stratum serve``): polls the metadata store for due deliveries
and attempts them on a small thread pool. State lives in the store only, so stopping (or killing) the
process loses nothing: the next worker finds the same items due (a claimed item after its lease)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from .webhooks import WebhookService

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(self, hooks: WebhookService, *, interval: float, threads: int, on_tick=None) -> None:
        self.hooks = hooks
        self.interval = interval
        self.threads = threads
        self.on_tick = on_tick  # extra periodic work (email digests)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.hooks.wake = self.wake
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="stratum-delivery")
        self._thread = threading.Thread(target=self._run, name="stratum-delivery-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def tick(self) -> int:
        """One pass: attempt every due delivery (concurrently); returns how many were attempted."""
        due = self.hooks.due()
        if not due:
            return 0
        assert self._pool is not None
        futures = [self._pool.submit(self.hooks.run_one, ws, dlv) for ws, dlv in due]
        wait(futures)
        return sum(1 for f in futures if f.exception() is None and f.result() is not None)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                n = self.tick()
                if self.on_tick is not None:
                    self.on_tick()
            except Exception:
                log.exception("delivery worker pass failed")
                n = 0
            if n == 0:  # a full batch may mean more are due: look again at once
                self._wake.wait(self.interval)
