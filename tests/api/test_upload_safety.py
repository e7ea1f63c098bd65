"""Uploads under hostile or failing conditions: bombs, unreadable zips, oversize presigns, replayed
presigned URLs, expired uploads, a full disk, slow parsing next to other requests."""

from __future__ import annotations

import asyncio
import errno
import io
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from stratum.errors import Conflict
from stratum.ingest import inspect as inspect_module
from stratum.settings import InputLimits
from stratum.storage import local as local_store
from tests.bombs import FAR, gzip_bomb
from tests.unit.test_bombs import _patch_method

from .conftest import strict_json

MB = 1 << 20


@pytest.fixture
def app3(make_app):
    limits = InputLimits(max_decompressed_bytes=64 * MB, max_compression_ratio=100, ratio_floor_bytes=8 * MB)
    app, client, tokens = make_app(max_upload_bytes=4 * MB, input_limits=limits)
    return app, client, {"Authorization": f"Bearer {tokens['full']}"}


def _problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert (body["status"], body["code"]) == (status, code)
    return body


def _jobs(client, h) -> list[dict]:
    return strict_json(client.get("/v1/jobs", params={"limit": 500}, headers=h).text)["items"]


def _path(url: str) -> str:
    u = urlsplit(url)
    return f"{u.path}?{u.query}"


def _leftovers(app) -> list[str]:
    root = app.state.runtime.settings.data_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "tmp" in p.name)


def test_gzip_bomb_is_422_on_inspect_and_fails_its_upload_job(app3):
    app, client, h = app3
    bomb = FAR_GZ_BOMB()  # a valid FAR, then 32 MiB of zeros in 32 KB of gzip
    r = client.post("/v1/uploads/inspect", params={"filename": "b.stdf.gz"}, content=bomb, headers=h)
    body = _problem(r, 422, "unprocessable")
    assert body["error"]["code"] == "decompression_limit"
    assert "more than 100 times" in body["detail"]
    r = client.post("/v1/uploads", params={"filename": "b.stdf.gz"}, content=bomb, headers=h)
    assert r.status_code == 202, r.text
    [job] = _jobs(client, h)
    assert (job["status"], job["error"]["code"]) == ("failed", "decompression_limit")


def test_drop_folder_bomb_fails_its_job(app3):
    app, client, h = app3
    rt = app.state.runtime
    (rt.settings.data_dir / "incoming" / "default").mkdir(parents=True)
    (rt.settings.data_dir / "incoming" / "default" / "b.stdf.gz").write_bytes(FAR_GZ_BOMB())
    from stratum.ingest.watcher import DropWatcher

    [job] = DropWatcher(rt.drop_processor).run_until_idle()
    assert (job.status, job.error.code) == ("failed", "decompression_limit")


def FAR_GZ_BOMB() -> bytes:
    import gzip

    return gzip.compress(FAR) + gzip_bomb(32 * MB, member=16 * MB)


@pytest.mark.parametrize(
    ("method", "flag", "reason"),
    [(8, 1, "is encrypted"), (99, 0, "method 99 (AES"), (9, 0, "method 9 (deflate64)")],
    ids=["encrypted", "aes", "deflate64"],
)
def test_unreadable_zip_upload_is_422_with_the_reason(app3, method, flag, reason):
    app, client, h = app3
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.stdf", FAR * 10)
    data = _patch_method(buf.getvalue(), method, flag)
    for route in ("/v1/uploads", "/v1/uploads/inspect"):
        r = client.post(route, params={"filename": "a.stdf.zip"}, content=data, headers=h)
        body = _problem(r, 422, "unprocessable")
        assert reason in body["detail"]
        assert body["error"]["code"] == "unsupported_compression"


def test_presign_refuses_a_declared_size_over_the_maximum(app3):
    app, client, h = app3
    r = client.post("/v1/uploads/presign", json={"filename": "big.stdf", "size": 10 << 40}, headers=h)
    body = _problem(r, 413, "payload_too_large")
    assert body["detail"] == (f"declared size {10 << 40} bytes exceeds the limit of {5 << 30} bytes for one upload")
    assert _jobs(client, h) == []


def _presign(client, h, name="p.stdf", **kw) -> dict:
    r = client.post("/v1/uploads/presign", json={"filename": name, **kw}, headers=h)
    assert r.status_code == 200, r.text
    return strict_json(r.text)


def test_presigned_put_is_single_use_even_when_two_begin_together(app3):
    app, client, h = app3
    p = _presign(client, h)
    q = dict(x.split("=", 1) for x in urlsplit(p["upload_url"]).query.split("&"))
    svc = app.state.runtime.uploads
    first = svc.receive("default", p["job"]["job_id"], int(q["expires"]), q["signature"], None)
    with pytest.raises(Conflict, match="already been used"):  # the second PUT, before the first wrote a byte
        svc.receive("default", p["job"]["job_id"], int(q["expires"]), q["signature"], None)
    first.abort(RuntimeError("test"))
    r = client.put(_path(p["upload_url"]), content=FAR)
    assert "already been used" in _problem(r, 409, "conflict")["detail"]


def test_presigned_put_is_streamed_to_disk(app3, monkeypatch):
    """32 MB through a presigned PUT: the server side never holds the body (old code: a 32 MB buffer)."""
    app, client, h = app3
    monkeypatch.setattr(app.state.runtime.uploads, "after_store", lambda ws, key: None)  # the PUT alone
    p = _presign(client, h, size=32 * MB + len(FAR))
    piece = b"\0" * MB

    async def body():
        yield FAR
        for _ in range(32):
            yield piece

    async def put():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.put(_path(p["upload_url"]), content=body())

    tracemalloc.start()
    try:
        r = asyncio.run(put())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 202, r.text
    assert peak < 12 * MB, peak
    info = app.state.runtime.drop_store.head(p["key"])
    assert info.size == 32 * MB + len(FAR)


def test_presigned_put_over_the_declared_size_is_413_and_keeps_nothing(app3):
    app, client, h = app3
    p = _presign(client, h, size=10)
    r = client.put(_path(p["upload_url"]), content=(b"\0" * MB for _ in range(5)))
    _problem(r, 413, "payload_too_large")
    assert not app.state.runtime.drop_store.exists(p["key"])
    assert _leftovers(app) == []


def test_presigned_upload_that_never_arrives_expires(app3):
    app, client, h = app3
    p = _presign(client, h)
    job_id = p["job"]["job_id"]
    svc = app.state.runtime.uploads
    assert svc.expire_uploads("default") == []  # not yet
    lim = app.state.runtime.settings.input_limits
    expiry = datetime.fromisoformat(p["expires_at"])
    assert svc.expire_uploads("default", now=expiry + timedelta(seconds=lim.presign_grace_seconds)) == []  # grace
    assert svc.expire_uploads("default", now=expiry + timedelta(seconds=lim.presign_grace_seconds + 1)) == [job_id]
    job = strict_json(client.get(f"/v1/jobs/{job_id}", headers=h).text)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "upload_expired"
    assert datetime.fromisoformat(job["expires_at"]) == datetime.fromisoformat(p["expires_at"])


@pytest.fixture
def full_disk(monkeypatch):
    """ENOSPC from every local object store write (fault injection in the writer)."""

    def boom(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_store._LocalWriter, "_write", boom)


def test_upload_on_a_full_disk_is_507_and_leaves_nothing(app3, full_disk):
    app, client, h = app3
    r = client.post("/v1/uploads", params={"filename": "f.stdf"}, content=FAR * 100, headers=h)
    body = _problem(r, 507, "insufficient_storage")
    assert body["detail"].startswith("no space left on the server's storage while storing the upload")
    assert _jobs(client, h) == []
    assert _leftovers(app) == []
    assert list(app.state.runtime.drop_store.list("incoming/")) == []


def test_presigned_put_on_a_full_disk_is_507_and_fails_its_job(app3, full_disk):
    app, client, h = app3
    p = _presign(client, h)
    r = client.put(_path(p["upload_url"]), content=FAR * 100)
    _problem(r, 507, "insufficient_storage")
    job = strict_json(client.get(f"/v1/jobs/{p['job']['job_id']}", headers=h).text)
    assert (job["status"], job["error"]["code"]) == ("failed", "no_space")
    assert _leftovers(app) == []


def test_inspect_has_rate_limit_headers(app3):
    app, client, h = app3
    r = client.post("/v1/uploads/inspect", params={"filename": "x.stdf"}, content=FAR, headers=h)
    assert r.status_code == 200, r.text
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)


def test_inspect_does_not_block_other_requests(app3, monkeypatch):
    """A 1 s parse in inspect; /v1/status meanwhile answers at once (the parse runs in the threadpool)."""
    app, client, h = app3
    real = inspect_module.inspect_input

    def slow(*a, **kw):
        time.sleep(1.0)
        return real(*a, **kw)

    monkeypatch.setattr(inspect_module, "inspect_input", slow)  # the route imports it on first use

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            t0 = time.perf_counter()
            slow_req = asyncio.create_task(
                c.post("/v1/uploads/inspect", params={"filename": "x.stdf"}, content=FAR, headers=h)
            )
            await asyncio.sleep(0.1)
            status = await c.get("/v1/status")
            t_status = time.perf_counter() - t0
            r = await slow_req
            return status.status_code, t_status, r.status_code

    code, t_status, slow_code = asyncio.run(run())
    assert (code, slow_code) == (200, 200)
    assert t_status < 0.6, t_status


def test_an_upload_whose_server_died_before_storing_it_fails_at_restart(app3):
    """The job of a direct upload is created before its object is stored: if the process dies in
    between, the next server start fails it instead of leaving it queued for ever."""
    app, client, h = app3
    svc = app.state.runtime.uploads
    job = svc._new_job("default", "lost.stdf", "upload", 10)  # as if the process died right after this
    assert svc.expire_uploads("default") == []  # a live upload in progress is left alone
    assert svc.expire_uploads("default", orphans_before=datetime.now(UTC)) == [job.job_id]
    out = strict_json(client.get(f"/v1/jobs/{job.job_id}", headers=h).text)
    assert (out["status"], out["error"]["code"]) == ("failed", "upload_interrupted")
