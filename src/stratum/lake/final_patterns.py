"""Stored classifications of lake wafers as lake objects (table ``wafer_patterns_final``, ``stratum.lake.schema``).

The metadata store keeps a lake wafer's classification (``stratum.patterns.store``); Athena cannot read it, so
each stored item is also written here, once: an immutable Parquet object per (lot, wafer, snapshot job,
classifier version) under the snapshot job's partition, written atomically through the object store. The
writer passes the stored item's own values (the first write's ``classified_at``), so rewriting after a crash
or a concurrent write produces the same rows; an existing object is left alone.

Two writers of the same logical content (the Arrow schema ``schema.arrow_schema`` declares, the rows in rank order,
zstd): pyarrow where it is loaded already (every ingest: opening DuckDB costs an ingest process 70-170 ms CPU),
DuckDB otherwise (the API and monitors functions carry DuckDB, not pyarrow). Physically they differ (pyarrow's
root group and integer annotations match the other lake tables'); readers see the same columns, types and rows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stratum.storage.objectstore import ObjectStore

from . import layout
from .schema import TABLES, arrow_schema, duckdb_type

TABLE = "wafer_patterns_final"

_scratch: Any = None  # the process's in-memory DuckDB these objects are written with (``connection``)
_scratch_lock = threading.Lock()


def connection() -> Any:
    """A cursor (a connection of its own, with its own temporary tables) on one in-memory DuckDB per process:
    opening a database costs 10-20 ms, once instead of per object."""
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            import duckdb

            _scratch = duckdb.connect(":memory:")
        return _scratch.cursor()


def write(
    store: ObjectStore,
    ws: str,
    *,
    lot_id: str,
    wafer_id: str,
    job_id: str,
    classifier_version: str,
    publish_seq: int,
    classified_at: datetime,
    rows: Sequence[Sequence[Any]],
) -> bool:
    """Write the object of one stored classification; False when it exists already. ``rows``, by rank:
    (class_id, family, location, severity, refinement, confidence, die_count, summary)."""
    key = layout.final_patterns_key(ws, lot_id, job_id, wafer_id, classifier_version)
    if store.exists(key):
        return False
    at = classified_at.astimezone(UTC).replace(tzinfo=None) if classified_at.tzinfo else classified_at
    data = [
        (lot_id, job_id, wafer_id, rank, *r, classifier_version, int(publish_seq), at) for rank, r in enumerate(rows, 1)
    ]
    pq = sys.modules.get("pyarrow.parquet")
    body = _arrow_parquet(pq, data) if pq is not None else _duckdb_parquet(data)
    store.put_bytes(key, body, content_type="application/vnd.apache.parquet")
    return True


def _arrow_parquet(pq: Any, data: list[tuple]) -> bytes:
    import pyarrow as pa

    schema = arrow_schema(TABLE)
    columns = list(zip(*data, strict=True)) if data else [()] * len(schema)
    t = pa.Table.from_arrays([pa.array(v, f.type) for v, f in zip(columns, schema, strict=True)], schema=schema)
    out = pa.BufferOutputStream()
    pq.write_table(t, out, compression="zstd")
    return out.getvalue().to_pybytes()


def _duckdb_parquet(data: list[tuple]) -> bytes:
    cols = TABLES[TABLE].cols
    con = connection()
    try:
        con.execute(f"CREATE TEMP TABLE t ({', '.join(f'{c.name} {duckdb_type(c.type)}' for c in cols)})")
        if data:
            con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(cols))})", data)
        with tempfile.TemporaryDirectory(prefix="stratum-wpat-") as tmp:
            path = os.path.join(tmp, "part.parquet")
            lit = path.replace("'", "''")
            con.execute(f"COPY (SELECT * FROM t ORDER BY rank) TO '{lit}' (FORMAT parquet, COMPRESSION zstd)")
            with open(path, "rb") as fh:
                return fh.read()
    finally:
        con.close()
