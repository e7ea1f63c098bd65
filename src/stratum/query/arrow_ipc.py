"""Arrow IPC (stream and file format) from DuckDB without pyarrow.

The functions that run queries on Lambda ship DuckDB but not pyarrow (it does not fit beside DuckDB under the
layer size limit); elsewhere pyarrow does the encoding (``use_pyarrow``). DuckDB relations export the Arrow C
stream interface (``__arrow_c_stream__``) themselves; nanoarrow (a 3 MB library) encodes its batches as Arrow
IPC messages. nanoarrow's Python API writes the stream format only, so the file format (``ARROW1`` magic, the
stream, a footer indexing the record batches, footer length, magic; Arrow columnar format spec, "IPC File
Format") is completed here: the footer is a small flatbuffer whose schema is the schema message's own table,
copied byte for byte.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
from collections.abc import Callable
from typing import IO, Any

import duckdb

MAGIC = b"ARROW1"
_CONTINUATION = 0xFFFFFFFF
_RECORD_BATCH = 3  # MessageHeader union: Schema = 1, DictionaryBatch = 2, RecordBatch = 3
_V5 = 4  # MetadataVersion.V5


def use_pyarrow(encoder: str) -> bool:
    """Whether Arrow IPC is encoded by pyarrow (``sql.arrow_encoder``: auto = when it is installed). pyarrow reads
    DuckDB's result in batches of our size; DuckDB's own C stream, which nanoarrow encodes, comes in fixed
    1,000,000-row batches whose buffers are reserved whole (address space a capped SQL worker may not have)."""
    if encoder == "auto":
        return importlib.util.find_spec("pyarrow") is not None
    return encoder == "pyarrow"


class ArrowIpcError(ValueError):
    """A result nanoarrow cannot encode (e.g. a dictionary-encoded column)."""


def stream_bytes(obj: Any) -> bytes:
    """An Arrow IPC stream of everything ``obj`` (an Arrow C stream/array exporter) holds."""
    out = io.BytesIO()
    _write_stream(obj, out)
    return out.getvalue()


def page(
    rel: duckdb.DuckDBPyRelation, offset: int, n: int, timezone: Callable[[], str] | None = None
) -> tuple[bytes, int, bool]:
    """Rows ``offset`` to ``offset + n`` of ``rel`` as an Arrow IPC stream (with its schema when empty), how many
    rows it holds, and whether the relation has more rows after them. ``timezone`` gives the zone of the
    relation's connection (TIMESTAMPTZ columns are labelled with it)."""
    import nanoarrow as na

    got = na.Array(rel.limit(n + 1, offset))  # one row more than the page: is there a next one?
    if len(got) <= n:
        return stream_bytes(got), len(got), False
    # nanoarrow's IPC writer cannot encode a sliced array, so a plain in-memory DuckDB (no user SQL, nothing
    # but these rows) drops the extra row. It reads them as a C stream capsule: given the nanoarrow object
    # itself, DuckDB converts it with pyarrow where that is installed, whose allocator then reserves ~1 GB
    # of address space (a SQL worker's RLIMIT_DATA counts it). One thread: a second one scanning the capsule
    # hung (100,001 rows, DuckDB 1.5.5)
    with duckdb.connect(config={"threads": 1}) as con:
        if timezone is not None:
            con.execute(f"SET TimeZone = {_quote(timezone())}")
        return stream_bytes(con.from_arrow(got.__arrow_c_stream__()).limit(n)), n, True


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def write_file(obj: Any, path: str | os.PathLike[str]) -> int:
    """Write ``obj`` (an Arrow C stream exporter such as a DuckDB relation) to ``path`` as an Arrow IPC file,
    one record batch at a time; returns the number of rows."""
    with open(path, "w+b") as f:
        f.write(MAGIC + b"\0\0")
        _write_stream(obj, f)
        end = f.tell()
        schema_meta, blocks, rows = _index(f, 8, end)
        footer = _footer(schema_meta, blocks)
        f.seek(end)
        f.write(footer + struct.pack("<i", len(footer)) + MAGIC)
    return rows


def _write_stream(obj: Any, out: IO[bytes]) -> None:
    from nanoarrow._utils import NanoarrowException
    from nanoarrow.ipc import StreamWriter

    try:
        with StreamWriter.from_writable(out) as w:
            w.write_stream(obj)
    except NanoarrowException as exc:
        raise ArrowIpcError(f"the result cannot be written as Arrow IPC: {exc}") from None


def _table(buf: bytes, pos: int) -> tuple[int, list[int]]:
    """A flatbuffer table at ``pos``: its position and each field's offset from it (0 = absent)."""
    vt = pos - struct.unpack_from("<i", buf, pos)[0]
    vt_size = struct.unpack_from("<H", buf, vt)[0]
    return pos, list(struct.unpack_from(f"<{(vt_size - 4) // 2}H", buf, vt + 4))


def _field(buf: bytes, table: tuple[int, list[int]], i: int, fmt: str, default: int = 0) -> int:
    pos, fields = table
    if i >= len(fields) or not fields[i]:
        return default
    return struct.unpack_from(fmt, buf, pos + fields[i])[0]


def _ref(buf: bytes, table: tuple[int, list[int]], i: int) -> int:
    """The position a table's offset field points to."""
    pos, fields = table
    at = pos + fields[i]
    return at + struct.unpack_from("<I", buf, at)[0]


def _index(f: IO[bytes], start: int, end: int) -> tuple[tuple[bytes, int], list[tuple[int, int, int]], int]:
    """Walk the stream's messages: the schema message (its flatbuffer and where its Schema table lies), a
    (offset, metadata length, body length) block per record batch, and the total row count."""
    f.seek(start)
    schema: tuple[bytes, int] | None = None
    blocks: list[tuple[int, int, int]] = []
    rows = 0
    pos = start
    while pos < end:
        cont, size = struct.unpack("<Ii", f.read(8))
        if cont != _CONTINUATION:
            raise ArrowIpcError("unexpected Arrow IPC message framing")
        if size == 0:  # end-of-stream marker
            break
        meta = f.read(size)
        msg = _table(meta, struct.unpack_from("<I", meta, 0)[0])
        kind = _field(meta, msg, 1, "<B")
        body = _field(meta, msg, 3, "<q")
        if schema is None:
            schema = (meta, _ref(meta, msg, 2))
        elif kind == _RECORD_BATCH:
            blocks.append((pos, 8 + size, body))
            rows += _field(meta, _table(meta, _ref(meta, msg, 2)), 0, "<q")
        else:
            raise ArrowIpcError("dictionary-encoded columns are not supported in Arrow exports; cast them")
        pos += 8 + size + body
        f.seek(pos)
    if schema is None:
        raise ArrowIpcError("the Arrow IPC stream has no schema")
    return schema, blocks, rows


def _footer(schema: tuple[bytes, int], blocks: list[tuple[int, int, int]]) -> bytes:
    """The Footer flatbuffer: version V5, the schema (the schema message's table, copied), no dictionaries,
    one Block struct per record batch.

    Layout: root offset | vtable (12) | table (20) | empty dictionaries vector | record-batch vector | message copy.
    """
    meta, schema_at = schema
    table = 16
    dicts = 36  # vector lengths sit 4 bytes before an 8-aligned first element (Block holds int64s)
    batches = 44
    copy_at = 48 + 24 * len(blocks)
    out = bytearray()
    out += struct.pack("<I", table)
    out += struct.pack("<6H", 12, 20, 16, 4, 8, 12)  # vtable: size, table size; version, schema, dicts, batches
    out += struct.pack("<i", table - 4)  # soffset to the vtable
    out += struct.pack("<III", copy_at + schema_at - (table + 4), dicts - (table + 8), batches - (table + 12))
    out += struct.pack("<hxx", _V5)
    out += struct.pack("<I", 0)  # dictionaries: empty
    out += b"\0" * 4
    out += struct.pack("<I", len(blocks))
    for offset, meta_len, body_len in blocks:
        out += struct.pack("<qi4xq", offset, meta_len, body_len)
    assert len(out) == copy_at
    out += meta
    out += b"\0" * (-len(out) % 8)
    return bytes(out)
