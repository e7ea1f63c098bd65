"""Exports of any size: a guarded query or a table of one lot, to Parquet, CSV or Arrow (stratum.exports)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import StreamingResponse

from stratum.errors import NotFound
from stratum.exports.formats import FORMATS

from .._fastapi import DeclaredRoute
from ..params import ExportId, Signature, SignedExpires, SignedWorkspace
from ..schemas import ExportOut, ExportRequest, binary, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["exports"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
CHUNK = 1024 * 1024
_QUEUED = {
    "export_id": "exp_01KC3Y8J5ZQ4W8V6T2N1M0P9RS",
    "status": "queued",
    "format": "parquet",
    "query": "SELECT * FROM results WHERE lot_id = 'LOT42'",
    "table": None,
    "context": {"lot_id": None, "snapshot_job_id": None, "wafer_ids": None},
    "created_at": "2026-12-04T18:25:00.123456+00:00",
}
_DONE = {
    **_QUEUED,
    "status": "succeeded",
    "started_at": "2026-12-04T18:25:00.201000+00:00",
    "finished_at": "2026-12-04T18:25:41.950000+00:00",
    "rows": 16908800,
    "bytes": 66899888,
    "sha256": "9f2c6d0e4b1a7c3e5d8f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d",
    "columns": [{"name": "lot_id", "type": "VARCHAR"}, {"name": "result", "type": "FLOAT"}],
    "elapsed_ms": 41749.0,
    "download_url": "https://stratum-lake.s3.amazonaws.com/workspaces/default/exports/exp_01KC3Y8J5ZQ4W8V6T2N1M0P9RS/"
    "exp_01KC3Y8J5ZQ4W8V6T2N1M0P9RS.parquet?X-Amz-Expires=3600&X-Amz-Signature=...",
    "expires_at": "2026-12-04T19:26:02+00:00",
}


def _example(status: int, example: dict, description: str) -> dict:
    return {status: {"description": description, "content": {"application/json": {"example": example}}}}


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
    responses={**ERRORS, **_example(202, _QUEUED, "The export is queued; poll its Location")},
    summary="Export a query's whole result (no row cap) or a table of one lot, to Parquet, CSV or Arrow",
    description=(
        "Same checks, workspace and snapshot scoping as POST /v1/sql, but no row cap: DuckDB writes the whole "
        "result (Parquet with zstd, or CSV with a header) with bounded memory. Give `query`, or `table` with "
        "`context.lot_id` and optional `filters`. The job runs after the 202 (within "
        "`exports.timeout_seconds`, 900 s by default); GET the Location for its status and download URL."
    ),
)
def create_export(
    request: Request,
    response: Response,
    body: ExportRequest,
    background: BackgroundTasks,
    principal: Principal = Depends(require("sql_run", "sql")),
) -> ExportOut:
    """Queue an export (202, `Location: /v1/exports/{export_id}`): either `query`, one read-only SELECT over the
    SQL tables with no row cap, or `table` (a public table of `context.lot_id`) with equality `filters`. It runs
    in the background; poll GET /v1/exports/{export_id} until it has succeeded, then download `download_url`.
    Needs the scope that runs SQL."""
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
    responses={**ERRORS, **_example(200, _DONE, "The export's record")},
    summary="An export's status; when it has succeeded, an expiring download URL",
    description=(
        "A succeeded export carries its row count, size, SHA-256, columns and a download URL that needs no API "
        "key and expires after `exports.url_seconds` (3600 s by default); GET again for a fresh one. Records "
        "(and files) are kept `exports.retention_days` (7 days by default)."
    ),
)
def get_export(
    request: Request, export_id: ExportId, principal: Principal = Depends(require("sql_run", "analytics"))
) -> ExportOut:
    """The export's status; once it has succeeded, its rows, size, SHA-256, columns and an expiring download
    URL (S3 presigned on AWS; a signed URL of this server locally). Ask again for a fresh URL."""
    return _out(request, principal.workspace, request.app.state.runtime.exports.get(principal.workspace, export_id))


@router.get(
    "/v1/exports/{export_id}/content",
    responses={
        **ERRORS,
        200: {
            "content": {
                "application/octet-stream": binary(
                    "The export's file: Parquet, CSV or Arrow IPC stream (the Content-Type names the format)"
                )
            },
            "description": "The export's file, as an attachment",
        },
    },
    summary="Local runtime only: the target of an export's download URL (authorised by its signature)",
    description=(
        "The file of a succeeded export, streamed. Only the local runtime serves it (on AWS the download URL is "
        "a presigned S3 GET); the query parameters come from the download URL and are checked together."
    ),
    response_class=Response,
)
def export_content(
    request: Request,
    export_id: ExportId,
    workspace: SignedWorkspace,
    expires: SignedExpires,
    signature: Signature,
):
    """The local runtime's download URL of a succeeded export: call the `download_url` as is. No API key: the
    signature authorises it until it expires (403 otherwise). 404 on the AWS runtime (files come from S3)."""
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
