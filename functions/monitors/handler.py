"""Monitors Lambda: schedule invocations and ingest events.

Thin by design. Two event shapes:

- EventBridge Scheduler's input, ``{"workspace": ..., "monitor_id": ...}``: run that monitor
  (``MonitorService.fire``; a deleted monitor is ignored, a paused one records a skipped run);
- an EventBridge event from the stack's bus (``source: stratum``, ``detail-type: job.succeeded`` or
  ``job.partial``, ``detail``: the event envelope): classify the final die maps of the job's wafers into
  ``wafer_patterns`` (``Runtime.on_published``), then run the workspace's on_ingest monitors for the lot.

Anything else is refused (ValueError): the async invoke's retry policy and DLQ keep it.

Environment (see ``stratum.settings``): STRATUM_BACKEND=aws, STRATUM_AWS__LAKE_BUCKET,
STRATUM_AWS__METADATA_TABLE, STRATUM_AWS__EVENT_BUS_NAME, STRATUM_MONITORS__*, POWERTOOLS_*.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stratum.events.eventbridge import event_from_eventbridge
from stratum.runtime import Runtime
from stratum.settings import get_settings

logger = Logger()
_state: dict[str, Any] = {}


def runtime() -> Runtime:
    if "rt" not in _state:
        _state["rt"] = Runtime.from_settings(get_settings())
    return _state["rt"]


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = runtime().monitors
    if isinstance(event, dict) and {"workspace", "monitor_id"} <= event.keys():
        run = svc.fire(str(event["workspace"]), str(event["monitor_id"]))
        if run is None:
            return {"runs": []}
        logger.info("monitor run", extra={"run_id": run.run_id, "status": run.status, "findings": run.findings})
        return {"runs": [{"run_id": run.run_id, "status": run.status, "findings": run.findings}]}
    if isinstance(event, dict) and event.get("source") == "stratum" and "detail" in event:
        runs = runtime().on_published(event_from_eventbridge(event))  # classify the wafers, then monitors
        return {"runs": [{"run_id": r.run_id, "status": r.status, "findings": r.findings} for r in runs]}
    raise ValueError("unrecognised event: expected {workspace, monitor_id} or a stratum job.* EventBridge event")
