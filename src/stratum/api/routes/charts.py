"""Charts: stacked map, bin Pareto, histogram, box plot, trend and gallery, as JSON (the numbers) or as the
PNG/SVG picture of exactly those numbers (stratum.analytics.charts)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from ..schemas import problem_responses
from ..security import Principal, require

router = APIRouter(tags=["charts"])
ANALYTICS = require("analytics", "analytics")
SNAP = Query(None, max_length=64, description="Pin the lot snapshot published by this job")
FORMAT = Query("json", description="json: the numbers; png or svg: the chart of them")
RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(400, 401, 403, 404, 429),
    200: {
        "content": {"application/json": {"schema": {"type": "object"}}, "image/png": {}, "image/svg+xml": {}},
        "description": "The chart's numbers as JSON, or the chart as PNG/SVG",
    },
}
Fmt = Literal["json", "png", "svg"]
TEST_NUM = Query(..., ge=0, le=4294967295)


def _answer(request: Request, data: dict, fmt: str, render) -> Any:
    if fmt == "json":
        return {k: v for k, v in data.items() if not k.startswith("_")}
    media = "image/png" if fmt == "png" else "image/svg+xml"
    return Response(
        render(data, fmt), media_type=media, headers=dict(getattr(request.state, "extra_headers", {}) or {})
    )


@router.get(
    "/v1/lots/{lot_id}/stacked-map",
    responses=RESPONSES,
    summary="Fail rate, a bin's share or a test's median per die position, stacked over wafers (and lots)",
)
def stacked_map(
    request: Request,
    lot_id: str,
    metric: Literal["fail", "bin", "median"] = "fail",
    lot_ids: list[str] | None = Query(None, description="Stack these lots too"),
    wafer_ids: list[str] | None = Query(None, description="Only these wafers"),
    bin_num: int | None = Query(None, ge=0, le=65535),
    bin_type: Literal["H", "S"] = "H",
    test_num: int | None = Query(None, ge=0, le=4294967295),
    test_name: str | None = Query(None, max_length=255),
    snapshot_job_id: str | None = SNAP,
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.stacked_map(
        principal.workspace,
        lot_id,
        metric=metric,
        lot_ids=lot_ids,
        wafer_ids=wafer_ids,
        bin_num=bin_num,
        bin_type=bin_type,
        test_num=test_num,
        test_name=test_name,
        snapshot_job_id=snapshot_job_id,
    )
    return _answer(request, data, format, svc.render_stacked_map)


@router.get(
    "/v1/lots/{lot_id}/bins/pareto",
    responses=RESPONSES,
    summary="Bin Pareto (hard or soft) of the lot, a wafer or a site, with the cumulative line",
)
def pareto(
    request: Request,
    lot_id: str,
    bin_type: Literal["H", "S"] = "H",
    wafer_id: str | None = Query(None, max_length=255),
    site_num: int | None = Query(None, ge=0, le=255),
    snapshot_job_id: str | None = SNAP,
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.pareto(
        principal.workspace,
        lot_id,
        bin_type=bin_type,
        wafer_id=wafer_id,
        site_num=site_num,
        snapshot_job_id=snapshot_job_id,
    )
    return _answer(request, data, format, svc.render_pareto)


@router.get(
    "/v1/lots/{lot_id}/tests/{test_num}/histogram",
    responses=RESPONSES,
    summary="Histogram of a test's results with limits, mean ± 3σ and Cpk; grouped by site or wafer on request",
)
def histogram(
    request: Request,
    lot_id: str,
    test_num: int,
    test_name: str | None = Query(None, max_length=255),
    wafer_id: str | None = Query(None, max_length=255),
    by: Literal["site", "wafer"] | None = None,
    bins: int = Query(40, ge=2, le=500),
    view: Literal["final", "first_pass", "all"] = "final",
    snapshot_job_id: str | None = SNAP,
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.histogram(
        principal.workspace,
        lot_id,
        test_num,
        test_name=test_name,
        wafer_id=wafer_id,
        by=by,
        bins=bins,
        view=view,
        snapshot_job_id=snapshot_job_id,
    )
    return _answer(request, data, format, svc.render_histogram)


@router.get(
    "/v1/lots/{lot_id}/tests/{test_num}/boxplot",
    responses=RESPONSES,
    summary="Box plot of a test's results by wafer or by site",
)
def boxplot(
    request: Request,
    lot_id: str,
    test_num: int,
    by: Literal["wafer", "site"] = "wafer",
    test_name: str | None = Query(None, max_length=255),
    view: Literal["final", "first_pass", "all"] = "final",
    snapshot_job_id: str | None = SNAP,
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.boxplot(
        principal.workspace, lot_id, test_num, by=by, test_name=test_name, view=view, snapshot_job_id=snapshot_job_id
    )
    return _answer(request, data, format, svc.render_boxplot)


@router.get(
    "/v1/tests/{test_num}/trend",
    responses=RESPONSES,
    summary="A test's wafer means across lots with control limits (mean of means ± 3σ)",
)
def trend(
    request: Request,
    test_num: int,
    test_name: str | None = Query(None, max_length=255),
    part_type: str | None = Query(None, max_length=255),
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.trend(principal.workspace, test_num, test_name=test_name, part_type=part_type)
    return _answer(request, data, format, svc.render_trend)


@router.get(
    "/v1/lots/{lot_id}/gallery",
    responses=RESPONSES,
    summary="Every wafer of a lot as a bin-map thumbnail with its yield, in one image",
)
def gallery(
    request: Request,
    lot_id: str,
    snapshot_job_id: str | None = SNAP,
    format: Fmt = FORMAT,
    principal: Principal = Depends(ANALYTICS),
):
    svc = request.app.state.charts
    data = svc.gallery(principal.workspace, lot_id, snapshot_job_id=snapshot_job_id)
    return _answer(request, data, format, svc.render_gallery)
