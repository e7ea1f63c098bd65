"""Exports Lambda: runs the export jobs the API queues (``POST /v1/exports``).

The API records the export and publishes ``export.requested`` on the event port (EventBridge); a rule puts it
on this function's SQS queue (DLQ after a few receives, alarmed). Each record is an EventBridge envelope whose
``detail`` is the ``Event``; ``ExportService.handle_event`` runs the export (the same service ``stratum serve``
runs in process): DuckDB writes the file under /tmp (ephemeral storage) and it is uploaded to the lake bucket's
``workspaces/<ws>/exports/`` prefix. A failed export is recorded as failed, not retried; a record fails (and SQS
redelivers it) only when the service itself could not run, e.g. the metadata table was unreachable.

Environment: STRATUM_BACKEND=aws, STRATUM_AWS__LAKE_BUCKET, STRATUM_AWS__METADATA_TABLE,
STRATUM_EXPORTS__TIMEOUT_SECONDS (below the function's timeout), STRATUM_EXPORTS__DUCKDB_*, POWERTOOLS_*.
"""

from __future__ import annotations

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


def runtime() -> Runtime:
    """One runtime per container, built on first use."""
    if "rt" not in _state:
        _state["rt"] = Runtime.from_settings(get_settings())
    return _state["rt"]


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    event = event_from_eventbridge(record.json_body)
    rec = runtime().exports.handle_event(event)
    if rec is None:
        logger.info("nothing to run", extra={"event_id": event.id, "kind": event.kind})
        return
    metrics.add_metric(name=f"Exports{rec['status'].capitalize()}", unit=MetricUnit.Count, value=1)
    if rec["status"] == "succeeded":
        metrics.add_metric(name="ExportBytes", unit=MetricUnit.Bytes, value=rec["bytes"])
        metrics.add_metric(name="ExportRows", unit=MetricUnit.Count, value=rec["rows"])
    logger.info(
        "export finished",
        extra={
            "export_id": rec["export_id"],
            "workspace": rec["workspace"],
            "status": rec["status"],
            "rows": rec.get("rows"),
            "bytes": rec.get("bytes"),
            "elapsed_ms": rec.get("elapsed_ms"),
            "error": (rec.get("error") or {}).get("code"),
        },
    )


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
