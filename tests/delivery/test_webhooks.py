"""Outbound webhook delivery against a real loopback receiver: signatures (verified with the independent
``standardwebhooks`` package), the retry schedule, Retry-After, redirects, 410, disabling, rotation,
ping, redeliver, leases."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from stratum.delivery.signing import secret_key
from stratum.delivery.webhooks import WebhookIn, WebhookPatch
from stratum.devtools.webhook_receiver import Receiver
from stratum.errors import NotFound
from stratum.events import new_event

from .conftest import make_delivery

NO_JITTER = {"delivery": {"jitter_fraction": 0.0}}


def hook(svc, url: str, ws: str = "ws1", events=("monitor.fired",)):
    return svc.webhooks.create(ws, WebhookIn(name="cell-7", target_url=url, events=list(events)))


def verify(secret: str, r) -> dict:
    return standardwebhooks.Webhook(secret).verify(r.body, r.headers)


def signed_by(secret: str, r) -> bool:
    """standardwebhooks' own signature over the delivery, without its wall-clock window."""
    ts = datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC)
    want = standardwebhooks.Webhook(secret).sign(r.headers["webhook-id"], ts, r.body)
    return want in r.headers["webhook-signature"].split(" ")


def test_signed_delivery_verified_by_standardwebhooks(tmp_path, receiver: Receiver) -> None:
    svc, bus = make_delivery(tmp_path)
    wh, secret = hook(svc, receiver.url)
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    ev = new_event("monitor.fired", "ws1", subject={"monitor_id": "mon_1", "lot_id": "L1"}, data={"value": 0.81})
    bus.publish(ev)
    assert svc.webhooks.run_due() == 1
    (r,) = receiver.wait_for(1)
    body = verify(secret, r)
    assert body["type"] == "monitor.fired" and body["data"]["id"] == ev.id
    assert body["data"]["subject"] == {"monitor_id": "mon_1", "lot_id": "L1"} and body["data"]["data"] == {
        "value": 0.81
    }
    assert r.headers["webhook-id"] == ev.id and r.path == "/hook"
    want = "sha256=" + hmac.new(secret_key(secret), r.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(r.headers["X-Stratum-Signature"], want)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(r.body + b" ", r.headers)
    (d,), _ = svc.webhooks.list_deliveries("ws1", webhook_id=wh.id)
    assert (d.status, [a.status_code for a in d.attempts], d.next_attempt_at) == ("succeeded", [200], None)
    bus.publish(ev)  # the same event again: no second delivery
    assert svc.webhooks.run_due() == 0 and len(svc.webhooks.list_deliveries("ws1")[0]) == 1
    assert svc.webhooks.list_deliveries("ws2") == ([], None)
    with pytest.raises(NotFound):
        svc.webhooks.get_delivery("ws2", d.id)
    assert "secret" not in svc.webhooks.get("ws1", wh.id).model_dump()


def test_500_three_times_then_success_on_the_fourth_attempt(tmp_path, receiver: Receiver, clock) -> None:
    receiver.script = lambda n, r: (500, {}) if n <= 3 else (200, {})
    svc, bus = make_delivery(tmp_path, clock, **NO_JITTER)
    wh, secret = hook(svc, receiver.url)
    t0 = clock.now
    bus.publish(new_event("monitor.fired", "ws1", subject={"monitor_id": "m"}))
    assert svc.webhooks.run_due() == 1
    for wait in (5, 300, 1800):
        clock.advance(seconds=wait - 0.001)
        assert svc.webhooks.run_due() == 0  # not due a millisecond early
        clock.advance(seconds=0.001)
        assert svc.webhooks.run_due() == 1
    got = receiver.wait_for(4)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    verify(secret, got[0])
    for r in got[1:]:  # later attempts carry later timestamps (beyond the verifier's 5-minute window)
        assert signed_by(secret, r)
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert [a.status_code for a in d.attempts] == [500, 500, 500, 200] and d.status == "succeeded"
    assert [a.n for a in d.attempts] == [1, 2, 3, 4]
    assert [a.at - t0 for a in d.attempts] == [
        timedelta(0),
        timedelta(seconds=5),
        timedelta(seconds=305),
        timedelta(seconds=2105),
    ]
    assert d.attempts[0].error == "HTTP 500"
    assert svc.webhooks.get("ws1", wh.id).failing_since is None  # recovered


def test_schedule_with_jitter_and_giving_up(tmp_path, receiver: Receiver, clock) -> None:
    receiver.script = lambda n, r: (502, {})
    svc, bus = make_delivery(tmp_path, clock)
    hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    schedule = [5, 300, 1800, 7200, 18000, 36000, 36000]
    svc.webhooks.run_due()
    for base in schedule:
        (d,), _ = svc.webhooks.list_deliveries("ws1")
        delay = (d.next_attempt_at - d.attempts[-1].at).total_seconds()
        assert base <= delay <= base * 1.1
        clock.now = d.next_attempt_at
        assert svc.webhooks.run_due() == 1
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert len(d.attempts) == 8 and d.status == "failed" and d.next_attempt_at is None
    clock.advance(days=1)
    assert svc.webhooks.run_due() == 0


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured(tmp_path, receiver: Receiver, clock, code: int) -> None:
    receiver.script = lambda n, r: (code, {"Retry-After": "120"}) if n == 1 else (200, {})
    svc, bus = make_delivery(tmp_path, clock)
    hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert d.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.advance(seconds=119)
    assert svc.webhooks.run_due() == 0
    clock.advance(seconds=1)
    assert svc.webhooks.run_due() == 1
    assert svc.webhooks.get_delivery("ws1", d.id).status == "succeeded"


def test_redirect_is_a_failure_and_never_followed(tmp_path, receiver: Receiver, clock) -> None:
    other = Receiver().start()
    try:
        receiver.script = lambda n, r: (302, {"Location": other.url})
        svc, bus = make_delivery(tmp_path, clock)
        hook(svc, receiver.url)
        bus.publish(new_event("monitor.fired", "ws1"))
        svc.webhooks.run_due()
        (d,), _ = svc.webhooks.list_deliveries("ws1")
        assert d.status == "pending" and d.attempts[0].status_code == 302
        assert d.attempts[0].error == "HTTP 302 (redirects are not followed)"
        assert other.received == []
    finally:
        other.stop()


def test_410_disables_and_notifies(tmp_path, receiver: Receiver, clock) -> None:
    receiver.script = lambda n, r: (410, {})
    svc, bus = make_delivery(tmp_path, clock)
    wh, _ = hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert d.status == "failed" and len(d.attempts) == 1
    got = svc.webhooks.get("ws1", wh.id)
    assert (got.enabled, got.disabled_reason) == (False, "the endpoint answered 410 Gone")
    notes = [n for n in svc.inbox.list("ws1")[0] if n.kind == "webhook.disabled"]
    assert len(notes) == 1 and notes[0].subject == {"webhook_id": wh.id}
    bus.publish(new_event("monitor.fired", "ws1"))  # a disabled endpoint gets no new deliveries
    assert len(svc.webhooks.list_deliveries("ws1")[0]) == 1


def test_failing_for_five_days_disables_with_a_notification(tmp_path, receiver: Receiver, clock) -> None:
    receiver.script = lambda n, r: (500, {})
    svc, bus = make_delivery(tmp_path, clock, delivery={"retry_schedule_seconds": [0]})
    wh, _ = hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    assert svc.webhooks.get("ws1", wh.id).failing_since == clock.now
    clock.advance(days=4, hours=23)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    assert svc.webhooks.get("ws1", wh.id).enabled
    clock.advance(hours=1)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    got = svc.webhooks.get("ws1", wh.id)
    assert (got.enabled, got.disabled_reason) == (False, "every delivery failed for 5 days")
    (note,) = [n for n in svc.inbox.list("ws1")[0] if n.kind == "webhook.disabled"]
    assert note.title == "Webhook 'cell-7' disabled"
    # re-enabled by its owner: failing history cleared
    again = svc.webhooks.update("ws1", wh.id, WebhookPatch(enabled=True))
    assert again.enabled and again.failing_since is None and again.disabled_reason is None


def test_rotation_signs_with_both_secrets_for_24_hours(tmp_path, receiver: Receiver, clock) -> None:
    svc, bus = make_delivery(tmp_path, clock)
    wh, old = hook(svc, receiver.url)
    _, new = svc.webhooks.rotate_secret("ws1", wh.id)
    assert new != old
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    (r,) = receiver.wait_for(1)
    assert len(r.headers["webhook-signature"].split(" ")) == 2
    verify(old, r)
    verify(new, r)
    want = "sha256=" + hmac.new(secret_key(new), r.body, hashlib.sha256).hexdigest()
    assert r.headers["X-Stratum-Signature"] == want  # the newest secret
    clock.advance(hours=24, seconds=1)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.run_due()
    r2 = receiver.wait_for(2)[1]
    assert len(r2.headers["webhook-signature"].split(" ")) == 1
    assert signed_by(new, r2) and not signed_by(old, r2)


def test_ping_and_redeliver_keep_the_webhook_id(tmp_path, receiver: Receiver, clock) -> None:
    svc, bus = make_delivery(tmp_path, clock)
    wh, secret = hook(svc, receiver.url)
    ping = svc.webhooks.test("ws1", wh.id)
    assert ping.kind == "ping" and ping.status == "succeeded" and [a.status_code for a in ping.attempts] == [200]
    assert verify(secret, receiver.wait_for(1)[0])["type"] == "ping"
    ev = new_event("monitor.fired", "ws1")
    bus.publish(ev)
    svc.webhooks.run_due()
    (d,) = [x for x in svc.webhooks.list_deliveries("ws1", webhook_id=wh.id)[0] if x.kind == "monitor.fired"]
    again = svc.webhooks.redeliver("ws1", d.id)
    assert again.status == "pending"
    assert svc.webhooks.run_due() == 1
    got = receiver.wait_for(3)
    assert got[1].headers["webhook-id"] == got[2].headers["webhook-id"] == ev.id
    final = svc.webhooks.get_delivery("ws1", d.id)
    assert [a.n for a in final.attempts] == [1, 2] and final.status == "succeeded"


def test_a_crashed_attempt_is_retried_after_its_lease(tmp_path, receiver: Receiver, clock) -> None:
    svc, bus = make_delivery(tmp_path, clock)
    hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    ((ws, dlv_id),) = svc.webhooks.due()
    item = svc.meta.get("WS#ws1#DLV", dlv_id)
    assert svc.webhooks._claim(item) is not None  # a worker claimed it, then died before attempting
    assert svc.webhooks.due() == [] and svc.webhooks.run_due() == 0
    clock.advance(seconds=60)
    assert svc.webhooks.run_due() == 1
    assert svc.webhooks.get_delivery("ws1", dlv_id).status == "succeeded"
    assert len(receiver.received) == 1


def test_deleted_or_disabled_endpoint_cancels_pending(tmp_path, receiver: Receiver, clock) -> None:
    svc, bus = make_delivery(tmp_path, clock)
    wh, _ = hook(svc, receiver.url)
    bus.publish(new_event("monitor.fired", "ws1"))
    svc.webhooks.update("ws1", wh.id, WebhookPatch(enabled=False))
    svc.webhooks.run_due()
    (d,), _ = svc.webhooks.list_deliveries("ws1")
    assert d.status == "cancelled" and d.attempts[0].error == "webhook disabled (None)"
    assert receiver.received == []
    json.dumps(d.model_dump(mode="json"))


def test_run_due_stops_claiming_at_the_deadline(tmp_path, receiver: Receiver, clock) -> None:
    import time

    svc, bus = make_delivery(tmp_path, clock)
    hook(svc, receiver.url)
    for _ in range(3):
        bus.publish(new_event("monitor.fired", "ws1"))
    assert svc.webhooks.run_due(deadline=time.monotonic() - 1) == 0
    assert len(svc.webhooks.due()) == 3  # nothing claimed: all still due
    assert svc.webhooks.run_due(deadline=time.monotonic() + 60) == 3


@pytest.mark.aws
def test_durable_delivery_on_dynamodb(tmp_path, receiver: Receiver, clock, dynamo_store) -> None:
    """The same record -> due index -> claim -> attempt -> retry flow on the DynamoDB adapter."""
    receiver.script = lambda n, r: (500, {}) if n == 1 else (200, {})
    svc, bus = make_delivery(tmp_path, clock, meta=dynamo_store, **NO_JITTER)
    wh, secret = hook(svc, receiver.url)
    ev = new_event("monitor.fired", "ws1")
    bus.publish(ev)
    bus.publish(ev)  # recorded once
    assert svc.webhooks.run_due() == 1
    clock.advance(seconds=5)
    assert svc.webhooks.run_due() == 1
    (d,), _ = svc.webhooks.list_deliveries("ws1", webhook_id=wh.id)
    assert [a.status_code for a in d.attempts] == [500, 200] and d.status == "succeeded"
    assert svc.webhooks.due() == []
    verify(secret, receiver.received[0])


def test_a_failing_inbox_does_not_cost_the_webhooks_their_delivery(tmp_path, receiver: Receiver) -> None:
    svc, bus = make_delivery(tmp_path)
    hook(svc, receiver.url)

    def broken(event):
        raise RuntimeError("inbox store down")

    svc.inbox.on_event = broken
    with pytest.raises(RuntimeError, match="inbox store down"):
        svc.handle(new_event("monitor.fired", "ws1"))
    assert len(svc.webhooks.due()) == 1
