"""The exports side of the synthesized stack: bus -> rule (export.requested) -> queue (+ DLQ, alarm) -> exports
function, its sizing and settings, and least privilege (read the lake, write only the exports prefix)."""

from __future__ import annotations

import pytest
from infra.stratum_infra import constants as C

from stratum.events.model import EVENT_KINDS, INTERNAL_KINDS
from stratum.settings import Settings
from stratum.storage.objectstore import EXPORT_LIFECYCLE, LIFECYCLE_TAG

from .conftest import Synth, render
from .test_layers import committed_manifest
from .test_stack import actions_on, function, logical_id, role_statements

pytestmark = pytest.mark.infra


def test_rule_routes_export_requests_to_the_queue(synth: Synth) -> None:
    x = synth.stack.exports
    rule = synth.resources[logical_id(synth, x.rule)]["Properties"]
    assert rule["EventBusName"] == {"Ref": logical_id(synth, synth.stack.bus)}
    assert rule["EventPattern"] == {"source": ["stratum"], "detail-type": ["export.requested"]}
    assert C.EXPORTS_EVENT_KINDS == INTERNAL_KINDS and not set(INTERNAL_KINDS) & set(C.DELIVERY_EVENT_KINDS)
    assert "export.requested" not in EVENT_KINDS  # never a notification or webhook kind
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(synth, x.queue), "Arn"]}


def test_queue_event_source_and_function(synth: Synth) -> None:
    x = synth.stack.exports
    q = synth.resources[logical_id(synth, x.queue)]["Properties"]
    assert q["RedrivePolicy"]["maxReceiveCount"] == C.EXPORTS_MAX_RECEIVE_COUNT == 2
    assert q["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [logical_id(synth, x.dead_letter_queue), "Arn"]}
    assert q["VisibilityTimeout"] == 900 * C.VISIBILITY_TIMEOUT_FACTOR and q["SqsManagedSseEnabled"] is True
    (esm,) = [
        r["Properties"]
        for r in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": logical_id(synth, x.function)}
    ]
    assert esm["BatchSize"] == 1 and esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["ScalingConfig"] == {"MaximumConcurrency": C.EXPORTS_MAX_CONCURRENCY}
    fn = function(synth, "exports")["Properties"]
    assert (fn["MemorySize"], fn["Timeout"], fn["EphemeralStorage"]) == (4096, 900, {"Size": 10240})
    env = fn["Environment"]["Variables"]
    # the settings the function reads: the query stops well before the function, DuckDB gets most of the memory
    s = Settings.model_validate(
        {
            "exports": {
                "timeout_seconds": env["STRATUM_EXPORTS__TIMEOUT_SECONDS"],
                "duckdb_memory_mb": env["STRATUM_EXPORTS__DUCKDB_MEMORY_MB"],
                "duckdb_temp_mb": env["STRATUM_EXPORTS__DUCKDB_TEMP_MB"],
            }
        }
    )
    assert s.exports.timeout_seconds == 720 < fn["Timeout"]
    assert s.exports.duckdb_memory_mb + 1024 <= fn["MemorySize"]
    assert s.exports.duckdb_temp_mb < fn["EphemeralStorage"]["Size"]
    assert s.exports.abandoned_after_seconds > fn["Timeout"]  # a redelivered request finds its run really gone
    assert C.layers_config()["functions"]["exports"] == ["query", "web"]


@pytest.mark.parametrize("name", ["exports", "api"])
def test_arrow_answering_functions_ship_nanoarrow_and_no_pyarrow(synth: Synth, name: str) -> None:
    """format=arrow exports (exports function) and Arrow IPC SQL pages (api) are encoded by nanoarrow from DuckDB's
    Arrow C stream: its layer is attached to both; pyarrow (87.6 MB) does not fit beside DuckDB."""
    names = C.layers_config()["functions"][name]
    layers = [logical_id(synth, synth.stack.layers.layers[n]) for n in names]
    assert [r["Ref"] for r in function(synth, name)["Properties"]["Layers"]] == layers
    modules = {m for n in names for m in committed_manifest(n)["modules"]}
    assert {"duckdb", "nanoarrow"} <= modules and "pyarrow" not in modules
    smoke = {m for n in names for m in C.layers_config()["layers"][n]["smoke_imports"]}
    assert {"nanoarrow", "nanoarrow.ipc"} <= smoke


def test_least_privilege(synth: Synth) -> None:
    lake = logical_id(synth, synth.stack.storage.lake_bucket)
    st = role_statements(synth, "exports")
    assert actions_on(st, rf"<{lake}\.Arn>/workspaces/\*") == {"s3:GetObject"}
    assert actions_on(st, rf"<{lake}\.Arn>/workspaces/\*/exports/\*") == {
        "s3:PutObject",
        "s3:PutObjectTagging",  # the lifecycle tag travels with PutObject / CreateMultipartUpload
        "s3:AbortMultipartUpload",
    }
    assert actions_on(st, rf"<{lake}\.Arn>") == {"s3:ListBucket"}
    writes = {"s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    for s in st:
        acts = set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        if acts & writes:
            assert [render(r) for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])] == [
                f"<{lake}.Arn>/workspaces/*/exports/*"
            ]
    assert not actions_on(st, r".*Drop.*") and not actions_on(st, r".*Results.*")
    assert not actions_on(st, r"<.*Bus.*\.Arn>")  # it publishes nothing
    table = logical_id(synth, synth.stack.storage.table)
    assert "dynamodb:PutItem" in actions_on(st, rf"<{table}\.Arn>")
    # the API queues exports through the bus, and may not write export files itself
    api = role_statements(synth, "api")
    assert "events:PutEvents" in actions_on(api, rf"<{logical_id(synth, synth.stack.bus)}\.Arn>")
    assert not actions_on(api, rf"<{lake}\.Arn>/workspaces/\*/exports/\*")


def test_export_files_expire_with_their_records(synth: Synth) -> None:
    """Export objects carry the lifecycle tag (written by the object store with the object; moto tests check it):
    the lake bucket's tag-filtered rule expires them after the records' retention, which every function is given.
    Incomplete multipart uploads cannot be aborted by a tag rule (S3 refuses it): the bucket-wide rule does."""
    lake = synth.resources[logical_id(synth, synth.stack.storage.lake_bucket)]["Properties"]
    rules = {r["Id"]: r for r in lake["LifecycleConfiguration"]["Rules"]}
    days = Settings().exports.retention_days
    assert days == C.EXPORTS_RETENTION_DAYS == 7  # the documented default of exports.retention_days
    assert rules["expire-exports"] == {
        "Id": "expire-exports",
        "Status": "Enabled",
        "TagFilters": [{"Key": LIFECYCLE_TAG, "Value": EXPORT_LIFECYCLE}],
        "ExpirationInDays": days,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    }
    assert (LIFECYCLE_TAG, EXPORT_LIFECYCLE) == ("stratum-lifecycle", "export")
    abort = rules["abort-incomplete-multipart"]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": C.INCOMPLETE_MULTIPART_DAYS}
    assert not {"Prefix", "TagFilters"} & set(abort)  # the whole bucket, export uploads included
    for name in ("api", "exports"):  # the API creates export records, the exports function finishes them
        env = function(synth, name)["Properties"]["Environment"]["Variables"]
        assert env["STRATUM_EXPORTS__RETENTION_DAYS"] == str(days)
