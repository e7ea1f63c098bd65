"""Streaming Parquet writer: the reader's sink for one ingest job.

Each stored table of the job becomes one Parquet file (zstd, row groups of at least ``min_rows``
rows except the last) written through ``ObjectStore.open_write``: nothing is visible until the file
is complete, and ``abort()`` leaves nothing behind. Encoding and compression run on a background
thread (pyarrow releases the GIL), overlapping with decoding; the queue between them is bounded.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stratum import PARSER_VERSION
from stratum.stdf.columns import Masked, Ragged, Strings
from stratum.stdf.dies import die_columns as _die_columns
from stratum.stdf.reader import FileHeader, ParseResult
from stratum.storage.objectstore import ObjectStore

from . import layout
from .schema import READER_TABLES, SCHEMA_VERSION, TABLES, arrow_type

MIN_ROWS = 262_144
COMMIT_THREADS = 16  # files of a job committed (fsync, rename) at once
MAX_ROWS = 1_048_576
# Column batches the reader may run ahead of the writer thread (a chunk gives 2-5): enough for the reader to
# decode on while a row group of MIN_ROWS rows is encoded, ~3 MB a results batch at the default chunk size
QUEUE_BATCHES = 12
WRITE_BUFFER = 1 << 20  # bytes of encoded Parquet buffered per open file before they go to the object store
DICT = pa.dictionary(pa.int32(), pa.string())
# Monotonic integer columns: delta encoding is smaller and cheaper than a dictionary that cannot work
DELTA = frozenset({"rec_seq", "part_seq", "byte_offset", "pir_rec_seq", "wir_rec_seq", "wrr_rec_seq", "first_rec_seq"})
# distinct floats: a dictionary would be built and then abandoned. The one-byte flags and head numbers: plain
# pages are as small under zstd (+1-2 KB a million rows) and encode in half the time (the data and schema are the
# same either way; only the page encoding differs). Limits stay dictionary-encoded: plain ones are 30-50 % larger
NO_DICT = DELTA | {"result", "test_flg", "parm_flg", "head_num"}
# Integer ids whose best page encoding depends on the file's test flow (D-10's results: plain test ids are 2.5x
# smaller than their dictionary and encode in half the time; a generated flow's: delta, 12x smaller). Each file
# with a first row group of MIN_ROWS takes, per column, whichever of dictionary, plain and delta encodes its first
# TRIAL_ROWS rows smallest.
ADAPTIVE = ("test_idx", "test_num", "site_num", "pin_seq", "pmr_index")
TRIAL_ROWS = 65_536
TRIAL = ("PLAIN", "DELTA_BINARY_PACKED", "RLE_DICTIONARY")  # ties go to the cheapest to encode
# Tables only ``finish`` writes (the reader never emits them): the finishing thread encodes them itself
FINAL_TABLES = frozenset({"tests", "wafer_runs", "wafer_patterns", "lot_files"})
# values the column writers take at a time (pyarrow's default 1,024): fewer statistics and page-size updates
WRITE_BATCH = 65_536


def stored_schema(table: str) -> pa.Schema:
    fields = []
    for c in TABLES[table].cols:
        t = DICT if c.name in ("lot_id", "job_id") else arrow_type(c.type)
        fields.append(pa.field(c.name, t))
    return pa.schema(fields)


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value], pa.string()))


def _strings(s: Strings, t: pa.DataType) -> pa.Array:
    n = len(s)
    offsets = s.offsets.astype(np.int32) if s.offsets[-1] < 2**31 else None
    if offsets is None:
        raise ValueError("string column larger than 2 GiB in one batch")
    validity = None
    if s.valid is not None and not s.valid.all():
        validity = pa.array(s.valid).buffers()[1]
    arr = pa.BinaryArray.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(s.values)])
    if t == pa.binary():
        return arr
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: decode each value (Latin-1 fallback)
        return pa.array(s.to_list(), pa.string())


def _native(a: np.ndarray) -> np.ndarray:
    """Big-endian gathers (from BE files) in native byte order: Arrow only takes native arrays."""
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder == ">" else a


def _bits(b: np.ndarray) -> pa.Buffer:
    """A bool array as an Arrow bitmap (pa.array packs bools one at a time; packbits is ~15x faster)."""
    return pa.py_buffer(np.packbits(b, bitorder="little"))


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    return None if valid.all() else _bits(valid)


def to_arrow(col: Any, t: pa.DataType, n: int) -> pa.Array:
    """One reader column (numpy, Masked, Ragged, Strings or a Python list) as an Arrow array of type t."""
    if isinstance(col, np.ndarray):
        col = _native(col)
    elif isinstance(col, Masked):
        col = Masked(_native(col.values), col.valid)
    elif isinstance(col, Ragged) and not isinstance(col, Strings):
        col = Ragged(col.offsets, _native(col.values), col.valid)
    if col is None:
        return pa.nulls(n, t)
    if isinstance(col, Strings):
        return _strings(col, t)
    if isinstance(col, Ragged):
        mask = None if col.valid is None else pa.array(~col.valid)
        vt = t.value_type
        return pa.ListArray.from_arrays(
            pa.array(col.offsets.astype(np.int32)), pa.array(col.values).cast(vt), mask=mask
        )
    if isinstance(col, Masked):
        vals = col.values
        if t == pa.bool_():
            vals = vals.astype(bool)
        arr = pa.array(vals, mask=None if col.valid.all() else ~col.valid)
        return arr if arr.type == t else arr.cast(t)
    if isinstance(col, np.ndarray):
        if t == pa.bool_() and col.dtype == np.int8:  # 1 pass, 0 fail, -1 unknown
            return pa.BooleanArray.from_buffers(t, n, [_validity(col >= 0), _bits(col == 1)])
        if t == pa.bool_() and col.dtype == np.bool_:
            return pa.BooleanArray.from_buffers(t, n, [None, _bits(col)])
        if t == pa.float32() and col.dtype == np.float32 or t == pa.float64() and col.dtype == np.float64:
            col = np.ascontiguousarray(col)
            return pa.Array.from_buffers(t, n, [_validity(~np.isnan(col)), pa.py_buffer(col)])
        arr = pa.array(col, mask=np.isnan(col)) if pa.types.is_floating(t) and col.dtype.kind == "f" else pa.array(col)
        return arr if arr.type == t else arr.cast(t)
    if isinstance(col, list):
        if pa.types.is_timestamp(t):
            return pa.array([None if not v else v for v in col], pa.int64()).cast(t)
        if t == pa.string():
            col = [v.hex() if isinstance(v, bytes) else v for v in col]
        return pa.array(col, t)
    raise TypeError(f"unsupported column {type(col)}")


@dataclass
class TableFile:
    key: str
    rows: int = 0
    bytes: int = 0


@dataclass
class Manifest:
    workspace: str
    lot_id: str
    job_id: str
    tables: dict[str, TableFile] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "workspace": self.workspace,
            "lot_id": self.lot_id,
            "job_id": self.job_id,
            "tables": {
                k: {"files": [{"key": v.key, "rows": v.rows, "bytes": v.bytes}], "rows": v.rows}
                for k, v in sorted(self.tables.items())
            },
        }

    def rows(self) -> dict[str, int]:
        return {k: v.rows for k, v in sorted(self.tables.items())}


def choose_encodings(t: pa.Table, columns: list[str], compression: str, level: int | None) -> dict[str, str]:
    """Per column, the encoding of ``TRIAL`` whose pages of the first ``TRIAL_ROWS`` rows of ``t`` are smallest
    once compressed (one trial file with every column under every encoding)."""
    sample = t.slice(0, TRIAL_ROWS)
    arrays, names, dictionary, encoding = [], [], [], {}
    for c in columns:
        for e in TRIAL:
            name = f"{c}|{e}"
            arrays.append(sample.column(c))
            names.append(name)
            if e == "RLE_DICTIONARY":
                dictionary.append(name)
            else:
                encoding[name] = e
    buf = pa.BufferOutputStream()
    pq.write_table(
        pa.table(arrays, names=names),
        buf,
        compression=compression,
        compression_level=level,
        use_dictionary=dictionary,
        column_encoding=encoding,
        write_statistics=False,
        store_schema=False,
    )
    rg = pq.read_metadata(buf.getvalue()).row_group(0)
    size = {rg.column(i).path_in_schema: rg.column(i).total_compressed_size for i in range(rg.num_columns)}
    return {c: min(TRIAL, key=lambda e: (size[f"{c}|{e}"], TRIAL.index(e))) for c in columns}


class _Out:
    """One open Parquet file. ``encodings``: page encodings chosen for this file (column -> a ``TRIAL`` name)."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        schema: pa.Schema,
        compression: str,
        level: int | None,
        encodings: dict[str, str] | None = None,
    ):
        self.key = key
        self.stream = store.open_write(key)
        self.counting = _Counting(self.stream)
        # pyarrow calls a Python file object's write (taking the GIL) for every page it writes, ~1 KB each:
        # a C++ buffer in front of it makes that one call a MiB, so the encoding thread rarely takes the GIL
        self.sink = pa.BufferedOutputStream(pa.PythonFile(self.counting, mode="w"), buffer_size=WRITE_BUFFER)
        encodings = encodings or {}
        plain = {c for c, e in encodings.items() if e != "RLE_DICTIONARY"}
        column_encoding = {f.name: "DELTA_BINARY_PACKED" for f in schema if f.name in DELTA}
        column_encoding.update({c: e for c, e in encodings.items() if e == "DELTA_BINARY_PACKED"})
        self.writer = pq.ParquetWriter(
            self.sink,
            schema,
            compression=compression,
            compression_level=level,
            use_dictionary=[f.name for f in schema if f.name not in NO_DICT and f.name not in plain],
            column_encoding=column_encoding or None,
            write_statistics=True,
            data_page_size=1 << 20,
            write_batch_size=WRITE_BATCH,
        )
        self.encodings = encodings
        self.rows = 0
        self.closed = False  # footer written and bytes handed to the stream (not yet committed)


class _Tasks:
    """The tables left to flush at the end of a job, largest first: the writer thread and the thread calling
    ``finish`` take them one at a time (``ready`` is set once the writer thread has listed them)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.tables: list[str] = []
        self.order: list[str] = []  # the files' order as one thread would have opened them
        self.lock = threading.Lock()

    def pop(self) -> str | None:
        with self.lock:
            return self.tables.pop(0) if self.tables else None


class _Counting:
    """File-like wrapper counting bytes written (pyarrow writes through it)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.n = 0
        self.closed = False
        self.discard = False  # after an abort: swallow what pyarrow still flushes

    def write(self, data) -> int:
        if not self.discard:
            self.raw.write(data)
            self.n += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.n

    def close(self) -> None:
        self.closed = True


class LakeWriter:
    """Reader sink writing one job's Parquet files. Call ``finish`` on success or ``abort`` on failure."""

    def __init__(
        self,
        store: ObjectStore,
        workspace: str,
        job_id: str,
        file_num: int,
        *,
        min_rows: int = MIN_ROWS,
        max_rows: int = MAX_ROWS,
        compression: str = "zstd",
        compression_level: int | None = 1,
        background: bool = True,
        wafer_classifier: Any = None,
    ) -> None:
        self.store = store
        # (wafers, dies) -> wafer_patterns columns; injected by the runtime (the lake does not classify)
        self.wafer_classifier = wafer_classifier
        self.classify_wafers = wafer_classifier is not None
        self._dies: list[dict[str, np.ndarray]] = []
        self._hbin_pass: dict[int, bool] = {}  # HBR pass/fail: a part without a PRR pass/fail indication
        self.workspace = layout.check_workspace(workspace)
        self.job_id = job_id
        self.file_num = file_num
        self.min_rows = min_rows
        self.max_rows = max_rows
        self.compression = compression
        self.level = compression_level
        self.header: FileHeader | None = None
        self._buf: dict[str, list[pa.RecordBatch]] = {}
        self._buf_rows: dict[str, int] = {}
        self._outs: dict[str, _Out] = {}
        self._schemas = {t: stored_schema(t) for t in TABLES}
        self._consts: dict[str, pa.Array] = {}
        self._error: BaseException | None = None
        # CPU seconds per stage: reader columns -> Arrow arrays, Arrow -> encoded, compressed Parquet
        self.cpu_s = {"arrow": 0.0, "encode": 0.0}
        self._cpu_lock = threading.Lock()  # two threads encode at the end of a job
        self._q: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._q = queue.Queue(maxsize=QUEUE_BATCHES)
            self._thread = threading.Thread(target=self._run, name="lake-writer", daemon=True)
            self._thread.start()

    @property
    def lot_id(self) -> str:
        assert self.header is not None
        return self.header.lot_id

    # -- sink protocol ---------------------------------------------------------------------------
    def begin(self, header: FileHeader) -> None:
        self.header = header

    def rows(self, table: str, cols: dict[str, Any]) -> None:
        table = READER_TABLES.get(table, table)
        n = len(next(iter(cols.values())))
        if n == 0:
            return
        if table == "parts" and self.classify_wafers:
            self._dies.append(_die_columns(cols, n))
        elif table == "bin_records" and self.classify_wafers:
            for t, b, pf in zip(cols["bin_type"], cols["bin_num"], cols["pass_fail"], strict=True):
                if t == "H" and pf in ("P", "F") and b is not None:
                    self._hbin_pass[int(b)] = pf == "P"
        self._check()
        if self._q is not None:  # Arrow conversion, buffering and encoding all happen on the writer thread
            self._q.put(("rows", table, cols, n))
        else:
            self._add(table, self._batch(table, cols, n))

    def _batch(self, table: str, cols: dict[str, Any], n: int) -> pa.RecordBatch:
        c0 = time.thread_time()
        try:
            return self._arrow(table, cols, n)
        finally:
            self._cpu("arrow", time.thread_time() - c0)

    def _cpu(self, stage: str, seconds: float) -> None:
        with self._cpu_lock:
            self.cpu_s[stage] += seconds

    def _constant(self, name: str, n: int) -> pa.Array:
        """The constant column ``name`` (lot_id, job_id, file_num) for ``n`` rows: a slice of one array."""
        arr = self._consts.get(name)
        if arr is None or len(arr) < n:
            m = max(n, 1 << 16)
            if name == "file_num":
                arr = pa.array(np.full(m, self.file_num, np.int64))
            else:
                arr = _const(self.lot_id if name == "lot_id" else self.job_id, m)
            self._consts[name] = arr
        return arr.slice(0, n)

    def _arrow(self, table: str, cols: dict[str, Any], n: int) -> pa.RecordBatch:
        schema = self._schemas[table]
        arrays = []
        for f in schema:
            if f.name in ("lot_id", "job_id", "file_num"):
                arrays.append(self._constant(f.name, n))
            else:
                arrays.append(to_arrow(cols.get(f.name), f.type, n))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _add(self, table: str, batch: pa.RecordBatch) -> None:
        self._buf.setdefault(table, []).append(batch)
        self._buf_rows[table] = self._buf_rows.get(table, 0) + batch.num_rows
        if self._buf_rows[table] >= self.min_rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        batches = self._buf.pop(table, [])
        self._buf_rows[table] = 0
        if not batches:
            return
        self._write(table, pa.Table.from_batches(batches, schema=self._schemas[table]))

    def _write(self, table: str, t: pa.Table) -> None:
        c0 = time.thread_time()
        try:
            self._encode(table, t)
        finally:
            self._cpu("encode", time.thread_time() - c0)

    def _close_file(self, table: str) -> None:
        """Write the footer of ``table``'s file and hand its buffered bytes to the object store (not committed)."""
        out = self._outs.get(table)
        if out is not None and not out.closed:
            c0 = time.thread_time()
            try:
                out.writer.close()
                out.sink.close()
                out.closed = True
            finally:
                self._cpu("encode", time.thread_time() - c0)

    def _take_flushes(self, tasks: _Tasks) -> None:
        """Flush and close the listed tables until none is left (called by both threads at the end of a job)."""
        while self._error is None:
            table = tasks.pop()
            if table is None:
                return
            self._flush(table)
            self._close_file(table)

    def _encode(self, table: str, t: pa.Table) -> None:
        out = self._outs.get(table)
        if out is None:
            key = layout.data_key(self.workspace, table, self.lot_id, self.job_id)
            # only for a large table: the trial costs ~1 ms per column
            trial = [c for c in ADAPTIVE if c in t.column_names] if t.num_rows >= MIN_ROWS else []
            enc = choose_encodings(t, trial, self.compression, self.level) if trial else None
            out = self._outs[table] = _Out(self.store, key, self._schemas[table], self.compression, self.level, enc)
        out.writer.write_table(t, row_group_size=self.max_rows)
        out.rows += t.num_rows

    def _run(self) -> None:
        q = self._q
        assert q is not None
        while True:
            item = q.get()
            if item is None:
                return
            if self._error is not None:
                if item[0] == "flush":
                    item[1].ready.set()
                continue
            try:
                if item[0] == "rows":
                    _, table, cols, n = item
                    self._add(table, self._batch(table, cols, n))
                else:  # ("flush", tasks): list every buffered table, then flush them with the finishing thread
                    tasks = item[1]
                    try:
                        opened = [t for t in self._outs if t not in FINAL_TABLES]
                        tasks.order = opened + [t for t in self._buf if t not in opened]
                        size = {t: sum(b.nbytes for b in bs) for t, bs in self._buf.items()}
                        tasks.tables = sorted(size, key=lambda t: -size[t])
                    finally:
                        tasks.ready.set()
                    self._take_flushes(tasks)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        if self._q is not None and self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._q = None
        self._check()

    # -- end ------------------------------------------------------------------------------------
    def finish(self, res: ParseResult, file_meta: dict[str, Any], settings_meta: dict[str, Any]) -> Manifest:
        """Write the per-file tables, close every file (making them visible) and return the manifest."""
        assert self.header is not None
        tasks = None
        try:
            if self._q is not None:
                # the writer thread flushes its buffered tables (largest first) while this thread builds and
                # encodes the per-file tables, then takes the tables the writer thread has not started
                tasks = _Tasks()
                self._q.put(("flush", tasks))
            self._write_tests(res)
            self._write_wafers(res)
            self._write_patterns(res)
            self._write_lot_file(res, file_meta, settings_meta)
            if tasks is not None:
                tasks.ready.wait()
                self._take_flushes(tasks)
            else:
                for table in list(self._buf):
                    self._flush(table)
            self._drain()
        except BaseException:
            self.abort()
            raise
        # the order the files were opened in before both threads flushed (the manifest's, as it always was)
        order = tasks.order + [t for t in self._outs if t not in tasks.order] if tasks else list(self._outs)
        self._outs = {t: self._outs[t] for t in order}
        manifest = Manifest(self.workspace, self.lot_id, self.job_id)
        try:
            # every file's last bytes first (the Parquet writer leaves its sink open; closing it flushes the
            # buffer), so a failing write fails the job before any file becomes visible
            for table in self._outs:
                self._close_file(table)
            # committing a file waits for the disk (fsync): the files commit side by side
            outs = list(self._outs.values())
            if len(outs) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(len(outs), COMMIT_THREADS), thread_name_prefix="lake-commit") as pool:
                    list(pool.map(lambda o: o.stream.close(), outs))
            else:
                for o in outs:
                    o.stream.close()
            for table, out in self._outs.items():
                manifest.tables[table] = TableFile(out.key, out.rows, out.counting.n)
        except BaseException:
            self.abort()
            raise
        self._outs = {}
        return manifest

    def _final_rows(self, table: str, cols: dict[str, Any]) -> None:
        """Rows of a table written only by ``finish`` (tests, wafers, patterns, lot file): with a writer thread,
        converted, encoded and closed on this thread, beside the writer thread's last row groups."""
        n = len(next(iter(cols.values())))
        if self._q is None or n == 0:
            self.rows(table, cols)
            return
        self._check()
        self._write(table, pa.Table.from_batches([self._batch(table, cols, n)]))
        self._close_file(table)

    def abort(self) -> None:
        """Discard everything written so far; nothing becomes visible."""
        if self._q is not None and self._thread is not None:
            self._error = self._error or RuntimeError("aborted")
            while True:  # drop what is queued (the thread skips items once _error is set), then stop it
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
            self._q.put(None)
            self._thread.join()
            self._q = None
        for out in self._outs.values():
            out.counting.discard = True
            try:
                out.writer.close()
                out.sink.close()
            except Exception:  # noqa: BLE001, S110 - the file is being thrown away
                pass
            try:
                abort = getattr(out.stream, "abort", None)
                if abort is not None:
                    abort()
                else:
                    out.stream.close()
            except Exception:  # noqa: BLE001, S110 - best effort cleanup
                pass
        self._outs = {}
        self._buf.clear()

    def _write_tests(self, res: ParseResult) -> None:
        tests = [t for t in res.tests if not (t.name == "" and t.exec_count == 0 and not t.has_defaults)]
        if not tests:
            return

        def scale_mismatch(t) -> bool:
            r = t.res_scal
            return r is not None and any(s is not None and s != r for s in (t.llm_scal, t.hlm_scal))

        cols = {
            "test_idx": [t.idx for t in tests],
            "test_num": [t.num for t in tests],
            "test_name": [t.name for t in tests],
            "test_type": [t.kind for t in tests],
            "units": [t.units for t in tests],
            "lo_limit": [t.lo_limit for t in tests],
            "hi_limit": [t.hi_limit for t in tests],
            "lo_spec": [t.lo_spec for t in tests],
            "hi_spec": [t.hi_spec for t in tests],
            "res_scal": [t.res_scal for t in tests],
            "llm_scal": [t.llm_scal for t in tests],
            "hlm_scal": [t.hlm_scal for t in tests],
            "c_resfmt": [t.c_resfmt for t in tests],
            "c_llmfmt": [t.c_llmfmt for t in tests],
            "c_hlmfmt": [t.c_hlmfmt for t in tests],
            "opt_flag": [t.opt_flag for t in tests],
            "units_in": [t.units_in for t in tests],
            "start_in": [t.start_in for t in tests],
            "incr_in": [t.incr_in for t in tests],
            "rtn_indx": [t.rtn_indx for t in tests],
            "exec_count": [t.exec_count for t in tests],
            "scale_mismatch": [scale_mismatch(t) for t in tests],
            "first_rec_seq": [t.first_rec_seq for t in tests],
        }
        self._final_rows("tests", cols)

    def _write_wafers(self, res: ParseResult) -> None:
        ws = res.wafers
        if not ws:
            return
        names = [c.name for c in TABLES["wafer_runs"].cols if c.name not in ("lot_id", "job_id")]
        cols = {n: [w.get(n) for w in ws] for n in names}
        cols["start_time"] = [w.get("start_t") for w in ws]
        cols["finish_time"] = [w.get("finish_t") for w in ws]
        self._final_rows("wafer_runs", cols)

    def _write_patterns(self, res: ParseResult) -> None:
        """Classify the spatial fail pattern of every wafer of the file (its dies, last test of each
        coordinate) into ``wafer_patterns``."""
        if not self.classify_wafers or not res.wafers or not self._dies:
            return
        d = {k: np.concatenate([c[k] for c in self._dies]) for k in self._dies[0]}
        self._dies = []
        # as the parts view: PRR pass/fail, else the hard bin's HBR pass/fail (else bin 1 passes)
        unknown = ~d.pop("passed_known")
        if unknown.any():
            hb = d["hard_bin"][unknown]
            d["passed"][unknown] = [self._hbin_pass.get(int(b), int(b) == 1) for b in hb]
        cols = self.wafer_classifier(res.wafers, d)
        if cols["wafer_id"]:
            self._final_rows("wafer_patterns", cols)

    def _write_lot_file(self, res: ParseResult, file_meta: dict, settings_meta: dict) -> None:
        mir, mrr, wcr = res.mir or {}, res.mrr or {}, res.wcr or {}

        def s(d: dict, k: str) -> str | None:
            v = d.get(k)
            if isinstance(v, str):
                v = v.strip()
            return v or None

        def c1(d: dict, k: str) -> str | None:
            v = d.get(k)
            return v if isinstance(v, str) and v.strip() else None

        row = {
            "file_name": file_meta.get("file_name"),
            "file_sha256": file_meta.get("sha256"),
            "file_size": file_meta.get("size"),
            "stdf_bytes": res.bytes_decompressed,
            "byte_order": self.header.byte_order if self.header else None,
            "cpu_type": self.header.cpu_type if self.header else None,
            "records": res.records,
            "partial": res.partial,
            "setup_time": mir.get("SETUP_T"),
            "start_time": mir.get("START_T"),
            "finish_time": mrr.get("FINISH_T"),
            "station": mir.get("STAT_NUM"),
            "mode_code": c1(mir, "MODE_COD"),
            "retest_code": c1(mir, "RTST_COD"),
            "protection_code": c1(mir, "PROT_COD"),
            "burn_time": mir.get("BURN_TIM"),
            "command_mode": c1(mir, "CMOD_COD"),
            "part_type": s(mir, "PART_TYP"),
            "program": s(mir, "JOB_NAM"),
            "program_rev": s(mir, "JOB_REV"),
            "node_name": s(mir, "NODE_NAM"),
            "tester_type": s(mir, "TSTR_TYP"),
            "sublot_id": s(mir, "SBLOT_ID"),
            "operator": s(mir, "OPER_NAM"),
            "exec_type": s(mir, "EXEC_TYP"),
            "exec_ver": s(mir, "EXEC_VER"),
            "test_code": s(mir, "TEST_COD"),
            "test_temp": s(mir, "TST_TEMP"),
            "user_text": s(mir, "USER_TXT"),
            "aux_file": s(mir, "AUX_FILE"),
            "package_type": s(mir, "PKG_TYP"),
            "family_id": s(mir, "FAMLY_ID"),
            "date_code": s(mir, "DATE_COD"),
            "facility_id": s(mir, "FACIL_ID"),
            "floor_id": s(mir, "FLOOR_ID"),
            "process_id": s(mir, "PROC_ID"),
            "oper_freq": s(mir, "OPER_FRQ"),
            "spec_name": s(mir, "SPEC_NAM"),
            "spec_ver": s(mir, "SPEC_VER"),
            "flow_id": s(mir, "FLOW_ID"),
            "setup_id": s(mir, "SETUP_ID"),
            "design_rev": s(mir, "DSGN_REV"),
            "engineering_id": s(mir, "ENG_ID"),
            "rom_code": s(mir, "ROM_COD"),
            "serial_num": s(mir, "SERL_NUM"),
            "supervisor": s(mir, "SUPR_NAM"),
            "disposition": c1(mrr, "DISP_COD"),
            "mrr_user_desc": s(mrr, "USR_DESC"),
            "mrr_exc_desc": s(mrr, "EXC_DESC"),
            "wafer_size": wcr.get("WAFR_SIZ"),
            "die_height": wcr.get("DIE_HT"),
            "die_width": wcr.get("DIE_WID"),
            "wafer_units": wcr.get("WF_UNITS"),
            "wafer_flat": c1(wcr, "WF_FLAT"),
            "center_x": None if wcr.get("CENTER_X") in (None, -32768) else wcr.get("CENTER_X"),
            "center_y": None if wcr.get("CENTER_Y") in (None, -32768) else wcr.get("CENTER_Y"),
            "pos_x": c1(wcr, "POS_X"),
            "pos_y": c1(wcr, "POS_Y"),
            "parser_version": PARSER_VERSION,
            "retest_policy": settings_meta.get("retest_policy"),
            "test_key": settings_meta.get("test_key"),
            "ingested_at": int(dt.datetime.now(dt.UTC).timestamp()),
        }
        self._final_rows("lot_files", {k: [v] for k, v in row.items()})
