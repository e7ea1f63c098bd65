"""EventPort contract: every adapter delivers the same envelope to a consumer, and refuses what it cannot
deliver. In-process: a subscriber. EventBridge (moto): a rule on the bus with an SQS target, as on AWS."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from stratum.events import Event, EventPort, new_event
from stratum.events.eventbridge import SOURCE, EventBridgeBus, event_from_eventbridge
from stratum.events.local import InProcessBus
from tests.fixtures.aws import REGION, unique_name

Receive = Callable[[], list[Event]]


@pytest.fixture(params=["in-process", pytest.param("eventbridge", marks=pytest.mark.aws)])
def port(request: pytest.FixtureRequest) -> Iterator[tuple[EventPort, Receive]]:
    if request.param == "in-process":
        bus = InProcessBus()
        got: list[Event] = []
        bus.subscribe(got.append)

        def drain() -> list[Event]:
            out = list(got)
            got.clear()
            return out

        yield bus, drain
        return
    endpoint = request.getfixturevalue("moto_server")
    session = request.getfixturevalue("boto_session")
    events = session.client("events", region_name=REGION, endpoint_url=endpoint)
    sqs = session.client("sqs", region_name=REGION, endpoint_url=endpoint)
    bus_name = unique_name("stratum-bus")
    events.create_event_bus(Name=bus_name)
    queue_url = sqs.create_queue(QueueName=unique_name("stratum-events"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName=bus_name, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="all", EventBusName=bus_name, Targets=[{"Id": "q", "Arn": queue_arn}])

    def receive() -> list[Event]:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [event_from_eventbridge(json.loads(m["Body"])) for m in msgs]

    yield EventBridgeBus(bus_name, REGION, endpoint_url=endpoint, session=session), receive


def test_round_trip(port: tuple[EventPort, Receive]) -> None:
    bus, receive = port
    ev = new_event("monitor.fired", "ws1", subject={"monitor_id": "mon_1", "lot_id": "L1"}, data={"yield": 0.42})
    bus.publish(ev)
    got = receive()
    assert got == [ev]
    assert got[0].data == {"yield": 0.42} and got[0].occurred_at.tzinfo is not None


def test_deterministic_id_is_kept(port: tuple[EventPort, Receive]) -> None:
    bus, receive = port
    ev = new_event("job.succeeded", "ws1", subject={"job_id": "job_X"}, event_id="evt_job_X_succeeded")
    bus.publish(ev)
    assert [e.id for e in receive()] == ["evt_job_X_succeeded"]


def test_unknown_kind_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        new_event("job.exploded", "ws1")


def test_in_process_filters_and_isolates_failing_subscribers() -> None:
    bus = InProcessBus()
    seen: list[str] = []

    def broken(_: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.kind), kinds=["job.failed"])
    bus.publish(new_event("job.succeeded", "w"))
    bus.publish(new_event("job.failed", "w"))
    assert seen == ["job.failed"]
    unsubscribe()
    bus.publish(new_event("job.failed", "w"))
    assert seen == ["job.failed"]
