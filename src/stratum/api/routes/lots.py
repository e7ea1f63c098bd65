"""Lots and their analytics. Every route accepts ``snapshot_job_id`` to pin a published snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from stratum.analytics.estimators import ESTIMATORS
from stratum.cursor import InvalidCursor, decode_cursor, encode_cursor
from stratum.errors import BadRequest

from ..schemas import (
    BinsOut,
    CapabilityOut,
    CapabilityRow,
    LotDetail,
    LotSummary,
    Page,
    ResultsPage,
    TestList,
    WaferList,
    WaferMapOut,
    problem_responses,
)
from ..security import Principal, require

router = APIRouter(tags=["lots"])
ERRORS = problem_responses(400, 401, 403, 404, 429)
View = Literal["final", "first_pass", "all"]
SNAP = Query(None, max_length=64, description="Pin the lot snapshot published by this job (reproducible numbers)")
ANALYTICS = require("analytics", "analytics")


def _iso_to_epoch(v: str | None, name: str) -> int | None:
    if v is None:
        return None
    try:
        return int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time") from None


@router.get(
    "/v1/lots",
    response_model=Page[LotSummary],
    responses=ERRORS,
    summary="Search lots by id, part type, program and start date",
)
def list_lots(
    request: Request,
    q: str | None = Query(None, max_length=255, description="Substring of the lot id (case-insensitive)"),
    part_type: str | None = Query(None, max_length=255, description="Substring of the part type (case-insensitive)"),
    program: str | None = Query(None, max_length=255, description="Substring of the test program (case-insensitive)"),
    start_from: str | None = Query(None, description="ISO date: lots started at or after"),
    start_to: str | None = Query(None, description="ISO date: lots started at or before"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ANALYTICS),
) -> Page[LotSummary]:
    svc = request.app.state.analytics
    items, nxt = svc.list_lots(
        principal.workspace,
        q=q,
        part_type=part_type,
        program=program,
        start_from=_iso_to_epoch(start_from, "start_from"),
        start_to=_iso_to_epoch(start_to, "start_to"),
        limit=limit,
        cursor=cursor,
    )
    return Page[LotSummary](items=[LotSummary(**i) for i in items], next_cursor=nxt)


@router.get(
    "/v1/lots/{lot_id}",
    response_model=LotDetail,
    responses=ERRORS,
    summary="Lot metadata, wafers with yields, the active job and all jobs",
)
def get_lot(
    request: Request, lot_id: str, snapshot_job_id: str | None = SNAP, principal: Principal = Depends(ANALYTICS)
):
    return request.app.state.analytics.lot(principal.workspace, lot_id, snapshot_job_id)


@router.get("/v1/lots/{lot_id}/wafers", response_model=WaferList, responses=ERRORS, summary="Wafers with yields")
def wafers(
    request: Request, lot_id: str, snapshot_job_id: str | None = SNAP, principal: Principal = Depends(ANALYTICS)
):
    return {"lot_id": lot_id, "items": request.app.state.analytics.wafers(principal.workspace, lot_id, snapshot_job_id)}


@router.get(
    "/v1/lots/{lot_id}/wafers/{wafer_id}/map",
    response_model=WaferMapOut,
    responses={
        **ERRORS,
        200: {
            "content": {"application/json": {}, "image/png": {}, "image/svg+xml": {}},
            "description": "The die map as JSON, or rendered as PNG/SVG",
        },
    },
    summary="Die map: x, y, bins, pass/fail and optionally a parametric value per die; JSON, PNG or SVG",
)
def wafer_map(
    request: Request,
    lot_id: str,
    wafer_id: str,
    snapshot_job_id: str | None = SNAP,
    test_num: int | None = Query(
        None,
        ge=0,
        le=4294967295,
        description="Add this test's result per die as `value` (heat map); for a functional (FTR) or "
        "multi-pin (MPR) test, 1 when the die passed it (every pin) and 0 when it failed (pass/fail map)",
    ),
    test_name: str | None = Query(None, max_length=255, description="Disambiguates a reused test number"),
    view: View = "final",
    bin_type: Literal["H", "S"] = "H",
    format: Literal["json", "png", "svg"] = "json",
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.analytics
    where = {"snapshot_job_id": snapshot_job_id, "test_num": test_num, "test_name": test_name, "view": view}
    if format in ("png", "svg"):
        body = svc.wafer_map_image(principal.workspace, lot_id, wafer_id, fmt=format, bin_type=bin_type, **where)
        media = "image/png" if format == "png" else "image/svg+xml"
        return Response(body, media_type=media, headers=dict(getattr(request.state, "extra_headers", {}) or {}))
    data = svc.wafer_map(principal.workspace, lot_id, wafer_id, **where)
    return {
        "lot_id": data.lot_id,
        "wafer_id": data.wafer_id,
        "snapshot_job_id": data.job_id,
        "view": view,
        "orientation": data.orientation,
        "counts": data.counts,
        "bins": {t: {str(n): b for n, b in table.items()} for t, table in data.bins.items()},
        "test": data.test,
        "dies": data.dies,
    }


@router.get(
    "/v1/lots/{lot_id}/tests",
    response_model=TestList,
    responses=ERRORS,
    summary="Tests with units, limits, counts, mean, sigma and fail counts",
)
def tests(
    request: Request,
    lot_id: str,
    snapshot_job_id: str | None = SNAP,
    wafer_id: str | None = Query(None, max_length=255),
    view: View = "final",
    principal: Principal = Depends(ANALYTICS),
):
    items = request.app.state.analytics.tests(
        principal.workspace, lot_id, snapshot_job_id=snapshot_job_id, wafer_id=wafer_id, view=view
    )
    return {"lot_id": lot_id, "wafer_id": wafer_id, "view": view, "items": items}


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        off = decode_cursor(cursor)["o"]
    except (InvalidCursor, KeyError):
        raise BadRequest("invalid cursor") from None
    # only the integers _cursor() makes: a forged huge offset would overflow DuckDB's OFFSET (a 500)
    if type(off) is not int or not 0 <= off < 2**62:
        raise BadRequest("invalid cursor")
    return off


def _cursor(offset: int) -> str:
    return encode_cursor({"o": offset})


@router.get(
    "/v1/lots/{lot_id}/tests/{test_num}/results",
    response_model=ResultsPage,
    responses=ERRORS,
    summary="Per-die results of one test, filterable by wafer and site: parametric (PTR) values, functional "
    "(FTR) pass/fail with its vector fields, multi-pin (MPR) one row per pin",
)
def test_results(
    request: Request,
    lot_id: str,
    test_num: int,
    snapshot_job_id: str | None = SNAP,
    test_name: str | None = Query(None, max_length=255),
    wafer_id: str | None = Query(None, max_length=255),
    site_num: int | None = Query(None, ge=0, le=255),
    view: View = "final",
    limit: int = Query(1000, ge=1, le=10000),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ANALYTICS),
):
    if not 0 <= test_num <= 4294967295:
        raise BadRequest("test_num must be between 0 and 4294967295")
    off = _offset(cursor)
    test, rows, more = request.app.state.analytics.test_results(
        principal.workspace,
        lot_id,
        test_num,
        test_name=test_name,
        snapshot_job_id=snapshot_job_id,
        wafer_id=wafer_id,
        site_num=site_num,
        view=view,
        limit=limit,
        offset=off,
    )
    return {"lot_id": lot_id, "test": test, "items": rows, "next_cursor": _cursor(off + len(rows)) if more else None}


@router.get(
    "/v1/lots/{lot_id}/capability",
    response_model=CapabilityOut,
    responses=ERRORS,
    summary="Cp, Cpk, Cpl, Cpu, Pp, Ppk per test for the stacked lot (subgroup = wafer) or one wafer",
)
def capability(
    request: Request,
    lot_id: str,
    snapshot_job_id: str | None = SNAP,
    wafer_id: str | None = Query(None, max_length=255),
    test_num: int | None = Query(None, ge=0, le=4294967295),
    source: Literal["exact", "auto"] = Query("exact", description="auto may use TSR summaries and says so"),
    limits: Literal["test", "spec"] = "test",
    unbias: bool = False,
    estimator: Literal[ESTIMATORS] = "pooled",  # type: ignore[valid-type]
    principal: Principal = Depends(ANALYTICS),
):
    body = request.app.state.analytics.capability(
        principal.workspace,
        lot_id,
        snapshot_job_id=snapshot_job_id,
        wafer_id=wafer_id,
        source=source,
        limits=limits,
        unbias=unbias,
        estimator=estimator,
        test_num=test_num,
    )
    return capability_response(body, getattr(request.state, "extra_headers", None))


_CAPABILITY_FIELDS = tuple(CapabilityOut.model_fields)
_CAPABILITY_ROW_FIELDS = tuple(CapabilityRow.model_fields)


def capability_response(body: dict, headers: dict | None) -> JSONResponse:
    """``body`` as ``CapabilityOut`` serialises it (its fields, in order), without validating every row: the
    service builds each value with the model's type, and validating hundreds of rows cost more than computing
    them (issue 16). A test keeps this equal to the model's own serialisation."""
    out = {k: body.get(k) for k in _CAPABILITY_FIELDS}
    out["tests"] = [{k: row.get(k) for k in _CAPABILITY_ROW_FIELDS} for row in body["tests"]]
    return JSONResponse(out, headers=dict(headers or {}))


@router.get(
    "/v1/lots/{lot_id}/bins",
    response_model=BinsOut,
    responses=ERRORS,
    summary="Hard and soft bin summary by lot, wafer or site, with first-pass and final yield",
)
def bins(
    request: Request,
    lot_id: str,
    snapshot_job_id: str | None = SNAP,
    by: Literal["lot", "wafer", "site"] = "lot",
    bin_type: Literal["H", "S"] | None = None,
    wafer_id: str | None = Query(None, max_length=255),
    principal: Principal = Depends(ANALYTICS),
):
    return request.app.state.analytics.bins(
        principal.workspace, lot_id, snapshot_job_id=snapshot_job_id, by=by, bin_type=bin_type, wafer_id=wafer_id
    )
