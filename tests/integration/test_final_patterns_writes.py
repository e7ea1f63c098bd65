"""``wafer_patterns_final`` objects: pyarrow writes them where it is loaded, DuckDB (cursors of one in-process
database, ``stratum.lake.final_patterns.connection``) otherwise. Both give the same Arrow schema, DuckDB types and
rows; writes from several threads at once each produce exactly their own rows (every DuckDB cursor has its own
temporary table), and an object that exists is left alone."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from stratum.lake import final_patterns
from stratum.lake.schema import arrow_schema
from stratum.storage.local import LocalObjectStore

AT = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)


def _rows(i: int) -> list[tuple]:
    """Wafer ``i``'s classification: i + 1 ranked rows, every value derived from i."""
    return [
        (f"class_{i}_{r}", "edge", "ring", "high", None, round(0.5 + i / 100 + r / 1000, 6), 10 * i + r, f"w{i} r{r}")
        for r in range(i + 1)
    ]


def _write(store: LocalObjectStore, i: int, publish_seq: int = 1) -> bool:
    return final_patterns.write(
        store,
        "default",
        lot_id="LOT-1",
        wafer_id=f"W{i:02d}",
        job_id="job_01J00000000000000000000000",
        classifier_version="v-test",
        publish_seq=publish_seq,
        classified_at=AT,
        rows=_rows(i),
    )


WRITERS = {"pyarrow": "parquet-cpp-arrow", "duckdb": "DuckDB"}  # writer -> how its files' created_by starts


@pytest.fixture(params=sorted(WRITERS))
def writer(request, monkeypatch) -> str:
    """Which writer ``write`` takes: pyarrow.parquet is loaded in this process; hiding it is a process that carries
    DuckDB only (the API and monitors functions)."""
    if request.param == "duckdb":
        monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    return request.param


def _created_by(path: Path) -> str:
    return pq.ParquetFile(path).metadata.created_by


def test_concurrent_writes_each_hold_their_own_rows(tmp_path: Path, writer: str) -> None:
    store = LocalObjectStore(tmp_path / "lake")
    done: list[bool] = []
    threads = [threading.Thread(target=lambda i=i: done.append(_write(store, i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [True] * 8
    assert _write(store, 3, publish_seq=2) is False  # exists: left as it is
    keys = sorted(o.key for o in store.list("workspaces/default/"))
    assert len(keys) == 8
    assert {_created_by(tmp_path / "lake" / k).startswith(WRITERS[writer]) for k in keys} == {True}
    con = duckdb.connect()
    got = con.execute(
        f"""SELECT wafer_id, rank, class_id, confidence, die_count, summary, publish_seq, classified_at
            FROM read_parquet({[str(tmp_path / "lake" / k) for k in keys]}) ORDER BY wafer_id, rank"""
    ).fetchall()
    want = [
        (f"W{i:02d}", r + 1, row[0], row[5], row[6], row[7], 1, AT.replace(tzinfo=None))
        for i in range(8)
        for r, row in enumerate(_rows(i))
    ]
    assert got == want


# A wafer's classification with what a writer could get wrong: nulls (refinement, confidence), non-ASCII text and
# a quote, a large publish_seq, sub-second time; and the 'none' row of a wafer without a pattern
PATTERNS = [
    ("edge_ring/edge/high", "edge_ring", "edge", "high", None, 0.9375, 412, "ring at r ≥ 0.9 — 412 dies, 'Ø' µ"),
    ("scratch/mid/med/ne", "scratch", "mid", "med", "ne", None, 37, "scratch 北东 (37 dies)"),
    ("cluster/center/low", "cluster", "center", "low", "", 0.0, 0, ""),
]
NONE_ROW = [("none/global/low", "none", "global", "low", None, None, 5234, "no spatial pattern")]
AT_US = datetime(2026, 12, 5, 4, 30, 1, 123456, tzinfo=UTC)


def _one(tmp_path: Path, name: str, rows: list[tuple], hide_pyarrow: bool) -> Path:
    store = LocalObjectStore(tmp_path / name)
    saved = sys.modules["pyarrow.parquet"]
    if hide_pyarrow:
        sys.modules["pyarrow.parquet"] = None  # type: ignore[assignment]
    try:
        assert final_patterns.write(
            store,
            "ws-1",
            lot_id="LOT/ü 1",
            wafer_id="W'07",
            job_id="job_01J00000000000000000000000",
            classifier_version="rules-11+cal-3",
            publish_seq=2**40 + 3,
            classified_at=AT_US,
            rows=rows,
        )
    finally:
        sys.modules["pyarrow.parquet"] = saved
    (obj,) = store.list("workspaces/ws-1/lake/wafer_patterns_final/")
    assert obj.key.startswith("workspaces/ws-1/lake/wafer_patterns_final/lot=LOT%2F%C3%BC%201/")
    return tmp_path / name / obj.key


@pytest.mark.parametrize("rows", [PATTERNS, NONE_ROW, []], ids=["patterns", "none", "empty"])
def test_both_writers_give_the_same_table(tmp_path: Path, rows: list[tuple]) -> None:
    by_arrow = _one(tmp_path, "arrow", rows, hide_pyarrow=False)
    by_duckdb = _one(tmp_path, "duckdb", rows, hide_pyarrow=True)
    assert _created_by(by_arrow).startswith("parquet-cpp-arrow")
    assert _created_by(by_duckdb).startswith("DuckDB")
    want = [
        ("LOT/ü 1", "job_01J00000000000000000000000", "W'07", rank, *r, "rules-11+cal-3", 2**40 + 3)
        for rank, r in enumerate(rows, 1)
    ]
    at = AT_US.replace(tzinfo=None)
    for path in (by_arrow, by_duckdb):
        t = pq.read_table(path)
        assert t.schema.remove_metadata() == arrow_schema("wafer_patterns_final")
        assert [(*r.values(),) for r in t.to_pylist()] == [(*w, at) for w in want]
        meta = pq.ParquetFile(path).metadata
        chunks = [meta.row_group(g).column(i) for g in range(meta.num_row_groups) for i in range(meta.num_columns)]
        assert [c.compression for c in chunks] == ["ZSTD"] * len(chunks)
        assert len(chunks) >= (15 if rows else 0)  # pyarrow writes an empty row group for no rows, DuckDB none
    con = duckdb.connect()
    try:
        got = {}
        for name, path in (("arrow", by_arrow), ("duckdb", by_duckdb)):
            rel = con.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = false)")
            got[name] = (list(zip(rel.columns, map(str, rel.types), strict=True)), rel.fetchall())
    finally:
        con.close()
    assert got["arrow"] == got["duckdb"]
    assert got["arrow"][0] == [
        ("lot_id", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("wafer_id", "VARCHAR"),
        ("rank", "SMALLINT"),
        ("class_id", "VARCHAR"),
        ("family", "VARCHAR"),
        ("location", "VARCHAR"),
        ("severity", "VARCHAR"),
        ("refinement", "VARCHAR"),
        ("confidence", "DOUBLE"),
        ("die_count", "INTEGER"),
        ("summary", "VARCHAR"),
        ("classifier_version", "VARCHAR"),
        ("publish_seq", "BIGINT"),
        ("classified_at", "TIMESTAMP"),
    ]
    assert got["arrow"][1] == [(*w, at) for w in want]
