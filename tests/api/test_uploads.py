"""Uploads: raw bodies (plain, gzip, bzip2), presigned uploads (local signed URLs) and inspect.

On the local runtime an upload is ingested by a background task, which the TestClient runs before it
returns: the job is final when the 202 comes back.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest

from stratum.devtools.stdf.lots import GeneratedLot, LotSpec, default_tests, write_lot
from stratum.ingest import uploads as uploads_service
from stratum.stdf.errors import StdfError
from stratum.stdf.reader import check_header

from .conftest import new_app, strict_json

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """A fresh app with a small upload limit; ``make(lot_id)`` writes a small one-wafer lot."""
    d = tmp_path_factory.mktemp("uploads")
    app, client, tokens = new_app(d / "data", max_upload_bytes=LIMIT)

    def make(lot_id: str, **kw) -> GeneratedLot:
        spec = LotSpec(
            lot_id=lot_id,
            wafers=("W01",),
            die_diameter=6,
            tests=tuple(default_tests(3, n_mpr=0, n_ftr=1)),
            seed=len(lot_id),
            **kw,
        )
        return write_lot(spec, d / "stdf" / lot_id)

    class Up:
        pass

    u = Up()
    u.app, u.client, u.make = app, client, make
    u.h = {"Authorization": f"Bearer {tokens['full']}"}
    u.ingest_h = {"Authorization": f"Bearer {tokens['ingest']}"}
    yield u
    app.state.runtime.close()


def _jobs(up) -> list[dict]:
    return strict_json(up.client.get("/v1/jobs", params={"limit": 500}, headers=up.h).text)["items"]


def _assert_ingested(up, r, lot: GeneratedLot, file_name: str) -> dict:
    assert r.status_code == 202, r.text
    body = strict_json(r.text)
    assert body["status"] == "queued"  # the state when the job was created
    assert body["file_name"] == file_name
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"
    job = strict_json(up.client.get(r.headers["location"], headers=up.h).text)
    assert job["status"] == "succeeded", job
    assert job["lot_id"] == lot.spec.lot_id
    assert job["parts"] == len(lot.parts)
    assert job["record_counts"] == lot.files[0].records
    detail = strict_json(up.client.get(f"/v1/lots/{lot.spec.lot_id}", headers=up.h).text)
    assert detail["active_job_id"] == job["job_id"]
    assert detail["part_count"] == int(lot.final().sum())
    assert detail["good_count"] == int(lot.parts.passed[lot.final()].sum())
    return job


@pytest.mark.parametrize(
    ("compress", "suffix"),
    [
        (lambda b: b, ".stdf"),
        (gzip.compress, ".stdf.gz"),
        (bz2.compress, ".stdf.bz2"),
        (lambda b: b, ".std"),
        (gzip.compress, ".stdf"),  # the container is recognised by its magic bytes, not by the name
    ],
    ids=["plain", "gzip", "bzip2", "std", "gzip-named-stdf"],
)
def test_upload(up, compress, suffix):
    lot = up.make(f"UP-{len(_jobs(up))}")
    body = compress(lot.paths[0].read_bytes())
    r = up.client.post(
        "/v1/uploads",
        params={"filename": f"{lot.spec.lot_id}{suffix}"},
        content=body,
        headers={**up.ingest_h, "Content-Type": "application/octet-stream"},
    )
    job = _assert_ingested(up, r, lot, f"{lot.spec.lot_id}{suffix}")
    assert job["size"] == len(body)


def test_upload_zip(up):
    lot = up.make("UP-ZIP")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner.stdf", lot.paths[0].read_bytes())
    r = up.client.post("/v1/uploads", params={"filename": "UP-ZIP.stdf.zip"}, content=buf.getvalue(), headers=up.h)
    _assert_ingested(up, r, lot, "UP-ZIP.stdf.zip")


def test_upload_file_name_is_sanitised(up):
    lot = up.make("UP-NAME")
    r = up.client.post(
        "/v1/uploads", params={"filename": "../../etc/x y;$(id).stdf"}, content=lot.paths[0].read_bytes(), headers=up.h
    )
    job = _assert_ingested(up, r, lot, "x y___id_.stdf")
    assert ".." not in job["source"]["key"]


def test_same_bytes_twice_is_a_duplicate(up):
    lot = up.make("UP-DUP")
    data = lot.paths[0].read_bytes()
    first = up.client.post("/v1/uploads", params={"filename": "a.stdf"}, content=data, headers=up.h).json()
    r = up.client.post("/v1/uploads", params={"filename": "b.stdf"}, content=data, headers=up.h)
    assert r.status_code == 202
    job = strict_json(up.client.get(r.headers["location"], headers=up.h).text)
    assert (job["status"], job["duplicate_of"]) == ("duplicate", first["job_id"])
    lot_detail = strict_json(up.client.get("/v1/lots/UP-DUP", headers=up.h).text)
    assert lot_detail["file_count"] == 1


def _problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert (body["status"], body["code"]) == (status, code)
    return body


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_over_the_limit_is_413_and_creates_no_job(up, streamed):
    before = len(_jobs(up))
    data = b"\0" * (LIMIT + 1)
    content = (data[i : i + 8192] for i in range(0, len(data), 8192)) if streamed else data
    r = up.client.post("/v1/uploads", params={"filename": "big.stdf"}, content=content, headers=up.h)
    body = _problem(r, 413, "payload_too_large")
    assert f"limit of {LIMIT} bytes" in body["detail"]
    assert "/v1/uploads/presign" in body["detail"]
    assert len(_jobs(up)) == before


def test_at_the_limit_is_not_413(up):
    r = up.client.post("/v1/uploads", params={"filename": "big.stdf"}, content=b"\0" * LIMIT, headers=up.h)
    assert r.status_code == 422  # read in full, then refused as not STDF


@pytest.mark.parametrize(
    "body",
    [
        b"hello, this is not an STDF file",
        b"\x02\x00\x00\x0a\x02\x03",  # the FAR of an STDF V3 file
        b"abc",
        gzip.compress(b"plain text, gzipped"),
        b"\x1f\x8b\x08\x00garbage-after-gzip-magic",
        b"BZh9 not really bzip2",
    ],
    ids=["text", "stdf-v3", "too-short", "gzip-of-text", "corrupt-gzip", "corrupt-bzip2"],
)
def test_non_stdf_is_422_with_the_readers_error(up, body):
    with pytest.raises(StdfError) as info:
        check_header(body)
    expected = info.value
    before = len(_jobs(up))
    r = up.client.post("/v1/uploads", params={"filename": "x.stdf"}, content=body, headers=up.h)
    problem = _problem(r, 422, "unprocessable")
    assert problem["detail"] == str(expected)
    assert problem["error"] == expected.to_dict()
    assert problem["error"]["code"] in ("not_stdf", "unsupported_version", "bad_compression", "bad_record")
    assert len(_jobs(up)) == before


def test_empty_body_is_400(up):
    body = _problem(
        up.client.post("/v1/uploads", params={"filename": "x.stdf"}, content=b"", headers=up.h), 400, "bad_request"
    )
    assert "body is empty" in body["detail"]


@pytest.mark.parametrize("filename", ["data.bin", "noext", "x.zip", "x.txt.gz"])
def test_upload_of_a_name_the_drop_folder_ignores_is_400(up, filename):
    """Such a job would never run (the drop processor only takes .stdf/.std names): refused up front."""
    lot = up.make("UP-BADNAME")
    before = len(_jobs(up))
    r = up.client.post("/v1/uploads", params={"filename": filename}, content=lot.paths[0].read_bytes(), headers=up.h)
    assert ".stdf" in _problem(r, 400, "bad_request")["detail"]
    assert len(_jobs(up)) == before


@pytest.mark.parametrize("params", [{}, {"filename": ""}, {"filename": "x" * 256 + ".stdf"}, {"filename": "..."}])
def test_bad_filename_is_400(up, params):
    _problem(up.client.post("/v1/uploads", params=params, content=b"x", headers=up.h), 400, "bad_request")


# -- presigned uploads ------------------------------------------------------------------------------


def _presign(up, filename: str, **extra) -> dict:
    r = up.client.post("/v1/uploads/presign", json={"filename": filename, **extra}, headers=up.h)
    assert r.status_code == 200, r.text
    return strict_json(r.text)


def _path(url: str) -> str:
    u = urlsplit(url)
    return f"{u.path}?{u.query}"


def test_presign_put_then_job_succeeds(up):
    lot = up.make("UP-PRESIGN")
    data = lot.paths[0].read_bytes()
    p = _presign(up, "UP-PRESIGN.stdf", size=len(data))
    job_id = p["job"]["job_id"]
    assert p["method"] == "PUT"
    assert p["headers"] == {"Content-Type": "application/octet-stream"}
    assert p["job"]["status"] == "queued"
    assert p["job"]["size"] == len(data)
    assert p["key"].endswith(f"/{job_id}/UP-PRESIGN.stdf")
    u = urlsplit(p["upload_url"])
    assert u.path == f"/v1/uploads/{job_id}/content"
    assert set(parse_qs(u.query)) == {"workspace", "expires", "signature"}
    r = up.client.put(_path(p["upload_url"]), content=data, headers=p["headers"])
    assert r.status_code == 202, r.text
    job = strict_json(up.client.get(f"/v1/jobs/{job_id}", headers=up.h).text)
    assert (job["status"], job["lot_id"], job["parts"]) == ("succeeded", "UP-PRESIGN", len(lot.parts))
    assert strict_json(up.client.get("/v1/lots/UP-PRESIGN", headers=up.h).text)["active_job_id"] == job_id

    again = up.client.put(_path(p["upload_url"]), content=data)
    assert "already been used" in _problem(again, 409, "conflict")["detail"]


def test_presign_gzip_name(up):
    lot = up.make("UP-PRESIGN-GZ")
    p = _presign(up, "UP-PRESIGN-GZ.stdf.gz")
    r = up.client.put(_path(p["upload_url"]), content=gzip.compress(lot.paths[0].read_bytes()))
    assert r.status_code == 202
    assert strict_json(up.client.get(f"/v1/jobs/{p['job']['job_id']}", headers=up.h).text)["status"] == "succeeded"


@pytest.mark.parametrize("tamper", ["signature", "workspace", "expires", "job_id", "non-ascii"])
def test_presign_tampered_url_is_403(up, tamper):
    lot = up.make("UP-TAMPER")
    p = _presign(up, "t.stdf")
    u = urlsplit(p["upload_url"])
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    path = u.path
    if tamper == "signature":
        q["signature"] = ("0" if q["signature"][0] != "0" else "1") + q["signature"][1:]
    elif tamper == "workspace":
        q["workspace"] = "other"
    elif tamper == "expires":
        q["expires"] = str(int(q["expires"]) + 3600)
    elif tamper == "job_id":
        jid = p["job"]["job_id"]
        path = path.replace(jid, jid[:-1] + ("0" if jid[-1] != "0" else "1"))
    else:
        q["signature"] = "é" * 64
    r = up.client.put(path, params=q, content=lot.paths[0].read_bytes())
    assert _problem(r, 403, "forbidden")["detail"] == "invalid upload URL signature"
    job = strict_json(up.client.get(f"/v1/jobs/{p['job']['job_id']}", headers=up.h).text)
    assert job["status"] == "queued"


def test_presign_expired_url_is_403(up, monkeypatch):
    p = _presign(up, "late.stdf")
    real = uploads_service.time.time
    seconds = up.app.state.runtime.settings.input_limits.presign_seconds
    monkeypatch.setattr(uploads_service.time, "time", lambda: real() + seconds + 1)
    r = up.client.put(_path(p["upload_url"]), content=b"x")
    assert "expired" in _problem(r, 403, "forbidden")["detail"]


def test_presign_url_of_an_upload_job_is_404(up):
    """A signed URL only writes presign jobs: not a job created by POST /v1/uploads."""
    lot = up.make("UP-NOTPRESIGN")
    job_id = up.client.post(
        "/v1/uploads", params={"filename": "n.stdf"}, content=lot.paths[0].read_bytes(), headers=up.h
    ).json()["job_id"]
    expires = int(uploads_service.time.time()) + 60
    sig = up.app.state.runtime.uploads._sign("default", job_id, expires)
    r = up.client.put(
        f"/v1/uploads/{job_id}/content",
        params={"workspace": "default", "expires": expires, "signature": sig},
        content=b"x",
    )
    _problem(r, 404, "not_found")


@pytest.mark.parametrize("filename", ["x.txt", "x.csv.gz", "stdf", "x.stdf.tar"])
def test_presign_non_stdf_filename_is_400(up, filename):
    r = up.client.post("/v1/uploads/presign", json={"filename": filename}, headers=up.h)
    assert ".stdf" in _problem(r, 400, "bad_request")["detail"]


@pytest.mark.parametrize("body", [{}, {"filename": "x.stdf", "size": -1}, {"filename": "x.stdf", "extra": 1}])
def test_presign_bad_body_is_400(up, body):
    _problem(up.client.post("/v1/uploads/presign", json=body, headers=up.h), 400, "bad_request")


# -- inspect ----------------------------------------------------------------------------------------


def test_inspect(up):
    lot = up.make("UP-INSPECT", sites=2, part_type="PT-X", tester_type="TESTER-Z", program="PROG-Y")
    before = len(_jobs(up))
    data = lot.paths[0].read_bytes()
    r = up.client.post("/v1/uploads/inspect", params={"filename": "i.stdf"}, content=data, headers=up.h)
    assert r.status_code == 200, r.text
    info = strict_json(r.text)
    assert info["valid"] is True
    assert info["problems"] == []
    assert (info["lot_id"], info["part_type"], info["program"], info["tester_type"]) == (
        "UP-INSPECT",
        "PT-X",
        "PROG-Y",
        "TESTER-Z",
    )
    assert info["compression"] == "plain"
    assert info["record_counts"] == lot.files[0].records
    assert info["records"] == sum(lot.files[0].records.values())
    assert info["parts"] == len(lot.parts)
    assert info["parts_passed"] == int(lot.parts.passed.sum())
    assert info["sites"] == [1, 2]
    assert [(w["wafer_id"], w["part_count"]) for w in info["wafers"]] == [("W01", len(lot.parts))]
    assert len(_jobs(up)) == before, "inspect ingests nothing"
    assert up.client.get("/v1/lots/UP-INSPECT", headers=up.h).status_code == 404

    gz = strict_json(
        up.client.post(
            "/v1/uploads/inspect", params={"filename": "i.stdf.gz"}, content=gzip.compress(data), headers=up.h
        ).text
    )
    assert gz["compression"] == "gzip"
    assert {k: v for k, v in gz.items() if k not in ("compression", "file_name")} == {
        k: v for k, v in info.items() if k not in ("compression", "file_name")
    }


def test_inspect_truncated_file_is_200_with_a_problem(up):
    lot = up.make("UP-TRUNC")
    data = lot.paths[0].read_bytes()
    r = up.client.post("/v1/uploads/inspect", content=data[: len(data) // 2], headers=up.h)
    assert r.status_code == 200
    info = strict_json(r.text)
    assert info["valid"] is False
    assert info["lot_id"] == "UP-TRUNC"
    assert info["problems"][0]["code"] == "truncated"
    assert info["problems"][0]["offset"] <= len(data) // 2
    assert "MRR" not in info["record_counts"]
    assert any(p["code"] == "no_mrr" for p in info["problems"])


@pytest.mark.parametrize("body", [b"not an stdf file at all", gzip.compress(b"nope"), b"BZh9xx"])
def test_inspect_non_stdf_is_422(up, body):
    r = up.client.post("/v1/uploads/inspect", content=body, headers=up.h)
    problem = _problem(r, 422, "unprocessable")
    assert problem["error"]["code"] in ("not_stdf", "bad_compression")
    assert problem["detail"] == problem["error"]["message"]


def test_inspect_limits(up):
    _problem(up.client.post("/v1/uploads/inspect", content=b"", headers=up.h), 400, "bad_request")
    _problem(up.client.post("/v1/uploads/inspect", content=b"\0" * (LIMIT + 1), headers=up.h), 413, "payload_too_large")


def test_uploads_need_the_upload_action(up):
    read_key = up.app.state.keys.create("default", ["read"], "reader")[0]
    r = up.client.post(
        "/v1/uploads", params={"filename": "x.stdf"}, content=b"x", headers={"Authorization": f"Bearer {read_key}"}
    )
    _problem(r, 403, "forbidden")
