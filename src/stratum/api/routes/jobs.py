"""Ingest jobs of the key's workspace."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from ..schemas import JobOut, Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["jobs"])
ERRORS = problem_responses(400, 401, 403, 404, 429)
Status = Literal["queued", "running", "succeeded", "partial", "failed", "duplicate"]


@router.get("/v1/jobs", response_model=Page[JobOut], responses=ERRORS, summary="List jobs, newest first")
def list_jobs(
    request: Request,
    status: Status | None = None,
    lot_id: str | None = Query(None, max_length=255),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(require("job_status", "analytics")),
) -> Page[JobOut]:
    rt = request.app.state.runtime
    jobs, nxt = rt.catalog.list_jobs(principal.workspace, status=status, lot_id=lot_id, limit=limit, cursor=cursor)
    return Page[JobOut](items=[JobOut.model_validate(j.public()) for j in jobs], next_cursor=nxt)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="One job")
def get_job(
    request: Request, job_id: str, principal: Principal = Depends(require("job_status", "analytics"))
) -> JobOut:
    job = request.app.state.runtime.catalog.get_job(principal.workspace, job_id)
    return JobOut.model_validate(job.public())
