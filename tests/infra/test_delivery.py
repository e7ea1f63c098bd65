"""The delivery side of the synthesized stack: bus -> rule -> queue (+ DLQ) -> function, the tick, the
KMS key sealing webhook secrets, and least privilege for the function and the API."""

from __future__ import annotations

import pytest
from infra.stratum_infra import constants as C

from stratum.events import EVENT_KINDS

from .conftest import Synth, render
from .test_stack import actions_on, function, logical_id, role_statements

pytestmark = pytest.mark.infra


def test_rule_routes_every_delivered_kind_from_the_bus_to_the_queue(synth: Synth) -> None:
    d = synth.stack.delivery
    rule = synth.resources[logical_id(synth, d.rule)]["Properties"]
    assert rule["EventBusName"] == {"Ref": logical_id(synth, synth.stack.bus)}
    assert rule["EventPattern"] == {"source": ["stratum"], "detail-type": list(C.DELIVERY_EVENT_KINDS)}
    assert set(C.DELIVERY_EVENT_KINDS) == set(EVENT_KINDS) - {"ping"}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(synth, d.queue), "Arn"]}
    tick = synth.resources[logical_id(synth, d.tick)]["Properties"]
    assert tick["ScheduleExpression"] == "rate(1 minute)"
    assert tick["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id(synth, d.function), "Arn"]}


def test_queue_dlq_event_source_and_function(synth: Synth) -> None:
    d = synth.stack.delivery
    q = synth.resources[logical_id(synth, d.queue)]["Properties"]
    assert q["RedrivePolicy"]["maxReceiveCount"] == C.DELIVERY_MAX_RECEIVE_COUNT
    assert q["VisibilityTimeout"] == 300 * C.VISIBILITY_TIMEOUT_FACTOR and q["SqsManagedSseEnabled"] is True
    (esm,) = [
        r["Properties"]
        for r in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": logical_id(synth, d.function)}
    ]
    assert esm["BatchSize"] == 10 and esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    fn = function(synth, "delivery")["Properties"]
    assert (fn["MemorySize"], fn["Timeout"], fn["Handler"]) == (512, 300, "handler.handler")
    env = fn["Environment"]["Variables"]
    assert env["STRATUM_AWS__DELIVERY_KMS_KEY_ID"] == {"Fn::GetAtt": [logical_id(synth, d.secrets_key), "Arn"]}
    assert (
        function(synth, "api")["Properties"]["Environment"]["Variables"]["STRATUM_AWS__DELIVERY_KMS_KEY_ID"]
        == env["STRATUM_AWS__DELIVERY_KMS_KEY_ID"]
    )
    key = synth.resources[logical_id(synth, d.secrets_key)]
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"


def test_least_privilege(synth: Synth) -> None:
    d = synth.stack.delivery
    key = logical_id(synth, d.secrets_key)
    bus = logical_id(synth, synth.stack.bus)
    st = role_statements(synth, "delivery")
    assert actions_on(st, rf"<{key}\.Arn>") == {"kms:Encrypt", "kms:Decrypt"}
    assert actions_on(st, rf"<{bus}\.Arn>") == {"events:PutEvents"}
    assert actions_on(st, r"arn:<AWS::Partition>:ses:.*") == {"ses:SendRawEmail"}
    assert not actions_on(st, r".*Bucket.*")  # no S3 at all
    api = role_statements(synth, "api")
    assert actions_on(api, rf"<{key}\.Arn>") == {"kms:Encrypt", "kms:Decrypt"}
    assert actions_on(api, rf"<{bus}\.Arn>") == {"events:PutEvents"}
    assert "ses:SendRawEmail" not in {
        a for s in api for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    _ = render
