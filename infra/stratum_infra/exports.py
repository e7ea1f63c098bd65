"""``ExportsConstruct``: the function that runs export jobs (``POST /v1/exports``) on AWS.

API -> ``export.requested`` on the Stratum bus -> rule -> SQS (+ DLQ, alarm) -> exports Lambda (one message per
invocation). Why a queue and not the API Lambda's background task: a Lambda cannot keep working after it has
answered, and an export may take minutes; why SQS rather than an async invoke with an on-failure destination:
the same bus -> rule -> queue shape as ingest and delivery (one way to redrive and alarm), the queue holds
requests while the function is at its concurrency bound, and the API only needs ``events:PutEvents``.

Least privilege: read the lake (``workspaces/*``, GetObject + prefix-limited ListBucket), write only the exports
prefix (``workspaces/*/exports/*``: PutObject, which covers the multipart calls, PutObjectTagging for the
lifecycle tag each export file is written with, and AbortMultipartUpload), and the metadata table (snapshot
resolution, export records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from . import constants as C
from . import permissions, queues
from .assets import FunctionAsset
from .function import StratumFunction
from .nag import resource_regex, suppress
from .storage import StorageConstruct


class ExportsConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        bus: events.IEventBus,
        asset: FunctionAsset,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        spec = C.EXPORTS
        self.dead_letter_queue = queues.dead_letter_queue(self)
        self.queue = queues.work_queue(
            self, dlq=self.dead_letter_queue, timeout=spec.timeout, max_receive_count=C.EXPORTS_MAX_RECEIVE_COUNT
        )
        self.rule = events.Rule(
            self,
            "Requests",
            event_bus=bus,
            description="Stratum export requests (POST /v1/exports) to the exports function's queue",
            event_pattern=events.EventPattern(source=[C.EVENT_SOURCE], detail_type=list(C.EXPORTS_EVENT_KINDS)),
            targets=[targets.SqsQueue(self.queue)],
        )
        self.function_ = StratumFunction(
            self,
            "Exports",
            asset=asset,
            description=spec.description,
            memory_mb=spec.memory_mb,
            timeout=spec.timeout,
            ephemeral_storage=spec.ephemeral_storage,
            service_name=spec.service_name,
            environment={
                **environment,
                "STRATUM_EXPORTS__TIMEOUT_SECONDS": str(C.EXPORTS_QUERY_SECONDS),
                "STRATUM_EXPORTS__DUCKDB_MEMORY_MB": str(C.EXPORTS_DUCKDB_MEMORY_MB),
                "STRATUM_EXPORTS__DUCKDB_TEMP_MB": str(C.EXPORTS_DUCKDB_TEMP_MB),
            },
            layers=layers,
        )
        self.function = self.function_.function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=C.EXPORTS_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=C.EXPORTS_MAX_CONCURRENCY,
            )
        )

        role = self.function_.role
        lake = C.LAKE_WORKSPACES_PREFIX
        for statement in (
            permissions.objects("ReadLake", storage.lake_bucket, lake, ["s3:GetObject"]),
            permissions.list_prefix("ListLake", storage.lake_bucket, lake),
            permissions.objects(
                "WriteExports",
                storage.lake_bucket,
                C.EXPORTS_PREFIX,
                # PutObjectTagging: the lifecycle tag sent with PutObject / CreateMultipartUpload needs it
                ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
            ),
            *permissions.metadata_read_write(storage.table, storage.index_names),
        ):
            role.add_to_principal_policy(statement)
        suppress(
            role,
            "IAM5",
            "Lake objects are read under the workspaces/ prefix and export files written under "
            "workspaces/<workspace>/exports/<export>/; workspace and export ids are not known in advance.",
            applies_to=[
                resource_regex("StorageLakeBucket", f"/{lake}*"),
                resource_regex("StorageLakeBucket", f"/{C.EXPORTS_PREFIX}*"),
            ],
        )
        self.dlq_alarm = queues.dead_letter_alarm(
            self,
            self.dead_letter_queue,
            "Stratum exports: an export request could not be run twice (function error) and was parked in the DLQ",
        )
