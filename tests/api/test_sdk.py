"""The Python SDK (installed from its wheel) against the real app: in process (Starlette's TestClient for
``Client``, httpx's ASGI transport for ``AsyncClient``) and over real HTTP (``stratum serve``).

Every answer is compared with the raw API's JSON for the same request."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from tests.fixtures.sdk import SDK, wheel_metadata

from .conftest import FT_LOT, WS_LOT, assert_same, new_app, strict_json


@pytest.fixture(scope="module")
def sc(sdk_module):
    return sdk_module


@pytest.fixture(scope="module")
def client(seeded, sc):
    return sc.Client(api_key=seeded.tokens["full"], base_url="http://testserver", http_client=seeded.client)


def raw(seeded, path, **params):
    return seeded.json(path, params=params)


# -- the distribution ------------------------------------------------------------------------------------
def test_wheel_depends_on_httpx_and_pydantic_only(sdk_venv):
    meta = wheel_metadata(sdk_venv.wheel)
    requires = sorted(line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:"))
    plain = [r for r in requires if "extra ==" not in r]
    assert plain == ["httpx<1,>=0.27", "pydantic<3,>=2.6"]
    assert {r.split(";")[0].strip() for r in requires if "extra ==" in r} == {"pyarrow>=14", "pandas>=2"}


def test_models_match_openapi():
    """The generated models are the committed openapi.json's (regenerate: python sdk/python/generate_models.py)."""
    r = subprocess.run([sys.executable, str(SDK / "generate_models.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_models_check_detects_drift(tmp_path):
    """The drift check fails on a changed module (it compares, it does not just regenerate)."""
    target = SDK / "src" / "stratum_client" / "models.py"
    original = target.read_text()
    try:
        target.write_text(original + "\n# edited\n")
        r = subprocess.run([sys.executable, str(SDK / "generate_models.py"), "--check"], capture_output=True, text=True)
        assert r.returncode == 1 and "out of date" in r.stdout
    finally:
        target.write_text(original)


# -- reads against the seeded app ---------------------------------------------------------------------------
def test_status(client):
    s = client.status()
    assert s.status == "ok" and s.backend == "local"


def test_lots_paginate(seeded, client):
    expected = raw(seeded, "/v1/lots", limit=500)["items"]
    got = [lot.model_dump(mode="json", by_alias=True) for lot in client.lots(page_size=1)]
    assert [g["lot_id"] for g in got] == [e["lot_id"] for e in expected] and len(got) == 2
    assert got == expected


def test_jobs_paginate_and_filter(seeded, client):
    expected = raw(seeded, "/v1/jobs", limit=500)["items"]
    assert [j.job_id for j in client.jobs(page_size=2)] == [e["job_id"] for e in expected]
    assert len(expected) == len(seeded.wafer_jobs) + 1
    only_ft = list(client.jobs(lot_id=FT_LOT))
    assert [j.job_id for j in only_ft] == [seeded.ft_job.job_id]
    assert client.job(seeded.ft_job.job_id).status == "succeeded"


def test_lot_wafers_tests_capability_bins(seeded, client):
    lot = client.lot(WS_LOT)
    assert lot.model_dump(mode="json", by_alias=True, exclude_unset=True) == raw(seeded, f"/v1/lots/{WS_LOT}")
    wafers = client.wafers(WS_LOT)
    assert [w.wafer_id for w in wafers] == ["W01", "W02", "W03"]
    assert [w.yield_ for w in wafers] == [w["yield"] for w in raw(seeded, f"/v1/lots/{WS_LOT}/wafers")["items"]]
    tests = client.tests(WS_LOT, wafer_id="W02")
    assert_same(
        [t.model_dump(mode="json", exclude_unset=True) for t in tests],
        raw(seeded, f"/v1/lots/{WS_LOT}/tests", wafer_id="W02")["items"],
    )
    cap = client.capability(WS_LOT, wafer_id="W01", estimator="pooled")
    assert_same(
        cap.model_dump(mode="json", exclude_unset=True),
        raw(seeded, f"/v1/lots/{WS_LOT}/capability", wafer_id="W01", estimator="pooled"),
    )
    bins = client.bins(WS_LOT, by="site")
    assert_same(
        bins.model_dump(mode="json", by_alias=True, exclude_unset=True),
        raw(seeded, f"/v1/lots/{WS_LOT}/bins", by="site"),
    )


def test_results_paginate(seeded, client):
    expected = raw(seeded, f"/v1/lots/{WS_LOT}/tests/1000/results", limit=10000, view="all")["items"]
    got = [
        r.model_dump(mode="json", exclude_unset=True) for r in client.results(WS_LOT, 1000, page_size=37, view="all")
    ]
    assert len(got) == len(expected) > 37
    assert got == expected


def test_wafer_map(seeded, client):
    wm = client.wafer_map(WS_LOT, "W01", test_num=1000)
    expected = raw(seeded, f"/v1/lots/{WS_LOT}/wafers/W01/map", test_num=1000)
    assert wm.data.model_dump(mode="json", exclude_unset=True, by_alias=True) == expected  # counts.yield
    df = wm.to_pandas()
    assert len(df) == len(expected["dies"]["x"]) and list(df["x"]) == expected["dies"]["x"]
    assert list(df["value"]) == pytest.approx(
        [v if v is not None else float("nan") for v in expected["dies"]["value"]], nan_ok=True
    )
    png = wm.png()
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size[0] > 200
    assert png == seeded.get(f"/v1/lots/{WS_LOT}/wafers/W01/map", params={"test_num": 1000, "format": "png"}).content
    assert wm.svg().startswith(b"<svg") or b"<svg" in wm.svg()[:200]


def test_sql_pages_rows_arrow_pandas(seeded, client):
    q = "SELECT part_id, wafer_id, x, y, hard_bin FROM parts ORDER BY job_id, part_id, head_num, site_num"
    res = client.sql(q, lot_id=WS_LOT, page_size=50)
    expected = seeded.client.post(
        "/v1/sql", json={"query": q, "context": {"lot_id": WS_LOT}, "limit": 100000}, headers=seeded.headers()
    ).json()
    assert len(res.pages) == -(-len(expected["rows"]) // 50) > 1
    assert res.columns == ["part_id", "wafer_id", "x", "y", "hard_bin"]
    assert res.rows == expected["rows"]
    t = res.to_arrow()
    assert t.num_rows == len(expected["rows"]) and t.column_names == res.columns
    df = res.to_pandas()
    assert df["hard_bin"].tolist() == [r[4] for r in expected["rows"]]
    assert not res.truncated


# -- errors ------------------------------------------------------------------------------------------------
def test_not_found_is_typed_with_problem_fields_and_request_id(client, sc):
    with pytest.raises(sc.NotFoundError) as ei:
        client.lot("NO-SUCH-LOT")
    e = ei.value
    assert (e.status, e.code, e.title, e.instance) == (404, "not_found", "Not found", "/v1/lots/NO-SUCH-LOT")
    assert e.detail == "lot 'NO-SUCH-LOT' not found"
    assert e.request_id and e.request_id.startswith("sdk_") and e.headers["x-request-id"] == e.request_id
    assert isinstance(e, sc.APIError) and isinstance(e, sc.StratumError)


def test_rejected_sql_and_bad_key(seeded, sc):
    c = sc.Client(api_key=seeded.tokens["full"], base_url="http://testserver", http_client=seeded.client)
    with pytest.raises(sc.BadRequestError) as ei:
        c.sql("DROP TABLE parts")
    assert ei.value.code == "query_rejected" and "only SELECT" in ei.value.detail
    bad = sc.Client(api_key="stm_test_nope", base_url="http://testserver", http_client=seeded.client)
    with pytest.raises(sc.AuthenticationError) as ei:
        list(bad.lots())
    assert ei.value.status == 401 and ei.value.code == "unauthorized"
    reader = sc.Client(api_key=seeded.tokens["ingest"], base_url="http://testserver", http_client=seeded.client)
    with pytest.raises(sc.PermissionDeniedError):
        reader.sql("SELECT 1")


# -- retries -----------------------------------------------------------------------------------------------
class Flaky(httpx.BaseTransport):
    """The real app behind a transport that first fails: a connection error, then the given statuses."""

    def __init__(self, inner: httpx.BaseTransport, failures: list) -> None:
        self.inner, self.failures, self.seen = inner, list(failures), []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.failures:
            f = self.failures.pop(0)
            if f == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(f, headers={"Retry-After": "0"}, json={"status": f, "code": "flaky"})
        return self.inner.handle_request(request)


def test_retries_reuse_the_idempotency_key(seeded, sc):
    flaky = Flaky(seeded.client._transport, ["connect", 503, 429, 408])
    http = httpx.Client(transport=flaky, base_url="http://testserver")
    c = sc.Client(
        api_key=seeded.tokens["full"], base_url="http://testserver", http_client=http, max_retries=4, backoff=0.001
    )
    res = c.sql("SELECT 41 + 1 AS x")
    assert res.rows == [[42]]
    assert len(flaky.seen) == 5
    keys = {r.headers["idempotency-key"] for r in flaky.seen}
    assert len(keys) == 1 and len(next(iter(keys))) == 36
    # a second call is another logical request: another key
    c.sql("SELECT 1")
    assert flaky.seen[-1].headers["idempotency-key"] not in keys


def test_retries_give_up_with_the_last_error(seeded, sc):
    flaky = Flaky(seeded.client._transport, [503, 503, 503])
    http = httpx.Client(transport=flaky, base_url="http://testserver")
    c = sc.Client(
        api_key=seeded.tokens["full"], base_url="http://testserver", http_client=http, max_retries=2, backoff=0.001
    )
    with pytest.raises(sc.ServerError) as ei:
        c.status()
    assert ei.value.status == 503 and len(flaky.seen) == 3
    refused = sc.Client(base_url="http://127.0.0.1:9", max_retries=1, backoff=0.001, timeout=2)
    with pytest.raises(sc.APIConnectionError):
        refused.status()


def test_backoff_is_exponential_with_jitter_and_honours_retry_after(sc):
    from stratum_client._core import RetryPolicy

    p = RetryPolicy(max_retries=5, base_delay=0.5, max_delay=4)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        ds = [p.delay(attempt) for _ in range(200)]
        assert 0 <= min(ds) and max(ds) <= cap and max(ds) > cap / 2
    assert p.delay(0, httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert p.delay(0, httpx.Response(429, headers={"Retry-After": "120"})) == 4.0  # capped


def test_no_retry_on_a_client_error(seeded, sc):
    flaky = Flaky(seeded.client._transport, [])
    http = httpx.Client(transport=flaky, base_url="http://testserver")
    c = sc.Client(api_key=seeded.tokens["full"], base_url="http://testserver", http_client=http, backoff=0.001)
    with pytest.raises(sc.NotFoundError):
        c.job("job_nope")
    assert len(flaky.seen) == 1


# -- uploads -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fresh(tmp_path_factory, sc):
    app, tc, tokens = new_app(tmp_path_factory.mktemp("sdk-up"))
    yield app, tc, tokens
    app.state.runtime.close()


def test_upload_direct_and_presigned_wait(fresh, generated, sc):
    app, tc, tokens = fresh
    c = sc.Client(api_key=tokens["full"], base_url="http://testserver", http_client=tc)
    p0, p1 = generated.wafer_lot.paths[:2]
    job = c.upload(p0, wait=True, timeout=60)
    assert job.status == "succeeded" and job.lot_id == WS_LOT and job.source["kind"] == "upload"
    presigning = sc.Client(api_key=tokens["full"], base_url="http://testserver", http_client=tc, direct_upload_max=0)
    job2 = presigning.upload(p1, wait=True, timeout=60)
    assert job2.status == "succeeded" and job2.source["kind"] == "presign"
    assert sorted(j.job_id for j in c.jobs()) == sorted([job.job_id, job2.job_id])
    info = c.inspect(p0)
    assert info.valid and info.lot_id == WS_LOT


def test_upload_bad_file_is_unprocessable(fresh, tmp_path, sc):
    app, tc, tokens = fresh
    c = sc.Client(api_key=tokens["full"], base_url="http://testserver", http_client=tc)
    bad = tmp_path / "bad.stdf"
    bad.write_bytes(b"not an stdf file at all")
    with pytest.raises(sc.UnprocessableError) as ei:
        c.upload(bad)
    assert ei.value.status == 422 and ei.value.extra["error"]["code"]


# -- AsyncClient over the ASGI transport -------------------------------------------------------------------
def test_async_client(seeded, fresh, generated, sc):
    async def go():
        async with sc.AsyncClient(
            api_key=seeded.tokens["full"], base_url="http://asgi", transport=httpx.ASGITransport(seeded.app)
        ) as c:
            assert (await c.status()).status == "ok"
            lots = [lot.lot_id async for lot in c.lots(page_size=1)]
            assert lots == [i["lot_id"] for i in raw(seeded, "/v1/lots")["items"]]
            n = len([r async for r in c.results(WS_LOT, 1000, page_size=100)])
            assert n == len(raw(seeded, f"/v1/lots/{WS_LOT}/tests/1000/results", limit=10000)["items"])
            res = await c.sql("SELECT count(*) AS n FROM parts", lot_id=WS_LOT)
            assert res.rows == [[seeded.json("/v1/lots/" + WS_LOT)["part_count"] + _retests(seeded)]]
            wm = await c.wafer_map(WS_LOT, "W02")
            assert (await wm.png())[:8] == b"\x89PNG\r\n\x1a\n"
            with pytest.raises(sc.NotFoundError):
                await c.lot("NOPE")
        app, tc, tokens = fresh
        async with sc.AsyncClient(
            api_key=tokens["full"], base_url="http://asgi", transport=httpx.ASGITransport(app)
        ) as c:
            job = await c.upload(generated.wafer_lot.paths[2], wait=True, timeout=60)
            assert job.status == "succeeded"

    asyncio.run(go())


def _retests(seeded) -> int:
    q = {"query": "SELECT count(*) FILTER (WHERE NOT is_final) FROM parts", "context": {"lot_id": WS_LOT}}
    return seeded.client.post("/v1/sql", json=q, headers=seeded.headers()).json()["rows"][0][0]


# -- over real HTTP ------------------------------------------------------------------------------------------
def test_live_server_upload_wait_and_sql(live_server, generated, sc):
    with sc.Client(api_key=live_server.token, base_url=live_server.url) as c:
        job = c.upload(generated.ft_lot.paths[0], wait=True, timeout=60)
        assert job.status == "succeeded" and job.lot_id == FT_LOT
        res = c.sql("SELECT count(*) FROM parts WHERE lot_id = 'FT-LOT'")
        assert res.rows == [[job.parts]]
        with pytest.raises(sc.NotFoundError) as ei:
            c.lot("NOPE")
        assert ei.value.request_id.startswith("sdk_")


def test_request_id_is_made_by_the_server_when_absent(seeded):
    r = seeded.get("/v1/lots/NOPE")
    rid = r.headers["x-request-id"]
    assert rid.startswith("req_") and strict_json(r.text)["request_id"] == rid
    r = seeded.client.get("/v1/lots/NOPE", headers={**seeded.headers(), "X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")
    r = seeded.client.get("/v1/lots/NOPE", headers={**seeded.headers(), "X-Request-Id": "trace-0123456789"})
    assert r.headers["x-request-id"] == "trace-0123456789" == strict_json(r.text)["request_id"]


# -- exports and Arrow ---------------------------------------------------------------------------------------
def test_export_download_and_arrow_sql(seeded, client, tmp_path, sc):
    import pyarrow.parquet as pq

    (n,) = client.sql("SELECT count(*) FROM results", lot_id=WS_LOT).rows[0]
    e = client.export("SELECT * FROM results", lot_id=WS_LOT, format="parquet")
    assert e.status == "queued" and e.export_id.startswith("exp_")
    saved = e.download(tmp_path / "r.parquet")
    assert saved == str(tmp_path / "r.parquet") and pq.read_metadata(saved).num_rows == n
    done = client.get_export(e.export_id)
    assert done.status == "succeeded" and done.rows == n
    t = client.export(table="parts", lot_id=WS_LOT, filters={"wafer_id": "W02"}, format="csv")
    csv_text = open(t.download(tmp_path / "p.csv")).read()
    (w02,) = client.sql("SELECT count(*) FROM parts WHERE wafer_id = 'W02'", lot_id=WS_LOT).rows[0]
    assert csv_text.count("\n") == w02 + 1
    q = "SELECT part_id, wafer_id, x, y, hard_bin FROM parts ORDER BY job_id, part_seq"
    a = client.sql(q, lot_id=WS_LOT, page_size=100, arrow=True)
    j = client.sql(q, lot_id=WS_LOT, page_size=100)
    assert len(a.pages) == len(j.pages) > 1 and a.rows == j.rows
    assert a.to_arrow().to_pylist() == j.to_arrow().to_pylist()
    with pytest.raises(sc.BadRequestError):
        client.export("DROP TABLE parts")


def test_example_script_runs_verbatim(live_server, sdk_venv, generated, tmp_path, sc):
    """sdk/python/examples/quickstart.py, as shipped, run by the venv the wheel was installed into."""
    env = {
        "PATH": "/usr/bin:/bin",
        "STRATUM_API_KEY": live_server.token,
        "STRATUM_BASE_URL": live_server.url,
    }
    path = generated.wafer_lot.paths[0]
    r = subprocess.run(
        [str(sdk_venv.python), str(SDK / "examples" / "quickstart.py"), str(path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("job job_") and ": succeeded, lot API-LOT," in lines[0]
    assert Image.open(tmp_path / "out" / "map.png").format == "PNG"
    with sc.Client(api_key=live_server.token, base_url=live_server.url) as c:
        (n,) = c.sql("SELECT count(*) FROM results", lot_id=WS_LOT).rows[0]
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "out" / "results.parquet").num_rows == n
    assert f": {n} rows in " in lines[-1]


def test_readme_quickstart_runs(live_server, sdk_venv, generated, tmp_path):
    """The Python block of sdk/python/README.md with only the key, URL and file filled in."""
    import re

    text = (SDK / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    code = code.replace('"stm_test_..."', repr(live_server.token)).replace(
        '"http://127.0.0.1:8000"', repr(live_server.url)
    )
    (tmp_path / "lot.stdf").write_bytes(generated.wafer_lot.paths[1].read_bytes())
    (tmp_path / "quick.py").write_text(code + "\nprint(len(png), len(df))\n")
    r = subprocess.run(
        [str(sdk_venv.python), "quick.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "results.parquet").stat().st_size > 0


def test_charts(seeded, client, sc):
    assert client.pareto(WS_LOT) == raw(seeded, f"/v1/lots/{WS_LOT}/bins/pareto")
    hist = client.histogram(WS_LOT, 1000, by="site")
    want = raw(seeded, f"/v1/lots/{WS_LOT}/tests/1000/histogram", by="site")
    # Cpk comes from DuckDB's parallel aggregates: equal to the last few bits only
    assert hist.pop("cpk") == pytest.approx(want.pop("cpk"), rel=1e-12)
    assert hist == want
    assert client.stacked_map(WS_LOT, wafer_ids=["W01", "W02"]) == raw(
        seeded, f"/v1/lots/{WS_LOT}/stacked-map", wafer_ids=["W01", "W02"]
    )
    assert client.trend(1000, part_type="FT-DEV")["points"][0]["lot_id"] == FT_LOT
    assert client.boxplot(WS_LOT, 1000, format="svg").startswith(b"<?xml")
    assert client.gallery(WS_LOT, format="png")[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(sc.BadRequestError):
        client.stacked_map(WS_LOT, metric="bin")

    async def go():
        async with sc.AsyncClient(
            api_key=seeded.tokens["full"], base_url="http://asgi", transport=httpx.ASGITransport(seeded.app)
        ) as c:
            return await c.pareto(WS_LOT, bin_type="S")

    assert asyncio.run(go()) == raw(seeded, f"/v1/lots/{WS_LOT}/bins/pareto", bin_type="S")


def test_arrow_pages_give_the_json_rows_and_types(seeded, client):
    """``sql()`` moves Arrow pages when pyarrow is installed; ``rows`` made from them equal the JSON
    answer's value for value (float32 shortest form, non-finite as None, dates as ISO text, HUGEINT sums as
    integers, decimals as floats, intervals as seconds, blobs as hex), and the column types are the same."""
    q = (
        "SELECT x::INTEGER AS i, sum(x) OVER () AS s, x / 3 AS d, (x / 10)::FLOAT AS f, 'v' || x AS v, x > 1 AS b, "
        "DATE '2026-01-02' + x::INTEGER AS day, TIMESTAMP '2026-01-02 03:04:05.123' AS ts, "
        "INTERVAL 5 SECOND * x AS iv, (x * 1.25)::DECIMAL(10, 2) AS dec, [0.1::FLOAT, x] AS lf, {'k': x} AS st, "
        "CASE WHEN x = 2 THEN 'nan'::DOUBLE END AS n, '\\xAA'::BLOB AS bl, NULL::VARCHAR AS nul, "
        "12::UTINYINT AS ut, TIME '01:02:03' AS t, 3::BIGINT AS bi "
        "FROM range(5) r(x) ORDER BY x"
    )
    a = client.sql(q, page_size=2)
    j = client.sql(q, page_size=2, arrow=False)
    assert a.arrow and not j.arrow and len(a.pages) == len(j.pages) == 3
    assert a.columns == j.columns and a.types == j.types
    assert a.rows == j.rows
    assert a.rows[1][3] == 0.1 and a.rows[2][12] is None and isinstance(a.rows[4][1], int)
    assert len(a) == 5 and a.to_arrow().num_rows == 5 and a.to_arrow().column_names == a.columns


def test_sql_without_pyarrow_uses_json_pages(live_server, sdk_venv):
    """In a process where pyarrow cannot be imported, ``sql()`` asks for JSON pages and ``to_arrow()`` says
    which extra to install."""
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from stratum_client import Client\n"
        f"c = Client(api_key={live_server.token!r}, base_url={live_server.url!r})\n"
        "r = c.sql('SELECT x, x * 0.5 AS h FROM range(3) t(x) ORDER BY x', page_size=2)\n"
        "print(r.arrow, len(r.pages), r.rows, r.types)\n"
        "try:\n"
        "    r.to_arrow()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [str(sdk_venv.python), "-c", code], capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "False 2 [[0, 0.0], [1, 0.5], [2, 1.0]] ['BIGINT', 'DECIMAL(21,1)']",
        "pyarrow is needed for this: pip install 'stratum-client[arrow]'",
    ]
