"""Wiring: settings → adapters → services. One ``Runtime`` per process (per Lambda container).

The CLI, the local server, the Lambda handlers and the tests all build their services here, so the
same code runs everywhere; only the adapters differ (local directory + SQLite, or S3 + DynamoDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from stratum.catalog import Catalog
from stratum.settings import Settings
from stratum.storage.factory import build_metadata_store, build_object_store
from stratum.storage.metadata import MetadataStore
from stratum.storage.objectstore import ObjectStore


@dataclass
class Runtime:
    settings: Settings
    meta: MetadataStore
    lake: ObjectStore
    drop: ObjectStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        if settings.backend == "local":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            (settings.data_dir / "incoming").mkdir(exist_ok=True)
        return cls(
            settings,
            build_metadata_store(settings),
            build_object_store(settings, area="lake"),
            build_object_store(settings, area="drop"),
        )

    @property
    def drop_prefix(self) -> str:
        """Prefix of drop keys inside the drop store: the local store is rooted at incoming/ already."""
        return "" if self.settings.backend == "local" else self.settings.aws.drop_prefix

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.meta)

    @cached_property
    def events(self):
        """The event port: in-process bus locally, EventBridge on AWS."""
        if self.settings.backend == "local":
            from stratum.events.local import InProcessBus

            return InProcessBus()
        from stratum.events.eventbridge import EventBridgeBus

        aws = self.settings.aws
        return EventBridgeBus(aws.event_bus_name or "default", aws.region, endpoint_url=aws.endpoint_url or None)

    @cached_property
    def delivery(self):
        """Inbox, webhooks, inbound hooks and email. Locally it subscribes to the in-process bus; on AWS
        the delivery function feeds it EventBridge events from its queue."""
        from stratum.delivery.service import DeliveryService

        svc = DeliveryService(
            self.meta, self.settings, self.events, ingest_key=self._ingest_drop_key, annotate_lot=self._annotate_lot
        )
        subscribe = getattr(self.events, "subscribe", None)
        if subscribe is not None:
            subscribe(svc.handle)
        return svc

    def _ingest_drop_key(self, ws: str, key: str) -> dict:
        from stratum.errors import NotFound
        from stratum.ingest.drop import DropObject, DropProcessor

        full = f"{self.drop_prefix}{ws}/{key}"
        if self.drop.head(full) is None:
            raise NotFound(f"no object {key!r} in workspace {ws!r}'s drop folder")
        from stratum.ingest.watcher import LOCAL_BUCKET

        bucket = self.settings.aws.drop_bucket if self.settings.backend == "aws" else LOCAL_BUCKET
        job = DropProcessor(self.ingest, self.drop, self.drop_prefix).process(DropObject(bucket, full))
        if job is None:
            return {"job_id": None, "status": "skipped", "reason": "not an STDF file name"}
        return {"job_id": job.job_id, "status": job.status, "lot_id": job.lot_id}

    def _annotate_lot(self, ws: str, lot_id: str, note: dict) -> dict:
        return self.catalog.add_lot_note(ws, lot_id, note)

    @cached_property
    def ingest(self):
        from stratum.ingest.service import IngestService

        return IngestService(self.catalog, self.lake, self.settings)

    @cached_property
    def engine(self):
        from stratum.query.engine import QueryEngine

        return QueryEngine(self.catalog, self.lake, self.settings)

    @cached_property
    def sql(self):
        from stratum.query.sql import SqlService

        return SqlService(self.engine, self.settings)

    def close(self) -> None:
        if "delivery" in self.__dict__:
            self.delivery.stop_worker()
        if "engine" in self.__dict__:  # only if it was built
            self.engine.close()
        self.meta.close()
