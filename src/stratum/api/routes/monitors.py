"""Monitors of the key's workspace: manage (admin), list and read runs (read/full/admin), run now and
backtest (full/admin), preview schedule expressions. Each route is one call of the monitor service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from stratum.monitors.model import Finding, MonitorIn, MonitorPatch, MonitorScope, RuleSpec, RunRecord, Trigger

from ..schemas import ApiModel, Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["monitors"])
ERRORS = problem_responses(400, 401, 403, 404, 409, 429)
RunStatus = Literal["ok", "fired", "failed", "skipped"]


class MonitorOut(ApiModel):
    monitor_id: str
    label: str
    description: str | None
    rule: RuleSpec
    scope: MonitorScope
    trigger: Trigger
    notify: list[str]
    state: Literal["active", "paused"]
    created_at: datetime
    updated_at: datetime
    rule_version: int


class RunNow(ApiModel):
    run_id: str
    status: RunStatus
    findings_preview: list[dict[str, Any]]
    latency_ms: float
    findings: int = Field(..., description="New findings recorded by this run (already-recorded ones are not repeated)")
    recoveries: int
    error: str | None = None


class CronPreview(ApiModel):
    valid: bool
    next: list[str] = Field(..., description="ISO 8601 fire times with their UTC offset")


def _svc(request: Request):
    return request.app.state.runtime.monitors


def _out(m) -> MonitorOut:
    return MonitorOut.model_validate(m.public())


@router.get("/v1/monitors", response_model=Page[MonitorOut], responses=ERRORS, summary="List monitors")
def list_monitors(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[MonitorOut]:
    items, nxt = _svc(request).list(principal.workspace, limit=limit, cursor=cursor)
    return Page[MonitorOut](items=[_out(m) for m in items], next_cursor=nxt)


@router.post("/v1/monitors", response_model=MonitorOut, status_code=201, responses=ERRORS, summary="Create a monitor")
def create_monitor(
    request: Request, body: MonitorIn, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    return _out(_svc(request).create(principal.workspace, body))


@router.get(
    "/v1/monitors/cron-preview",
    response_model=CronPreview,
    responses=ERRORS,
    summary="The next fire times of a schedule expression (EventBridge Scheduler semantics)",
)
def cron_preview(
    request: Request,
    expression: str = Query(..., max_length=256, examples=["cron(0 6 ? * MON-FRI *)"]),
    timezone: str = Query("UTC", max_length=64),
    count: int = Query(5, ge=1),
    after: datetime | None = Query(None, description="ISO 8601; default now"),
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> CronPreview:
    del principal
    return CronPreview(valid=True, next=_svc(request).cron_preview(expression, timezone, count, after))


@router.get("/v1/monitors/runs/{run_id}", response_model=RunRecord, responses=ERRORS, summary="One run")
def get_run(
    request: Request, run_id: str, principal: Principal = Depends(require("monitor_read", "analytics"))
) -> RunRecord:
    return _svc(request).get_run(principal.workspace, run_id)


@router.get("/v1/monitors/{monitor_id}", response_model=MonitorOut, responses=ERRORS, summary="One monitor")
def get_monitor(
    request: Request, monitor_id: str, principal: Principal = Depends(require("monitor_read", "analytics"))
) -> MonitorOut:
    return _out(_svc(request).get(principal.workspace, monitor_id))


@router.patch("/v1/monitors/{monitor_id}", response_model=MonitorOut, responses=ERRORS, summary="Change a monitor")
def patch_monitor(
    request: Request, monitor_id: str, body: MonitorPatch, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    return _out(_svc(request).patch(principal.workspace, monitor_id, body))


@router.delete("/v1/monitors/{monitor_id}", status_code=204, responses=ERRORS, summary="Delete a monitor")
def delete_monitor(
    request: Request, monitor_id: str, principal: Principal = Depends(require("admin", "analytics"))
) -> Response:
    _svc(request).delete(principal.workspace, monitor_id)
    return Response(status_code=204)


@router.post("/v1/monitors/{monitor_id}/pause", response_model=MonitorOut, responses=ERRORS, summary="Pause")
def pause_monitor(
    request: Request, monitor_id: str, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    return _out(_svc(request).set_state(principal.workspace, monitor_id, "paused"))


@router.post("/v1/monitors/{monitor_id}/resume", response_model=MonitorOut, responses=ERRORS, summary="Resume")
def resume_monitor(
    request: Request, monitor_id: str, principal: Principal = Depends(require("admin", "analytics"))
) -> MonitorOut:
    return _out(_svc(request).set_state(principal.workspace, monitor_id, "active"))


@router.post("/v1/monitors/{monitor_id}/run", response_model=RunNow, responses=ERRORS, summary="Run now (synchronous)")
def run_monitor(
    request: Request, monitor_id: str, principal: Principal = Depends(require("monitor_run", "analytics"))
) -> RunNow:
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
    monitor_id: str,
    status: RunStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[RunRecord]:
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
    monitor_id: str,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(require("monitor_read", "analytics")),
) -> Page[Finding]:
    items, nxt = _svc(request).findings(principal.workspace, monitor_id, limit=limit, cursor=cursor)
    return Page[Finding](items=items, next_cursor=nxt)


@router.post(
    "/v1/monitors/{monitor_id}/backtest",
    responses=ERRORS,
    summary="Evaluate the rule over the snapshots published in a past window, without recording or notifying",
)
def backtest(
    request: Request,
    monitor_id: str,
    start: datetime = Query(..., alias="from"),
    end: datetime = Query(..., alias="to"),
    principal: Principal = Depends(require("monitor_run", "analytics")),
) -> dict[str, Any]:
    return _svc(request).backtest(principal.workspace, monitor_id, start, end)
