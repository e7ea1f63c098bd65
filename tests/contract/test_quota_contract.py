"""Monthly quotas and usage counters (stratum.auth.usage) on every metadata adapter: exact under
concurrency, nothing consumed by a refused request, month rollover, usage rows."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from stratum.auth.tiers import KeyLimits
from stratum.auth.usage import QuotaExceeded, UsageMeter

from .test_metadata_contract import meta  # noqa: F401 - the adapter-parametrised fixture

T0 = datetime(2026, 12, 31, 23, 59, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_quota_is_exact_under_concurrency(meta) -> None:  # noqa: F811
    meter = UsageMeter(meta, clock=Clock(T0))
    limits = KeyLimits(tier="pilot")  # 500 classifications per month
    barrier = threading.Barrier(40)
    sizes = [(i % 7) + 10 for i in range(40)]  # 10..16 maps per request, 520 asked in total

    def worker(n: int) -> int:
        barrier.wait()
        try:
            meter.consume("key1", limits, n)
            return n
        except QuotaExceeded:
            return 0

    with ThreadPoolExecutor(40) as pool:
        granted = sum(pool.map(worker, sizes))
    assert 500 - 16 < granted <= 500
    assert meter.used("key1") == granted  # refused requests consumed nothing


def test_quota_error_names_quota_and_reset_and_month_rolls_over(meta) -> None:  # noqa: F811
    clock = Clock(T0)
    meter = UsageMeter(meta, clock=clock)
    limits = KeyLimits(tier="production", quotas={"classifications": 3})
    meter.consume("k", limits, 3)
    with pytest.raises(QuotaExceeded) as ei:
        meter.consume("k", limits, 1)
    e = ei.value
    assert (e.status, e.code) == (429, "quota_exceeded")
    assert e.detail == (
        "monthly quota 'classifications' of 3 reached (3 used, 1 more asked for this request); "
        "it resets at 2027-01-01T00:00:00Z"
    )
    assert e.headers == {"Retry-After": "60"}
    assert e.extra == {"quota": "classifications", "resets_at": "2027-01-01T00:00:00Z"}
    clock.t = T0 + 61  # January
    meter.consume("k", limits, 3)
    assert meter.used("k") == 3
    assert meter.quota_status("k", limits)["remaining"] == 0
    assert KeyLimits(tier="production").quota("classifications") is None  # production: set per key
    meter.consume("k", KeyLimits(tier="production"), 10_000)  # no quota: nothing counted, nothing refused


def test_usage_rows_grouping_and_csv(meta) -> None:  # noqa: F811
    clock = Clock(T0)
    meter = UsageMeter(meta, clock=clock)
    meter.record("ws", "k1", "/v1/classify")
    meter.record("ws", "k1", "/v1/classify", "classifications", 1)
    meter.record("ws", "k2", "/v1/batch")
    meter.record("ws", "k2", "/v1/batch", "classifications", 40)
    clock.t = T0 + 120
    meter.record("ws", "k1", "/v1/lots")
    meter.record("other", "k9", "/v1/lots")  # another workspace: never visible
    assert meter.rows("ws", None, None) == [
        {"day": "2026-12-31", "key_id": "k1", "route": "/v1/classify", "requests": 1, "classifications": 1},
        {"day": "2026-12-31", "key_id": "k2", "route": "/v1/batch", "requests": 1, "classifications": 40},
        {"day": "2027-01-01", "key_id": "k1", "route": "/v1/lots", "requests": 1, "classifications": 0},
    ]
    assert meter.grouped("ws", "2027-01-01", None, "key") == [{"key_id": "k1", "requests": 1, "classifications": 0}]
    assert meter.grouped("ws", None, "2026-12-31", "route") == [
        {"route": "/v1/batch", "requests": 1, "classifications": 40},
        {"route": "/v1/classify", "requests": 1, "classifications": 1},
    ]
    assert meter.csv("ws", None, "2026-12-31").splitlines() == [
        "day,key_id,route,requests,classifications",
        "2026-12-31,k1,/v1/classify,1,1",
        "2026-12-31,k2,/v1/batch,1,40",
    ]
