"""Domain errors. The API maps each to one HTTP status in one place (stratum.api.problems)."""

from __future__ import annotations

import errno

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def no_space(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or an exhausted quota."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


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


class InsufficientStorage(StratumError):
    status, code, title = 507, "insufficient_storage", "Insufficient storage"


class Unavailable(StratumError):
    status, code, title = 503, "unavailable", "Service unavailable"


class QueryTimeout(StratumError):
    # 422, not 408/504: the request was understood and ran, but exceeded the platform's time limit
    status, code, title = 422, "query_timeout", "Query timed out"


class QueryResources(StratumError):
    # 422 like the time limit: understood and run, but past a memory, spill or response-size bound
    status, code, title = 422, "query_resources", "Query exceeds a resource limit"


class QueryRejected(BadRequest):
    code, title = "query_rejected", "Query rejected"
