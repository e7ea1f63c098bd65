"""``wafer_patterns_final`` objects are written with cursors of one in-process DuckDB
(``stratum.lake.final_patterns.connection``): writes from several threads at once each produce exactly their own
rows (every cursor has its own temporary table), and an object that exists is left alone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from stratum.lake import final_patterns
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


def test_concurrent_writes_each_hold_their_own_rows(tmp_path: Path) -> None:
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
