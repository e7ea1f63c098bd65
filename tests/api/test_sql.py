"""SQL over the public views: schema, context scoping, paging, the 100,000-row cap, the time limit, and
the guardrails (every rejected statement is a 400 problem+json and never reaches DuckDB)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.query.public_schema import PUBLIC

from .conftest import FT_LOT, WS_LOT, final_mask, strict_json


@pytest.fixture
def sessions(seeded, monkeypatch):
    """Counts the DuckDB sessions opened (every executed query opens one) and the queries handed to a SQL
    worker process (where the sessions of a server's queries open)."""
    rt = seeded.app.state.runtime
    opened: list = []
    for obj, name in ((rt.engine, "session"), (rt.sql_runner, "_take")):
        real = getattr(obj, name, None)
        if real is None:
            continue

        def spy(*a, _real=real, **kw):
            opened.append(a)
            return _real(*a, **kw)

        monkeypatch.setattr(obj, name, spy)
    return opened


def sql(seeded, query: str, scope: str = "full", **body):
    return seeded.client.post("/v1/sql", json={"query": query, **body}, headers=seeded.headers(scope))


def ok(seeded, query: str, **body) -> dict:
    r = sql(seeded, query, **body)
    assert r.status_code == 200, r.text
    return strict_json(r.text)


# -- schema -----------------------------------------------------------------------------------------


def test_schema_lists_every_public_table(seeded):
    body = seeded.json("/v1/sql/schema", "read")
    tables = {t["name"]: t for t in body["tables"]}
    assert list(tables) == list(PUBLIC)
    for name, view in PUBLIC.items():
        t = tables[name]
        assert t["description"] == view.doc and t["description"]
        assert [c["name"] for c in t["columns"]] == [c for c, _ in view.cols]
        assert [c["description"] for c in t["columns"]] == [d for _, d in view.cols]
        assert all(c["description"] for c in t["columns"]), name
        assert all(c["type"] and c["type"] != "UNKNOWN" for c in t["columns"]), name


@pytest.mark.parametrize("table", list(PUBLIC))
def test_schema_types_are_the_types_queries_return(seeded, table):
    (t,) = [t for t in seeded.app.state.schema_cache() if t["name"] == table]
    body = ok(seeded, f"SELECT * FROM {table} LIMIT 0")
    assert body["columns"] == [{"name": c["name"], "type": c["type"]} for c in t["columns"]]
    assert body["rows"] == []


# -- context ----------------------------------------------------------------------------------------


def _col(body) -> list:
    return [r[0] for r in body["rows"]]


def test_no_context_sees_every_lot(seeded):
    assert _col(ok(seeded, "SELECT lot_id FROM lots ORDER BY 1")) == [WS_LOT, FT_LOT]


def test_context_lot(seeded):
    body = ok(seeded, "SELECT DISTINCT lot_id FROM parts", context={"lot_id": FT_LOT})
    assert _col(body) == [FT_LOT]
    n = ok(seeded, "SELECT count(*) FROM parts WHERE is_final", context={"lot_id": WS_LOT})["rows"][0][0]
    assert n == int(seeded.wafer_lot.final().sum())


def test_context_snapshot(seeded):
    truth = seeded.wafer_lot
    first = seeded.wafer_jobs[0].job_id
    body = ok(
        seeded,
        "SELECT lot_id, job_id, file_count, part_count FROM lots",
        context={"lot_id": WS_LOT, "snapshot_job_id": first},
    )
    assert body["rows"] == [[WS_LOT, first, 1, int(final_mask(truth, truth.parts.file == 0).sum())]]
    # without lot_id: the snapshot names its lot
    body = ok(seeded, "SELECT lot_id, job_id FROM lots", context={"snapshot_job_id": first})
    assert body["rows"] == [[WS_LOT, first]]


def test_context_wafers(seeded):
    truth = seeded.wafer_lot
    body = ok(
        seeded,
        "SELECT wafer_id, count(*) FILTER (WHERE is_final) FROM parts GROUP BY 1 ORDER BY 1",
        context={"lot_id": WS_LOT, "wafer_ids": ["W03", "W01"]},
    )
    final = truth.final()
    assert body["rows"] == [[w, int((final & (truth.parts.wafer_id == w)).sum())] for w in ("W01", "W03")]
    assert ok(seeded, "SELECT count(*) FROM results", context={"lot_id": WS_LOT, "wafer_ids": []})["rows"] == [[0]]


@pytest.mark.parametrize(
    ("context", "status"),
    [
        ({"lot_id": "NO-SUCH-LOT"}, 404),
        ({"snapshot_job_id": "job_01ZZZZZZZZZZZZZZZZZZZZZZZZ"}, 404),
        ({"lot_id": WS_LOT, "snapshot_job_id": "FT"}, 404),
        ({"lot": WS_LOT}, 400),
        ({"wafer_ids": "W01"}, 400),
        ({"lot_id": WS_LOT, "wafer_ids": ["W01", "W\x00"]}, 400),  # would end the SQL literal of the wafer filter
    ],
)
def test_bad_context(seeded, context, status):
    if context.get("snapshot_job_id") == "FT":
        context = {**context, "snapshot_job_id": seeded.ft_job.job_id}
    r = sql(seeded, "SELECT 1", context=context)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_lot_id_with_nul_does_not_break_the_workspace(make_app, tmp_path):
    app, client, tokens = make_app()
    truth = write_lot(
        LotSpec(
            lot_id="BAD\x00LOT", wafers=("W1",), die_diameter=4, seed=1, tests=tuple(default_tests(1, n_mpr=0, n_ftr=0))
        ),
        tmp_path / "nul",
    )
    app.state.runtime.ingest.ingest_path("default", truth.paths[0])
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post(
        "/v1/sql", json={"query": "SELECT count(*) FROM lots"}, headers={"Authorization": f"Bearer {tokens['full']}"}
    )
    assert r.status_code == 200, r.text


# -- paging -----------------------------------------------------------------------------------------


def test_default_page_is_1000_rows(seeded):
    body = ok(seeded, "SELECT * FROM range(2500)")
    assert body["columns"] == [{"name": "range", "type": "BIGINT"}]
    assert body["row_count"] == len(body["rows"]) == 1000
    assert _col(body) == list(range(1000))
    assert body["next_cursor"] is not None
    assert body["truncated"] is False
    assert body["elapsed_ms"] >= 0


def test_explicit_limit(seeded):
    body = ok(seeded, "SELECT * FROM range(10)", limit=7)
    assert _col(body) == list(range(7))
    rest = ok(seeded, "SELECT * FROM range(10)", limit=7, cursor=body["next_cursor"])
    assert _col(rest) == [7, 8, 9]
    assert rest["next_cursor"] is None
    exact = ok(seeded, "SELECT * FROM range(7)", limit=7)
    assert exact["next_cursor"] is None and exact["row_count"] == 7


def test_paging_to_the_end(seeded):
    q = "SELECT x, x * 2 AS y FROM range(2500) t(x) ORDER BY x"
    rows, cursor, sizes = [], None, []
    while True:
        body = ok(seeded, q, **({"cursor": cursor} if cursor else {}))
        rows += body["rows"]
        sizes.append(body["row_count"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [1000, 1000, 500]
    assert rows == [[x, 2 * x] for x in range(2500)]
    assert body["truncated"] is False


def test_cursor_is_bound_to_its_query_and_context(seeded):
    cursor = ok(seeded, "SELECT * FROM range(2000)")["next_cursor"]
    for other in (
        {"query": "SELECT * FROM range(3000)"},
        {"query": "SELECT * FROM range(2000)", "context": {"lot_id": WS_LOT}},
    ):
        r = seeded.client.post("/v1/sql", json={**other, "cursor": cursor}, headers=seeded.headers())
        assert r.status_code == 400
        assert "another query" in strict_json(r.text)["detail"]
    for bad in ("zzz", "e30", "eyJvIjogLTF9"):
        r = sql(seeded, "SELECT * FROM range(2000)", cursor=bad)
        assert r.status_code == 400
        assert strict_json(r.text)["code"] == "bad_request"


def test_row_cap_of_100000(seeded):
    q = "SELECT * FROM range(150000)"
    a = ok(seeded, q, limit=60000)
    assert (a["row_count"], a["truncated"]) == (60000, False)
    b = ok(seeded, q, limit=60000, cursor=a["next_cursor"])
    assert (b["row_count"], b["truncated"], b["next_cursor"]) == (40000, True, None)
    assert _col(a) + _col(b) == list(range(100000))
    exactly = ok(seeded, "SELECT * FROM range(100000)", limit=100000)
    assert (exactly["row_count"], exactly["truncated"], exactly["next_cursor"]) == (100000, False, None)


@pytest.mark.parametrize("limit", [0, 100001, -5])
def test_limit_out_of_range_is_400(seeded, limit):
    r = sql(seeded, "SELECT 1", limit=limit)
    assert r.status_code == 400
    assert "limit" in strict_json(r.text)["detail"]


def test_values_are_json(seeded):
    body = ok(
        seeded,
        "SELECT TIMESTAMP '2024-01-02 03:04:05' AS ts, DATE '2024-01-02' AS d, "
        "1.25::DECIMAL(5,2) AS dec, "
        "'\\x01\\xff'::BLOB AS b, [1, 2] AS l, {'a': 1} AS s, 'nan'::DOUBLE AS nan, "
        "'inf'::DOUBLE AS inf, -0.5::FLOAT AS f, NULL AS n, true AS t, 12345678901234::HUGEINT AS h",
    )
    assert body["rows"] == [
        [
            "2024-01-02T03:04:05",
            "2024-01-02",
            1.25,
            body["rows"][0][3],
            [1, 2],
            {"a": 1},
            None,
            None,
            -0.5,
            None,
            True,
            12345678901234,
        ]
    ]
    assert [c["name"] for c in body["columns"]] == ["ts", "d", "dec", "b", "l", "s", "nan", "inf", "f", "n", "t", "h"]


def test_results_match_the_truth(seeded):
    truth = seeded.wafer_lot
    t = truth.test_index(1000)
    body = ok(
        seeded,
        "SELECT result FROM results WHERE test_num = 1000 AND is_final AND valid ORDER BY result",
        context={"lot_id": WS_LOT},
        limit=100000,
    )
    final = truth.final()
    valid = truth.executed[:, t] & ((truth.test_flg[:, t] & 0x3F) == 0) & ((truth.parm_flg[:, t] & 0x07) == 0)
    exp = np.sort(truth.results[final & valid, t])
    assert np.array_equal(np.array(_col(body), dtype=np.float32), exp)


# -- the time limit ---------------------------------------------------------------------------------


def test_timeout_interrupts_the_query(make_app, generated):
    app, client, tokens = make_app(sql={"timeout_seconds": 1})
    app.state.runtime.ingest.ingest_path("default", generated.ft_lot.paths[0])
    h = {"Authorization": f"Bearer {tokens['full']}"}
    assert client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h).status_code == 200  # a worker is up
    for q in ("SELECT count(*) FROM range(100000000000) a", "SELECT count(*) FROM parts a, range(1000000000) b"):
        t0 = time.monotonic()
        r = client.post("/v1/sql", json={"query": q}, headers=h)
        elapsed = time.monotonic() - t0
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        body = strict_json(r.text)
        assert (body["code"], body["title"]) == ("query_timeout", "Query timed out")
        assert "1 s time limit" in body["detail"]
        assert 0.9 <= elapsed < 5, elapsed
    # the workspace's database is still usable after an interrupt
    r = client.post("/v1/sql", json={"query": "SELECT count(*) FROM parts"}, headers=h)
    assert r.status_code == 200
    assert r.json()["rows"] == [[len(generated.ft_lot.parts)]]


# -- guardrails -------------------------------------------------------------------------------------

NOT_SELECT = "only SELECT (including WITH ... SELECT) and EXPLAIN statements are allowed"
TABLE_FN = "table function {}() is not allowed"
UNKNOWN_TABLE = "unknown table"

REJECTED = {
    "create-table": ("CREATE TABLE x AS SELECT 1", NOT_SELECT + ", not CREATE"),
    "create-view": ("CREATE VIEW lots2 AS SELECT * FROM lots", NOT_SELECT),
    "create-secret": ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", NOT_SELECT),
    "drop": ("DROP VIEW lots", NOT_SELECT + ", not DROP"),
    "alter": ("ALTER VIEW lots RENAME TO x", NOT_SELECT + ", not ALTER"),
    "insert": ("INSERT INTO lots VALUES ('x')", NOT_SELECT + ", not INSERT"),
    "update": ("UPDATE lots SET lot_id = 'x'", NOT_SELECT + ", not UPDATE"),
    "delete": ("DELETE FROM lots", NOT_SELECT + ", not DELETE"),
    "copy-to": ("COPY (SELECT * FROM lots) TO '{tmp}/out.csv'", NOT_SELECT + ", not COPY"),
    "copy-table-to": ("COPY lots TO '{tmp}/out2.parquet' (FORMAT parquet)", NOT_SELECT + ", not COPY"),
    "copy-from": ("COPY lots FROM '/etc/passwd'", NOT_SELECT + ", not COPY"),
    "attach": ("ATTACH '{tmp}/x.duckdb' AS x", NOT_SELECT + ", not ATTACH"),
    "detach": ("DETACH memory", NOT_SELECT),
    "install": ("INSTALL httpfs", NOT_SELECT),
    "load": ("LOAD httpfs", NOT_SELECT),
    "pragma": ("PRAGMA database_list", "PRAGMA and other statements that DuckDB rewrites are not"),
    "pragma-assign": ("PRAGMA threads = 1", NOT_SELECT),
    "set": ("SET enable_external_access = true", NOT_SELECT + ", not SET"),
    "set-lock": ("SET lock_configuration = false", NOT_SELECT + ", not SET"),
    "reset": ("RESET allowed_directories", NOT_SELECT),
    "call": ("CALL pragma_version()", NOT_SELECT + ", not CALL"),
    "export": ("EXPORT DATABASE '{tmp}/export'", NOT_SELECT + ", not EXPORT"),
    "import": ("IMPORT DATABASE '{tmp}/export'", None),  # see test_import_database_reads_no_file
    "checkpoint": ("CHECKPOINT", NOT_SELECT),
    "vacuum": ("VACUUM", NOT_SELECT),
    "transaction": ("BEGIN TRANSACTION", NOT_SELECT),
    "use": ("USE memory", NOT_SELECT),
    "prepare": ("PREPARE p AS SELECT 1", NOT_SELECT),
    "two-statements": ("SELECT 1; SELECT 2", "exactly one statement is allowed per request, found 2"),
    "select-then-drop": ("SELECT 1; DROP VIEW lots", "exactly one statement is allowed per request, found 2"),
    "line-comment-hides-nothing": ("SELECT 1 --\n; DROP VIEW lots", "exactly one statement is allowed per request"),
    "block-comment-then-statement": ("SELECT 1 /* x */; DROP VIEW lots", "exactly one statement is allowed"),
    "read_csv": ("SELECT * FROM read_csv('/etc/passwd')", TABLE_FN.format("read_csv")),
    "read_csv_auto": ("SELECT * FROM read_csv_auto('/etc/passwd')", TABLE_FN.format("read_csv_auto")),
    "read_parquet-outside": ("SELECT * FROM read_parquet('/tmp/x.parquet')", TABLE_FN.format("read_parquet")),
    "read_parquet-dotdot": ("SELECT * FROM read_parquet('{lake}/../../../x.parquet')", TABLE_FN.format("read_parquet")),
    "read_parquet-inside-lake": ("SELECT * FROM read_parquet('{lake}/**/*.parquet')", TABLE_FN.format("read_parquet")),
    "replacement-scan-passwd": ("SELECT * FROM '/etc/passwd'", UNKNOWN_TABLE + " '/etc/passwd'"),
    "replacement-scan-parquet": ("SELECT * FROM 'x.parquet'", UNKNOWN_TABLE + " 'x.parquet'"),
    "replacement-scan-from-first": ("FROM '/etc/passwd'", UNKNOWN_TABLE),
    "replacement-scan-subquery": ("SELECT * FROM lots WHERE lot_id IN (SELECT * FROM '/etc/hosts')", UNKNOWN_TABLE),
    "glob": ("SELECT * FROM glob('*')", TABLE_FN.format("glob")),
    "read_text": ("SELECT * FROM read_text('/etc/passwd')", TABLE_FN.format("read_text")),
    "read_blob": ("SELECT * FROM read_blob('/etc/passwd')", TABLE_FN.format("read_blob")),
    "read_json": ("SELECT * FROM read_json('/etc/x.json')", TABLE_FN.format("read_json")),
    "query": ("SELECT * FROM query('SELECT 1')", TABLE_FN.format("query")),
    "query_table": ("SELECT * FROM query_table('lots')", TABLE_FN.format("query_table")),
    "duckdb_settings": ("SELECT * FROM duckdb_settings()", TABLE_FN.format("duckdb_settings")),
    "duckdb_secrets": ("SELECT * FROM duckdb_secrets()", TABLE_FN.format("duckdb_secrets")),
    "duckdb_extensions": ("SELECT * FROM duckdb_extensions()", TABLE_FN.format("duckdb_extensions")),
    "pragma_fn": ("SELECT * FROM pragma_database_list()", TABLE_FN.format("pragma_database_list")),
    "http-url": ("SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')", TABLE_FN.format("read_parquet")),
    "http-replacement": ("SELECT * FROM 'https://example.com/x.csv'", UNKNOWN_TABLE),
    "s3-url": ("SELECT * FROM 's3://bucket/lake/x.parquet'", UNKNOWN_TABLE),
    "s3-read_parquet": ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", TABLE_FN.format("read_parquet")),
    "qualified-table": ("SELECT * FROM main.lots", UNKNOWN_TABLE + " 'main.lots'"),
    "system-catalog": ("SELECT * FROM information_schema.tables", UNKNOWN_TABLE),
    "internal-view": ("SELECT * FROM _members", UNKNOWN_TABLE + " '_members'"),
    "cte-wrapping-a-file": (
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
        TABLE_FN.format("read_csv"),
    ),
    "lateral-file": (
        "SELECT * FROM lots, LATERAL (SELECT * FROM read_text('/etc/passwd'))",
        TABLE_FN.format("read_text"),
    ),
    "union-file": (
        "SELECT lot_id FROM lots UNION ALL SELECT * FROM read_csv('/etc/passwd')",
        TABLE_FN.format("read_csv"),
    ),
    "summarize-file": ("SUMMARIZE SELECT * FROM read_csv('/etc/passwd')", TABLE_FN.format("read_csv")),
    "describe-file": ("DESCRIBE SELECT * FROM read_text('/etc/passwd')", TABLE_FN.format("read_text")),
    "explain-delete": ("EXPLAIN DELETE FROM lots", "EXPLAIN is allowed only for a SELECT statement"),
    "explain-copy": ("EXPLAIN COPY lots TO '{tmp}/e.csv'", "EXPLAIN is allowed only for a SELECT statement"),
    "explain-analyze-create": ("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", "EXPLAIN is allowed only for a SELECT"),
    "explain-file": ("EXPLAIN SELECT * FROM read_csv('/etc/passwd')", TABLE_FN.format("read_csv")),
    "explain-analyze-file": ("EXPLAIN ANALYZE SELECT * FROM glob('/*')", TABLE_FN.format("glob")),
    "empty": ("   ", None),
    "comment-only": ("-- nothing", None),
    "garbage": ("SELEKT 1", "the query does not parse"),
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_rejected_without_running(seeded, sessions, tmp_path, name):
    query, detail = REJECTED[name]
    lake = str(seeded.data_dir / "lake")
    query = query.format(tmp=tmp_path, lake=lake)
    r = sql(seeded, query)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert body["code"] in ("query_rejected", "bad_request")
    if detail:
        assert detail in body["detail"], body["detail"]
    assert sessions == [], "a rejected query must never reach DuckDB"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_import_database_reads_no_file(seeded, sessions, tmp_path):
    (tmp_path / "schema.sql").write_text("canary7f3a9c is not sql\n")
    (tmp_path / "load.sql").write_text("canary7f3a9c\n")
    r = sql(seeded, f"IMPORT DATABASE '{tmp_path}'")
    assert r.status_code == 400
    assert sessions == []
    assert "canary7f3a9c" not in r.text
    assert NOT_SELECT in r.json()["detail"]


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("SELECT 1 /* ; DROP VIEW lots */", [[1]]),
        ("SELECT 1 -- ; DROP VIEW lots", [[1]]),
        ("SELECT 1 -- ; DROP VIEW lots\n", [[1]]),
        ("SELECT ';DROP TABLE lots'", [[";DROP TABLE lots"]]),
        (
            "SELECT '; DROP VIEW lots; --' AS s, \"lot_id\" FROM lots WHERE lot_id = 'FT-LOT'",
            [["; DROP VIEW lots; --", FT_LOT]],
        ),
        ("SELECT $$;DROP TABLE lots$$", [[";DROP TABLE lots"]]),
        ("SELECT 'read_csv(''/etc/passwd'')'", [["read_csv('/etc/passwd')"]]),
        ("WITH t AS (SELECT lot_id FROM lots) SELECT count(*) FROM t", [[2]]),
        ("FROM lots SELECT count(*)", [[2]]),
        ("SELECT count(*) FROM generate_series(1, 5)", [[5]]),
        ("SELECT 1;;", [[1]]),  # empty statements are no statements
        ("SELECT unnest([1, 2])", [[1], [2]]),
        ("SELECT current_setting('threads') > 0", [[True]]),
    ],
)
def test_allowed(seeded, query, rows):
    assert ok(seeded, query)["rows"] == rows


def test_views_are_intact_after_the_attempts(seeded):
    body = ok(seeded, "SELECT lot_id, file_count FROM lots ORDER BY 1")
    assert body["rows"] == [[WS_LOT, 3], [FT_LOT, 1]]


@pytest.mark.parametrize(
    "query",
    [
        "EXPLAIN SELECT * FROM lots",
        "EXPLAIN ANALYZE SELECT count(*) FROM parts",
        "explain analyze with t as (select 1) select * from t",
    ],
)
def test_explain_of_a_select_is_allowed(seeded, query):
    body = ok(seeded, query)
    assert body["rows"] and isinstance(body["rows"][0][-1], str)
    assert body["rows"][0][0] in ("physical_plan", "analyzed_plan")


def test_scalar_functions_cannot_reach_files_or_secrets(seeded, sessions, monkeypatch):
    monkeypatch.setenv("STRATUM_CANARY_SECRET", "canary-7f3a9c")
    r = sql(seeded, "SELECT getenv('STRATUM_CANARY_SECRET')")
    assert r.status_code == 400  # no such function in this DuckDB build (or refused): never the value
    assert "canary-7f3a9c" not in r.text
    r = sql(seeded, "SELECT current_setting('allowed_directories')")  # server paths stay private
    assert r.status_code == 400
    assert str(seeded.data_dir) not in r.text
    dirs = (
        seeded.app.state.runtime.engine.database("default")
        .execute("SELECT current_setting('allowed_directories')")
        .fetchone()[0]
    )
    lake_root = str(seeded.data_dir / "lake")
    assert any(d.startswith(lake_root) for d in dirs)
    assert not any(d in ("/", "/etc", "/etc/") for d in dirs)
    assert ok(seeded, "SELECT current_setting('enable_external_access')")["rows"] == [[False]]
    assert ok(seeded, "SELECT current_setting('lock_configuration')")["rows"] == [[True]]
    sessions.clear()
    r = sql(seeded, "SELECT * FROM duckdb_secrets()")
    assert r.status_code == 400 and sessions == []
    for q in (
        "SELECT read_blob('/etc/passwd')",
        "SELECT file_exists('/etc/passwd')",
        "SELECT current_setting('s3_secret_access_key')",
    ):
        r = sql(seeded, q)
        assert r.status_code == 400, (q, r.text)
        assert "root:" not in r.text


def test_sql_needs_the_full_scope(seeded):
    for scope in ("read", "ingest", "classify", "admin"):
        r = sql(seeded, "SELECT 1", scope)
        assert r.status_code == 403, scope
    assert seeded.get("/v1/sql/schema", "read").status_code == 200


@pytest.mark.parametrize(
    "body", [{}, {"query": ""}, {"query": "SELECT 1", "extra": 1}, {"query": 1}, {"query": "x" * 100_001}]
)
def test_bad_body_is_400(seeded, body):
    r = seeded.client.post("/v1/sql", json=body, headers=seeded.headers())
    assert r.status_code == 400
    assert strict_json(r.text)["code"] == "bad_request"
