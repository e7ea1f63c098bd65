"""The event port's interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from stratum.events.model import Event


class EventPort(ABC):
    @abstractmethod
    def publish(self, event: Event) -> None:
        """Hand the event over for delivery to every consumer. Returns once the adapter has accepted it
        (in-process: every subscriber has run; EventBridge: ``PutEvents`` reported no failed entry).
        Raises on failure: a producer decides whether that fails its own work."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, clients)."""
