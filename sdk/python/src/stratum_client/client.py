"""``Client`` (blocking) and ``AsyncClient`` (asyncio). Both build their requests with ``_api`` and retry
with ``_core.RetryPolicy``; only sending and sleeping differ."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from . import _api
from . import models as m
from ._core import TERMINAL, Call, Config, build_request, raise_for, should_retry
from .errors import APIConnectionError, APITimeoutError, JobFailed, StratumError, WaitTimeout
from .results import Export, SqlResult, WaferMap, has_pyarrow

DIRECT_UPLOAD_MAX = 4 * 1024 * 1024  # larger files go to a presigned URL (the AWS API takes 4 MB bodies)
EXPORT_TERMINAL = frozenset({"succeeded", "failed"})


def _context(lot_id: str | None, snapshot_job_id: str | None, wafer_ids: list[str] | None) -> dict | None:
    ctx = {"lot_id": lot_id, "snapshot_job_id": snapshot_job_id, "wafer_ids": wafer_ids}
    ctx = {k: v for k, v in ctx.items() if v is not None}
    return ctx or None


def _export_body(
    query: str | None,
    table: str | None,
    lot_id: str | None,
    filters: dict | None,
    format: str,  # noqa: A002
    snapshot_job_id: str | None,
    wafer_ids: list[str] | None,
) -> dict:
    body: dict[str, Any] = {"format": format}
    if query is not None:
        body["query"] = query
    if table is not None:
        body["table"] = table
    if filters:
        body["filters"] = filters
    ctx = _context(lot_id, snapshot_job_id, wafer_ids)
    if ctx:
        body["context"] = ctx
    return body


def _iso(v: Any) -> str | None:
    """A datetime/date as ISO 8601; a string as given."""
    return v.isoformat() if hasattr(v, "isoformat") else v


def _day(v: Any) -> str | None:
    """A date/datetime as ``YYYY-MM-DD``; a string as given."""
    return v.strftime("%Y-%m-%d") if hasattr(v, "strftime") else v


def _results_params(kw: dict[str, Any]) -> dict[str, Any]:
    keys = ("snapshot_job_id", "test_name", "wafer_id", "site_num", "view")
    return {k: kw.get(k) for k in keys}


class _Base:
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        direct_upload_max: int = DIRECT_UPLOAD_MAX,
    ) -> None:
        self.config = Config.make(api_key, base_url, timeout, max_retries, backoff, max_backoff)
        self.direct_upload_max = direct_upload_max

    @property
    def base_url(self) -> str:
        return self.config.base_url


class Client(_Base):
    """Blocking client. ``Client(api_key=..., base_url=...)``; the key defaults to ``$STRATUM_API_KEY``
    and the URL to ``$STRATUM_BASE_URL`` (else http://127.0.0.1:8000). ``transport`` (an httpx transport)
    or ``http_client`` (an ``httpx.Client``, e.g. Starlette's ``TestClient(app)``) replace the network."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(api_key, base_url, **kw)
        self._http = http_client or httpx.Client(timeout=self.config.timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------------
    def _send(self, call: Call) -> Any:
        policy = self.config.retry
        attempt = 0
        while True:
            req = build_request(self._http, self.config, call)
            try:
                resp = self._http.send(req, stream=True)
            except httpx.TimeoutException as exc:
                if attempt >= policy.max_retries:
                    raise APITimeoutError(f"{call.method} {req.url.path}: timed out: {exc}") from exc
                time.sleep(policy.delay(attempt))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                if attempt >= policy.max_retries:
                    raise APIConnectionError(f"{call.method} {req.url.path}: {exc}") from exc
                time.sleep(policy.delay(attempt))
                attempt += 1
                continue
            if should_retry(resp) and attempt < policy.max_retries:
                resp.close()
                time.sleep(policy.delay(attempt, resp))
                attempt += 1
                continue
            if call.stream and resp.is_success:
                return call.parse(resp)
            try:
                resp.read()
            finally:
                resp.close()
            raise_for(resp)
            return call.parse(resp)

    def _paginate(self, make, limit: int) -> Iterator[Any]:
        cursor = None
        while True:
            items, cursor = self._send(make(limit, cursor))
            yield from items
            if not cursor:
                return

    # -- status and jobs ---------------------------------------------------------------------------
    def status(self) -> m.Status:
        return self._send(_api.status())

    def jobs(self, *, status: str | None = None, lot_id: str | None = None, page_size: int = 100) -> Iterator[m.JobOut]:
        """Every job, newest first (pages fetched as you iterate)."""
        return self._paginate(lambda n, c: _api.jobs(status, lot_id, n, c), page_size)

    def job(self, job_id: str) -> m.JobOut:
        return self._send(_api.job(job_id))

    def wait_for_job(self, job_id: str, *, timeout: float = 600.0, poll_interval: float = 0.5) -> m.JobOut:
        """Poll until the job ends; raises ``JobFailed`` on ``failed`` and ``WaitTimeout`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = min(0.1, poll_interval)
        while True:
            job = self.job(job_id)
            if job.status in TERMINAL:
                if job.status == "failed":
                    raise JobFailed(job)
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout:g} s", job)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(poll_interval, delay * 2)

    # -- uploads -----------------------------------------------------------------------------------
    def upload(
        self,
        path: str | os.PathLike,
        *,
        filename: str | None = None,
        wait: bool = False,
        timeout: float = 600.0,
        idempotency_key: str | None = None,
    ) -> m.JobOut:
        """Upload an STDF file (streamed). Files up to ``direct_upload_max`` bytes go in the request body,
        larger ones to a presigned URL. With ``wait=True``, return the job once it has ended."""
        p = os.fspath(path)
        name = filename or os.path.basename(p)
        if os.path.getsize(p) <= self.direct_upload_max:
            job = self._send(_api.upload_direct(p, name, False, idempotency_key))
        else:
            pre = self._send(_api.presign(name, os.path.getsize(p), idempotency_key))
            self._send(_api.put_presigned(pre, p, False))
            job = pre.job
        return self.wait_for_job(job.job_id, timeout=timeout) if wait else job

    def inspect(self, path: str | os.PathLike) -> m.InspectOut:
        return self._send(_api.inspect(os.fspath(path)))

    # -- lots and analytics -------------------------------------------------------------------------
    def lots(
        self,
        *,
        q: str | None = None,
        part_type: str | None = None,
        program: str | None = None,
        start_from: str | None = None,
        start_to: str | None = None,
        page_size: int = 100,
    ) -> Iterator[m.LotSummary]:
        return self._paginate(lambda n, c: _api.lots(q, part_type, program, start_from, start_to, n, c), page_size)

    def lot(self, lot_id: str, *, snapshot_job_id: str | None = None) -> m.LotDetail:
        return self._send(_api.lot(lot_id, snapshot_job_id))

    def wafers(self, lot_id: str, *, snapshot_job_id: str | None = None) -> list[m.WaferOut]:
        return self._send(_api.wafers(lot_id, snapshot_job_id))

    def wafer_map(self, lot_id: str, wafer_id: str, **kw: Any) -> WaferMap:
        """The die map (``test_num=`` adds a parametric value per die); ``.png()`` / ``.svg()`` render it."""
        wm = self._send(_api.wafer_map_obj(lot_id, wafer_id, **kw))
        wm._client = self
        return wm

    def wafer_map_image(self, lot_id: str, wafer_id: str, *, format: str = "png", **kw: Any) -> bytes:  # noqa: A002
        return self._send(_api.wafer_map(lot_id, wafer_id, format, **kw))

    def tests(
        self, lot_id: str, *, wafer_id: str | None = None, snapshot_job_id: str | None = None, view: str = "final"
    ) -> list[m.TestStat]:
        return self._send(_api.tests(lot_id, wafer_id, snapshot_job_id, view))

    def results(self, lot_id: str, test_num: int, *, page_size: int = 1000, **kw: Any) -> Iterator[m.ResultRow]:
        """Per-die results of one test (``wafer_id``, ``site_num``, ``view``, ``snapshot_job_id`` filter)."""
        params = _results_params(kw)
        return self._paginate(lambda n, c: _api.results(lot_id, test_num, params, n, c), page_size)

    def capability(self, lot_id: str, **params: Any) -> m.CapabilityOut:
        return self._send(_api.capability(lot_id, params))

    def bins(self, lot_id: str, **params: Any) -> m.BinsOut:
        return self._send(_api.bins(lot_id, params))

    def chart(self, path: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        """Any chart route (``/v1/lots/L1/bins/pareto`` ...): its JSON, or PNG/SVG bytes."""
        return self._send(_api.chart(path, params, format))

    def stacked_map(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        """Fail rate (``metric="fail"``), a bin's share or a test's median per die position over wafers/lots."""
        return self._send(_api.named_chart("stacked_map", format, lot_id=lot_id, **params))

    def pareto(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return self._send(_api.named_chart("pareto", format, lot_id=lot_id, **params))

    def histogram(self, lot_id: str, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return self._send(_api.named_chart("histogram", format, lot_id=lot_id, test_num=test_num, **params))

    def boxplot(self, lot_id: str, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return self._send(_api.named_chart("boxplot", format, lot_id=lot_id, test_num=test_num, **params))

    def trend(self, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return self._send(_api.named_chart("trend", format, test_num=test_num, **params))

    def gallery(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return self._send(_api.named_chart("gallery", format, lot_id=lot_id, **params))

    # -- SQL and exports ---------------------------------------------------------------------------
    def sql(
        self,
        query: str,
        *,
        lot_id: str | None = None,
        snapshot_job_id: str | None = None,
        wafer_ids: list[str] | None = None,
        page_size: int | None = None,
        arrow: bool | None = None,
    ) -> SqlResult:
        """Run a read-only query and fetch every page. The pages move as Arrow IPC streams when pyarrow is
        installed (``to_arrow()`` / ``to_pandas()`` then convert nothing; ``rows`` are made from them on first
        use, equal to the JSON answer's), else as JSON; ``arrow=True`` / ``False`` chooses."""
        ctx = _context(lot_id, snapshot_job_id, wafer_ids)
        arrow = has_pyarrow() if arrow is None else arrow
        result = SqlResult(query)
        cursor = None
        while True:
            page = self._send(_api.sql_page(query, ctx, page_size, cursor, arrow))
            result.pages.append(page)
            cursor = page.next_cursor
            if not cursor:
                return result

    def sql_schema(self) -> list[m.SchemaTable]:
        return self._send(_api.sql_schema())

    def export(
        self,
        query: str | None = None,
        *,
        table: str | None = None,
        lot_id: str | None = None,
        filters: dict | None = None,
        format: str = "parquet",  # noqa: A002
        snapshot_job_id: str | None = None,
        wafer_ids: list[str] | None = None,
    ) -> Export:
        """Start an export of any size (a query, or a table of one lot with column filters)."""
        body = _export_body(query, table, lot_id, filters, format, snapshot_job_id, wafer_ids)
        return self._send(_api.create_export(body, self))

    def get_export(self, export_id: str) -> Export:
        return self._send(_api.get_export(export_id, self))

    def wait_for_export(self, export_id: str, *, timeout: float = 600.0, poll_interval: float = 0.5) -> Export:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            e = self.get_export(export_id)
            if e.status in EXPORT_TERMINAL:
                if e.status == "failed":
                    raise StratumError(f"export {export_id} failed: {e.body.get('error')}")
                return e
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"export {export_id} still {e.status} after {timeout:g} s", e)
            time.sleep(delay)
            delay = min(poll_interval, delay * 2)

    def download_export(self, export: Export, path: str | os.PathLike, *, timeout: float = 600.0) -> str:
        e = self.wait_for_export(export.export_id, timeout=timeout)
        out = os.fspath(path)
        tmp = out + ".part"
        resp = self._send(_api.download(e.download_url, self.base_url))
        try:
            with open(tmp, "wb") as f:
                for chunk in resp.iter_bytes(1024 * 1024):
                    f.write(chunk)
        finally:
            resp.close()
        os.replace(tmp, out)
        return out

    # -- pattern classification --------------------------------------------------------------------------
    def classify(
        self,
        *,
        wafer_id: str | None = None,
        file_path: str | os.PathLike | None = None,
        map_data: bytes | str | None = None,
        dies: list[dict] | None = None,
        grid: list[list[int]] | None = None,
        lot_id: str | None = None,
        snapshot_job_id: str | None = None,
    ) -> m.ClassifyOut:
        """Classify one wafer map: an STDF file (``file_path`` or ``map_data`` bytes; ``wafer_id`` picks the
        wafer), a die list, a WM-811K grid, or a lake wafer (``lot_id`` + ``wafer_id``). The result's
        ``pattern_classes`` (highest confidence first) carry ``class_id`` and ``confidence``."""
        body = _api.classify_body(wafer_id, file_path, map_data, dies, grid, lot_id, snapshot_job_id)
        return self._send(_api.classify(body))

    def batch(
        self, maps: list[dict] | None = None, *, lot_id: str | None = None, snapshot_job_id: str | None = None
    ) -> m.BatchOut:
        """Classify several maps (each a classify body) or every wafer of a lake lot; a map that fails is an
        item with ``error`` (problem+json fields), not an exception."""
        if (maps is None) == (lot_id is None):
            raise ValueError("give maps or lot_id")
        body = {"maps": maps} if maps is not None else {"lot_id": lot_id, "snapshot_job_id": snapshot_job_id}
        return self._send(_api.batch({k: v for k, v in body.items() if v is not None}))

    def patterns(self, *, family: str | None = None, page_size: int = 100) -> Iterator[m.PatternClassOut]:
        return self._paginate(lambda n, c: _api.patterns(family, n, c), page_size)

    def pattern(self, class_id: str) -> m.PatternClassOut:
        return self._send(_api.pattern(class_id))

    def pattern_example(self, class_id: str) -> bytes:
        """An example map of the class as PNG bytes."""
        return self._send(_api.pattern_example(class_id))

    # -- monitors --------------------------------------------------------------------------------------------
    def monitors(self, *, page_size: int = 100) -> Iterator[m.MonitorOut]:
        return self._paginate(lambda n, c: _api.monitors(n, c), page_size)

    def create_monitor(self, monitor: m.MonitorIn | dict[str, Any]) -> m.MonitorOut:
        return self._send(_api.create_monitor(monitor))

    def monitor(self, monitor_id: str) -> m.MonitorOut:
        return self._send(_api.monitor(monitor_id))

    def update_monitor(self, monitor_id: str, changes: m.MonitorPatch | dict[str, Any]) -> m.MonitorOut:
        return self._send(_api.update_monitor(monitor_id, changes))

    def delete_monitor(self, monitor_id: str) -> None:
        self._send(_api.delete_monitor(monitor_id))

    def pause_monitor(self, monitor_id: str) -> m.MonitorOut:
        return self._send(_api.monitor_state(monitor_id, "pause"))

    def resume_monitor(self, monitor_id: str) -> m.MonitorOut:
        return self._send(_api.monitor_state(monitor_id, "resume"))

    def run_monitor(self, monitor_id: str) -> m.RunNow:
        """Run a monitor now (synchronously) and return the run with a preview of its findings."""
        return self._send(_api.run_monitor(monitor_id))

    def monitor_runs(
        self, monitor_id: str, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[m.RunRecord]:
        return self._paginate(lambda n, c: _api.monitor_runs(monitor_id, status, n, c), page_size)

    def monitor_run(self, run_id: str) -> m.RunRecord:
        return self._send(_api.monitor_run(run_id))

    def monitor_findings(self, monitor_id: str, *, page_size: int = 100) -> Iterator[m.Finding]:
        return self._paginate(lambda n, c: _api.monitor_findings(monitor_id, n, c), page_size)

    def cron_preview(
        self, expression: str, *, timezone: str = "UTC", count: int = 5, after: str | None = None
    ) -> m.CronPreview:
        """The next fire times of a schedule expression, e.g. ``cron(0 6 ? * MON-FRI *)``."""
        return self._send(_api.cron_preview(expression, timezone, count, after))

    def backtest(self, monitor_id: str, *, start: str, end: str) -> dict[str, Any]:
        """Evaluate the monitor's rule over the snapshots published between ``start`` and ``end`` (ISO 8601),
        recording and notifying nothing."""
        return self._send(_api.backtest(monitor_id, start, end))

    # -- notifications ---------------------------------------------------------------------------------------
    def notifications(
        self, *, unread: bool = False, kind: str | None = None, since: Any = None, page_size: int = 50
    ) -> Iterator[m.Notification]:
        """The workspace's inbox, newest first (``unread=True``, ``kind=``, ``since=`` a datetime or ISO 8601)."""
        s = _iso(since)
        return self._paginate(lambda n, c: _api.notifications(unread, kind, s, n, c), page_size)

    def notification_prefs(self) -> m.Prefs:
        return self._send(_api.notification_prefs())

    def set_notification_prefs(self, prefs: m.Prefs | dict[str, Any]) -> m.Prefs:
        """Replace the inbox preferences (digest, email recipients, kinds, mute hours)."""
        return self._send(_api.set_notification_prefs(prefs))

    def mark_notification_read(self, notification_id: str) -> m.Notification:
        return self._send(_api.mark_notification_read(notification_id))

    def mark_all_notifications_read(self) -> int:
        """Mark every unread notification read; returns how many were."""
        return self._send(_api.mark_all_notifications_read())

    def dismiss_notification(self, notification_id: str) -> None:
        self._send(_api.dismiss_notification(notification_id))

    # -- webhooks --------------------------------------------------------------------------------------------
    def webhooks(self, *, page_size: int = 50) -> Iterator[m.Webhook]:
        """Outbound webhooks of the workspace (``admin`` scope)."""
        return self._paginate(lambda n, c: _api.webhooks(n, c), page_size)

    def create_webhook(self, webhook: m.WebhookIn | dict[str, Any]) -> m.WebhookCreated:
        """Create an outbound webhook; the answer's ``secret`` is shown this once (keep it to verify
        signatures)."""
        return self._send(_api.create_webhook(webhook))

    def webhook(self, webhook_id: str) -> m.Webhook:
        return self._send(_api.webhook(webhook_id))

    def update_webhook(self, webhook_id: str, changes: m.WebhookPatch | dict[str, Any]) -> m.Webhook:
        return self._send(_api.update_webhook(webhook_id, changes))

    def delete_webhook(self, webhook_id: str) -> None:
        self._send(_api.delete_webhook(webhook_id))

    def rotate_webhook_secret(self, webhook_id: str) -> m.WebhookCreated:
        """A new secret (shown once); the previous one keeps signing for 24 h."""
        return self._send(_api.rotate_webhook_secret(webhook_id))

    def ping_webhook(self, webhook_id: str) -> m.Delivery:
        """Send a ``ping`` event now and return its delivery (attempts, status codes)."""
        return self._send(_api.ping_webhook(webhook_id))

    def webhook_deliveries(self, *, webhook_id: str | None = None, page_size: int = 50) -> Iterator[m.Delivery]:
        """The delivery audit log, newest first (of one webhook with ``webhook_id=``)."""
        return self._paginate(lambda n, c: _api.webhook_deliveries(webhook_id, n, c), page_size)

    def redeliver(self, delivery_id: str) -> m.Delivery:
        """Deliver an event again (same ``webhook-id`` header, so receivers can de-duplicate)."""
        return self._send(_api.redeliver(delivery_id))

    def inbound_hooks(self, *, page_size: int = 50) -> Iterator[m.InboundHook]:
        """Inbound webhooks (a URL and token third parties call to notify, run a monitor, ...)."""
        return self._paginate(lambda n, c: _api.inbound_hooks(n, c), page_size)

    def create_inbound_hook(self, hook: m.InboundIn | dict[str, Any]) -> m.InboundCreated:
        """Create an inbound webhook; the answer's ``token`` is shown this once."""
        return self._send(_api.create_inbound_hook(hook))

    def update_inbound_hook(self, hook_id: str, changes: m.InboundPatch | dict[str, Any]) -> m.InboundHook:
        return self._send(_api.update_inbound_hook(hook_id, changes))

    def delete_inbound_hook(self, hook_id: str) -> None:
        self._send(_api.delete_inbound_hook(hook_id))

    def inbound_hook_calls(self, hook_id: str, *, page_size: int = 50) -> Iterator[m.InboundCall]:
        """Calls an inbound webhook received, newest first, with their payloads and results."""
        return self._paginate(lambda n, c: _api.inbound_hook_calls(hook_id, n, c), page_size)

    # -- usage -----------------------------------------------------------------------------------------------
    def usage(self, *, start: Any = None, end: Any = None, group_by: str = "day") -> m.UsageOut:
        """Requests and classifications per ``day``, ``route`` or ``key`` between two days (``YYYY-MM-DD`` or
        dates, UTC), with each key's classification quota (``manage`` scope)."""
        return self._send(_api.usage(_day(start), _day(end), group_by))

    def usage_csv(self, *, start: Any = None, end: Any = None) -> str:
        """The same usage per day, key and route as CSV text (``day,key_id,route,requests,classifications``)."""
        return self._send(_api.usage_csv(_day(start), _day(end)))


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client` (same methods, awaited; iterators are ``async for``).
    ``transport=httpx.ASGITransport(app)`` talks to an ASGI app in the same process."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(api_key, base_url, **kw)
        self._http = http_client or httpx.AsyncClient(timeout=self.config.timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> Any:
        policy = self.config.retry
        attempt = 0
        while True:
            req = build_request(self._http, self.config, call)
            try:
                resp = await self._http.send(req, stream=True)
            except httpx.TimeoutException as exc:
                if attempt >= policy.max_retries:
                    raise APITimeoutError(f"{call.method} {req.url.path}: timed out: {exc}") from exc
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1
                continue
            except httpx.TransportError as exc:
                if attempt >= policy.max_retries:
                    raise APIConnectionError(f"{call.method} {req.url.path}: {exc}") from exc
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1
                continue
            if should_retry(resp) and attempt < policy.max_retries:
                await resp.aclose()
                await asyncio.sleep(policy.delay(attempt, resp))
                attempt += 1
                continue
            if call.stream and resp.is_success:
                return call.parse(resp)
            try:
                await resp.aread()
            finally:
                await resp.aclose()
            raise_for(resp)
            return call.parse(resp)

    async def _paginate(self, make, limit: int) -> AsyncIterator[Any]:
        cursor = None
        while True:
            items, cursor = await self._send(make(limit, cursor))
            for i in items:
                yield i
            if not cursor:
                return

    async def status(self) -> m.Status:
        return await self._send(_api.status())

    def jobs(
        self, *, status: str | None = None, lot_id: str | None = None, page_size: int = 100
    ) -> AsyncIterator[m.JobOut]:
        return self._paginate(lambda n, c: _api.jobs(status, lot_id, n, c), page_size)

    async def job(self, job_id: str) -> m.JobOut:
        return await self._send(_api.job(job_id))

    async def wait_for_job(self, job_id: str, *, timeout: float = 600.0, poll_interval: float = 0.5) -> m.JobOut:
        deadline = time.monotonic() + timeout
        delay = min(0.1, poll_interval)
        while True:
            job = await self.job(job_id)
            if job.status in TERMINAL:
                if job.status == "failed":
                    raise JobFailed(job)
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout:g} s", job)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(poll_interval, delay * 2)

    async def upload(
        self,
        path: str | os.PathLike,
        *,
        filename: str | None = None,
        wait: bool = False,
        timeout: float = 600.0,
        idempotency_key: str | None = None,
    ) -> m.JobOut:
        p = os.fspath(path)
        name = filename or os.path.basename(p)
        if os.path.getsize(p) <= self.direct_upload_max:
            job = await self._send(_api.upload_direct(p, name, True, idempotency_key))
        else:
            pre = await self._send(_api.presign(name, os.path.getsize(p), idempotency_key))
            await self._send(_api.put_presigned(pre, p, True))
            job = pre.job
        return await self.wait_for_job(job.job_id, timeout=timeout) if wait else job

    async def inspect(self, path: str | os.PathLike) -> m.InspectOut:
        return await self._send(_api.inspect(os.fspath(path)))

    def lots(
        self,
        *,
        q: str | None = None,
        part_type: str | None = None,
        program: str | None = None,
        start_from: str | None = None,
        start_to: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[m.LotSummary]:
        return self._paginate(lambda n, c: _api.lots(q, part_type, program, start_from, start_to, n, c), page_size)

    async def lot(self, lot_id: str, *, snapshot_job_id: str | None = None) -> m.LotDetail:
        return await self._send(_api.lot(lot_id, snapshot_job_id))

    async def wafers(self, lot_id: str, *, snapshot_job_id: str | None = None) -> list[m.WaferOut]:
        return await self._send(_api.wafers(lot_id, snapshot_job_id))

    async def wafer_map(self, lot_id: str, wafer_id: str, **kw: Any) -> WaferMap:
        wm = await self._send(_api.wafer_map_obj(lot_id, wafer_id, **kw))
        wm._client = self
        return wm

    async def wafer_map_image(self, lot_id: str, wafer_id: str, *, format: str = "png", **kw: Any) -> bytes:  # noqa: A002
        return await self._send(_api.wafer_map(lot_id, wafer_id, format, **kw))

    async def tests(
        self, lot_id: str, *, wafer_id: str | None = None, snapshot_job_id: str | None = None, view: str = "final"
    ) -> list[m.TestStat]:
        return await self._send(_api.tests(lot_id, wafer_id, snapshot_job_id, view))

    def results(self, lot_id: str, test_num: int, *, page_size: int = 1000, **kw: Any) -> AsyncIterator[m.ResultRow]:
        params = _results_params(kw)
        return self._paginate(lambda n, c: _api.results(lot_id, test_num, params, n, c), page_size)

    async def capability(self, lot_id: str, **params: Any) -> m.CapabilityOut:
        return await self._send(_api.capability(lot_id, params))

    async def bins(self, lot_id: str, **params: Any) -> m.BinsOut:
        return await self._send(_api.bins(lot_id, params))

    async def chart(self, path: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        """Any chart route (``/v1/lots/L1/bins/pareto`` ...): its JSON, or PNG/SVG bytes."""
        return await self._send(_api.chart(path, params, format))

    async def stacked_map(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        """Fail rate (``metric="fail"``), a bin's share or a test's median per die position over wafers/lots."""
        return await self._send(_api.named_chart("stacked_map", format, lot_id=lot_id, **params))

    async def pareto(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._send(_api.named_chart("pareto", format, lot_id=lot_id, **params))

    async def histogram(self, lot_id: str, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._send(_api.named_chart("histogram", format, lot_id=lot_id, test_num=test_num, **params))

    async def boxplot(self, lot_id: str, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._send(_api.named_chart("boxplot", format, lot_id=lot_id, test_num=test_num, **params))

    async def trend(self, test_num: int, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._send(_api.named_chart("trend", format, test_num=test_num, **params))

    async def gallery(self, lot_id: str, *, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._send(_api.named_chart("gallery", format, lot_id=lot_id, **params))

    async def sql(
        self,
        query: str,
        *,
        lot_id: str | None = None,
        snapshot_job_id: str | None = None,
        wafer_ids: list[str] | None = None,
        page_size: int | None = None,
        arrow: bool | None = None,
    ) -> SqlResult:
        ctx = _context(lot_id, snapshot_job_id, wafer_ids)
        arrow = has_pyarrow() if arrow is None else arrow
        result = SqlResult(query)
        cursor = None
        while True:
            page = await self._send(_api.sql_page(query, ctx, page_size, cursor, arrow))
            result.pages.append(page)
            cursor = page.next_cursor
            if not cursor:
                return result

    async def sql_schema(self) -> list[m.SchemaTable]:
        return await self._send(_api.sql_schema())

    async def export(
        self,
        query: str | None = None,
        *,
        table: str | None = None,
        lot_id: str | None = None,
        filters: dict | None = None,
        format: str = "parquet",  # noqa: A002
        snapshot_job_id: str | None = None,
        wafer_ids: list[str] | None = None,
    ) -> Export:
        body = _export_body(query, table, lot_id, filters, format, snapshot_job_id, wafer_ids)
        return await self._send(_api.create_export(body, self))

    async def get_export(self, export_id: str) -> Export:
        return await self._send(_api.get_export(export_id, self))

    async def wait_for_export(self, export_id: str, *, timeout: float = 600.0, poll_interval: float = 0.5) -> Export:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            e = await self.get_export(export_id)
            if e.status in EXPORT_TERMINAL:
                if e.status == "failed":
                    raise StratumError(f"export {export_id} failed: {e.body.get('error')}")
                return e
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"export {export_id} still {e.status} after {timeout:g} s", e)
            await asyncio.sleep(delay)
            delay = min(poll_interval, delay * 2)

    async def download_export(self, export: Export, path: str | os.PathLike, *, timeout: float = 600.0) -> str:
        e = await self.wait_for_export(export.export_id, timeout=timeout)
        out = os.fspath(path)
        tmp = out + ".part"
        resp = await self._send(_api.download(e.download_url, self.base_url))
        try:
            with open(tmp, "wb") as f:
                async for chunk in resp.aiter_bytes(1024 * 1024):
                    f.write(chunk)
        finally:
            await resp.aclose()
        os.replace(tmp, out)
        return out

    # -- pattern classification --------------------------------------------------------------------------
    async def classify(
        self,
        *,
        wafer_id: str | None = None,
        file_path: str | os.PathLike | None = None,
        map_data: bytes | str | None = None,
        dies: list[dict] | None = None,
        grid: list[list[int]] | None = None,
        lot_id: str | None = None,
        snapshot_job_id: str | None = None,
    ) -> m.ClassifyOut:
        """Classify one wafer map: an STDF file (``file_path`` or ``map_data`` bytes; ``wafer_id`` picks the
        wafer), a die list, a WM-811K grid, or a lake wafer (``lot_id`` + ``wafer_id``). The result's
        ``pattern_classes`` (highest confidence first) carry ``class_id`` and ``confidence``."""
        body = _api.classify_body(wafer_id, file_path, map_data, dies, grid, lot_id, snapshot_job_id)
        return await self._send(_api.classify(body))

    async def batch(
        self, maps: list[dict] | None = None, *, lot_id: str | None = None, snapshot_job_id: str | None = None
    ) -> m.BatchOut:
        """Classify several maps (each a classify body) or every wafer of a lake lot; a map that fails is an
        item with ``error`` (problem+json fields), not an exception."""
        if (maps is None) == (lot_id is None):
            raise ValueError("give maps or lot_id")
        body = {"maps": maps} if maps is not None else {"lot_id": lot_id, "snapshot_job_id": snapshot_job_id}
        return await self._send(_api.batch({k: v for k, v in body.items() if v is not None}))

    def patterns(self, *, family: str | None = None, page_size: int = 100) -> AsyncIterator[m.PatternClassOut]:
        return self._paginate(lambda n, c: _api.patterns(family, n, c), page_size)

    async def pattern(self, class_id: str) -> m.PatternClassOut:
        return await self._send(_api.pattern(class_id))

    async def pattern_example(self, class_id: str) -> bytes:
        """An example map of the class as PNG bytes."""
        return await self._send(_api.pattern_example(class_id))

    # -- monitors --------------------------------------------------------------------------------------------
    def monitors(self, *, page_size: int = 100) -> AsyncIterator[m.MonitorOut]:
        return self._paginate(lambda n, c: _api.monitors(n, c), page_size)

    async def create_monitor(self, monitor: m.MonitorIn | dict[str, Any]) -> m.MonitorOut:
        return await self._send(_api.create_monitor(monitor))

    async def monitor(self, monitor_id: str) -> m.MonitorOut:
        return await self._send(_api.monitor(monitor_id))

    async def update_monitor(self, monitor_id: str, changes: m.MonitorPatch | dict[str, Any]) -> m.MonitorOut:
        return await self._send(_api.update_monitor(monitor_id, changes))

    async def delete_monitor(self, monitor_id: str) -> None:
        await self._send(_api.delete_monitor(monitor_id))

    async def pause_monitor(self, monitor_id: str) -> m.MonitorOut:
        return await self._send(_api.monitor_state(monitor_id, "pause"))

    async def resume_monitor(self, monitor_id: str) -> m.MonitorOut:
        return await self._send(_api.monitor_state(monitor_id, "resume"))

    async def run_monitor(self, monitor_id: str) -> m.RunNow:
        """Run a monitor now (synchronously) and return the run with a preview of its findings."""
        return await self._send(_api.run_monitor(monitor_id))

    def monitor_runs(
        self, monitor_id: str, *, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[m.RunRecord]:
        return self._paginate(lambda n, c: _api.monitor_runs(monitor_id, status, n, c), page_size)

    async def monitor_run(self, run_id: str) -> m.RunRecord:
        return await self._send(_api.monitor_run(run_id))

    def monitor_findings(self, monitor_id: str, *, page_size: int = 100) -> AsyncIterator[m.Finding]:
        return self._paginate(lambda n, c: _api.monitor_findings(monitor_id, n, c), page_size)

    async def cron_preview(
        self, expression: str, *, timezone: str = "UTC", count: int = 5, after: str | None = None
    ) -> m.CronPreview:
        """The next fire times of a schedule expression, e.g. ``cron(0 6 ? * MON-FRI *)``."""
        return await self._send(_api.cron_preview(expression, timezone, count, after))

    async def backtest(self, monitor_id: str, *, start: str, end: str) -> dict[str, Any]:
        """Evaluate the monitor's rule over the snapshots published between ``start`` and ``end`` (ISO 8601),
        recording and notifying nothing."""
        return await self._send(_api.backtest(monitor_id, start, end))

    # -- notifications ---------------------------------------------------------------------------------------
    def notifications(
        self, *, unread: bool = False, kind: str | None = None, since: Any = None, page_size: int = 50
    ) -> AsyncIterator[m.Notification]:
        """The workspace's inbox, newest first (``unread=True``, ``kind=``, ``since=`` a datetime or ISO 8601)."""
        s = _iso(since)
        return self._paginate(lambda n, c: _api.notifications(unread, kind, s, n, c), page_size)

    async def notification_prefs(self) -> m.Prefs:
        return await self._send(_api.notification_prefs())

    async def set_notification_prefs(self, prefs: m.Prefs | dict[str, Any]) -> m.Prefs:
        """Replace the inbox preferences (digest, email recipients, kinds, mute hours)."""
        return await self._send(_api.set_notification_prefs(prefs))

    async def mark_notification_read(self, notification_id: str) -> m.Notification:
        return await self._send(_api.mark_notification_read(notification_id))

    async def mark_all_notifications_read(self) -> int:
        """Mark every unread notification read; returns how many were."""
        return await self._send(_api.mark_all_notifications_read())

    async def dismiss_notification(self, notification_id: str) -> None:
        await self._send(_api.dismiss_notification(notification_id))

    # -- webhooks --------------------------------------------------------------------------------------------
    def webhooks(self, *, page_size: int = 50) -> AsyncIterator[m.Webhook]:
        """Outbound webhooks of the workspace (``admin`` scope)."""
        return self._paginate(lambda n, c: _api.webhooks(n, c), page_size)

    async def create_webhook(self, webhook: m.WebhookIn | dict[str, Any]) -> m.WebhookCreated:
        """Create an outbound webhook; the answer's ``secret`` is shown this once (keep it to verify
        signatures)."""
        return await self._send(_api.create_webhook(webhook))

    async def webhook(self, webhook_id: str) -> m.Webhook:
        return await self._send(_api.webhook(webhook_id))

    async def update_webhook(self, webhook_id: str, changes: m.WebhookPatch | dict[str, Any]) -> m.Webhook:
        return await self._send(_api.update_webhook(webhook_id, changes))

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._send(_api.delete_webhook(webhook_id))

    async def rotate_webhook_secret(self, webhook_id: str) -> m.WebhookCreated:
        """A new secret (shown once); the previous one keeps signing for 24 h."""
        return await self._send(_api.rotate_webhook_secret(webhook_id))

    async def ping_webhook(self, webhook_id: str) -> m.Delivery:
        """Send a ``ping`` event now and return its delivery (attempts, status codes)."""
        return await self._send(_api.ping_webhook(webhook_id))

    def webhook_deliveries(self, *, webhook_id: str | None = None, page_size: int = 50) -> AsyncIterator[m.Delivery]:
        """The delivery audit log, newest first (of one webhook with ``webhook_id=``)."""
        return self._paginate(lambda n, c: _api.webhook_deliveries(webhook_id, n, c), page_size)

    async def redeliver(self, delivery_id: str) -> m.Delivery:
        """Deliver an event again (same ``webhook-id`` header, so receivers can de-duplicate)."""
        return await self._send(_api.redeliver(delivery_id))

    def inbound_hooks(self, *, page_size: int = 50) -> AsyncIterator[m.InboundHook]:
        """Inbound webhooks (a URL and token third parties call to notify, run a monitor, ...)."""
        return self._paginate(lambda n, c: _api.inbound_hooks(n, c), page_size)

    async def create_inbound_hook(self, hook: m.InboundIn | dict[str, Any]) -> m.InboundCreated:
        """Create an inbound webhook; the answer's ``token`` is shown this once."""
        return await self._send(_api.create_inbound_hook(hook))

    async def update_inbound_hook(self, hook_id: str, changes: m.InboundPatch | dict[str, Any]) -> m.InboundHook:
        return await self._send(_api.update_inbound_hook(hook_id, changes))

    async def delete_inbound_hook(self, hook_id: str) -> None:
        await self._send(_api.delete_inbound_hook(hook_id))

    def inbound_hook_calls(self, hook_id: str, *, page_size: int = 50) -> AsyncIterator[m.InboundCall]:
        """Calls an inbound webhook received, newest first, with their payloads and results."""
        return self._paginate(lambda n, c: _api.inbound_hook_calls(hook_id, n, c), page_size)

    # -- usage -----------------------------------------------------------------------------------------------
    async def usage(self, *, start: Any = None, end: Any = None, group_by: str = "day") -> m.UsageOut:
        """Requests and classifications per ``day``, ``route`` or ``key`` between two days (``YYYY-MM-DD`` or
        dates, UTC), with each key's classification quota (``manage`` scope)."""
        return await self._send(_api.usage(_day(start), _day(end), group_by))

    async def usage_csv(self, *, start: Any = None, end: Any = None) -> str:
        """The same usage per day, key and route as CSV text (``day,key_id,route,requests,classifications``)."""
        return await self._send(_api.usage_csv(_day(start), _day(end)))
