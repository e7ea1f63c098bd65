"""Exports (POST/GET /v1/exports, signed local download URLs), Arrow IPC answers of POST /v1/sql, and
``stratum export`` as a subprocess. The round trips use a lot with more than 100,000 results rows: the
file's row count and a checksum over every row equal the same aggregate run by the API's SQL."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from stratum.auth import signed_urls
from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.lake.layout import export_key
from stratum.query import arrow_ipc
from stratum.query import sql as sqlmod

from .conftest import new_app, strict_json

LOT = "EXP-LOT"
CHECKSUM = "SELECT count(*) AS n, sum(hash(t))::VARCHAR AS h FROM ({q}) t"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    spec = LotSpec(
        lot_id=LOT,
        wafers=("W01", "W02", "W03", "W04", "W05"),
        die_diameter=26,
        tests=tuple(default_tests(40, n_mpr=1, n_ftr=1)),
        seed=21,
    )
    lot = write_lot(spec, d / "stdf")
    app, client, tokens = new_app(d / "data")
    for p in lot.paths:
        assert app.state.runtime.ingest.ingest_path("default", p).status == "succeeded"

    class Big:
        pass

    b = Big()
    b.app, b.client, b.tokens, b.dir, b.lot = app, client, tokens, d, lot
    b.h = {"Authorization": f"Bearer {tokens['full']}"}
    yield b
    app.state.runtime.close()


@pytest.fixture(scope="module")
def nano(big):
    """The same lake served with ``sql.arrow_encoder = nanoarrow``: Arrow IPC from DuckDB's Arrow C stream, as the
    AWS functions (no pyarrow in their layers) encode it."""
    app, client, tokens = new_app(big.dir / "data", sql={"arrow_encoder": "nanoarrow"})
    assert app.state.runtime.settings.sql.isolate  # the pages come from a capped SQL worker, as under serve

    class Nano:
        pass

    b = Nano()
    b.app, b.client, b.tokens, b.dir, b.lot = app, client, tokens, big.dir, big.lot
    b.h = {"Authorization": f"Bearer {tokens['full']}"}
    yield b
    app.state.runtime.close()


@pytest.fixture(params=["pyarrow", "nanoarrow"])
def served(request):
    """The test lake, its Arrow IPC encoded by pyarrow (where installed) or by nanoarrow (the AWS functions)."""
    return request.getfixturevalue("big" if request.param == "pyarrow" else "nano")


def sql(big, q: str, **ctx):
    body = {"query": q, **({"context": ctx} if ctx else {})}
    r = big.client.post("/v1/sql", json=body, headers=big.h)
    assert r.status_code == 200, r.text
    return strict_json(r.text)["rows"]


def export(big, body: dict, headers=None) -> dict:
    r = big.client.post("/v1/exports", json=body, headers=headers or big.h)
    assert r.status_code == 202, r.text
    created = strict_json(r.text)
    assert r.headers["location"] == f"/v1/exports/{created['export_id']}"
    assert created["status"] == "queued" and created["download_url"] is None
    # the TestClient runs the background task before it returns: the export has ended
    done = strict_json(big.client.get(f"/v1/exports/{created['export_id']}", headers=headers or big.h).text)
    return done


def download(big, rec: dict) -> bytes:
    assert rec["status"] == "succeeded", rec
    r = big.client.get(rec["download_url"])  # no API key: the URL is the authorisation
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{rec["export_id"]}.{rec["format"]}"'
    assert len(r.content) == rec["bytes"] == int(r.headers["content-length"])
    import hashlib

    assert hashlib.sha256(r.content).hexdigest() == rec["sha256"]
    return r.content


def file_checksum(path: Path, reader: str) -> list:
    con = duckdb.connect()
    return list(con.execute(CHECKSUM.format(q=f"SELECT * FROM {reader}('{path}')")).fetchone())


def test_parquet_export_over_100k_rows_round_trips(big, tmp_path):
    q = "SELECT * FROM results"
    ((n, h),) = sql(big, CHECKSUM.format(q=q))
    assert n > 100_000
    rec = export(big, {"query": q, "format": "parquet"})
    assert rec["rows"] == n and rec["error"] is None
    assert rec["expires_at"] and rec["finished_at"] >= rec["started_at"] >= rec["created_at"]
    path = tmp_path / "r.parquet"
    path.write_bytes(download(big, rec))
    assert file_checksum(path, "read_parquet") == [n, h]
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == n and max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 122_880
    assert [c["name"] for c in rec["columns"]] == pq.read_schema(path).names


def test_csv_and_arrow_exports_hold_the_same_rows(served, tmp_path):
    big = served
    q = "SELECT wafer_id, x, y, test_num, result, passed FROM results WHERE lot_id = 'EXP-LOT' ORDER BY ALL"
    ((n, h),) = sql(big, CHECKSUM.format(q=q))
    arrow = tmp_path / "r.arrow"
    arrow.write_bytes(download(big, export(big, {"query": q, "format": "arrow"})))
    f = pa.ipc.open_file(pa.memory_map(str(arrow)))
    t = f.read_all()
    assert t.num_rows == n > 65_536
    # pyarrow: batch_rows (65,536) at a time; nanoarrow: DuckDB's C stream batches (1,000,000 rows)
    nanoarrow = big.app.state.runtime.settings.sql.arrow_encoder == "nanoarrow"
    assert f.num_record_batches == (1 if nanoarrow else -(-n // 65_536))
    con = duckdb.connect()
    con.register("t_arrow", t)
    assert list(con.execute(CHECKSUM.format(q="SELECT * FROM t_arrow")).fetchone()) == [n, h]
    csv_bytes = download(big, export(big, {"query": q, "format": "csv"}))
    c = pacsv.read_csv(io.BytesIO(csv_bytes))
    assert c.num_rows == n and c.column_names == t.column_names
    assert c.column("test_num").to_pylist() == t.column("test_num").to_pylist()
    assert c.column("result").to_pylist() == pytest.approx(t.column("result").to_pylist(), rel=1e-6, nan_ok=True)


TYPED = (
    "SELECT t.test_num, t.lo_limit, t.hi_limit, t.res_scal, t.exec_count, t.exec_count * 10000000000000000000 AS big,"
    " CAST(t.lo_limit AS DECIMAL(18, 6)) AS lo_dec, l.start_time, CAST(l.start_time AS TIMESTAMPTZ) AS start_tz,"
    " r.result, r.site_num, r.hard_bin, r.passed, r.wafer_id"
    " FROM results r JOIN tests t USING (lot_id, test_num) JOIN lots l USING (lot_id)"
    " ORDER BY r.job_id, r.part_seq, r.test_num LIMIT 3000"
)


def _canon(res) -> list[tuple]:
    t = res.to_arrow_table()  # (Arrow: time zones without pytz)
    return [tuple("NaN" if isinstance(v, float) and v != v else v for v in r.values()) for r in t.to_pylist()]


def test_types_survive_parquet_and_csv(big, tmp_path):
    """float32, unsigned and 128-bit integers, decimals, timestamps (with and without zone) and NULLs come back
    with the values the same query gives over SQL's session; HUGEINT is DECIMAL(38,0) in Parquet (its Arrow
    type), never DOUBLE."""
    with big.app.state.runtime.engine.session("default") as ses:
        res = ses.execute(TYPED)
        types = [str(d[1]) for d in res.description]
        want = _canon(res)
    assert types[:6] == ["UINTEGER", "FLOAT", "FLOAT", "TINYINT", "HUGEINT", "HUGEINT"]
    assert max(r[5] for r in want) > 2**64  # beyond a double's exact integers
    rec = export(big, {"query": TYPED, "format": "parquet"})
    p = tmp_path / "t.parquet"
    p.write_bytes(download(big, rec))
    con = duckdb.connect()
    got = con.execute(f"SELECT * FROM read_parquet('{p}')")
    assert [str(d[1]) for d in got.description] == ["DECIMAL(38,0)" if t == "HUGEINT" else t for t in types]
    assert _canon(got) == want
    assert [c["type"] for c in rec["columns"]] == types  # the query's types, as POST /v1/sql names them
    rec = export(big, {"query": TYPED, "format": "csv"})
    c = tmp_path / "t.csv"
    c.write_bytes(download(big, rec))
    cols = ", ".join(f"'{n}': '{t}'" for n, t in zip([x["name"] for x in rec["columns"]], types, strict=True))
    got = con.execute(f"SELECT * FROM read_csv('{c}', header = true, columns = {{{cols}}})")
    assert _canon(got) == want


def test_types_survive_arrow(served, tmp_path):
    """The same values and Arrow types through either encoder: the file's schema is the one DuckDB gives the
    query's result (HUGEINT as decimal128(38, 0), TIMESTAMPTZ with the session's zone)."""
    with served.app.state.runtime.engine.session("default") as ses:
        res = ses.execute(TYPED)
        want = _canon(res)
        schema = ses.execute(TYPED).to_arrow_table().schema
    p = tmp_path / "t.arrow"
    p.write_bytes(download(served, export(served, {"query": TYPED, "format": "arrow"})))
    t = pa.ipc.open_file(pa.memory_map(str(p))).read_all()
    t.validate(full=True)
    assert t.schema == schema and str(schema.field("big").type) == "decimal128(38, 0)"
    assert [tuple("NaN" if isinstance(v, float) and v != v else v for v in r.values()) for r in t.to_pylist()] == want


def test_table_export_with_filters(big, tmp_path):
    body = {
        "table": "parts",
        "filters": {"wafer_id": ["W02", "W04"], "hard_bin": 1, "part_txt": None},
        "context": {"lot_id": LOT},
        "format": "parquet",
    }
    rec = export(big, body)
    assert (
        rec["query"]
        == 'SELECT * FROM parts WHERE "wafer_id" IN (\'W02\', \'W04\') AND "hard_bin" = 1 AND "part_txt" IS NULL'
    )
    ((n,),) = sql(
        big,
        "SELECT count(*) FROM parts WHERE wafer_id IN ('W02','W04') AND hard_bin = 1 AND part_txt IS NULL",
        lot_id=LOT,
    )
    assert rec["rows"] == n > 0
    t = pq.read_table(io.BytesIO(download(big, rec)))
    assert set(t.column("wafer_id").to_pylist()) == {"W02", "W04"} and set(t.column("hard_bin").to_pylist()) == {1}


def test_snapshot_and_wafer_scoping(big):
    first = big.app.state.runtime.catalog.list_jobs("default", lot_id=LOT)[0][-1]
    rec = export(
        big,
        {
            "query": "SELECT DISTINCT wafer_id FROM parts ORDER BY 1",
            "context": {"lot_id": LOT, "wafer_ids": ["W03"]},
            "format": "csv",
        },
    )
    assert download(big, rec).decode().split() == ["wafer_id", "W03"]  # DuckDB's CSV: quotes only when needed
    rec = export(
        big,
        {
            "query": "SELECT count(*) AS n FROM parts",
            "context": {"lot_id": LOT, "snapshot_job_id": first.job_id},
            "format": "csv",
        },
    )
    ((n,),) = sql(big, "SELECT count(*) FROM parts", lot_id=LOT, snapshot_job_id=first.job_id)
    assert download(big, rec).decode().split() == ["n", str(n)]


@pytest.mark.parametrize(
    ("body", "status", "code", "detail"),
    [
        ({"query": "DROP TABLE parts"}, 400, "query_rejected", "only SELECT"),
        ({"query": "SELECT * FROM read_parquet('/etc/passwd')"}, 400, "query_rejected", "read_parquet"),
        ({"query": "SELECT * FROM secret_table"}, 400, "query_rejected", "unknown table"),
        ({"query": "SELECT 1", "table": "parts"}, 400, "bad_request", "either query or table"),
        ({}, 400, "bad_request", "either query or table"),
        ({"table": "parts"}, 400, "bad_request", "needs context.lot_id"),
        ({"table": "nope", "context": {"lot_id": LOT}}, 400, "bad_request", "unknown table 'nope'"),
        (
            {"table": "parts", "context": {"lot_id": LOT}, "filters": {"x; DROP": 1}},
            400,
            "bad_request",
            "unknown column",
        ),
        ({"query": "SELECT 1", "filters": {"x": 1}}, 400, "bad_request", "filters apply to a table"),
        ({"query": "SELECT 1", "format": "xlsx"}, 400, "bad_request", "format"),
        ({"query": "SELECT 1", "context": {"lot_id": "NO-LOT"}}, 404, "not_found", "NO-LOT"),
    ],
)
def test_bad_exports(big, body, status, code, detail):
    r = big.client.post("/v1/exports", json=body, headers=big.h)
    assert r.status_code == status, r.text
    p = strict_json(r.text)
    assert p["code"] == code and detail in p["detail"], p


def test_trailing_comment_in_a_query(big):
    rec = export(big, {"query": "SELECT count(*) AS n FROM parts -- all of them", "format": "csv"})
    assert rec["status"] == "succeeded" and rec["rows"] == 1


def test_filter_values_are_literals_not_sql(big):
    rec = export(big, {"table": "parts", "context": {"lot_id": LOT}, "filters": {"wafer_id": "W01' OR '1'='1"}})
    assert rec["status"] == "succeeded" and rec["rows"] == 0


def test_failed_export_records_the_error(make_app):
    app, client, tokens = make_app(exports={"timeout_seconds": 0.2})
    h = {"Authorization": f"Bearer {tokens['full']}"}
    r = client.post("/v1/exports", json={"query": "SELECT count(*) FROM range(10000000000) a"}, headers=h)
    rec = strict_json(client.get(f"/v1/exports/{r.json()['export_id']}", headers=h).text)
    assert rec["status"] == "failed" and rec["error"]["code"] == "query_timeout" and rec["download_url"] is None
    assert not any(app.state.runtime.lake.list("workspaces/default/exports/"))  # nothing half-written


def test_workspaces_and_signed_urls(big):
    rec = export(big, {"query": "SELECT 1 AS one", "format": "csv"})
    other = big.app.state.keys.create("other-ws", ["full"], "other")[0]
    r = big.client.get(f"/v1/exports/{rec['export_id']}", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404
    url = urlsplit(rec["download_url"])
    qs = {k: v[0] for k, v in parse_qs(url.query).items()}
    path = url.path
    # the signature binds workspace, export and expiry
    for bad in ({"workspace": "other-ws"}, {"expires": str(int(qs["expires"]) + 1)}, {"signature": "0" * 64}):
        r = big.client.get(path, params={**qs, **bad})
        assert r.status_code == 403, r.text
    secret = signed_urls.local_secret(big.app.state.runtime.settings.data_dir)
    past = int(time.time()) - 5
    sig = signed_urls.sign(secret, "export", "default", rec["export_id"], past)
    r = big.client.get(path, params={"workspace": "default", "expires": past, "signature": sig})
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    # an upload URL's signature does not open an export
    up = signed_urls.sign(secret, "upload", "default", rec["export_id"], qs["expires"])
    assert big.client.get(path, params={**qs, "signature": up}).status_code == 403
    assert big.client.get("/v1/exports/exp_nope", headers=big.h).status_code == 404


def test_sweep_deletes_the_files_of_expired_exports_only(big):
    """The local store has no lifecycle rule: ``ExportService.sweep`` (run by ``stratum serve``'s housekeeping
    loop) deletes an export's file once its record has expired, and nothing else."""
    rt = big.app.state.runtime
    kept = export(big, {"query": "SELECT 1 AS kept", "format": "csv"})
    gone = export(big, {"query": "SELECT 1 AS gone", "format": "parquet"})
    for rec in (kept, gone):
        rec["key"] = export_key("default", rec["export_id"], f"{rec['export_id']}.{rec['format']}")
    # what exports.retention_days later looks like: the record's TTL has passed
    item = rt.meta.get("WS#default#EXPORT", gone["export_id"])
    rt.meta.put(item.pk, item.sk, item.data, ttl=int(time.time()) - 1)
    assert big.client.get(f"/v1/exports/{gone['export_id']}", headers=big.h).status_code == 404
    assert rt.lake.exists(gone["key"]) and rt.lake.exists(kept["key"])
    assert rt.exports.sweep(["default", "ws-without-exports"]) == [gone["key"]]
    assert not rt.lake.exists(gone["key"]) and rt.lake.exists(kept["key"])
    assert download(big, strict_json(big.client.get(f"/v1/exports/{kept['export_id']}", headers=big.h).text))
    assert rt.exports.sweep(["default"]) == []


def test_exports_need_sql_scope(big):
    read = {"Authorization": f"Bearer {big.tokens['read']}"}
    assert big.client.post("/v1/exports", json={"query": "SELECT 1"}, headers=read).status_code == 403


# -- Arrow IPC answers of POST /v1/sql ---------------------------------------------------------------------
ARROW = "application/vnd.apache.arrow.stream"


def test_sql_arrow_stream_pages_equal_json_pages(served):
    big = served
    q = "SELECT part_id, wafer_id, x, y, test_time_ms, is_final FROM parts ORDER BY job_id, part_seq"
    cursor, pages_json, pages_arrow = None, [], []
    while True:
        body = {"query": q, "limit": 500, **({"cursor": cursor} if cursor else {})}
        j = strict_json(big.client.post("/v1/sql", json=body, headers=big.h).text)
        a = big.client.post("/v1/sql", json=body, headers={**big.h, "Accept": ARROW})
        assert a.status_code == 200 and a.headers["content-type"] == ARROW
        t = pa.ipc.open_stream(a.content).read_all()
        assert t.column_names == [c["name"] for c in j["columns"]]
        assert int(a.headers["x-row-count"]) == t.num_rows == j["row_count"]
        assert a.headers.get("x-next-cursor") == j["next_cursor"] and a.headers["x-truncated"] == "false"
        pages_json.append(j["rows"])
        pages_arrow.append([list(r.values()) for r in t.to_pylist()])
        cursor = j["next_cursor"]
        if not cursor:
            break
    assert len(pages_json) > 2 and pages_arrow == pages_json


def test_sql_arrow_empty_and_truncated(served):
    big = served
    a = big.client.post("/v1/sql", json={"query": "SELECT 1 AS x WHERE false"}, headers={**big.h, "Accept": ARROW})
    t = pa.ipc.open_stream(a.content).read_all()
    assert t.num_rows == 0 and t.column_names == ["x"] and "x-next-cursor" not in a.headers
    # the configured encoder wrote it (the SQL worker got the setting): its bytes, not the other's
    con = duckdb.connect()
    by_nanoarrow = arrow_ipc.page(con.sql("SELECT 1 AS x WHERE false"), 0, 1000)[0]
    by_pyarrow = sqlmod._ipc(con.execute("SELECT 1 AS x WHERE false").to_arrow_table())
    assert by_nanoarrow != by_pyarrow
    nanoarrow = big.app.state.runtime.settings.sql.arrow_encoder == "nanoarrow"
    assert a.content == (by_nanoarrow if nanoarrow else by_pyarrow)
    body = {"query": "SELECT * FROM range(100005)", "limit": 100000}
    a = big.client.post("/v1/sql", json=body, headers={**big.h, "Accept": ARROW})
    assert a.headers["x-truncated"] == "true" and pa.ipc.open_stream(a.content).read_all().num_rows == 100000


# -- the CLI ---------------------------------------------------------------------------------------------
def stratum(*args, data_dir):
    exe = Path(sys.executable).with_name("stratum")
    return subprocess.run([str(exe), *args, "--data-dir", str(data_dir)], capture_output=True, text=True)


def test_cli_export(big, tmp_path):
    data = big.app.state.runtime.settings.data_dir
    q = "SELECT * FROM results"
    ((n, h),) = sql(big, CHECKSUM.format(q=q))
    out = tmp_path / "all.parquet"
    r = stratum("export", q, "-o", str(out), data_dir=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{n} rows, {out.stat().st_size} bytes")
    assert file_checksum(out, "read_parquet") == [n, h]
    csv_out = tmp_path / "w.csv"
    r = stratum(
        "export", "SELECT DISTINCT wafer_id FROM parts ORDER BY 1", "-o", str(csv_out), "--lot", LOT, data_dir=data
    )
    assert r.returncode == 0 and csv_out.read_text().split() == ["wafer_id", "W01", "W02", "W03", "W04", "W05"]
    r = stratum("export", "DELETE FROM parts", "-o", str(tmp_path / "x.parquet"), data_dir=data)
    assert r.returncode == 1 and "only SELECT" in r.stderr and not (tmp_path / "x.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.parquet", "w.csv"]  # no work directory left
    r = stratum("export", "SELECT 1", "-o", str(tmp_path / "x.xlsx"), data_dir=data)
    assert r.returncode == 2 and "cannot tell the format" in r.stderr


def test_export_database_writes_only_its_own_directory(big, tmp_path):
    """Defence in depth below the guard: the export's DuckDB may write its private directory and read the
    workspace's lake, nothing else (even SQL the guard would refuse)."""
    from stratum.query.engine import Scope

    own = tmp_path / "own"
    own.mkdir()
    ses = big.app.state.runtime.engine.export_session(
        "default", Scope(), str(own), memory_mb=256, threads=1, temp_mb=64
    )
    try:
        assert ses.rows(f"COPY (SELECT 1 AS a) TO '{own / 'ok.csv'}' (FORMAT csv)") == [(1,)]
        for stmt in (
            f"COPY (SELECT 1 AS a) TO '{tmp_path / 'escaped.csv'}' (FORMAT csv)",
            f"COPY (SELECT 1 AS a) TO '{own}/../escaped2.csv' (FORMAT csv)",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SET enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                ses.execute(stmt)
        assert not (tmp_path / "escaped.csv").exists() and not (tmp_path / "escaped2.csv").exists()
    finally:
        ses.close()


def test_exports_see_only_their_workspace(big, tmp_path):
    other = big.app.state.keys.create("ws-exports-b", ["full"], "b")[0]
    h = {"Authorization": f"Bearer {other}"}
    rec = export(big, {"query": "SELECT count(*) AS n FROM results", "format": "csv"}, headers=h)
    assert download(big, rec).decode().split() == ["n", "0"]
    r = big.client.post("/v1/exports", json={"query": "SELECT 1", "context": {"lot_id": LOT}}, headers=h)
    assert r.status_code == 404


def test_export_requests_go_through_the_event_port(make_app):
    """The API queues an export by publishing export.requested; a port that refuses it fails the export (nothing
    would ever run it), and a redelivered request of a long-running export marks it cut off."""
    from stratum.events.local import InProcessBus

    app, client, tokens = make_app()
    h = {"Authorization": f"Bearer {tokens['full']}"}
    rt = app.state.runtime
    seen = []
    rt.events.subscribe(seen.append, kinds=("export.requested",))
    r = client.post("/v1/exports", json={"query": "SELECT 42 AS x", "format": "csv"}, headers=h)
    export_id = r.json()["export_id"]
    assert [(e.kind, e.workspace, e.subject) for e in seen] == [
        ("export.requested", "default", {"export_id": export_id})
    ]
    assert client.get(f"/v1/exports/{export_id}", headers=h).json()["rows"] == 1

    class Refusing(InProcessBus):
        def publish(self, event):
            raise RuntimeError("bus down")

    real, rt.exports.events = rt.exports.events, Refusing()
    try:
        r = client.post("/v1/exports", json={"query": "SELECT 1 AS x"}, headers=h)
        rec = client.get(f"/v1/exports/{r.json()['export_id']}", headers=h).json()
        assert rec["status"] == "failed" and rec["error"]["code"] == "unavailable"
    finally:
        rt.exports.events = real

    svc = rt.exports
    rec = svc.create("default", fmt="csv", query="SELECT 1 AS x")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=svc.settings.exports.abandoned_after_seconds + 5)).isoformat()
    svc._save({**rec, "status": "running", "started_at": old})
    from stratum.events.model import new_event

    again = svc.handle_event(new_event("export.requested", "default", subject={"export_id": rec["export_id"]}))
    assert again["status"] == "failed" and again["error"]["code"] == "export_interrupted"
    rec2 = svc.create("default", fmt="csv", query="SELECT 1 AS x")
    svc._save({**rec2, "status": "running", "started_at": dt.datetime.now(dt.UTC).isoformat()})
    assert (
        svc.handle_event(new_event("export.requested", "default", subject={"export_id": rec2["export_id"]}))["status"]
        == "running"
    )  # another worker is on it: left alone
    assert svc.handle_event(new_event("export.requested", "default", subject={"export_id": "exp_gone"})) is None


@pytest.mark.parametrize("query", ["SELECT list(repeat('x', 1000)) AS l FROM range(10000000)", "SELECT 1 AS ok"])
def test_export_past_its_memory_fails_alone(make_app, query, tmp_path):
    """A server runs each export in a memory-capped child: a query building values DuckDB's memory_limit does not
    count fails its export with query_resources, and the server goes on answering."""
    app, client, tokens = make_app(sql={"worker_memory_mb": 600}, tmp_dir=tmp_path / "tmp")
    assert app.state.runtime.exports.isolate is not None
    h = {"Authorization": f"Bearer {tokens['full']}"}
    r = client.post("/v1/exports", json={"query": query, "format": "parquet"}, headers=h)
    rec = strict_json(client.get(f"/v1/exports/{r.json()['export_id']}", headers=h).text)
    if query.endswith("ok"):
        assert rec["status"] == "succeeded" and rec["rows"] == 1
    else:
        assert rec["status"] == "failed" and rec["error"]["code"] == "query_resources", rec
        assert "600 MB in all" in rec["error"]["message"]
    assert client.get("/v1/status").status_code == 200
    assert not list((tmp_path / "tmp").glob("stratum-export*"))  # work directories removed
