"""Result objects of the ergonomic layer (SQL results, wafer maps, exports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import models as m


def _pyarrow():
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("pyarrow is needed for this: pip install 'stratum-client[arrow]'") from None
    return pa


@dataclass
class SqlPage:
    columns: list[m.SqlColumn]
    rows: list[list[Any]] | None
    next_cursor: str | None
    truncated: bool = False
    table: Any = None  # a pyarrow.Table when the page came as an Arrow stream

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
        table = pa.ipc.open_stream(data).read_all()
        cols = [m.SqlColumn(name=f.name, type=str(f.type)) for f in table.schema]
        return cls(cols, None, next_cursor, truncated, table)


@dataclass
class SqlResult:
    """Every page of one query. ``rows`` are lists in column order; ``to_arrow()`` / ``to_pandas()`` need
    the ``arrow`` / ``pandas`` extras."""

    query: str
    pages: list[SqlPage] = field(default_factory=list)

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
    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        for p in self.pages:
            if p.rows is not None:
                out += p.rows
            else:
                cols = p.table.to_pydict()
                out += [list(r) for r in zip(*cols.values(), strict=True)] if cols else []
        return out

    def __len__(self) -> int:
        return sum(p.table.num_rows if p.table is not None else len(p.rows or []) for p in self.pages)

    def __iter__(self):
        return iter(self.rows)

    def to_arrow(self):
        pa = _pyarrow()
        if self.pages and all(p.table is not None for p in self.pages):
            return pa.concat_tables([p.table for p in self.pages])
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
