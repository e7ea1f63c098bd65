"""The monitors Lambda as packaged (functions/monitors/handler.py) with the sample events in
events/monitors/, and the EventBridge Scheduler adapter against moto (one schedule per monitor in the
stack's group, following the monitor through create, update, pause, resume and delete)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from stratum.devtools.stdf.lots import LotSpec, TestDef, write_lot
from stratum.monitors.model import MonitorIn, MonitorPatch
from stratum.monitors.scheduler import EventBridgeScheduler, schedule_name
from stratum.settings import get_settings, settings_for
from tests.conftest import ROOT
from tests.fixtures.runtime import make_runtime
from tests.functional.test_ingest_handler import FakeContext, load_handler

EVENTS = ROOT / "events" / "monitors"
BODY = {
    "label": "low yield",
    "rule": {"kind": "yield_below", "params": {"limit": 0.99, "level": "lot"}},
    "trigger": {"schedule": {"expression": "rate(1 hour)"}},
}


@pytest.fixture
def deployed(tmp_path, monkeypatch):
    monkeypatch.setenv("STRATUM_BACKEND", "local")
    monkeypatch.setenv("STRATUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stratum-monitors")
    get_settings.cache_clear()
    rt = make_runtime(tmp_path / "data")
    g = write_lot(LotSpec(lot_id="HL", wafers=("W1",), die_diameter=8, tests=(TestDef(1000, "T"),), seed=3), tmp_path)
    job = rt.ingest.ingest_path("default", g.paths[0])
    mod = load_handler("monitors")
    yield rt, mod, job
    if "rt" in mod._state:
        mod._state["rt"].close()
    rt.close()
    get_settings.cache_clear()


def test_schedule_invoke(deployed) -> None:
    rt, mod, _ = deployed
    m = rt.monitors.create("default", MonitorIn.model_validate(BODY))
    ev = json.loads((EVENTS / "schedule_invoke.json").read_text())
    ev["monitor_id"] = m.monitor_id
    out = mod.handler(ev, FakeContext(function_name="stratum-monitors"))
    assert [r["status"] for r in out["runs"]] == ["fired"] and out["runs"][0]["findings"] == 1
    # a redelivered invocation records a run but no second finding
    again = mod.handler(ev, FakeContext(function_name="stratum-monitors"))
    assert again["runs"][0]["findings"] == 0
    runs, _ = rt.monitors.runs("default", m.monitor_id)
    assert [r.trigger for r in runs] == ["schedule", "schedule"]
    ev["monitor_id"] = "mon_deleted"
    assert mod.handler(ev, FakeContext()) == {"runs": []}


def test_ingest_event(deployed) -> None:
    rt, mod, job = deployed
    m = rt.monitors.create("default", MonitorIn.model_validate({**BODY, "trigger": {"on_ingest": True}}))
    ev = json.loads((EVENTS / "job_succeeded.json").read_text())
    ev["detail"]["subject"] = {"job_id": job.job_id, "lot_id": "HL"}
    out = mod.handler(ev, FakeContext())
    assert [(r["status"], r["findings"]) for r in out["runs"]] == [("fired", 1)]
    runs, _ = rt.monitors.runs("default", m.monitor_id)
    assert [(r.trigger, r.lots) for r in runs] == [("ingest", ["HL"])]
    with pytest.raises(ValueError, match="unrecognised event"):
        mod.handler({"hello": 1}, FakeContext())


FN = "arn:aws:lambda:us-east-1:123456789012:function:stratum-monitors"
ROLE = "arn:aws:iam::123456789012:role/stratum-scheduler"
DLQ = "arn:aws:sqs:us-east-1:123456789012:stratum-monitors-dlq"


def test_eventbridge_scheduler_follows_the_monitor(tmp_path, monkeypatch) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name="stratum-monitors")
        settings = settings_for(
            tmp_path / "d",
            backend="local",
            monitors={
                "function_arn": FN,
                "scheduler_role_arn": ROLE,
                "dlq_arn": DLQ,
                "schedule_group": "stratum-monitors",
            },
        )
        rt = make_runtime(tmp_path / "d", monitors=settings.monitors.model_dump())
        try:
            svc = rt.monitors
            svc.scheduler = EventBridgeScheduler(rt.settings)
            body = {
                **BODY,
                "trigger": {"schedule": {"expression": "cron(0 6 ? * MON-FRI *)", "timezone": "Europe/Berlin"}},
            }
            m = svc.create("default", MonitorIn.model_validate(body))
            name = schedule_name("default", m.monitor_id)
            s = client.get_schedule(Name=name, GroupName="stratum-monitors")
            assert s["ScheduleExpression"] == "cron(0 6 ? * MON-FRI *)"
            assert s["ScheduleExpressionTimezone"] == "Europe/Berlin"
            assert s["State"] == "ENABLED" and s["FlexibleTimeWindow"] == {"Mode": "OFF"}
            assert s["Target"]["Arn"] == FN and s["Target"]["RoleArn"] == ROLE
            assert json.loads(s["Target"]["Input"]) == {"workspace": "default", "monitor_id": m.monitor_id}
            assert s["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
            assert s["Target"]["DeadLetterConfig"] == {"Arn": DLQ}
            svc.set_state("default", m.monitor_id, "paused")
            assert client.get_schedule(Name=name, GroupName="stratum-monitors")["State"] == "DISABLED"
            svc.set_state("default", m.monitor_id, "active")
            assert client.get_schedule(Name=name, GroupName="stratum-monitors")["State"] == "ENABLED"
            svc.patch(
                "default",
                m.monitor_id,
                MonitorPatch.model_validate({"trigger": {"schedule": {"expression": "rate(5 minutes)"}}}),
            )
            s = client.get_schedule(Name=name, GroupName="stratum-monitors")
            assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"]) == ("rate(5 minutes)", "UTC")
            names = [x["Name"] for x in client.list_schedules(GroupName="stratum-monitors")["Schedules"]]
            assert names == [name]
            # switching to on_ingest removes the schedule; so does deleting a scheduled monitor
            svc.patch("default", m.monitor_id, MonitorPatch.model_validate({"trigger": {"on_ingest": True}}))
            assert client.list_schedules(GroupName="stratum-monitors")["Schedules"] == []
            m2 = svc.create("default", MonitorIn.model_validate(body))
            assert len(client.list_schedules(GroupName="stratum-monitors")["Schedules"]) == 1
            svc.delete("default", m2.monitor_id)
            assert client.list_schedules(GroupName="stratum-monitors")["Schedules"] == []
        finally:
            rt.close()
