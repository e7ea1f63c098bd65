"""Notifications inbox and its preferences, per workspace.

Keys (owned here)::

    WS#<ws>#NTF        / <ntf_id>      a notification; gsi1 (WS#<ws>#NTF#UNREAD, <ntf_id>) while unread
    WS#<ws>#NTFEVT     / <event_id>    claim: one notification per event (at-least-once consumers)
    WS#<ws>#NTFPREFS   / prefs         the workspace's preferences
    EMAILQ (gsi2)      / <ws>#<ntf_id> notifications waiting for an email (``stratum.delivery.email``)

Ids are ``ntf_<ulid>``: time-sortable, so the table order is newest first when queried descending.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stratum.catalog import keyset_page
from stratum.errors import BadRequest, NotFound
from stratum.events import EVENT_KINDS, Event, new_event
from stratum.ids import ulid
from stratum.storage.metadata import ABSENT, ConditionFailed, MetadataStore, Put

Digest = Literal["off", "immediate", "hourly", "daily"]
DEFAULT_KINDS = ("monitor.fired", "monitor.recovered", "monitor.failed", "job.failed", "job.partial")
#: kinds a notification can have beyond event kinds (posted by the platform or an inbound hook)
PLATFORM_KINDS = ("webhook.disabled", "inbound")


def _ntf_pk(ws: str) -> str:
    return f"WS#{ws}#NTF"


def _unread_pk(ws: str) -> str:
    return f"WS#{ws}#NTF#UNREAD"


def now_utc() -> datetime:
    return datetime.now(UTC)


class MuteHours(BaseModel):
    """Quiet hours, e.g. 22:00 → 07:00 in Europe/Berlin (the window may cross midnight)."""

    model_config = ConfigDict(defer_build=True)

    start: time = Field(description="Start of the quiet hours, local time HH:MM[:SS]")
    end: time = Field(description="End of the quiet hours, local time (may be earlier than start: crosses midnight)")
    timezone: str = Field(default="UTC", description="IANA time zone of start and end, e.g. Europe/Berlin")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    def active(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        s, e = self.start.replace(tzinfo=None), self.end.replace(tzinfo=None)
        if s == e:
            return False
        return s <= local < e if s < e else (local >= s or local < e)


class Prefs(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "digest": "daily",
                    "email_to": ["test-eng@example.com"],
                    "mute": {"start": "22:00:00", "end": "07:00:00", "timezone": "Europe/Berlin"},
                    "kinds": ["job.failed", "monitor.fired"],
                }
            ]
        },
    )
    digest: Digest = Field(
        default="off", description="Email digest of new notifications: off, immediate, hourly or daily (needs email_to)"
    )
    email_to: list[str] = Field(default_factory=list, max_length=20, description="Addresses the digest goes to")
    mute: MuteHours | None = Field(default=None, description="Quiet hours: no digest email is sent inside them")
    kinds: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        description="Event kinds that make a notification (job.succeeded, job.partial, job.failed, monitor.fired, "
        "monitor.recovered, monitor.failed)",
    )

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in EVENT_KINDS or k in ("notification.new", "ping")]
        if bad:
            allowed = [k for k in EVENT_KINDS if k not in ("notification.new", "ping")]
            raise ValueError(f"unknown event kinds {bad}; allowed: {', '.join(allowed)}")
        return sorted(set(v))

    @field_validator("email_to")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for a in v:
            local, at, domain = a.partition("@")
            if not at or not local or "." not in domain or any(c.isspace() or c in "<>,;\r\n" for c in a):
                raise ValueError(f"not an email address: {a!r}")
        return v

    @model_validator(mode="after")
    def _need_address(self) -> Prefs:
        if self.digest != "off" and not self.email_to:
            raise ValueError(f"digest {self.digest!r} needs at least one address in email_to")
        return self


class Notification(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "ntf_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "workspace": "default",
                    "kind": "monitor.fired",
                    "title": "Monitor fired: WS1 yield under 90 % (lot_id LOT42)",
                    "body": "final yield of W07 is 84.20% (limit 90.00%)",
                    "subject": {"lot_id": "LOT42"},
                    "event_id": "evt_01JD90A1B2C3D4E5F6G7H8J9KN",
                    "created_at": "2026-12-04T18:02:20.300000Z",
                    "read_at": None,
                }
            ]
        },
    )
    id: str = Field(description="Notification id (`ntf_` + a ULID)")
    workspace: str = Field(description="Workspace it belongs to")
    kind: str = Field(
        description="Event kind that made it (e.g. monitor.fired, job.failed), or inbound / webhook.disabled"
    )
    title: str = Field(description="One line saying what happened and to what")
    body: str = Field(default="", description="Details (e.g. the finding's message or the job's error)")
    subject: dict[str, Any] = Field(default_factory=dict, description="What it is about, e.g. {lot_id} or {job_id}")
    event_id: str | None = Field(default=None, description="The event that made it; null for platform notifications")
    created_at: datetime = Field(description="When it was posted (ISO 8601, UTC)")
    read_at: datetime | None = Field(default=None, description="When it was marked read; null while unread")


def describe(event: Event) -> tuple[str, str]:
    """Title and body of the notification an event makes."""
    s = event.subject
    what = ", ".join(f"{k} {v}" for k, v in s.items()) or "workspace " + event.workspace
    titles = {
        "monitor.fired": "Monitor fired",
        "monitor.recovered": "Monitor recovered",
        "monitor.failed": "Monitor failed to run",
        "job.succeeded": "Ingest succeeded",
        "job.partial": "Ingest partially succeeded",
        "job.failed": "Ingest failed",
    }
    label = event.data.get("label")
    title = (
        f"{titles.get(event.kind, event.kind)}: {label} ({what})"
        if label
        else f"{titles.get(event.kind, event.kind)}: {what}"
    )
    msg = event.data.get("message") or event.data.get("reason") or event.data.get("error") or ""
    return title, str(msg) if not isinstance(msg, dict) else str(msg.get("message", msg))


def channel_refs(event: Event) -> list[str]:
    """The ``kind:id`` channel refs an event names (monitors put their ``notify`` list in ``data``)."""
    refs = event.data.get("notify")
    return [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


class Inbox:
    def __init__(
        self,
        meta: MetadataStore,
        publish: Callable[[Event], None] | None = None,
        *,
        max_chars: int = 4000,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.meta = meta
        self.publish = publish
        self.max_chars = max_chars
        self.clock = clock

    # -- prefs -------------------------------------------------------------------------------
    def prefs(self, ws: str) -> Prefs:
        item = self.meta.get(f"WS#{ws}#NTFPREFS", "prefs")
        return Prefs.model_validate(item.data) if item else Prefs()

    def set_prefs(self, ws: str, prefs: Prefs) -> Prefs:
        self.meta.put(f"WS#{ws}#NTFPREFS", "prefs", prefs.model_dump(mode="json"))
        return prefs

    # -- notifications -------------------------------------------------------------------------
    def post(
        self,
        ws: str,
        kind: str,
        title: str,
        body: str = "",
        *,
        subject: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Notification | None:
        """Store a notification (once per ``event_id``), queue its email per the prefs and publish
        ``notification.new``. Returns None when the event already made one."""
        n = Notification(
            id=f"ntf_{ulid(int(self.clock().timestamp() * 1000))}",
            workspace=ws,
            kind=kind,
            title=title[:200],
            body=body[: self.max_chars],
            subject=subject or {},
            event_id=event_id,
            created_at=self.clock(),
        )
        ops: list[Put] = [
            Put(_ntf_pk(ws), n.id, n.model_dump(mode="json"), expect=ABSENT, gsi1=(_unread_pk(ws), n.id)),
        ]
        if event_id:
            ops.append(Put(f"WS#{ws}#NTFEVT", event_id, {"notification_id": n.id}, expect=ABSENT))
        prefs = self.prefs(ws)
        if prefs.digest != "off":
            ops.append(Put(f"WS#{ws}#EMAILQ", n.id, {"notification_id": n.id}, gsi2=("EMAILQ", f"{ws}#{n.id}")))
        try:
            self.meta.transact(ops)  # type: ignore[arg-type]
        except ConditionFailed:
            return None  # this event was already turned into a notification
        if self.publish is not None:
            self.publish(
                new_event(
                    "notification.new",
                    ws,
                    subject={"notification_id": n.id, **{k: v for k, v in n.subject.items() if k != "notification_id"}},
                    data={"kind": n.kind, "title": n.title, "body": n.body},
                    event_id=f"evt_{n.id}",
                )
            )
        return n

    def on_event(self, event: Event) -> Notification | None:
        """Consumer of the event port: events of the kinds the workspace chose become notifications. An
        event naming its channels (a monitor's ``notify`` refs) reaches the inbox only with an ``inbox:``
        ref, whatever the kinds."""
        refs = channel_refs(event)
        if refs:
            if not any(r.startswith("inbox:") for r in refs):
                return None
        elif event.kind not in self.prefs(event.workspace).kinds:
            return None
        title, body = describe(event)
        return self.post(event.workspace, event.kind, title, body, subject=event.subject, event_id=event.id)

    def get(self, ws: str, ntf_id: str) -> Notification:
        item = self.meta.get(_ntf_pk(ws), ntf_id)
        if item is None:
            raise NotFound(f"notification {ntf_id!r} not found")
        return Notification.model_validate(item.data)

    def list(
        self,
        ws: str,
        *,
        unread: bool = False,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Notification], str | None]:
        if since is not None and since.tzinfo is None:
            raise BadRequest("since must carry a time zone (e.g. 2026-01-01T00:00:00Z)")

        def want(n: Notification) -> bool:
            return (kind is None or n.kind == kind) and (since is None or n.created_at >= since)

        return keyset_page(
            self.meta,
            _unread_pk(ws) if unread else _ntf_pk(ws),
            index="gsi1" if unread else "table",
            limit=limit,
            cursor=cursor,
            build=Notification.model_validate,
            want=want if (kind or since) else None,
        )

    def mark_read(self, ws: str, ntf_id: str) -> Notification:
        item = self.meta.get(_ntf_pk(ws), ntf_id)
        if item is None:
            raise NotFound(f"notification {ntf_id!r} not found")
        n = Notification.model_validate(item.data)
        if n.read_at is None:
            n.read_at = self.clock()
            try:
                self.meta.put(_ntf_pk(ws), ntf_id, n.model_dump(mode="json"), expect=item.version)
            except ConditionFailed:
                return self.get(ws, ntf_id)  # someone else marked it meanwhile
        return n

    def mark_all_read(self, ws: str) -> int:
        done = 0
        while True:
            page = self.meta.query(_unread_pk(ws), index="gsi1", limit=100)
            if not page.items:
                return done
            for it in page.items:
                self.mark_read(ws, it.sk)
                done += 1

    def dismiss(self, ws: str, ntf_id: str) -> None:
        self.get(ws, ntf_id)
        self.meta.delete(_ntf_pk(ws), ntf_id)
