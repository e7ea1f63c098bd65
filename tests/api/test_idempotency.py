"""Idempotency-Key on uploads and presigned uploads: a retried request gets the first one's job."""

from __future__ import annotations

import httpx
import pytest

from stratum.ingest.idempotency import fingerprint

from .conftest import strict_json


@pytest.fixture
def app3(make_app, generated):
    app, client, tokens = make_app()
    h = {"Authorization": f"Bearer {tokens['full']}"}
    data = generated.wafer_lot.paths[0].read_bytes()
    return app, client, tokens, h, data


def _upload(client, h, data, key=None, name="lot.stdf"):
    headers = {**h, "Content-Type": "application/octet-stream", **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/uploads", params={"filename": name}, content=data, headers=headers)


def _jobs(client, h):
    return strict_json(client.get("/v1/jobs", params={"limit": 500}, headers=h).text)["items"]


def test_same_key_same_job(app3):
    app, client, tokens, h, data = app3
    a = _upload(client, h, data, "k-1")
    b = _upload(client, h, data, "k-1")
    assert a.status_code == b.status_code == 202
    assert a.json()["job_id"] == b.json()["job_id"] and b.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in a.headers
    assert b.headers["location"] == f"/v1/jobs/{a.json()['job_id']}"
    assert [j["job_id"] for j in _jobs(client, h)] == [a.json()["job_id"]]
    # without a key the same bytes make a second (duplicate) job: the key is what prevents it
    c = _upload(client, h, data)
    assert c.json()["job_id"] != a.json()["job_id"] and len(_jobs(client, h)) == 2


def test_same_key_other_request_is_422(app3):
    app, client, tokens, h, data = app3
    assert _upload(client, h, data, "k-2").status_code == 202
    r = _upload(client, h, data, "k-2", name="other.stdf")
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert len(_jobs(client, h)) == 1


def test_keys_belong_to_one_api_key(app3):
    app, client, tokens, h, data = app3
    a = _upload(client, h, data, "k-3")
    other = {"Authorization": f"Bearer {tokens['ingest']}"}
    b = _upload(client, other, data, "k-3")
    assert b.status_code == 202 and b.json()["job_id"] != a.json()["job_id"]


def test_rejected_request_does_not_use_up_the_key(app3):
    app, client, tokens, h, data = app3
    assert _upload(client, h, b"not stdf at all", "k-4").status_code == 422
    r = _upload(client, h, data, "k-4")
    assert r.status_code == 202 and "idempotent-replayed" not in r.headers


def test_in_progress_is_409_and_bad_key_is_400(app3):
    app, client, tokens, h, data = app3
    key_id = app.state.keys.verify(tokens["full"]).key_id
    app.state.runtime.idempotency.claim(
        "default", key_id, "upload", "k-5", fingerprint("lot.stdf", len(data)), "job_00000000000000000000000000"
    )
    r = _upload(client, h, data, "k-5")
    assert r.status_code == 409 and "still being processed" in r.json()["detail"]
    r = _upload(client, h, data, "has space")
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["detail"]
    assert _jobs(client, h) == []


def test_presign_same_key_same_job(app3):
    app, client, tokens, h, data = app3
    body = {"filename": "big.stdf", "size": len(data)}
    a = client.post("/v1/uploads/presign", json=body, headers={**h, "Idempotency-Key": "p-1"})
    b = client.post("/v1/uploads/presign", json=body, headers={**h, "Idempotency-Key": "p-1"})
    assert a.json()["job"]["job_id"] == b.json()["job"]["job_id"] and a.json()["key"] == b.json()["key"]
    r = client.put(b.json()["upload_url"], content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    assert [j["status"] for j in _jobs(client, h)] == ["succeeded"]


class LoseFirstResponse(httpx.BaseTransport):
    """The request reaches the real app, which creates the job, but the answer is lost on the way back."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.requests = inner, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if len(self.requests) == 1:
            response.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_sdk_retried_upload_creates_one_job(app3, generated, sdk_module):
    app, client, tokens, h, data = app3
    flaky = LoseFirstResponse(client._transport)
    http = httpx.Client(transport=flaky, base_url="http://testserver")
    c = sdk_module.Client(api_key=tokens["full"], base_url="http://testserver", http_client=http, backoff=0.001)
    job = c.upload(generated.wafer_lot.paths[0], wait=True, timeout=60)
    assert job.status == "succeeded"
    posts = [r for r in flaky.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    assert [j["job_id"] for j in _jobs(client, h)] == [job.job_id]
