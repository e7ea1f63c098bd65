"""Ingest jobs of the key's workspace."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from .._fastapi import DeclaredRoute
from ..params import Cursor, JobId, Limit
from ..schemas import JobOut, Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["jobs"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 429)
Status = Literal["queued", "running", "succeeded", "partial", "failed", "duplicate"]


@router.get("/v1/jobs", response_model=Page[JobOut], responses=ERRORS, summary="List jobs, newest first")
def list_jobs(
    request: Request,
    status: Status | None = Query(None, description="Only jobs in this status"),
    lot_id: str | None = Query(None, max_length=255, description="Only jobs of this lot (exact lot id)"),
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(require("job_status", "analytics")),
) -> Page[JobOut]:
    """The workspace's ingest jobs, newest first, with their status, counts, warnings and errors."""
    rt = request.app.state.runtime
    jobs, nxt = rt.catalog.list_jobs(principal.workspace, status=status, lot_id=lot_id, limit=limit, cursor=cursor)
    return Page[JobOut](items=[JobOut.model_validate(j.public()) for j in jobs], next_cursor=nxt)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="One ingest job")
def get_job(
    request: Request, job_id: JobId, principal: Principal = Depends(require("job_status", "analytics"))
) -> JobOut:
    """One ingest job: poll it after an upload until its status is terminal (succeeded, partial, failed or
    duplicate). A succeeded job's `snapshot_jobs` lists the jobs of the lot snapshot it published."""
    job = request.app.state.runtime.catalog.get_job(principal.workspace, job_id)
    return JobOut.model_validate(job.public())
