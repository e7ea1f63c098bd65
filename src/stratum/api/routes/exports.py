"""Exports of any size: a guarded query or a table of one lot, to Parquet, CSV or Arrow (stratum.exports)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from stratum.errors import NotFound
from stratum.exports.formats import FORMATS

from ..schemas import ExportOut, ExportRequest, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["exports"])
ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
CHUNK = 1024 * 1024


def _out(request: Request, ws: str, rec: dict) -> ExportOut:
    out = ExportOut.model_validate({k: v for k, v in rec.items() if k in ExportOut.model_fields})
    if rec["status"] == "succeeded":
        base = request.app.state.runtime.settings.public_base_url or str(request.base_url)
        base = base.rstrip("/") + request.scope.get("root_path", "")
        out.download_url, out.expires_at = request.app.state.runtime.exports.download_url(ws, rec, base)
    return out


@router.post(
    "/v1/exports",
    status_code=202,
    response_model=ExportOut,
    responses=ERRORS,
    summary="Export a query's whole result (no row cap) or a table of one lot, to Parquet, CSV or Arrow",
)
def create_export(
    request: Request,
    response: Response,
    body: ExportRequest,
    background: BackgroundTasks,
    principal: Principal = Depends(require("sql_run", "sql")),
) -> ExportOut:
    from stratum.query.engine import Scope, check_wafer_ids  # duckdb loads on the first export, not at import

    ctx = body.context
    check_wafer_ids(ctx.wafer_ids if ctx else None)
    scope = Scope(lot_id=ctx.lot_id, snapshot_job_id=ctx.snapshot_job_id, wafer_ids=ctx.wafer_ids) if ctx else Scope()
    svc = request.app.state.runtime.exports
    rec = svc.create(
        principal.workspace, fmt=body.format, query=body.query, table=body.table, filters=body.filters, scope=scope
    )
    background.add_task(svc.dispatch, principal.workspace, rec["export_id"])  # queued through the event port
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/v1/exports/{rec['export_id']}"
    return _out(request, principal.workspace, rec)


@router.get(
    "/v1/exports/{export_id}",
    response_model=ExportOut,
    responses=ERRORS,
    summary="An export's status; when it has succeeded, an expiring download URL",
)
def get_export(
    request: Request, export_id: str, principal: Principal = Depends(require("sql_run", "analytics"))
) -> ExportOut:
    return _out(request, principal.workspace, request.app.state.runtime.exports.get(principal.workspace, export_id))


@router.get(
    "/v1/exports/{export_id}/content",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "The export's file"}},
    summary="Local runtime only: the target of an export's download URL (authorised by its signature)",
)
def export_content(
    request: Request,
    export_id: str,
    workspace: str = Query(..., max_length=63),
    expires: int = Query(...),
    signature: str = Query(..., max_length=128),
):
    rt = request.app.state.runtime
    if rt.settings.backend != "local":
        raise NotFound("not found")
    f, rec = rt.exports.open_signed(workspace, export_id, expires, signature)

    def chunks():
        with f:
            while b := f.read(CHUNK):
                yield b

    return StreamingResponse(
        chunks(),
        media_type=FORMATS[rec["format"]][1],
        headers={
            "Content-Length": str(rec["bytes"]),
            "Content-Disposition": f'attachment; filename="{rec["filename"]}"',
        },
    )
