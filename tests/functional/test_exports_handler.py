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
    # the lake bucket's lifecycle rule expires objects by this tag (infra: StorageConstruct.export_expiry)
    tags = s3.get_object_tagging(Bucket=stack.lake_bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "stratum-lifecycle", "Value": "export"}]
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


# What the exports and API functions have on AWS: their layers ship DuckDB and nanoarrow but no pyarrow
# (layers/layers.json), so the Arrow paths run in a child process whose imports of pyarrow (and pandas, which
# would pull it in) fail as where they are not installed (sql.arrow_encoder "auto" picks nanoarrow).
NO_PYARROW = r"""
import importlib.util, json, sys
from dataclasses import dataclass

for name in ("pyarrow", "pandas"):  # not installed: find_spec gives None, import raises ImportError
    sys.modules[name] = None

@dataclass
class Ctx:
    function_name: str = "stratum"
    memory_limit_in_mb: int = 4096
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stratum"
    aws_request_id: str = "6f1d8a3e-1c2b-4d5e-8f90-a1b2c3d4e5f6"

def load(name):
    spec = importlib.util.spec_from_file_location(f"fn_{name}", f"{sys.argv[1]}/functions/{name}/handler.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

calls = json.load(sys.stdin)
out = {"exports": load("exports").handler(calls["exports"], Ctx())}
api = load("api").handler(calls["sql"], Ctx())
out["sql"] = {k: api[k] for k in ("statusCode", "body", "isBase64Encoded")}
out["sql"]["headers"] = {k.lower(): v for k, v in api["headers"].items()}
out["pyarrow_loaded"] = any(m.split(".")[0] == "pyarrow" and v is not None for m, v in sys.modules.items())
print(json.dumps(out))
"""


def sql_event(token: str, body: dict) -> dict:
    ev = json.loads((ROOT / "events" / "api" / "get_lots.json").read_text())
    ev.update(
        path="/v1/sql",
        httpMethod="POST",
        body=json.dumps(body),
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
        pathParameters={"proxy": "v1/sql"},
    )
    ev["requestContext"].update(path="/prod/v1/sql", httpMethod="POST")
    headers = {"Accept": "application/vnd.apache.arrow.stream", "Content-Type": "application/json"}
    headers["Authorization"] = f"Bearer {token}"
    ev["headers"].update(headers)
    ev["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return ev


def test_arrow_export_and_sql_arrow_page_without_pyarrow(deployed):
    import base64
    import subprocess
    import sys

    import pyarrow as pa

    stack, rt, fn, s3 = deployed
    q = "SELECT * FROM results ORDER BY part_id, test_num"
    with rt.engine.session("default") as ses:
        ((n, h),) = ses.rows(CHECKSUM.format(q=q))
        page = [list(r) for r in ses.rows(f"{q} LIMIT 7 OFFSET 3")]
    rec = rt.exports.create("default", fmt="arrow", query=q)
    token = rt.keys.create("default", ["full"], "arrow-test")[0]
    first = rt.sql.run("default", q, limit=3)  # the Arrow page asked for is the one after these 3 rows
    calls = {
        "exports": event_for(rec["export_id"]),
        "sql": sql_event(token, {"query": q, "limit": 7, "cursor": first.next_cursor}),
    }
    proc = subprocess.run(
        [sys.executable, "-c", NO_PYARROW, str(ROOT)],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["pyarrow_loaded"] is False
    assert out["exports"] == {"batchItemFailures": []}

    done = rt.exports.get("default", rec["export_id"])
    assert done["status"] == "succeeded" and done["rows"] == n > 100
    assert done["key"] == f"workspaces/default/exports/{rec['export_id']}/{rec['export_id']}.arrow"
    data = s3.get_object(Bucket=stack.lake_bucket, Key=done["key"])["Body"].read()
    assert len(data) == done["bytes"] and data[:6] == data[-6:] == b"ARROW1"
    tags = s3.get_object_tagging(Bucket=stack.lake_bucket, Key=done["key"])["TagSet"]
    assert tags == [{"Key": "stratum-lifecycle", "Value": "export"}]
    t = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    t.validate(full=True)
    con = duckdb.connect()
    con.register("t", t)
    assert list(con.execute(CHECKSUM.format(q="SELECT * FROM t")).fetchone()) == [n, h]

    sql = out["sql"]
    assert sql["statusCode"] == 200 and sql["isBase64Encoded"] is True
    assert sql["headers"]["content-type"] == "application/vnd.apache.arrow.stream"
    assert sql["headers"]["x-row-count"] == "7" and sql["headers"]["x-truncated"] == "false"
    assert "x-next-cursor" in sql["headers"]
    got = pa.ipc.open_stream(base64.b64decode(sql["body"])).read_all()
    assert [list(r.values()) for r in got.to_pylist()] == page
