"""Workspaces never see each other: not their lots, jobs, snapshots, files or even their existence.

Two workspaces hold different data under the SAME lot id plus one lot each. A key of one workspace gets,
for anything of the other, exactly what it gets for something that does not exist: 404 (not 403), an
empty result, or a rejected query.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from stratum.api.app import create_app
from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.query.engine import Scope
from stratum.settings import settings_for

SHARED = "SHARED-LOT"
LIMITS = {"analytics_per_window": 10**6, "sql_per_window": 10**6, "uploads_per_window": 10**6}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    d = tmp_path_factory.mktemp("ws")
    app = create_app(settings=settings_for(d / "data", backend="local", rate_limits=LIMITS))
    rt = app.state.runtime
    jobs = {}
    for ws, own, seed in (("alpha", "ALPHA-ONLY", 1), ("beta", "BETA-ONLY", 2)):
        for lot in (SHARED, own):
            truth = write_lot(
                LotSpec(
                    lot_id=lot,
                    wafers=("W1", "W2") if ws == "alpha" else ("W7",),
                    die_diameter=8,
                    seed=seed,
                    tests=tuple(default_tests(4, n_mpr=1, n_ftr=1)),
                ),
                d / ws / lot,
            )
            for p in truth.paths:
                job = rt.ingest.ingest_path(ws, p)
                assert job.status == "succeeded"
                jobs[(ws, lot)] = job
    keys = {ws: app.state.keys.create(ws, ["full"], f"{ws}-key")[0] for ws in ("alpha", "beta")}
    client = TestClient(app)
    yield app, client, keys, jobs
    client.close()
    rt.close()


def h(keys, ws):
    return {"Authorization": f"Bearer {keys[ws]}"}


def test_listings_show_only_the_own_workspace(two):
    _, c, keys, jobs = two
    lots = {x["lot_id"] for x in c.get("/v1/lots", headers=h(keys, "alpha")).json()["items"]}
    assert lots == {SHARED, "ALPHA-ONLY"}
    listed = {j["job_id"] for j in c.get("/v1/jobs?limit=500", headers=h(keys, "alpha")).json()["items"]}
    assert listed == {jobs[("alpha", SHARED)].job_id, jobs[("alpha", "ALPHA-ONLY")].job_id}
    assert c.get("/v1/lots?q=BETA", headers=h(keys, "alpha")).json()["items"] == []


def test_the_same_lot_id_shows_each_workspace_its_own_data(two):
    _, c, keys, jobs = two
    a = c.get(f"/v1/lots/{SHARED}", headers=h(keys, "alpha")).json()
    b = c.get(f"/v1/lots/{SHARED}", headers=h(keys, "beta")).json()
    assert a["active_job_id"] == jobs[("alpha", SHARED)].job_id
    assert b["active_job_id"] == jobs[("beta", SHARED)].job_id
    assert {w["wafer_id"] for w in a["wafers"]} == {"W1", "W2"}
    assert {w["wafer_id"] for w in b["wafers"]} == {"W7"}


def _routes(lot: str, job: str):
    return [
        f"/v1/lots/{lot}",
        f"/v1/lots/{lot}/wafers",
        f"/v1/lots/{lot}/wafers/W7/map",
        f"/v1/lots/{lot}/wafers/W7/map?format=png",
        f"/v1/lots/{lot}/tests",
        f"/v1/lots/{lot}/tests/1000/results",
        f"/v1/lots/{lot}/capability",
        f"/v1/lots/{lot}/bins",
        f"/v1/jobs/{job}",
    ]


def no_rid(text: str) -> str:
    """A problem body without its request id (which differs on every request)."""
    return re.sub(r',"request_id":"[^"]*"', "", text)


def test_other_workspace_things_are_404_exactly_like_missing_ones(two):
    _, c, keys, jobs = two
    beta_job = jobs[("beta", "BETA-ONLY")].job_id
    fake_job = "job_00000000000000000000000000"
    for other, missing in zip(_routes("BETA-ONLY", beta_job), _routes("NO-SUCH-LOT", fake_job), strict=False):
        r = c.get(other, headers=h(keys, "alpha"))
        m = c.get(missing, headers=h(keys, "alpha"))
        assert r.status_code == m.status_code == 404, other
        # the very same answer as for something that does not exist (no existence oracle); only the
        # request ids differ
        same = re.sub(
            r'"request_id":"[^"]*"', "", r.text.replace("BETA-ONLY", "NO-SUCH-LOT").replace(beta_job, fake_job)
        )
        assert same == re.sub(r'"request_id":"[^"]*"', "", m.text), other


def test_snapshot_of_another_workspace_is_404(two):
    _, c, keys, jobs = two
    beta_shared = jobs[("beta", SHARED)].job_id
    for path in (
        f"/v1/lots/{SHARED}?snapshot_job_id={beta_shared}",
        f"/v1/lots/{SHARED}/bins?snapshot_job_id={beta_shared}",
        f"/v1/lots/{SHARED}/capability?snapshot_job_id={beta_shared}",
    ):
        r = c.get(path, headers=h(keys, "alpha"))
        assert r.status_code == 404, path
    r = c.post(
        "/v1/sql",
        headers=h(keys, "alpha"),
        json={"query": "SELECT count(*) FROM parts", "context": {"snapshot_job_id": beta_shared}},
    )
    assert r.status_code == 404


def sql(c, keys, ws, query, **ctx):
    body = {"query": query}
    if ctx:
        body["context"] = ctx
    return c.post("/v1/sql", headers=h(keys, ws), json=body)


def test_sql_sees_only_the_own_workspace(two):
    _, c, keys, jobs = two
    r = sql(c, keys, "alpha", "SELECT lot_id, wafer_id FROM wafers ORDER BY 1, 2")
    assert r.json()["rows"] == [["ALPHA-ONLY", "W1"], ["ALPHA-ONLY", "W2"], [SHARED, "W1"], [SHARED, "W2"]]
    for q in (
        "SELECT count(*) FROM parts WHERE lot_id = 'BETA-ONLY'",
        "SELECT count(*) FROM wafers WHERE wafer_id = 'W7'",
        f"SELECT count(*) FROM lot_files WHERE job_id = '{jobs[('beta', SHARED)].job_id}'",
        "SELECT count(*) FROM records WHERE fields LIKE '%BETA%'",
    ):
        assert sql(c, keys, "alpha", q).json()["rows"] == [[0]], q
    assert sql(c, keys, "alpha", "SELECT 1", lot_id="BETA-ONLY").status_code == 404


@pytest.mark.parametrize(
    "attack",
    [
        "SELECT * FROM read_parquet('{beta}/lake/parts/**/*.parquet')",
        "SELECT * FROM read_parquet('{alpha}/../beta/lake/parts/lot=BETA-ONLY/*/*.parquet')",
        "SELECT * FROM '{beta}/lake/parts/lot=BETA-ONLY/job={job}/part-00000.parquet'",
        "SELECT * FROM glob('{beta}/**')",
        "SELECT * FROM read_text('{beta}/lake/_manifests/**')",
        "SELECT * FROM parquet_metadata('{beta}/lake/parts/**/*.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM read_parquet('s3://stratum-lake/workspaces/beta/lake/parts/x.parquet')",
        "SELECT * FROM query_table('_raw_parts')",
        "SELECT * FROM duckdb_tables()",
        "ATTACH '{beta}/../../stratum.db' AS meta",
        "SHOW TABLES",
    ],
)
def test_hostile_sql_reveals_nothing(two, attack):
    app, c, keys, jobs = two
    root = app.state.runtime.lake.uri("workspaces/alpha").rstrip("/").rsplit("/", 1)[0]
    q = attack.format(beta=f"{root}/beta", alpha=f"{root}/alpha", job=jobs[("beta", "BETA-ONLY")].job_id)
    r = sql(c, keys, "alpha", q)
    assert r.status_code == 400, (q, r.text)
    assert "W7" not in no_rid(r.text)  # beta's data never appears (the ids in the request are echoed, nothing more)
    # and the answer is the same whether the guessed lot and job exist or not (no existence oracle)
    guess = attack.format(beta=f"{root}/beta", alpha=f"{root}/alpha", job="job_00000000000000000000000000")
    g = sql(c, keys, "alpha", guess.replace("BETA-ONLY", "NO-SUCH-LOT"))
    assert no_rid(
        r.text.replace(jobs[("beta", "BETA-ONLY")].job_id, "job_00000000000000000000000000").replace(
            "BETA-ONLY", "NO-SUCH-LOT"
        )
    ) == no_rid(g.text)


def test_duckdb_itself_refuses_the_other_workspace_files(two):
    """Defence in depth: even SQL that got past the checks could not read another workspace's files."""
    import duckdb

    app, _, _, jobs = two
    rt = app.state.runtime
    db = rt.engine.database("alpha")
    beta_file = rt.lake.uri(
        f"workspaces/beta/lake/parts/lot=BETA-ONLY/job={jobs[('beta', 'BETA-ONLY')].job_id}/part-00000.parquet"
    )
    alpha_file = rt.lake.uri(
        f"workspaces/alpha/lake/parts/lot=ALPHA-ONLY/job={jobs[('alpha', 'ALPHA-ONLY')].job_id}/part-00000.parquet"
    )
    cur = db.cursor()
    assert cur.execute(f"SELECT count(*) FROM read_parquet('{alpha_file}')").fetchone()[0] > 0
    for q in (
        f"SELECT count(*) FROM read_parquet('{beta_file}')",
        f"SELECT count(*) FROM read_parquet('{alpha_file.replace('/alpha/', '/alpha/../beta/')}')",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
    ):
        with pytest.raises(duckdb.Error):
            cur.execute(q).fetchall()
    cur.close()


def test_uploads_and_jobs_stay_in_the_key_workspace(two, tmp_path):
    _, c, keys, _ = two
    truth = write_lot(
        LotSpec(
            lot_id="UPLOADED", wafers=("W3",), die_diameter=6, seed=3, tests=tuple(default_tests(3, n_mpr=0, n_ftr=0))
        ),
        tmp_path,
    )
    r = c.post(
        "/v1/uploads?filename=u.stdf",
        headers={**h(keys, "beta"), "Content-Type": "application/octet-stream"},
        content=truth.paths[0].read_bytes(),
    )
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    assert c.get(f"/v1/jobs/{job_id}", headers=h(keys, "beta")).json()["status"] == "succeeded"
    assert c.get(f"/v1/jobs/{job_id}", headers=h(keys, "alpha")).status_code == 404
    assert c.get("/v1/lots/UPLOADED", headers=h(keys, "alpha")).status_code == 404
    assert c.get("/v1/lots/UPLOADED", headers=h(keys, "beta")).status_code == 200


def test_presigned_upload_url_is_bound_to_its_workspace(two):
    _, c, keys, _ = two
    r = c.post("/v1/uploads/presign", headers=h(keys, "alpha"), json={"filename": "x.stdf"})
    url = r.json()["upload_url"]
    path = url.split("://", 1)[-1].split("/", 1)[1]
    forged = "/" + path.replace("workspace=alpha", "workspace=beta")
    assert c.put(forged, content=b"\x02\x00\x00\x0a\x02\x04").status_code == 403


def test_engine_sessions_are_per_workspace(two):
    app, _, _, _ = two
    eng = app.state.runtime.engine
    with eng.session("alpha", Scope(lot_id=SHARED)) as a, eng.session("beta", Scope(lot_id=SHARED)) as b:
        wa = {r[0] for r in a.rows("SELECT wafer_id FROM wafers")}
        wb = {r[0] for r in b.rows("SELECT wafer_id FROM wafers")}
    assert wa == {"W1", "W2"} and wb == {"W7"}
