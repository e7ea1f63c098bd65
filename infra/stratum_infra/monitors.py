"""``MonitorsConstruct``: the monitors function, its EventBridge Scheduler group and invoke role, the ingest
event rule, retry policies and a dead-letter queue.

- Each scheduled monitor owns one schedule in ``<stack>-monitors`` (created, updated, disabled and deleted by
  the API function through ``stratum.monitors.scheduler.EventBridgeScheduler``); it invokes the function with
  ``{workspace, monitor_id}`` using the scheduler role, which may invoke only this function and send only to
  this DLQ. Retry policy and DLQ are set per schedule (settings ``monitors.retry_*`` / ``dlq_arn``).
- The stack's event bus carries ``job.*`` events from ingest; a rule sends ``job.succeeded|partial`` to the
  function (async invoke: 2 retries, 1 h maximum age, same DLQ), which runs the on_ingest monitors.
- The DLQ is alarmed: a message there is a monitor run that failed to start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from . import constants as C
from . import permissions, queues
from .assets import FunctionAsset
from .function import StratumFunction
from .nag import resource_regex, suppress
from .storage import StorageConstruct


class MonitorsConstruct(Construct):
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
        spec = C.MONITORS
        stack = Stack.of(self)
        self.group_name = f"{stack.stack_name}-monitors"
        self.group = scheduler.CfnScheduleGroup(self, "ScheduleGroup", name=self.group_name)

        self.dead_letter_queue = queues.dead_letter_queue(self)
        suppress(
            self.dead_letter_queue,
            "SQS3",
            "This queue is itself the dead-letter queue of the monitor schedules and the ingest-event rule "
            "(targets, not an SQS redrive source, so cdk-nag does not recognise it); it is alarmed instead.",
        )

        self.function_ = StratumFunction(
            self,
            "Monitors",
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

        # EventBridge Scheduler assumes this role to invoke the function (only this account's schedules).
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="EventBridge Scheduler: invoke the Stratum monitors function, dead-letter to its DLQ",
        )
        self.scheduler_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeMonitors", actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            )
        )
        self.scheduler_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DeadLetter", actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]
            )
        )

        # Ingest events -> on_ingest monitors.
        self.ingest_rule = events.Rule(
            self,
            "IngestEvents",
            event_bus=bus,
            description="Stratum: published snapshots run the workspace's on_ingest monitors",
            event_pattern=events.EventPattern(source=["stratum"], detail_type=["job.succeeded", "job.partial"]),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=C.MONITORS_RETRY_ATTEMPTS,
                    max_event_age=Duration.seconds(C.MONITORS_MAX_EVENT_AGE_SECONDS),
                    dead_letter_queue=self.dead_letter_queue,
                )
            ],
        )

        role = self.function_.role
        lake_prefix = C.LAKE_WORKSPACES_PREFIX
        for statement in (
            permissions.objects("ReadLake", storage.lake_bucket, lake_prefix, ["s3:GetObject"]),
            permissions.list_prefix("ListLake", storage.lake_bucket, lake_prefix),
            # the final die maps classified on publish are also written to the lake (stratum.lake.final_patterns)
            permissions.objects("WriteFinalPatterns", storage.lake_bucket, C.FINAL_PATTERNS_PREFIX, ["s3:PutObject"]),
            *permissions.metadata_read_write(storage.table, storage.index_names),
            iam.PolicyStatement(sid="PublishEvents", actions=["events:PutEvents"], resources=[bus.event_bus_arn]),
        ):
            role.add_to_principal_policy(statement)
        suppress(
            role,
            "IAM5",
            "Lake objects are read under the workspaces/ prefix of the lake bucket, whose keys "
            "(workspaces/<workspace>/lake/<table>/lot=<lot>/job=<job>/part-<n>.parquet) are not known in advance; "
            "stored wafer classifications are written under workspaces/<workspace>/lake/wafer_patterns_final/.",
            applies_to=[
                resource_regex("StorageLakeBucket", f"/{lake_prefix}*"),
                resource_regex("StorageLakeBucket", f"/{C.FINAL_PATTERNS_PREFIX}*"),
            ],
        )

        self.dlq_alarm = queues.dead_letter_alarm(
            self,
            self.dead_letter_queue,
            "Stratum monitors: a scheduled or ingest-triggered monitor run could not be delivered",
        )

    @property
    def settings_environment(self) -> dict[str, str]:
        """What the API function needs to manage schedules (``stratum.settings.MonitorSettings``)."""
        return {
            "STRATUM_MONITORS__SCHEDULE_GROUP": self.group_name,
            "STRATUM_MONITORS__FUNCTION_ARN": self.function.function_arn,
            "STRATUM_MONITORS__SCHEDULER_ROLE_ARN": self.scheduler_role.role_arn,
            "STRATUM_MONITORS__DLQ_ARN": self.dead_letter_queue.queue_arn,
            "STRATUM_MONITORS__RETRY_ATTEMPTS": str(C.MONITORS_RETRY_ATTEMPTS),
            "STRATUM_MONITORS__RETRY_MAX_AGE_SECONDS": str(C.MONITORS_MAX_EVENT_AGE_SECONDS),
        }

    def grant_manage_schedules(self, role: iam.IRole) -> None:
        """Let ``role`` (the API function's) create, update and delete schedules in the group and hand the
        scheduler role to EventBridge Scheduler (and nothing else)."""
        stack = Stack.of(self)
        schedules = stack.format_arn(service="scheduler", resource="schedule", resource_name=f"{self.group_name}/*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManageMonitorSchedules",
                actions=[
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:DeleteSchedule",
                    "scheduler:GetSchedule",
                ],
                resources=[schedules],
            )
        )
        suppress(
            role,
            "IAM5",
            "Monitor schedules are created at run time, one per monitor (named after the monitor id), so the API "
            "may manage any schedule, but only inside this stack's schedule group.",
            applies_to=[
                f"Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/{self.group_name}/*"
            ],
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassSchedulerRole",
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )
