"""Charts: stacked map, bin Pareto, histogram, box plot, trend and gallery, as JSON (the numbers) or as the
PNG/SVG picture of exactly those numbers (stratum.analytics.charts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from .._fastapi import DeclaredRoute
from ..params import BinType, LotId, SiteNum, SnapshotJobId, TestNameFilter, TestNum, ViewParam, WaferIdFilter
from ..schemas import binary, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["charts"], route_class=DeclaredRoute)
ANALYTICS = require("analytics", "analytics")
Fmt = Annotated[
    Literal["json", "png", "svg"], Query(description="`json` the chart's numbers; `png` or `svg` the chart of them")
]
SNAP_ID = "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"
TEST = {
    "test_num": 1030,
    "test_name": "IDD_STATIC",
    "test_type": "P",
    "units": "A",
    "lo_limit": 0.0,
    "hi_limit": 0.05,
}


def responses(json_description: str, example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The answers of a chart route: its numbers as JSON (described, with an example) or the chart as PNG/SVG."""
    return {
        **problem_responses(400, 401, 403, 404, 429),
        200: {
            "content": {
                "application/json": {"schema": {"type": "object", "description": json_description}, "example": example},
                "image/png": binary("format=png: the chart of exactly the JSON's numbers"),
                "image/svg+xml": binary("format=svg: the same chart as SVG"),
            },
            "description": "The chart's numbers as JSON, or the chart as PNG/SVG",
        },
    }


def _answer(request: Request, data: dict, fmt: str, render) -> Any:
    if fmt == "json":
        return {k: v for k, v in data.items() if not k.startswith("_")}
    media = "image/png" if fmt == "png" else "image/svg+xml"
    return Response(
        render(data, fmt), media_type=media, headers=dict(getattr(request.state, "extra_headers", {}) or {})
    )


@router.get(
    "/v1/lots/{lot_id}/stacked-map",
    responses=responses(
        "Columns per die position: x, y, n (dies stacked there), hits (fail/bin metrics) and value: the fail rate "
        "or the bin's share as a fraction 0-1 of n, or the median result in the test's units; with lot_ids, "
        "snapshot_job_ids per lot, the wafers stacked, and the test (median) or bin (bin) drawn",
        {
            "lot_ids": ["LOT42"],
            "snapshot_job_ids": {"LOT42": SNAP_ID},
            "metric": "fail",
            "wafers": [{"lot_id": "LOT42", "wafer_id": "W01"}, {"lot_id": "LOT42", "wafer_id": "W02"}],
            "x": [-1, 0, 1],
            "y": [4, 4, 4],
            "n": [2, 2, 2],
            "hits": [0, 1, 2],
            "value": [0.0, 0.5, 1.0],
        },
    ),
    summary="Fail rate, a bin's share or a test's median per die position, stacked over wafers (and lots)",
)
def stacked_map(
    request: Request,
    lot_id: LotId,
    metric: Literal["fail", "bin", "median"] = Query(
        "fail",
        description="`fail` the share of failing dies (0-1), `bin` the share of dies in bin_num (0-1), `median` "
        "the median result of test_num",
    ),
    lot_ids: list[str] | None = Query(None, description="Stack these lots too (their active snapshots)"),
    wafer_ids: list[str] | None = Query(None, description="Only these wafers"),
    bin_num: int | None = Query(None, ge=0, le=65535, description="metric=bin: the bin whose share is mapped"),
    bin_type: BinType = "H",
    test_num: int | None = Query(None, ge=0, le=4294967295, description="metric=median: the parametric test"),
    test_name: TestNameFilter = None,
    snapshot_job_id: SnapshotJobId = None,
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """Dies of the final view stacked by position (X, Y) over the lot's wafers, optionally over more lots and
    fewer wafers: per position, the fail rate, the share of one bin (fractions 0-1) or a test's median result.
    Systematic spatial problems show up where single wafers are noisy. `snapshot_job_id` pins a single lot."""
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
    responses=responses(
        "lot_id, snapshot_job_id, bin_type, scope (lot, wafer or site), wafer_id, site_num, total (parts in "
        "scope) and bins, most parts first: bin_num, bin_name, pass_fail, count, percent and cumulative_percent "
        "(percentages 0-100 of total)",
        {
            "lot_id": "LOT42",
            "snapshot_job_id": SNAP_ID,
            "bin_type": "H",
            "scope": "lot",
            "wafer_id": None,
            "site_num": None,
            "total": 5210,
            "bins": [
                {
                    "bin_num": 1,
                    "bin_name": "PASS",
                    "pass_fail": "P",
                    "count": 4846,
                    "percent": 93.01,
                    "cumulative_percent": 93.01,
                },
                {
                    "bin_num": 7,
                    "bin_name": "IDDQ",
                    "pass_fail": "F",
                    "count": 364,
                    "percent": 6.99,
                    "cumulative_percent": 100.0,
                },
            ],
        },
    ),
    summary="Bin Pareto (hard or soft) of the lot, a wafer or a site, with the cumulative line",
)
def pareto(
    request: Request,
    lot_id: LotId,
    bin_type: BinType = "H",
    wafer_id: WaferIdFilter = None,
    site_num: SiteNum = None,
    snapshot_job_id: SnapshotJobId = None,
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """Parts of the final view per bin, most first, with each bin's percentage (0-100) and the cumulative
    percentage; for the lot, one wafer, one site, or one site of one wafer."""
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
    responses=responses(
        "lot_id, snapshot_job_id, wafer_id, view, test (number, name, units, limits), by, edges (bins + 1 "
        "class boundaries in the test's units), groups ({group, n, counts per class}; one group `all` unless by "
        "is given), n, mean, sigma, minus_3sigma, plus_3sigma (the test's units) and cpk (null without limits)",
        {
            "lot_id": "LOT42",
            "snapshot_job_id": SNAP_ID,
            "wafer_id": None,
            "view": "final",
            "test": TEST,
            "by": None,
            "edges": [0.014, 0.026, 0.038, 0.05],
            "groups": [{"group": "all", "n": 5208, "counts": [3790, 1401, 17]}],
            "n": 5208,
            "mean": 0.02104,
            "sigma": 0.00311,
            "minus_3sigma": 0.01171,
            "plus_3sigma": 0.03037,
            "cpk": 2.255,
        },
    ),
    summary="Histogram of a test's results with limits, mean ± 3σ and Cpk; grouped by site or wafer on request",
)
def histogram(
    request: Request,
    lot_id: LotId,
    test_num: TestNum,
    test_name: TestNameFilter = None,
    wafer_id: WaferIdFilter = None,
    by: Literal["site", "wafer"] | None = Query(None, description="One series per site or per wafer; default: one"),
    bins: int = Query(40, ge=2, le=500, description="Number of classes (2-500)"),
    view: ViewParam = "final",
    snapshot_job_id: SnapshotJobId = None,
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """The distribution of a parametric test's valid results in the chosen view, in equal classes between the
    smallest and largest result, with the test's limits, mean ± 3 sigma and Cpk."""
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
    responses=responses(
        "lot_id, snapshot_job_id, view, test, by and groups: per wafer or site {group, n, min, q1, median, q3, "
        "max, mean} of the valid results, in the test's units",
        {
            "lot_id": "LOT42",
            "snapshot_job_id": SNAP_ID,
            "view": "final",
            "test": TEST,
            "by": "wafer",
            "groups": [
                {
                    "group": "W01",
                    "n": 5208,
                    "min": 0.01422,
                    "q1": 0.01893,
                    "median": 0.02101,
                    "q3": 0.02311,
                    "max": 0.05104,
                    "mean": 0.02104,
                }
            ],
        },
    ),
    summary="Box plot of a test's results by wafer or by site",
)
def boxplot(
    request: Request,
    lot_id: LotId,
    test_num: TestNum,
    by: Literal["wafer", "site"] = Query("wafer", description="One box per wafer or per test site"),
    test_name: TestNameFilter = None,
    view: ViewParam = "final",
    snapshot_job_id: SnapshotJobId = None,
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """Quartiles, median, min, max and mean of a parametric test's valid results per wafer or per site, in the
    chosen view, drawn against the test's limits."""
    svc = request.app.state.charts
    data = svc.boxplot(
        principal.workspace, lot_id, test_num, by=by, test_name=test_name, view=view, snapshot_job_id=snapshot_job_id
    )
    return _answer(request, data, format, svc.render_boxplot)


@router.get(
    "/v1/tests/{test_num}/trend",
    responses=responses(
        "test_num, test_name, units, part_type, points ({lot_id, wafer_id, n, mean} per wafer in time order), "
        "center (mean of the wafer means), sigma (of the wafer means), ucl and lcl (center ± 3 sigma), in the "
        "test's units",
        {
            "test_num": 1030,
            "test_name": "IDD_STATIC",
            "units": "A",
            "part_type": "XC7A35T",
            "points": [
                {"lot_id": "LOT41", "wafer_id": "W01", "n": 5208, "mean": 0.02088},
                {"lot_id": "LOT42", "wafer_id": "W01", "n": 5208, "mean": 0.02104},
            ],
            "center": 0.02096,
            "sigma": 0.00011,
            "ucl": 0.02129,
            "lcl": 0.02063,
        },
    ),
    summary="A test's wafer means across lots with control limits (mean of means ± 3σ)",
)
def trend(
    request: Request,
    test_num: TestNum,
    test_name: TestNameFilter = None,
    part_type: str | None = Query(
        None, max_length=255, description="Only lots of this product (MIR.PART_TYP, exact match)"
    ),
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """The mean of a parametric test's final valid results on every wafer of every lot in the workspace (each
    lot's active snapshot), in time order, with a centre line and ±3 sigma control limits of the wafer means."""
    svc = request.app.state.charts
    data = svc.trend(principal.workspace, test_num, test_name=test_name, part_type=part_type)
    return _answer(request, data, format, svc.render_trend)


@router.get(
    "/v1/lots/{lot_id}/gallery",
    responses=responses(
        "lot_id, snapshot_job_id and wafers: {wafer_id, dies, good, yield (a fraction 0-1)} per wafer",
        {
            "lot_id": "LOT42",
            "snapshot_job_id": SNAP_ID,
            "wafers": [
                {"wafer_id": "W01", "dies": 5210, "good": 4846, "yield": 0.9301},
                {"wafer_id": "W02", "dies": 5210, "good": 4766, "yield": 0.9148},
            ],
        },
    ),
    summary="Every wafer of a lot as a bin-map thumbnail with its yield, in one image",
)
def gallery(
    request: Request,
    lot_id: LotId,
    snapshot_job_id: SnapshotJobId = None,
    format: Fmt = "json",
    principal: Principal = Depends(ANALYTICS),
):
    """All wafers of the lot's final view side by side as hard-bin maps, each titled with its yield (the image
    shows it in percent); the JSON gives the dies, good dies and yield (a fraction 0-1) of every wafer."""
    svc = request.app.state.charts
    data = svc.gallery(principal.workspace, lot_id, snapshot_job_id=snapshot_job_id)
    return _answer(request, data, format, svc.render_gallery)
