"""Per-key rate limits: a fixed window counter per (key, bucket) in the metadata store.

- Buckets: ``analytics``, ``sql``, ``uploads``, ``classify`` (limits ``Settings.rate_limits.<bucket>_per_window``).
  The caller maps routes to buckets (uploads, presign and inspect share ``uploads``).
- Window: fixed, ``window_seconds`` long, aligned on the epoch: ``window_start = floor(now / w) * w``.
- Counter: ``meta.increment(pk="RL#<key_id>#<bucket>", sk=str(window_start), ceiling=limit,
  ttl=window_end + 60)``: one atomic conditional update (DynamoDB ``UpdateItem ADD`` with the ceiling in
  the condition; SQLite ``BEGIN IMMEDIATE``), so the limit holds across Lambda containers and local
  processes, and a refused request does not consume anything. The TTL lets DynamoDB purge old windows.
- A limit <= 0 refuses everything (fail closed; there is no "unlimited" value).
- Store errors propagate: whether to fail open or closed when the table is unavailable is the caller's
  decision.

Fixed windows allow up to twice the limit across a window boundary (end of one, start of the next);
that is accepted for this purpose (abuse protection, fair share), in exchange for one write per request.

Headers (``Decision.headers()``): ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` = **seconds until the window resets** (delta seconds, as in the IETF RateLimit
header fields draft and like ``Retry-After``; immune to client clock skew. Some APIs, GitHub's among
them, send epoch seconds instead; ``Decision.reset_epoch`` has that value), plus ``Retry-After``
(seconds, at least 1) when refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from stratum.settings import RateLimits
from stratum.storage.metadata import MetadataStore

BUCKETS: tuple[str, ...] = ("analytics", "sql", "uploads", "classify")
# counted per client address, not per key: failed authentications (``auth_failures_per_window``)
ADDRESS_BUCKETS: tuple[str, ...] = ("auth_failures",)
TTL_GRACE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # requests left in this window after this one
    reset_epoch: int  # epoch seconds when the window ends
    retry_after_seconds: int  # 0 when allowed; else seconds until the window resets (>= 1)
    reset_seconds: int = 0  # seconds until the window resets (>= 1; reported in x-ratelimit-reset)

    def headers(self) -> dict[str, str]:
        h = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_seconds),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_seconds)
        return h


class RateLimiter:
    def __init__(self, meta: MetadataStore, limits: RateLimits, *, clock: Callable[[], float] = time.time) -> None:
        if limits.window_seconds < 1:
            raise ValueError("rate limit window_seconds must be >= 1")
        self.meta = meta
        self.limits = limits
        self._clock = clock

    def limit_for(self, bucket: str) -> int:
        if bucket not in BUCKETS + ADDRESS_BUCKETS:
            raise ValueError(f"unknown rate limit bucket {bucket!r}; known: {', '.join(BUCKETS + ADDRESS_BUCKETS)}")
        return int(getattr(self.limits, f"{bucket}_per_window"))

    def check(self, key_id: str, bucket: str, now: float | None = None, *, per_minute: float | None = None) -> Decision:
        """Count one request of ``key_id`` in ``bucket`` if the window still has room. ``per_minute``
        overrides the deployment's limit for this key (its tier or a per-key limit), scaled to the window."""
        limit = self.limit_for(bucket)
        if per_minute is not None:
            limit = max(1, math.floor(per_minute * self.limits.window_seconds / 60 + 1e-9))
        if not isinstance(key_id, str) or not key_id or "#" in key_id:
            raise ValueError(f"invalid key id {key_id!r}")
        t = self._clock() if now is None else now
        w = self.limits.window_seconds
        start = int(t // w) * w
        end = start + w
        reset = max(1, math.ceil(end - t))
        n = None
        if limit > 0:
            n = self.meta.increment(
                f"RL#{key_id}#{bucket}", str(start), amount=1, ceiling=limit, ttl=end + TTL_GRACE_SECONDS
            )
        if n is None:
            return Decision(False, max(limit, 0), 0, end, reset, reset)
        return Decision(True, limit, max(0, limit - n), end, 0, reset)
