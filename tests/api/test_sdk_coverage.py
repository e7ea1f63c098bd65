"""Every operation of the committed openapi.json has an SDK method (on ``Client`` and ``AsyncClient``), or
an entry in ``EXCLUDED`` saying why not: a route added without SDK coverage fails here.

Each method is called (with the installed wheel) through a transport that records the request it makes for
the operation under test and stops it there, so the test checks what the method sends: the method and
path, that every query parameter is one the operation declares, and a JSON body only where the operation
takes one. Steps before it (a presign before its PUT, an export before its download) reach the real app.
Operations that page (a ``cursor`` query parameter) are answered with two pages: the method must be an
iterator that follows ``next_cursor`` with the same filters."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT

from .conftest import new_app

SPEC = json.loads((ROOT / "openapi.json").read_text())
METHODS = ("get", "post", "put", "patch", "delete")
EXCLUDED = {
    "POST /v1/hooks/in/{slug}": "the inbound webhook endpoint is called by third-party systems (MES, schedulers) "
    "with the hook's own token, not an API key; the SDK administers hooks (create_inbound_hook returns the "
    "URL and token to give them) and reads their calls (inbound_hook_calls)",
}
UPLOAD = "<upload>"  # kwargs value replaced by a real small file
EXPORT = "<export>"  # kwargs value replaced by a finished export of the real app

# "METHOD path" -> every SDK method that calls it, with its arguments. Arguments named like a path
# parameter fill the expected path; a path parameter without one (a job id the server makes) matches any.
COVERAGE: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "GET /v1/status": [("status", {})],
    "GET /v1/jobs": [("jobs", {"status": "failed", "lot_id": "L1"})],
    "GET /v1/jobs/{job_id}": [("job", {"job_id": "job_1"}), ("wait_for_job", {"job_id": "job_1"})],
    "POST /v1/uploads": [("upload", {"path": UPLOAD})],
    "POST /v1/uploads/presign": [("upload", {"path": UPLOAD, "_client": {"direct_upload_max": 0}})],
    "PUT /v1/uploads/{job_id}/content": [("upload", {"path": UPLOAD, "_client": {"direct_upload_max": 0}})],
    "POST /v1/uploads/inspect": [("inspect", {"path": UPLOAD})],
    "GET /v1/lots": [("lots", {"q": "L", "part_type": "P", "program": "X", "start_from": "2026-01-01"})],
    "GET /v1/lots/{lot_id}": [("lot", {"lot_id": "L1", "snapshot_job_id": "job_1"})],
    "GET /v1/lots/{lot_id}/wafers": [("wafers", {"lot_id": "L1"})],
    "GET /v1/lots/{lot_id}/wafers/{wafer_id}/map": [
        ("wafer_map", {"lot_id": "L1", "wafer_id": "W1", "test_num": 1000, "view": "all", "bin_type": "soft"}),
        ("wafer_map_image", {"lot_id": "L1", "wafer_id": "W1", "format": "svg"}),
    ],
    "GET /v1/lots/{lot_id}/tests": [("tests", {"lot_id": "L1", "wafer_id": "W1"})],
    "GET /v1/lots/{lot_id}/tests/{test_num}/results": [
        ("results", {"lot_id": "L1", "test_num": 1000, "wafer_id": "W1", "site_num": 2, "view": "all"})
    ],
    "GET /v1/lots/{lot_id}/capability": [("capability", {"lot_id": "L1", "wafer_id": "W1", "estimator": "pooled"})],
    "GET /v1/lots/{lot_id}/bins": [("bins", {"lot_id": "L1", "by": "site"})],
    "GET /v1/lots/{lot_id}/stacked-map": [
        ("stacked_map", {"lot_id": "L1", "wafer_ids": ["W1", "W2"], "lot_ids": ["L2"], "metric": "fail"}),
        ("stacked_map", {"lot_id": "L1", "format": "png"}),
    ],
    "GET /v1/lots/{lot_id}/bins/pareto": [("pareto", {"lot_id": "L1", "bin_type": "S", "format": "svg"})],
    "GET /v1/lots/{lot_id}/tests/{test_num}/histogram": [("histogram", {"lot_id": "L1", "test_num": 7, "by": "site"})],
    "GET /v1/lots/{lot_id}/tests/{test_num}/boxplot": [("boxplot", {"lot_id": "L1", "test_num": 7, "by": "wafer"})],
    "GET /v1/tests/{test_num}/trend": [("trend", {"test_num": 7, "part_type": "P", "format": "png"})],
    "GET /v1/lots/{lot_id}/gallery": [("gallery", {"lot_id": "L1", "format": "png"})],
    "POST /v1/sql": [("sql", {"query": "SELECT 1", "lot_id": "L1"}), ("sql", {"query": "SELECT 1", "arrow": False})],
    "GET /v1/sql/schema": [("sql_schema", {})],
    "POST /v1/exports": [("export", {"query": "SELECT 1", "format": "csv"})],
    "GET /v1/exports/{export_id}": [("get_export", {"export_id": "exp_1"}), ("wait_for_export", {"export_id": "e"})],
    "GET /v1/exports/{export_id}/content": [("download_export", {"export": EXPORT, "path": "out.csv"})],
    "POST /v1/classify": [("classify", {"dies": [{"x": 0, "y": 0, "pass": True}]})],
    "POST /v1/batch": [("batch", {"lot_id": "L1"})],
    "GET /v1/patterns": [("patterns", {"family": "edge"})],
    "GET /v1/patterns/{class_id}": [("pattern", {"class_id": "edge_ring"})],
    "GET /v1/patterns/{class_id}/example.png": [("pattern_example", {"class_id": "edge_ring"})],
    "GET /v1/usage": [("usage", {"start": "2026-01-01", "end": "2026-01-31", "group_by": "route"})],
    "GET /v1/usage/export.csv": [("usage_csv", {"start": "2026-01-01"})],
    "GET /v1/monitors": [("monitors", {})],
    "POST /v1/monitors": [("create_monitor", {"monitor": {"name": "m"}})],
    "GET /v1/monitors/cron-preview": [("cron_preview", {"expression": "rate(1 hour)", "after": "2026-01-01T00:00Z"})],
    "GET /v1/monitors/runs/{run_id}": [("monitor_run", {"run_id": "run_1"})],
    "GET /v1/monitors/{monitor_id}": [("monitor", {"monitor_id": "mon_1"})],
    "PATCH /v1/monitors/{monitor_id}": [("update_monitor", {"monitor_id": "mon_1", "changes": {"enabled": False}})],
    "DELETE /v1/monitors/{monitor_id}": [("delete_monitor", {"monitor_id": "mon_1"})],
    "POST /v1/monitors/{monitor_id}/backtest": [
        ("backtest", {"monitor_id": "mon_1", "start": "2026-01-01", "end": "2026-02-01"})
    ],
    "GET /v1/monitors/{monitor_id}/findings": [("monitor_findings", {"monitor_id": "mon_1"})],
    "POST /v1/monitors/{monitor_id}/pause": [("pause_monitor", {"monitor_id": "mon_1"})],
    "POST /v1/monitors/{monitor_id}/resume": [("resume_monitor", {"monitor_id": "mon_1"})],
    "POST /v1/monitors/{monitor_id}/run": [("run_monitor", {"monitor_id": "mon_1"})],
    "GET /v1/monitors/{monitor_id}/runs": [("monitor_runs", {"monitor_id": "mon_1", "status": "failed"})],
    "GET /v1/notifications": [("notifications", {"unread": True, "kind": "job.failed", "since": "2026-01-01"})],
    "GET /v1/notifications/prefs": [("notification_prefs", {})],
    "PUT /v1/notifications/prefs": [("set_notification_prefs", {"prefs": {"digest": "daily"}})],
    "POST /v1/notifications/read-all": [("mark_all_notifications_read", {})],
    "POST /v1/notifications/{notification_id}/read": [("mark_notification_read", {"notification_id": "ntf_1"})],
    "DELETE /v1/notifications/{notification_id}": [("dismiss_notification", {"notification_id": "ntf_1"})],
    "GET /v1/webhooks/outbound": [("webhooks", {})],
    "POST /v1/webhooks/outbound": [
        ("create_webhook", {"webhook": {"name": "w", "target_url": "https://x/", "events": ["ping"]}})
    ],
    "GET /v1/webhooks/outbound/{webhook_id}": [("webhook", {"webhook_id": "whk_1"})],
    "PATCH /v1/webhooks/outbound/{webhook_id}": [
        ("update_webhook", {"webhook_id": "whk_1", "changes": {"enabled": False}})
    ],
    "DELETE /v1/webhooks/outbound/{webhook_id}": [("delete_webhook", {"webhook_id": "whk_1"})],
    "POST /v1/webhooks/outbound/{webhook_id}/rotate-secret": [("rotate_webhook_secret", {"webhook_id": "whk_1"})],
    "POST /v1/webhooks/outbound/{webhook_id}/test": [("ping_webhook", {"webhook_id": "whk_1"})],
    "GET /v1/webhooks/deliveries": [("webhook_deliveries", {"webhook_id": "whk_1"})],
    "POST /v1/webhooks/deliveries/{delivery_id}/redeliver": [("redeliver", {"delivery_id": "dlv_1"})],
    "GET /v1/webhooks/inbound": [("inbound_hooks", {})],
    "POST /v1/webhooks/inbound": [("create_inbound_hook", {"hook": {"name": "mes", "action": "notify"}})],
    "PATCH /v1/webhooks/inbound/{hook_id}": [("update_inbound_hook", {"hook_id": "inh_1", "changes": {"name": "n"}})],
    "DELETE /v1/webhooks/inbound/{hook_id}": [("delete_inbound_hook", {"hook_id": "inh_1"})],
    "GET /v1/webhooks/inbound/{hook_id}/calls": [("inbound_hook_calls", {"hook_id": "inh_1"})],
}  # fmt: skip


def operations() -> dict[str, dict]:
    return {f"{m.upper()} {path}": op for path, ops in SPEC["paths"].items() for m, op in ops.items() if m in METHODS}


OPS = operations()
CASES = [(key, i) for key, calls in COVERAGE.items() for i in range(len(calls))]


def test_every_operation_is_covered_or_excluded() -> None:
    missing = sorted(set(OPS) - set(COVERAGE) - set(EXCLUDED))
    assert not missing, f"operations without an SDK method (add one, or exclude with a reason): {missing}"
    stale = sorted((set(COVERAGE) | set(EXCLUDED)) - set(OPS))
    assert not stale, f"entries for operations openapi.json no longer has: {stale}"
    assert not set(COVERAGE) & set(EXCLUDED)


def test_sync_and_async_clients_offer_the_same_methods(sdk_module) -> None:
    def public(cls) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")} - {"close", "aclose"}

    assert public(sdk_module.Client) == public(sdk_module.AsyncClient)


# -- the recording transports ------------------------------------------------------------------------------
class Stop(Exception):
    """Raised by the recorder once it has the request under test (nothing is sent)."""


def _pattern(key: str, kwargs: dict[str, Any]) -> tuple[str, re.Pattern]:
    method, template = key.split(" ", 1)
    out, pos = "", 0
    for mm in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos : mm.start()])
        name = mm.group(1)
        out += re.escape(str(kwargs[name])) if name in kwargs else "[^/]+"
        pos = mm.end()
    return method, re.compile(out + re.escape(template[pos:]) + "$")


class Recorder:
    """Answers the request of the operation under test itself (pages: two canned pages; anything else:
    ``Stop``); every other request goes to the real app."""

    def __init__(self, key: str, kwargs: dict[str, Any]) -> None:
        self.method, self.path = _pattern(key, kwargs)
        self.paged = any(p["name"] == "cursor" and p["in"] == "query" for p in OPS[key].get("parameters", []))
        self.seen: list[httpx.Request] = []

    def intercept(self, request: httpx.Request) -> httpx.Response | None:
        if request.method != self.method or not self.path.match(request.url.path):
            return None
        self.seen.append(request)
        if not self.paged:
            raise Stop
        cursor = "c2" if len(self.seen) == 1 else None
        return httpx.Response(200, json={"items": [], "next_cursor": cursor, "lot_id": "L1", "test": {}})


class SyncRecorder(httpx.BaseTransport):
    def __init__(self, rec: Recorder, inner: httpx.BaseTransport) -> None:
        self.rec, self.inner = rec, inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.rec.intercept(request) or self.inner.handle_request(request)


class AsyncRecorder(httpx.AsyncBaseTransport):
    def __init__(self, rec: Recorder, inner: httpx.AsyncBaseTransport) -> None:
        self.rec, self.inner = rec, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.rec.intercept(request) or await self.inner.handle_async_request(request)


@pytest.fixture(scope="module")
def real(tmp_path_factory, sdk_module):
    """A fresh app, a small STDF-named file and a finished export of it."""
    d = tmp_path_factory.mktemp("sdk-coverage")
    app, tc, tokens = new_app(d / "data")
    stdf = d / "tiny.stdf"
    stdf.write_bytes(b"\x02\x00\x00\x0a\x02\x04")  # a FAR: enough to be sent (the request is stopped)
    c = sdk_module.Client(api_key=tokens["full"], base_url="http://testserver", http_client=tc)
    export = c.export("SELECT 42 AS answer", format="csv")
    c.wait_for_export(export.export_id, timeout=60)
    yield app, tc, tokens, stdf, export, d
    app.state.runtime.close()


def _args(kwargs: dict[str, Any], real) -> tuple[dict[str, Any], dict[str, Any]]:
    app, tc, tokens, stdf, export, d = real
    client_opts = dict(kwargs.get("_client", {}))
    out = {k: v for k, v in kwargs.items() if k != "_client"}
    for k, v in out.items():
        if v == UPLOAD:
            out[k] = str(stdf)
        elif v == EXPORT:
            out[k] = export
        elif k == "path":
            out[k] = str(d / v)
    return out, client_opts


def _check(rec: Recorder, key: str, name: str) -> None:
    op = OPS[key]
    assert rec.seen, f"{name}() made no {key} request"
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    for req in rec.seen:
        unknown = set(req.url.params) - declared
        assert not unknown, f"{name}() sends query parameters {key} does not declare: {unknown}"
        has_json = req.headers.get("content-type", "").startswith("application/json")
        if has_json:
            assert "application/json" in op.get("requestBody", {}).get("content", {}), (key, name)
    if rec.paged:
        first, second = rec.seen
        assert second.url.params.get("cursor") == "c2", f"{name}() does not follow next_cursor"
        assert {k: v for k, v in second.url.params.items() if k != "cursor"} == dict(first.url.params)
    else:
        assert len(rec.seen) == 1


@pytest.mark.parametrize(("key", "i"), CASES, ids=[f"{k}#{i}" for k, i in CASES])
def test_sync_method_calls_its_operation(key: str, i: int, real, sdk_module) -> None:
    name, kwargs = COVERAGE[key][i]
    args, opts = _args(kwargs, real)
    app, tc, tokens = real[:3]
    rec = Recorder(key, args)
    http = httpx.Client(transport=SyncRecorder(rec, tc._transport), base_url="http://testserver")
    c = sdk_module.Client(api_key=tokens["full"], base_url="http://testserver", http_client=http, **opts)
    method: Callable = getattr(c, name)
    if rec.paged:
        it = method(**args)
        assert isinstance(it, Iterator), f"{name}() pages: it must return an iterator"
        assert list(it) == []
    else:
        with pytest.raises(Stop):
            method(**args)
    _check(rec, key, name)


@pytest.mark.parametrize(("key", "i"), CASES, ids=[f"{k}#{i}" for k, i in CASES])
def test_async_method_calls_its_operation(key: str, i: int, real, sdk_module) -> None:
    name, kwargs = COVERAGE[key][i]
    args, opts = _args(kwargs, real)
    app, tc, tokens = real[:3]
    rec = Recorder(key, args)

    async def go() -> None:
        transport = AsyncRecorder(rec, httpx.ASGITransport(app))
        async with sdk_module.AsyncClient(
            api_key=tokens["full"], base_url="http://testserver", transport=transport, **opts
        ) as c:
            method: Callable = getattr(c, name)
            if rec.paged:
                it = method(**args)
                assert isinstance(it, AsyncIterator), f"async {name}() pages: it must return an async iterator"
                assert [x async for x in it] == []
            else:
                assert inspect.iscoroutinefunction(method), f"async {name}() must be a coroutine function"
                with pytest.raises(Stop):
                    await method(**args)

    asyncio.run(go())
    _check(rec, key, name)
