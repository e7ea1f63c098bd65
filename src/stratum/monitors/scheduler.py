"""The scheduler port: one schedule per scheduled monitor, following it (create, update, pause, resume,
delete). Adapters: ``EventBridgeScheduler`` (AWS: a schedule in the stack's schedule group that invokes
the monitors Lambda with ``{workspace, monitor_id}``) and ``LocalScheduler`` (``stratum serve``: an
in-process loop that computes the same fire times from the monitors in the metadata store)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import schedule as sch
from .model import Monitor

log = logging.getLogger("stratum.monitors")


class SchedulerPort(ABC):
    @abstractmethod
    def upsert(self, m: Monitor) -> None:
        """Create or update the monitor's schedule; a paused monitor's schedule is disabled."""

    @abstractmethod
    def delete(self, ws: str, monitor_id: str) -> None:
        """Remove the monitor's schedule (absent is fine)."""


def schedule_name(ws: str, monitor_id: str) -> str:
    """Schedule names are at most 64 of [0-9A-Za-z-_.]: the monitor id plus a digest of the workspace."""
    return f"{monitor_id}-{hashlib.sha256(ws.encode()).hexdigest()[:12]}"


class EventBridgeScheduler(SchedulerPort):
    def __init__(self, settings, *, session: Any = None) -> None:
        import boto3

        aws = settings.aws
        self.cfg = settings.monitors
        self.client = (session or boto3).client(
            "scheduler", region_name=aws.region, endpoint_url=aws.endpoint_url or None
        )

    def _request(self, m: Monitor) -> dict[str, Any]:
        assert m.trigger.schedule is not None
        cfg = self.cfg
        target: dict[str, Any] = {
            "Arn": cfg.function_arn,
            "RoleArn": cfg.scheduler_role_arn,
            "Input": json.dumps({"workspace": m.workspace, "monitor_id": m.monitor_id}),
            "RetryPolicy": {
                "MaximumRetryAttempts": cfg.retry_attempts,
                "MaximumEventAgeInSeconds": cfg.retry_max_age_seconds,
            },
        }
        if cfg.dlq_arn:
            target["DeadLetterConfig"] = {"Arn": cfg.dlq_arn}
        return {
            "Name": schedule_name(m.workspace, m.monitor_id),
            "GroupName": cfg.schedule_group,
            "ScheduleExpression": m.trigger.schedule.expression,
            "ScheduleExpressionTimezone": m.trigger.schedule.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if m.state == "active" else "DISABLED",
            "Description": f"stratum monitor {m.monitor_id} of workspace {m.workspace}"[:512],
            "Target": target,
        }

    def upsert(self, m: Monitor) -> None:
        req = self._request(m)
        try:
            self.client.update_schedule(**req)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_schedule(**req)

    def delete(self, ws: str, monitor_id: str) -> None:
        try:
            self.client.delete_schedule(Name=schedule_name(ws, monitor_id), GroupName=self.cfg.schedule_group)
        except self.client.exceptions.ResourceNotFoundException:
            pass


class LocalScheduler(SchedulerPort):
    """Fire times come from the monitors themselves (the store is the truth), so upsert/delete only wake
    the loop. ``tick(now)`` runs every monitor whose next fire time after its last check has come."""

    def __init__(
        self, list_monitors: Callable[[], list[Monitor]], fire: Callable[[str, str], Any], tick_seconds: float
    ):
        self.list_monitors = list_monitors
        self.fire = fire
        self.tick_seconds = tick_seconds
        self._checked: dict[tuple[str, str], datetime] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def upsert(self, m: Monitor) -> None:
        self._wake.set()

    def delete(self, ws: str, monitor_id: str) -> None:
        self._checked.pop((ws, monitor_id), None)

    def tick(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Fire what is due at ``now``; returns (workspace, monitor_id) of each fired monitor."""
        now = now or datetime.now(UTC)
        fired = []
        seen = set()
        for m in self.list_monitors():
            key = (m.workspace, m.monitor_id)
            seen.add(key)
            spec = m.trigger.schedule
            if spec is None or m.state != "active":
                continue
            last = self._checked.get(key)
            if last is None:  # first sight: fires from now on (nothing is caught up)
                self._checked[key] = now
                continue
            s = sch.parse(spec.expression, spec.timezone)
            nxt = s.next_fires(last, 1, anchor=m.updated_at)
            if nxt and nxt[0] <= now:
                self._checked[key] = now
                try:
                    self.fire(m.workspace, m.monitor_id)
                except Exception:  # noqa: BLE001 - the run records its own failure; the loop goes on
                    log.exception("scheduled run of monitor %s failed", m.monitor_id)
                fired.append(key)
        for key in set(self._checked) - seen:
            del self._checked[key]
        return fired

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - keep the loop alive
                    log.exception("monitor scheduler tick failed")
                self._wake.wait(self.tick_seconds)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="stratum-monitor-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
