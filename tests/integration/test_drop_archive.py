"""The drop folder after a job: the file leaves ``incoming/`` for ``processed/`` or ``failed/`` (+ error json),
never overwriting, once; the same service on the local runtime (directory + SQLite) and on AWS (S3 + DynamoDB,
moto). Also the presigned-upload expiry sweep with a controlled clock, and a late upload after expiry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.ingest.drop import DropObject, RetryableIngestError
from stratum.ingest.watcher import LOCAL_BUCKET, DropWatcher
from stratum.storage.objectstore import ObjectStore


@pytest.fixture(scope="module")
def lot_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stdf")
    tests = tuple(default_tests(3))
    spec = LotSpec(lot_id="ARC-LOT", wafers=("W1", "W2"), files=2, die_diameter=6, seed=3, tests=tests)
    return [p.read_bytes() for p in write_lot(spec, d).paths]


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.aws)])
def env(request, tmp_path):
    """(runtime, bucket name the drop processor records)"""
    if request.param == "local":
        rt = request.getfixturevalue("runtime")
        yield rt, LOCAL_BUCKET
    else:
        stack = request.getfixturevalue("aws_stack")
        rt = stack.runtime()
        yield rt, stack.drop_bucket
        rt.close()


def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [i.key for i in store.list(prefix) if i.key.split("/", 1)[0] in ("incoming", "processed", "failed")]


def drop(rt, bucket: str, key: str, data: bytes):
    rt.drop_store.put_bytes(key, data)
    return rt.drop_processor.handle(DropObject(bucket, key))


def test_good_file_to_processed_bad_file_to_failed_with_its_error(env, lot_files) -> None:
    rt, bucket = env
    good = drop(rt, bucket, "incoming/default/line1/ARC-LOT_1.stdf", lot_files[0])
    assert (good.job.status, good.ran) == ("succeeded", True)
    assert good.moved_to == "processed/default/line1/ARC-LOT_1.stdf"
    bad_bytes = lot_files[1][: len(lot_files[1]) // 2 + 3]  # a transfer cut inside a record
    bad = drop(rt, bucket, "incoming/default/line1/cut.stdf", bad_bytes)
    assert (bad.job.status, bad.job.error.code) == ("failed", "truncated")
    assert bad.moved_to == "failed/default/line1/cut.stdf"
    assert keys(rt.drop_store) == [
        "failed/default/line1/cut.stdf",
        "failed/default/line1/cut.stdf.error.json",
        "processed/default/line1/ARC-LOT_1.stdf",
    ]
    assert rt.drop_store.get_bytes("processed/default/line1/ARC-LOT_1.stdf") == lot_files[0]
    assert rt.drop_store.get_bytes("failed/default/line1/cut.stdf") == bad_bytes
    report = json.loads(rt.drop_store.get_bytes("failed/default/line1/cut.stdf.error.json"))
    job = rt.catalog.get_job("default", bad.job.job_id)
    assert report == {
        "job_id": job.job_id,
        "workspace": "default",
        "file_name": "cut.stdf",
        "dropped_as": "incoming/default/line1/cut.stdf",
        "moved_to": "failed/default/line1/cut.stdf",
        "status": "failed",
        "error": job.error.model_dump(mode="json", exclude_none=True),
        "failed_at": job.public()["finished_at"],
        "moved_at": report["moved_at"],
    }
    assert report["error"]["code"] == "truncated" and report["error"]["offset"] == job.error.offset > 0
    assert datetime.fromisoformat(report["moved_at"]) >= job.finished_at
    # the jobs say where their files went
    assert rt.catalog.get_job("default", good.job.job_id).source.archived_key == good.moved_to
    assert job.source.archived_key == "failed/default/line1/cut.stdf"
    assert job.public()["source"]["archived_key"] == "failed/default/line1/cut.stdf"
    # a redelivery of the same object (SQS at-least-once): same job, nothing moves again
    src = good.job.source
    redelivered = DropObject(bucket, src.key, version_id=src.version_id, etag=src.etag, size=good.job.size)
    again = rt.drop_processor.handle(redelivered)
    assert again.job.job_id == good.job.job_id and again.ran is False and again.moved_to is None
    assert len(rt.catalog.list_jobs("default")[0]) == 2


def test_a_taken_name_is_never_overwritten(env, lot_files) -> None:
    rt, bucket = env
    first = drop(rt, bucket, "incoming/default/lot.stdf", lot_files[0])
    second = drop(rt, bucket, "incoming/default/lot.stdf", lot_files[1])  # the same path, another file
    assert second.job.job_id != first.job.job_id and second.job.status == "succeeded"
    assert second.moved_to == f"processed/default/lot.{second.job.job_id}.stdf"
    third = drop(rt, bucket, "incoming/default/again/lot.stdf", lot_files[1])  # that file once more elsewhere
    assert third.job.status == "duplicate" and third.job.duplicate_of == second.job.job_id
    assert third.moved_to == "processed/default/again/lot.stdf"
    assert keys(rt.drop_store) == sorted(["processed/default/lot.stdf", second.moved_to, third.moved_to])
    assert rt.drop_store.get_bytes("processed/default/lot.stdf") == lot_files[0]
    assert rt.drop_store.get_bytes(second.moved_to) == lot_files[1]


def test_a_file_whose_job_ended_before_the_move_is_moved_not_ingested_again(env, lot_files, monkeypatch) -> None:
    rt, bucket = env
    store = rt.drop_store
    real_move = store.move

    def crash(key, new_key):
        raise KeyboardInterrupt("the process died between the job's end and the move")

    monkeypatch.setattr(store, "move", crash)
    with pytest.raises(KeyboardInterrupt):
        drop(rt, bucket, "incoming/default/crash.stdf", lot_files[0])
    monkeypatch.setattr(store, "move", real_move)
    (job,), _ = rt.catalog.list_jobs("default")
    assert job.status == "succeeded" and keys(store, "incoming/") == ["incoming/default/crash.stdf"]
    res = rt.drop_processor.handle(DropObject(bucket, "incoming/default/crash.stdf"))  # the restart's scan
    assert (res.job.job_id, res.ran, res.moved_to) == (job.job_id, False, "processed/default/crash.stdf")
    assert len(rt.catalog.list_jobs("default")[0]) == 1
    assert keys(store) == ["processed/default/crash.stdf"]


def test_a_job_that_will_be_retried_leaves_its_file_in_place(env, lot_files, monkeypatch) -> None:
    rt, bucket = env
    store = rt.drop_store
    real_open = store.open_read
    monkeypatch.setattr(store, "open_read", lambda key: (_ for _ in ()).throw(OSError("connection reset")))
    with pytest.raises(RetryableIngestError):
        drop(rt, bucket, "incoming/default/flaky.stdf", lot_files[0])
    assert keys(store) == ["incoming/default/flaky.stdf"]
    monkeypatch.setattr(store, "open_read", real_open)
    res = rt.drop_processor.handle(DropObject(bucket, "incoming/default/flaky.stdf"))
    assert (res.job.status, res.ran, res.moved_to) == ("succeeded", True, "processed/default/flaky.stdf")


def test_inbound_hook_ingest_answers_for_a_file_the_drop_folder_moved_already(env, lot_files) -> None:
    rt, bucket = env
    rt.drop_store.put_bytes("incoming/alpha/mes/m.stdf", lot_files[0])
    out = rt._ingest_drop_key("alpha", "mes/m.stdf")
    assert out["status"] == "succeeded" and out["moved_to"] == "processed/alpha/mes/m.stdf"
    # the watcher (or S3 notification) got there first, the MES calls afterwards: same job, no 404
    assert rt._ingest_drop_key("alpha", "mes/m.stdf") == out
    from stratum.errors import NotFound

    with pytest.raises(NotFound):
        rt._ingest_drop_key("alpha", "mes/never.stdf")


@pytest.mark.parametrize("name", ["lot.stdf", "x/lot.STD.gz", "lot.std.bz2", "a.b.stdf.zip", "noext"])
def test_job_id_goes_before_the_stdf_suffixes(name) -> None:
    from stratum.ingest.drop import with_job_id

    assert (
        with_job_id(name, "job_1")
        == {
            "lot.stdf": "lot.job_1.stdf",
            "x/lot.STD.gz": "x/lot.job_1.STD.gz",
            "lot.std.bz2": "lot.job_1.std.bz2",
            "a.b.stdf.zip": "a.b.job_1.stdf.zip",
            "noext": "noext.job_1",
        }[name]
    )


def test_local_watcher_announces_each_file_once_across_restarts(runtime, lot_files) -> None:
    rt = runtime
    incoming = rt.settings.data_dir / "incoming" / "default"
    incoming.mkdir(parents=True)
    (incoming / "a.stdf").write_bytes(lot_files[0])
    announced = []
    w = DropWatcher(rt.drop_processor, on_job=announced.append)
    assert [j.status for j in w.run_until_idle()] == ["succeeded"]
    assert (rt.settings.data_dir / "processed" / "default" / "a.stdf").read_bytes() == lot_files[0]
    assert not (incoming / "a.stdf").exists()
    restarted = DropWatcher(rt.drop_processor, on_job=announced.append)
    assert restarted.run_until_idle() == []
    assert [j.file_name for j in announced] == ["a.stdf"]


# --------------------------------------------------------------------------------------- presigned expiry


def test_presigned_upload_expiry_sweep_with_a_controlled_clock(env, lot_files) -> None:
    rt, bucket = env
    svc = rt.uploads
    rt.catalog.ensure_workspace("default")
    rt.catalog.ensure_workspace("beta")
    never = svc.presign("default", "never.stdf", None, "http://127.0.0.1:1")
    arrived = svc.presign("beta", "arrived.stdf", None, "http://127.0.0.1:1")
    rt.drop_store.put_bytes(arrived["key"], lot_files[0])  # uploaded, its notification not handled yet
    expiry = datetime.fromisoformat(never["expires_at"])
    grace = rt.settings.input_limits.presign_grace_seconds
    assert grace == 900
    assert svc.sweep(now=expiry) == {}
    assert svc.sweep(now=expiry + timedelta(seconds=grace)) == {}
    assert svc.sweep(now=expiry + timedelta(seconds=grace + 1)) == {"default": [never["job"].job_id]}
    job = rt.catalog.get_job("default", never["job"].job_id)
    assert (job.status, job.error.code) == ("failed", "upload_expired")
    assert job.error.message == f"no file was uploaded before the upload URL expired at {expiry.isoformat()}"
    assert rt.catalog.get_job("beta", arrived["job"].job_id).status == "queued"
    assert svc.sweep(now=expiry + timedelta(days=1)) == {}  # idempotent
    # the upload arrives after all: not ingested, the job stays expired, the file is kept in failed/
    late = drop(rt, bucket, never["key"], lot_files[1])
    assert (late.job.job_id, late.job.status, late.job.error.code, late.ran) == (
        never["job"].job_id,
        "failed",
        "upload_expired",
        False,
    )
    rest = never["key"].removeprefix("incoming/")
    assert late.moved_to == f"failed/{rest}"
    report = json.loads(rt.drop_store.get_bytes(f"failed/{rest}.error.json"))
    assert report["error"]["code"] == "upload_expired"
    assert report["note"].startswith("this file arrived after its upload job had expired, so it was not ingested")
    assert late.job.lot_id is None and late.job.parts is None
