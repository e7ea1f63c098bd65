"""The exports Lambda as packaged (functions/exports/handler.py) with the sample event in events/exports/,
against moto: the lake on S3, export records in DynamoDB, the file written by DuckDB and uploaded to the
exports prefix of the lake bucket, a presigned download URL."""

from __future__ import annotations

import copy
import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.settings import get_settings
from tests.conftest import ROOT
from tests.functional.test_ingest_handler import FakeContext, load_handler

pytestmark = pytest.mark.aws
EVENT = ROOT / "events" / "exports" / "export_requested_via_sqs.json"
CHECKSUM = "SELECT count(*) AS n, sum(hash(t))::VARCHAR AS h FROM ({q}) t"


@pytest.fixture
def deployed(aws_stack, monkeypatch, boto_session, tmp_path):
    for k, v in aws_stack.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STRATUM_TMP_DIR", str(tmp_path / "lambda-tmp"))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stratum-exports")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Stratum")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    get_settings.cache_clear()
    lot = write_lot(
        LotSpec(lot_id="EXP-AWS", wafers=("W1", "W2"), die_diameter=10, seed=7, tests=tuple(default_tests(5))),
        tmp_path / "stdf",
    )
    rt = aws_stack.runtime()  # the API's side: ingest, then create export records
    for p in lot.paths:
        assert rt.ingest.ingest_path("default", p).status == "succeeded"
    mod = load_handler("exports")
    yield aws_stack, rt, mod, aws_stack.s3(boto_session)
    if "rt" in mod._state:
        mod._state.pop("rt").close()
    rt.close()
    get_settings.cache_clear()


def event_for(export_id: str, workspace: str = "default") -> dict:
    ev = json.loads(EVENT.read_text())
    body = json.loads(ev["Records"][0]["body"])
    body["detail"]["subject"]["export_id"] = export_id
    body["detail"]["workspace"] = workspace
    ev["Records"][0]["body"] = json.dumps(body)
    return ev


def test_sample_event_is_an_export_request():
    body = json.loads(json.loads(EVENT.read_text())["Records"][0]["body"])
    assert body["source"] == "stratum" and body["detail-type"] == body["detail"]["kind"] == "export.requested"


def test_export_runs_uploads_and_is_idempotent(deployed):
    stack, rt, fn, s3 = deployed
    q = "SELECT * FROM results"
    with rt.engine.session("default") as ses:
        ((n, h),) = ses.rows(CHECKSUM.format(q=q))
    rec = rt.exports.create("default", fmt="parquet", query=q)
    assert fn.handler(event_for(rec["export_id"]), FakeContext(function_name="stratum-exports")) == {
        "batchItemFailures": []
    }
    done = rt.exports.get("default", rec["export_id"])
    assert done["status"] == "succeeded" and done["rows"] == n > 0
    key = f"workspaces/default/exports/{rec['export_id']}/{rec['export_id']}.parquet"
    assert done["key"] == key
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix="workspaces/default/exports/")["Contents"]
    ]
    assert keys == [key]
    data = s3.get_object(Bucket=stack.lake_bucket, Key=key)["Body"].read()
    assert len(data) == done["bytes"]
    assert pq.read_metadata(io.BytesIO(data)).num_rows == n
    con = duckdb.connect()
    con.register("t", pq.read_table(io.BytesIO(data)))
    assert list(con.execute(CHECKSUM.format(q="SELECT * FROM t")).fetchone()) == [n, h]
    url, _ = rt.exports.download_url("default", done, "https://api.example")
    assert url.startswith(stack.endpoint) and "X-Amz-Signature" in url  # presigned S3 GET
    # SQS delivers at least once: the same request again changes nothing
    assert fn.handler(copy.deepcopy(event_for(rec["export_id"])), FakeContext()) == {"batchItemFailures": []}
    assert rt.exports.get("default", rec["export_id"]) == done


def test_failed_export_is_recorded_not_retried(deployed, monkeypatch):
    stack, rt, fn, s3 = deployed
    monkeypatch.setenv("STRATUM_EXPORTS__TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    rec = rt.exports.create("default", fmt="csv", query="SELECT count(*) FROM range(10000000000) a")
    assert fn.handler(event_for(rec["export_id"]), FakeContext()) == {"batchItemFailures": []}
    done = rt.exports.get("default", rec["export_id"])
    assert done["status"] == "failed" and done["error"]["code"] == "query_timeout"
    assert "Contents" not in s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix="workspaces/default/exports/")


def test_unknown_export_and_broken_records(deployed):
    stack, rt, fn, s3 = deployed
    assert fn.handler(event_for("exp_00000000000000000000000000"), FakeContext()) == {"batchItemFailures": []}
    ev = event_for("exp_x")
    ev["Records"][0]["body"] = "not json"
    assert fn.handler(ev, FakeContext()) == {"batchItemFailures": [{"itemIdentifier": ev["Records"][0]["messageId"]}]}
