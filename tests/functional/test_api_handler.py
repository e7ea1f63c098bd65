"""The API Lambda as packaged (functions/api/handler.py: API Gateway REST proxy → Mangum → FastAPI) with
the sample events in events/api/, on the local backend (settings from the environment)."""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from stratum.settings import get_settings
from stratum.stdf.reader import parse
from tests.conftest import ROOT
from tests.support import CollectSink

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
EVENTS = ROOT / "events" / "api"
HANDLER = ROOT / "functions" / "api" / "handler.py"


@dataclass
class FakeContext:
    function_name: str = "stratum-api"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stratum-api"
    aws_request_id: str = "6f1d8a3e-1c2b-4d5e-8f90-a1b2c3d4e5f6"


def load_handler():
    spec = importlib.util.spec_from_file_location("stratum_fn_api", HANDLER)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def event(name: str, token: str | None = None, **changes) -> dict:
    ev = json.loads((EVENTS / name).read_text())
    if token is not None:
        text = json.dumps(ev).replace("{{API_KEY}}", token)
        ev = json.loads(text)
    for k, v in changes.items():
        ev[k] = v
    return ev


class Lambda:
    def __init__(self, mod, data_dir: Path) -> None:
        self.mod = mod
        self.data_dir = data_dir

    def __call__(self, ev: dict) -> dict:
        out = self.mod.handler(ev, FakeContext())
        assert set(out) >= {"statusCode", "headers", "body", "isBase64Encoded"}
        return out

    @property
    def app(self):
        return self.mod._state["mangum"].app

    def key(self, scopes=("full",)) -> str:
        if "mangum" not in self.mod._state:
            self(event("get_status.json"))
        return self.app.state.keys.create("default", list(scopes), "lambda-test")[0]


def _configure(monkeypatch, tmp_path, **env) -> None:
    monkeypatch.setenv("STRATUM_BACKEND", "local")
    monkeypatch.setenv("STRATUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stratum-api")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Stratum")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.delenv("STRATUM_API_ROOT_PATH", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()


@pytest.fixture
def lam(monkeypatch, tmp_path):
    _configure(monkeypatch, tmp_path)
    mod = load_handler()
    mod._state.clear()
    yield Lambda(mod, tmp_path / "data")
    if "mangum" in mod._state:
        mod._state["mangum"].app.state.runtime.close()
    mod._state.clear()
    get_settings.cache_clear()


@pytest.fixture
def staged(monkeypatch, tmp_path):
    """The handler with the REST API stage prefix configured (STRATUM_API_ROOT_PATH=/prod)."""
    _configure(monkeypatch, tmp_path, STRATUM_API_ROOT_PATH="/prod")
    mod = load_handler()
    mod._state.clear()
    yield Lambda(mod, tmp_path / "data")
    if "mangum" in mod._state:
        mod._state["mangum"].app.state.runtime.close()
    mod._state.clear()
    get_settings.cache_clear()


def _json(out: dict) -> dict:
    """The JSON body. problem+json is not among Mangum's text types, so it comes base64-encoded (API Gateway
    decodes it: the REST API's binary media types include */*)."""
    body = out["body"]
    if out["isBase64Encoded"]:
        assert out["headers"]["content-type"] == "application/problem+json"
        body = base64.b64decode(body)
    return json.loads(body)


def _upload(lam: Lambda, token: str) -> dict:
    out = lam(event("post_upload.json", token))
    assert out["statusCode"] == 202, out["body"]
    return _json(out)


def test_sample_events_are_api_gateway_rest_proxy_events():
    for path in sorted(EVENTS.glob("*.json")):
        ev = json.loads(path.read_text())
        assert ev["resource"] == "/{proxy+}", path.name
        assert {
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "requestContext",
            "body",
            "isBase64Encoded",
        } <= set(ev), path.name
        rc = ev["requestContext"]
        assert rc["path"] == f"/{rc['stage']}{ev['path']}", path.name
        assert rc["httpMethod"] == ev["httpMethod"] and rc["requestId"] and rc["identity"]["sourceIp"]
        if ev["queryStringParameters"]:
            assert ev["multiValueQueryStringParameters"] == {k: [v] for k, v in ev["queryStringParameters"].items()}


def test_status(lam):
    out = lam(event("get_status.json"))
    assert out["statusCode"] == 200
    body = _json(out)
    assert (body["status"], body["backend"], body["metadata_store"]) == ("ok", "local", "ok")
    assert out["headers"]["content-type"] == "application/json"
    assert "server-timing" in out["headers"]
    assert lam.mod._state["mangum"].app.state.runtime.settings.data_dir == lam.data_dir


def test_app_is_built_once_per_container(lam):
    lam(event("get_status.json"))
    first = lam.mod._state["mangum"]
    lam(event("get_status.json"))
    assert lam.mod._state["mangum"] is first


def test_lots_needs_the_key(lam):
    out = lam(event("get_lots.json", "stm_test_not_a_key"))
    assert out["statusCode"] == 401
    assert out["headers"]["content-type"] == "application/problem+json"
    assert out["headers"]["www-authenticate"].startswith("Bearer")
    assert _json(out)["code"] == "unauthorized"
    ev = event("get_lots.json")
    del ev["headers"]["Authorization"]
    del ev["multiValueHeaders"]["Authorization"]
    assert lam(ev)["statusCode"] == 401


def test_upload_base64_body_then_list_lots(lam):
    token = lam.key()
    job = _upload(lam, token)
    assert (job["status"], job["file_name"]) == ("queued", "x.stdf")
    ev = json.loads((EVENTS / "post_upload.json").read_text())
    raw = base64.b64decode(ev["body"])
    assert job["size"] == len(raw)
    sink = CollectSink()
    expected_parts = parse(io.BytesIO(raw), sink).parts
    # the local runtime ingests in a background task that Mangum runs before the invocation returns
    got = _json(
        lam(
            event(
                "get_status.json",
                path=f"/v1/jobs/{job['job_id']}",
                headers={"Authorization": f"Bearer {token}", "Host": "x"},
                multiValueHeaders={},
            )
        )
    )
    assert (got["status"], got["lot_id"], got["parts"]) == ("succeeded", "EVT-LOT", expected_parts)
    lots = _json(lam(event("get_lots.json", token)))
    assert [lot["lot_id"] for lot in lots["items"]] == ["EVT-LOT"]
    assert lots["items"][0]["part_type"] == "EVT-DEV"
    assert lots["next_cursor"] is None


def test_query_parameters_reach_the_app(lam):
    token = lam.key()
    _upload(lam, token)
    ev = event("get_lots.json", token)
    ev["queryStringParameters"] = {"q": "nothing-like-this"}
    ev["multiValueQueryStringParameters"] = {"q": ["nothing-like-this"]}
    assert _json(lam(ev))["items"] == []
    ev["queryStringParameters"] = ev["multiValueQueryStringParameters"] = None
    assert len(_json(lam(ev))["items"]) == 1
    bad = copy.deepcopy(ev)
    bad["queryStringParameters"] = {"limit": "0"}
    bad["multiValueQueryStringParameters"] = {"limit": ["0"]}
    out = lam(bad)
    assert out["statusCode"] == 400
    assert _json(out)["code"] == "bad_request"


def test_binary_response_is_base64(lam):
    token = lam.key()
    _upload(lam, token)
    ev = event(
        "get_lots.json",
        token,
        path="/v1/lots/EVT-LOT/wafers/W01/map",
        queryStringParameters={"format": "png"},
        multiValueQueryStringParameters={"format": ["png"]},
    )
    out = lam(ev)
    assert out["statusCode"] == 200
    assert out["headers"]["content-type"] == "image/png"
    assert out["isBase64Encoded"] is True
    img = Image.open(io.BytesIO(base64.b64decode(out["body"])))
    assert img.format == "PNG" and min(img.size) >= 300


def test_stage_prefix(staged):
    """REST API through the execute-api endpoint: the stage is in requestContext.path, not in path."""
    token = staged.key()
    _upload(staged, token)
    out = staged(event("get_lot_stage_prefix.json", token))
    assert out["statusCode"] == 200, out["body"]
    body = _json(out)
    assert (body["lot_id"], body["part_count"]) == ("EVT-LOT", 4)
    # a custom domain's base path mapping passes the prefix in path: stripped as well
    ev = event("get_lot_stage_prefix.json", token)
    ev["path"] = "/prod/v1/lots/EVT-LOT"
    assert staged(ev)["statusCode"] == 200
    # documents and links name the prefix
    doc = _json(staged(event("get_status.json", path="/openapi.json")))
    assert doc["servers"] == [{"url": "/prod"}]


def test_stage_prefix_links(staged):
    token = staged.key()
    out = staged(event("post_upload.json", token))
    assert out["statusCode"] == 202
    job_id = _json(out)["job_id"]
    assert out["headers"]["location"] == f"/prod/v1/jobs/{job_id}"
    ev = event(
        "get_lots.json",
        token,
        path="/v1/uploads/presign",
        httpMethod="POST",
        body=json.dumps({"filename": "big.stdf"}),
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
    )
    ev["headers"]["Content-Type"] = "application/json"
    ev["multiValueHeaders"]["Content-Type"] = ["application/json"]
    out = staged(ev)
    assert out["statusCode"] == 200, out["body"]
    url = _json(out)["upload_url"]
    assert url.startswith(f"https://{ev['headers']['Host']}/prod/v1/uploads/"), url


def test_classify_through_the_packaged_handler(lam):
    """POST /v1/classify (events/api/post_classify.json: a WM-811K grid with a centre blob) through the
    API function: pattern classification runs in the API Lambda (numpy only, no extra layer)."""
    token = lam.key(("classify",))
    out = lam(event("post_classify.json", token))
    assert out["statusCode"] == 200, out["body"]
    body = _json(out)
    assert body["wafer_id"] == "EVT_W01"
    assert [p["class_id"] for p in body["pattern_classes"]] == ["center/center/high"]
    assert body["classifier_version"].startswith("stratum-patterns-14+ver.")
    denied = lam(event("post_classify.json", lam.key(("read",))))
    assert denied["statusCode"] == 403


def test_lot_batch_through_the_packaged_handler_stores_and_sql_reads_it(lam, tmp_path):
    """POST /v1/batch {lot_id} (events/api/post_batch.json) through the API function: every wafer of a lake
    lot, in order, and the stored classifications are what SQL's wafer_patterns shows."""
    from stratum.devtools.stdf.lots import LotSpec, TestDef, write_lot

    spec = LotSpec(
        lot_id="EVT-PAT",
        wafers=("W01", "W02"),
        die_diameter=24,
        sites=1,
        tests=(TestDef(1000, "VDD", lo=0.0, hi=1.0, mean=0.5, sigma=0.05, fail_bin=2),),
        edge_fail_rate=0.97,
        random_fail_rate=0.0,
        seed=4,
    )
    token = lam.key(("batch", "full"))
    (path,) = write_lot(spec, tmp_path / "stdf").paths
    job = lam.app.state.runtime.ingest.ingest_path("default", path)
    assert job.status == "succeeded"
    out = lam(event("post_batch.json", token))
    assert out["statusCode"] == 200, out["body"]
    res = _json(out)["results"]
    assert [(r["lot_id"], r["wafer_id"], r["snapshot_job_id"]) for r in res] == [
        ("EVT-PAT", "W01", job.job_id),
        ("EVT-PAT", "W02", job.job_id),
    ]
    answered = [[r["wafer_id"], p["class_id"]] for r in res for p in r["pattern_classes"]]
    assert [f for _, f in answered] == ["edge_ring/edge/high", "edge_ring/edge/high"]
    out = lam(_sql_event(token, "SELECT wafer_id, class_id, job_id FROM wafer_patterns ORDER BY wafer_id, rank"))
    assert out["statusCode"] == 200, out["body"]
    assert _json(out)["rows"] == [[w, c, job.job_id] for w, c in answered]
    assert lam(event("post_batch.json", lam.key(("classify",))))["statusCode"] == 403


def _sql_event(token: str, query: str, **body) -> dict:
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Host": "x"}
    return event(
        "get_lots.json",
        token,
        headers=h,
        multiValueHeaders={k: [v] for k, v in h.items()},
        httpMethod="POST",
        path="/v1/sql",
        body=json.dumps({"query": query, **body}),
        isBase64Encoded=False,
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
    )


def test_sql_runs_in_a_worker_within_the_function_memory(monkeypatch, tmp_path):
    """On Lambda (AWS_LAMBDA_FUNCTION_MEMORY_SIZE set) user SQL runs in a worker process capped at half the
    function memory: a bomb is a 422 naming the bounds, and the next query is answered."""
    _configure(monkeypatch, tmp_path, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048")
    mod = load_handler()
    mod._state.clear()
    lam = Lambda(mod, tmp_path / "data")
    try:
        token = lam.key()
        out = lam(_sql_event(token, "SELECT string_agg(repeat('x', 1000), ',') FROM range(10000000)"))
        assert out["statusCode"] == 422, out["body"]
        body = _json(out)
        assert (body["code"], body["memory_limit_mb"]) == ("query_resources", 409)
        out = lam(_sql_event(token, "SELECT 6 * 7 AS answer"))
        assert out["statusCode"] == 200, out["body"]
        assert _json(out)["rows"] == [[42]]
        runner = lam.app.state.runtime.sql_runner
        assert runner._idle and runner._idle[0].alive()  # the worker process stays warm between invocations
    finally:
        if "mangum" in mod._state:
            mod._state["mangum"].app.state.runtime.close()
        mod._state.clear()
        get_settings.cache_clear()
