"""``ApiConstruct``: API Gateway REST API (Regional, Lambda proxy) -> the api Lambda (FastAPI + Mangum).

- Every path and method is proxied (``LambdaRestApi(proxy=True)``); routing, validation and authentication
  live in the application (one FastAPI router for Lambda and local runs).
- Authentication: bearer API keys, verified by the application against hashed keys in the metadata table.
  No Cognito user pool and no API Gateway authorizer (cdk-nag APIG4/COG4 suppressed with that reason).
- Stage ``v1``: JSON access logs to a dedicated log group, ERROR-level execution logs, X-Ray tracing,
  stage-wide throttling. Both kinds of logging need the region's API Gateway CloudWatch role, which the stack
  creates and retains unless ``stratum:apiGatewayCloudWatchRole`` is false.
- Binary media types for raw STDF uploads and PNG wafer maps (see constants.API_BINARY_MEDIA_TYPES). Large raw
  files do not go through API Gateway (10 MB payload limit): the API hands out presigned S3 PUT URLs for
  ``incoming/``.
- Timeouts: SQL deadline < Lambda timeout <= integration timeout (constants.api_timeouts). The integration
  timeout defaults to 29 s, the maximum without a service-quota increase; above that the synth adds a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import constants as C
from . import permissions
from .assets import FunctionAsset
from .catalog import CatalogConstruct
from .function import StratumFunction
from .nag import resource_regex, suppress
from .storage import StorageConstruct

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integration.error",
    "errorMessage": "$context.error.message",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}


class ApiConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        catalog: CatalogConstruct,
        asset: FunctionAsset,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        integration_timeout_seconds: int = C.DEFAULT_API_INTEGRATION_TIMEOUT_SECONDS,
        manage_account_logging_role: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.timeouts = C.api_timeouts(integration_timeout_seconds)
        if integration_timeout_seconds > C.QUOTA_FREE_INTEGRATION_TIMEOUT_SECONDS:
            Annotations.of(self).add_warning_v2(
                "stratum:api-integration-timeout",
                f"API integration timeout {integration_timeout_seconds}s exceeds 29 s: the account needs the API "
                "Gateway quota 'Maximum integration timeout in milliseconds' raised, or the deployment fails.",
            )

        self.function_ = StratumFunction(
            self,
            "Api",
            asset=asset,
            description="Stratum API: FastAPI (Mangum) analytics, SQL, uploads, wafer maps",
            memory_mb=C.API_MEMORY_MB,
            timeout=Duration.seconds(self.timeouts.lambda_seconds),
            ephemeral_storage=C.API_EPHEMERAL_STORAGE,
            service_name="stratum-api",
            environment={
                **environment,
                # The SQL budget the application enforces, so slow queries end with its own timeout error
                # before API Gateway answers 504 (constants.api_timeouts).
                "STRATUM_SQL__TIMEOUT_SECONDS": str(self.timeouts.sql_seconds),
                # FastAPI root_path for the stage prefix (docs and openapi.json links under /v1).
                "STRATUM_API_ROOT_PATH": f"/{C.API_STAGE_NAME}",
                # a Lambda request payload is at most 6 MB and binary bodies arrive base64-encoded:
                # larger files go through POST /v1/uploads/presign straight to the drop bucket
                "STRATUM_MAX_UPLOAD_BYTES": str(C.API_MAX_UPLOAD_BYTES),
            },
            layers=layers,
        )
        self.function = self.function_.function
        self._grant(storage, catalog)

        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.RETAIN
        )
        self.rest_api = apigw.LambdaRestApi(
            self,
            "RestApi",
            handler=self.function,
            proxy=True,
            description="Stratum API (bearer API keys are verified by the application)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=list(C.API_BINARY_MEDIA_TYPES),
            # REST API stages refuse access logging until the region's API Gateway account settings name a
            # CloudWatch role. CDK creates that role + AWS::ApiGateway::Account (a per-region singleton) and
            # RETAINs both, so deleting this stack never breaks logging of other APIs. Turn it off with
            # -c stratum:apiGatewayCloudWatchRole=false where the account settings are managed elsewhere.
            cloud_watch_role=manage_account_logging_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if manage_account_logging_role else None,
            integration_options=apigw.LambdaIntegrationOptions(
                timeout=Duration.seconds(self.timeouts.integration_seconds)
            ),
            deploy_options=apigw.StageOptions(
                stage_name=C.API_STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,  # execution logs for failures only
                data_trace_enabled=False,  # never log request/response bodies (API keys, uploads)
                throttling_rate_limit=C.API_THROTTLE_RATE,
                throttling_burst_limit=C.API_THROTTLE_BURST,
                metrics_enabled=True,
            ),
        )

        suppress(
            self.rest_api,
            "APIG4",
            "Authentication happens in the application: every route except health checks requires a bearer API "
            "key that the api function verifies against hashed keys in the metadata table, with per-key rate "
            "limits. An API Gateway authorizer would duplicate that lookup.",
        )
        suppress(
            self.rest_api,
            "COG4",
            "No Cognito user pool by design: clients are test-floor tools and scripts using bearer API keys "
            "issued per workspace and verified by the application against the metadata table.",
        )
        suppress(
            self.rest_api,
            "APIG2",
            "Lambda proxy integration: requests are validated by the application (FastAPI/pydantic models on "
            "every route); an API Gateway request validator cannot see the proxied routes' schemas.",
        )
        if manage_account_logging_role:
            suppress(
                self.rest_api,
                "IAM4",
                "The account-level API Gateway logging role uses AmazonAPIGatewayPushToCloudWatchLogs, the policy "
                "AWS documents for it: API Gateway creates and writes its own log groups "
                "(API-Gateway-Execution-Logs_<api>/<stage>), so it cannot be scoped to this stack's log groups.",
                applies_to=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                ],
            )
        suppress(
            self.rest_api,
            "APIG3",
            "No WAF web ACL yet: callers need an API key, the stage is throttled and the application rate-limits "
            "per key; associate a regional WebACL with the stage if the API is exposed beyond known clients.",
        )

    def _grant(self, storage: StorageConstruct, catalog: CatalogConstruct) -> None:
        role = self.function_.role
        drop_prefix, lake_prefix, results_prefix = C.DROP_PREFIX, C.LAKE_WORKSPACES_PREFIX, C.ATHENA_RESULTS_PREFIX
        statements = [
            # Lake: read (DuckDB httpfs / pyarrow reads and listings of workspaces/); write only the stored
            # classifications of lake wafers (POST /v1/classify|batch on a lake wafer, stratum.lake.final_patterns).
            permissions.objects("ReadLake", storage.lake_bucket, lake_prefix, ["s3:GetObject"]),
            permissions.list_prefix("ListLake", storage.lake_bucket, lake_prefix),
            permissions.objects("WriteFinalPatterns", storage.lake_bucket, C.FINAL_PATTERNS_PREFIX, ["s3:PutObject"]),
            # Raw uploads: small uploads through the API and presigned PUT URLs (signed with this role).
            permissions.objects("UploadRaw", storage.drop_bucket, drop_prefix, ["s3:PutObject"]),
            *permissions.metadata_read_write(storage.table, storage.index_names),
            # Athena: run, poll, read and cancel queries in the Stratum workgroup only.
            iam.PolicyStatement(
                sid="AthenaWorkgroup",
                actions=[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                    "athena:GetWorkGroup",
                ],
                resources=[catalog.workgroup_arn],
            ),
            # Glue Data Catalog: read the Stratum database and its tables (what Athena checks for the caller).
            iam.PolicyStatement(
                sid="GlueCatalogRead",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                ],
                resources=[catalog.catalog_arn, catalog.database_arn, catalog.tables_arn],
            ),
            # Athena writes results with the caller's credentials; the API reads them back.
            iam.PolicyStatement(
                sid="AthenaResultsBucket",
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[storage.results_bucket.bucket_arn],
            ),
            permissions.objects(
                "AthenaResultsObjects",
                storage.results_bucket,
                results_prefix,
                ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            ),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)
        suppress(
            role,
            "IAM5",
            "Scoped to key prefixes and to this stack's Glue database: lake objects under workspaces/ (read), "
            "stored wafer classifications under workspaces/<workspace>/lake/wafer_patterns_final/ (write), raw "
            "uploads under incoming/ (PutObject for uploads and presigned URLs), Athena results under "
            "athena-results/, and the tables of the Stratum Glue database, which grow with the lake schema.",
            applies_to=[
                resource_regex("StorageLakeBucket", f"/{lake_prefix}*"),
                resource_regex("StorageLakeBucket", f"/{C.FINAL_PATTERNS_PREFIX}*"),
                resource_regex("StorageDropBucket", f"/{drop_prefix}*"),
                resource_regex("StorageResultsBucket", f"/{results_prefix}*"),
                f"Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/{catalog.database_name}/*",
            ],
        )
