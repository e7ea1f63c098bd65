"""Lots and their analytics. Every route accepts ``snapshot_job_id`` to pin a published snapshot."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from stratum.analytics.estimators import ESTIMATORS
from stratum.cursor import InvalidCursor, decode_cursor, encode_cursor
from stratum.errors import BadRequest

from .._fastapi import DeclaredRoute
from ..params import (
    BinType,
    Cursor,
    Limit,
    LotId,
    SiteNum,
    SnapshotJobId,
    TestNameFilter,
    TestNum,
    ViewParam,
    WaferId,
    WaferIdFilter,
)
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
    binary,
    problem_responses,
)
from ..security import Principal, require

router = APIRouter(tags=["lots"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 429)
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
    start_from: str | None = Query(
        None, description="ISO 8601 date or date-time (UTC unless it has an offset): lots started at or after it"
    ),
    start_to: str | None = Query(
        None, description="ISO 8601 date or date-time (UTC unless it has an offset): lots started at or before it"
    ),
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(ANALYTICS),
) -> Page[LotSummary]:
    """The workspace's lots in lot id order, each with the counts and yields of its active snapshot: wafer and
    part counts, final yield and first-pass yield (fractions 0-1). Filters combine (AND)."""
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
    request: Request, lot_id: LotId, snapshot_job_id: SnapshotJobId = None, principal: Principal = Depends(ANALYTICS)
):
    """One lot as of its active snapshot (or the pinned one): MIR metadata of the newest file, part counts and
    yields (final view, retests resolved by the lot's retest policy; first pass before any retest), every wafer,
    the snapshot's files, every ingest job of the lot, notes attached by inbound webhooks and the files' warnings."""
    return request.app.state.analytics.lot(principal.workspace, lot_id, snapshot_job_id)


@router.get("/v1/lots/{lot_id}/wafers", response_model=WaferList, responses=ERRORS, summary="Wafers with yields")
def wafers(
    request: Request, lot_id: LotId, snapshot_job_id: SnapshotJobId = None, principal: Principal = Depends(ANALYTICS)
):
    """Every wafer of the lot with its die counts, final and first-pass yield (fractions 0-1) and retest count,
    counted from the PRR records (WRR summary counts are not used)."""
    return {"lot_id": lot_id, "items": request.app.state.analytics.wafers(principal.workspace, lot_id, snapshot_job_id)}


@router.get(
    "/v1/lots/{lot_id}/wafers/{wafer_id}/map",
    response_model=WaferMapOut,
    responses={
        **ERRORS,
        200: {
            "content": {
                "application/json": {},
                "image/png": binary("format=png: the bin map (or heat map with test_num), legend and header"),
                "image/svg+xml": binary("format=svg: the same picture as SVG"),
            },
            "description": "The die map as JSON, or rendered as PNG/SVG",
        },
    },
    summary="Die map: x, y, bins, pass/fail and optionally a parametric value per die; JSON, PNG or SVG",
)
def wafer_map(
    request: Request,
    lot_id: LotId,
    wafer_id: WaferId,
    snapshot_job_id: SnapshotJobId = None,
    test_num: int | None = Query(
        None,
        ge=0,
        le=4294967295,
        description="Add this test's result per die as `value` (heat map); for a functional (FTR) or "
        "multi-pin (MPR) test, 1 when the die passed it (every pin) and 0 when it failed (pass/fail map)",
    ),
    test_name: TestNameFilter = None,
    view: ViewParam = "final",
    bin_type: BinType = "H",
    format: Literal["json", "png", "svg"] = Query(
        "json", description="`json` the die columns; `png` or `svg` the rendered map"
    ),
    principal: Principal = Depends(ANALYTICS),
):
    """Every die of the wafer with coordinates: X/Y from the PRR, hard and soft bin, pass/fail, part id and site,
    in the chosen view. With `test_num`, each die also carries `value`: its result of that test (a heat map).
    The orientation (POS_X/POS_Y, flat, die size) comes from the newest file's WCR record and says when it is
    assumed. Bin names and pass/fail come from HBR/SBR, else from the parts' PRR flags (`pass_fail_source`).
    PNG/SVG draw the map round using the WCR die size (or the inferred aspect), coloured by `bin_type` bins
    or, with `test_num`, by value."""
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
    lot_id: LotId,
    snapshot_job_id: SnapshotJobId = None,
    wafer_id: WaferIdFilter = None,
    view: ViewParam = "final",
    principal: Principal = Depends(ANALYTICS),
):
    """Every test of the lot (parametric PTR, multi-pin MPR, functional FTR) with its units and limits (from the
    newest file), and over the chosen view: executions, valid results, mean, sample sigma, min, max, fails and
    fail rate (a fraction 0-1). Values are in the test's base units (results are stored unscaled; `res_scal`
    gives the display exponent)."""
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
    lot_id: LotId,
    test_num: TestNum,
    snapshot_job_id: SnapshotJobId = None,
    test_name: TestNameFilter = None,
    wafer_id: WaferIdFilter = None,
    site_num: SiteNum = None,
    view: ViewParam = "final",
    limit: int = Query(1000, ge=1, le=10000, description="Rows per page (1-10000)"),
    cursor: Cursor = None,
    principal: Principal = Depends(ANALYTICS),
):
    """One row per execution of the test on a part in the chosen view (MPR: one row per pin), with the die's
    coordinates, site, bins and retest flags: the result in base units with the limits in effect (PTR, MPR),
    or pass/fail with the vector fields (FTR). Pages of `limit` rows; follow `next_cursor`."""
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
    lot_id: LotId,
    snapshot_job_id: SnapshotJobId = None,
    wafer_id: WaferIdFilter = None,
    test_num: int | None = Query(None, ge=0, le=4294967295, description="Only this test number; default: every test"),
    source: Literal["exact", "auto"] = Query(
        "exact",
        description="`exact` computes from the results; `auto` may use the files' TSR summary sums (for the whole "
        "lot only, when every file has them) and says so per row",
    ),
    limits: Literal["test", "spec"] = Query(
        "test", description="Limits for the indices: `test` (LO_LIMIT/HI_LIMIT) or `spec` (LO_SPEC/HI_SPEC)"
    ),
    unbias: bool = Query(False, description="Divide both sigmas by c4 (bias correction for small samples)"),
    estimator: Literal[ESTIMATORS] = Query(  # type: ignore[valid-type]
        "pooled",
        description="Within-wafer sigma estimator: `pooled` (pooled SD), or the JMP/Minitab-compatible "
        "jmp_ranges, jmp_sbar, minitab_rbar, minitab_sbar, minitab_default",
    ),
    principal: Principal = Depends(ANALYTICS),
):
    """Process capability of every parametric test over the final view of valid results. For the stacked lot the
    subgroup is the wafer: Cp/Cpl/Cpu/Cpk use the within-wafer sigma, Pp/Ppl/Ppu/Ppk the overall sample sigma
    (N-1); for one wafer the two agree. One-sided limits give Cp/Pp null and Cpk/Ppk the side that exists; sigma
    0 or fewer than 2 values give null (never infinity)."""
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


# rendered bodies by the service's answer object (kept here so its id is not reused while cached), newest last;
# the answers they keep alive take ~2.5x their JSON in memory, so the bound is 8 MB of JSON (~30 MB in all)
_RENDERED: OrderedDict[int, tuple[dict, bytes]] = OrderedDict()
_RENDERED_MAX_BYTES = 8 * 2**20
_rendered_lock = threading.Lock()
_rendered_bytes = 0


def capability_response(body: dict, headers: dict | None) -> Response:
    """``body`` as ``CapabilityOut`` serialises it (its fields, in order), without validating every row: the
    service builds each value with the model's type, and validating hundreds of rows cost more than computing
    them (issue 16). A test keeps this equal to the model's own serialisation. The service answers a repeated
    request on an immutable snapshot with the same object, so its JSON is rendered once (a 364-test lot: ~170 KB,
    2-3 ms of ``json.dumps``, most of a warm call)."""
    global _rendered_bytes
    with _rendered_lock:
        hit = _RENDERED.get(id(body))
        if hit is not None and hit[0] is body:
            _RENDERED.move_to_end(id(body))
            return Response(hit[1], media_type="application/json", headers=dict(headers or {}))
    out = {k: body.get(k) for k in _CAPABILITY_FIELDS}
    out["tests"] = [{k: row.get(k) for k in _CAPABILITY_ROW_FIELDS} for row in body["tests"]]
    rendered = JSONResponse(out).body
    with _rendered_lock:
        old = _RENDERED.pop(id(body), None)
        _rendered_bytes -= len(old[1]) if old is not None else 0
        _RENDERED[id(body)] = (body, bytes(rendered))
        _rendered_bytes += len(rendered)
        while _rendered_bytes > _RENDERED_MAX_BYTES and len(_RENDERED) > 1:
            _rendered_bytes -= len(_RENDERED.popitem(last=False)[1][1])
    return Response(bytes(rendered), media_type="application/json", headers=dict(headers or {}))


@router.get(
    "/v1/lots/{lot_id}/bins",
    response_model=BinsOut,
    response_model_exclude_unset=True,
    responses=ERRORS,
    summary="Hard and soft bin summary by lot, wafer or site, with first-pass and final yield",
)
def bins(
    request: Request,
    lot_id: LotId,
    snapshot_job_id: SnapshotJobId = None,
    by: Literal["lot", "wafer", "site"] = Query("lot", description="One group per lot, per wafer or per test site"),
    bin_type: Literal["H", "S"] | None = Query(None, description="Only hard (`H`) or soft (`S`) bins; default: both"),
    wafer_id: WaferIdFilter = None,
    principal: Principal = Depends(ANALYTICS),
):
    """Per group (the lot, each wafer or each site) and bin: dies/parts in the bin after retests and at first
    pass, with `percent` and `first_pass_percent` as percentages 0-100 of the group's parts; bin names and
    pass/fail from HBR/SBR. The `yield` rows give each group's final and first-pass yield as fractions 0-1.
    Counts come from PRRs; the HBR/SBR summary count is shown beside them (by=lot) as a cross-check only."""
    return request.app.state.analytics.bins(
        principal.workspace, lot_id, snapshot_job_id=snapshot_job_id, by=by, bin_type=bin_type, wafer_id=wafer_id
    )
