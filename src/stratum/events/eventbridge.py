"""AWS adapter: ``PutEvents`` on the stack's event bus. ``Source`` is ``stratum``, ``DetailType`` the
event kind, ``Detail`` the event's JSON; rules on the bus route kinds to their consumers (SQS queues)."""

from __future__ import annotations

from typing import Any

from stratum.events.model import Event
from stratum.events.port import EventPort

SOURCE = "stratum"


class EventPublishError(RuntimeError):
    pass


class EventBridgeBus(EventPort):
    def __init__(self, bus_name: str, region: str, *, endpoint_url: str | None = None, session: Any = None) -> None:
        import boto3

        self.bus_name = bus_name
        self._client = (session or boto3).client("events", region_name=region, endpoint_url=endpoint_url)

    def publish(self, event: Event) -> None:
        resp = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": event.kind,
                    "Detail": event.to_json(),
                    "EventBusName": self.bus_name,
                    "Time": event.occurred_at,
                }
            ]
        )
        if resp.get("FailedEntryCount"):
            entry = resp["Entries"][0]
            why = f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            raise EventPublishError(f"EventBridge refused event {event.id} ({event.kind}): {why}")


def event_from_eventbridge(envelope: dict[str, Any]) -> Event:
    """The ``Event`` inside an EventBridge envelope (as an SQS target receives it as its body)."""
    detail = envelope.get("detail")
    if isinstance(detail, str):
        return Event.from_json(detail)
    return Event.model_validate(detail)
