"""The FastAPI application. ``create_app()`` serves uvicorn (``stratum serve``), Mangum (Lambda) and tests.

Services come from one ``Runtime`` (settings → adapters → services); routes only map HTTP to them.
"""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache

from fastapi import FastAPI, Request

from stratum import __version__
from stratum.ids import ulid
from stratum.runtime import Runtime
from stratum.settings import Settings, get_settings

from . import docs_ui, problems
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

Authenticate with `Authorization: Bearer stm_live_...` (create keys with `stratum keys create`).
Errors are RFC 9457 `application/problem+json`. List routes paginate with `limit` and `cursor`.
"""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    from stratum.auth.redact import install as redact_keys_in_logs

    redact_keys_in_logs()
    settings = settings or (runtime.settings if runtime else get_settings())
    rt = runtime or Runtime.from_settings(settings)
    app = FastAPI(
        title="Stratum API",
        version=__version__,
        description=DESCRIPTION,
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
    problems.install(app)
    base_openapi = app.openapi

    def openapi() -> dict:
        """The generated document, with error bodies declared as application/problem+json."""
        if app.openapi_schema is None:
            doc = base_openapi()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            doc["components"]["schemas"] = dict(sorted(schemas.items()))  # FastAPI's order
            for path in doc.get("paths", {}).values():
                for op in path.values():
                    for code, resp in op.get("responses", {}).items():
                        content = resp.get("content", {})
                        if code[:1] in ("4", "5") and "application/json" in content:
                            resp["content"] = {"application/problem+json": content.pop("application/json"), **content}
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
        app.include_router(r)

    root = settings.api_root_path.rstrip("/")
    from .caching import CachingMiddleware

    app.add_middleware(CachingMiddleware)

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
