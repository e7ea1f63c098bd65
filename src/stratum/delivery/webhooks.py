"""Outbound webhooks: endpoints, their sealed secrets, and durable at-least-once delivery.

Keys (owned here)::

    WS#<ws>#WHK     / <whk_id>          an endpoint (secrets sealed, see ``sealing``)
    WS#<ws>#DLV     / <dlv_id>          one event for one endpoint, with its attempt log
                      gsi1 (WS#<ws>#DLV#WHK#<whk_id>, <dlv_id>)     the audit log per endpoint
                      gsi2 (DLV#DUE, <due ms, 15 digits>#<dlv_id>)  only while an attempt is due
    WS#<ws>#DLVEVT  / <whk_id>#<event_id>  claim: one delivery per (endpoint, event)

An event is recorded (one delivery item per subscribed endpoint, in one transaction) before any attempt;
the item stays on the due index until it succeeds or gives up, so a crash or restart loses nothing.
Workers claim a due item with a conditional write that moves it ``lease_seconds`` ahead (two workers
never attempt the same item at once; a worker that dies mid-attempt leaves it due again after the lease)
and write the outcome with another conditional write. The ``webhook-id`` is the event id: stable across
attempts and redeliveries, receivers deduplicate on it.
"""

from __future__ import annotations

import builtins
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratum.catalog import keyset_page
from stratum.errors import BadRequest, NotFound
from stratum.events import EVENT_KINDS, Event, new_event
from stratum.ids import ulid
from stratum.settings import DeliverySettings
from stratum.storage.metadata import ABSENT, ConditionFailed, Item, MetadataStore, Put

from .guard import Guard, Response, TargetRefused, send
from .inbox import channel_refs
from .sealing import SecretBox
from .signing import new_secret, sign_headers

log = logging.getLogger(__name__)

DUE_PK = "DLV#DUE"
SUBSCRIBABLE = tuple(k for k in EVENT_KINDS if k != "ping")
DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


def _whk_pk(ws: str) -> str:
    return f"WS#{ws}#WHK"


def _dlv_pk(ws: str) -> str:
    return f"WS#{ws}#DLV"


def _due_sk(at: datetime, dlv_id: str) -> str:
    return f"{int(at.timestamp() * 1000):015d}#{dlv_id}"


D_NAME = "Short name of the webhook"
D_URL = "URL the signed POSTs go to (https in production; private and loopback addresses are refused)"
D_EVENTS = (
    "Event kinds to deliver: job.succeeded, job.partial, job.failed, monitor.fired, monitor.recovered, "
    "monitor.failed, notification.new"
)


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {"name": "MES bridge", "target_url": "https://mes.example.com/hooks/stratum", "events": ["job.failed"]}
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100, description=D_NAME)
    target_url: str = Field(min_length=1, max_length=2048, description=D_URL)
    events: list[str] = Field(min_length=1, max_length=len(SUBSCRIBABLE), description=D_EVENTS)
    enabled: bool = Field(default=True, description="Deliver events (false: keep the webhook but send nothing)")

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in SUBSCRIBABLE]
        if bad:
            raise ValueError(f"unknown event kinds {bad}; known: {', '.join(SUBSCRIBABLE)}")
        return sorted(set(v))


class WebhookPatch(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str | None = Field(default=None, min_length=1, max_length=100, description=D_NAME)
    target_url: str | None = Field(default=None, min_length=1, max_length=2048, description=D_URL)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(SUBSCRIBABLE), description=D_EVENTS)
    enabled: bool | None = Field(default=None, description="true re-enables a disabled webhook; false stops deliveries")

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else WebhookIn._events(v)


WEBHOOK_EXAMPLE: dict[str, Any] = {
    "id": "whk_01JD90A1B2C3D4E5F6G7H8J9KM",
    "workspace": "default",
    "name": "MES bridge",
    "target_url": "https://mes.example.com/hooks/stratum",
    "events": ["job.failed"],
    "enabled": True,
    "disabled_reason": None,
    "failing_since": None,
    "created_at": "2026-12-01T09:00:00Z",
    "updated_at": "2026-12-01T09:00:00Z",
    "secret_rotated_at": None,
}


class Webhook(BaseModel):
    """What the API shows (never the secrets)."""

    model_config = ConfigDict(defer_build=True, json_schema_extra={"examples": [WEBHOOK_EXAMPLE]})
    id: str = Field(description="Webhook id")
    workspace: str = Field(description="Workspace it belongs to")
    name: str = Field(description=D_NAME)
    target_url: str = Field(description=D_URL)
    events: list[str] = Field(description="Event kinds delivered")
    enabled: bool = Field(description="Whether events are delivered")
    disabled_reason: str | None = Field(
        default=None, description="Why the platform disabled it (e.g. the endpoint failed for 5 days); null otherwise"
    )
    failing_since: datetime | None = Field(
        default=None, description="Start of the current run of failed deliveries (ISO 8601, UTC); null when healthy"
    )
    created_at: datetime = Field(description="When it was created (ISO 8601, UTC)")
    updated_at: datetime = Field(description="When it was last changed (ISO 8601, UTC)")
    secret_rotated_at: datetime | None = Field(
        default=None, description="Last secret rotation (the previous secret keeps signing for 24 h after it)"
    )


class Attempt(BaseModel):
    model_config = ConfigDict(defer_build=True)
    n: int = Field(description="Attempt number, from 1")
    at: datetime = Field(description="When the attempt was made (ISO 8601, UTC)")
    status_code: int | None = Field(default=None, description="HTTP status the endpoint answered; null when none came")
    latency_ms: float = Field(description="Time until the answer (or the error), milliseconds")
    error: str | None = Field(default=None, description="Connection or refusal error; null when the endpoint answered")


class Delivery(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "dlv_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "workspace": "default",
                    "webhook_id": "whk_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "event_id": "evt_01JD90A1B2C3D4E5F6G7H8J9KN",
                    "kind": "job.failed",
                    "status": "succeeded",
                    "attempts": [{"n": 1, "at": "2026-12-04T18:02:20.400000Z", "status_code": 200, "latency_ms": 84.2}],
                    "next_attempt_at": None,
                    "created_at": "2026-12-04T18:02:20.390000Z",
                    "payload": {"type": "job.failed", "timestamp": "2026-12-04T18:02:20.380000+00:00", "data": {}},
                    "schedule_base": 0,
                    "max_attempts": None,
                }
            ]
        },
    )
    id: str = Field(description="Delivery id (`dlv_` + a ULID)")
    workspace: str = Field(description="Workspace it belongs to")
    webhook_id: str = Field(description="The webhook delivered to")
    event_id: str = Field(description="The event delivered (also the webhook-id header: receivers deduplicate by it)")
    kind: str = Field(description="Event kind")
    status: DeliveryStatus = Field(
        description="`pending` (more attempts scheduled), `succeeded` (a 2xx answer), `failed` (attempts used up), "
        "`cancelled` (the webhook was deleted or disabled before the next attempt)"
    )
    attempts: list[Attempt] = Field(default_factory=list, description="Every attempt, oldest first")
    next_attempt_at: datetime | None = Field(default=None, description="When the next retry is due; null when none is")
    created_at: datetime = Field(description="When the delivery was created (ISO 8601, UTC)")
    payload: dict[str, Any] = Field(description="The body POSTed (Standard Webhooks shape: type, timestamp, data)")
    schedule_base: int = Field(
        default=0, description="Attempts made before the last redeliver (the retry schedule restarts there)"
    )
    max_attempts: int | None = Field(
        default=None, description="A cap on attempts (1 for a test ping); null: the schedule's"
    )


def payload_of(event: Event) -> dict[str, Any]:
    """The body receivers get (Standard Webhooks shape: type, timestamp, data)."""
    return {"type": event.kind, "timestamp": event.occurred_at.isoformat(), "data": event.model_dump(mode="json")}


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class WebhookService:
    def __init__(
        self,
        meta: MetadataStore,
        box: SecretBox,
        guard: Guard,
        settings: DeliverySettings,
        *,
        notify: Callable[[str, str, str, str, dict[str, Any]], Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        ssl_context: Any = None,
    ) -> None:
        self.meta = meta
        self.box = box
        self.guard = guard
        self.s = settings
        self.notify = notify  # (ws, kind, title, body, subject) -> posts an inbox notification
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.ssl_context = ssl_context
        self.wake: Callable[[], None] = lambda: None  # the local worker sets this

    # -- endpoints ---------------------------------------------------------------------------
    def _load(self, ws: str, whk_id: str) -> Item:
        item = self.meta.get(_whk_pk(ws), whk_id)
        if item is None:
            raise NotFound(f"webhook {whk_id!r} not found")
        return item

    @staticmethod
    def _public(data: dict[str, Any]) -> Webhook:
        return Webhook.model_validate({k: v for k, v in data.items() if k != "secrets"})

    def _sealed(self, ws: str, whk_id: str, secret: str, now: datetime) -> dict[str, Any]:
        ctx = {"workspace": ws, "webhook_id": whk_id}
        return {"sealed": self.box.seal(secret, ctx), "created_at": now.isoformat(), "expires_at": None}

    def create(self, ws: str, body: WebhookIn) -> tuple[Webhook, str]:
        self.guard.resolve(body.target_url)  # refused targets never get stored
        now = self.clock()
        whk_id = f"whk_{ulid()}"
        secret = new_secret()
        data = {
            "id": whk_id,
            "workspace": ws,
            **body.model_dump(),
            "disabled_reason": None,
            "failing_since": None,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "secret_rotated_at": None,
            "secrets": [self._sealed(ws, whk_id, secret, now)],
        }
        self.meta.put(_whk_pk(ws), whk_id, data, expect=ABSENT)
        return self._public(data), secret

    def get(self, ws: str, whk_id: str) -> Webhook:
        return self._public(self._load(ws, whk_id).data)

    def list(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> tuple[builtins.list[Webhook], str | None]:
        return keyset_page(self.meta, _whk_pk(ws), limit=limit, cursor=cursor, build=self._public)

    def _all(self, ws: str) -> builtins.list[dict[str, Any]]:
        out, cursor = [], None
        while True:
            page = self.meta.query(_whk_pk(ws), limit=500, cursor=cursor)
            out += [it.data for it in page.items]
            cursor = page.cursor
            if cursor is None:
                return out

    def update(self, ws: str, whk_id: str, patch: WebhookPatch) -> Webhook:
        changes = patch.model_dump(exclude_unset=True, exclude_none=True)
        if "target_url" in changes:
            self.guard.resolve(changes["target_url"])
        for _ in range(20):
            item = self._load(ws, whk_id)
            data = {**item.data, **changes, "updated_at": self.clock().isoformat()}
            if changes.get("enabled"):
                data["disabled_reason"] = None
                data["failing_since"] = None
            try:
                self.meta.put(_whk_pk(ws), whk_id, data, expect=item.version)
                return self._public(data)
            except ConditionFailed:
                continue
        raise ConditionFailed(f"webhook {whk_id} kept changing")

    def delete(self, ws: str, whk_id: str) -> None:
        self._load(ws, whk_id)
        self.meta.delete(_whk_pk(ws), whk_id)

    def rotate_secret(self, ws: str, whk_id: str) -> tuple[Webhook, str]:
        """A new secret; the previous one keeps signing for ``rotation_overlap_seconds``."""
        secret = new_secret()
        for _ in range(20):
            item = self._load(ws, whk_id)
            now = self.clock()
            until = (now + timedelta(seconds=self.s.rotation_overlap_seconds)).isoformat()
            kept = [
                {**s, "expires_at": s["expires_at"] or until}
                for s in item.data["secrets"]
                if s["expires_at"] is None or datetime.fromisoformat(s["expires_at"]) > now
            ]
            data = {
                **item.data,
                "secrets": [self._sealed(ws, whk_id, secret, now), *kept],
                "secret_rotated_at": now.isoformat(),
                "updated_at": now.isoformat(),
            }
            try:
                self.meta.put(_whk_pk(ws), whk_id, data, expect=item.version)
                return self._public(data), secret
            except ConditionFailed:
                continue
        raise ConditionFailed(f"webhook {whk_id} kept changing")

    def _signing_secrets(self, data: dict[str, Any], now: datetime) -> builtins.list[str]:
        ctx = {"workspace": data["workspace"], "webhook_id": data["id"]}
        return [
            self.box.open(s["sealed"], ctx)
            for s in data["secrets"]
            if s["expires_at"] is None or datetime.fromisoformat(s["expires_at"]) > now
        ]

    # -- recording events --------------------------------------------------------------------
    def on_event(self, event: Event) -> builtins.list[str]:
        """Consumer of the event port: record one delivery per subscribed (or, for a monitor's ``notify``
        ref ``webhook:<id>``, named) enabled endpoint before any attempt, then wake the worker. Returns the
        new delivery ids (none for a repeated event)."""
        named = {r.split(":", 1)[1] for r in channel_refs(event) if r.startswith("webhook:")}
        hooks = [
            h for h in self._all(event.workspace) if h["enabled"] and (event.kind in h["events"] or h["id"] in named)
        ]
        ids = []
        for h in hooks:
            d = self._record(event, h["id"])
            if d is not None:
                ids.append(d)
        if ids:
            self.wake()
        return ids

    def _record(self, event: Event, whk_id: str, *, max_attempts: int | None = None) -> str | None:
        ws = event.workspace
        now = self.clock()
        d = Delivery(
            id=f"dlv_{ulid(int(now.timestamp() * 1000))}",
            workspace=ws,
            webhook_id=whk_id,
            event_id=event.id,
            kind=event.kind,
            status="pending",
            next_attempt_at=now,
            created_at=now,
            payload=payload_of(event),
            max_attempts=max_attempts,
        )
        try:
            self.meta.transact(
                [
                    Put(f"WS#{ws}#DLVEVT", f"{whk_id}#{event.id}", {"delivery_id": d.id}, expect=ABSENT),
                    Put(
                        _dlv_pk(ws),
                        d.id,
                        d.model_dump(mode="json"),
                        expect=ABSENT,
                        gsi1=(f"WS#{ws}#DLV#WHK#{whk_id}", d.id),
                        gsi2=(DUE_PK, _due_sk(now, d.id)),
                    ),
                ]
            )
        except ConditionFailed:
            return None  # already recorded (the event came twice)
        return d.id

    # -- audit log -----------------------------------------------------------------------------
    def get_delivery(self, ws: str, dlv_id: str) -> Delivery:
        item = self.meta.get(_dlv_pk(ws), dlv_id)
        if item is None:
            raise NotFound(f"delivery {dlv_id!r} not found")
        return Delivery.model_validate(item.data)

    def list_deliveries(
        self, ws: str, *, webhook_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[Delivery], str | None]:
        if webhook_id:
            return keyset_page(
                self.meta,
                f"WS#{ws}#DLV#WHK#{webhook_id}",
                index="gsi1",
                limit=limit,
                cursor=cursor,
                build=Delivery.model_validate,
            )
        return keyset_page(self.meta, _dlv_pk(ws), limit=limit, cursor=cursor, build=Delivery.model_validate)

    def redeliver(self, ws: str, dlv_id: str) -> Delivery:
        """Due again now, with a fresh retry schedule; the ``webhook-id`` stays the event's."""
        for _ in range(20):
            item = self.meta.get(_dlv_pk(ws), dlv_id)
            if item is None:
                raise NotFound(f"delivery {dlv_id!r} not found")
            d = Delivery.model_validate(item.data)
            if d.status == "pending":
                raise BadRequest(f"delivery {dlv_id!r} is still pending; its next attempt is already scheduled")
            now = self.clock()
            d.status, d.next_attempt_at, d.schedule_base = "pending", now, len(d.attempts)
            if d.max_attempts is not None:
                d.max_attempts = len(d.attempts) + 1
            try:
                self._write(item, d, due=now)
                self.wake()
                return d
            except ConditionFailed:
                continue
        raise ConditionFailed(f"delivery {dlv_id} kept changing")

    def test(self, ws: str, whk_id: str) -> Delivery:
        """Send a ``ping`` now (one attempt, recorded in the audit log)."""
        self._load(ws, whk_id)
        ev = new_event("ping", ws, subject={"webhook_id": whk_id}, data={"message": "ping from Stratum"})
        dlv_id = self._record(ev, whk_id, max_attempts=1)
        assert dlv_id is not None
        item = self.meta.get(_dlv_pk(ws), dlv_id)
        assert item is not None
        claimed = self._claim(item)
        if claimed is not None:
            self._attempt(claimed)
        return self.get_delivery(ws, dlv_id)

    def _write(self, item: Item, d: Delivery, *, due: datetime | None) -> Item:
        ws = d.workspace
        return self.meta.put(
            _dlv_pk(ws),
            d.id,
            d.model_dump(mode="json"),
            expect=item.version,
            gsi1=(f"WS#{ws}#DLV#WHK#{d.webhook_id}", d.id),
            gsi2=(DUE_PK, _due_sk(due, d.id)) if due is not None else None,
        )

    # -- attempts ------------------------------------------------------------------------------
    def due(self, limit: int | None = None) -> builtins.list[tuple[str, str]]:
        """(workspace, delivery id) of deliveries whose attempt is due, oldest first."""
        now = self.clock()
        page = self.meta.query(
            DUE_PK, index="gsi2", end=f"{int(now.timestamp() * 1000):015d}~", limit=limit or self.s.batch_size
        )
        return [(it.data["workspace"], it.sk) for it in page.items]

    def _claim(self, item: Item) -> Item | None:
        """Move the item ``lease_seconds`` ahead on the due index; only one worker wins."""
        d = Delivery.model_validate(item.data)
        if d.status != "pending":
            return None
        lease = self.clock() + timedelta(seconds=self.s.lease_seconds)
        try:
            return self._write(item, d, due=lease)
        except ConditionFailed:
            return None

    def run_one(self, ws: str, dlv_id: str) -> Delivery | None:
        """Claim and attempt one due delivery; None when another worker has it or it is not due."""
        item = self.meta.get(_dlv_pk(ws), dlv_id)
        if item is None:
            return None
        d = Delivery.model_validate(item.data)
        if d.status != "pending" or (d.next_attempt_at and d.next_attempt_at > self.clock()):
            return None
        claimed = self._claim(item)
        return None if claimed is None else self._attempt(claimed)

    def run_due(self, limit: int | None = None, *, deadline: float | None = None) -> int:
        """Attempt what is due, one after the other; stop claiming once ``time.monotonic()`` passes
        ``deadline`` (a Lambda's budget): what is left stays due for the next run."""
        n = 0
        for ws, dlv_id in self.due(limit):
            if deadline is not None and time.monotonic() > deadline:
                break
            if self.run_one(ws, dlv_id) is not None:
                n += 1
        return n

    def _attempt(self, item: Item) -> Delivery:
        d = Delivery.model_validate(item.data)
        ws = d.workspace
        hook = self.meta.get(_whk_pk(ws), d.webhook_id)
        now = self.clock()
        if hook is None or not hook.data["enabled"]:
            d.status, d.next_attempt_at = "cancelled", None
            why = "webhook deleted" if hook is None else f"webhook disabled ({hook.data.get('disabled_reason')})"
            d.attempts.append(Attempt(n=len(d.attempts) + 1, at=now, latency_ms=0.0, error=why))
            self._write(item, d, due=None)
            return d
        body = json.dumps(d.payload, separators=(",", ":")).encode()
        try:
            target = self.guard.resolve(hook.data["target_url"])
        except TargetRefused as exc:
            resp = Response(None, {}, b"", f"refused: {exc.detail}", 0.0)
        else:
            headers = sign_headers(self._signing_secrets(hook.data, now), d.event_id, int(now.timestamp()), body)
            resp = send(
                target,
                body,
                headers,
                connect_timeout=self.s.connect_timeout_seconds,
                total_timeout=self.s.total_timeout_seconds,
                max_response_bytes=self.s.max_response_bytes,
                ssl_context=self.ssl_context,
            )
        code = resp.status
        error = resp.error
        if code is not None and not 200 <= code < 300:
            error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
        done_at = self.clock()
        d.attempts.append(
            Attempt(n=len(d.attempts) + 1, at=now, status_code=code, latency_ms=resp.latency_ms, error=error)
        )
        ok = code is not None and 200 <= code < 300
        disable: str | None = None
        if ok:
            d.status, d.next_attempt_at = "succeeded", None
        elif code == 410:
            d.status, d.next_attempt_at = "failed", None
            disable = "the endpoint answered 410 Gone"
        else:
            made = len(d.attempts) - d.schedule_base
            schedule = self.s.retry_schedule_seconds
            limit = d.max_attempts if d.max_attempts is not None else d.schedule_base + len(schedule)
            if len(d.attempts) >= limit:
                d.status, d.next_attempt_at = "failed", None
            else:
                delay = schedule[min(made, len(schedule) - 1)] * (1 + self.rng.uniform(0, self.s.jitter_fraction))
                if code in (429, 503):
                    ra = retry_after_seconds(resp.headers.get("retry-after"), done_at)
                    if ra is not None:
                        delay = min(ra, self.s.max_retry_after_seconds)
                d.next_attempt_at = done_at + timedelta(seconds=delay)
        for _ in range(3):
            try:
                self._write(item, d, due=d.next_attempt_at if d.status == "pending" else None)
                break
            except ConditionFailed:
                # the lease ran out and another worker took it: keep its record, ours was an extra try
                log.warning("delivery %s changed during its attempt; outcome %s not recorded", d.id, code)
                return d
        if d.kind != "ping":
            self._track_health(ws, d.webhook_id, ok, disable)
        return d

    def _track_health(self, ws: str, whk_id: str, ok: bool, disable: str | None) -> None:
        for _ in range(20):
            item = self.meta.get(_whk_pk(ws), whk_id)
            if item is None:
                return
            data = dict(item.data)
            now = self.clock()
            if ok:
                if data.get("failing_since") is None:
                    return
                data["failing_since"] = None
            else:
                since = data.get("failing_since")
                if since is None:
                    data["failing_since"] = now.isoformat()
                elif (
                    disable is None
                    and (now - datetime.fromisoformat(since)).total_seconds() >= self.s.disable_after_failing_seconds
                ):
                    days = self.s.disable_after_failing_seconds / 86400
                    disable = f"every delivery failed for {days:g} days"
                if disable and data["enabled"]:
                    data["enabled"], data["disabled_reason"] = False, disable
                elif data.get("failing_since") == since:
                    return
            data["updated_at"] = now.isoformat()
            try:
                self.meta.put(_whk_pk(ws), whk_id, data, expect=item.version)
            except ConditionFailed:
                continue
            if disable and self.notify is not None and not data["enabled"]:
                self.notify(
                    ws,
                    "webhook.disabled",
                    f"Webhook {data['name']!r} disabled",
                    f"Webhook {whk_id} ({data['target_url']}) was disabled: {disable}. Fix the receiver, then "
                    "re-enable it (PATCH enabled=true) and redeliver what failed.",
                    {"webhook_id": whk_id},
                )
            return
