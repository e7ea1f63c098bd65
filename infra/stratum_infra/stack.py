"""``StratumStack``: the whole platform in one stack, one construct per capability."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Annotations, Aws, CfnOutput, Stack
from aws_cdk import aws_events as events
from constructs import Construct

from stratum.lake import schema as lake_schema

from . import constants as C
from .api import ApiConstruct
from .assets import assemble_function_asset, find_python
from .catalog import CatalogConstruct, glue_name
from .delivery import DeliveryConstruct
from .exports import ExportsConstruct
from .ingest import IngestConstruct
from .layers import StratumLayers
from .monitors import MonitorsConstruct
from .storage import StorageConstruct


@dataclass(frozen=True)
class StratumConfig:
    """Where things come from. Tests point the build folders at a temp dir; ``app.py`` uses the defaults."""

    project_root: Path = C.PROJECT_ROOT
    asset_build_dir: Path = C.DEFAULT_ASSET_BUILD_DIR
    layers_build_dir: Path = C.DEFAULT_LAYERS_BUILD_DIR
    api_integration_timeout_seconds: int = C.DEFAULT_API_INTEGRATION_TIMEOUT_SECONDS
    monitors_enabled: bool = True
    api_gateway_cloudwatch_role: bool = True  # create the region's API Gateway logging role (see ApiConstruct)
    # ship the function assets with bytecode compiled by an interpreter of the runtime's Python (assets.py);
    # app.py does, tests that only inspect the template do not (it costs a compile per function)
    bytecode: bool = False


class StratumStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StratumConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        self.storage = StorageConstruct(self, "Storage")
        self.catalog = CatalogConstruct(
            self,
            "Catalog",
            lake_bucket=self.storage.lake_bucket,
            results_bucket=self.storage.results_bucket,
            name=glue_name(self.stack_name),
        )
        # Athena reads the same Parquet as DuckDB: one Glue table per stored lake table
        self.catalog.add_lake_tables((name, lake_schema.glue_columns(name)) for name in lake_schema.TABLES)
        self.layers = StratumLayers(
            self, "Layers", layers_build_dir=config.layers_build_dir, placeholder_dir=config.asset_build_dir
        )

        environment = {
            "STRATUM_BACKEND": "aws",
            "STRATUM_ENVIRONMENT": "production",
            "STRATUM_AWS__REGION": Aws.REGION,
            "STRATUM_AWS__DROP_BUCKET": self.storage.drop_bucket.bucket_name,
            "STRATUM_AWS__DROP_PREFIX": C.DROP_PREFIX,
            "STRATUM_AWS__LAKE_BUCKET": self.storage.lake_bucket.bucket_name,
            "STRATUM_AWS__LAKE_PREFIX": C.LAKE_PREFIX,
            "STRATUM_AWS__METADATA_TABLE": self.storage.table.table_name,
            "STRATUM_AWS__GLUE_DATABASE": self.catalog.database_name,
            "STRATUM_AWS__ATHENA_WORKGROUP": self.catalog.workgroup_name,
            "STRATUM_AWS__ATHENA_OUTPUT": self.catalog.output_location,
            "STRATUM_EXPORTS__RETENTION_DAYS": str(C.EXPORTS_RETENTION_DAYS),
        }

        # the event port's bus: ingest publishes job.*, monitors publish monitor.*; rules route kinds to consumers
        self.bus = events.EventBus(self, "Bus", description="Stratum events (job.*, monitor.*)")
        environment["STRATUM_AWS__EVENT_BUS_NAME"] = self.bus.event_bus_name

        version = C.RUNTIME.name.removeprefix("python")
        bytecode_python = find_python(version) if config.bytecode else None
        if config.bytecode and bytecode_python is None:
            Annotations.of(self).add_warning_v2(
                "stratum:bytecode",
                f"no Python {version} interpreter found: the function assets ship without bytecode, so every "
                "cold start compiles the stratum modules it imports",
            )

        def function_asset(name: str):
            return assemble_function_asset(
                name,
                config.project_root,
                config.asset_build_dir,
                bytecode_python=bytecode_python,
                python_version=version,
            )

        ingest_asset = function_asset("ingest")
        api_asset = function_asset("api")
        delivery_asset = function_asset("delivery")
        self.delivery = DeliveryConstruct(
            self,
            "Delivery",
            storage=self.storage,
            bus=self.bus,
            asset=delivery_asset,
            layers=self.layers.for_function("delivery"),
            environment=environment,
        )
        environment = {**environment, "STRATUM_AWS__DELIVERY_KMS_KEY_ID": self.delivery.secrets_key.key_arn}

        self.ingest = IngestConstruct(
            self,
            "Ingest",
            storage=self.storage,
            asset=ingest_asset,
            layers=self.layers.for_function("ingest"),
            environment=environment,
        )
        self.api = ApiConstruct(
            self,
            "Api",
            storage=self.storage,
            catalog=self.catalog,
            asset=api_asset,
            layers=self.layers.for_function("api"),
            environment=environment,
            integration_timeout_seconds=config.api_integration_timeout_seconds,
            manage_account_logging_role=config.api_gateway_cloudwatch_role,
        )
        self.bus.grant_put_events_to(self.ingest.function)
        self.bus.grant_put_events_to(self.api.function)  # also queues exports (export.requested)
        self.exports = ExportsConstruct(
            self,
            "Exports",
            storage=self.storage,
            bus=self.bus,
            asset=function_asset("exports"),
            layers=self.layers.for_function("exports"),
            environment=environment,
        )
        self.delivery.grant_api(self.api.function_.role)
        self.monitors = None
        if config.monitors_enabled:
            self.monitors = MonitorsConstruct(
                self,
                "Monitors",
                storage=self.storage,
                bus=self.bus,
                asset=function_asset("monitors"),
                layers=self.layers.for_function("monitors"),
                environment=environment,
            )
            for k, v in self.monitors.settings_environment.items():
                self.api.function.add_environment(k, v)
            self.monitors.grant_manage_schedules(self.api.function_.role)

        for output_id, value, description in (
            ("ApiUrl", self.api.rest_api.url, "Stratum API base URL (stage v1)"),
            ("DropBucketName", self.storage.drop_bucket.bucket_name, "Upload raw STDF under incoming/<workspace>/"),
            ("LakeBucketName", self.storage.lake_bucket.bucket_name, "Parquet lake (workspaces/...)"),
            ("ResultsBucketName", self.storage.results_bucket.bucket_name, "Athena query results"),
            ("MetadataTableName", self.storage.table.table_name, "Metadata table (jobs, lots, keys)"),
            ("IngestQueueUrl", self.ingest.queue.queue_url, "Ingest queue"),
            ("IngestDeadLetterQueueUrl", self.ingest.dead_letter_queue.queue_url, "Failed ingests (redrive)"),
            ("DeliveryQueueUrl", self.delivery.queue.queue_url, "Delivery queue (events for webhooks, inbox, email)"),
            (
                "DeliveryDeadLetterQueueUrl",
                self.delivery.dead_letter_queue.queue_url,
                "Events delivery could not record",
            ),
            ("ExportsQueueUrl", self.exports.queue.queue_url, "Export requests (POST /v1/exports)"),
            ("ExportsDeadLetterQueueUrl", self.exports.dead_letter_queue.queue_url, "Export requests that failed"),
            ("GlueDatabaseName", self.catalog.database_name, "Glue database of the lake"),
            ("AthenaWorkgroupName", self.catalog.workgroup_name, "Athena workgroup"),
            ("EventBusName", self.bus.event_bus_name, "Stratum events (job.*, monitor.*)"),
        ):
            CfnOutput(self, output_id, value=value, description=description)
