"""``DeliveryConstruct``: the event port's consumer on AWS.

EventBridge bus (``stratum`` events) -> rule (the delivery kinds) -> SQS (+ DLQ, alarm) -> delivery Lambda,
plus a one-minute schedule on the same function for retries and email digests. The webhook secrets are
sealed with a customer-managed KMS key (rotation on); the API seals them at creation/rotation, the
function opens them to sign. Email goes through SES (``ses:SendRawEmail``).

Why EventBridge -> SQS -> Lambda rather than a rule targeting the function: the queue keeps events while
the function is throttled or failing, redelivers only the records that failed (partial batch responses)
and parks poison events in a DLQ with an alarm; the durable per-attempt schedule lives in DynamoDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from . import constants as C
from . import permissions, queues
from .assets import FunctionAsset
from .function import StratumFunction
from .nag import suppress
from .storage import StorageConstruct


def kms_use(key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="WebhookSecretsKey", actions=["kms:Encrypt", "kms:Decrypt"], resources=[key.key_arn])


def put_events(bus: events.IEventBus) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="PublishEvents", actions=["events:PutEvents"], resources=[bus.event_bus_arn])


class DeliveryConstruct(Construct):
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
        spec = C.DELIVERY

        self.secrets_key = kms.Key(
            self,
            "WebhookSecretsKey",
            description="Stratum: seals outbound/inbound webhook secrets (encryption context: workspace + id)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.dead_letter_queue = queues.dead_letter_queue(self)
        self.queue = queues.work_queue(
            self, dlq=self.dead_letter_queue, timeout=spec.timeout, max_receive_count=C.DELIVERY_MAX_RECEIVE_COUNT
        )
        self.rule = events.Rule(
            self,
            "Events",
            event_bus=bus,
            description="Stratum events that delivery turns into notifications, webhooks and email",
            event_pattern=events.EventPattern(source=[C.EVENT_SOURCE], detail_type=list(C.DELIVERY_EVENT_KINDS)),
            targets=[targets.SqsQueue(self.queue)],
        )

        self.function_ = StratumFunction(
            self,
            "Delivery",
            asset=asset,
            description=spec.description,
            memory_mb=spec.memory_mb,
            timeout=spec.timeout,
            ephemeral_storage=spec.ephemeral_storage,
            service_name=spec.service_name,
            environment={**environment, "STRATUM_AWS__DELIVERY_KMS_KEY_ID": self.secrets_key.key_arn},
            layers=layers,
        )
        self.function = self.function_.function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=C.DELIVERY_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=C.DELIVERY_MAX_CONCURRENCY,
            )
        )
        self.tick = events.Rule(
            self,
            "Tick",
            description="Stratum delivery: due webhook retries and email digests",
            schedule=events.Schedule.rate(C.DELIVERY_TICK),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

        role = self.function_.role
        ses_identities = f"arn:{Aws.PARTITION}:ses:{Aws.REGION}:{Aws.ACCOUNT_ID}:identity/*"
        for statement in (
            *permissions.metadata_read_write(storage.table, storage.index_names),
            kms_use(self.secrets_key),
            put_events(bus),
            iam.PolicyStatement(sid="SendEmail", actions=["ses:SendRawEmail"], resources=[ses_identities]),
        ):
            role.add_to_principal_policy(statement)
        suppress(
            role,
            "IAM5",
            "SES authorises SendRawEmail on the verified identities used as sender and recipients; which "
            "identities those are is decided per workspace (inbox preferences) after deployment.",
            applies_to=["Resource::arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>:identity/*"],
        )

        self.dlq_alarm = queues.dead_letter_alarm(
            self,
            self.dead_letter_queue,
            "Stratum delivery: events could not be recorded 5 times and were parked in the DLQ",
        )

    def grant_api(self, role: iam.IRole) -> None:
        """The API seals secrets (create/rotate) and opens inbound ones to verify signatures (it publishes
        notification.new with the bus's own grant)."""
        role.add_to_principal_policy(kms_use(self.secrets_key))
