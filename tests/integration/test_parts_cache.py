"""The CLI's cache of ``parts`` rows (``stratum.query.parts_cache``): a one-shot runtime (what every ``stratum``
command builds) writes each lot snapshot's rows once and later processes read them; every answer equals the
views' own computation (a runtime with the cache off) and the server's materialised tables."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import duckdb
import pytest

from stratum.devtools.stdf.lots import LotSpec, write_lot
from stratum.errors import QueryRejected
from stratum.query.engine import Scope
from stratum.query.parts_cache import KEY_COLUMN, PartsCache
from stratum.runtime import Runtime
from stratum.settings import settings_for
from tests.conftest import corpus_file
from tests.fixtures.runtime import make_runtime

QUERIES = (
    "SELECT * FROM parts",
    "SELECT * FROM lots",
    "SELECT * FROM wafers",
    "SELECT * FROM bins",
    "SELECT lot_id, wafer_id, test_num, count(*), sum(result), count(*) FILTER (WHERE is_final) FROM results "
    "GROUP BY ALL",
    "SELECT count(*) FROM parts",
)


def one_shot(data: Path, **overrides) -> Runtime:
    return Runtime.from_settings(settings_for(data, backend="local", **overrides), one_shot=True)


def rows(rt: Runtime, sql: str, scope: Scope | None = None) -> list[tuple]:
    with rt.engine.session("default", scope) as s:
        return sorted(s.rows(sql), key=repr)


def cache_files(data: Path, ws: str = "default") -> set[str]:
    d = data / "cache" / "sql" / ws
    return {p.name for p in d.glob("*.parquet")} if d.is_dir() else set()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Two lots with retests across files: SEM-A ingested with the ``last`` policy, SEM-B with ``highest_bin``;
    SEM-A's last file is kept back (``extra``) for the tests that add a file."""
    d = tmp_path_factory.mktemp("parts-cache")
    a = write_lot(
        LotSpec(
            lot_id="SEM-A",
            wafers=("W01", "W02"),
            files=2,
            die_diameter=12,
            retest_fraction=0.5,
            retest_file=True,
            seed=3,
            sites=4,
        ),
        d / "a",
    )
    b = write_lot(
        LotSpec(
            lot_id="SEM-B",
            wafers=("W07",),
            files=1,
            die_diameter=10,
            retest_fraction=0.6,
            retest_file=True,
            seed=4,
            sites=2,
        ),
        d / "b",
    )
    data = d / "data"
    rt = make_runtime(data)
    for p in a.paths[:-1]:
        assert rt.ingest.ingest_path("default", p).status == "succeeded"
    hb = rt.ingest.default_options(retest_policy="highest_bin")
    for p in b.paths:
        assert rt.ingest.ingest_path("default", p, options=hb).status == "succeeded"
    rt.close()
    return data, a.paths[-1]


def test_cached_parts_equal_the_computed_rows(lake) -> None:
    data, _ = lake
    views, server = one_shot(data, sql={"cli_cache_mb": 0}), make_runtime(data)
    try:
        truth = {q: rows(views, q) for q in QUERIES}
        assert cache_files(data) == set()  # the cache off writes nothing
        assert all(rows(server, q) == truth[q] for q in QUERIES)
    finally:
        views.close()
        server.close()
    first = one_shot(data)
    try:
        assert all(rows(first, q) == truth[q] for q in QUERIES)
    finally:
        first.close()
    written = cache_files(data)
    assert len(written) == 2  # one file per lot
    mtimes = {p: p.stat().st_mtime_ns for p in (data / "cache" / "sql" / "default").iterdir()}
    again = one_shot(data)
    try:
        assert all(rows(again, q) == truth[q] for q in QUERIES)
        assert truth["SELECT count(*) FROM parts"][0][0] > 100
    finally:
        again.close()
    assert cache_files(data) == written
    assert {p.stat().st_ino for p in mtimes} == {
        p.stat().st_ino for p in (data / "cache" / "sql" / "default").iterdir()
    }


def test_later_processes_read_the_files(lake, tmp_path) -> None:
    """The rows come from the file: a file replaced by one with a row less shows one part less."""
    data, _ = lake
    rt = one_shot(data)
    try:
        (n,) = rows(rt, "SELECT count(*) FROM parts WHERE lot_id = 'SEM-B'")[0]
    finally:
        rt.close()
    cache = PartsCache(data / "cache" / "sql", 1 << 30)
    views = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        members = views.engine.resolve("default", Scope(lot_id="SEM-B")).members
    finally:
        views.close()
    path = cache.path("default", "SEM-B", "highest_bin", members)
    assert path.is_file()
    saved = path.read_bytes()
    try:
        con = duckdb.connect()
        one_less = tmp_path / "one_less.parquet"
        con.execute(f"COPY (SELECT * FROM read_parquet('{path}') LIMIT {n - 1}) TO '{one_less}' (FORMAT parquet)")
        con.close()
        os.replace(one_less, path)
        rt = one_shot(data)
        try:
            assert rows(rt, "SELECT count(*) FROM parts WHERE lot_id = 'SEM-B'") == [(n - 1,)]
        finally:
            rt.close()
    finally:
        path.write_bytes(saved)


def test_scopes_a_new_file_and_pinned_snapshots(lake, tmp_path) -> None:
    data, extra = lake
    rt = make_runtime(data)
    try:
        before = rt.catalog.get_lot("default", "SEM-A").active_job_id
        assert rt.ingest.ingest_path("default", extra).status == "succeeded"
    finally:
        rt.close()
    written = cache_files(data)
    scopes = [
        Scope(lot_id="SEM-A"),  # the lot's new snapshot: a new file
        Scope(lot_id="SEM-A", snapshot_job_id=before),  # the snapshot before it: its own file
        Scope(wafer_ids=["W01"]),  # wafers filtered before the windows: computed, not cached
        None,
    ]
    views = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        truth = [[rows(views, q, s) for q in QUERIES] for s in scopes]
    finally:
        views.close()
    rt = one_shot(data)
    try:
        for s, want in zip(scopes, truth, strict=True):
            assert [rows(rt, q, s) for q in QUERIES] == want, s
    finally:
        rt.close()
    # SEM-B's file, SEM-A's before the new file (the pinned snapshot's) and after it
    assert len(cache_files(data)) == 3 and written <= cache_files(data)
    assert truth[0][0] != truth[1][0]  # the added file changed SEM-A's parts


def test_a_directory_that_cannot_be_written_leaves_the_views(lake, tmp_path) -> None:
    data, _ = lake
    rt = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        want = rows(rt, "SELECT * FROM parts")
    finally:
        rt.close()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory would go")
    rt = one_shot(data)
    rt.engine.parts_cache = PartsCache(blocker / "sql", 1 << 30)
    try:
        assert rows(rt, "SELECT * FROM parts") == want
    finally:
        rt.close()
    # a lot's file over the budget is not kept either
    rt = one_shot(data)
    rt.engine.parts_cache = PartsCache(tmp_path / "small", 1)
    try:
        assert rows(rt, "SELECT * FROM parts") == want
    finally:
        rt.close()
    assert [p for p in (tmp_path / "small").rglob("*") if p.is_file()] == []


def test_eviction_keeps_the_budget_and_the_files_in_use(tmp_path) -> None:
    cache = PartsCache(tmp_path, 2500)
    d = cache.directory("default")
    d.mkdir()
    for i in range(5):
        p = d / f"f{i}.parquet"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
    (d / ".f9.abc.tmp").write_bytes(b"partial")
    os.utime(d / ".f9.abc.tmp", (1000, 1000))  # left by a process that died
    (d / ".f8.abc.tmp").write_bytes(b"partial")  # being written now
    (d / ".f7.tmp").mkdir()  # a batch's directory left by a process that died
    (d / ".f7.tmp" / "part").write_bytes(b"partial")
    os.utime(d / ".f7.tmp", (1000, 1000))
    cache.evict("default", [d / "f0.parquet"])
    assert sorted(p.name for p in d.iterdir()) == [".f8.abc.tmp", "f0.parquet", "f4.parquet"]


def test_another_process_evicting_the_files_does_not_fail_a_running_query(lake) -> None:
    """A reader's files evicted by another process (its budget full of other lots) between two queries of the
    reader's session: the reader goes on reading them through its private names (before: "No files found")."""
    data, _ = lake
    d = data / "cache" / "sql" / "default"
    rt = one_shot(data)
    try:
        with rt.engine.session("default") as s:
            (before,) = s.rows("SELECT count(*) FROM parts")
            assert cache_files(data) and list(d.glob("*.pin"))
            PartsCache(data / "cache" / "sql", 0).evict("default", [])  # another process, over its budget
            assert cache_files(data) == set()
            assert s.rows("SELECT count(*) FROM parts") == [before]
            assert s.rows(PARTS_FINAL) == views_rows(data, PARTS_FINAL)
    finally:
        rt.close()
    assert list(d.glob("*.pin")) == []  # released with the engine: the evicted files' bytes go with them
    again = one_shot(data)  # and a later process writes the files again
    try:
        assert rows(again, "SELECT count(*) FROM parts") == [before]
    finally:
        again.close()
    assert len(cache_files(data)) == 2


PARTS_FINAL = "SELECT count(*) FROM parts WHERE is_final"


def views_rows(data: Path, sql: str) -> list[tuple]:
    """The rows computed by the views (the cache off)."""
    rt = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        return rows(rt, sql)
    finally:
        rt.close()


def test_a_file_evicted_between_the_check_and_the_read_leaves_the_query_on_the_views(lake, monkeypatch) -> None:
    """The narrow race: another process removes a name after this one found it intact but before it pinned it;
    pinning fails and the view computes the rows (the same rows), never an error."""
    data, _ = lake
    truth = views_rows(data, "SELECT count(*) FROM parts")
    real_pin = PartsCache.pin

    def evict_first(self, paths):
        for p in paths:
            p.unlink()
        return real_pin(self, paths)

    monkeypatch.setattr(PartsCache, "pin", evict_first)
    rt = one_shot(data)
    try:
        assert rows(rt, "SELECT count(*) FROM parts") == truth
    finally:
        rt.close()


def test_private_names_of_processes_that_died_are_removed(tmp_path) -> None:
    cache = PartsCache(tmp_path, 1 << 20)
    d = cache.directory("default")
    d.mkdir()
    f = d / "f0.parquet"
    f.write_bytes(b"x" * 1000)
    dead = d / ".f0.999999999.abcd.pin"  # no such pid
    os.link(f, dead)
    mine = d / f".f0.{os.getpid()}.abcd.pin"
    os.link(f, mine)
    cache.evict("default", [])
    assert sorted(p.name for p in d.iterdir()) == sorted([mine.name, "f0.parquet"])


def test_user_sql_cannot_reach_the_files_and_other_workspaces_cannot_either(lake) -> None:
    data, _ = lake
    rt = one_shot(data)
    try:
        rows(rt, "SELECT count(*) FROM parts")
        (path,) = [p for p in (data / "cache" / "sql" / "default").glob("*.parquet")][:1]
        with pytest.raises(QueryRejected):
            rt.sql.run("default", f"SELECT count(*) FROM read_parquet('{path}')")
        # below the guard, the other workspace's database refuses the file (allowed_directories)
        with rt.engine.session("other") as s, pytest.raises(duckdb.PermissionException):
            s.cur.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
    finally:
        rt.close()


def test_a_lot_without_parts_has_an_empty_file_with_the_columns(tmp_path) -> None:
    data = tmp_path / "data"
    rt = make_runtime(data)
    try:
        assert rt.ingest.ingest_path("default", corpus_file("semiate_far_wir_only.stdf")).parts == 0
    finally:
        rt.close()
    views = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        want = (
            rows(views, "DESCRIBE SELECT * FROM parts"),
            rows(views, "SELECT count(*), count(DISTINCT lot_id) FROM parts"),
        )
    finally:
        views.close()
    for _ in range(2):  # writes the file, then reads it
        rt = one_shot(data)
        try:
            got = (
                rows(rt, "DESCRIBE SELECT * FROM parts"),
                rows(rt, "SELECT count(*), count(DISTINCT lot_id) FROM parts"),
            )
        finally:
            rt.close()
        assert got == want and want[1] == [(0, 0)]
        assert len(cache_files(data)) == 1


def test_the_session_interrupt_reaches_the_cursor_writing_the_cache(lake) -> None:
    """The query's time limit covers the cache write: interrupting the session interrupts the cursor that
    writes (``_Pending.aux``), so a timed-out query does not go on computing a lot's rows."""
    data, _ = lake
    rt = one_shot(data)
    try:
        ses = rt.engine.session("default")
        aux = rt.engine.database("default").cursor()
        assert ses._entry is not None and ses._entry.pending is not None
        ses._entry.pending.aux = aux
        stopped: list[BaseException] = []

        def work() -> None:
            try:
                aux.execute("SELECT sum(i) FROM range(100000000000) r(i)").fetchall()
            except duckdb.InterruptException as exc:
                stopped.append(exc)

        t = threading.Thread(target=work)
        t.start()
        time.sleep(0.3)
        ses.interrupt()
        t.join(30)
        assert not t.is_alive() and len(stopped) == 1
        ses._entry.pending.aux = None
        aux.close()
        ses.close()
    finally:
        rt.close()


def isolated(data: Path, root: Path, max_bytes: int = 1 << 30) -> Runtime:
    """A one-shot runtime whose cache lives under ``root`` (the module's lake stays untouched)."""
    rt = one_shot(data)
    rt.engine.parts_cache = PartsCache(root, max_bytes)
    return rt


def test_a_torn_or_empty_cache_file_is_written_again(lake, tmp_path) -> None:
    """A file cut short (or left empty by a crash before its data reached the disk) is not read: the query
    answers from the views and the file is written again."""
    data, _ = lake
    views = one_shot(data, sql={"cli_cache_mb": 0})
    try:
        want = rows(views, "SELECT * FROM parts")
    finally:
        views.close()
    root = tmp_path / "cache"
    for damage in (None, lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b[:-1]):
        if damage is not None:
            for p in (root / "default").glob("*.parquet"):
                p.write_bytes(damage(p.read_bytes()))
        rt = isolated(data, root)
        try:
            assert rows(rt, "SELECT * FROM parts") == want
        finally:
            rt.close()
        files = list((root / "default").glob("*.parquet"))
        assert len(files) == 2 and all(p.read_bytes()[-4:] == b"PAR1" for p in files)


def test_the_budget_holds_when_a_lot_is_too_big_to_keep(lake, tmp_path) -> None:
    """A lot's file over the budget is not kept, and the other files still go past the budget (a directory
    left over a lowered ``sql.cli_cache_mb``)."""
    data, _ = lake
    root = tmp_path / "cache"
    rt = isolated(data, root)
    try:
        want = rows(rt, "SELECT * FROM parts")
    finally:
        rt.close()
    sizes = sorted(p.stat().st_size for p in (root / "default").glob("*.parquet"))
    assert len(sizes) == 2 and sizes[1] - sizes[0] > 1000
    budget = (sizes[0] + sizes[1]) // 2  # the smaller lot's file fits, the larger one's does not
    shutil.rmtree(root)
    d = root / "default"
    d.mkdir(parents=True)
    for i in range(2):
        (d / f"old{i}.parquet").write_bytes(b"x" * budget)
        os.utime(d / f"old{i}.parquet", (1000, 1000))
    rt = isolated(data, root, budget)
    try:
        assert rows(rt, "SELECT * FROM parts") == want
    finally:
        rt.close()
    kept = [p.stat().st_size for p in d.glob("*.parquet")]
    assert len(kept) == 1 and kept[0] < budget and not (d / "old0.parquet").exists()


def test_a_data_directory_named_like_a_hive_partition(lake, tmp_path) -> None:
    """A ``key=value`` directory above the cache adds no column to ``parts`` (DuckDB's hive partitioning)."""
    data, _ = lake
    copy = tmp_path / "site=fab1" / "data"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("cache"))
    queries = ("DESCRIBE SELECT * FROM parts", "SELECT * FROM parts")
    views = one_shot(copy, sql={"cli_cache_mb": 0})
    try:
        want = [rows(views, q) for q in queries]
    finally:
        views.close()
    assert "site" not in {r[0] for r in want[0]}
    for _ in range(2):  # writes the files, then reads them
        rt = one_shot(copy)
        try:
            assert [rows(rt, q) for q in queries] == want
        finally:
            rt.close()
    assert len(cache_files(copy)) == 2


def test_a_second_writer_leaves_the_first_file_in_place(tmp_path) -> None:
    """Processes that miss the same lot at once each write it; the first name stays (same inode): a reader must
    never see the bytes under a name change (DuckDB opens a file more than once per query: with another
    writer's file, same rows in another layout, in between, it failed to decode it)."""
    cache = PartsCache(tmp_path, 1 << 30)
    target = cache.directory("default") / "k.parquet"
    con = duckdb.connect()

    def writer(n: int):
        def copy(tmp: str) -> None:
            con.execute(
                f"COPY (SELECT {n} AS v, 'k' AS {KEY_COLUMN}) TO '{tmp}' (FORMAT parquet, PARTITION_BY ({KEY_COLUMN}))"
            )

        return copy

    def content() -> list[tuple]:
        return con.execute(f"SELECT v FROM read_parquet('{target}')").fetchall()

    assert cache.write([target], writer(1), lambda tmp: None)
    ino = target.stat().st_ino
    assert cache.write([target], writer(2), lambda tmp: None)
    assert (target.stat().st_ino, content()) == (ino, [(1,)])
    target.write_bytes(target.read_bytes()[:-1])  # cut short: written again
    assert cache.write([target], writer(3), lambda tmp: None)
    assert content() == [(3,)]
    assert [p.name for p in target.parent.iterdir()] == ["k.parquet"]
