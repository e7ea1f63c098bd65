"""Every error is one RFC 9457 problem+json shape (type, title, status, detail, instance, code) with the
right status, and no error body carries a stack trace or a server path."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from stratum.api.problems import TYPE_BASE

from .conftest import WS_LOT, strict_json

SHAPE = {"type", "title", "status", "detail", "instance", "code"}
EXTRAS = {"errors", "error", "request_id", "required_scopes"}  # 400 details, 422 reader error, request id, 403 scopes
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|/work/|/home/|/root/|/tmp/|\\\\|duckdb\.|_duckdb|"
    r"Exception\b|\bline \d+",
    re.IGNORECASE,
)


def check_problem(r, status: int, code: str, path: str, *, data_dir=None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert SHAPE <= set(body) <= SHAPE | EXTRAS, set(body)
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == TYPE_BASE + code
    assert body["instance"] == path
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert not LEAKS.search(r.text), r.text
    if data_dir is not None:
        assert str(data_dir) not in r.text
    return body


def _h(seeded, scope="full"):
    return seeded.headers(scope)


CASES = {
    "400-malformed-json": (
        lambda s: s.client.post(
            "/v1/sql", content=b'{"query": "SELECT 1",', headers={**_h(s), "content-type": "application/json"}
        ),
        400,
        "bad_request",
        "/v1/sql",
    ),
    "400-json-not-an-object": (
        lambda s: s.client.post("/v1/sql", json=["SELECT 1"], headers=_h(s)),
        400,
        "bad_request",
        "/v1/sql",
    ),
    "400-wrong-content-type": (
        lambda s: s.client.post("/v1/sql", content=b"SELECT 1", headers={**_h(s), "content-type": "text/plain"}),
        400,
        "bad_request",
        "/v1/sql",
    ),
    "400-bad-query-param": (
        lambda s: s.client.get("/v1/lots", params={"limit": "abc"}, headers=_h(s)),
        400,
        "bad_request",
        "/v1/lots",
    ),
    "400-bad-enum": (
        lambda s: s.client.get(f"/v1/lots/{WS_LOT}/bins", params={"by": "die"}, headers=_h(s)),
        400,
        "bad_request",
        f"/v1/lots/{WS_LOT}/bins",
    ),
    "400-bad-path-int": (
        lambda s: s.client.get(f"/v1/lots/{WS_LOT}/tests/abc/results", headers=_h(s)),
        400,
        "bad_request",
        f"/v1/lots/{WS_LOT}/tests/abc/results",
    ),
    "400-bad-date": (
        lambda s: s.client.get("/v1/lots", params={"start_from": "soon"}, headers=_h(s)),
        400,
        "bad_request",
        "/v1/lots",
    ),
    "400-sql-rejected": (
        lambda s: s.client.post("/v1/sql", json={"query": "DROP VIEW lots"}, headers=_h(s)),
        400,
        "query_rejected",
        "/v1/sql",
    ),
    "400-sql-fails": (
        lambda s: s.client.post("/v1/sql", json={"query": "SELECT no_such_column FROM lots"}, headers=_h(s)),
        400,
        "bad_request",
        "/v1/sql",
    ),
    "400-sql-conversion": (
        lambda s: s.client.post("/v1/sql", json={"query": "SELECT lot_id::INT FROM lots"}, headers=_h(s)),
        400,
        "bad_request",
        "/v1/sql",
    ),
    "400-bad-cursor": (
        lambda s: s.client.get(f"/v1/lots/{WS_LOT}/tests/1000/results", params={"cursor": "%%%"}, headers=_h(s)),
        400,
        "bad_request",
        f"/v1/lots/{WS_LOT}/tests/1000/results",
    ),
    "401-no-key": (lambda s: s.client.get("/v1/jobs"), 401, "unauthorized", "/v1/jobs"),
    "401-bad-key": (
        lambda s: s.client.get("/v1/jobs", headers={"Authorization": "Bearer stm_test_x"}),
        401,
        "unauthorized",
        "/v1/jobs",
    ),
    "403-scope": (
        lambda s: s.client.post("/v1/sql", json={"query": "SELECT 1"}, headers=_h(s, "read")),
        403,
        "forbidden",
        "/v1/sql",
    ),
    "404-lot": (lambda s: s.client.get("/v1/lots/NOPE", headers=_h(s)), 404, "not_found", "/v1/lots/NOPE"),
    "404-job": (lambda s: s.client.get("/v1/jobs/job_nope", headers=_h(s)), 404, "not_found", "/v1/jobs/job_nope"),
    "404-route": (lambda s: s.client.get("/v1/nothing-here", headers=_h(s)), 404, "not_found", "/v1/nothing-here"),
    "404-wafer": (
        lambda s: s.client.get(f"/v1/lots/{WS_LOT}/wafers/W9/map", headers=_h(s)),
        404,
        "not_found",
        f"/v1/lots/{WS_LOT}/wafers/W9/map",
    ),
    "405-method": (lambda s: s.client.delete("/v1/lots", headers=_h(s)), 405, "method_not_allowed", "/v1/lots"),
    "422-not-stdf": (
        lambda s: s.client.post("/v1/uploads", params={"filename": "x.stdf"}, content=b"not stdf", headers=_h(s)),
        422,
        "unprocessable",
        "/v1/uploads",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_problem_shape(seeded, name):
    call, status, code, path = CASES[name]
    check_problem(call(seeded), status, code, path, data_dir=seeded.data_dir)


def test_401_has_www_authenticate(seeded):
    r = seeded.client.get("/v1/jobs")
    assert r.headers["www-authenticate"].startswith("Bearer realm=")


def test_validation_errors_list_each_field(seeded):
    r = seeded.client.get(
        f"/v1/lots/{WS_LOT}/tests/1000/results", params={"limit": 0, "site_num": 999}, headers=_h(seeded)
    )
    body = check_problem(r, 400, "bad_request", f"/v1/lots/{WS_LOT}/tests/1000/results")
    assert sorted(tuple(e["loc"]) for e in body["errors"]) == [("query", "limit"), ("query", "site_num")]
    assert "query.limit" in body["detail"] and "query.site_num" in body["detail"]


def test_409_presign_reused(seeded):
    p = seeded.client.post("/v1/uploads/presign", json={"filename": "r.stdf"}, headers=_h(seeded)).json()
    path = p["upload_url"].split("://", 1)[1].split("/", 1)[1]
    data = seeded.wafer_lot.paths[0].read_bytes()
    assert seeded.client.put(f"/{path}", content=data).status_code == 202
    r = seeded.client.put(f"/{path}", content=data)
    check_problem(r, 409, "conflict", f"/v1/uploads/{p['job']['job_id']}/content")


def test_413(make_app):
    app, client, tokens = make_app(max_upload_bytes=10)
    r = client.post(
        "/v1/uploads",
        params={"filename": "x.stdf"},
        content=b"0123456789A",
        headers={"Authorization": f"Bearer {tokens['full']}"},
    )
    check_problem(r, 413, "payload_too_large", "/v1/uploads")


def test_422_timeout(make_app):
    app, client, tokens = make_app(sql={"timeout_seconds": 0.5})
    r = client.post(
        "/v1/sql",
        json={"query": "SELECT count(*) FROM range(100000000000)"},
        headers={"Authorization": f"Bearer {tokens['full']}"},
    )
    check_problem(r, 422, "query_timeout", "/v1/sql")


@pytest.mark.parametrize(
    ("bucket", "call"),
    [
        ("analytics", lambda c, h: c.get("/v1/lots", headers=h)),
        ("sql", lambda c, h: c.post("/v1/sql", json={"query": "SELECT 1"}, headers=h)),
        ("uploads", lambda c, h: c.post("/v1/uploads/inspect", content=b"x", headers=h)),
        ("classify", lambda c, h: c.post("/v1/classify", json={"grid": [[1, 2, 1], [2, 1, 2]]}, headers=h)),
        ("classify", lambda c, h: c.post("/v1/batch", json={"maps": [{"grid": [[1, 2, 1], [2, 1, 2]]}]}, headers=h)),
    ],
)
def test_429_with_retry_after(make_app, bucket, call):
    app, client, tokens = make_app(
        rate_limits={
            "analytics_per_window": 2,
            "sql_per_window": 2,
            "uploads_per_window": 2,
            "classify_per_window": 2,
            "window_seconds": 60,
        }
    )
    # a fixed window aligned on the epoch: freeze the limiter's clock mid-window, so that a slow (loaded) run
    # cannot straddle a window boundary between the calls
    app.state.limiter._clock = lambda: 1_800_000_030.0
    h = {"Authorization": f"Bearer {tokens['full']}"}
    first, second = call(client, h), call(client, h)
    assert first.status_code != 429 and second.status_code != 429
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("2", "1")
    assert second.headers["x-ratelimit-remaining"] == "0"
    r = call(client, h)
    body = check_problem(r, 429, "rate_limited", r.request.url.path)
    retry = int(r.headers["retry-after"])
    assert retry == 30
    assert r.headers["x-ratelimit-limit"] == "2" and r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == "30"
    assert f"{bucket} requests" in body["detail"]
    # per key: another key still has its budget; other buckets are independent
    other = app.state.keys.create("default", ["full"], "other")[0]
    assert call(client, {"Authorization": f"Bearer {other}"}).status_code != 429
    assert client.get("/v1/status").status_code == 200
    if bucket != "analytics":
        assert client.get("/v1/lots", headers=h).status_code == 200


def test_500_is_generic(seeded, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError(f"secret detail at {seeded.data_dir}/x.py line 3")

    monkeypatch.setattr(seeded.app.state.analytics, "wafers", boom)
    client = TestClient(seeded.app, raise_server_exceptions=False)
    r = client.get(f"/v1/lots/{WS_LOT}/wafers", headers=_h(seeded))
    body = check_problem(r, 500, "internal_error", f"/v1/lots/{WS_LOT}/wafers", data_dir=seeded.data_dir)
    assert "secret" not in r.text
    assert body["detail"] == "an unexpected error occurred; it has been logged"
