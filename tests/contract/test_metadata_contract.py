"""MetadataStore contract: every adapter passes the same suite (SQLite file, SQLite in memory,
DynamoDB on the moto server)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from stratum.storage.metadata import ABSENT, ANY, PRESENT, Check, ConditionFailed, Delete, MetadataStore, Put
from stratum.storage.sqlite import SqliteMetadataStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory", pytest.param("dynamo", marks=pytest.mark.aws)])
def meta(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite-file":
        store: MetadataStore = SqliteMetadataStore(tmp_path / "meta" / "stratum.db")
    elif request.param == "sqlite-memory":
        store = SqliteMetadataStore(":memory:")
    else:
        store = request.getfixturevalue("dynamo_store")
    yield store
    store.close()


def now() -> int:
    return int(time.time())


def state(meta: MetadataStore, pk: str, sk: str) -> tuple | None:
    it = meta.get(pk, sk)
    return None if it is None else (it.data, it.version, it.ttl, it.gsi1, it.gsi2)


# --- get / put / delete ---------------------------------------------------------------------------
def test_put_get_versions(meta: MetadataStore) -> None:
    assert meta.get("job#1", "meta") is None
    first = meta.put("job#1", "meta", {"state": "queued", "n": [1, 2], "nested": {"ok": True}, "f": 1.5})
    assert first.version == 1
    second = meta.put("job#1", "meta", {"state": "running"}, ttl=now() + 3600, gsi1=("lot#L1", "job#1"))
    assert second.version == 2 and second.data == {"state": "running"}
    got = meta.get("job#1", "meta")
    assert got is not None
    assert (got.pk, got.sk, got.data, got.version) == ("job#1", "meta", {"state": "running"}, 2)
    assert got.ttl == second.ttl and got.gsi1 == ("lot#L1", "job#1") and got.gsi2 is None
    assert meta.get("job#1", "meta", consistent=False) is not None
    third = meta.put("job#1", "meta", {"state": "done", "unicode": "\u00b5A \u2603"})
    assert third.version == 3
    got = meta.get("job#1", "meta")
    assert got is not None and got.ttl is None and got.gsi1 is None  # put replaces the whole item
    assert got.data == {"state": "done", "unicode": "\u00b5A \u2603"}


def test_expect_absent(meta: MetadataStore) -> None:
    assert meta.put("k", "a", {"v": 1}, expect=ABSENT).version == 1
    with pytest.raises(ConditionFailed):
        meta.put("k", "a", {"v": 2}, expect=ABSENT)
    assert state(meta, "k", "a") == ({"v": 1}, 1, None, None, None)


def test_expect_present(meta: MetadataStore) -> None:
    with pytest.raises(ConditionFailed):
        meta.put("k", "p", {"v": 1}, expect=PRESENT)
    assert meta.get("k", "p") is None
    meta.put("k", "p", {"v": 1})
    assert meta.put("k", "p", {"v": 2}, expect=PRESENT).version == 2


def test_expect_version(meta: MetadataStore) -> None:
    with pytest.raises(ConditionFailed):
        meta.put("k", "v", {"v": 0}, expect=1)  # absent: no version matches
    meta.put("k", "v", {"v": 1})
    assert meta.put("k", "v", {"v": 2}, expect=1).version == 2
    with pytest.raises(ConditionFailed):
        meta.put("k", "v", {"v": "stale"}, expect=1, gsi1=("x", "y"))
    assert state(meta, "k", "v") == ({"v": 2}, 2, None, None, None)
    assert meta.put("k", "v", {"v": 3}, expect=ANY).version == 3


def test_delete_conditions(meta: MetadataStore) -> None:
    meta.delete("k", "missing")  # ANY: not an error
    meta.delete("k", "missing", expect=ABSENT)
    with pytest.raises(ConditionFailed):
        meta.delete("k", "missing", expect=PRESENT)
    with pytest.raises(ConditionFailed):
        meta.delete("k", "missing", expect=1)
    meta.put("k", "d", {"x": 1})
    meta.put("k", "d", {"x": 2})
    with pytest.raises(ConditionFailed):
        meta.delete("k", "d", expect=1)
    with pytest.raises(ConditionFailed):
        meta.delete("k", "d", expect=ABSENT)
    assert state(meta, "k", "d") == ({"x": 2}, 2, None, None, None)
    meta.delete("k", "d", expect=2)
    assert meta.get("k", "d") is None
    meta.put("k", "d", {"x": 3})
    meta.delete("k", "d", expect=PRESENT)
    assert meta.get("k", "d") is None
    assert meta.put("k", "d", {"x": 4}).version == 1  # a new item starts over


def test_validation(meta: MetadataStore) -> None:
    with pytest.raises(ValueError):
        meta.put("", "sk", {})
    with pytest.raises(ValueError):
        meta.put("pk", "", {})
    with pytest.raises(ValueError):
        meta.put("pk", "sk", {}, expect="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        meta.put("pk", "sk", {}, gsi1=("", "x"))
    with pytest.raises(ValueError):
        meta.put("pk", "sk", {"blob": "x" * 400_000})
    with pytest.raises(TypeError):
        meta.put("pk", "sk", {"bad": object()})
    with pytest.raises(ValueError):
        meta.transact([Put("a", "1", {}), Delete("a", "1")])  # one operation per item
    assert meta.get("pk", "sk") is None and meta.get("a", "1") is None


# --- transactions ---------------------------------------------------------------------------------
def test_transact_applies_everything(meta: MetadataStore) -> None:
    meta.put("lot#1", "meta", {"jobs": 0})
    meta.put("lot#1", "old", {"x": 1})
    result = meta.transact(
        [
            Put("lot#1", "meta", {"jobs": 1}, expect=1),
            Put("lot#1", "job#a", {"state": "queued"}, expect=ABSENT, gsi1=("queue", "0001")),
            Put("lot#1", "any", {"a": 1}),
            Delete("lot#1", "old", expect=PRESENT),
            Check("ws#1", "meta", expect=ABSENT),
        ]
    )
    assert result.versions == {("lot#1", "meta"): 2, ("lot#1", "job#a"): 1, ("lot#1", "any"): 1}
    assert state(meta, "lot#1", "meta") == ({"jobs": 1}, 2, None, None, None)
    assert state(meta, "lot#1", "job#a") == ({"state": "queued"}, 1, None, ("queue", "0001"), None)
    assert meta.get("lot#1", "old") is None
    assert meta.transact([]).versions == {}


@pytest.mark.parametrize(
    "failing",
    [
        Check("ws#1", "meta", expect=PRESENT),  # a failing Check rolls back the writes
        Check("ws#1", "taken", expect=ABSENT),
        Put("ws#1", "taken", {}, expect=ABSENT),
        Put("ws#1", "taken", {}, expect=7),
        Delete("ws#1", "taken", expect=3),
        Put("ws#1", "nothing", {}, expect=PRESENT),
    ],
    ids=["check-present", "check-absent", "put-absent", "put-version", "delete-version", "put-present"],
)
def test_transact_all_or_nothing(meta: MetadataStore, failing) -> None:
    meta.put("ws#1", "taken", {"owner": "a"})
    meta.put("ws#1", "counter", {"n": 5})
    before = {sk: state(meta, "ws#1", sk) for sk in ("taken", "counter", "new", "nothing")}
    with pytest.raises(ConditionFailed):
        meta.transact(
            [
                Put("ws#1", "new", {"created": True}, expect=ABSENT),
                Put("ws#1", "counter", {"n": 6}, expect=1),
                failing,
            ]
        )
    assert {sk: state(meta, "ws#1", sk) for sk in before} == before


# --- queries --------------------------------------------------------------------------------------
def seed(meta: MetadataStore) -> None:
    for i in range(25):
        meta.put("lot#1", f"wafer#{i:02d}", {"i": i})
    for i in range(3):
        meta.put("lot#1", f"job#{i}", {"j": i})
    meta.put("lot#2", "wafer#00", {"other": True})


def sks(page) -> list[str]:
    return [it.sk for it in page.items]


def test_query_order_prefix_range(meta: MetadataStore) -> None:
    seed(meta)
    wafers = [f"wafer#{i:02d}" for i in range(25)]
    assert sks(meta.query("lot#1", prefix="wafer#")) == wafers
    assert sks(meta.query("lot#1", prefix="wafer#", descending=True)) == wafers[::-1]
    assert sks(meta.query("lot#1")) == ["job#0", "job#1", "job#2", *wafers]
    assert sks(meta.query("lot#1", start="wafer#05", end="wafer#09")) == wafers[5:10]  # inclusive
    assert sks(meta.query("lot#1", start="wafer#20")) == wafers[20:]
    assert sks(meta.query("lot#1", end="job#1")) == ["job#0", "job#1"]
    assert sks(meta.query("lot#1", prefix="wafer#1", start="wafer#15", end="wafer#99")) == wafers[15:20]
    assert sks(meta.query("lot#1", prefix="wafer#", start="a", end="wafer#01", descending=True)) == wafers[1::-1]
    assert sks(meta.query("lot#1", prefix="job#", start="wafer#")) == []
    assert sks(meta.query("lot#1", prefix="nothing")) == []
    assert sks(meta.query("lot#3")) == []
    page = meta.query("lot#1", prefix="wafer#1", limit=100)
    assert [it.data["i"] for it in page.items] == list(range(10, 20)) and page.cursor is None


@pytest.mark.parametrize("descending", [False, True])
def test_query_pagination(meta: MetadataStore, descending: bool) -> None:
    seed(meta)
    expected = sks(meta.query("lot#1", prefix="wafer#", descending=descending))
    got, cursor, pages = [], None, 0
    while True:
        page = meta.query("lot#1", prefix="wafer#", descending=descending, limit=10, cursor=cursor)
        got += sks(page)
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
        assert len(page.items) == 10
    assert got == expected and pages == 3
    exact = meta.query("lot#1", prefix="job#", limit=3)  # exactly one full page: no dangling cursor
    assert len(exact.items) == 3 and exact.cursor is None


def test_cursor_is_stable_under_concurrent_writes(meta: MetadataStore) -> None:
    seed(meta)
    first = meta.query("lot#1", prefix="wafer#", limit=10)
    assert sks(first)[-1] == "wafer#09"
    meta.put("lot#1", "wafer#05x", {"late": "before the cursor"})
    meta.put("lot#1", "wafer#10x", {"late": "after the cursor"})
    meta.delete("lot#1", "wafer#10")
    second = meta.query("lot#1", prefix="wafer#", limit=10, cursor=first.cursor)
    assert sks(second) == ["wafer#10x", *[f"wafer#{i}" for i in range(11, 20)]]


def test_bad_cursors(meta: MetadataStore) -> None:
    seed(meta)
    cursor = meta.query("lot#1", limit=2).cursor
    assert cursor is not None
    for call in (
        lambda: meta.query("lot#1", cursor="not a cursor!"),
        lambda: meta.query("lot#2", cursor=cursor),
        lambda: meta.query("lot#1", index="gsi1", cursor=cursor),
        lambda: meta.query("lot#1", descending=True, cursor=cursor),
    ):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("index", ["gsi1", "gsi2"])
def test_secondary_indexes(meta: MetadataStore, index: str) -> None:
    other = "gsi2" if index == "gsi1" else "gsi1"
    for i in range(12):
        meta.put(f"job#{i:02d}", "meta", {"i": i}, **{index: ("state#queued", f"t#{i:03d}"), other: ("x", f"{i}")})
    meta.put("job#99", "meta", {"no": "index"})
    meta.put("job#98", "meta", {"i": 98}, **{index: ("state#done", "t#000")})
    page = meta.query("state#queued", index=index)  # type: ignore[arg-type]
    assert [it.pk for it in page.items] == [f"job#{i:02d}" for i in range(12)]
    assert page.items[0].data == {"i": 0} and getattr(page.items[0], index) == ("state#queued", "t#000")
    got, cursor = [], None
    while True:
        page = meta.query("state#queued", index=index, prefix="t#0", descending=True, limit=5, cursor=cursor)  # type: ignore[arg-type]
        got += [it.pk for it in page.items]
        if (cursor := page.cursor) is None:
            break
    assert got == [f"job#{i:02d}" for i in range(11, -1, -1)]
    assert [it.pk for it in meta.query("state#queued", index=index, start="t#004", end="t#006").items] == [  # type: ignore[arg-type]
        "job#04",
        "job#05",
        "job#06",
    ]
    meta.put("job#00", "meta", {"i": 0})  # rewriting without the index key drops it from the index
    assert "job#00" not in [it.pk for it in meta.query("state#queued", index=index).items]  # type: ignore[arg-type]


def test_index_ties_are_paged_without_loss(meta: MetadataStore) -> None:
    for i in range(7):
        meta.put("lot#9", f"w#{i}", {}, gsi1=("same", "same-sort-key"))
    got, cursor = [], None
    while True:
        page = meta.query("same", index="gsi1", limit=3, cursor=cursor)
        got += [(it.pk, it.sk) for it in page.items]
        if (cursor := page.cursor) is None:
            break
    assert sorted(got) == [("lot#9", f"w#{i}") for i in range(7)]


# --- TTL ------------------------------------------------------------------------------------------
def test_expired_items_are_invisible(meta: MetadataStore) -> None:
    past, future = now() - 10, now() + 3600
    meta.put("sess", "old", {"x": 1}, ttl=past, gsi1=("g", "old"))
    meta.put("sess", "new", {"x": 2}, ttl=future, gsi1=("g", "new"))
    assert meta.get("sess", "old") is None
    assert meta.get("sess", "new").ttl == future  # type: ignore[union-attr]
    assert sks(meta.query("sess")) == ["new"]
    assert [it.sk for it in meta.query("g", index="gsi1").items] == ["new"]
    # conditions treat the expired item as absent
    with pytest.raises(ConditionFailed):
        meta.put("sess", "old", {"x": 3}, expect=PRESENT)
    with pytest.raises(ConditionFailed):
        meta.put("sess", "old", {"x": 3}, expect=1)
    with pytest.raises(ConditionFailed):
        meta.delete("sess", "old", expect=PRESENT)
    with pytest.raises(ConditionFailed):
        meta.transact([Check("sess", "old", expect=PRESENT)])
    meta.transact([Check("sess", "old", expect=ABSENT)])
    assert meta.put("sess", "old", {"x": 4}, expect=ABSENT).version == 1
    assert state(meta, "sess", "old") == ({"x": 4}, 1, None, None, None)
    meta.put("sess", "gone", {"x": 5}, ttl=past)
    assert meta.put("sess", "gone", {"x": 6}).version == 1  # ANY over an expired item: a new item


# --- counters -------------------------------------------------------------------------------------
def test_increment(meta: MetadataStore) -> None:
    assert meta.increment("rl#key1", "w#1") == 1
    assert meta.increment("rl#key1", "w#1", amount=5) == 6
    assert meta.increment("rl#key1", "w#1", amount=2, ceiling=7) is None  # 8 > 7: refused, unchanged
    assert meta.increment("rl#key1", "w#1", amount=1, ceiling=7) == 7
    assert meta.increment("rl#key1", "w#1", amount=1, ceiling=7) is None
    assert meta.increment("rl#key1", "w#1", amount=0) == 7
    assert meta.increment("rl#key1", "w#1", amount=-3) == 4
    assert meta.increment("rl#key1", "w#2", amount=5, ceiling=4) is None
    assert meta.get("rl#key1", "w#2") is None  # a refused increment creates nothing
    counter = meta.get("rl#key1", "w#1")
    assert counter is not None and counter.data == {} and counter.version == 0  # counter-only item
    assert meta.put("rl#key1", "w#1", {"d": 1}, expect=0).version == 1
    assert meta.increment("rl#key1", "w#1", amount=0) == 0  # put replaced the whole item, counter included
    assert meta.increment("rl#key1", "w#1", amount=2) == 2
    assert state(meta, "rl#key1", "w#1") == ({"d": 1}, 1, None, None, None)  # the counter lives beside data


def test_increment_ttl_and_expiry(meta: MetadataStore) -> None:
    past, future = now() - 5, now() + 60
    assert meta.increment("rl", "window", amount=3, ttl=past) == 3  # created already expired
    assert meta.get("rl", "window") is None
    assert meta.increment("rl", "window", ceiling=1, ttl=future) == 1  # the expired counter restarts
    assert meta.get("rl", "window").ttl == future  # type: ignore[union-attr]
    assert meta.increment("rl", "window", ceiling=1) is None
    assert meta.increment("rl", "window") == 2
    assert meta.get("rl", "window").ttl == future  # type: ignore[union-attr]  # kept when not given


# --- concurrency ----------------------------------------------------------------------------------
def cas_loop(meta: MetadataStore, attempts: int, pk: str = "ctr", sk: str = "x") -> int:
    """Read-modify-write with optimistic locking; returns the number of successful updates."""
    ok = 0
    for _ in range(attempts):
        item = meta.get(pk, sk)
        assert item is not None
        try:
            meta.put(pk, sk, {"count": item.data["count"] + 1}, expect=item.version)
        except ConditionFailed:
            continue
        ok += 1
    return ok


def test_concurrent_cas_never_loses_an_update(meta: MetadataStore) -> None:
    meta.put("ctr", "x", {"count": 0})
    barrier = threading.Barrier(16)

    def worker(_: int) -> int:
        barrier.wait()
        return cas_loop(meta, attempts=12)

    with ThreadPoolExecutor(16) as pool:
        successes = sum(pool.map(worker, range(16)))
    final = meta.get("ctr", "x")
    assert final is not None
    assert successes > 0
    assert final.data["count"] == successes
    assert final.version == successes + 1


def test_concurrent_increments_respect_the_ceiling(meta: MetadataStore) -> None:
    barrier = threading.Barrier(50)

    def worker(_: int) -> bool:
        barrier.wait()
        return meta.increment("rl#k", "w", ceiling=30, ttl=now() + 600) is not None

    with ThreadPoolExecutor(50) as pool:
        allowed = sum(pool.map(worker, range(50)))
    assert allowed == 30
    assert meta.increment("rl#k", "w", amount=0) == 30


def test_concurrent_puts_with_any_keep_counting_versions(meta: MetadataStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: meta.put("v", "any", {"i": i}), range(40)))
    assert meta.get("v", "any").version == 40  # type: ignore[union-attr]


# SQLite across processes: two processes (spawned, so no inherited connections), each with threads
def _process_worker(path: str) -> tuple[int, int]:
    store = SqliteMetadataStore(path)
    try:
        with ThreadPoolExecutor(4) as pool:
            cas = sum(pool.map(lambda _: cas_loop(store, attempts=10), range(4)))
            incs = sum(pool.map(lambda _: store.increment("rl#k", "w", ceiling=30) is not None, range(25)))
        return cas, incs
    finally:
        store.close()


def test_sqlite_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = SqliteMetadataStore(path)
    store.put("ctr", "x", {"count": 0})
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_process_worker, [path, path]))
    cas = sum(r[0] for r in results)
    assert cas > 0
    assert store.get("ctr", "x").data["count"] == cas  # type: ignore[union-attr]
    assert sum(r[1] for r in results) == 30
    assert store.increment("rl#k", "w", amount=0) == 30
    store.close()


# --- adapter specifics ----------------------------------------------------------------------------
def test_sqlite_uses_wal_and_purges_expired_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "m.db"
    store = SqliteMetadataStore(path)
    store.put("a", "expired", {}, ttl=now() - 100)
    store._last_purge = 0  # the next write may purge
    store.put("a", "live", {})
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert con.execute("SELECT sk FROM items").fetchall() == [("live",)]
    con.close()
    store.close()


def test_factory_builds_the_configured_metadata_store(tmp_path: Path) -> None:
    from stratum.settings import Settings
    from stratum.storage.dynamodb import DynamoMetadataStore
    from stratum.storage.factory import build_metadata_store

    local = build_metadata_store(Settings(backend="local", data_dir=tmp_path))
    assert isinstance(local, SqliteMetadataStore) and (tmp_path / "stratum.db").exists()
    local.close()
    aws = Settings.model_validate(
        {"backend": "aws", "aws": {"metadata_table": "meta", "region": "eu-west-1", "endpoint_url": ""}}
    )
    dyn = build_metadata_store(aws)
    assert isinstance(dyn, DynamoMetadataStore) and dyn.table_name == "meta" and dyn.endpoint_url is None
    assert dyn.client.meta.region_name == "eu-west-1"
    with pytest.raises(ValueError):
        build_metadata_store(Settings.model_validate({"backend": "aws"}))


@pytest.mark.aws
def test_dynamo_table_matches_the_definition(dynamo_store) -> None:
    from stratum.storage.dynamodb import table_definition

    desc = dynamo_store.client.describe_table(TableName=dynamo_store.table_name)["Table"]
    want = table_definition(dynamo_store.table_name)
    assert desc["KeySchema"] == want["KeySchema"]
    assert {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in desc["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in want["GlobalSecondaryIndexes"]
    }
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamo_store.client.describe_time_to_live(TableName=dynamo_store.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    dynamo_store.create_table()  # idempotent
