"""Email (local outbox and SES on moto), digests per the prefs, secret sealing (local AES-GCM and KMS on
moto), and the done-when chain: a monitor fires → inbox notification + signed webhook + email file."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
import standardwebhooks

from stratum.delivery.email import SesEmail, build_message
from stratum.delivery.inbox import MuteHours, Prefs
from stratum.delivery.sealing import KmsSecretBox, LocalSecretBox
from stratum.delivery.webhooks import WebhookIn
from stratum.devtools.webhook_receiver import Receiver
from stratum.events import new_event
from tests.fixtures.aws import REGION

from .conftest import make_delivery


def mails(svc) -> list[email.message.EmailMessage]:
    d = svc.settings.data_dir / "outbox"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(d.glob("*.eml"))]


def fire(bus, monitor: str = "mon_1", ws: str = "ws1"):
    ev = new_event("monitor.fired", ws, subject={"monitor_id": monitor, "lot_id": "L1"}, data={"message": "yield 71%"})
    bus.publish(ev)
    return ev


def test_monitor_fired_reaches_inbox_webhook_and_email(tmp_path, receiver: Receiver) -> None:
    svc, bus = make_delivery(tmp_path)
    svc.inbox.set_prefs("ws1", Prefs(digest="immediate", email_to=["qa@example.com", "pe@example.com"]))
    _, secret = svc.webhooks.create("ws1", WebhookIn(name="mes", target_url=receiver.url, events=["monitor.fired"]))
    ev = fire(bus)
    (n,), _ = svc.inbox.list("ws1")
    assert (n.kind, n.event_id, n.title) == ("monitor.fired", ev.id, "Monitor fired: monitor_id mon_1, lot_id L1")
    assert svc.webhooks.run_due() == 1
    (r,) = receiver.wait_for(1)
    assert standardwebhooks.Webhook(secret).verify(r.body, r.headers)["data"]["id"] == ev.id
    assert svc.flush_email() and svc.flush_email() == []
    (m,) = mails(svc)
    assert m["To"] == "qa@example.com, pe@example.com" and m["From"] == "stratum@localhost"
    assert m["Subject"] == "[Stratum ws1] Monitor fired: monitor_id mon_1, lot_id L1"
    assert "yield 71%" in m.get_content()


def test_digest_hourly_daily_and_mute(tmp_path, clock) -> None:
    svc, bus = make_delivery(tmp_path, clock)
    svc.inbox.set_prefs("ws1", Prefs(digest="hourly", email_to=["qa@example.com"]))
    fire(bus, "a")
    fire(bus, "b")
    assert len(svc.flush_email()) == 1
    (m,) = mails(svc)
    assert m["Subject"] == "[Stratum ws1] hourly digest: 2 notifications"
    body = m.get_content()
    assert "monitor_id a" in body and "monitor_id b" in body
    fire(bus, "c")
    clock.advance(minutes=59)
    assert svc.flush_email() == []  # within the hour: held
    clock.advance(minutes=1)
    assert len(svc.flush_email()) == 1
    assert mails(svc)[-1]["Subject"] == "[Stratum ws1] Monitor fired: monitor_id c, lot_id L1"
    # daily, muted now: held through the mute window, nothing lost
    start = (clock.now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (clock.now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    svc.inbox.set_prefs(
        "ws1", Prefs(digest="daily", email_to=["qa@example.com"], mute=MuteHours(start=start, end=end, timezone="UTC"))
    )
    clock.advance(days=1)
    fire(bus, "d")
    assert svc.flush_email() == []  # muted
    clock.advance(hours=2)
    assert len(svc.flush_email()) == 1
    assert len(mails(svc)) == 3
    svc.inbox.set_prefs("ws1", Prefs(digest="off"))
    fire(bus, "e")
    assert svc.flush_email() == [] and len(mails(svc)) == 3


@pytest.mark.aws
def test_ses_adapter_on_moto(moto_server: str, boto_session) -> None:
    ses = boto_session.client("ses", region_name=REGION, endpoint_url=moto_server)
    ses.verify_email_identity(EmailAddress="stratum@example.com")
    port = SesEmail(REGION, endpoint_url=moto_server, session=boto_session)
    before = ses.get_send_quota()["SentLast24Hours"]
    from datetime import UTC, datetime

    msg_id = port.send(build_message("stratum@example.com", ["qa@example.com"], "s", "body\n", datetime.now(UTC)))
    assert msg_id and ses.get_send_quota()["SentLast24Hours"] == before + 1


def test_local_secret_box(tmp_path) -> None:
    box = LocalSecretBox.from_settings("", tmp_path)
    key_file = tmp_path / "keys" / "delivery.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    sealed = box.seal("whsec_abc", {"workspace": "a", "webhook_id": "w1"})
    assert "whsec_abc" not in sealed and sealed.startswith("aesgcm:")
    assert (
        LocalSecretBox.from_settings("", tmp_path).open(sealed, {"workspace": "a", "webhook_id": "w1"}) == "whsec_abc"
    )
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):  # copied onto another webhook or workspace: does not open
        box.open(sealed, {"workspace": "b", "webhook_id": "w1"})


@pytest.mark.aws
def test_kms_secret_box_on_moto(moto_server: str, boto_session) -> None:
    kms = boto_session.client("kms", region_name=REGION, endpoint_url=moto_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    box = KmsSecretBox(key_id, REGION, endpoint_url=moto_server, session=boto_session)
    sealed = box.seal("whsec_xyz", {"workspace": "a", "webhook_id": "w1"})
    assert sealed.startswith("kms:") and "whsec_xyz" not in sealed
    assert box.open(sealed, {"workspace": "a", "webhook_id": "w1"}) == "whsec_xyz"
    with pytest.raises(Exception, match="InvalidCiphertext"):
        box.open(sealed, {"workspace": "b", "webhook_id": "w1"})
