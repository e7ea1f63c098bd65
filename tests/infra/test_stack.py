"""Tripwires on the synthesized Stratum stack: what must exist, and what would hurt if it changed."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from infra.stratum_infra import constants as C

from .conftest import ROOT, Synth, as_list, render

pytestmark = pytest.mark.infra

EXPECTED_ENV = {
    "STRATUM_BACKEND",
    "STRATUM_ENVIRONMENT",
    "STRATUM_AWS__REGION",
    "STRATUM_AWS__DROP_BUCKET",
    "STRATUM_AWS__DROP_PREFIX",
    "STRATUM_AWS__LAKE_BUCKET",
    "STRATUM_AWS__LAKE_PREFIX",
    "STRATUM_AWS__METADATA_TABLE",
    "STRATUM_AWS__GLUE_DATABASE",
    "STRATUM_AWS__ATHENA_WORKGROUP",
    "STRATUM_AWS__ATHENA_OUTPUT",
    "STRATUM_AWS__EVENT_BUS_NAME",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
}


# ----------------------------------------------------------------------------------------------- helpers


def logical_id(synth: Synth, construct) -> str:
    return synth.stack.resolve(construct.node.default_child.logical_id)


def function(synth: Synth, name: str) -> dict:
    construct = {
        "ingest": synth.stack.ingest.function,
        "api": synth.stack.api.function,
        "delivery": synth.stack.delivery.function,
        "monitors": synth.stack.monitors.function,
        "exports": synth.stack.exports.function,
    }[name]
    return synth.resources[logical_id(synth, construct)]


def role_statements(synth: Synth, name: str) -> list[dict]:
    role_ref = function(synth, name)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_ref} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def allowed(statements: list[dict], action: str, resource: str) -> bool:
    """True if an Allow statement grants exactly this action on exactly this (rendered) resource."""
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        if action in as_list(st["Action"]) and resource in [render(r) for r in as_list(st["Resource"])]:
            return True
    return False


def actions_on(statements: list[dict], resource_pattern: str) -> set[str]:
    """Every action granted on a resource whose rendered form matches the regex."""
    found: set[str] = set()
    for st in statements:
        if st["Effect"] == "Allow" and any(re.fullmatch(resource_pattern, render(r)) for r in as_list(st["Resource"])):
            found |= set(as_list(st["Action"]))
    return found


def bucket_ids(synth: Synth) -> dict[str, str]:
    s = synth.stack.storage
    return {
        "drop": logical_id(synth, s.drop_bucket),
        "lake": logical_id(synth, s.lake_bucket),
        "results": logical_id(synth, s.results_bucket),
        "logs": logical_id(synth, s.access_logs_bucket),
    }


# ------------------------------------------------------------------------------------------ resource counts


def test_must_exist_resource_counts(synth: Synth) -> None:
    t = synth.template
    t.resource_count_is("AWS::S3::Bucket", 4)  # drop, lake, athena results, access logs
    t.resource_count_is("AWS::DynamoDB::Table", 1)
    t.resource_count_is("AWS::SQS::Queue", 7)  # ingest, delivery, exports queues + DLQs, monitors DLQ
    # ingest, api, monitors, delivery, exports + BucketNotificationsHandler
    t.resource_count_is("AWS::Lambda::Function", 6)
    t.resource_count_is("AWS::Lambda::LayerVersion", 3)
    t.resource_count_is("AWS::Lambda::EventSourceMapping", 3)
    t.resource_count_is("AWS::ApiGateway::RestApi", 1)
    t.resource_count_is("AWS::ApiGateway::Stage", 1)
    t.resource_count_is("AWS::CloudWatch::Alarm", 4)  # ingest, monitors, delivery, exports DLQs
    t.resource_count_is("AWS::Athena::WorkGroup", 1)
    t.resource_count_is("AWS::Glue::Database", 1)
    t.resource_count_is("Custom::S3BucketNotifications", 1)
    t.resource_count_is("AWS::Events::EventBus", 1)
    # job.succeeded|partial -> monitors; delivery: kinds -> queue, tick; export.requested -> exports queue;
    # ingest: expire presigned uploads
    t.resource_count_is("AWS::Events::Rule", 5)
    t.resource_count_is("AWS::KMS::Key", 1)  # webhook secrets
    t.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)  # schedules themselves are created per monitor
    t.resource_count_is("AWS::Scheduler::Schedule", 0)
    # no Cognito, no authorizer
    t.resource_count_is("AWS::ApiGateway::Account", 1)  # region-wide logging role (retained; see ApiConstruct)
    for absent in ("AWS::Cognito::UserPool", "AWS::ApiGateway::Authorizer"):
        t.resource_count_is(absent, 0)


# ------------------------------------------------------------------------------------------------ storage


def test_buckets_encrypted_private_tls_only_retained(synth: Synth) -> None:
    policies = {render(p["Properties"]["Bucket"]): p for p in synth.of_type("AWS::S3::BucketPolicy").values()}
    for name, lid in bucket_ids(synth).items():
        bucket = synth.resources[lid]
        props = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain", name
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert sse["SSEAlgorithm"] in ("AES256", "aws:kms"), name
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        statements = policies[f"<{lid}>"]["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for st in statements
        ), f"{name} bucket policy does not deny non-TLS requests"


def test_versioning_access_logs_and_lifecycle(synth: Synth) -> None:
    ids = bucket_ids(synth)
    props = {name: synth.resources[lid]["Properties"] for name, lid in ids.items()}
    for name in ("drop", "lake"):
        assert props[name]["VersioningConfiguration"] == {"Status": "Enabled"}, name
    for name in ("drop", "lake", "results"):
        assert props[name]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": ids["logs"]}, name
    for name, p in props.items():
        rules = p["LifecycleConfiguration"]["Rules"]
        assert any("AbortIncompleteMultipartUpload" in r for r in rules), f"{name}: no multipart cleanup"
    results_rules = props["results"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == C.ATHENA_RESULTS_DAYS for r in results_rules)


def test_metadata_table(synth: Synth) -> None:
    from stratum.storage.dynamodb_layout import TTL_ATTRIBUTE, table_definition

    expected = table_definition("any")
    table = synth.resources[logical_id(synth, synth.stack.storage.table)]
    p = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert p["KeySchema"] == expected["KeySchema"]
    assert p["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert p["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert p["DeletionProtectionEnabled"] is True
    gsis = {g["IndexName"]: g for g in p["GlobalSecondaryIndexes"]}
    assert gsis == {g["IndexName"]: g for g in expected["GlobalSecondaryIndexes"]}
    attrs = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
    assert attrs == {a["AttributeName"]: a["AttributeType"] for a in expected["AttributeDefinitions"]}


# ------------------------------------------------------------------------------------------------- ingest


def test_expire_uploads_schedule_invokes_the_ingest_function(synth: Synth) -> None:
    """Every 5 minutes EventBridge sends {"task": "expire_uploads"} (events/ingest/scheduled_expire_uploads.json)
    to the ingest function; nothing else may invoke it on that rule's behalf."""
    rule = synth.resources[logical_id(synth, synth.stack.ingest.expire_uploads)]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)" and rule["State"] == "ENABLED"
    assert "EventBusName" not in rule  # the default bus carries schedules
    (target,) = rule["Targets"]
    fn = logical_id(synth, synth.stack.ingest.function)
    assert target["Arn"] == {"Fn::GetAtt": [fn, "Arn"]}
    sample = json.loads((ROOT / "events" / "ingest" / "scheduled_expire_uploads.json").read_text())
    assert json.loads(target["Input"]) == sample == {"task": "expire_uploads"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    perms = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"].get("SourceArn")
        == {"Fn::GetAtt": [logical_id(synth, synth.stack.ingest.expire_uploads), "Arn"]}
    ]
    assert perms == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [fn, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [logical_id(synth, synth.stack.ingest.expire_uploads), "Arn"]},
        }
    ]


def test_moved_files_can_never_trigger_ingest_again(synth: Synth) -> None:
    """The drop bucket notifies for incoming/ only; files move to processed/ and failed/ (outside it)."""
    assert (C.DROP_PROCESSED_PREFIX, C.DROP_FAILED_PREFIX) == ("processed/", "failed/")
    from stratum.ingest.drop import FAILED_PREFIX, PROCESSED_PREFIX

    assert (PROCESSED_PREFIX, FAILED_PREFIX) == (C.DROP_PROCESSED_PREFIX, C.DROP_FAILED_PREFIX)
    (notification,) = synth.of_type("Custom::S3BucketNotifications").values()
    for rule in notification["Properties"]["NotificationConfiguration"]["QueueConfigurations"]:
        prefix = {f["Name"]: f["Value"] for f in rule["Filter"]["Key"]["FilterRules"]}["prefix"]
        assert prefix == C.DROP_PREFIX
        assert not C.DROP_PROCESSED_PREFIX.startswith(prefix) and not C.DROP_FAILED_PREFIX.startswith(prefix)


def test_only_the_drop_bucket_notifies_with_stdf_filters(synth: Synth) -> None:
    ids = bucket_ids(synth)
    (notification,) = synth.of_type("Custom::S3BucketNotifications").values()
    assert notification["Properties"]["BucketName"] == {"Ref": ids["drop"]}
    config = notification["Properties"]["NotificationConfiguration"]
    assert set(config) == {"QueueConfigurations"}  # no Lambda/SNS/EventBridge targets
    queue_id = logical_id(synth, synth.stack.ingest.queue)
    suffixes = []
    for rule in config["QueueConfigurations"]:
        assert rule["Events"] == ["s3:ObjectCreated:*"]
        assert rule["QueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        filters = {f["Name"]: f["Value"] for f in rule["Filter"]["Key"]["FilterRules"]}
        assert filters["prefix"] == "incoming/"
        suffixes.append(filters["suffix"])
    assert sorted(suffixes) == sorted(C.STDF_SUFFIXES)
    assert {".stdf", ".std", ".stdf.gz", ".std.gz", ".stdf.bz2", ".std.bz2", ".zip", ".STDF", ".STD"} == set(suffixes)
    # S3 rejects overlapping rules: with one prefix, no suffix may end with another.
    assert not [(a, b) for a in suffixes for b in suffixes if a != b and a.endswith(b)]


def test_lake_bucket_can_never_trigger_ingest(synth: Synth) -> None:
    lake = bucket_ids(synth)["lake"]
    assert "NotificationConfiguration" not in synth.resources[lake]["Properties"]
    for res in synth.resources.values():
        if res["Type"] == "Custom::S3BucketNotifications":
            assert res["Properties"]["BucketName"] != {"Ref": lake}
        if res["Type"] == "AWS::Lambda::EventSourceMapping":
            assert "S3" not in json.dumps(res["Properties"]["EventSourceArn"])  # only the SQS queue feeds ingest
    assert not synth.of_type("AWS::Lambda::Permission") or all(
        p["Properties"]["Principal"] != "s3.amazonaws.com" for p in synth.of_type("AWS::Lambda::Permission").values()
    )


def test_ingest_queue_visibility_dlq_and_event_source(synth: Synth) -> None:
    ingest_timeout = function(synth, "ingest")["Properties"]["Timeout"]
    queue = synth.resources[logical_id(synth, synth.stack.ingest.queue)]["Properties"]
    dlq_id = logical_id(synth, synth.stack.ingest.dead_letter_queue)
    assert queue["VisibilityTimeout"] >= 6 * ingest_timeout
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 3}
    for q in (queue, synth.resources[dlq_id]["Properties"]):
        assert q["SqsManagedSseEnabled"] is True
    for policy in synth.of_type("AWS::SQS::QueuePolicy").values():
        assert any(
            st["Effect"] == "Deny" and st["Condition"]["Bool"]["aws:SecureTransport"] == "false"
            for st in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    ingest_fn = {"Ref": logical_id(synth, synth.stack.ingest.function)}
    (p,) = [
        e["Properties"]
        for e in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if e["Properties"]["FunctionName"] == ingest_fn
    ]
    assert 1 <= p["BatchSize"] <= 5
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("owner", ["ingest", "monitors", "delivery", "exports"])
def test_dlq_alarm(synth: Synth, owner: str) -> None:
    dlq_id = logical_id(synth, getattr(synth.stack, owner).dead_letter_queue)
    (alarm,) = [
        a
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]}
    ]
    p = alarm["Properties"]
    assert p["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert p["Namespace"] == "AWS/SQS"
    assert p["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == 0


# ------------------------------------------------------------------------------------------------- Lambda


@pytest.mark.parametrize(
    ("name", "memory", "timeout", "tmp_mb"),
    [
        ("ingest", 3008, 900, 4096),
        ("api", C.API_MEMORY_MB, None, 2048),
        ("monitors", 2048, 300, 1024),
        ("exports", 4096, 900, 10240),
    ],
)
def test_lambda_configuration(synth: Synth, name: str, memory: int, timeout: int | None, tmp_mb: int) -> None:
    p = function(synth, name)["Properties"]
    assert p["Runtime"] == "python3.12"
    assert p["Architectures"] == ["arm64"]
    assert p["Handler"] == "handler.handler"
    assert p["MemorySize"] == memory
    if timeout is not None:
        assert p["Timeout"] == timeout
    assert p["EphemeralStorage"] == {"Size": tmp_mb}
    assert p["TracingConfig"] == {"Mode": "Active"}
    assert p["LoggingConfig"]["LogFormat"] == "JSON"
    assert p["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
    assert len(p["Layers"]) == len(C.layers_config()["functions"][name])


def test_api_timeouts_fit_the_integration_timeout(synth: Synth) -> None:
    lambda_timeout = function(synth, "api")["Properties"]["Timeout"]
    env = function(synth, "api")["Properties"]["Environment"]["Variables"]
    sql = int(env["STRATUM_SQL__TIMEOUT_SECONDS"])
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        integration_ms = method["Properties"]["Integration"]["TimeoutInMillis"]
        assert sql < lambda_timeout <= integration_ms / 1000
    # default: the quota-free maximum; the full 30 s SQL limit once the quota is raised
    assert C.api_timeouts(29) == C.ApiTimeouts(integration_seconds=29, lambda_seconds=29, sql_seconds=26)
    assert C.api_timeouts(40) == C.ApiTimeouts(integration_seconds=40, lambda_seconds=35, sql_seconds=30)


@pytest.mark.parametrize("name", ["ingest", "api", "monitors", "delivery", "exports"])
def test_environment_variables(synth: Synth, name: str) -> None:
    env = function(synth, name)["Properties"]["Environment"]["Variables"]
    assert EXPECTED_ENV <= set(env), EXPECTED_ENV - set(env)
    assert env["STRATUM_BACKEND"] == "aws"
    assert env["STRATUM_ENVIRONMENT"] == "production"
    assert env["STRATUM_AWS__DROP_PREFIX"] == "incoming/"
    assert env["STRATUM_AWS__LAKE_PREFIX"] == ""
    assert env["STRATUM_AWS__REGION"] == {"Ref": "AWS::Region"}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Stratum"
    ids = bucket_ids(synth)
    assert env["STRATUM_AWS__DROP_BUCKET"] == {"Ref": ids["drop"]}
    assert env["STRATUM_AWS__LAKE_BUCKET"] == {"Ref": ids["lake"]}
    assert render(env["STRATUM_AWS__ATHENA_OUTPUT"]) == f"s3://<{ids['results']}>/athena-results/"
    # no secrets in the template: no key-like variable names
    assert not [k for k in env if re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", k)]


def test_every_handler_resolves_to_a_function_in_its_asset(synth: Synth) -> None:
    """Handler ``module.func`` -> <asset>/module.py defines (or binds) ``func``. CDK's inline handlers skipped."""
    files = synth.assets_manifest["files"]
    missing = []
    checked = 0
    for lid, res in synth.of_type("AWS::Lambda::Function").items():
        code = res["Properties"]["Code"]
        if "ZipFile" in code:
            continue
        asset_hash = render(code["S3Key"]).removesuffix(".zip")
        asset_dir = synth.outdir / files[asset_hash]["source"]["path"]
        module, func = res["Properties"]["Handler"].rsplit(".", 1)
        module_file = asset_dir / (module.replace(".", "/") + ".py")
        if not module_file.is_file():
            missing.append((lid, module_file.name))
            continue
        tree = ast.parse(module_file.read_text(), filename=str(module_file))
        bound = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bound.add(node.name)
            elif isinstance(node, ast.Assign):
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                bound.add(node.target.id)
            elif isinstance(node, ast.ImportFrom):
                bound |= {a.asname or a.name for a in node.names}
        assert func in bound, f"{lid}: {module_file.name} does not define {func!r}"
        assert (asset_dir / "stratum" / "__init__.py").is_file(), f"{lid}: the stratum package is not in the asset"
        checked += 1
    if missing:
        # Only the lead's handler modules may be missing (work in progress): name them.
        sources = [
            f"functions/{n}/handler.py"
            for n in ("ingest", "api", "delivery")
            if not (ROOT / "functions" / n / "handler.py").is_file()
        ]
        assert sources, f"handler modules missing from assets although the sources exist: {missing}"
        pytest.skip(f"handler module(s) not written yet: {', '.join(sources)} ({checked} other handler(s) checked)")


def test_function_assets_ship_the_stratum_package_as_is(synth: Synth) -> None:
    for name in ("ingest", "api", "monitors", "delivery", "exports"):
        asset = synth.build_dir / "functions" / name
        shipped = {p.relative_to(asset / "stratum") for p in (asset / "stratum").rglob("*") if p.is_file()}
        from infra.stratum_infra.assets import shipped_package_files

        source = {p.relative_to(ROOT / "src" / "stratum") for p in shipped_package_files(ROOT / "src" / "stratum")}
        assert not {p for p in source if p.parts[0] == "devtools"}
        assert shipped == source
        assert not list(asset.rglob("__pycache__"))


# ----------------------------------------------------------------------------------------------------- API


def test_rest_api_stage(synth: Synth) -> None:
    (api,) = synth.of_type("AWS::ApiGateway::RestApi").values()
    p = api["Properties"]
    assert set(p["BinaryMediaTypes"]) >= {
        "application/octet-stream",
        "application/gzip",
        "application/x-bzip2",
        "image/png",
        "*/*",
    }
    assert p["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    (stage,) = synth.of_type("AWS::ApiGateway::Stage").values()
    s = stage["Properties"]
    assert s["TracingEnabled"] is True
    fmt = json.loads(s["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "sourceIp", "integrationLatency"} <= set(fmt)
    log_group = logical_id(synth, synth.stack.api.access_logs)
    assert render(s["AccessLogSetting"]["DestinationArn"]).endswith(f":log-group:<{log_group}>")
    (settings,) = s["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == C.API_THROTTLE_RATE
    assert settings["ThrottlingBurstLimit"] == C.API_THROTTLE_BURST
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        assert method["Properties"]["AuthorizationType"] == "NONE"  # authenticated by the application
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"


# ----------------------------------------------------------------------------------------------------- IAM


def test_ingest_least_privilege(synth: Synth) -> None:
    ids = bucket_ids(synth)
    st = role_statements(synth, "ingest")
    drop_raw, lake_ws = f"<{ids['drop']}.Arn>/incoming/*", f"<{ids['lake']}.Arn>/workspaces/*"
    assert allowed(st, "s3:GetObject", drop_raw) and allowed(st, "s3:GetObjectVersion", drop_raw)
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert allowed(st, action, lake_ws), action
    # the drop bucket: read (and, once moved, delete) raw files under incoming/, never write there; write the
    # moved copies and error reports under processed/ and failed/ only; list those three prefixes only
    drop = ids["drop"]
    assert actions_on(st, rf"<{drop}\.Arn>/incoming/\*") == {"s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"}
    for prefix in ("processed", "failed"):
        assert actions_on(st, rf"<{drop}\.Arn>/{prefix}/\*") == {
            "s3:GetObject",
            "s3:PutObject",
            "s3:AbortMultipartUpload",
        }
    assert actions_on(st, rf"<{drop}\.Arn>") == {"s3:ListBucket"}
    assert actions_on(st, rf"<{drop}\.Arn>.*") == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:DeleteObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
    }
    (list_drop,) = [s for s in st if s.get("Sid") == "ListDrop"]
    assert list_drop["Condition"]["StringLike"]["s3:prefix"] == [
        "incoming/*",
        "incoming",
        "processed/*",
        "processed",
        "failed/*",
        "failed",
    ]
    assert not actions_on(st, rf"<{ids['results']}\.Arn>.*")
    assert actions_on(st, rf"<{ids['lake']}\.Arn>/.*") == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    list_lake = [s for s in st if s.get("Sid") == "ListLake"]
    assert list_lake and list_lake[0]["Condition"]["StringLike"]["s3:prefix"] == ["workspaces/*", "workspaces"]
    table = logical_id(synth, synth.stack.storage.table)
    assert allowed(st, "dynamodb:PutItem", f"<{table}.Arn>") and allowed(
        st, "dynamodb:Query", f"<{table}.Arn>/index/gsi1"
    )
    queue = logical_id(synth, synth.stack.ingest.queue)
    assert allowed(st, "sqs:ReceiveMessage", f"<{queue}.Arn>") and allowed(st, "sqs:DeleteMessage", f"<{queue}.Arn>")


def test_api_reads_the_lake_and_writes_only_stored_classifications(synth: Synth) -> None:
    ids = bucket_ids(synth)
    st = role_statements(synth, "api")
    assert allowed(st, "s3:GetObject", f"<{ids['lake']}.Arn>/workspaces/*")
    assert actions_on(st, rf"<{ids['lake']}\.Arn>.*") == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    final = rf"<{ids['lake']}\.Arn>/workspaces/\*/lake/wafer_patterns_final/\*"
    assert actions_on(st, final) == {"s3:PutObject"}
    assert not allowed(st, "s3:PutObject", f"<{ids['lake']}.Arn>/workspaces/*")
    assert allowed(st, "s3:PutObject", f"<{ids['drop']}.Arn>/incoming/*")
    assert actions_on(st, rf"<{ids['drop']}\.Arn>.*") == {"s3:PutObject"}
    athena = actions_on(st, r"arn:<AWS::Partition>:athena:<AWS::Region>:<AWS::AccountId>:workgroup/stratum")
    assert {"athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"} <= athena
    assert "glue:GetTable" in actions_on(st, r"arn:<AWS::Partition>:glue:.*:table/stratum/\*")
    assert {"s3:GetObject", "s3:PutObject"} <= actions_on(st, rf"<{ids['results']}\.Arn>/athena-results/\*")


def test_no_wildcard_actions_and_every_wildcard_resource_has_a_reason(synth: Synth) -> None:
    for lid, res in synth.resources.items():
        if res["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        suppressions = [
            s
            for s in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
            if s["id"] == "AwsSolutions-IAM5"
        ]
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(st["Action"]):
                assert "*" not in action, f"{lid}: wildcard action {action}"
            for resource in as_list(st["Resource"]):
                rendered = f"Resource::{render(resource)}"
                if "*" not in rendered:
                    continue
                covering = [s for s in suppressions if _applies(s.get("applies_to"), rendered)]
                assert covering, f"{lid}: {rendered} has no IAM5 suppression"
                assert all(len(s["reason"]) >= 10 for s in covering)


def _applies(applies_to: list | None, finding: str) -> bool:
    if not applies_to:
        return True
    for entry in applies_to:
        if isinstance(entry, str) and entry == finding:
            return True
        if isinstance(entry, dict):
            m = re.fullmatch(r"/(.*)/([a-z]*)", entry["regex"])
            if m and re.search(m.group(1), finding):
                return True
    return False


# ------------------------------------------------------------------------------------------ catalog / outputs


def test_workgroup_and_database(synth: Synth) -> None:
    (wg,) = synth.of_type("AWS::Athena::WorkGroup").values()
    cfg = wg["Properties"]["WorkGroupConfiguration"]
    assert cfg["EnforceWorkGroupConfiguration"] is True
    assert cfg["BytesScannedCutoffPerQuery"] == C.ATHENA_BYTES_SCANNED_CUTOFF
    assert cfg["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert (
        render(cfg["ResultConfiguration"]["OutputLocation"]) == f"s3://<{bucket_ids(synth)['results']}>/athena-results/"
    )
    (db,) = synth.of_type("AWS::Glue::Database").values()
    assert db["Properties"]["DatabaseInput"]["Name"] == "stratum"


# ------------------------------------------------------------------------------------------------ cdk-nag


def test_cdk_nag_has_no_unsuppressed_findings(synth: Synth) -> None:
    from aws_cdk.assertions import Annotations, Match

    annotations = Annotations.from_stack(synth.stack)
    errors = annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], "\n".join(str(e.entry.data)[:200] for e in errors)
    warnings = annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert warnings == [], "\n".join(str(w.entry.data)[:200] for w in warnings)


def test_every_nag_suppression_has_a_specific_reason(synth: Synth) -> None:
    reasons = [
        s["reason"]
        for res in synth.resources.values()
        for s in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert reasons
    assert all(len(r) >= 40 for r in reasons), [r for r in reasons if len(r) < 40]


def test_unbuilt_layers_and_missing_handlers_block_deploy_not_synth(synth: Synth) -> None:
    from aws_cdk.assertions import Annotations, Match

    annotations = Annotations.from_stack(synth.stack)
    layer_errors = annotations.find_error("*", Match.string_like_regexp(r"Lambda layer '.*' has not been built.*"))
    assert len(layer_errors) == 3  # the test session never builds layers
    handler_errors = annotations.find_error("*", Match.string_like_regexp(r"functions/.*/handler\.py does not exist.*"))
    expected = [n for n in ("ingest", "api") if not (ROOT / "functions" / n / "handler.py").is_file()]
    assert len(handler_errors) == len(expected)


# ------------------------------------------------------------------------------------------------ cfn-lint


def test_cfn_lint_passes(synth: Synth) -> None:
    templates = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    proc = subprocess.run(
        [str(cfn_lint), "--ignore-checks", "W3005", "--", *templates], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------------------- monitors


def test_monitors_schedule_group_role_rule_and_dlq(synth: Synth) -> None:
    mon = synth.stack.monitors
    (group,) = synth.of_type("AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == "Stratum-monitors"
    fn_id = logical_id(synth, mon.function)
    dlq_id = logical_id(synth, mon.dead_letter_queue)
    # the scheduler role: assumed by EventBridge Scheduler of this account only; invoke this function, DLQ only
    role = synth.resources[logical_id(synth, mon.scheduler_role)]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    stmts = []
    role_id = logical_id(synth, mon.scheduler_role)
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            stmts += policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted((as_list(s["Action"])[0], render(s["Resource"])) for s in stmts) == [
        ("lambda:InvokeFunction", f"<{fn_id}.Arn>"),
        ("sqs:SendMessage", f"<{dlq_id}.Arn>"),
    ]
    # the ingest rule: job.succeeded|partial on the stack's bus -> the function, with retries and the DLQ
    (rule,) = [
        r
        for r in synth.of_type("AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    ]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["stratum"],
        "detail-type": ["job.succeeded", "job.partial"],
    }
    (target,) = rule["Properties"]["Targets"]
    assert render(target["Arn"]) == f"<{fn_id}.Arn>"
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert render(target["DeadLetterConfig"]["Arn"]) == f"<{dlq_id}.Arn>"
    # the API manages schedules: its environment names them, its role may touch only the group's schedules
    env = function(synth, "api")["Properties"]["Environment"]["Variables"]
    assert render(env["STRATUM_MONITORS__FUNCTION_ARN"]) == f"<{fn_id}.Arn>"
    assert env["STRATUM_MONITORS__SCHEDULE_GROUP"] == "Stratum-monitors"
    api = role_statements(synth, "api")
    sched = [s for s in api if s.get("Sid") == "ManageMonitorSchedules"]
    assert len(sched) == 1 and "schedule/Stratum-monitors/*" in render(sched[0]["Resource"])
    (passrole,) = [s for s in api if s.get("Sid") == "PassSchedulerRole"]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    # the monitors function reads the lake and writes only the classifications it stores on publish;
    # publishes events on the bus
    mon_stmts = role_statements(synth, "monitors")
    lake = bucket_ids(synth)["lake"]
    assert actions_on(mon_stmts, rf"<{lake}\.Arn>/workspaces/\*") == {"s3:GetObject"}
    assert actions_on(mon_stmts, rf"<{lake}\.Arn>/.*") == {"s3:GetObject", "s3:PutObject"}
    assert actions_on(mon_stmts, rf"<{lake}\.Arn>/workspaces/\*/lake/wafer_patterns_final/\*") == {"s3:PutObject"}
    assert any(s.get("Sid") == "PublishEvents" for s in mon_stmts)
    for name in ("ingest", "api"):
        assert "events:PutEvents" in {a for s in role_statements(synth, name) for a in as_list(s["Action"])}, name
