"""In-process adapter (embedded default): publish calls each matching subscriber synchronously, in
subscription order. A subscriber that raises is logged and skipped: one broken consumer never fails the
producer or starves the others (durable consumers, such as webhook delivery, record the event first)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from stratum.events.model import Event
from stratum.events.port import EventPort

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class InProcessBus(EventPort):
    def __init__(self) -> None:
        self._subs: list[tuple[frozenset[str] | None, Handler]] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``handler`` for every event whose kind is in ``kinds`` (all kinds when None). Returns a
        function that unsubscribes."""
        entry = (None if kinds is None else frozenset(kinds), handler)
        with self._lock:
            self._subs.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for kinds, handler in subs:
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                handler(event)
            except Exception:
                log.exception("event subscriber %r failed on %s %s", handler, event.kind, event.id)
