"""The email channel: an ``EmailPort`` (SES on AWS, ``.eml`` files in ``<data-dir>/outbox/`` locally)
and the digest that turns queued notifications into mail per the workspace's prefs.

``Inbox.post`` queues a notification (``WS#<ws>#EMAILQ``, on the gsi2 ``EMAILQ`` index) when the
workspace's digest is not ``off``. ``Digests.flush`` (the local worker's tick; a scheduled run of the
delivery function on AWS) sends, per workspace and outside its mute hours: each queued notification
at once for ``immediate``; one digest when the last one is at least an hour (``hourly``) or a day
(``daily``) old. Sent items leave the queue; nothing is dropped while muted.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from stratum.ids import ulid
from stratum.storage.metadata import MetadataStore

from .inbox import Inbox, Notification

INTERVALS = {"immediate": timedelta(0), "hourly": timedelta(hours=1), "daily": timedelta(days=1)}


def build_message(sender: str, to: list[str], subject: str, text: str, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.partition("@")[2] or "stratum.local")
    msg.set_content(text)
    return msg


class EmailPort(ABC):
    @abstractmethod
    def send(self, msg: EmailMessage) -> str:
        """Send; returns an id (file name, SES message id)."""


class LocalOutbox(EmailPort):
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def send(self, msg: EmailMessage) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{ulid()}.eml"
        tmp = self.dir / f".{name}.tmp"
        tmp.write_bytes(bytes(msg))
        os.replace(tmp, self.dir / name)  # readers never see half a message
        return name


class SesEmail(EmailPort):
    def __init__(self, region: str, *, endpoint_url: str | None = None, session: Any = None) -> None:
        import boto3

        self._ses = (session or boto3).client("ses", region_name=region, endpoint_url=endpoint_url)

    def send(self, msg: EmailMessage) -> str:
        # recipients come from the To header (SES reads them when Destinations is omitted)
        out = self._ses.send_raw_email(Source=str(msg["From"]), RawMessage={"Data": bytes(msg)})
        return out["MessageId"]


class Digests:
    def __init__(
        self,
        meta: MetadataStore,
        inbox: Inbox,
        port: EmailPort,
        sender: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.meta, self.inbox, self.port, self.sender, self.clock = meta, inbox, port, sender, clock

    def _queued(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        cursor = None
        while True:
            page = self.meta.query("EMAILQ", index="gsi2", limit=500, cursor=cursor)
            for it in page.items:
                ws = it.pk.split("#")[1]
                out.setdefault(ws, []).append(it.sk)
            cursor = page.cursor
            if cursor is None:
                return out

    def flush(self) -> list[str]:
        """Send what is due; returns the ids of the messages sent."""
        sent = []
        now = self.clock()
        for ws, ids in self._queued().items():
            prefs = self.inbox.prefs(ws)
            if prefs.digest == "off":
                for i in ids:  # turned off meanwhile: nothing more to send
                    self.meta.delete(f"WS#{ws}#EMAILQ", i)
                continue
            if prefs.mute is not None and prefs.mute.active(now):
                continue
            last = self.meta.get(f"WS#{ws}#EMAILQ#LAST", "last")
            if last is not None and now - datetime.fromisoformat(last.data["at"]) < INTERVALS[prefs.digest]:
                continue
            notes: list[Notification] = []
            for i in ids:
                item = self.meta.get(f"WS#{ws}#NTF", i)
                if item is not None:  # dismissed meanwhile: skip
                    notes.append(Notification.model_validate(item.data))
            batches = [[n] for n in notes] if prefs.digest == "immediate" else ([notes] if notes else [])
            for batch in batches:
                if len(batch) == 1:
                    subject = f"[Stratum {ws}] {batch[0].title}"
                else:
                    subject = f"[Stratum {ws}] {prefs.digest} digest: {len(batch)} notifications"
                text = "\n\n".join(f"{n.created_at:%Y-%m-%d %H:%M} UTC  {n.title}\n{n.body}".rstrip() for n in batch)
                sent.append(self.port.send(build_message(self.sender, prefs.email_to, subject, text + "\n", now)))
            for i in ids:
                self.meta.delete(f"WS#{ws}#EMAILQ", i)
            self.meta.put(f"WS#{ws}#EMAILQ#LAST", "last", {"at": now.isoformat()})
        return sent
