"""``DeliveryService``: the delivery side wired from settings (inbox, webhooks, inbound hooks, email)
and its one entry point for events, ``handle``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stratum.events import Event, EventPort
from stratum.events.model import INTERNAL_KINDS
from stratum.settings import Settings
from stratum.storage.metadata import MetadataStore

from .email import Digests, EmailPort, LocalOutbox, SesEmail
from .guard import Guard, Resolver, parse_cidrs, system_resolver
from .inbound import InboundService
from .inbox import Inbox
from .sealing import KmsSecretBox, LocalSecretBox, SecretBox
from .webhooks import WebhookService
from .worker import DeliveryWorker

log = logging.getLogger(__name__)


def build_secret_box(settings: Settings) -> SecretBox:
    if settings.backend == "aws":
        aws = settings.aws
        return KmsSecretBox(aws.delivery_kms_key_id, aws.region, endpoint_url=aws.endpoint_url or None)
    return LocalSecretBox.from_settings(settings.delivery.secret_key, settings.data_dir)


def build_email(settings: Settings) -> EmailPort:
    if settings.backend == "aws":
        aws = settings.aws
        return SesEmail(aws.ses_region or aws.region, endpoint_url=aws.endpoint_url or None)
    return LocalOutbox(settings.data_dir / "outbox")


class DeliveryService:
    def __init__(
        self,
        meta: MetadataStore,
        settings: Settings,
        events: EventPort,
        *,
        box: SecretBox | None = None,
        email: EmailPort | None = None,
        resolver: Resolver = system_resolver,
        ssl_context: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ingest_key: Callable[[str, str], dict[str, Any]] | None = None,
        annotate_lot: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
        run_monitor: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        ds = settings.delivery
        self.settings = settings
        self.meta = meta
        self.events = events
        self.box = box or build_secret_box(settings)
        self.inbox = Inbox(meta, events.publish, max_chars=ds.max_notification_chars, clock=clock)
        self.guard = Guard(settings.environment == "production", parse_cidrs(settings.webhook_allow_cidrs), resolver)
        self.webhooks = WebhookService(
            meta,
            self.box,
            self.guard,
            ds,
            notify=lambda ws, kind, title, body, subject: self.inbox.post(ws, kind, title, body, subject=subject),
            clock=clock,
            ssl_context=ssl_context,
        )
        self.digests = Digests(meta, self.inbox, email or build_email(settings), ds.email_from, clock=clock)
        self.inbound = InboundService(
            meta,
            self.box,
            self.inbox,
            max_payload_bytes=ds.inbound_max_payload_bytes,
            ingest_key=ingest_key,
            annotate_lot=annotate_lot,
            run_monitor=run_monitor,
            clock=clock,
        )
        self.worker: DeliveryWorker | None = None

    def handle(self, event: Event) -> None:
        """Every event of the port: a notification when the workspace wants one, then a delivery per
        subscribed webhook. Idempotent per event id (at-least-once sources deliver twice)."""
        if event.kind in INTERNAL_KINDS:
            return  # work orders between services (export.requested), never notifications or webhooks
        failed: Exception | None = None
        if event.kind not in ("notification.new", "ping"):
            try:
                self.inbox.on_event(event)
            except Exception as exc:  # the webhooks still get their deliveries; the caller sees the error
                log.exception("inbox could not record %s %s", event.kind, event.id)
                failed = exc
        self.webhooks.on_event(event)
        if failed is not None:
            raise failed

    def flush_email(self) -> list[str]:
        return self.digests.flush()

    def run_due(self, deadline: float | None = None) -> int:
        """One pass of due attempts and email (the AWS delivery function's scheduled run)."""
        n = self.webhooks.run_due(deadline=deadline)
        self.flush_email()
        return n

    def start_worker(self) -> DeliveryWorker:
        ds = self.settings.delivery
        self.worker = DeliveryWorker(
            self.webhooks, interval=ds.poll_interval_seconds, threads=ds.worker_threads, on_tick=self._tick_email
        )
        self.worker.start()
        return self.worker

    def _tick_email(self) -> None:
        try:
            self.flush_email()
        except Exception:
            log.exception("email digest pass failed")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
