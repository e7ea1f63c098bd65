"""``stratum.query.arrow_ipc``: Arrow IPC files and pages from DuckDB's Arrow C stream through nanoarrow (what the
AWS functions use: no pyarrow there), read back with pyarrow and compared with DuckDB's own Arrow conversion."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from stratum.query import arrow_ipc

TYPES = (
    "SELECT range::INTEGER AS i, range::BIGINT AS b, range::VARCHAR AS s, range / 3 AS d, (range / 10)::FLOAT AS f,"
    " (range % 200)::UTINYINT AS u, (range * 10000000000000000000)::HUGEINT AS h, (range / 7)::DECIMAL(18, 3) AS dc,"
    " TIMESTAMP '2024-01-01' + range * INTERVAL 1 SECOND AS ts, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS tz,"
    " DATE '2024-01-02' AS dt, [range, range + 1] AS l, {{'a': range}} AS st, range % 2 = 0 AS bo,"
    " CASE WHEN range % 3 = 0 THEN NULL ELSE range END AS n, '\\xAA'::BLOB AS bl FROM range({n})"
)


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("SET enable_progress_bar = false")
    yield c
    c.close()


@pytest.mark.parametrize("n", [0, 1, 1_000_001])
def test_file_round_trips_every_type(con, tmp_path, n):
    q = TYPES.format(n=n)
    path = tmp_path / "x.arrow"
    assert arrow_ipc.write_file(con.sql(q), path) == n
    data = path.read_bytes()
    assert data[:8] == b"ARROW1\0\0" and data[-6:] == b"ARROW1"
    f = pa.ipc.open_file(pa.memory_map(str(path)))
    assert f.num_record_batches == (0 if n == 0 else -(-n // 1_000_000))  # DuckDB's C stream: 1M rows a batch
    t = f.read_all()
    t.validate(full=True)
    want = con.sql(q).to_arrow_table()
    assert t.schema.equals(want.schema, check_metadata=True) and t.equals(want)
    assert pa.ipc.open_stream(data[8 : len(data) - 10 - int.from_bytes(data[-10:-6], "little")]).read_all() == t


def test_pages_and_the_row_after_them(con):
    con.execute("SET TimeZone = 'America/New_York'")
    q = TYPES.format(n=12)
    for offset, n, rows, more in ((0, 5, 5, True), (5, 7, 7, False), (10, 5, 2, False), (12, 5, 0, False)):
        ipc, got, has_more = arrow_ipc.page(con.sql(q), offset, n, timezone=lambda: "America/New_York")
        t = pa.ipc.open_stream(ipc).read_all()
        want = con.sql(q).limit(n, offset).to_arrow_table()
        assert (got, has_more, t.num_rows) == (rows, more, rows)
        assert t.schema.equals(want.schema) and t.equals(want), (offset, n)
        assert str(t.schema.field("tz").type) == "timestamp[us, tz=America/New_York]"
    ipc, got, more = arrow_ipc.page(con.sql("EXPLAIN SELECT 1"), 0, 10)
    assert (got, more) == (1, False)
    assert pa.ipc.open_stream(ipc).read_all().column_names == ["explain_key", "explain_value"]


def test_dictionary_columns_are_refused_with_a_clear_error(con, tmp_path):
    con.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
    with pytest.raises(arrow_ipc.ArrowIpcError, match="cannot be written as Arrow IPC"):
        arrow_ipc.write_file(con.sql("SELECT 'ok'::mood AS m"), tmp_path / "m.arrow")


def test_encoder_choice():
    assert arrow_ipc.use_pyarrow("auto") is True  # pyarrow is installed here
    assert arrow_ipc.use_pyarrow("pyarrow") is True and arrow_ipc.use_pyarrow("nanoarrow") is False


def test_a_page_with_a_row_after_it_stays_off_pyarrow_and_within_a_workers_cap():
    """The extra row is dropped by DuckDB reading the rows as a C stream capsule: handed the nanoarrow object,
    DuckDB converted it with pyarrow where installed, whose allocator reserved ~1 GB of address space (a SQL
    worker's RLIMIT_DATA counts it; measured 1.25 GB of VmData for this 2-row page). Run in a fresh process
    capped at 400 MB above its start (the page itself needs ~150 MB: DuckDB's 1M-row batch buffers)."""
    import subprocess
    import sys

    code = """
import resource, sys
import duckdb
from stratum.query import arrow_ipc
con = duckdb.connect(config={"threads": 1})
con.execute("SELECT 1").fetchall()
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmData:")) * 1024
resource.setrlimit(resource.RLIMIT_DATA, (vm + 400 * 2**20, resource.RLIM_INFINITY))
q = ("SELECT x::INTEGER AS i, sum(x) OVER () AS s, x / 3 AS d, (x / 10)::FLOAT AS f, 'v' || x AS v, x > 1 AS b, "
     "DATE '2026-01-02' + x::INTEGER AS day, TIMESTAMP '2026-01-02 03:04:05.123' AS ts, "
     "INTERVAL 5 SECOND * x AS iv, (x * 1.25)::DECIMAL(10, 2) AS dec, [0.1::FLOAT, x] AS lf, {'k': x} AS st, "
     "CASE WHEN x = 2 THEN 'nan'::DOUBLE END AS n, '\\\\xAA'::BLOB AS bl, NULL::VARCHAR AS nul, "
     "12::UTINYINT AS ut, TIME '01:02:03' AS t, 3::BIGINT AS bi FROM range(5) r(x) ORDER BY x")
ipc, n, more = arrow_ipc.page(con.sql(q), 2, 2)
print(n, more, "pyarrow" in sys.modules)
sys.stdout.buffer.write(ipc)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    head, _, ipc = r.stdout.partition(b"\n")
    assert head == b"2 True False"
    page = pa.ipc.open_stream(ipc).read_all()
    assert page.num_columns == 18 and page.column("i").to_pylist() == [2, 3]
    assert page.column("v").to_pylist() == ["v2", "v3"] and page.column("bl").to_pylist() == [b"\xaa", b"\xaa"]


def test_a_full_page_with_a_row_after_it_without_pyarrow():
    """As on AWS (no pyarrow): a 100,000-row page with a row after it. DuckDB scanning the rows' C stream with
    two threads hung here; the page is encoded at once."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "import duckdb\n"
        "from stratum.query import arrow_ipc\n"
        "ipc, n, more = arrow_ipc.page(duckdb.connect().sql('SELECT * FROM range(100005)'), 0, 100000)\n"
        "print(n, more, 'pyarrow' in sys.modules and sys.modules['pyarrow'] is not None)\n"
        "sys.stdout.flush(); sys.stdout.buffer.write(ipc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    head, _, ipc = r.stdout.partition(b"\n")
    assert head == b"100000 True False"
    assert pa.ipc.open_stream(ipc).read_all().column(0).to_pylist() == list(range(100000))
