"""The event port: what happened, published once, consumed by whoever subscribes.

Producers (ingest, monitors, delivery) publish ``Event``s through an ``EventPort``; they never know who
listens. Adapters: ``InProcessBus`` (embedded default: synchronous fan-out to subscribers inside the
process) and ``EventBridgeBus`` (AWS: ``PutEvents`` on the stack's bus; rules route to SQS consumers).
"""

from stratum.events.model import EVENT_KINDS, Event, new_event
from stratum.events.port import EventPort

__all__ = ["EVENT_KINDS", "Event", "EventPort", "new_event"]
