"""Delivery: what the platform found reaches people and systems.

- ``inbox``: per-workspace notifications and their preferences (digest, mute hours, kinds);
- ``webhooks``: signed outbound webhooks, durable at-least-once (``signing``, ``guard``, ``worker``);
- ``inbound``: hooks a tester cell or MES calls to trigger actions;
- ``email``: SES on AWS, ``.eml`` files in ``<data-dir>/outbox/`` locally; digests per the prefs.

Delivery consumes the event port (``stratum.events``); ``DeliveryService.attach`` subscribes it to the
in-process bus, the delivery Lambda feeds it EventBridge events from SQS. Everything it keeps lives on the
metadata port under keys this package owns (``WS#<ws>#NTF``, ``WS#<ws>#WHK``, ``WS#<ws>#DLV``, ...).
"""

from stratum.delivery.service import DeliveryService

__all__ = ["DeliveryService"]
