"""RFC 9457 problem details: every error of the API has one JSON shape and the right status.

Domain exceptions map to HTTP here, in one place. Nothing internal (tracebacks, paths) reaches users.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stratum.errors import StratumError

log = logging.getLogger("stratum.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://stratum.dev/problems/"


class ApiProblem(StratumError):
    """An HTTP-level problem (auth, rate limit) with optional response headers."""

    def __init__(
        self, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra
    ) -> None:
        super().__init__(detail, **extra)
        self.status, self.code, self.title = status, code, title
        self.headers = headers or {}


def problem(
    request: Request, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    rid = getattr(request.state, "request_id", None)
    if rid:
        body["request_id"] = rid
    h = dict(headers or {})
    h.update(getattr(request.state, "extra_headers", {}) or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=h)


def install(app: FastAPI) -> None:
    @app.exception_handler(StratumError)
    async def _domain(request: Request, exc: StratumError):
        return problem(request, exc.status, exc.code, exc.title, exc.detail, getattr(exc, "headers", None), **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(request, 400, "bad_request", "Bad request", f"invalid request: {where}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        titles = {404: "Not found", 405: "Method not allowed", 400: "Bad request", 413: "Payload too large"}
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return problem(
            request,
            exc.status_code,
            code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            request, 500, "internal_error", "Internal error", "an unexpected error occurred; it has been logged"
        )
