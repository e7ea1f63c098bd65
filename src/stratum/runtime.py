"""Wiring: settings → adapters → services. One ``Runtime`` per process (per Lambda container).

The CLI, the local server, the Lambda handlers and the tests all build their services here, and only
here, so the same code runs everywhere; only the adapters differ (local directory + SQLite, or S3 +
DynamoDB). Services are built on first use (a Lambda imports only what it touches) and once per runtime.

Naming: ``drop_store`` is the object store uploads land in; ``drop_processor`` is the service that turns
a dropped object into an ingest job (the ingest Lambda, the drop-folder watcher and the upload route use it).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from stratum.catalog import Catalog
from stratum.settings import Settings
from stratum.storage.factory import build_metadata_store, build_object_store
from stratum.storage.metadata import MetadataStore
from stratum.storage.objectstore import ObjectStore

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # imported lazily below: each service costs import time only when used
    from stratum.analytics.charts import ChartService
    from stratum.analytics.service import AnalyticsService
    from stratum.auth.keys import KeyService
    from stratum.auth.ratelimit import RateLimiter
    from stratum.auth.usage import UsageMeter, UsageReport
    from stratum.delivery.service import DeliveryService
    from stratum.events.model import Event
    from stratum.events.port import EventPort
    from stratum.ingest.drop import DropProcessor
    from stratum.ingest.service import IngestService
    from stratum.ingest.uploads import UploadService
    from stratum.monitors.service import MonitorService
    from stratum.patterns.service import PatternService
    from stratum.query.engine import QueryEngine
    from stratum.query.sql import SqlService


LOCAL_DROP_PREFIX = "incoming/"  # <data-dir>/incoming/ is the local drop folder


@dataclass
class Runtime:
    settings: Settings
    meta: MetadataStore
    lake: ObjectStore
    drop_store: ObjectStore
    # a process that runs a command and exits (the CLI): query sessions are not kept, so nothing is materialised
    one_shot: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, one_shot: bool = False) -> Runtime:
        if settings.backend == "local":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            (settings.data_dir / "incoming").mkdir(exist_ok=True)
        return cls(
            settings,
            build_metadata_store(settings),
            build_object_store(settings, area="lake"),
            build_object_store(settings, area="drop"),
            one_shot,
        )

    @property
    def drop_prefix(self) -> str:
        """Prefix of drop keys inside the drop store (the local store is the data directory)."""
        return LOCAL_DROP_PREFIX if self.settings.backend == "local" else self.settings.aws.drop_prefix

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.meta)

    @cached_property
    def events(self) -> EventPort:
        """The event port: in-process bus locally, EventBridge on AWS."""
        if self.settings.backend == "local":
            from stratum.events.local import InProcessBus

            bus = InProcessBus()

            # on_ingest monitors run for each published snapshot (on AWS an EventBridge rule does this)
            def run_monitors(e: Event) -> None:
                self.on_published(e)

            bus.subscribe(run_monitors, kinds=("job.succeeded", "job.partial"))

            # export requests run in process (the API's background task publishes them after the 202); on AWS a
            # rule routes them to the exports function's queue
            def run_export(e: Event) -> None:
                self.exports.handle_event(e)

            bus.subscribe(run_export, kinds=("export.requested",))
            return bus
        from stratum.events.eventbridge import EventBridgeBus

        aws = self.settings.aws
        return EventBridgeBus(aws.event_bus_name or "default", aws.region, endpoint_url=aws.endpoint_url or None)

    @cached_property
    def ingest(self) -> IngestService:
        from stratum.ingest.service import IngestService

        return IngestService(
            self.catalog, self.lake, self.settings, events=self.events, wafer_classifier=_wafer_pattern_rows
        )

    @cached_property
    def drop_processor(self) -> DropProcessor:
        from stratum.ingest.drop import DropProcessor

        return DropProcessor(self.ingest, self.drop_store, self.drop_prefix)

    @cached_property
    def uploads(self) -> UploadService:
        from stratum.ingest.uploads import UploadService

        return UploadService(
            self.settings, self.ingest, self.drop_store, self.drop_prefix, self.drop_processor, self.idempotency
        )

    @cached_property
    def engine(self) -> QueryEngine:
        from stratum.query.engine import QueryEngine

        engine = QueryEngine(
            self.catalog, self.lake, self.settings, materialize=not self.one_shot, parts_cache=self._parts_cache()
        )
        limit = self.settings.monitors.sql_findings_max

        # their stores are imported by the first query that names them
        def findings(ws: str, lots: set[str] | None) -> list[tuple]:
            from stratum.monitors.store import MonitorStore

            return MonitorStore(self.meta).finding_rows(ws, lots, limit)

        def pattern_history(ws: str, lots: set[str] | None) -> list[tuple]:
            from stratum.patterns.store import PatternStore

            return PatternStore(self.meta).rows(ws, lots)

        engine.row_sources["monitor_findings"] = findings
        engine.row_sources["wafer_pattern_history"] = pattern_history
        return engine

    def _parts_cache(self):  # noqa: ANN202 - imported lazily
        """The CLI's cache of computed ``parts`` rows on a local data directory (``stratum.query.parts_cache``)."""
        s = self.settings
        if not self.one_shot or s.backend != "local" or s.sql.cli_cache_mb <= 0:
            return None
        from stratum.query.parts_cache import PartsCache

        return PartsCache(s.data_dir / "cache" / "sql", s.sql.cli_cache_mb << 20)

    @cached_property
    def sql(self) -> SqlService:
        from stratum.query.sql import SqlService

        return SqlService(self.engine, self.settings)

    @cached_property
    def sql_runner(self):
        """User SQL for a server: in worker processes (``settings.sql.isolate``), else in-process."""
        if not self.settings.sql.isolate:
            return self.sql
        from stratum.query.workers import SqlWorkers

        return SqlWorkers(self.settings, (sys.executable, "-c", _SQL_WORKER_MAIN))

    @cached_property
    def analytics(self) -> AnalyticsService:
        from stratum.analytics.service import AnalyticsService

        return AnalyticsService(self.engine, self.catalog)

    @cached_property
    def charts(self) -> ChartService:
        from stratum.analytics.charts import ChartService

        return ChartService(self.analytics)

    @cached_property
    def usage(self) -> UsageMeter:
        from stratum.auth.usage import UsageMeter

        return UsageMeter(self.meta)

    @cached_property
    def usage_report(self) -> UsageReport:
        from stratum.auth.usage import UsageReport

        return UsageReport(self.usage, self.keys)

    @cached_property
    def patterns(self) -> PatternService:
        from stratum.patterns.service import PatternService, lake_adapters
        from stratum.patterns.store import PatternStore

        return PatternService(
            self.settings.patterns,
            meter=self.usage,
            # the analytics service (DuckDB) only when a wafer is read through it: publishing reads the files
            **lake_adapters(lambda: self.analytics, self.catalog, PatternStore(self.meta), self.lake),
        )

    def on_published(self, e: Event) -> list:
        """A ``job.succeeded|partial`` event: classify the final die maps of the job's wafers (stored, so
        ``wafer_patterns`` and the spatial-pattern monitors read them), then run the on_ingest monitors.
        The local bus calls this; on AWS the monitors function does."""
        lot_id = e.subject.get("lot_id")
        job_id = e.subject.get("job_id")
        if e.kind in ("job.succeeded", "job.partial") and lot_id and job_id:
            try:
                # a file without wafers (final test) has no die map: the pattern service is not even built
                if self._job_has_wafers(e.workspace, job_id):
                    self.patterns.classify_published(e.workspace, lot_id, job_id)
            except Exception:  # noqa: BLE001 - the snapshot is published either way; monitors still run
                log.exception("could not classify the wafers of job %s (lot %s)", job_id, lot_id)
        if "monitors" not in self.__dict__:
            from stratum.monitors import any_ingest_monitor

            # nothing to run: the monitor service (analytics, SQL, DuckDB) is not built for it
            if e.kind in ("job.succeeded", "job.partial") and not any_ingest_monitor(self.meta, e.workspace):
                return []
        return self.monitors.handle_event(e)

    def _job_has_wafers(self, ws: str, job_id: str) -> bool:
        """Whether the job's file wrote wafer runs (WIR/WRR): the parts' wafer ids come from them only."""
        from stratum.errors import NotFound

        try:
            rows = self.catalog.get_job(ws, job_id).rows
        except NotFound:
            return True  # let the pattern service find out and report
        return not rows or rows.get("wafer_runs", 0) > 0  # no counts at all: let the pattern service look

    @cached_property
    def keys(self) -> KeyService:
        from stratum.auth.keys import KeyService

        return KeyService(self.meta, environment=self.settings.environment)

    @cached_property
    def limiter(self) -> RateLimiter:
        from stratum.auth.ratelimit import RateLimiter

        return RateLimiter(self.meta, self.settings.rate_limits)

    @cached_property
    def monitors(self) -> MonitorService:
        """The monitor service with this runtime's scheduler: the in-process loop locally (started by
        ``stratum serve``), EventBridge Scheduler on AWS when the monitors function is configured."""
        from stratum.monitors.rules import Lake
        from stratum.monitors.scheduler import EventBridgeScheduler, LocalScheduler
        from stratum.monitors.service import MonitorService
        from stratum.monitors.store import MonitorStore

        store = MonitorStore(self.meta)
        svc = MonitorService(
            store, Lake(self.analytics, self.engine, self.sql, self.catalog, store), self.settings, events=self.events
        )
        cfg = self.settings.monitors
        if self.settings.backend == "local":
            svc.scheduler = LocalScheduler(store.scheduled_monitors, svc.fire, cfg.tick_seconds)
        elif cfg.function_arn:
            svc.scheduler = EventBridgeScheduler(self.settings)
        return svc

    @cached_property
    def idempotency(self):
        from stratum.ingest.idempotency import Idempotency

        return Idempotency(self.meta, self.settings.idempotency_ttl_seconds)

    @cached_property
    def exports(self):
        import sys

        from stratum.exports.service import ExportService

        # a server (local backend, SQL isolated) runs each export job in a memory-capped child process
        isolate = (
            (sys.executable, "-c", _EXPORT_WORKER_MAIN)
            if self.settings.backend == "local" and self.settings.sql.isolate
            else None
        )
        return ExportService(self.engine, self.meta, self.lake, self.settings, events=self.events, isolate=isolate)

    @cached_property
    def delivery(self) -> DeliveryService:
        """Inbox, webhooks, inbound hooks and email. Locally it subscribes to the in-process bus (its worker
        is started by ``stratum serve``); on AWS the delivery function feeds it EventBridge events."""
        from stratum.delivery.service import DeliveryService

        svc = DeliveryService(
            self.meta,
            self.settings,
            self.events,
            ingest_key=self._ingest_drop_key,
            annotate_lot=self.catalog.add_lot_note,
            run_monitor=self._run_monitor,
        )
        subscribe = getattr(self.events, "subscribe", None)
        if subscribe is not None:
            subscribe(svc.handle)
        return svc

    def _ingest_drop_key(self, ws: str, key: str) -> dict:
        """Inbound hook action: ingest an object already in the workspace's drop folder."""
        from stratum.errors import NotFound
        from stratum.ingest.drop import DropObject
        from stratum.ingest.watcher import LOCAL_BUCKET

        full = f"{self.drop_prefix}{ws}/{key}"
        bucket = self.settings.aws.drop_bucket if self.settings.backend == "aws" else LOCAL_BUCKET
        if self.drop_store.head(full) is None:
            # the drop folder (watcher, S3 notification) may have ingested and moved it already
            moved = self.drop_processor.moved(ws, bucket, full)
            if moved is None:
                raise NotFound(f"no object {key!r} in workspace {ws!r}'s drop folder")
            job = self.catalog.get_job(ws, moved["job_id"])
            return {"job_id": job.job_id, "status": job.status, "lot_id": job.lot_id, "moved_to": moved["to"]}
        res = self.drop_processor.handle(DropObject(bucket, full))
        if res.job is None:
            return {"job_id": None, "status": "skipped", "reason": "not an STDF file name"}
        return {"job_id": res.job.job_id, "status": res.job.status, "lot_id": res.job.lot_id, "moved_to": res.moved_to}

    def _run_monitor(self, ws: str, monitor_id: str, payload: dict) -> dict:
        """Inbound hook action: run a monitor now (optionally on one lot: payload ``lot_id``)."""
        lot_id = payload.get("lot_id") if isinstance(payload.get("lot_id"), str) else None
        run, _ = self.monitors.run(ws, monitor_id, lot_id=lot_id)
        return {
            "run_id": run.run_id,
            "status": run.status,
            "findings": run.findings,
            "recoveries": run.recoveries,
            "error": run.error,
        }

    def warm_up(self, workspace: str | None = None) -> None:
        """Pay a server's one-off costs before its first requests: the libraries the analytics, map and SQL
        routes import on first use, the analytics and chart services, the workspace's DuckDB database, and one
        SQL worker process (started on a thread of its own; this returns once it is ready). ``stratum serve``
        runs this on a background thread at start, the API Lambda in its init phase. A lot's snapshot views
        are still built by the first request that reads the lot."""
        worker = None
        if self.settings.sql.isolate:
            worker = threading.Thread(target=self.sql_runner.warm, name="stratum-sql-warm", daemon=True)
            worker.start()
        import numpy  # noqa: F401
        import PIL.Image  # noqa: F401

        # no pyarrow: only Arrow-format SQL results may use it (their encoder is imported by the first such
        # request), and the API Lambda's layers (query + web) do not ship it
        import stratum.analytics.capability  # noqa: F401
        import stratum.render.wafermap  # noqa: F401

        self.charts  # noqa: B018 - built (with the analytics service) now
        self.engine.database(workspace or self.settings.workspace)
        if worker is not None:
            worker.join()

    def start_warm_up(self, workspace: str | None = None) -> threading.Thread:
        """``warm_up`` on a daemon thread (a server answers requests meanwhile; they wait for nothing)."""

        def run() -> None:
            try:
                self.warm_up(workspace)
            except Exception:  # noqa: BLE001 - only an optimisation: the first request does it again and reports
                logging.getLogger("stratum").warning("warm-up failed", exc_info=True)

        t = threading.Thread(target=run, name="stratum-warm-up", daemon=True)
        t.start()
        return t

    def close(self) -> None:
        if "delivery" in self.__dict__:
            self.delivery.stop_worker()
        if "monitors" in self.__dict__ and hasattr(self.monitors.scheduler, "stop"):
            self.monitors.scheduler.stop()
        if "sql_runner" in self.__dict__ and self.sql_runner is not self.__dict__.get("sql"):
            self.sql_runner.close()
        if "engine" in self.__dict__:  # only if it was built
            self.engine.close()
        self.meta.close()


class _NoPandas:
    """A meta-path finder that reports pandas missing (see ``keep_pandas_out``)."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):  # noqa: ANN001, ANN205 - importlib's finder protocol
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not loaded by stratum processes)", name=name)
        return None


def _wafer_pattern_rows(wafers: list[dict], dies: dict) -> dict[str, list]:
    """The ingest's wafer classifier, imported when a file has wafers (the classifier, its taxonomy and
    calibration load only then)."""
    from stratum.patterns.service import wafer_pattern_rows

    return wafer_pattern_rows(wafers, dies)


def keep_pandas_out() -> None:
    """For our own processes only (the CLI, ``stratum serve``, SQL workers, the Lambdas), before any query:
    DuckDB imports pandas, when it is installed, on the first query with parameters (to check whether a
    parameter is a DataFrame), 0.5-2 s. These processes pass no DataFrames, so pandas is reported missing
    unless something imported it already; a library user's process is left alone."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


# a SQL worker process (``Runtime.sql_runner``) builds its own runtime and serves its ``sql``
_SQL_WORKER_MAIN = "from stratum.runtime import serve_sql_worker; serve_sql_worker()"


# an export job's child process (``ExportService.isolate``) builds its own runtime and runs the export
_EXPORT_WORKER_MAIN = "from stratum.runtime import serve_export_worker; serve_export_worker()"


def serve_export_worker() -> None:  # pragma: no cover - runs in the child (tested through the API)
    from stratum.exports.isolated import serve

    def open_run(settings: Settings) -> tuple[Callable[[str, str], object], Callable[[], None]]:
        rt = Runtime.from_settings(settings)
        return rt.exports.run, rt.close

    serve(open_run)


def serve_sql_worker() -> None:  # pragma: no cover - runs in the child (tested over HTTP and via SqlWorkers)
    from stratum.query.workers import serve

    keep_pandas_out()

    def open_sql(settings: Settings) -> tuple[SqlService, Callable[[], None]]:
        rt = Runtime.from_settings(settings)
        return rt.sql, rt.close

    serve(open_sql)
