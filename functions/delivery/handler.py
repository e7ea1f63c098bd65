"""Delivery Lambda: the event port's consumer on AWS.

Two triggers, one service (``stratum.delivery.DeliveryService``, the same the local worker uses):

- SQS (fed by an EventBridge rule on the Stratum bus): each record is an EventBridge envelope whose
  ``detail`` is an ``Event``; ``handle`` records it (inbox notification, one delivery per subscribed
  webhook) before any attempt. Then the due attempts run at once, so the first attempt follows the event
  within the invocation. A record that cannot be recorded fails alone (partial batch response) and SQS
  retries it, then parks it in the DLQ.
- an EventBridge schedule (every minute): due retries and email digests (``run_due``).

Environment: STRATUM_BACKEND=aws, STRATUM_AWS__METADATA_TABLE, STRATUM_AWS__DELIVERY_KMS_KEY_ID, POWERTOOLS_*.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from stratum.events.eventbridge import event_from_eventbridge
from stratum.runtime import Runtime
from stratum.settings import get_settings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_state: dict[str, Any] = {}
RESERVE_S = 15.0


def deadline(context: Any) -> float:
    """Stop claiming attempts when one more (at most the total timeout) could outlast the function."""
    left = context.get_remaining_time_in_millis() / 1000 if hasattr(context, "get_remaining_time_in_millis") else 60
    return time.monotonic() + left - get_settings().delivery.total_timeout_seconds - RESERVE_S


def runtime() -> Runtime:
    if "rt" not in _state:
        _state["rt"] = Runtime.from_settings(get_settings())
    return _state["rt"]


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    event = event_from_eventbridge(record.json_body)
    runtime().delivery.handle(event)
    metrics.add_metric(name="EventsRecorded", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        attempted = runtime().delivery.run_due(deadline(context))
        metrics.add_metric(name="AttemptsMade", unit=MetricUnit.Count, value=attempted)
        return {"attempted": attempted}
    result = process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    attempted = runtime().delivery.webhooks.run_due(deadline=deadline(context))
    metrics.add_metric(name="AttemptsMade", unit=MetricUnit.Count, value=attempted)
    return dict(result)
