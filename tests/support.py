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
