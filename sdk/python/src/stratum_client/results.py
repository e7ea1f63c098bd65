"""Result objects of the ergonomic layer (SQL results, wafer maps, exports)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from . import models as m


def _pyarrow():
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("pyarrow is needed for this: pip install 'stratum-client[arrow]'") from None
    return pa


_HAS_PYARROW: bool | None = None


def has_pyarrow() -> bool:
    """Whether pyarrow can be imported (looked up once, without importing it)."""
    global _HAS_PYARROW
    if _HAS_PYARROW is None:
        import importlib.util

        _HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
    return _HAS_PYARROW


# -- Arrow values as the API's JSON presents them ------------------------------------------------------------
def float32_value(v: Any) -> Any:
    """A float32 as the shortest decimal that is the same float32 (the API shows FLOAT columns so)."""
    if not isinstance(v, float) or not math.isfinite(v):
        return _finite(v)
    bits = struct.pack("<f", v)
    for digits in range(6, 10):
        text = f"{v:.{digits}g}"
        if struct.pack("<f", float(text)) == bits:
            return float(text)
    return v


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _seconds(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "total_seconds"):
        return v.total_seconds()
    # pyarrow's MonthDayNano: DuckDB's intervals count a month as 30 days
    return (v.months * 30 + v.days) * 86400 + v.nanoseconds / 1e9


def _json_value(v: Any) -> Any:
    """The server's JSON encoding of one value whose Arrow type needs no special case."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return _finite(v)
    if isinstance(v, decimal.Decimal):
        return _finite(float(v))
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return str(v)


def _converter(t: Any) -> Any:
    """A function giving a column's Python values (``to_pylist()``) as the API's JSON rows hold them, or
    None when they already are."""
    pa = _pyarrow()
    types = pa.types
    if types.is_float32(t):
        return float32_value
    if types.is_floating(t):
        return _finite
    if types.is_integer(t) or types.is_string(t) or types.is_large_string(t) or types.is_boolean(t):
        return None
    if types.is_null(t):
        return None
    if types.is_decimal(t):
        if t.scale == 0 and t.precision == 38:  # DuckDB's HUGEINT (sum() of integers): an integer in JSON
            return lambda v: None if v is None else int(v)
        return lambda v: None if v is None else _finite(float(v))
    if types.is_interval(t) or types.is_duration(t):
        return _seconds
    if types.is_list(t) or types.is_large_list(t):
        inner = _converter(t.value_type)
        if inner is None:
            return None
        return lambda v: None if v is None else [inner(x) for x in v]
    if types.is_map(t):
        return lambda v: None if v is None else {str(k): _json_value(x) for k, x in v}
    return _json_value


_DUCKDB_TYPES = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "binary": "BLOB",
    "date32[day]": "DATE",
    "time64[us]": "TIME",
    "timestamp[us]": "TIMESTAMP",
    "month_day_nano_interval": "INTERVAL",
    "decimal128(38, 0)": "HUGEINT",
    "null": '"NULL"',
}


def duckdb_type(t: Any) -> str:
    """The SQL type name the JSON answer gives a column, from its Arrow type (the Arrow type's own name
    when there is no one-to-one name)."""
    name = str(t)
    if name in _DUCKDB_TYPES:
        return _DUCKDB_TYPES[name]
    pa = _pyarrow()
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duckdb_type(t.value_type) + "[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {duckdb_type(f.type)}" for f in t) + ")"
    return name


def arrow_rows(table: Any) -> list[list[Any]]:
    """A pyarrow.Table's rows as lists, each value as the API's JSON answer has it."""
    cols = []
    for f, col in zip(table.schema, table.columns, strict=True):
        values = col.to_pylist()
        conv = _converter(f.type)
        cols.append(values if conv is None else [conv(v) for v in values])
    return [list(r) for r in zip(*cols, strict=True)] if cols else [[] for _ in range(table.num_rows)]


@dataclass
class SqlPage:
    columns: list[m.SqlColumn]
    rows_: list[list[Any]] | None
    next_cursor: str | None
    truncated: bool = False
    table: Any = None  # a pyarrow.Table when the page came as an Arrow stream

    @property
    def rows(self) -> list[list[Any]]:
        if self.rows_ is None:  # an Arrow page: its rows are made on first use
            self.rows_ = arrow_rows(self.table)
        return self.rows_

    @property
    def num_rows(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.rows_ or [])

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SqlPage:
        # the rows are plain JSON values: validating each cell with pydantic would cost more than the request
        cols = [m.SqlColumn.model_validate(c) for c in body["columns"]]
        rows = body["rows"]
        if not isinstance(rows, list):
            raise TypeError("malformed SQL answer: rows is not a list")
        return cls(cols, rows, body.get("next_cursor"), bool(body.get("truncated")))

    @classmethod
    def from_arrow(cls, data: bytes, next_cursor: str | None, truncated: bool = False) -> SqlPage:
        pa = _pyarrow()
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        cols = [m.SqlColumn(name=f.name, type=duckdb_type(f.type)) for f in table.schema]
        return cls(cols, None, next_cursor, truncated, table)


@dataclass
class SqlResult:
    """Every page of one query. ``rows`` are lists in column order (made from the Arrow pages on first
    use when the pages came as Arrow); ``to_arrow()`` / ``to_pandas()`` need the ``arrow`` / ``pandas``
    extras."""

    query: str
    pages: list[SqlPage] = field(default_factory=list)
    _rows: list[list[Any]] | None = field(default=None, repr=False)

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.pages[0].columns] if self.pages else []

    @property
    def types(self) -> list[str]:
        return [c.type for c in self.pages[0].columns] if self.pages else []

    @property
    def truncated(self) -> bool:
        """True when the query yields more rows than the API's SQL cap: use ``client.export`` for all."""
        return any(p.truncated for p in self.pages)

    @property
    def arrow(self) -> bool:
        """Whether the pages came as Arrow IPC streams."""
        return bool(self.pages) and self.pages[0].table is not None

    @property
    def rows(self) -> list[list[Any]]:
        if self._rows is None:
            out: list[list[Any]] = []
            for p in self.pages:
                out += p.rows
            self._rows = out
        return self._rows

    def __len__(self) -> int:
        return sum(p.num_rows for p in self.pages)

    def __iter__(self):
        return iter(self.rows)

    def to_arrow(self):
        pa = _pyarrow()
        if self.pages and all(p.table is not None for p in self.pages):
            tables = [p.table for p in self.pages]
            return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        names = self.columns
        rows = self.rows
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return pa.Table.from_arrays([pa.array(c) for c in cols], names=names)

    def to_pandas(self):
        return self.to_arrow().to_pandas()


class WaferMap:
    """A wafer's die map: ``.data`` (the JSON model), ``.to_pandas()`` (one row per die), and the same
    map rendered by the server with ``.png()`` / ``.svg()``."""

    def __init__(self, data: m.WaferMapOut, params: dict[str, Any]) -> None:
        self.data = data
        self._params = params
        self._client: Any = None

    @property
    def dies(self) -> dict[str, list[Any]]:
        return self.data.dies

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            raise ImportError("pandas is needed for this: pip install 'stratum-client[pandas]'") from None
        return pd.DataFrame(self.data.dies)

    def _render(self, fmt: str) -> Any:
        return self._client.wafer_map_image(self.data.lot_id, self.data.wafer_id, format=fmt, **self._params)

    def png(self) -> Any:
        """PNG bytes (a coroutine on ``AsyncClient``)."""
        return self._render("png")

    def svg(self) -> Any:
        """SVG bytes (a coroutine on ``AsyncClient``)."""
        return self._render("svg")


class Export:
    """An export job. ``wait()`` polls it to its end; ``download(path)`` streams the file to disk (both
    return coroutines on ``AsyncClient``)."""

    def __init__(self, client: Any, body: dict[str, Any]) -> None:
        self._client = client
        self.body = body

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["body"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Export({self.body.get('export_id')!r}, status={self.body.get('status')!r})"

    def refresh(self) -> Any:
        return self._client.get_export(self.body["export_id"])

    def wait(self, timeout: float = 600.0) -> Any:
        return self._client.wait_for_export(self.body["export_id"], timeout=timeout)

    def download(self, path: str | os.PathLike, timeout: float = 600.0) -> Any:
        """Wait for the export, then stream its file to ``path``; returns the path."""
        return self._client.download_export(self, path, timeout=timeout)
