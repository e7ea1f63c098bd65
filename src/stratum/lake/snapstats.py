"""Per-snapshot sufficient statistics: one small Parquet file per (snapshot, retest policy) in the lake.

    workspaces/<ws>/lake/_stats/lot=<lot>/job=<snapshot job>/policy=<policy>/stats-v<N>.parquet

One row per (view, scope, wafer, test): count, valid count, fails, mean, M2, min and max of the valid
results, each an aggregate over exactly the rows the analytics routes read (``stratum.analytics.snapstats``
computes them from the snapshot's views), so a route that reads them gives the numbers it would compute from
the raw results. A snapshot never changes, so neither does its file: it is written once, whole
(``ObjectStore.put_bytes``), by whoever computes it first; a concurrent writer writes the same rows.
``FORMAT_VERSION`` is in the name: a new format is a new file, computed on first use.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from stratum.storage.objectstore import ObjectStore

from . import layout

FORMAT_VERSION = 1

# (name, DuckDB type, description): the columns of the file, in order
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("view", "VARCHAR", "Executions counted: `final` (is_final), `first_pass` (NOT is_retest) or `all`"),
    ("scope", "VARCHAR", "`lot`: every part of the snapshot's lot; `wafer`: the parts on the wafer `wafer_id`"),
    (
        "wafer_id",
        "VARCHAR",
        "The wafer of a `wafer` row (NULL: the wafer with an empty WAFER_ID; PTR rows only); NULL for `lot`",
    ),
    ("test_type", "VARCHAR", "P (PTR), M (MPR: one row per pin and execution) or F (FTR)"),
    ("test_num", "BIGINT", "Test number"),
    ("test_name", "VARCHAR", "Test name"),
    ("n", "BIGINT", "Result rows (valid or not)"),
    ("n_valid", "BIGINT", "Valid results (NULL for FTR)"),
    ("fails", "BIGINT", "Rows whose test failed (passed = false)"),
    ("mean", "DOUBLE", "Mean of the valid results (float64)"),
    (
        "m2",
        "DOUBLE",
        "Σ(x − mean)² of the valid results (sample variance = m2 / (n_valid − 1)); NULL below 2 valid results",
    ),
    ("min", "DOUBLE", "Smallest valid result (the stored float32 value, exactly)"),
    ("max", "DOUBLE", "Largest valid result (the stored float32 value, exactly)"),
)

POLICIES = ("last", "highest_bin")
_CHUNK = 500  # rows per INSERT when writing


def stats_key(ws: str, lot_id: str, snapshot_job_id: str, policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown retest policy {policy!r}")
    return layout.stats_key(ws, lot_id, snapshot_job_id, policy, FORMAT_VERSION)


def write(store: ObjectStore, key: str, rows: dict[str, list[Any]]) -> None:
    """Write the columns ``rows`` (name -> values, every column of COLUMNS) as the file ``key``, whole. DuckDB
    encodes it (a private in-memory database: the API process never loads pyarrow for this)."""
    import duckdb

    names = [n for n, _, _ in COLUMNS]
    fd, path = tempfile.mkstemp(prefix="stratum-stats-", suffix=".parquet")
    os.close(fd)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("CREATE TABLE s (" + ", ".join(f"{n} {t}" for n, t, _ in COLUMNS) + ")")
        records = list(zip(*(rows[n] for n in names), strict=True))
        marks = "(" + ", ".join("?" * len(names)) + ")"
        for i in range(0, len(records), _CHUNK):
            chunk = records[i : i + _CHUNK]
            con.execute(f"INSERT INTO s VALUES {', '.join([marks] * len(chunk))}", [v for r in chunk for v in r])
        con.execute(f"COPY s TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        store.put_file(key, path)
    finally:
        con.close()
        os.unlink(path)


def read(store: ObjectStore, key: str, cur: Any) -> dict[str, list[Any]] | None:
    """The file's columns (name -> values) read with the DuckDB cursor ``cur`` (whose allowed directories hold the
    lake), or None when it does not exist (yet) or has another layout."""
    import duckdb

    uri = store.uri(key).replace("'", "''")
    try:
        res = cur.execute(f"SELECT * FROM read_parquet('{uri}', hive_partitioning = false)")
    except duckdb.IOException:
        return None
    names = [d[0] for d in res.description]
    if names != [n for n, _, _ in COLUMNS]:
        return None
    got = res.fetchall()
    return {n: [r[i] for r in got] for i, n in enumerate(names)}
