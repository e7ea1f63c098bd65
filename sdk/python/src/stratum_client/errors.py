"""Typed exceptions. API errors carry the RFC 9457 problem fields and the request id."""

from __future__ import annotations

from typing import Any


class StratumError(Exception):
    """Base of every error this package raises."""


class APIConnectionError(StratumError):
    """The server could not be reached (after the retries)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (after the retries)."""


class WaitTimeout(StratumError):
    """``wait=True`` gave up before the job finished."""

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(StratumError):
    """The ingest job ended with status ``failed``; ``job.error`` says why."""

    def __init__(self, job: Any) -> None:
        err = getattr(job, "error", None)
        super().__init__(f"job {job.job_id} failed: {getattr(err, 'code', '?')}: {getattr(err, 'message', '')}")
        self.job = job


class APIError(StratumError):
    """An error answer of the API (``application/problem+json``)."""

    status: int = 0

    def __init__(
        self,
        status: int,
        *,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        type: str | None = None,  # noqa: A002 - the RFC 9457 field name
        instance: str | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code, self.title, self.detail, self.type, self.instance = code, title, detail, type, instance
        self.request_id = request_id
        self.body = body or {}
        self.headers = headers or {}
        where = f" [request {request_id}]" if request_id else ""
        super().__init__(f"{status} {code or title or 'error'}: {detail or ''}{where}")

    @property
    def extra(self) -> dict[str, Any]:
        """Problem members beyond the standard ones (e.g. ``errors`` of a validation error)."""
        std = {"type", "title", "status", "detail", "instance", "code", "request_id"}
        return {k: v for k, v in self.body.items() if k not in std}


class BadRequestError(APIError):
    status = 400


class AuthenticationError(APIError):
    status = 401


class PermissionDeniedError(APIError):
    status = 403


class NotFoundError(APIError):
    status = 404


class ConflictError(APIError):
    status = 409


class PayloadTooLargeError(APIError):
    status = 413


class UnprocessableError(APIError):
    status = 422


class RateLimitError(APIError):
    status = 429

    @property
    def retry_after(self) -> float | None:
        v = self.headers.get("retry-after")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None


class ServerError(APIError):
    """5xx."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}


def error_for(status: int, body: Any, headers: dict[str, str], request_id: str | None) -> APIError:
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    b = body if isinstance(body, dict) else {}
    detail = b.get("detail")
    if not isinstance(detail, str):
        detail = str(detail) if detail is not None else (body if isinstance(body, str) else None)
    return cls(
        status,
        code=b.get("code"),
        title=b.get("title"),
        detail=detail,
        type=b.get("type"),
        instance=b.get("instance"),
        request_id=b.get("request_id") or request_id,
        body=b,
        headers=headers,
    )
