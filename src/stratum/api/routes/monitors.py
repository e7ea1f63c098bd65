"""Monitors of the key's workspace: manage (admin), list and read runs (read/full/admin), run now and
backtest (full/admin), preview schedule expressions. Each route is one call of the monitor service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ConfigDict, Field

from stratum.monitors.model import (
    D_DESCRIPTION,
    D_LABEL,
    D_NOTIFY,
    D_RULE,
    D_SCOPE,
    D_STATE,
    D_TRIGGER,
    Finding,
    MonitorIn,
    MonitorPatch,
    MonitorScope,
    RuleSpec,
    RunRecord,
    Trigger,
)

from .._fastapi import DeclaredRoute
from ..params import Cursor, Limit, MonitorId, RunId
from ..schemas import ApiModel, Page, ok, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["monitors"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 409, 429)
RunStatus = Literal["ok", "fired", "failed", "skipped"]


MONITOR_EXAMPLE: dict[str, Any] = {
    "monitor_id": "mon_01JD8ZZ0Q1W2E3R4T5Y6U7I8OP",
    "label": "WS1 yield under 90 %",
    "description": None,
    "rule": {"kind": "yield_below", "params": {"limit": 0.9}},
    "scope": {"lot_id": None, "part_type": "XC7A35T", "program": None, "tester": None},
    "trigger": {"schedule": None, "on_ingest": True},
    "notify": ["inbox:default"],
    "state": "active",
    "created_at": "2026-12-01T09:00:00Z",
    "updated_at": "2026-12-01T09:00:00Z",
    "rule_version": 1,
}


class MonitorOut(ApiModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MONITOR_EXAMPLE]})
    monitor_id: str = Field(description="Monitor id (`mon_` + a ULID)")
    label: str = Field(description=D_LABEL)
    description: str | None = Field(description=D_DESCRIPTION)
    rule: RuleSpec = Field(description=D_RULE)
    scope: MonitorScope = Field(description=D_SCOPE)
    trigger: Trigger = Field(description=D_TRIGGER)
    notify: list[str] = Field(description=D_NOTIFY)
    state: Literal["active", "paused"] = Field(description=D_STATE)
    created_at: datetime = Field(description="When it was created (ISO 8601, UTC)")
    updated_at: datetime = Field(description="When it was last changed (ISO 8601, UTC)")
    rule_version: int = Field(description="Starts at 1; each change of the rule adds 1 (findings record it)")


class RunNow(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "run_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "status": "fired",
                    "findings_preview": [
                        {
                            "finding_id": "fnd_3b8c0e1f2a4d6c8e0a1b3c5d7e",
                            "subject": {"lot_id": "LOT42", "wafer_id": "W07"},
                            "values": {"yield": 0.842, "parts": 5210, "limit": 0.9, "view": "final"},
                            "message": "final yield of W07 is 84.20% (limit 90.00%)",
                        }
                    ],
                    "latency_ms": 211.0,
                    "findings": 1,
                    "recoveries": 0,
                    "error": None,
                }
            ]
        }
    )
    run_id: str = Field(description="Run id (GET /v1/monitors/runs/{run_id})")
    status: RunStatus = Field(description="`ok` nothing fired, `fired` subjects fired, `failed` see error")
    findings_preview: list[dict[str, Any]] = Field(
        description="Up to 20 firing subjects: {finding_id, subject, values, message}"
    )
    latency_ms: float = Field(description="Duration of the run, milliseconds")
    findings: int = Field(..., description="New findings recorded by this run (already-recorded ones are not repeated)")
    recoveries: int = Field(description="Subjects that recovered")
    error: str | None = Field(default=None, description="Why the run failed; null otherwise")


class CronPreview(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"valid": True, "next": ["2026-12-07T06:00:00+00:00", "2026-12-08T06:00:00+00:00"]}]
        }
    )
    valid: bool = Field(description="Always true in a 200 answer (an invalid expression answers 400 saying why)")
    next: list[str] = Field(..., description="ISO 8601 fire times with their UTC offset")


def _svc(request: Request):
    return request.app.state.runtime.monitors


def _out(m) -> MonitorOut:
    return MonitorOut.model_validate(m.public())


@router.get("/v1/monitors", response_model=Page[MonitorOut], responses=ERRORS, summary="List monitors")
def list_monitors(
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[MonitorOut]:
    """The workspace's monitors with their rule, scope, trigger, channels and state."""
    items, nxt = _svc(request).list(principal.workspace, limit=limit, cursor=cursor)
    return Page[MonitorOut](items=[_out(m) for m in items], next_cursor=nxt)


@router.post("/v1/monitors", response_model=MonitorOut, status_code=201, responses=ERRORS, summary="Create a monitor")
def create_monitor(
    request: Request, body: MonitorIn, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    """A monitor: a rule (kind and parameters, checked against the kind), the lots it looks at, when it runs (a
    schedule expression or every ingest) and where findings go. Needs the admin scope."""
    return _out(_svc(request).create(principal.workspace, body))


@router.get(
    "/v1/monitors/cron-preview",
    response_model=CronPreview,
    responses=ERRORS,
    summary="The next fire times of a schedule expression (EventBridge Scheduler semantics)",
)
def cron_preview(
    request: Request,
    expression: str = Query(
        ...,
        max_length=256,
        examples=["cron(0 6 ? * MON-FRI *)"],
        description="cron(minutes hours day-of-month month day-of-week year), rate(value unit) or at(...)",
    ),
    timezone: str = Query("UTC", max_length=64, description="IANA time zone the expression is read in"),
    count: int = Query(5, ge=1, description="How many fire times (1-50, the server's bound)"),
    after: datetime | None = Query(None, description="ISO 8601; default now"),
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> CronPreview:
    """Check a schedule expression and list its next fire times, as EventBridge Scheduler will fire them (cron
    fields, `?` for day-of-month or day-of-week, time zone and daylight-saving rules). 400 says what is wrong."""
    del principal
    return CronPreview(valid=True, next=_svc(request).cron_preview(expression, timezone, count, after))


@router.get("/v1/monitors/runs/{run_id}", response_model=RunRecord, responses=ERRORS, summary="One monitor run")
def get_run(
    request: Request, run_id: RunId, principal: Principal = Depends(require("monitor_read", "analytics"))
) -> RunRecord:
    """One run of a monitor: trigger, status, the lots and snapshots it read, counts and ids of its findings."""
    return _svc(request).get_run(principal.workspace, run_id)


@router.get("/v1/monitors/{monitor_id}", response_model=MonitorOut, responses=ERRORS, summary="One monitor")
def get_monitor(
    request: Request, monitor_id: MonitorId, principal: Principal = Depends(require("monitor_read", "analytics"))
) -> MonitorOut:
    """One monitor."""
    return _out(_svc(request).get(principal.workspace, monitor_id))


@router.patch("/v1/monitors/{monitor_id}", response_model=MonitorOut, responses=ERRORS, summary="Change a monitor")
def patch_monitor(
    request: Request,
    monitor_id: MonitorId,
    body: MonitorPatch,
    principal: Principal = Depends(require("admin", "analytics")),
) -> MonitorOut:
    """Change the fields given (others stay). A changed rule adds 1 to rule_version and clears the firing state,
    so subjects fire anew under the new rule. Needs the admin scope."""
    return _out(_svc(request).patch(principal.workspace, monitor_id, body))


@router.delete("/v1/monitors/{monitor_id}", status_code=204, responses=ERRORS, summary="Delete a monitor")
def delete_monitor(
    request: Request, monitor_id: MonitorId, principal: Principal = Depends(require("admin", "analytics"))
) -> Response:
    """Delete the monitor and its schedule (204). Needs the admin scope."""
    _svc(request).delete(principal.workspace, monitor_id)
    return Response(status_code=204)


@router.post("/v1/monitors/{monitor_id}/pause", response_model=MonitorOut, responses=ERRORS, summary="Pause a monitor")
def pause_monitor(
    request: Request, monitor_id: MonitorId, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    """Stop the monitor's triggers (scheduled and ingest runs are skipped; manual runs still work)."""
    return _out(_svc(request).set_state(principal.workspace, monitor_id, "paused"))


@router.post(
    "/v1/monitors/{monitor_id}/resume", response_model=MonitorOut, responses=ERRORS, summary="Resume a monitor"
)
def resume_monitor(
    request: Request, monitor_id: MonitorId, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    """Make a paused monitor active again."""
    return _out(_svc(request).set_state(principal.workspace, monitor_id, "active"))


@router.post("/v1/monitors/{monitor_id}/run", response_model=RunNow, responses=ERRORS, summary="Run now (synchronous)")
def run_monitor(
    request: Request, monitor_id: MonitorId, principal: Principal = Depends(require("monitor_run", "analytics"))
) -> RunNow:
    """Evaluate the rule now over the active snapshots of the lots in scope, record findings and notify as a
    scheduled run would, and answer when done with a preview of what fired."""
    run, preview = _svc(request).run(principal.workspace, monitor_id)
    return RunNow(
        run_id=run.run_id,
        status=run.status,
        findings_preview=preview,
        latency_ms=run.latency_ms or 0.0,
        findings=run.findings,
        recoveries=run.recoveries,
        error=run.error,
    )


@router.get(
    "/v1/monitors/{monitor_id}/runs", response_model=Page[RunRecord], responses=ERRORS, summary="Runs, newest first"
)
def list_runs(
    request: Request,
    monitor_id: MonitorId,
    status: RunStatus | None = Query(None, description="Only runs with this status"),
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[RunRecord]:
    """The monitor's runs, newest first."""
    items, nxt = _svc(request).runs(principal.workspace, monitor_id, status=status, limit=limit, cursor=cursor)
    return Page[RunRecord](items=items, next_cursor=nxt)


@router.get(
    "/v1/monitors/{monitor_id}/findings",
    response_model=Page[Finding],
    responses=ERRORS,
    summary="Findings, newest first",
)
def list_findings(
    request: Request,
    monitor_id: MonitorId,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[Finding]:
    """What the monitor found, newest first: each subject that fired or recovered, with the values and the
    snapshots that reproduce it."""
    items, nxt = _svc(request).findings(principal.workspace, monitor_id, limit=limit, cursor=cursor)
    return Page[Finding](items=items, next_cursor=nxt)


@router.post(
    "/v1/monitors/{monitor_id}/backtest",
    responses={
        **ERRORS,
        **ok(
            {
                "monitor_id": "mon_01JD8ZZ0Q1W2E3R4T5Y6U7I8OP",
                "rule": "yield_below",
                "rule_version": 1,
                "from": "2026-11-01T00:00:00+00:00",
                "to": "2026-12-01T00:00:00+00:00",
                "snapshots_evaluated": 14,
                "snapshots_fired": 2,
                "findings": 3,
                "findings_by_lot": {"LOT40": 1, "LOT42": 2},
                "snapshots": [
                    {
                        "snapshot_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                        "lot_id": "LOT42",
                        "published_at": "2026-11-30T15:02:19+00:00",
                        "fired": [
                            {
                                "subject": {"lot_id": "LOT42", "wafer_id": "W07"},
                                "values": {"yield": 0.842, "parts": 5210, "limit": 0.9, "view": "final"},
                                "message": "final yield of W07 is 84.20% (limit 90.00%)",
                            }
                        ],
                        "evaluated_subjects": 25,
                    }
                ],
                "latency_ms": 812.4,
            },
            "What the rule would have found: per snapshot published in the window, the subjects that fire (values "
            "as the rule computes them; yields as fractions 0-1), with totals per lot",
        ),
    },
    summary="Evaluate the rule over the snapshots published in a past window, without recording or notifying",
)
def backtest(
    request: Request,
    monitor_id: MonitorId,
    start: datetime = Query(..., alias="from", description="Start of the window (ISO 8601), by publish time"),
    end: datetime = Query(..., alias="to", description="End of the window (ISO 8601); after `from`"),
    principal: Principal = Depends(require("monitor_run", "analytics")),
) -> dict[str, Any]:
    """Try a rule on history: evaluate it on every lot snapshot published between `from` and `to` (at most
    500 snapshots), and report what would have fired. Nothing is recorded and nobody is notified."""
    return _svc(request).backtest(principal.workspace, monitor_id, start, end)
