"""Jobs (list with filters, get, 404) and lots (search, detail, 404)."""

from __future__ import annotations

import pytest

from .conftest import FT_LOT, WS_LOT, final_mask, first_pass_mask, strict_json


@pytest.fixture(scope="module")
def failed_job(seeded):
    """A job that failed: a truncated copy of the first file (the ingest refuses truncated files)."""
    data = seeded.wafer_lot.paths[0].read_bytes()
    bad = seeded.data_dir.parent / "truncated.stdf"
    bad.write_bytes(data[: len(data) // 3])
    job = seeded.app.state.runtime.ingest.ingest_path("default", bad)
    assert job.status == "failed"
    return job


def _ids(items) -> list[str]:
    return [i["job_id"] for i in items]


def test_list_jobs_filters(seeded, failed_job):
    succeeded = [j.job_id for j in reversed([*seeded.wafer_jobs, seeded.ft_job])]
    all_jobs = seeded.json("/v1/jobs", params={"limit": 500})["items"]
    assert _ids(all_jobs) == [failed_job.job_id, *succeeded]
    assert _ids(seeded.json("/v1/jobs", params={"status": "succeeded"})["items"]) == succeeded
    assert _ids(seeded.json("/v1/jobs", params={"status": "failed"})["items"]) == [failed_job.job_id]
    assert seeded.json("/v1/jobs", params={"status": "queued"})["items"] == []
    ws_jobs = [j.job_id for j in reversed(seeded.wafer_jobs)]
    assert _ids(seeded.json("/v1/jobs", params={"lot_id": WS_LOT})["items"]) == ws_jobs
    assert _ids(seeded.json("/v1/jobs", params={"lot_id": FT_LOT})["items"]) == [seeded.ft_job.job_id]
    assert _ids(seeded.json("/v1/jobs", params={"lot_id": WS_LOT, "status": "succeeded"})["items"]) == ws_jobs
    assert seeded.json("/v1/jobs", params={"lot_id": WS_LOT, "status": "failed"})["items"] == []
    assert seeded.json("/v1/jobs", params={"lot_id": "NOPE"})["items"] == []


def test_get_job(seeded, failed_job):
    j0 = seeded.wafer_jobs[0]
    job = seeded.json(f"/v1/jobs/{j0.job_id}")
    assert (job["job_id"], job["status"], job["lot_id"], job["workspace"]) == (
        j0.job_id,
        "succeeded",
        WS_LOT,
        "default",
    )
    truth = seeded.wafer_lot
    assert job["record_counts"] == truth.files[0].records
    assert job["parts"] == truth.files[0].parts.stop - truth.files[0].parts.start
    assert job["snapshot_jobs"] == [j0.job_id]
    assert job["error"] is None
    last = seeded.json(f"/v1/jobs/{seeded.wafer_jobs[-1].job_id}")
    assert last["snapshot_jobs"] == [j.job_id for j in seeded.wafer_jobs]
    failed = seeded.json(f"/v1/jobs/{failed_job.job_id}")
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "truncated"
    assert "truncated" in failed["error"]["message"]


def test_job_status_is_readable_with_ingest_and_read_keys(seeded):
    jid = seeded.wafer_jobs[0].job_id
    for scope in ("ingest", "read", "full"):
        assert seeded.get(f"/v1/jobs/{jid}", scope).status_code == 200


@pytest.mark.parametrize("job_id", ["job_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "nope", "x" * 200, "job_%2F..%2F"])
def test_unknown_job_is_404(seeded, job_id):
    r = seeded.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 404
    body = strict_json(r.text)
    assert (body["code"], body["status"]) == ("not_found", 404)
    assert r.headers["content-type"] == "application/problem+json"


# -- lots -------------------------------------------------------------------------------------------


def _lots(seeded, **params) -> list[str]:
    return [lot["lot_id"] for lot in seeded.json("/v1/lots", params=params)["items"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [WS_LOT, FT_LOT]),
        ({"q": "api"}, [WS_LOT]),
        ({"q": "-LOT"}, [WS_LOT, FT_LOT]),
        ({"q": "ft-l"}, [FT_LOT]),
        ({"q": "zzz"}, []),
        ({"part_type": "FT-DEV"}, [FT_LOT]),
        ({"part_type": "STRATUM-DEV1"}, [WS_LOT]),
        ({"part_type": "ft-dev"}, [FT_LOT]),  # case-insensitive substring, like q
        ({"part_type": "dev"}, [WS_LOT, FT_LOT]),
        ({"program": "stratum_"}, [WS_LOT]),
        ({"program": "prog", "part_type": "DEV1"}, [WS_LOT]),
        ({"program": "STRATUM_PROG"}, [WS_LOT]),
        ({"program": "FT_PROG", "part_type": "FT-DEV"}, [FT_LOT]),
        ({"program": "FT_PROG", "part_type": "STRATUM-DEV1"}, []),
        ({"start_from": "2024-01-01"}, [FT_LOT]),
        ({"start_to": "2024-01-01"}, [WS_LOT]),
        ({"start_from": "2023-11-14T22:13:20Z", "start_to": "2023-11-14T22:13:20Z"}, [WS_LOT]),  # bounds inclusive
        ({"start_from": "2023-11-14T22:13:21Z"}, [FT_LOT]),
        ({"start_from": "2023-11-14T23:13:20+01:00", "start_to": "2024-03-09T16:00:00+00:00"}, [WS_LOT, FT_LOT]),
        ({"start_from": "2025-01-01"}, []),
        ({"q": "lot", "start_to": "2024-03-09T15:59:59Z"}, [WS_LOT]),
    ],
)
def test_search_lots(seeded, params, expected):
    assert _lots(seeded, **params) == expected


@pytest.mark.parametrize("params", [{"start_from": "yesterday"}, {"start_to": "2024-13-01"}, {"q": "x" * 256}])
def test_search_lots_bad_params_are_400(seeded, params):
    r = seeded.get("/v1/lots", params=params)
    assert r.status_code == 400
    assert strict_json(r.text)["code"] == "bad_request"


def test_lot_summary_fields(seeded):
    truth = seeded.wafer_lot
    p, final = truth.parts, final_mask(truth)
    ws, ft = seeded.json("/v1/lots")["items"]
    assert ws == {
        "lot_id": WS_LOT,
        "part_type": "STRATUM-DEV1",
        "program": "STRATUM_PROG",
        "tester_type": "SIM-9000",
        "node_name": "tester01",
        "test_code": "WS1",
        "start_time": "2023-11-14T22:13:20",
        "finish_time": ws["finish_time"],
        "active_job_id": seeded.wafer_jobs[-1].job_id,
        "file_count": 3,
        "updated_at": ws["updated_at"],
        "wafer_count": 3,
        "part_count": int(final.sum()),
        "good_count": int(p.passed[final].sum()),
        "yield": ws["yield"],
        "first_pass_yield": ws["first_pass_yield"],
    }
    assert ws["yield"] == pytest.approx(p.passed[final].mean(), rel=1e-12)
    assert ws["first_pass_yield"] == pytest.approx(p.passed[first_pass_mask(truth)].mean(), rel=1e-12)
    ft_truth = seeded.ft_lot
    ft_final = final_mask(ft_truth)
    assert (ft["wafer_count"], ft["part_count"]) == (0, int(ft_final.sum()))
    assert ft["yield"] == pytest.approx(ft_truth.parts.passed[ft_final].mean(), rel=1e-12)
    assert ws["finish_time"] > ws["start_time"]
    assert (ft["lot_id"], ft["part_type"], ft["program"], ft["test_code"], ft["file_count"], ft["active_job_id"]) == (
        FT_LOT,
        "FT-DEV",
        "FT_PROG",
        "FT1",
        1,
        seeded.ft_job.job_id,
    )


def test_lot_detail(seeded):
    truth = seeded.wafer_lot
    p = truth.parts
    final, first = final_mask(truth), first_pass_mask(truth)
    d = seeded.json(f"/v1/lots/{WS_LOT}")
    assert (d["lot_id"], d["part_type"], d["program"], d["tester_type"], d["node_name"]) == (
        WS_LOT,
        "STRATUM-DEV1",
        "STRATUM_PROG",
        "SIM-9000",
        "tester01",
    )
    active = seeded.wafer_jobs[-1].job_id
    assert d["active_job_id"] == d["job_id"] == d["snapshot_job_id"] == active
    assert d["file_count"] == 3
    assert d["part_count"] == int(final.sum())
    assert d["good_count"] == int(p.passed[final].sum())
    assert d["yield"] == pytest.approx(p.passed[final].mean(), rel=1e-12)
    assert d["first_pass_yield"] == pytest.approx(p.passed[first].mean(), rel=1e-12)
    assert d["retest_count"] == int((~first).sum())
    assert [w["wafer_id"] for w in d["wafers"]] == ["W01", "W02", "W03"]
    for w in d["wafers"]:
        m = p.wafer_id == w["wafer_id"]
        assert (w["part_count"], w["good_count"], w["first_pass_count"], w["first_pass_good"], w["retest_count"]) == (
            int((m & final).sum()),
            int((m & final & p.passed).sum()),
            int((m & first).sum()),
            int((m & first & p.passed).sum()),
            int((m & ~first).sum()),
        ), w["wafer_id"]
        assert w["yield"] == pytest.approx(p.passed[m & final].mean(), rel=1e-12)
    assert [f["job_id"] for f in d["files"]] == [j.job_id for j in seeded.wafer_jobs]
    assert [f["file_name"] for f in d["files"]] == [path.name for path in truth.paths]
    jobs = {j["job_id"]: j for j in d["jobs"]}
    assert set(jobs) == {j.job_id for j in seeded.wafer_jobs}
    assert {j["status"] for j in jobs.values()} == {"succeeded"}


def test_final_test_lot_detail(seeded):
    truth = seeded.ft_lot
    final = final_mask(truth)
    d = seeded.json(f"/v1/lots/{FT_LOT}")
    assert d["part_count"] == int(final.sum()) < len(truth.parts)  # in-file retests by PART_ID
    assert d["good_count"] == int(truth.parts.passed[final].sum())
    assert d["wafers"] == []


@pytest.mark.parametrize("lot_id", ["NO-SUCH-LOT", "api-lot", "API-LOT%20", "%2e%2e"])
def test_unknown_lot_is_404(seeded, lot_id):
    for suffix in ("", "/wafers", "/tests", "/capability", "/bins", "/wafers/W01/map", "/tests/1000/results"):
        r = seeded.get(f"/v1/lots/{lot_id}{suffix}")
        assert r.status_code == 404, (suffix, r.text)
        body = strict_json(r.text)
        assert body["code"] == "not_found"
