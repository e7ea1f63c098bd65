"""The ingest Lambda, as packaged (functions/ingest/handler.py), with the sample events, against moto:
S3 drop bucket → job in DynamoDB → Parquet on the S3 lake → DuckDB (httpfs) reads it back."""

from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.query.engine import Scope
from stratum.settings import get_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.aws
EVENTS = ROOT / "events" / "ingest"


@dataclass
class FakeContext:
    function_name: str = "stratum-ingest"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stratum-ingest"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(name: str):
    path = ROOT / "functions" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"stratum_fn_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def deployed(aws_stack, monkeypatch, boto_session):
    for k, v in aws_stack.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stratum-ingest")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Stratum")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    get_settings.cache_clear()
    mod = load_handler("ingest")
    yield aws_stack, mod, aws_stack.s3(boto_session)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def stdf_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stdf")
    truth = write_lot(
        LotSpec(
            lot_id="AWS-LOT",
            wafers=("W1", "W2"),
            files=2,
            die_diameter=10,
            seed=5,
            tests=tuple(default_tests(6, n_mpr=1, n_ftr=1)),
        ),
        d,
    )
    return truth


def event_for(name: str, bucket: str, key: str | None = None, head: dict | None = None) -> dict:
    ev = json.loads((EVENTS / name).read_text())
    for rec in ev["Records"]:
        body = json.loads(rec["body"])
        for r in body.get("Records", []):
            r["s3"]["bucket"]["name"] = bucket
            r["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
            if key is not None:
                r["s3"]["object"]["key"] = key
            if head is not None:
                r["s3"]["object"]["eTag"] = head["ETag"].strip('"')
                r["s3"]["object"]["size"] = head["ContentLength"]
                if head.get("VersionId"):
                    r["s3"]["object"]["versionId"] = head["VersionId"]
        if "Bucket" in body:
            body["Bucket"] = bucket
        rec["body"] = json.dumps(body)
    return ev


def put(s3, bucket: str, key: str, data: bytes) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return s3.head_object(Bucket=bucket, Key=key)


def test_s3_put_with_space_and_plus_is_ingested_once(deployed, stdf_files):
    stack, fn, s3 = deployed
    # the sample event's key is URL-encoded: 'LOT+A%2BB+wafer+01.stdf' is 'LOT A+B wafer 01.stdf'
    raw_key = json.loads(json.loads((EVENTS / "s3_put_via_sqs.json").read_text())["Records"][0]["body"])["Records"][0][
        "s3"
    ]["object"]["key"]
    real_key = "incoming/default/LOT A+B wafer 01.stdf"
    head = put(s3, stack.drop_bucket, real_key, stdf_files.paths[0].read_bytes())
    ev = event_for("s3_put_via_sqs.json", stack.drop_bucket, raw_key, head)
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    rt = fn.drop_processor().ingest
    jobs, _ = rt.catalog.list_jobs("default")
    assert [j.status for j in jobs] == ["succeeded"]
    job = jobs[0]
    assert job.source.key == real_key and job.file_name == "LOT A+B wafer 01.stdf"
    assert job.source.version_id == head["VersionId"]
    # Parquet landed in the lake bucket; the raw file moved from incoming/ to processed/ (same bytes)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.lake_bucket)["Contents"]]
    assert any(k.startswith("workspaces/default/lake/results/lot=AWS-LOT/") for k in keys)
    drop_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.drop_bucket)["Contents"]]
    assert drop_keys == ["processed/default/LOT A+B wafer 01.stdf"]
    moved = s3.get_object(Bucket=stack.drop_bucket, Key=drop_keys[0])["Body"].read()
    assert moved == stdf_files.paths[0].read_bytes()
    assert rt.catalog.get_job("default", job.job_id).source.archived_key == drop_keys[0]
    # the same delivery again (SQS at-least-once): same job, no new rows
    assert fn.handler(copy.deepcopy(ev), FakeContext()) == {"batchItemFailures": []}
    jobs, _ = rt.catalog.list_jobs("default")
    assert len(jobs) == 1
    # DuckDB reads the S3 lake through httpfs
    rtm = stack.runtime()
    with rtm.engine.session("default", Scope(lot_id="AWS-LOT")) as s:
        parts, good = s.rows("SELECT part_count, good_count FROM lots")[0]
    in_first_file = stdf_files.parts.file == 0
    assert parts == len({k for k, f in zip(stdf_files.die_keys(), in_first_file, strict=False) if f})
    assert good > 0


def test_second_file_and_workspace_from_key(deployed, stdf_files):
    stack, fn, s3 = deployed
    head = put(s3, stack.drop_bucket, "incoming/team-a/2026/11/file two.stdf", stdf_files.paths[1].read_bytes())
    ev = event_for(
        "s3_put_workspace_gzip_via_sqs.json", stack.drop_bucket, "incoming/team-a/2026/11/file+two.stdf", head
    )
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    cat = fn.drop_processor().ingest.catalog
    jobs, _ = cat.list_jobs("team-a")
    assert [j.status for j in jobs] == ["succeeded"]
    assert cat.list_jobs("default")[0] == []  # the other workspace saw nothing


def test_test_event_and_non_stdf_keys_are_ignored(deployed):
    stack, fn, s3 = deployed
    assert fn.handler(event_for("s3_test_event_via_sqs.json", stack.drop_bucket), FakeContext()) == {
        "batchItemFailures": []
    }
    head = put(s3, stack.drop_bucket, "incoming/default/notes/readme.txt", b"hello")
    ev = event_for("s3_put_not_stdf_via_sqs.json", stack.drop_bucket, head=head)
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    outside = put(s3, stack.drop_bucket, "elsewhere/x.stdf", b"\x02\x00\x00\x0a\x02\x04")
    ev = event_for("s3_put_via_sqs.json", stack.drop_bucket, "elsewhere/x.stdf", outside)
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    assert fn.drop_processor().ingest.catalog.list_jobs("default")[0] == []


def test_bad_stdf_fails_its_job_without_retry(deployed):
    stack, fn, s3 = deployed
    head = put(s3, stack.drop_bucket, "incoming/default/broken.stdf", b"this is not STDF at all" * 4)
    ev = event_for("s3_put_via_sqs.json", stack.drop_bucket, "incoming/default/broken.stdf", head)
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    (job,), _ = fn.drop_processor().ingest.catalog.list_jobs("default")
    assert job.status == "failed" and job.error.code == "not_stdf"
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=stack.drop_bucket)["Contents"])
    assert listed == ["failed/default/broken.stdf", "failed/default/broken.stdf.error.json"]
    report = json.loads(s3.get_object(Bucket=stack.drop_bucket, Key=listed[1])["Body"].read())
    assert (report["job_id"], report["error"]["code"], report["dropped_as"]) == (
        job.job_id,
        "not_stdf",
        "incoming/default/broken.stdf",
    )


def test_too_little_time_left_fails_the_job_cleanly(deployed, stdf_files):
    """Less time left than the cleanup reserve: the job fails with ingest_timeout (not retried: it would
    time out again), nothing reaches the lake, and the function returns normally."""
    stack, fn, s3 = deployed
    head = put(s3, stack.drop_bucket, "incoming/default/slow.stdf", stdf_files.paths[0].read_bytes())
    ev = event_for("s3_put_via_sqs.json", stack.drop_bucket, "incoming/default/slow.stdf", head)
    assert fn.handler(ev, FakeContext(remaining_ms=30_000)) == {"batchItemFailures": []}
    (job,), _ = fn.drop_processor().ingest.catalog.list_jobs("default")
    assert job.status == "failed" and job.error.code == "ingest_timeout"
    listed = s3.list_objects_v2(Bucket=stack.lake_bucket).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"].endswith(".parquet")] == []


def test_transient_failure_is_reported_for_redelivery(deployed, stdf_files, monkeypatch):
    stack, fn, s3 = deployed
    head = put(s3, stack.drop_bucket, "incoming/default/flaky.stdf", stdf_files.paths[0].read_bytes())
    ev = event_for("s3_put_via_sqs.json", stack.drop_bucket, "incoming/default/flaky.stdf", head)
    drop = fn.drop_processor()
    real_open = drop.drop.open_read
    calls = {"n": 0}

    def flaky(key):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("connection reset by peer")
        return real_open(key)

    monkeypatch.setattr(drop.drop, "open_read", flaky)
    res = fn.handler(ev, FakeContext())
    assert res == {"batchItemFailures": [{"itemIdentifier": ev["Records"][0]["messageId"]}]}
    (job,), _ = drop.ingest.catalog.list_jobs("default")
    assert job.status == "failed" and job.error.code == "input_unreadable"
    # it will be retried: the file stays in incoming/
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.drop_bucket)["Contents"]]
    assert listed == ["incoming/default/flaky.stdf"]
    # SQS delivers it again: the same job runs and succeeds
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": []}
    (job,), _ = drop.ingest.catalog.list_jobs("default")
    assert job.status == "succeeded" and job.attempts == 2
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.drop_bucket)["Contents"]]
    assert listed == ["processed/default/flaky.stdf"]


def test_scheduled_event_expires_presigned_uploads_that_never_arrived(deployed):
    """The stack's EventBridge schedule sends events/ingest/scheduled_expire_uploads.json; uploads whose URL
    expired more than the grace period ago fail with upload_expired, the rest are left alone."""
    stack, fn, s3 = deployed
    rt = fn.runtime()
    rt.catalog.ensure_workspace("default")
    old = rt.uploads.presign("default", "never.stdf", 10, "https://api.example")
    fresh = rt.uploads.presign("default", "fresh.stdf", 10, "https://api.example")
    assert old["upload_url"].startswith(f"{stack.endpoint}/{stack.drop_bucket}/incoming/default/uploads/")
    # age the first one: its URL expired an hour ago (grace: 15 min)
    job, version = rt.catalog.get_job_v("default", old["job"].job_id)
    job.expires_at = datetime.now(UTC) - timedelta(hours=1)
    rt.catalog.save_job(job, version)
    event = json.loads((EVENTS / "scheduled_expire_uploads.json").read_text())
    assert event == {"task": "expire_uploads"}
    assert fn.handler(event, FakeContext()) == {"expired": {"default": [old["job"].job_id]}}
    done = rt.catalog.get_job("default", old["job"].job_id)
    assert (done.status, done.error.code) == ("failed", "upload_expired")
    assert rt.catalog.get_job("default", fresh["job"].job_id).status == "queued"
    assert fn.handler(event, FakeContext()) == {"expired": {}}


def test_events_are_real_shaped():
    for p in sorted(Path(EVENTS).glob("*_via_sqs.json")):
        ev = json.loads(p.read_text())
        rec = ev["Records"][0]
        assert rec["eventSource"] == "aws:sqs" and "messageId" in rec
        json.loads(rec["body"])
