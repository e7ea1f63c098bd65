"""Ingest Lambda: S3 ObjectCreated notifications on the drop bucket, delivered through SQS.

Thin by design: it decodes the event and hands each object to ``stratum.ingest.drop.DropProcessor``,
the same service the local watcher uses (it ingests the object, then moves it to ``processed/`` or
``failed/``). Partial batch failures (Powertools ``BatchProcessor``) make SQS redeliver only the records
that failed for a retryable reason; a bad STDF file is not retried, its job records the error.

A second event shape, ``{"task": "expire_uploads"}`` (the input of the stack's EventBridge schedule), runs
``UploadService.sweep``: presigned uploads that never arrived fail with ``upload_expired``.

Environment (see ``stratum.settings``): STRATUM_BACKEND=aws, STRATUM_AWS__DROP_BUCKET,
STRATUM_AWS__DROP_PREFIX, STRATUM_AWS__LAKE_BUCKET, STRATUM_AWS__METADATA_TABLE, POWERTOOLS_*.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from stratum.coldstart import loading

with loading():  # the init phase's imports without GC passes (stratum.coldstart)
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from stratum.ingest.drop import DropObject, DropProcessor, event_key
    from stratum.runtime import Runtime
    from stratum.settings import get_settings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
# A batch whose every record failed is reported record by record (SQS redelivers them) rather than
# raised: the retries are expected behaviour, not a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Stop reading this long before the function's end: aborting (deleting what the job wrote) and
# recording the failed job must finish before Lambda kills the process.
RESERVE_S = 60.0


EXPIRE_UPLOADS = "expire_uploads"


@cache
def runtime() -> Runtime:
    """One runtime per container, built on first use."""
    return Runtime.from_settings(get_settings())


def drop_processor() -> DropProcessor:
    return runtime().drop_processor


def deadline_of(lambda_context: LambdaContext | None) -> float | None:
    """When reading must stop (``time.monotonic()`` clock): the invocation's end less ``RESERVE_S``."""
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    return time.monotonic() + remaining() / 1000 - RESERVE_S if remaining else None


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """One SQS message. Powertools passes ``lambda_context`` because this signature declares it."""
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=1)
    body = record.json_body
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        logger.info("ignoring the S3 test event", extra={"bucket": body.get("Bucket")})
        return
    drop = drop_processor()
    bucket_expected = get_settings().aws.drop_bucket
    for r in S3Event(body).records:
        if not r.event_name.startswith("ObjectCreated"):
            logger.info("ignoring event %s", r.event_name)
            continue
        bucket = r.s3.bucket.name
        if bucket_expected and bucket != bucket_expected:
            logger.warning("ignoring an object of bucket %s (the drop bucket is %s)", bucket, bucket_expected)
            continue
        obj = r.s3.get_object
        o = DropObject(
            bucket=bucket,
            key=event_key(obj.key),
            version_id=obj.version_id,
            etag=(obj.etag or "").strip('"') or None,
            size=obj.size,
        )
        res = drop.handle(o, deadline=deadline_of(lambda_context))
        job = res.job
        if job is None:
            continue
        metrics.add_metric(name=f"Jobs{job.status.capitalize()}", unit=MetricUnit.Count, value=1)
        if job.size:
            metrics.add_metric(name="BytesIngested", unit=MetricUnit.Bytes, value=job.size)
        logger.info(
            "job finished",
            extra={
                "job_id": job.job_id,
                "status": job.status,
                "lot_id": job.lot_id,
                "key": o.key,
                "moved_to": res.moved_to,
                "ran": res.ran,
                "error": job.error.message if job.error else None,
            },
        )


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    if isinstance(event, dict) and event.get("task") == EXPIRE_UPLOADS:
        expired = runtime().uploads.sweep()
        n = sum(len(v) for v in expired.values())
        metrics.add_metric(name="UploadsExpired", unit=MetricUnit.Count, value=n)
        logger.info("expired presigned uploads", extra={"expired": expired})
        return {"expired": expired}
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
