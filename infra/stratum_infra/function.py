"""``StratumFunction``: one Lambda function with the project's defaults (not a capability on its own).

Defaults: python3.12 on arm64, JSON logs into an explicit log group with retention, X-Ray active tracing, a
dedicated role with no managed policies (logs: only its own log group), and the Stratum environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import constants as C
from .assets import FunctionAsset
from .nag import suppress


class StratumFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asset: FunctionAsset,
        description: str,
        memory_mb: int,
        timeout: Duration,
        ephemeral_storage: Size,
        service_name: str,
        environment: Mapping[str, str],
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.asset = asset

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{service_name}: least-privilege execution role (no managed policies)",
        )
        self.log_group.grant_write(self.role)

        env = {
            **environment,
            "POWERTOOLS_SERVICE_NAME": service_name,
            "POWERTOOLS_LOG_LEVEL": C.LOG_LEVEL,
            "POWERTOOLS_METRICS_NAMESPACE": C.METRICS_NAMESPACE,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=C.RUNTIME,
            architecture=C.ARCHITECTURE,
            handler=C.HANDLER,
            code=lambda_.Code.from_asset(str(asset.path)),
            memory_size=memory_mb,
            timeout=timeout,
            ephemeral_storage_size=ephemeral_storage,
            environment=env,
            layers=list(layers),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=getattr(lambda_.ApplicationLogLevel, C.LOG_LEVEL),
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )

        for missing in asset.missing:
            Annotations.of(self.function).add_error(
                f"{missing} does not exist: the {asset.name} function's handler {C.HANDLER!r} cannot be imported. "
                "Add the handler module before deploying."
            )

        suppress(
            self.function,
            "L1",
            "python3.12 is deliberate: the layers are built and size-checked for cp312 aarch64 wheels (pyarrow "
            "26.0.1, duckdb 1.5.5 + httpfs 1.5.5) and the runtime is AL2023; a runtime bump means rebuilding and "
            "re-verifying the layers (toolchain-notes sections 4 and 6).",
        )
        suppress(
            self.role,
            "IAM5",
            "X-Ray active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support "
            "resource-level permissions, so CDK grants them on '*'.",
            applies_to=["Resource::*"],
        )
