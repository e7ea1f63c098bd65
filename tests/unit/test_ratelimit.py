"""Rate limiter: fixed windows with an injected clock, headers, and exact limits under concurrency on
SQLite (file, several connections) and DynamoDB (moto server)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stratum.auth.ratelimit import BUCKETS, Decision, RateLimiter
from stratum.settings import RateLimits
from stratum.storage.sqlite import SqliteMetadataStore


def window_base(w: int = 60) -> int:
    """The start of the current real window. Injected times stay near real time because the store's
    TTL (window end + 60 s) is judged against the wall clock: a counter from the distant past would
    already count as expired."""
    return int(time.time()) // w * w


@pytest.fixture
def meta(tmp_path: Path):
    store = SqliteMetadataStore(tmp_path / "meta" / "stratum.db")
    yield store
    store.close()


def test_fixed_window(meta) -> None:
    limits = RateLimits(window_seconds=60, analytics_per_window=3, sql_per_window=2, uploads_per_window=1)
    now = [float(window_base() + 10)]
    rl = RateLimiter(meta, limits, clock=lambda: now[0])
    start = int(now[0]) - 10
    got = [rl.check("k1", "analytics") for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert all(d.limit == 3 and d.reset_epoch == start + 60 for d in got)
    assert got[0].reset_seconds == 50 and got[0].retry_after_seconds == 0
    assert got[3].retry_after_seconds == 50
    # refusals consume nothing: still refused, counter stays at the limit
    now[0] += 49.5
    d = rl.check("k1", "analytics")
    assert not d.allowed and d.retry_after_seconds == 1 and d.reset_seconds == 1  # ceil(0.5), at least 1
    assert meta.get("RL#k1#analytics", str(start)) is not None
    # buckets and keys are independent
    assert [rl.check("k1", "sql").allowed for _ in range(3)] == [True, True, False]
    assert [rl.check("k1", "uploads").allowed for _ in range(2)] == [True, False]
    assert rl.check("k2", "analytics").allowed
    # the next window starts afresh, exactly at the boundary
    now[0] = start + 60
    d = rl.check("k1", "analytics")
    assert d.allowed and d.remaining == 2 and d.reset_epoch == start + 120 and d.reset_seconds == 60
    # explicit now= overrides the clock
    assert not rl.check("k1", "uploads", now=start + 30).allowed
    assert rl.check("k1", "uploads", now=start + 60).allowed


def test_counter_item_and_ttl(meta, monkeypatch) -> None:
    calls = []
    real = meta.increment
    monkeypatch.setattr(meta, "increment", lambda pk, sk, **kw: calls.append((pk, sk, kw)) or real(pk, sk, **kw))
    base = window_base(30)
    rl = RateLimiter(meta, RateLimits(window_seconds=30, sql_per_window=5))
    rl.check("abc", "sql", now=base + 7.9)
    assert calls == [("RL#abc#sql", str(base), {"amount": 1, "ceiling": 5, "ttl": base + 30 + 60})]


def test_headers() -> None:
    ok = Decision(True, 60, 59, 1_800_000_060, 0, 42)
    assert ok.headers() == {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "42"}
    no = Decision(False, 60, 0, 1_800_000_060, 42, 42)
    assert no.headers() == {
        "x-ratelimit-limit": "60",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "42",
        "Retry-After": "42",
    }


def test_headers_from_checks(meta) -> None:
    base = window_base()
    rl = RateLimiter(meta, RateLimits(uploads_per_window=1))
    h1 = rl.check("k", "uploads", now=base + 15.2).headers()
    h2 = rl.check("k", "uploads", now=base + 15.2).headers()
    assert h1 == {"x-ratelimit-limit": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "45"}
    assert h2 == {**h1, "Retry-After": "45"}


def test_defaults_and_validation(meta) -> None:
    rl = RateLimiter(meta, RateLimits())
    assert [rl.limit_for(b) for b in BUCKETS] == [60, 30, 10, 100]
    with pytest.raises(ValueError):
        rl.check("k", "presign")  # routes map to buckets in the caller; unknown buckets are refused loudly
    with pytest.raises(ValueError):
        rl.check("", "sql")
    with pytest.raises(ValueError):
        rl.check("a#b", "sql")
    with pytest.raises(ValueError):
        RateLimiter(meta, RateLimits(window_seconds=0))
    closed = RateLimiter(meta, RateLimits(sql_per_window=0))
    d = closed.check("k", "sql")
    assert not d.allowed and d.limit == 0 and "Retry-After" in d.headers()  # a zero limit fails closed


# --- concurrency ------------------------------------------------------------------------------
THREADS = 40
LIMIT = 10


def hammer(make_limiter, now: float, rounds: int = 2) -> list[bool]:
    """THREADS threads released together, each checking the same bucket ``rounds`` times at ``now``
    (pinned, so the run cannot straddle a window boundary)."""
    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> list[bool]:
        rl = make_limiter(i)
        barrier.wait()
        return [rl.check("hotkey", "sql", now=now).allowed for _ in range(rounds)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    return [a for r in results for a in r]


def test_concurrent_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "rl" / "stratum.db"
    shared = SqliteMetadataStore(path)
    limits = RateLimits(sql_per_window=LIMIT)
    # half the threads share one store (one connection per thread), half open their own (like processes)
    stores = [shared if i % 2 else SqliteMetadataStore(path) for i in range(THREADS)]
    try:
        base = window_base()
        allowed = hammer(lambda i: RateLimiter(stores[i], limits), base + 1.0)
        assert sum(allowed) == LIMIT and len(allowed) == THREADS * 2
        assert shared.get("RL#hotkey#sql", str(base)) is not None
    finally:
        for s in {id(s): s for s in stores}.values():
            s.close()


@pytest.mark.aws
def test_concurrent_dynamodb(dynamo_store) -> None:
    limits = RateLimits(sql_per_window=LIMIT)
    base = window_base()
    allowed = hammer(lambda i: RateLimiter(dynamo_store, limits), base + 1.0)
    assert sum(allowed) == LIMIT and len(allowed) == THREADS * 2
    # and the next window is independent, with the TTL set for DynamoDB to purge the old counters
    rl = RateLimiter(dynamo_store, limits)
    assert rl.check("hotkey", "sql", now=base + 61).allowed
    raw = dynamo_store.client.get_item(
        TableName=dynamo_store.table_name, Key={"pk": {"S": "RL#hotkey#sql"}, "sk": {"S": str(base)}}
    )["Item"]
    assert int(raw["n"]["N"]) == LIMIT and int(raw["ttl"]["N"]) == base + 60 + 60
