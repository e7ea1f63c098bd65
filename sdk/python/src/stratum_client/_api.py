"""The request builder: one function per API operation, returning a :class:`Call` that either client
sends. Nothing here does I/O."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from . import models as m
from ._core import Call, basename
from .results import Export, SqlPage, WaferMap

CHUNK = 1024 * 1024
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _q(s: str) -> str:
    return quote(str(s), safe="")


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class _AsyncChunks:
    """An async iterable over a file's chunks (httpx.AsyncClient needs one to stream a body)."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def __aiter__(self):
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


def _page(model: type) -> Any:
    def parse(r: httpx.Response) -> tuple[list, str | None]:
        body = r.json()
        return [model.model_validate(i) for i in body["items"]], body.get("next_cursor")

    return parse


def _model(model: type) -> Any:
    return lambda r: model.model_validate(r.json())


# -- status, jobs ------------------------------------------------------------------------------------
def status() -> Call:
    return Call("GET", "/v1/status", parse=_model(m.Status))


def jobs(status: str | None, lot_id: str | None, limit: int, cursor: str | None) -> Call:
    params = {"status": status, "lot_id": lot_id, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/jobs", params=params, parse=_page(m.JobOut))


def job(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{_q(job_id)}", parse=_model(m.JobOut))


# -- uploads -----------------------------------------------------------------------------------------
def upload_direct(path: str, filename: str | None, asynchronous: bool, idempotency_key: str | None) -> Call:
    p = os.fspath(path)
    size = os.path.getsize(p)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return Call(
        "POST",
        "/v1/uploads",
        params={"filename": filename or basename(p)},
        content=(lambda: _AsyncChunks(p)) if asynchronous else (lambda: _file_chunks(p)),
        headers=headers,
        parse=_model(m.JobOut),
    )


def presign(filename: str, size: int, idempotency_key: str | None) -> Call:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call(
        "POST",
        "/v1/uploads/presign",
        json={"filename": filename, "size": size},
        headers=headers,
        parse=_model(m.PresignOut),
    )


def put_presigned(p: m.PresignOut, path: str, asynchronous: bool) -> Call:
    headers = dict(p.headers or {})
    headers["Content-Length"] = str(os.path.getsize(path))
    return Call(
        "PUT",
        p.upload_url,
        content=(lambda: _AsyncChunks(path)) if asynchronous else (lambda: _file_chunks(path)),
        headers=headers,
        absolute=True,
        parse=lambda r: None,
    )


def inspect(path: str) -> Call:
    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read()
    return Call(
        "POST",
        "/v1/uploads/inspect",
        params={"filename": basename(p)},
        content=lambda: data,
        headers={"Content-Type": "application/octet-stream"},
        parse=_model(m.InspectOut),
    )


# -- lots and analytics --------------------------------------------------------------------------------
def lots(
    q: str | None,
    part_type: str | None,
    program: str | None,
    start_from: str | None,
    start_to: str | None,
    limit: int,
    cursor: str | None,
) -> Call:
    params = {
        "q": q,
        "part_type": part_type,
        "program": program,
        "start_from": start_from,
        "start_to": start_to,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", "/v1/lots", params=params, parse=_page(m.LotSummary))


def lot(lot_id: str, snapshot_job_id: str | None) -> Call:
    return Call("GET", f"/v1/lots/{_q(lot_id)}", params={"snapshot_job_id": snapshot_job_id}, parse=_model(m.LotDetail))


def wafers(lot_id: str, snapshot_job_id: str | None) -> Call:
    return Call(
        "GET",
        f"/v1/lots/{_q(lot_id)}/wafers",
        params={"snapshot_job_id": snapshot_job_id},
        parse=lambda r: m.WaferList.model_validate(r.json()).items,
    )


def _map_params(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw.get(k) for k in ("snapshot_job_id", "test_num", "test_name", "view", "bin_type")}


def wafer_map(lot_id: str, wafer_id: str, fmt: str, **kw: Any) -> Call:
    params = {**_map_params(kw), "format": fmt}
    path = f"/v1/lots/{_q(lot_id)}/wafers/{_q(wafer_id)}/map"
    if fmt == "json":
        return Call("GET", path, params=params, parse=lambda r: m.WaferMapOut.model_validate(r.json()))
    return Call("GET", path, params=params, headers={"Accept": "*/*"}, parse=lambda r: r.content)


def wafer_map_obj(lot_id: str, wafer_id: str, **kw: Any) -> Call:
    c = wafer_map(lot_id, wafer_id, "json", **kw)
    c.parse = lambda r: WaferMap(m.WaferMapOut.model_validate(r.json()), dict(kw))
    return c


def tests(lot_id: str, wafer_id: str | None, snapshot_job_id: str | None, view: str) -> Call:
    return Call(
        "GET",
        f"/v1/lots/{_q(lot_id)}/tests",
        params={"wafer_id": wafer_id, "snapshot_job_id": snapshot_job_id, "view": view},
        parse=lambda r: m.TestList.model_validate(r.json()).items,
    )


def results(lot_id: str, test_num: int, params: dict[str, Any], limit: int, cursor: str | None) -> Call:
    def parse(r: httpx.Response) -> tuple[list, str | None]:
        page = m.ResultsPage.model_validate(r.json())
        return page.items, page.next_cursor

    return Call(
        "GET",
        f"/v1/lots/{_q(lot_id)}/tests/{int(test_num)}/results",
        params={**params, "limit": limit, "cursor": cursor},
        parse=parse,
    )


def capability(lot_id: str, params: dict[str, Any]) -> Call:
    return Call("GET", f"/v1/lots/{_q(lot_id)}/capability", params=params, parse=_model(m.CapabilityOut))


def bins(lot_id: str, params: dict[str, Any]) -> Call:
    return Call("GET", f"/v1/lots/{_q(lot_id)}/bins", params=params, parse=_model(m.BinsOut))


CHART_PATHS = {
    "stacked_map": "/v1/lots/{lot_id}/stacked-map",
    "pareto": "/v1/lots/{lot_id}/bins/pareto",
    "histogram": "/v1/lots/{lot_id}/tests/{test_num}/histogram",
    "boxplot": "/v1/lots/{lot_id}/tests/{test_num}/boxplot",
    "trend": "/v1/tests/{test_num}/trend",
    "gallery": "/v1/lots/{lot_id}/gallery",
}


def named_chart(name: str, fmt: str, **kw: Any) -> Call:
    """One of the chart routes: path arguments ``lot_id`` / ``test_num`` filled in, the rest as query."""
    template = CHART_PATHS[name]
    path_args = {k: kw.pop(k) for k in ("lot_id", "test_num") if "{" + k + "}" in template}
    path = template.format(**{k: _q(str(v)) for k, v in path_args.items()})
    return chart(path, kw, fmt)


def chart(path: str, params: dict[str, Any], fmt: str) -> Call:
    params = {**params, "format": fmt}
    if fmt == "json":
        return Call("GET", path, params=params)
    return Call("GET", path, params=params, headers={"Accept": "*/*"}, parse=lambda r: r.content)


# -- SQL and exports ---------------------------------------------------------------------------------
def sql_page(
    query: str, context: dict[str, Any] | None, limit: int | None, cursor: str | None, arrow: bool = False
) -> Call:
    body: dict[str, Any] = {"query": query}
    if context:
        body["context"] = context
    if limit is not None:
        body["limit"] = limit
    if cursor:
        body["cursor"] = cursor
    if arrow:
        return Call(
            "POST",
            "/v1/sql",
            json=body,
            headers={"Accept": ARROW_STREAM},
            parse=lambda r: SqlPage.from_arrow(
                r.content, r.headers.get("x-next-cursor") or None, r.headers.get("x-truncated") == "true"
            ),
        )
    return Call("POST", "/v1/sql", json=body, parse=lambda r: SqlPage.from_json(r.json()))


def sql_schema() -> Call:
    return Call("GET", "/v1/sql/schema", parse=lambda r: m.SqlSchema.model_validate(r.json()).tables)


def create_export(body: dict[str, Any], client: Any) -> Call:
    return Call("POST", "/v1/exports", json=body, parse=lambda r: Export(client, r.json()))


def get_export(export_id: str, client: Any) -> Call:
    return Call("GET", f"/v1/exports/{_q(export_id)}", parse=lambda r: Export(client, r.json()))


def download(url: str, base_url: str) -> Call:
    absolute = url.startswith(("http://", "https://"))
    return Call("GET", url if absolute else base_url + url, absolute=True, stream=True, parse=lambda r: r)


# -- pattern classification ------------------------------------------------------------------------------
def _body(body: Any) -> Any:
    """A model (``m.MonitorIn``...) as its JSON; a dict as is."""
    return body.model_dump(mode="json", exclude_unset=True) if hasattr(body, "model_dump") else body


def classify_body(
    wafer_id: str | None,
    file_path: str | os.PathLike | None,
    map_data: bytes | str | None,
    dies: list[dict] | None,
    grid: list[list[int]] | None,
    lot_id: str | None,
    snapshot_job_id: str | None,
) -> dict[str, Any]:
    """One ``/v1/classify`` body: an STDF file (path or bytes), a die list, a grid, or a lake wafer."""
    forms = [n for n, v in (("file_path", file_path), ("map_data", map_data), ("dies", dies), ("grid", grid)) if v]
    if len(forms) > 1:
        raise ValueError(f"give one map form, not {' and '.join(forms)}")
    body: dict[str, Any] = {"wafer_id": wafer_id, "lot_id": lot_id, "snapshot_job_id": snapshot_job_id}
    if file_path is not None:
        with open(os.fspath(file_path), "rb") as f:
            map_data = f.read()
    if map_data is not None:  # bytes: the STDF itself; str: already base64
        body["map_data"] = base64.b64encode(map_data).decode() if isinstance(map_data, bytes) else map_data
        body["format"] = "stdf"
    body.update(dies=dies, grid=grid)
    return {k: v for k, v in body.items() if v is not None}


def classify(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/classify", json=body, parse=_model(m.ClassifyOut))


def batch(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/batch", json=body, parse=_model(m.BatchOut))


def patterns(family: str | None, limit: int, cursor: str | None) -> Call:
    params = {"family": family, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/patterns", params=params, parse=_page(m.PatternClassOut))


def _class(class_id: str) -> str:
    return quote(class_id, safe="/")  # class ids are paths (edge_loc/edge/high/ne)


def pattern(class_id: str) -> Call:
    return Call("GET", f"/v1/patterns/{_class(class_id)}", parse=_model(m.PatternClassOut))


def pattern_example(class_id: str) -> Call:
    return Call("GET", f"/v1/patterns/{_class(class_id)}/example.png", parse=lambda r: r.content)


# -- monitors -----------------------------------------------------------------------------------------------
def monitors(limit: int, cursor: str | None) -> Call:
    return Call("GET", "/v1/monitors", params={"limit": limit, "cursor": cursor}, parse=_page(m.MonitorOut))


def create_monitor(body: Any) -> Call:
    return Call("POST", "/v1/monitors", json=_body(body), parse=_model(m.MonitorOut))


def monitor(monitor_id: str) -> Call:
    return Call("GET", f"/v1/monitors/{_q(monitor_id)}", parse=_model(m.MonitorOut))


def update_monitor(monitor_id: str, changes: Any) -> Call:
    return Call("PATCH", f"/v1/monitors/{_q(monitor_id)}", json=_body(changes), parse=_model(m.MonitorOut))


def delete_monitor(monitor_id: str) -> Call:
    return Call("DELETE", f"/v1/monitors/{_q(monitor_id)}", parse=lambda r: None)


def monitor_state(monitor_id: str, action: str) -> Call:
    return Call("POST", f"/v1/monitors/{_q(monitor_id)}/{action}", parse=_model(m.MonitorOut))


def run_monitor(monitor_id: str) -> Call:
    return Call("POST", f"/v1/monitors/{_q(monitor_id)}/run", parse=_model(m.RunNow))


def monitor_runs(monitor_id: str, status: str | None, limit: int, cursor: str | None) -> Call:
    params = {"status": status, "limit": limit, "cursor": cursor}
    return Call("GET", f"/v1/monitors/{_q(monitor_id)}/runs", params=params, parse=_page(m.RunRecord))


def monitor_run(run_id: str) -> Call:
    return Call("GET", f"/v1/monitors/runs/{_q(run_id)}", parse=_model(m.RunRecord))


def monitor_findings(monitor_id: str, limit: int, cursor: str | None) -> Call:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", f"/v1/monitors/{_q(monitor_id)}/findings", params=params, parse=_page(m.Finding))


def cron_preview(expression: str, timezone: str, count: int, after: str | None) -> Call:
    params = {"expression": expression, "timezone": timezone, "count": count, "after": after}
    return Call("GET", "/v1/monitors/cron-preview", params=params, parse=_model(m.CronPreview))


def backtest(monitor_id: str, start: str, end: str) -> Call:
    return Call("POST", f"/v1/monitors/{_q(monitor_id)}/backtest", params={"from": start, "to": end})


# -- notifications --------------------------------------------------------------------------------------
def notifications(unread: bool, kind: str | None, since: str | None, limit: int, cursor: str | None) -> Call:
    params = {"unread": "true" if unread else None, "kind": kind, "since": since, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/notifications", params=params, parse=_page(m.Notification))


def notification_prefs() -> Call:
    return Call("GET", "/v1/notifications/prefs", parse=_model(m.Prefs))


def set_notification_prefs(prefs: Any) -> Call:
    return Call("PUT", "/v1/notifications/prefs", json=_body(prefs), parse=_model(m.Prefs))


def mark_all_notifications_read() -> Call:
    return Call("POST", "/v1/notifications/read-all", parse=lambda r: int(r.json()["marked"]))


def mark_notification_read(notification_id: str) -> Call:
    return Call("POST", f"/v1/notifications/{_q(notification_id)}/read", parse=_model(m.Notification))


def dismiss_notification(notification_id: str) -> Call:
    return Call("DELETE", f"/v1/notifications/{_q(notification_id)}", parse=lambda r: None)


# -- outbound webhooks ----------------------------------------------------------------------------------
def webhooks(limit: int, cursor: str | None) -> Call:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", "/v1/webhooks/outbound", params=params, parse=_page(m.Webhook))


def create_webhook(body: Any) -> Call:
    return Call("POST", "/v1/webhooks/outbound", json=_body(body), parse=_model(m.WebhookCreated))


def webhook(webhook_id: str) -> Call:
    return Call("GET", f"/v1/webhooks/outbound/{_q(webhook_id)}", parse=_model(m.Webhook))


def update_webhook(webhook_id: str, changes: Any) -> Call:
    return Call("PATCH", f"/v1/webhooks/outbound/{_q(webhook_id)}", json=_body(changes), parse=_model(m.Webhook))


def delete_webhook(webhook_id: str) -> Call:
    return Call("DELETE", f"/v1/webhooks/outbound/{_q(webhook_id)}", parse=lambda r: None)


def rotate_webhook_secret(webhook_id: str) -> Call:
    path = f"/v1/webhooks/outbound/{_q(webhook_id)}/rotate-secret"
    return Call("POST", path, parse=_model(m.WebhookCreated))


def ping_webhook(webhook_id: str) -> Call:
    return Call("POST", f"/v1/webhooks/outbound/{_q(webhook_id)}/test", parse=_model(m.Delivery))


def webhook_deliveries(webhook_id: str | None, limit: int, cursor: str | None) -> Call:
    params = {"webhook_id": webhook_id, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/webhooks/deliveries", params=params, parse=_page(m.Delivery))


def redeliver(delivery_id: str) -> Call:
    path = f"/v1/webhooks/deliveries/{_q(delivery_id)}/redeliver"
    return Call("POST", path, parse=_model(m.Delivery))


# -- inbound webhooks (administration; third parties call the hook's own URL) ------------------------------
def inbound_hooks(limit: int, cursor: str | None) -> Call:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", "/v1/webhooks/inbound", params=params, parse=_page(m.InboundHook))


def create_inbound_hook(body: Any) -> Call:
    return Call("POST", "/v1/webhooks/inbound", json=_body(body), parse=_model(m.InboundCreated))


def update_inbound_hook(hook_id: str, changes: Any) -> Call:
    return Call("PATCH", f"/v1/webhooks/inbound/{_q(hook_id)}", json=_body(changes), parse=_model(m.InboundHook))


def delete_inbound_hook(hook_id: str) -> Call:
    return Call("DELETE", f"/v1/webhooks/inbound/{_q(hook_id)}", parse=lambda r: None)


def inbound_hook_calls(hook_id: str, limit: int, cursor: str | None) -> Call:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", f"/v1/webhooks/inbound/{_q(hook_id)}/calls", params=params, parse=_page(m.InboundCall))


# -- usage ------------------------------------------------------------------------------------------------
def usage(start: str | None, end: str | None, group_by: str) -> Call:
    params = {"from": start, "to": end, "group_by": group_by}
    return Call("GET", "/v1/usage", params=params, parse=_model(m.UsageOut))


def usage_csv(start: str | None, end: str | None) -> Call:
    params = {"from": start, "to": end}
    return Call("GET", "/v1/usage/export.csv", params=params, headers={"Accept": "text/csv"}, parse=lambda r: r.text)
