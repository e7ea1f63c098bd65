"""Helpers shared by tests."""

from __future__ import annotations

from stratum.stdf.columns import concat_columns
from stratum.stdf.reader import FileHeader, ParseResult, ReaderOptions, parse


class CollectSink:
    """Keeps every batch the reader emits; ``table(name)`` concatenates them."""

    def __init__(self) -> None:
        self.header: FileHeader | None = None
        self.batches: dict[str, list[dict]] = {}

    def begin(self, header: FileHeader) -> None:
        assert self.header is None, "begin() called twice"
        self.header = header

    def rows(self, table: str, cols: dict) -> None:
        assert self.header is not None, "rows before begin()"
        self.batches.setdefault(table, []).append(cols)

    def table(self, name: str) -> dict:
        batches = self.batches.get(name, [])
        if not batches:
            return {}
        return {k: concat_columns([b[k] for b in batches]) for k in batches[0]}


def read_all(src, **opts) -> tuple[ParseResult, CollectSink]:
    sink = CollectSink()
    res = parse(src, sink, ReaderOptions(**opts))
    return res, sink


def athena_raw_scan(lake, ws: str):
    """``raw_scan`` for ``view_bodies`` that reads, from a lake object store, what Athena's partition filter
    (the workspace, the members' lots and jobs) reads: a member's ingest file of each table, and every object
    of the tables written after publish (``LATE_TABLES``) under the members' partitions."""
    from stratum.lake import layout
    from stratum.lake.schema import LATE_TABLES
    from stratum.query.views import scan

    def raw(table, ms):
        if table in LATE_TABLES:
            lots, jobs = sorted({m.lot_id for m in ms}), sorted({m.job_id for m in ms})
            keys = [o.key for lot in lots for job in jobs for o in lake.list(layout.job_dir(ws, table, lot, job))]
            return scan(table, [lake.uri(k) for k in keys])
        return scan(table, [lake.uri(layout.data_key(ws, table, m.lot_id, m.job_id)) for m in ms])

    return raw
