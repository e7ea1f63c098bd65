"""What ``Client`` and ``AsyncClient`` share: settings, the request builder, the retry policy and the
parsing of answers. The two clients differ only in how they send (blocking or awaited) and sleep."""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import __version__
from .errors import error_for

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TERMINAL = frozenset({"succeeded", "partial", "failed", "duplicate"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a server's ``Retry-After`` wins (capped at ``max_delay``)."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        if response is not None:
            ra = retry_after(response)
            if ra is not None:
                return min(ra, self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311 - jitter


def retry_after(response: httpx.Response) -> float | None:
    v = response.headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Call:
    """One API request, built once and sent (and re-sent on retries) by either client.

    ``content`` is a factory so a retried upload re-reads its file from the start; ``parse`` turns the
    successful response into the return value.
    """

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: Callable[[], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parse: Callable[[httpx.Response], Any] = lambda r: r.json()
    absolute: bool = False  # path is a full URL (presigned uploads): no API key is sent
    stream: bool = False  # keep the body unread (downloads)

    def __post_init__(self) -> None:
        if self.method == "POST" and not any(k.lower() == "idempotency-key" for k in self.headers):
            # one key per logical request, the same on every retry
            self.headers["Idempotency-Key"] = str(uuid.uuid4())
        if self.params:
            self.params = {k: v for k, v in self.params.items() if v is not None}


@dataclass
class Config:
    api_key: str | None
    base_url: str
    timeout: httpx.Timeout
    retry: RetryPolicy

    @classmethod
    def make(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff: float,
        max_backoff: float,
    ) -> Config:
        key = api_key if api_key is not None else os.environ.get("STRATUM_API_KEY")
        url = (base_url or os.environ.get("STRATUM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        t = (
            DEFAULT_TIMEOUT
            if timeout is None
            else (timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout))
        )
        return cls(key, url, t, RetryPolicy(max_retries, backoff, max_backoff))

    def headers(self) -> dict[str, str]:
        h = {"User-Agent": f"stratum-client/{__version__}", "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h


def build_request(http: httpx.Client | httpx.AsyncClient, cfg: Config, call: Call) -> httpx.Request:
    headers = {} if call.absolute else cfg.headers()
    headers.update(call.headers)
    headers.setdefault("X-Request-Id", f"sdk_{uuid.uuid4().hex}")
    url = call.path if call.absolute else cfg.base_url + call.path
    return http.build_request(
        call.method,
        url,
        params=call.params,
        json=call.json,
        content=call.content() if call.content else None,
        headers=headers,
    )


def should_retry(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def raise_for(response: httpx.Response) -> None:
    """Raise the typed error of a non-2xx answer (the body must have been read)."""
    if response.is_success:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:2000]
    raise error_for(response.status_code, body, dict(response.headers), response.headers.get("x-request-id"))


def basename(path: os.PathLike | str) -> str:
    return os.path.basename(os.fspath(path))
