"""GET /v1/status needs no key; every other route answers 401 problem+json with WWW-Authenticate without
one, and 403 when the key's scopes do not allow the route's action."""

from __future__ import annotations

import duckdb
import pytest

from stratum import PARSER_VERSION, __version__
from stratum.lake.schema import SCHEMA_VERSION

from .conftest import SCOPES, strict_json

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code"}

# (method, path template, action) of every operation that needs a key; the action decides the scopes.
PROTECTED = [
    ("post", "/v1/uploads", "upload"),
    ("post", "/v1/uploads/presign", "upload"),
    ("post", "/v1/uploads/inspect", "upload"),
    ("get", "/v1/jobs", "job_status"),
    ("get", "/v1/jobs/{job_id}", "job_status"),
    ("get", "/v1/lots", "analytics"),
    ("get", "/v1/lots/{lot_id}", "analytics"),
    ("get", "/v1/lots/{lot_id}/wafers", "analytics"),
    ("get", "/v1/lots/{lot_id}/wafers/{wafer_id}/map", "analytics"),
    ("get", "/v1/lots/{lot_id}/tests", "analytics"),
    ("get", "/v1/lots/{lot_id}/tests/{test_num}/results", "analytics"),
    ("get", "/v1/lots/{lot_id}/capability", "analytics"),
    ("get", "/v1/lots/{lot_id}/bins", "analytics"),
    ("get", "/v1/lots/{lot_id}/stacked-map", "analytics"),
    ("get", "/v1/lots/{lot_id}/bins/pareto", "analytics"),
    ("get", "/v1/lots/{lot_id}/tests/{test_num}/histogram", "analytics"),
    ("get", "/v1/lots/{lot_id}/tests/{test_num}/boxplot", "analytics"),
    ("get", "/v1/tests/{test_num}/trend", "analytics"),
    ("get", "/v1/lots/{lot_id}/gallery", "analytics"),
    ("get", "/v1/sql/schema", "sql_schema"),
    ("post", "/v1/sql", "sql_run"),
    ("post", "/v1/exports", "sql_run"),
    ("get", "/v1/exports/{export_id}", "sql_run"),
    ("post", "/v1/classify", "classify"),
    ("post", "/v1/batch", "batch"),
    ("get", "/v1/patterns", "read_patterns"),
    ("get", "/v1/patterns/{class_id}", "read_patterns"),
    ("get", "/v1/patterns/{class_id}/example.png", "read_patterns"),
    ("get", "/v1/usage", "manage"),
    ("get", "/v1/usage/export.csv", "manage"),
    ("get", "/v1/monitors", "monitor_read"),
    ("post", "/v1/monitors", "admin"),
    ("get", "/v1/monitors/cron-preview", "monitor_read"),
    ("get", "/v1/monitors/runs/{run_id}", "monitor_read"),
    ("get", "/v1/monitors/{monitor_id}", "monitor_read"),
    ("patch", "/v1/monitors/{monitor_id}", "admin"),
    ("delete", "/v1/monitors/{monitor_id}", "admin"),
    ("post", "/v1/monitors/{monitor_id}/pause", "admin"),
    ("post", "/v1/monitors/{monitor_id}/resume", "admin"),
    ("post", "/v1/monitors/{monitor_id}/run", "monitor_run"),
    ("get", "/v1/monitors/{monitor_id}/runs", "monitor_read"),
    ("get", "/v1/monitors/{monitor_id}/findings", "monitor_read"),
    ("post", "/v1/monitors/{monitor_id}/backtest", "monitor_run"),
    ("get", "/v1/notifications", "notifications"),
    ("get", "/v1/notifications/prefs", "notifications"),
    ("put", "/v1/notifications/prefs", "notifications"),
    ("post", "/v1/notifications/read-all", "notifications"),
    ("post", "/v1/notifications/{notification_id}/read", "notifications"),
    ("delete", "/v1/notifications/{notification_id}", "notifications"),
    ("get", "/v1/webhooks/outbound", "webhooks"),
    ("post", "/v1/webhooks/outbound", "webhooks"),
    ("get", "/v1/webhooks/outbound/{webhook_id}", "webhooks"),
    ("patch", "/v1/webhooks/outbound/{webhook_id}", "webhooks"),
    ("delete", "/v1/webhooks/outbound/{webhook_id}", "webhooks"),
    ("post", "/v1/webhooks/outbound/{webhook_id}/rotate-secret", "webhooks"),
    ("post", "/v1/webhooks/outbound/{webhook_id}/test", "webhooks"),
    ("get", "/v1/webhooks/deliveries", "webhooks"),
    ("post", "/v1/webhooks/deliveries/{delivery_id}/redeliver", "webhooks"),
    ("get", "/v1/webhooks/inbound", "webhooks"),
    ("post", "/v1/webhooks/inbound", "webhooks"),
    ("patch", "/v1/webhooks/inbound/{hook_id}", "webhooks"),
    ("delete", "/v1/webhooks/inbound/{hook_id}", "webhooks"),
    ("get", "/v1/webhooks/inbound/{hook_id}/calls", "webhooks"),
]
# no API key: the signed URLs (upload content, export download) by their signature; an inbound hook by its own
# token or signature
OPEN = [
    ("get", "/v1/status"),
    ("put", "/v1/uploads/{job_id}/content"),
    ("get", "/v1/exports/{export_id}/content"),
    ("post", "/v1/hooks/in/{slug}"),
]
ALLOWED = {  # action -> scopes allowed (the documented permission table)
    "upload": {"ingest", "full"},
    "job_status": {"ingest", "read", "full"},
    "analytics": {"read", "full"},
    "sql_schema": {"read", "full"},
    "sql_run": {"full"},
    "classify": {"classify", "full"},
    "batch": {"batch", "full"},
    "read_patterns": {"read:patterns", "read", "full"},
    "manage": {"manage"},
    "admin": {"admin"},
    "monitor_read": {"read", "full", "admin"},
    "monitor_run": {"full", "admin"},
    "notifications": {"read", "full", "admin"},
    "webhooks": {"manage", "admin"},
}


def _url(path: str) -> str:
    return path.format(
        job_id="job_nope",
        lot_id="NO-SUCH-LOT",
        wafer_id="W01",
        test_num=1000,
        export_id="exp_nope",
        class_id="none/global/low",
        run_id="run_nope",
        monitor_id="mon_nope",
        notification_id="ntf_nope",
        webhook_id="whk_nope",
        delivery_id="dlv_nope",
        hook_id="inh_nope",
    )


def _call(client, method: str, path: str, headers: dict | None = None):
    kw: dict = {"headers": headers or {}}
    if path in ("/v1/sql", "/v1/exports"):
        kw["json"] = {"query": "SELECT 1"}
    elif path == "/v1/uploads/presign":
        kw["json"] = {"filename": "x.stdf"}
    elif method == "post":
        kw["params"] = {"filename": "x.stdf"}
        kw["content"] = b""
    return client.request(method.upper(), _url(path), **kw)


def test_route_table_is_complete(seeded):
    """The lists above cover every operation of the app (a new route must be added here)."""
    ops = {(m, p) for p, item in seeded.app.openapi()["paths"].items() for m in item}
    assert ops == {(m, p) for m, p, _ in PROTECTED} | set(OPEN)


def test_status_without_key(client):
    r = client.get("/v1/status")
    assert r.status_code == 200
    body = strict_json(r.text)
    assert body["status"] == "ok"
    assert body["metadata_store"] == "ok"
    assert body["backend"] == "local"
    assert (body["version"], body["parser_version"], body["schema_version"], body["duckdb"]) == (
        __version__,
        PARSER_VERSION,
        SCHEMA_VERSION,
        duckdb.__version__,
    )
    assert "server-timing" in r.headers


@pytest.mark.parametrize(("method", "path", "action"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_401_without_key(client, method, path, action):
    r = _call(client, method, path)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == 'Bearer realm="stratum"'
    body = strict_json(r.text)
    assert PROBLEM_KEYS <= set(body)
    assert (body["status"], body["code"], body["title"]) == (401, "unauthorized", "Unauthorized")
    assert body["instance"] == _url(path)
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("Bearer stm_test_notakey", "invalid_token"),
        ("Bearer " + "stm_test_abcdefghijkl_" + "x" * 43, "invalid_token"),
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer ", "invalid_request"),
    ],
    ids=["malformed", "unknown", "basic", "empty"],
)
def test_401_bad_key(client, header, error):
    r = client.get("/v1/lots", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == f'Bearer realm="stratum", error="{error}"'
    assert strict_json(r.text)["code"] == "unauthorized"


def test_revoked_key_is_401_on_the_next_request(seeded):
    token, rec = seeded.app.state.keys.create("default", ["full"], "revoke-me")
    h = {"Authorization": f"Bearer {token}"}
    assert seeded.client.get("/v1/lots", headers=h).status_code == 200
    seeded.app.state.keys.revoke(rec.key_id)
    r = seeded.client.get("/v1/lots", headers=h)
    assert r.status_code == 401
    assert "revoked" in strict_json(r.text)["detail"]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(("method", "path", "action"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_scopes(seeded, scope, method, path, action):
    r = _call(seeded.client, method, path, seeded.headers(scope))
    if scope in ALLOWED[action]:
        assert r.status_code not in (401, 403), r.text  # past auth: 200, 400 or 404 for the dummy arguments
    else:
        assert r.status_code == 403, r.text
        body = strict_json(r.text)
        assert (body["code"], body["title"]) == ("forbidden", "Forbidden")
        need = [s for s in SCOPES if s in ALLOWED[action]]
        assert body["required_scopes"] == need
        assert body["detail"].startswith(f"this API key (scopes: {scope}) may not ")
        assert body["detail"].endswith(" or ".join(repr(s) for s in need))
        if "_" in action:  # an internal action name (sql_run, read_patterns, ...) is never shown
            assert action not in body["detail"], body["detail"]
        assert r.headers["content-type"] == "application/problem+json"


def test_403_names_the_needed_scope(seeded):
    r = seeded.client.post("/v1/sql", json={"query": "SELECT 1"}, headers=seeded.headers("read"))
    assert r.status_code == 403
    body = strict_json(r.text)
    assert body["detail"] == "this API key (scopes: read) may not run SQL queries: that needs the scope 'full'"
    assert body["required_scopes"] == ["full"]


def test_presigned_content_route_needs_no_key_but_a_signature(client):
    r = client.put(
        "/v1/uploads/job_nope/content",
        params={"workspace": "default", "expires": 9999999999, "signature": "0" * 64},
        content=b"x",
    )
    assert r.status_code == 403
    assert strict_json(r.text)["detail"] == "invalid upload URL signature"
    assert "www-authenticate" not in r.headers


def test_openapi_and_docs_are_public(client):
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
