"""The FastAPI application. ``create_app()`` serves uvicorn (``stratum serve``), Mangum (Lambda) and tests.

Services come from one ``Runtime`` (settings → adapters → services); routes only map HTTP to them.
"""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache

from stratum.coldstart import loading

with loading():  # the routes, models and services load without GC passes (stratum.coldstart)
    from fastapi import FastAPI, Request

    from stratum import __version__
    from stratum.ids import ulid
    from stratum.runtime import Runtime
    from stratum.settings import Settings, get_settings

    from . import docs_ui, problems
    from ._fastapi import include
    from .gate import Gate
    from .routes import charts, exports, jobs, lots, monitors, notifications, patterns, sql, status, uploads, webhooks
    from .schemas import Problem

log = logging.getLogger("stratum.api")
# a caller's X-Request-Id is echoed when it looks like an id; otherwise the server makes one
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

DESCRIPTION = """\
Semiconductor test data as a service: STDF uploads become ingest jobs that publish immutable lot
snapshots in a Parquet lake; lots, wafers, tests, capability and bins are read from those snapshots
(pin one with `snapshot_job_id`), and read-only SQL runs over the same tables.

Authenticate with `Authorization: Bearer <key>`: keys made by `stratum keys create` on a local or
development server start with `stm_test_`, keys of a production deployment with `stm_live_`.
Errors are RFC 9457 `application/problem+json` (an invalid parameter or body is a 400 naming the field).
List routes paginate with `limit` and `cursor`: pass a page's `next_cursor` back as `cursor` until it is null.

Units: every yield (`yield`, `first_pass_yield`) is a fraction 0-1; bin `percent` fields are percentages
0-100; test values are in the units the test program states (`units`), not rescaled.
"""

TAGS = [
    {"name": "status", "description": "Health and versions of the server; the only route that needs no key."},
    {
        "name": "uploads",
        "description": "Send STDF files (V4; plain, gzip, bzip2 or zip; raw body or multipart form), directly or "
        "through a presigned URL for large files; each upload becomes an ingest job. `inspect` reads a file "
        "without ingesting it.",
    },
    {
        "name": "jobs",
        "description": "Ingest jobs: one per uploaded file, with its status, counts, warnings and error. A job that "
        "succeeds publishes a new immutable snapshot of its lot.",
    },
    {
        "name": "lots",
        "description": "Lots and their analytics read from a published snapshot: wafers and yields, die maps, "
        "test statistics, per-die results, process capability and bin summaries. Pass `snapshot_job_id` to pin "
        "a snapshot (reproducible numbers); without it the lot's active snapshot is read.",
    },
    {
        "name": "charts",
        "description": "Stacked maps, bin Pareto, histograms, box plots, trends and wafer galleries: the numbers "
        "as JSON (`format=json`) or the chart of exactly those numbers as PNG or SVG.",
    },
    {
        "name": "sql",
        "description": "Read-only SQL (DuckDB dialect) over the workspace's tables, paged and bounded in time, "
        "memory and rows; the schema route lists the tables and columns.",
    },
    {
        "name": "exports",
        "description": "Whole query results or tables of one lot, with no row cap, written in the background to "
        "Parquet, CSV or Arrow and downloaded from an expiring URL.",
    },
    {
        "name": "monitors",
        "description": "Rules evaluated on every ingest or on a schedule (yield, bin, parametric, capability "
        "drifts); runs record findings and notify. Backtests evaluate a rule over past snapshots.",
    },
    {"name": "notifications", "description": "The workspace's notification inbox and its delivery preferences."},
    {
        "name": "webhooks",
        "description": "Outbound webhooks (signed Standard Webhooks deliveries of events, with retries and an "
        "audit log) and inbound webhooks (URLs that external systems call to annotate lots or run monitors).",
    },
    {
        "name": "patterns",
        "description": "Spatial fail-pattern classification of wafer maps, the pattern taxonomy with example "
        "maps, and the workspace's usage and classification quota.",
    },
]


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    from stratum.auth.redact import install as redact_keys_in_logs

    redact_keys_in_logs()
    settings = settings or (runtime.settings if runtime else get_settings())
    rt = runtime or Runtime.from_settings(settings)
    app = FastAPI(
        title="Stratum API",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        openapi_url="/openapi.json",
        docs_url=None,  # /docs and /redoc serve local assets (docs_ui)
        redoc_url=None,
    )
    # The services come from the runtime (built there, once); app.state names the ones routes use.
    app.state.runtime = rt
    app.state.analytics = rt.analytics
    app.state.keys = rt.keys
    app.state.limiter = rt.limiter
    app.state.drop = rt.drop_processor
    rt.delivery  # noqa: B018 - built (and subscribed to the event port) with the app
    app.state.charts = rt.charts
    app.state.usage = rt.usage
    app.state.usage_service = rt.usage_report
    app.state.patterns = rt.patterns

    @lru_cache(maxsize=1)
    def schema_cache():
        return rt.sql.schema()

    app.state.schema_cache = schema_cache
    app.state.sql_gate = Gate("SQL queries", settings.sql.max_concurrent, settings.sql.queue_seconds)
    ps = settings.patterns
    app.state.classify_gate = Gate("classification requests", ps.max_concurrent, ps.queue_seconds)
    problems.install(app)
    base_openapi = app.openapi

    def openapi() -> dict:
        """The generated document, with error bodies declared as application/problem+json. FastAPI's default
        422 HTTPValidationError answer is dropped: invalid requests answer 400 problem+json (problems.py)."""
        if app.openapi_schema is None:
            doc = base_openapi()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            doc["components"]["schemas"] = dict(sorted(schemas.items()))  # FastAPI's order
            for path in doc.get("paths", {}).values():
                for op in path.values():
                    responses = op.get("responses", {})
                    if "HTTPValidationError" in str(responses.get("422", {}).get("content")):
                        del responses["422"]
                    for code, resp in responses.items():
                        content = resp.get("content", {})
                        if code[:1] in ("4", "5") and "application/json" in content:
                            resp["content"] = {"application/problem+json": content.pop("application/json"), **content}
            schemas = doc.get("components", {}).get("schemas", {})
            if "HTTPValidationError" not in str(doc.get("paths")):
                schemas.pop("HTTPValidationError", None)
                schemas.pop("ValidationError", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    for r in (
        status.router,
        uploads.router,
        jobs.router,
        lots.router,
        charts.router,
        sql.router,
        exports.router,
        monitors.router,
        notifications.router,
        webhooks.router,
        patterns.router,
        docs_ui.router,
    ):
        include(app, r)  # each route analysed on first use (stratum.api._fastapi)

    root = settings.api_root_path.rstrip("/")
    from .caching import CachingMiddleware

    app.add_middleware(CachingMiddleware)
    from .bodylimit import BodyLimit

    app.add_middleware(
        BodyLimit, paths=("/v1/classify", "/v1/batch"), limit=lambda: settings.patterns.max_request_bytes
    )

    @app.middleware("http")
    async def _timing(request: Request, call_next):
        if root and not request.scope.get("root_path"):
            request.scope["root_path"] = root  # the API Gateway stage prefix (links, OpenAPI servers)
        t0 = time.perf_counter()
        rid = request.headers.get("x-request-id", "")
        rid = rid if _REQUEST_ID.match(rid) else f"req_{ulid()}"
        request.state.request_id = rid
        response = await call_next(request)
        ms = (time.perf_counter() - t0) * 1e3
        response.headers["server-timing"] = f"app;dur={ms:.1f}"
        response.headers["x-request-id"] = rid
        log.info(
            "%s %s %s -> %s in %.1f ms (key %s)",
            rid,
            request.method,
            request.url.path,
            response.status_code,
            ms,
            getattr(request.state, "key_id", "-"),
        )
        return response

    return app
