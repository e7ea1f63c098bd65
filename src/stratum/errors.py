"""Domain errors. The API maps each to one HTTP status in one place (stratum.api.problems)."""

from __future__ import annotations


class StratumError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str, **extra) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(StratumError):
    status, code, title = 400, "bad_request", "Bad request"


class NotFound(StratumError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(StratumError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(StratumError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class Unprocessable(StratumError):
    status, code, title = 422, "unprocessable", "Unprocessable STDF"


class Unavailable(StratumError):
    status, code, title = 503, "unavailable", "Service unavailable"


class QueryTimeout(StratumError):
    # 422, not 408/504: the request was understood and ran, but exceeded the platform's time limit
    status, code, title = 422, "query_timeout", "Query timed out"


class QueryRejected(BadRequest):
    code, title = "query_rejected", "Query rejected"
