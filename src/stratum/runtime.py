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

    @cached_property
    def idempotency(self):
        from stratum.ingest.idempotency import Idempotency

        return Idempotency(self.meta, self.settings.idempotency_ttl_seconds)

    @cached_property
    def exports(self):
        from stratum.exports.service import ExportService

        return ExportService(self.engine, self.meta, self.lake, self.settings)

    def close(self) -> None:
        if "engine" in self.__dict__:  # only if it was built
            self.engine.close()
        self.meta.close()
