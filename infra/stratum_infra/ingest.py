"""``IngestConstruct``: drop bucket ``incoming/`` -> S3 notification -> SQS (+ DLQ, alarm) -> ingest Lambda.

Why S3 -> SQS -> Lambda instead of S3 -> Lambda: retries with back-off for free, a DLQ for poison files, a
visible backlog, bounded concurrency, and batch partial failures (serverless-conventions section 4.7).

When a file's job ends the function moves it (copy + delete) to ``processed/`` or ``failed/`` of the same
bucket; the notification's prefix is ``incoming/``, so those copies never trigger it. A schedule
(``EXPIRE_UPLOADS_EVERY``) invokes the same function with ``{"task": "expire_uploads"}``: presigned uploads
that never arrived fail (the local runtime's loop does the same under ``stratum serve``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from . import constants as C
from . import permissions, queues
from .assets import FunctionAsset
from .function import StratumFunction
from .nag import resource_regex, suppress
from .storage import StorageConstruct


def notification_filters(prefix: str, suffixes: Sequence[str]) -> list[s3.NotificationKeyFilter]:
    """One (prefix, suffix) rule per suffix, after proving the rules cannot overlap.

    S3 allows one prefix and one suffix per notification rule and rejects a configuration
    ("Configurations overlap") when two rules for the same event type could match the same key: with one
    shared prefix, that is exactly when one suffix ends with another (".gz" would overlap ".stdf.gz"). Hence
    the list spells out each compressed form instead of a bare ".gz"/".bz2" (which would also catch any
    other gzip file), and the upper-case forms are separate rules because S3 matches case-sensitively
    (".STDF" and ".stdf" never match the same key).
    """
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"duplicate suffixes: {suffixes}")
    for a in suffixes:
        for b in suffixes:
            if a != b and a.endswith(b):
                raise ValueError(f"S3 notification suffixes overlap: {a!r} ends with {b!r}")
    return [s3.NotificationKeyFilter(prefix=prefix, suffix=suffix) for suffix in suffixes]


class IngestConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        asset: FunctionAsset,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        spec = C.INGEST

        # SSE-SQS (SQS-managed keys): S3 event notifications cannot publish to a queue encrypted with the
        # AWS-managed aws/sqs KMS key, and a customer-managed key would add key-policy plumbing for nothing.
        self.dead_letter_queue = queues.dead_letter_queue(self)
        # The DLQ has no DLQ of its own (cdk-nag SQS3 recognises it as a dead-letter queue): it is alarmed instead.
        self.queue = queues.work_queue(
            self, dlq=self.dead_letter_queue, timeout=spec.timeout, max_receive_count=C.INGEST_MAX_RECEIVE_COUNT
        )

        # Only the drop bucket notifies; the lake bucket has no notification configuration at all.
        destination = s3n.SqsDestination(self.queue)
        for key_filter in notification_filters(C.DROP_PREFIX, C.STDF_SUFFIXES):
            storage.drop_bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, key_filter)

        self._suppress_notifications_handler()

        self.function_ = StratumFunction(
            self,
            "Ingest",
            asset=asset,
            description=spec.description,
            memory_mb=spec.memory_mb,
            timeout=spec.timeout,
            ephemeral_storage=spec.ephemeral_storage,
            service_name=spec.service_name,
            environment=environment,
            layers=layers,
        )
        self.function = self.function_.function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=C.INGEST_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=C.INGEST_MAX_CONCURRENCY,
            )
        )

        self.expire_uploads = events.Rule(
            self,
            "ExpireUploads",
            description="Stratum ingest: presigned uploads that never arrived fail with upload_expired",
            schedule=events.Schedule.rate(C.EXPIRE_UPLOADS_EVERY),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object(C.EXPIRE_UPLOADS_INPUT),
                    retry_attempts=0,  # the next run sweeps again
                )
            ],
        )

        role = self.function_.role
        drop_prefix = C.DROP_PREFIX
        lake_prefix = C.LAKE_WORKSPACES_PREFIX
        archive = (C.DROP_PROCESSED_PREFIX, C.DROP_FAILED_PREFIX)
        for statement in (
            permissions.objects(
                "ReadRawUploads",
                storage.drop_bucket,
                drop_prefix,
                ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"],
            ),
            *(
                permissions.objects(
                    f"Archive{p.strip('/').capitalize()}",
                    storage.drop_bucket,
                    p,
                    ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                )
                for p in archive
            ),
            permissions.list_prefix("ListDrop", storage.drop_bucket, drop_prefix, *archive),
            permissions.objects(
                "WriteLake",
                storage.lake_bucket,
                lake_prefix,
                ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            ),
            permissions.list_prefix("ListLake", storage.lake_bucket, lake_prefix),
            *permissions.metadata_read_write(storage.table, storage.index_names),
        ):
            role.add_to_principal_policy(statement)
        suppress(
            role,
            "IAM5",
            "Object-level access is scoped to key prefixes: raw uploads under incoming/ of the drop bucket (read, "
            "and delete once moved), their moved copies under processed/ and failed/ (written by the move, with an "
            "error report beside failed ones), and the Parquet lake under workspaces/ of the lake bucket, whose keys "
            "are workspaces/<workspace>/lake/<table>/lot=<lot>/job=<job>/part-<n>.parquet and not known in advance.",
            applies_to=[
                resource_regex("StorageDropBucket", f"/{drop_prefix}*"),
                *(resource_regex("StorageDropBucket", f"/{p}*") for p in archive),
                resource_regex("StorageLakeBucket", f"/{lake_prefix}*"),
            ],
        )

        # A message in the DLQ is a raw file that failed ingest three times: someone has to look at it.
        self.dlq_alarm = queues.dead_letter_alarm(
            self,
            self.dead_letter_queue,
            "Stratum ingest: raw files failed ingest 3 times and were parked in the DLQ",
        )

    def _suppress_notifications_handler(self) -> None:
        """CDK's BucketNotificationsHandler: a stack-level singleton created by add_event_notification."""
        stack = Stack.of(self)
        handler = next((c for c in stack.node.children if c.node.id.startswith("BucketNotificationsHandler")), None)
        if handler is None:
            raise RuntimeError("CDK's BucketNotificationsHandler was not found: the notification wiring changed")
        suppress(
            handler,
            "IAM4",
            "aws-cdk-lib's BucketNotificationsHandler (the custom resource that writes the drop bucket's "
            "notification configuration during deployments) uses AWSLambdaBasicExecutionRole only for its own "
            "CloudWatch Logs; its role and policy are generated by CDK and not configurable.",
            applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        )
