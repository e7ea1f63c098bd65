"""Wafer-map pattern classification (Wafertune-compatible shape) and the pattern taxonomy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.openapi.models import Example

from .._fastapi import DeclaredRoute
from ..params import Limit
from ..schemas import BatchOut, ClassifyOut, Page, PatternClassOut, UsageOut, binary, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["patterns"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 413, 422, 429, 503)

CLASSIFY_EXAMPLES: dict[str, Example] = {
    "stdf": {
        "summary": "base64 STDF (optionally gzip'd); wafer_id picks a wafer by WAFER_ID or LOT_WAFER",
        "value": {"wafer_id": "LOT42_W03", "map_data": "<base64 STDF>", "format": "stdf"},
    },
    "dies": {
        "summary": "a die list",
        "value": {"wafer_id": "W03", "dies": [{"x": 3, "y": -7, "pass": True, "hard_bin": 1, "site": 2}]},
    },
    "grid": {"summary": "WM-811K grid: 0 off-wafer, 1 pass, 2 fail", "value": {"wafer_id": "W03", "grid": [[0, 1, 2]]}},
    "lake": {
        "summary": "a wafer already in the lake (the result is stored)",
        "value": {"lot_id": "LOT42", "wafer_id": "W03", "snapshot_job_id": "job_..."},
    },
}


@router.post(
    "/v1/classify",
    response_model=ClassifyOut,
    responses=ERRORS,
    summary="Classify the spatial fail patterns of one wafer map",
    description=(
        "One body form: base64 STDF (`map_data`, optionally gzip'd; 422 with the parser's message when it cannot "
        "be read), a die list, a WM-811K grid, or a lake wafer (`lot_id`, `wafer_id`, optional `snapshot_job_id`), "
        "whose result is stored and shown by the SQL view `wafer_patterns`. Bounds (server settings): a 32 MiB "
        "body (413), 4 classification requests at once per server, others wait up to 10 s (then 503 with "
        "Retry-After); the key's requests per minute and monthly classifications (429 with Retry-After)."
    ),
)
async def classify(
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        openapi_examples=CLASSIFY_EXAMPLES,
        description="One map: `map_data` (base64 STDF, optionally gzip'd, with `format: stdf`), `dies` (a list of "
        "{x, y, pass, hard_bin?, site?}), `grid` (rows of 0 off-wafer, 1 pass, 2 fail), or `lot_id` + `wafer_id` "
        "(+ `snapshot_job_id`) of a wafer in the lake",
    ),
    principal: Principal = Depends(require("classify", "classify")),
) -> dict:
    """Find the spatial fail patterns of one wafer map (edge ring, centre, scratch, cluster, ...), each with a
    calibrated confidence (0-1) and an explanation (summary, features, the region's dies). Each call counts
    against the key's monthly classification quota (429 when used up). A lake wafer's result is also stored
    with its snapshot."""
    svc = request.app.state.patterns
    return await request.app.state.classify_gate.run(lambda: svc.classify(principal.workspace, body, key=principal))


@router.post(
    "/v1/batch",
    response_model=BatchOut,
    responses=ERRORS,
    summary="Classify up to 100 maps (any classify body each), or every wafer of a lot ({lot_id})",
    description=(
        "Results in request order; a map that fails gives `{wafer_id, error}` with its problem object and never "
        "fails the batch. The whole batch is taken from the key's monthly quota up front (429 when it does not "
        "fit, nothing taken). More maps than the key's tier allows (pilot 10, production 100): 413. Lake wafers "
        "(`{lot_id}` or lake items) are stored as with POST /v1/classify. Same body and concurrency bounds."
    ),
)
async def batch(
    request: Request,
    body: dict[str, Any] = Body(
        ...,
        openapi_examples={
            "maps": {"summary": "several maps", "value": {"maps": [{"wafer_id": "W01", "grid": [[0, 1, 2]]}]}},
            "lot": {"summary": "every wafer of a lot in the lake", "value": {"lot_id": "LOT42"}},
        },
        description="`maps`: a list of classify bodies; or `lot_id` (+ `snapshot_job_id`) for every wafer of a lot",
    ),
    principal: Principal = Depends(require("batch", "classify")),
) -> dict:
    """Classify many maps in one call: the results come in request order, and a map that cannot be classified
    is an item with its error instead of failing the batch. Each map counts against the classification quota."""
    svc = request.app.state.patterns
    return await request.app.state.classify_gate.run(lambda: svc.batch(principal.workspace, body, key=principal))


@router.get(
    "/v1/patterns",
    response_model=Page[PatternClassOut],
    responses=ERRORS,
    summary="The pattern taxonomy: every class the classifier can report",
)
def list_patterns(
    request: Request,
    family: str | None = Query(None, max_length=64, description="Only classes of this family (e.g. edge_loc)"),
    limit: Limit = 50,
    cursor: str | None = Query(
        None, max_length=255, description="The previous page's `next_cursor`; omit for the first page"
    ),
    _: Principal = Depends(require("read_patterns", "analytics")),
) -> Page[PatternClassOut]:
    """Every pattern class the classifier can report (`family/location/severity[/refinement]`), with what it
    looks like, likely process causes and a link to an example map."""
    items, nxt = request.app.state.patterns.list_patterns(family=family, limit=limit, cursor=cursor)
    return Page[PatternClassOut](items=[PatternClassOut(**i) for i in items], next_cursor=nxt)


CLASS_ID = Path(..., max_length=128, description="e.g. edge_loc/edge/high/ne")


@router.get(
    "/v1/patterns/{class_id:path}/example.png",
    responses={
        **ERRORS,
        200: {
            "content": {"image/png": binary("A synthetic wafer map showing the class (PNG)")},
            "description": "example wafer map",
        },
    },
    response_class=Response,
    summary="An example map of the class, drawn by the synthetic generator",
)
def pattern_example(
    request: Request, class_id: str = CLASS_ID, _: Principal = Depends(require("read_patterns", "analytics"))
) -> Response:
    """A wafer map of the class drawn by the synthetic generator the classifier is evaluated on (cacheable)."""
    png = request.app.state.patterns.example_png(class_id)
    return Response(png, media_type="image/png", headers={"cache-control": "public, max-age=86400"})


@router.get(
    "/v1/patterns/{class_id:path}",
    response_model=PatternClassOut,
    responses=ERRORS,
    summary="One pattern class",
)
def get_pattern(
    request: Request, class_id: str = CLASS_ID, _: Principal = Depends(require("read_patterns", "analytics"))
) -> PatternClassOut:
    """One class of the taxonomy by its id."""
    return PatternClassOut(**request.app.state.patterns.get_pattern(class_id))


@router.get("/v1/usage", response_model=UsageOut, responses=ERRORS, summary="Requests and classifications, with quota")
def usage(
    request: Request,
    from_: str | None = Query(None, alias="from", max_length=10, description="first day, YYYY-MM-DD (UTC)"),
    to: str | None = Query(None, max_length=10, description="last day, YYYY-MM-DD (UTC)"),
    group_by: str = Query(
        "day", pattern="^(day|route|key)$", description="Group the counts by `day`, `route` or `key`"
    ),
    principal: Principal = Depends(require("manage", "analytics")),
) -> UsageOut:
    """Requests and classifications of the workspace's keys between two days (UTC), grouped, with every key's
    monthly classification quota, use and reset time."""
    return UsageOut(**request.app.state.usage_service.report(principal.workspace, from_, to, group_by))


@router.get(
    "/v1/usage/export.csv",
    responses={
        **ERRORS,
        200: {
            "content": {
                "text/csv": binary("CSV with a header line: day,key_id,route,requests,classifications (one row each)")
            },
            "description": "day,key_id,route,requests,classifications",
        },
    },
    response_class=Response,
    summary="Usage per day, key and route as CSV",
)
def usage_csv(
    request: Request,
    from_: str | None = Query(None, alias="from", max_length=10, description="first day, YYYY-MM-DD (UTC)"),
    to: str | None = Query(None, max_length=10, description="last day, YYYY-MM-DD (UTC)"),
    principal: Principal = Depends(require("manage", "analytics")),
) -> Response:
    """The usage counters as a CSV file (attachment usage.csv), one row per day, key and route."""
    text = request.app.state.usage_service.csv(principal.workspace, from_, to)
    return Response(text, media_type="text/csv", headers={"content-disposition": 'attachment; filename="usage.csv"'})
