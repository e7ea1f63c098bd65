"""The classify and batch routes' errors over the real app, each as problem+json: 400 (malformed body,
unsupported format), 413 (body past the bound, declared or chunked), 422 with the STDF parser's own message
(plain and gzip'd), 503 with Retry-After when the server's classification slots stay busy. 401/403 are in
test_auth_status (every route), 429 (rate) in test_errors, 429 (monthly quota) and 413 (tier batch size) in
test_patterns_api."""

from __future__ import annotations

import base64
import gzip
import threading
import time

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.stdf.errors import StdfError
from stratum.stdf.reader import ReaderOptions, parse

from .test_errors import check_problem


@pytest.fixture(scope="module")
def stdf(tmp_path_factory) -> bytes:
    spec = LotSpec(lot_id="E1", wafers=("W01",), die_diameter=20, sites=1, tests=tuple(default_tests(2)), seed=3)
    return write_lot(spec, tmp_path_factory.mktemp("err-stdf")).paths[0].read_bytes()


def parser_message(raw: bytes) -> str:
    """What the STDF reader itself says about these bytes."""

    class Sink:
        def begin(self, header):
            pass

        def rows(self, table, cols):
            pass

    with pytest.raises(StdfError) as ei:
        parse(raw, Sink(), ReaderOptions())
    return str(ei.value)


def test_400_malformed_body_and_unsupported_format(make_app, stdf) -> None:
    app, client, tokens = make_app()
    h = {"Authorization": f"Bearer {tokens['full']}"}
    r = client.post(
        "/v1/classify", content=b'{"wafer_id": "W1", "grid": [[1, 2', headers={**h, "content-type": "application/json"}
    )
    assert "JSON decode error" in check_problem(r, 400, "bad_request", "/v1/classify")["detail"]
    r = client.post("/v1/classify", json={"wafer_id": "W1"}, headers=h)
    body = check_problem(r, 400, "bad_request", "/v1/classify")
    assert body["detail"] == (
        "no map in the body: give one of map_data (base64 STDF), dies, grid, lot_id + wafer_id (+ snapshot_job_id)"
    )
    r = client.post("/v1/classify", json={"wafer_id": "W01", "map_data": "***", "format": "stdf"}, headers=h)
    assert check_problem(r, 400, "bad_request", "/v1/classify")["detail"] == "map_data is not valid base64"
    data = base64.b64encode(stdf).decode()
    r = client.post("/v1/classify", json={"wafer_id": "W01", "map_data": data, "format": "klarf"}, headers=h)
    assert check_problem(r, 400, "bad_request", "/v1/classify")["detail"] == (
        "unsupported format 'klarf': only 'stdf' (optionally gzip'd) is accepted"
    )
    r = client.post("/v1/batch", json={"maps": {"wafer_id": "W01"}}, headers=h)
    assert (
        check_problem(r, 400, "bad_request", "/v1/batch")["detail"]
        == "maps must be a non-empty list of classify bodies"
    )


def test_413_body_past_the_bound(make_app) -> None:
    app, client, tokens = make_app(patterns={"max_request_bytes": 2000})
    h = {"Authorization": f"Bearer {tokens['full']}", "content-type": "application/json"}
    big = b'{"wafer_id": "W1", "grid": [' + b",".join([b"[1, 2, 1, 2, 1, 2, 1, 2]"] * 100) + b"]}"
    assert len(big) == 2529
    r = client.post("/v1/classify", content=big, headers=h)
    body = check_problem(r, 413, "payload_too_large", "/v1/classify")
    assert body["detail"] == "the request body has 2529 bytes; at most 2000 on /v1/classify"

    def chunks():  # no Content-Length (the test transport hands the app one body message)
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    r = client.post("/v1/batch", content=chunks(), headers=h)
    body = check_problem(r, 413, "payload_too_large", "/v1/batch")
    assert body["detail"] == "the request body has 2529 bytes; at most 2000 on /v1/batch"
    # under the bound it is classified
    ok = b'{"wafer_id": "W1", "grid": [' + b",".join([b"[1, 2, 1, 2, 1, 2, 1, 2]"] * 10) + b"]}"
    assert client.post("/v1/classify", content=ok, headers=h).status_code == 200


def test_422_carries_the_parsers_message_plain_and_gzipped(make_app, stdf) -> None:
    app, client, tokens = make_app()
    h = {"Authorization": f"Bearer {tokens['full']}"}
    cut = stdf[: len(stdf) // 2 + 3]
    for raw in (cut, gzip.compress(cut), gzip.compress(stdf)[:-40], b"\x1f\x8b\x08\x00garbage-not-deflate"):
        want = "map_data: " + parser_message(raw)
        data = base64.b64encode(raw).decode()
        r = client.post("/v1/classify", json={"wafer_id": "W01", "map_data": data, "format": "stdf"}, headers=h)
        body = check_problem(r, 422, "unprocessable_map", "/v1/classify")
        assert body["detail"] == want
        r = client.post("/v1/batch", json={"maps": [{"wafer_id": "W01", "map_data": data}]}, headers=h)
        assert r.status_code == 200, r.text
        (item,) = r.json()["results"]
        assert (item["wafer_id"], item["error"]["status"], item["error"]["detail"]) == ("W01", 422, want)
    # the whole file, gzip'd: classified
    data = base64.b64encode(gzip.compress(stdf)).decode()
    r = client.post("/v1/classify", json={"wafer_id": "E1_W01", "map_data": data, "format": "stdf"}, headers=h)
    assert r.status_code == 200, r.text


def test_503_with_retry_after_when_the_classification_slots_stay_busy(make_app) -> None:
    app, client, tokens = make_app(patterns={"max_concurrent": 1, "queue_seconds": 0.3})
    h = {"Authorization": f"Bearer {tokens['full']}"}
    svc = app.state.patterns
    real, entered, release = svc.classify, threading.Event(), threading.Event()

    def held(*a, **kw):
        entered.set()
        release.wait(30)
        return real(*a, **kw)

    svc.classify = held
    body = {"wafer_id": "W1", "grid": [[1, 2, 1], [2, 1, 2], [1, 1, 1]]}
    results: list = []
    t = threading.Thread(target=lambda: results.append(client.post("/v1/classify", json=body, headers=h)))
    t.start()
    try:
        assert entered.wait(30)
        t0 = time.monotonic()
        r = client.post("/v1/batch", json={"maps": [body]}, headers=h)
        waited = time.monotonic() - t0
        problem = check_problem(r, 503, "unavailable", "/v1/batch")
        assert problem["detail"] == "1 classification requests are running and this one waited 0.3 s; retry later"
        assert r.headers["retry-after"] == "1"
        assert waited >= 0.3
        assert client.get("/v1/status").status_code == 200  # other routes are answered meanwhile
    finally:
        release.set()
        t.join(60)
        svc.classify = real
    assert results[0].status_code == 200, results[0].text
    assert client.post("/v1/batch", json={"maps": [body]}, headers=h).status_code == 200


def test_body_limit_counts_a_chunked_body_as_it_arrives() -> None:
    import asyncio

    from starlette.exceptions import HTTPException

    from stratum.api.bodylimit import BodyLimit

    read: list[int] = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            read.append(len(msg["body"]))
            if not msg.get("more_body"):
                return

    parts = [b"x" * 400] * 6

    async def receive():
        return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

    mw = BodyLimit(app, ("/v1/batch",), lambda: 1000)
    scope = {"type": "http", "path": "/v1/batch", "headers": []}
    with pytest.raises(HTTPException) as ei:
        asyncio.run(mw(scope, receive, None))
    assert (ei.value.status_code, ei.value.detail) == (
        413,
        "the request body has 1200 bytes; at most 1000 on /v1/batch",
    )
    assert read == [400, 400] and len(parts) == 3  # stopped at the third chunk, the rest never read
    parts[:] = [b"x" * 400] * 2
    read.clear()
    asyncio.run(BodyLimit(app, ("/v1/classify",), lambda: 1000)(scope, receive, None))  # another path: no bound
    assert read == [400, 400]
