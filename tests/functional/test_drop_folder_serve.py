"""The drop folder and presigned-upload expiry under a real ``stratum serve`` subprocess (directory + SQLite),
over real HTTP: a good file moves to processed/, a bad one to failed/ with its error report, a presigned
upload that never arrives shows ``upload_expired`` on ``GET /v1/jobs/{id}``, an expired export's file is
deleted (a live one kept), and a restart neither creates a job nor announces a file again (a copy of an
ingested file left in incoming/ is moved, not re-ingested)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from stratum.auth.keys import KeyService
from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.lake.layout import export_key
from stratum.storage.sqlite import SqliteMetadataStore
from tests.delivery.test_serve_restart import free_port

WAIT_S = 90  # a loaded machine: the server's start-up alone can take tens of seconds


def start(data: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "STRATUM_BACKEND": "local",
        "STRATUM_ENVIRONMENT": "dev",
        "STRATUM_INPUT_LIMITS__PRESIGN_SECONDS": "2",
        "STRATUM_INPUT_LIMITS__PRESIGN_GRACE_SECONDS": "1",
        "STRATUM_INPUT_LIMITS__PRESIGN_SWEEP_SECONDS": "0.5",
    }
    cmd = [str(Path(sys.executable).parent / "stratum"), "serve", "--data-dir", str(data), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--interval", "0.2"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("stratum serve did not come up:\n" + log.read_text())


def wait_for(cond, what: str, log: Path):
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def announced(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.startswith("[drop folder]")]


def test_drop_folder_moves_files_and_a_restart_announces_nothing(tmp_path: Path) -> None:
    truth = write_lot(
        LotSpec(lot_id="SRV-LOT", wafers=("W1",), die_diameter=6, seed=7, tests=tuple(default_tests(3))),
        tmp_path / "gen",
    )
    good_bytes = truth.paths[0].read_bytes()
    bad_bytes = good_bytes[: len(good_bytes) // 2 + 3]
    data = tmp_path / "data"
    meta = SqliteMetadataStore(data / "stratum.db")
    token = KeyService(meta).create("default", ["full"], "test")[0]
    meta.close()
    incoming = data / "incoming" / "default"
    (incoming / "line1").mkdir(parents=True)
    (incoming / "line1" / "good.stdf").write_bytes(good_bytes)
    (incoming / "bad.stdf").write_bytes(bad_bytes)

    port, log = free_port(), tmp_path / "serve.log"
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    proc = start(data, port, log)
    try:
        processed, failed = data / "processed" / "default", data / "failed" / "default"
        wait_for(lambda: (processed / "line1" / "good.stdf").exists(), "processed/default/line1/good.stdf", log)
        wait_for(lambda: (failed / "bad.stdf").exists(), "failed/default/bad.stdf", log)
        assert (processed / "line1" / "good.stdf").read_bytes() == good_bytes
        assert (failed / "bad.stdf").read_bytes() == bad_bytes
        assert sorted(p.name for p in failed.iterdir()) == ["bad.stdf", "bad.stdf.error.json"]
        assert not (incoming / "line1" / "good.stdf").exists() and not (incoming / "bad.stdf").exists()

        jobs = {j["file_name"]: j for j in httpx.get(f"{base}/v1/jobs", headers=auth).json()["items"]}
        assert {n: j["status"] for n, j in jobs.items()} == {"good.stdf": "succeeded", "bad.stdf": "failed"}
        assert jobs["good.stdf"]["source"]["archived_key"] == "processed/default/line1/good.stdf"
        assert jobs["bad.stdf"]["source"]["archived_key"] == "failed/default/bad.stdf"
        bad_job = httpx.get(f"{base}/v1/jobs/{jobs['bad.stdf']['job_id']}", headers=auth).json()
        report = json.loads((failed / "bad.stdf.error.json").read_text())
        assert report["job_id"] == bad_job["job_id"]
        assert report["dropped_as"] == "incoming/default/bad.stdf"
        assert report["error"] == {k: v for k, v in bad_job["error"].items() if v is not None}
        assert report["error"]["code"] == "truncated" and report["error"]["offset"] > 0
        assert report["failed_at"] == bad_job["finished_at"]

        # a presigned upload that never arrives: failed, upload_expired, once its URL + grace have passed
        p = httpx.post(f"{base}/v1/uploads/presign", json={"filename": "never.stdf"}, headers=auth).json()
        job_url = f"{base}/v1/jobs/{p['job']['job_id']}"
        assert p["job"]["status"] == "queued"
        expired = wait_for(
            lambda: (j := httpx.get(job_url, headers=auth).json())["status"] == "failed" and j, "upload_expired", log
        )
        assert expired["error"]["code"] == "upload_expired"
        assert expired["error"]["message"].startswith("no file was uploaded before the upload URL expired at ")
        assert len(announced(log)) == 2

        # export files go with their records (exports.retention_days; S3: the lake bucket's lifecycle rule)
        done = {}
        for name in ("kept", "expired"):
            body = {"query": f"SELECT 1 AS {name}", "format": "csv"}
            export_id = httpx.post(f"{base}/v1/exports", json=body, headers=auth).json()["export_id"]
            done[name] = wait_for(
                lambda i=export_id: (
                    (r := httpx.get(f"{base}/v1/exports/{i}", headers=auth).json())["status"] == "succeeded" and r
                ),
                f"export {name}",
                log,
            )
            assert httpx.get(done[name]["download_url"]).text == f"{name}\n1\n"
        key = {n: export_key("default", d["export_id"], f"{d['export_id']}.csv") for n, d in done.items()}
        kept, gone = (data / "lake" / key[n] for n in ("kept", "expired"))
        assert kept.is_file() and gone.is_file()
        meta = SqliteMetadataStore(data / "stratum.db")  # what retention_days later looks like: the record expired
        item = meta.get("WS#default#EXPORT", done["expired"]["export_id"])
        meta.put(item.pk, item.sk, item.data, ttl=int(time.time()) - 1)
        meta.close()
        wait_for(lambda: not gone.exists(), "the expired export's file to be deleted", log)
        assert f"[exports] {key['expired']}: its export expired; deleted" in log.read_text().splitlines()
        time.sleep(1)  # two more sweeps
        assert kept.is_file()
    finally:
        stop(proc)

    # a crash between a job's end and its move leaves the file in incoming/: here, the same bytes again
    (incoming / "line1" / "good.stdf").write_bytes(good_bytes)
    before = len(log.read_text().splitlines())
    proc = start(data, port, log)
    try:
        wait_for(lambda: not (incoming / "line1" / "good.stdf").exists(), "the leftover to be moved", log)
        time.sleep(2)  # ten more scans
        items = httpx.get(f"{base}/v1/jobs", headers=auth).json()["items"]
        assert len(items) == 3  # good, bad, the expired upload: no new job
        assert [ln for ln in log.read_text().splitlines()[before:] if ln.startswith("[drop folder]")] == []
        assert sorted(p.name for p in (data / "processed" / "default" / "line1").iterdir()) == ["good.stdf"]
        assert list((data / "incoming" / "default").rglob("*.stdf")) == []
    finally:
        stop(proc)
