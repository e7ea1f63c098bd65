"""Lake writer: the per-file page encodings it chooses and its Arrow fast paths change bytes, never values."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stratum.lake.writer import MIN_ROWS, LakeWriter, choose_encodings, stored_schema, to_arrow
from stratum.stdf.reader import FileHeader, ParseResult
from stratum.storage.local import LocalObjectStore

N = MIN_ROWS + 1000  # the first row group is a full one: the trial runs


def _flows(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    flow = rng.permutation(1_000_000)[:365].astype(np.uint32)  # one test flow repeated part after part
    return {
        "sequential": np.arange(n, dtype=np.int32),  # delta: constant steps
        "repeated_flow": np.resize(flow, n),  # plain: zstd finds every repeat of the flow
        "two_sites": rng.integers(0, 2, n).astype(np.int32) * 1_000_003,  # dictionary: one bit a value
    }


def test_each_column_gets_the_encoding_that_compresses_its_sample_smallest():
    t = pa.table(_flows(N))
    assert choose_encodings(t, list(t.column_names), "zstd", 1) == {
        "sequential": "DELTA_BINARY_PACKED",
        "repeated_flow": "PLAIN",
        "two_sites": "RLE_DICTIONARY",
    }


def _results(n: int) -> dict[str, object]:
    rng = np.random.default_rng(3)
    f = _flows(n)
    result = rng.normal(size=n).astype(np.float32)
    result[::97] = np.nan
    passed = rng.integers(-1, 2, n).astype(np.int8)
    return {
        "part_seq": np.arange(n, dtype=np.int64) // 365,
        "test_idx": (np.arange(n) % 365).astype(np.int64),  # the reader's int64 index, stored as int32
        "test_num": f["repeated_flow"],
        "head_num": np.ones(n, np.uint8),
        "site_num": (f["two_sites"] > 0).astype(np.uint8),
        "result": result,
        "valid": ~np.isnan(result),
        "passed": passed,
        "test_flg": np.zeros(n, np.uint8),
        "parm_flg": np.zeros(n, np.uint8),
        "lo_limit": np.where(np.arange(n) % 365 == 5, np.nan, -1.5).astype(np.float32),
        "hi_limit": np.full(n, 2.5, np.float32),
        "rec_seq": np.arange(n, dtype=np.int64) * 2 + 10,
    }


@pytest.mark.parametrize("background", [True, False])
def test_a_large_results_file_holds_exactly_the_rows_under_its_chosen_encodings(tmp_path, background):
    store = LocalObjectStore(tmp_path)
    w = LakeWriter(store, "ws", "job_01", 7, background=background)
    w.begin(FileHeader("LOT1", "MIR", "little", 2, 4, None))
    cols = _results(N)
    for lo in range(0, N, 50_000):  # reader-sized batches
        w.rows("results", {k: v[lo : lo + 50_000] for k, v in cols.items()})  # type: ignore[index]
    manifest = w.finish(ParseResult(), {"file_name": "f.stdf", "sha256": "0", "size": 1}, {})
    pf = pq.ParquetFile(tmp_path / manifest.tables["results"].key)
    got = pf.read()
    assert got.schema == stored_schema("results")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)] == [
        N
    ]  # flushed once a full group is buffered
    want = pa.table(
        {
            "lot_id": ["LOT1"] * N,
            "job_id": ["job_01"] * N,
            "file_num": pa.array([7] * N, pa.int64()),
            **{
                k: to_arrow(v, stored_schema("results").field(k).type, N)
                for k, v in cols.items()  # type: ignore[misc]
            },
        }
    )
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_dictionary(a.type):
            a = a.cast(a.type.value_type)
        assert a.null_count == b.null_count, name
        if pa.types.is_floating(b.type):  # NaN-free after the nulls: compare the bits
            a, b = a.fill_null(0).view(pa.int32()), b.fill_null(0).view(pa.int32())
        assert a.equals(b), name
    assert got.column("passed").null_count == int((cols["passed"] < 0).sum())  # type: ignore[operator]
    assert got.column("result").null_count == len(range(0, N, 97))
    rg = pf.metadata.row_group(0)
    enc = {rg.column(i).path_in_schema: set(rg.column(i).encodings) for i in range(rg.num_columns)}
    assert "DELTA_BINARY_PACKED" in enc["test_idx"] and "RLE_DICTIONARY" not in enc["test_idx"]  # steps of 1
    assert enc["test_num"] & {"DELTA_BINARY_PACKED", "RLE_DICTIONARY"} == set()  # plain: a repeated flow
    assert "RLE_DICTIONARY" in enc["site_num"] and "DELTA_BINARY_PACKED" not in enc["site_num"]
    assert "DELTA_BINARY_PACKED" in enc["rec_seq"] and "RLE_DICTIONARY" in enc["hi_limit"]  # fixed choices
    assert all(rg.column(i).statistics is not None for i in range(rg.num_columns))  # kept on every column
    # DuckDB (the query engine) reads the chosen encodings to the same values
    con = duckdb.connect()
    cols = "test_idx, test_num, site_num, rec_seq"
    path = str(tmp_path / manifest.tables["results"].key).replace("'", "''")
    by_duckdb = con.execute(f"SELECT {cols} FROM read_parquet('{path}')").to_arrow_table()
    assert by_duckdb.equals(got.select(cols.split(", ")))
    (lo, hi, n_test), *_ = con.execute(
        f"SELECT min(test_idx), max(test_idx), count(DISTINCT test_num) FROM read_parquet('{path}')"
    ).fetchall()
    assert (lo, hi, n_test) == (0, 364, 365)


def test_a_small_file_keeps_the_default_encodings(tmp_path):
    store = LocalObjectStore(tmp_path)
    w = LakeWriter(store, "ws", "job_01", 7, background=False)
    w.begin(FileHeader("LOT1", "MIR", "little", 2, 4, None))
    w.rows("results", {k: v[:5000] for k, v in _results(5000).items()})  # type: ignore[index]
    manifest = w.finish(ParseResult(), {"file_name": "f.stdf", "sha256": "0", "size": 1}, {})
    rg = pq.ParquetFile(tmp_path / manifest.tables["results"].key).metadata.row_group(0)
    enc = {rg.column(i).path_in_schema: set(rg.column(i).encodings) for i in range(rg.num_columns)}
    assert "RLE_DICTIONARY" in enc["test_idx"] and "RLE_DICTIONARY" in enc["test_num"]


@pytest.mark.parametrize(
    ("col", "t", "want"),
    [
        (np.array([1, 0, -1, 1], np.int8), pa.bool_(), [True, False, None, True]),
        (np.array([1, 0, 1], np.int8), pa.bool_(), [True, False, True]),
        (np.array([True, False, True]), pa.bool_(), [True, False, True]),
        (np.array([1.5, np.nan, -np.inf], np.float32), pa.float32(), [1.5, None, -np.inf]),
        (np.array([1.5, 2.0], np.float64), pa.float64(), [1.5, 2.0]),
        (np.arange(6, dtype=np.float32)[::2], pa.float32(), [0.0, 2.0, 4.0]),  # strided
        (np.array([1.0, np.nan], ">f4"), pa.float32(), [1.0, None]),  # big-endian gather
        (np.zeros(0, np.float32), pa.float32(), []),
    ],
)
def test_arrow_fast_paths_equal_the_generic_conversion(col, t, want):
    arr = to_arrow(col, t, len(col))
    arr.validate(full=True)
    assert arr.type == t and arr.to_pylist() == want and arr.null_count == want.count(None)


def test_duckdb_skips_another_lots_file_on_its_statistics(tmp_path):
    """Why statistics stay on the constant columns: a query of lot B over a session's files never reads lot A's
    pages (garbled here, footer intact: reading any of them fails)."""
    store = LocalObjectStore(tmp_path)
    paths = {}
    for lot, num in (("A", 1), ("B", 2)):
        w = LakeWriter(store, "ws", f"job_{lot}", num, background=False)
        w.begin(FileHeader(lot, "MIR", "little", 2, 4, None))
        w.rows("results", {k: v[:5000] for k, v in _results(5000).items()})  # type: ignore[index]
        m = w.finish(ParseResult(), {"file_name": f"{lot}.stdf", "sha256": lot, "size": 1}, {})
        paths[lot] = tmp_path / m.tables["results"].key
    md = pq.read_metadata(paths["A"])
    data = bytearray(paths["A"].read_bytes())
    for i in range(md.num_row_groups):
        for j in range(md.num_columns):
            c = md.row_group(i).column(j)
            start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
            data[start + 2 : start + c.total_compressed_size - 2] = b"\xab" * (c.total_compressed_size - 4)
    paths["A"].write_bytes(bytes(data))
    files = ", ".join(f"'{p}'" for p in paths.values())
    con = duckdb.connect()
    for col, value in (("lot_id", "'B'"), ("job_id", "'job_B'"), ("file_num", "2")):
        q = f"SELECT count(*), sum(test_idx) FROM read_parquet([{files}]) WHERE {col} = {value}"
        assert con.execute(q).fetchall() == [(5000, sum(i % 365 for i in range(5000)))]
    with pytest.raises(duckdb.Error):  # the pages really are unreadable
        con.execute(f"SELECT sum(test_idx) FROM read_parquet([{files}]) WHERE lot_id = 'A'").fetchall()
