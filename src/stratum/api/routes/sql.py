"""Read-only SQL over the key's workspace (guardrails in stratum.query.sql)."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends, Request, Response

from .._fastapi import DeclaredRoute
from ..schemas import SqlRequest, SqlResponse, SqlSchema, binary, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["sql"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
RUN_ERRORS = problem_responses(400, 401, 403, 404, 422, 429, 503)
ARROW_STREAM = "application/vnd.apache.arrow.stream"


@router.get(
    "/v1/sql/schema",
    response_model=SqlSchema,
    responses=ERRORS,
    summary="Tables, columns, types and descriptions of the public SQL schema",
)
def schema(request: Request, principal: Principal = Depends(require("sql_schema", "analytics"))) -> SqlSchema:
    """Every public table (view) with its columns, their DuckDB types and what they hold. Each query sees one
    snapshot per lot; `is_final`/`is_retest` carry the retest semantics; results are in base units."""
    del principal
    return SqlSchema(tables=request.app.state.schema_cache())


@router.post(
    "/v1/sql",
    response_model=SqlResponse,
    responses={
        **RUN_ERRORS,
        200: {
            "content": {
                "application/json": {},
                ARROW_STREAM: binary(
                    "With Accept: application/vnd.apache.arrow.stream: the page as an Arrow IPC stream"
                ),
            },
            "description": "The page as JSON, or with `Accept: application/vnd.apache.arrow.stream` as an Arrow "
            "IPC stream (next cursor, row count and truncation in X-Next-Cursor, X-Row-Count, X-Truncated)",
        },
    },
    summary="Run one read-only SELECT (or EXPLAIN); 30 s limit, 1,000 rows per page, 100,000 in total",
    description=(
        "One read-only statement over the workspace's tables (see GET /v1/sql/schema); anything that writes, "
        "attaches, reads files or sets options is refused (400). `context` narrows every table to a lot, a pinned "
        "snapshot and wafers. Pages of `limit` rows (default 1,000): pass `next_cursor` back as `cursor` with the "
        "same query and context; a query yields at most 100,000 rows in total (`truncated` says when it had more; "
        "use POST /v1/exports for everything).\n\n"
        "Bounds (server settings): the time limit (422 `query_timeout`); DuckDB working memory, spill and the "
        "server's memory, and 5,000,000 bytes of JSON rows per page (422 `query_resources`, naming the bound); "
        "2 queries at once per server, others wait up to 10 s (then 503)."
    ),
)
async def run_sql(request: Request, body: SqlRequest, principal: Principal = Depends(require("sql_run", "sql"))):
    from stratum.query.engine import Scope  # duckdb loads on the first query, not at import

    ctx = body.context
    scope = Scope(lot_id=ctx.lot_id, snapshot_job_id=ctx.snapshot_job_id, wafer_ids=ctx.wafer_ids) if ctx else Scope()
    arrow = ARROW_STREAM in request.headers.get("accept", "")
    run = functools.partial(
        request.app.state.runtime.sql_runner.run,
        principal.workspace,
        body.query,
        scope=scope,
        limit=body.limit,
        cursor=body.cursor,
        max_bytes=request.app.state.runtime.settings.sql.max_response_bytes,
        arrow=arrow,
    )
    res = await request.app.state.sql_gate.run(run)
    if arrow:
        headers = {
            **(getattr(request.state, "extra_headers", {}) or {}),
            "X-Row-Count": str(res.row_count),
            "X-Truncated": "true" if res.truncated else "false",
        }
        if res.next_cursor:
            headers["X-Next-Cursor"] = res.next_cursor
        return Response(res.arrow, media_type=ARROW_STREAM, headers=headers)
    return res.to_dict()
