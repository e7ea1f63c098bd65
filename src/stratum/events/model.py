"""The event envelope. Its JSON form is the contract between producers and consumers (and, on AWS,
the ``detail`` of the EventBridge event)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stratum.ids import ulid

#: every kind a producer may publish; consumers filter on these names
EVENT_KINDS: tuple[str, ...] = (
    "job.succeeded",
    "job.partial",
    "job.failed",
    "monitor.fired",
    "monitor.recovered",
    "monitor.failed",
    "notification.new",
    "ping",
)
#: kinds that are work orders between the platform's own services: published on the same port (so an AWS rule
#: routes them to their function's queue) but never notifications or webhook subscriptions
INTERNAL_KINDS: tuple[str, ...] = ("export.requested",)


class Event(BaseModel):
    """``id`` is stable for the life of the event (receivers deduplicate on it); ``subject`` names what
    the event is about (``lot_id``, ``wafer_id``, ``job_id``, ``monitor_id``, ...), ``data`` the rest."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    workspace: str
    occurred_at: datetime
    subject: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.model_validate_json(text)


def new_event(
    kind: str,
    workspace: str,
    *,
    subject: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """A new event with a fresh time-sortable id (``evt_<ulid>``) unless ``event_id`` is given (a producer
    that may publish the same fact twice passes a deterministic id, so consumers see one event)."""
    if kind not in EVENT_KINDS and kind not in INTERNAL_KINDS:
        raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_KINDS + INTERNAL_KINDS)}")
    return Event(
        id=event_id or f"evt_{ulid()}",
        kind=kind,
        workspace=workspace,
        occurred_at=occurred_at or datetime.now(UTC),
        subject=subject or {},
        data=data or {},
    )
