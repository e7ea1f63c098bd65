"""Usage counters and monthly quotas, as atomic counters in the metadata store.

- Usage: one counter per (workspace, UTC day, key, route, measure) in partition ``USAGE#<workspace>``,
  sort key ``<day>#<key_id>#<route>#<measure>`` (measure ``requests`` or ``classifications``).
- Quotas: one counter per (key, quota, UTC calendar month), ``QUOTA#<key_id>#<quota>`` / ``YYYY-MM``,
  incremented with the quota as the ceiling: one conditional atomic update (DynamoDB ``ADD`` with a
  condition; SQLite ``BEGIN IMMEDIATE``), so concurrent requests can never together exceed the quota,
  and a refused request consumes nothing.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from stratum.errors import BadRequest, StratumError
from stratum.storage.metadata import MetadataStore

from .tiers import KeyLimits, month_window

MEASURES = ("requests", "classifications")
GROUPS = ("day", "route", "key")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TTL_DAYS = 400  # usage counters are kept a little over a year


class QuotaExceeded(StratumError):
    status, code, title = 429, "quota_exceeded", "Quota exceeded"

    def __init__(self, detail: str, *, retry_after: int, quota: str, resets_at: str) -> None:
        super().__init__(detail, quota=quota, resets_at=resets_at)
        self.headers = {"Retry-After": str(retry_after)}


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


class UsageMeter:
    def __init__(self, meta: MetadataStore, *, clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.clock = clock

    def record(self, ws: str, key_id: str, route: str, measure: str = "requests", amount: int = 1) -> None:
        if measure not in MEASURES:
            raise ValueError(f"unknown usage measure {measure!r}")
        t = self.clock()
        ttl = int(t) + TTL_DAYS * 86400
        self.meta.increment(f"USAGE#{ws}", f"{_day(t)}#{key_id}#{route}#{measure}", amount=amount, ttl=ttl)

    def consume(self, key_id: str, limits: KeyLimits, n: int, quota: str = "classifications") -> None:
        """Take ``n`` from the key's monthly quota, or raise ``QuotaExceeded`` (nothing taken)."""
        cap = limits.quota(quota)
        if cap is None or n <= 0:
            return
        t = self.clock()
        month, reset = month_window(t)
        got = self.meta.increment(
            f"QUOTA#{key_id}#{quota}", month, amount=n, ceiling=cap, ttl=int(reset.timestamp()) + 40 * 86400
        )
        if got is None:
            used = self.used(key_id, quota, t)
            resets = reset.isoformat().replace("+00:00", "Z")
            raise QuotaExceeded(
                f"monthly quota '{quota}' of {cap} reached ({used} used, {n} more asked for this request); "
                f"it resets at {resets}",
                retry_after=max(1, math.ceil(reset.timestamp() - t)),
                quota=quota,
                resets_at=resets,
            )

    def used(self, key_id: str, quota: str = "classifications", t: float | None = None) -> int:
        month, _ = month_window(self.clock() if t is None else t)
        if self.meta.get(f"QUOTA#{key_id}#{quota}", month) is None:
            return 0
        return int(self.meta.increment(f"QUOTA#{key_id}#{quota}", month, amount=0) or 0)

    def quota_status(self, key_id: str, limits: KeyLimits, quota: str = "classifications") -> dict:
        t = self.clock()
        cap = limits.quota(quota)
        used = self.used(key_id, quota, t)
        _, reset = month_window(t)
        return {
            "key_id": key_id,
            "quota": quota,
            "limit": cap,
            "used": used,
            "remaining": None if cap is None else max(cap - used, 0),
            "resets_at": reset.isoformat().replace("+00:00", "Z"),
        }

    def rows(self, ws: str, frm: str | None, to: str | None) -> list[dict]:
        """Every counter of the workspace between the days ``frm`` and ``to`` (inclusive, UTC)."""
        for name, v in (("from", frm), ("to", to)):
            if v is not None and not _DAY.match(v):
                raise BadRequest(f"{name} must be a date YYYY-MM-DD")
        out: dict[tuple[str, str, str], dict] = {}
        cursor = None
        while True:
            page = self.meta.query(f"USAGE#{ws}", start=frm, end=(to + "~") if to else None, limit=500, cursor=cursor)
            for item in page.items:
                day, key_id, rest = item.sk.split("#", 2)
                route, _, measure = rest.rpartition("#")
                n = self.meta.increment(item.pk, item.sk, amount=0) or 0
                row = out.setdefault(
                    (day, key_id, route),
                    {"day": day, "key_id": key_id, "route": route, "requests": 0, "classifications": 0},
                )
                row[measure] = int(n)
            cursor = page.cursor
            if not cursor:
                break
        return [out[k] for k in sorted(out)]

    def grouped(self, ws: str, frm: str | None, to: str | None, group_by: str) -> list[dict]:
        if group_by not in GROUPS:
            raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}")
        col = {"day": "day", "route": "route", "key": "key_id"}[group_by]
        acc: dict[str, dict] = defaultdict(lambda: {"requests": 0, "classifications": 0})
        for r in self.rows(ws, frm, to):
            a = acc[r[col]]
            a["requests"] += r["requests"]
            a["classifications"] += r["classifications"]
        return [{col: k, **v} for k, v in sorted(acc.items())]

    def csv(self, ws: str, frm: str | None, to: str | None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["day", "key_id", "route", "requests", "classifications"])
        for r in self.rows(ws, frm, to):
            w.writerow([r["day"], r["key_id"], r["route"], r["requests"], r["classifications"]])
        return buf.getvalue()


class UsageReport:
    """GET /v1/usage and its CSV export: the meter's counters plus each key's quota status."""

    def __init__(self, meter: UsageMeter, keys) -> None:
        self.meter = meter
        self.keys = keys

    def report(self, ws: str, frm: str | None, to: str | None, group_by: str) -> dict:
        items = self.meter.grouped(ws, frm, to, group_by)
        quotas = [self.meter.quota_status(r.key_id, r.limits) for r in self.keys.list(ws)]
        return {"group_by": group_by, "items": items, "quotas": quotas}

    def csv(self, ws: str, frm: str | None, to: str | None) -> str:
        return self.meter.csv(ws, frm, to)
