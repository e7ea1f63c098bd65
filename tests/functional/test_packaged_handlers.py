"""Each Lambda handler, as packaged by the CDK app (the asset folder: handler.py + a copy of `stratum`),
invoked with the sample events in events/ against moto, in a fresh interpreter that imports `stratum`
from the asset, not from the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from infra.stratum_infra import assets as infra_assets

from tests.conftest import ROOT

pytestmark = [pytest.mark.aws]

RUNNER = textwrap.dedent("""
    import importlib.util, json, sys
    asset, event_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, asset)  # exactly what Lambda does with the function's code folder
    import stratum
    assert stratum.__file__.startswith(asset), stratum.__file__
    spec = importlib.util.spec_from_file_location("handler", asset + "/handler.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    class Ctx:
        function_name = "fn"; memory_limit_in_mb = 1024; aws_request_id = "req-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    print("RESULT " + json.dumps(mod.handler(json.load(open(event_path)), Ctx())))
""")


def _asset(name: str, tmp_path):
    return infra_assets.assemble_function_asset(name, ROOT, tmp_path / "assets").path


def _run(asset, event: dict, env: dict, tmp_path) -> dict:
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps(event))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    full_env.update(env)
    full_env.update(
        {
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "test",
            "POWERTOOLS_METRICS_NAMESPACE": "Stratum",
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(asset), str(ev)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_ingest_handler_as_packaged(aws_stack, boto_session, tmp_path):
    from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot

    truth = write_lot(
        LotSpec(
            lot_id="PKG-LOT", wafers=("W1",), die_diameter=8, seed=3, tests=tuple(default_tests(4, n_mpr=0, n_ftr=0))
        ),
        tmp_path / "stdf",
    )
    s3 = aws_stack.s3(boto_session)
    key = "incoming/default/LOT A+B wafer 01.stdf"
    s3.put_object(Bucket=aws_stack.drop_bucket, Key=key, Body=truth.paths[0].read_bytes())
    head = s3.head_object(Bucket=aws_stack.drop_bucket, Key=key)
    event = json.loads((ROOT / "events" / "ingest" / "s3_put_via_sqs.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    obj = body["Records"][0]["s3"]
    obj["bucket"]["name"] = aws_stack.drop_bucket
    obj["object"].update(
        {"eTag": head["ETag"].strip('"'), "size": head["ContentLength"], "versionId": head["VersionId"]}
    )
    event["Records"][0]["body"] = json.dumps(body)
    res = _run(_asset("ingest", tmp_path), event, aws_stack.env(), tmp_path)
    assert res == {"batchItemFailures": []}
    lot = aws_stack.runtime().catalog.get_lot("default", "PKG-LOT")
    assert len(lot.members) == 1


def test_api_handler_as_packaged(aws_stack, tmp_path):
    events = sorted((ROOT / "events" / "api").glob("*status*.json"))
    if not events:
        pytest.skip("no API Gateway status event in events/api/")
    event = json.loads(events[0].read_text())
    res = _run(_asset("api", tmp_path), event, {**aws_stack.env(), "STRATUM_API_ROOT_PATH": "/prod"}, tmp_path)
    assert res["statusCode"] == 200
    body = json.loads(res["body"])
    assert body["status"] == "ok" and body["backend"] == "aws" and body["metadata_store"] == "ok"


def test_delivery_handler_as_packaged(aws_stack, boto_session, tmp_path):
    """EventBridge envelope via SQS -> recorded and attempted in the same invocation, signed (KMS-sealed
    secret) and verified with standardwebhooks; then the scheduled tick runs the retry."""
    import standardwebhooks

    from stratum.delivery.webhooks import WebhookIn
    from stratum.devtools.webhook_receiver import Receiver
    from stratum.runtime import Runtime
    from tests.fixtures.aws import REGION

    key_id = boto_session.client("kms", region_name=REGION, endpoint_url=aws_stack.endpoint).create_key()[
        "KeyMetadata"
    ]["KeyId"]
    env = {**aws_stack.env(), "STRATUM_AWS__DELIVERY_KMS_KEY_ID": key_id, "STRATUM_WEBHOOK_ALLOW_CIDRS": "127.0.0.1/32"}
    settings = aws_stack.settings.model_copy(
        update={
            "aws": aws_stack.settings.aws.model_copy(update={"delivery_kms_key_id": key_id}),
            "webhook_allow_cidrs": "127.0.0.1/32",
        }
    )
    receiver = Receiver(script=lambda n, r: (503, {"Retry-After": "3"}) if n == 1 else (200, {})).start()
    try:
        rt = Runtime.from_settings(settings)
        _, secret = rt.delivery.webhooks.create(
            "default", WebhookIn(name="mes", target_url=receiver.url, events=["monitor.fired"])
        )
        event = json.loads((ROOT / "events" / "delivery" / "monitor_fired_via_sqs.json").read_text())
        asset = _asset("delivery", tmp_path)
        assert _run(asset, event, env, tmp_path) == {"batchItemFailures": []}
        (first,) = receiver.wait_for(1)  # the retry waits for Retry-After (3 s)
        assert first.headers["webhook-id"] == "evt_01KMONITORFIRED0000000000"
        time.sleep(3.1)
        tick = json.loads((ROOT / "events" / "delivery" / "scheduled_tick.json").read_text())
        assert _run(asset, tick, env, tmp_path) == {"attempted": 1}
        assert _run(asset, event, env, tmp_path) == {"batchItemFailures": []}  # SQS redelivery: recorded once
        assert len(receiver.received) == 2
        second = receiver.received[1]
        body = standardwebhooks.Webhook(secret).verify(second.body, second.headers)
        assert body["type"] == "monitor.fired" and body["data"]["subject"]["lot_id"] == "L1"
        (n,), _ = rt.delivery.inbox.list("default")
        assert n.event_id == "evt_01KMONITORFIRED0000000000"
        (d,), _ = rt.delivery.webhooks.list_deliveries("default")
        assert [a.status_code for a in d.attempts] == [503, 200]
    finally:
        receiver.stop()


def test_exports_handler_as_packaged(aws_stack, boto_session, tmp_path):
    """export.requested via SQS -> the packaged exports function writes the Parquet with DuckDB and uploads it to
    the exports prefix of the lake bucket."""
    from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot

    truth = write_lot(
        LotSpec(lot_id="PKG-EXP", wafers=("W1",), die_diameter=8, seed=4, tests=tuple(default_tests(3))),
        tmp_path / "stdf",
    )
    rt = aws_stack.runtime()
    assert rt.ingest.ingest_path("default", truth.paths[0]).status == "succeeded"
    rec = rt.exports.create("default", fmt="parquet", query="SELECT * FROM parts")
    event = json.loads((ROOT / "events" / "exports" / "export_requested_via_sqs.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    body["detail"]["subject"]["export_id"] = rec["export_id"]
    event["Records"][0]["body"] = json.dumps(body)
    env = {**aws_stack.env(), "STRATUM_TMP_DIR": str(tmp_path / "lambda-tmp")}
    assert _run(_asset("exports", tmp_path), event, env, tmp_path) == {"batchItemFailures": []}
    done = rt.exports.get("default", rec["export_id"])
    with rt.engine.session("default") as ses:
        ((n,),) = ses.rows("SELECT count(*) FROM parts")
    assert done["status"] == "succeeded" and done["rows"] == n > 0
    head = aws_stack.s3(boto_session).head_object(Bucket=aws_stack.lake_bucket, Key=done["key"])
    assert head["ContentLength"] == done["bytes"]
    rt.close()
