"""The monitor service: manage monitors, run them (now, on a schedule, on ingest), backtest them.

A run evaluates the monitor's rule on each lot snapshot in its scope and records, per subject, a finding
when it fires and a recovery finding when a firing subject is fine again. Finding ids derive from
(monitor, kind, snapshot, subject) and are written only if absent, so a re-run or a redelivered
schedule event never records a finding twice. New findings are published as ``monitor.fired`` /
``monitor.recovered`` events (event id = finding id), a failed run as ``monitor.failed``.

Environment variables: none (``Settings.monitors``).
Integrations: metadata store (``MonitorStore``), analytics / query engine / SQL service (rules), the
event port, the scheduler port.
"""

from __future__ import annotations

import builtins
import logging
import time
from datetime import UTC, datetime
from typing import Any

from stratum.errors import BadRequest, NotFound
from stratum.events import EventPort, new_event
from stratum.ids import ulid
from stratum.models import PUBLISHED, Lot, utcnow

from . import schedule as sch
from .model import Finding, Monitor, MonitorIn, MonitorPatch, RunRecord
from .rules import REGISTRY, Lake, LotContext, Outcome
from .store import MonitorStore, finding_id, subject_key

log = logging.getLogger("stratum.monitors")


def _lot_order(lot: Lot) -> tuple:
    return (lot.start_time or 0, lot.lot_id)


class MonitorService:
    def __init__(
        self,
        store: MonitorStore,
        lake: Lake,
        settings,
        *,
        events: EventPort | None = None,
        scheduler=None,
    ) -> None:
        self.store = store
        self.lake = lake
        self.catalog = lake.catalog
        self.settings = settings
        self.limits = settings.monitors
        self.events = events
        self.scheduler = scheduler

    # -- management -----------------------------------------------------------------------------------
    def create(self, ws: str, body: MonitorIn) -> Monitor:
        self.catalog.ensure_workspace(ws)
        m = Monitor(monitor_id=f"mon_{ulid()}", workspace=ws, **body.model_dump())
        self.store.put_monitor(m)
        self._sync_schedule(m)
        return m

    def get(self, ws: str, monitor_id: str) -> Monitor:
        return self.store.get_monitor(ws, monitor_id)

    def list(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> tuple[builtins.list[Monitor], str | None]:
        return self.store.list_monitors(ws, limit=limit, cursor=cursor)

    def patch(self, ws: str, monitor_id: str, body: MonitorPatch) -> Monitor:
        m, version = self.store.get_monitor_v(ws, monitor_id)
        changes = body.model_dump(exclude_unset=True)
        data = m.model_dump()
        for k in changes:
            data[k] = getattr(body, k).model_dump() if hasattr(getattr(body, k), "model_dump") else getattr(body, k)
        if data.get("description") is None and "description" in changes:
            data["description"] = None
        new = Monitor.model_validate(data)
        if "rule" in changes and new.rule != m.rule:
            new.rule_version = m.rule_version + 1
            self.store.clear_monitor_state(ws, monitor_id)  # a new rule starts with no firing subjects
        new.updated_at = utcnow()
        self.store.put_monitor(new, expect=version)
        self._sync_schedule(new, previous=m)
        return new

    def set_state(self, ws: str, monitor_id: str, state: str) -> Monitor:
        m, version = self.store.get_monitor_v(ws, monitor_id)
        if m.state == state:
            return m
        m.state = state  # type: ignore[assignment]
        m.updated_at = utcnow()
        self.store.put_monitor(m, expect=version)
        self._sync_schedule(m)
        return m

    def delete(self, ws: str, monitor_id: str) -> None:
        m = self.store.get_monitor(ws, monitor_id)
        if self.scheduler is not None and m.trigger.schedule is not None:
            self.scheduler.delete(ws, monitor_id)
        self.store.delete_monitor(ws, monitor_id)
        self.store.clear_monitor_state(ws, monitor_id)

    def _sync_schedule(self, m: Monitor, previous: Monitor | None = None) -> None:
        if self.scheduler is None:
            return
        if m.trigger.schedule is not None:
            self.scheduler.upsert(m)
        elif previous is not None and previous.trigger.schedule is not None:
            self.scheduler.delete(m.workspace, m.monitor_id)

    # -- runs -----------------------------------------------------------------------------------------
    def _scope_lots(self, m: Monitor) -> builtins.list[Lot]:
        return sorted((lot for lot in self.catalog.iter_lots(m.workspace) if m.scope.matches(lot)), key=_lot_order)

    def _context(self, m: Monitor, lot: Lot, snapshot_job_id: str, scope_lots: builtins.list[Lot]) -> LotContext:
        def history(n: int) -> builtins.list[Lot]:
            before = [x for x in scope_lots if _lot_order(x) < _lot_order(lot) and x.lot_id != lot.lot_id]
            return before[-n:] if n > 0 else []

        return LotContext(m.workspace, lot, snapshot_job_id, self.lake, history)

    def evaluate(
        self, m: Monitor, lot: Lot, snapshot_job_id: str, scope_lots: builtins.list[Lot]
    ) -> tuple[builtins.list[Outcome], set]:
        kind = REGISTRY[m.rule.kind]
        ctx = self._context(m, lot, snapshot_job_id, scope_lots)
        params = kind.params_model.model_validate(m.rule.params)
        return kind.evaluate(ctx, params), ctx.reads

    def run(
        self, ws: str, monitor_id: str, *, trigger: str = "manual", lot_id: str | None = None
    ) -> tuple[RunRecord, builtins.list[dict[str, Any]]]:
        """Run the monitor now; returns the run record and a preview of the firing subjects."""
        m = self.store.get_monitor(ws, monitor_id)
        t0 = time.perf_counter()
        run = RunRecord(
            run_id=f"run_{ulid()}",
            monitor_id=m.monitor_id,
            trigger=trigger,  # type: ignore[arg-type]  # one of RunRecord's triggers
            rule=m.rule.kind,
            rule_version=m.rule_version,
        )
        preview: builtins.list[dict[str, Any]] = []
        if m.state == "paused" and trigger != "manual":
            run.status = "skipped"
            run.error = "monitor is paused"
        else:
            try:
                self._run_lots(m, run, preview, lot_id)
                run.status = "fired" if preview else "ok"
            except Exception as exc:  # noqa: BLE001 - a failed run is recorded and reported, never raised
                log.exception("monitor %s run %s failed", m.monitor_id, run.run_id)
                run.status = "failed"
                run.error = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        run.finished_at = datetime.now(UTC)
        run.latency_ms = round((time.perf_counter() - t0) * 1e3, 3)
        self.store.put_run(ws, run)
        if run.status == "failed":
            self._publish(
                "monitor.failed",
                m,
                subject={"monitor_id": m.monitor_id},
                data={"run_id": run.run_id, "error": run.error, "label": m.label, "notify": m.notify},
                event_id=f"evt_{run.run_id}_failed",
            )
        return run, preview

    def _run_lots(self, m: Monitor, run: RunRecord, preview: builtins.list, lot_id: str | None) -> None:
        scope_lots = self._scope_lots(m)
        if lot_id is not None:
            targets = [x for x in scope_lots if x.lot_id == lot_id]
        else:
            by_update = sorted(scope_lots, key=lambda x: x.updated_at, reverse=True)
            targets = by_update[: self.limits.max_lots_per_run]
        reads: set[str] = set()
        for lot in targets:
            outcomes, r = self.evaluate(m, lot, lot.active_job_id, scope_lots)
            reads |= r
            run.lots.append(lot.lot_id)
            self._record(m, run, lot, lot.active_job_id, outcomes, sorted(r), preview)
        run.snapshot_job_ids = sorted(reads)

    def _record(
        self,
        m: Monitor,
        run: RunRecord,
        lot: Lot,
        snap: str,
        outcomes: builtins.list[Outcome],
        reads: builtins.list[str],
        preview: builtins.list,
    ) -> None:
        ws = m.workspace
        fired = {subject_key(o.subject): o for o in outcomes if o.fired}
        unknown = {subject_key(o.subject) for o in outcomes if o.fired is None}
        new: builtins.list[Finding] = []
        for o in fired.values():
            f = self._finding(m, run, "fired", snap, o.subject, o.values, o.message, reads)
            if self.store.record_finding(ws, f, lot.lot_id):
                new.append(f)
                run.findings += 1
            if len(preview) < self.limits.preview_findings:
                preview.append(
                    {"finding_id": f.finding_id, "subject": o.subject, "values": o.values, "message": o.message}
                )
        for subj in self.store.firing_subjects(ws, m.monitor_id, lot.lot_id):
            k = subject_key(subj)
            if k in fired or k in unknown:
                continue
            o = next((x for x in outcomes if subject_key(x.subject) == k), None)  # type: ignore[assignment]
            vals = o.values if o else {}
            f = self._finding(m, run, "recovered", snap, subj, vals, o.message if o else "no longer reported", reads)
            if self.store.record_finding(ws, f, lot.lot_id):
                new.append(f)
                run.recoveries += 1
        run.finding_ids += [f.finding_id for f in new]
        for f in new:
            self._publish(
                f"monitor.{f.kind}",
                m,
                subject={"monitor_id": m.monitor_id, **f.subject},
                data={**f.model_dump(mode="json"), "label": m.label, "notify": m.notify},
                event_id=f"evt_{f.finding_id}",
            )

    def _finding(self, m, run, kind, snap, subject, values, message, reads) -> Finding:
        return Finding(
            finding_id=finding_id(m.monitor_id, kind, snap, subject),
            monitor_id=m.monitor_id,
            run_id=run.run_id,
            kind=kind,
            rule=m.rule.kind,
            rule_version=m.rule_version,
            params=m.rule.params,
            subject=subject,
            values=values,
            message=message,
            snapshot_job_ids=reads,
        )

    def _publish(self, kind: str, m: Monitor, *, subject: dict, data: dict, event_id: str) -> None:
        if self.events is None:
            return
        try:
            self.events.publish(new_event(kind, m.workspace, subject=subject, data=data, event_id=event_id))
        except Exception:  # noqa: BLE001 - the finding is recorded; delivery can be replayed from it
            log.exception("could not publish %s for monitor %s", kind, m.monitor_id)

    def runs(self, ws: str, monitor_id: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None):
        self.store.get_monitor(ws, monitor_id)
        return self.store.list_runs(ws, monitor_id, status=status, limit=limit, cursor=cursor)

    def findings(self, ws: str, monitor_id: str, *, limit: int = 50, cursor: str | None = None):
        self.store.get_monitor(ws, monitor_id)
        return self.store.list_findings(ws, monitor_id, limit=limit, cursor=cursor)

    def get_run(self, ws: str, run_id: str) -> RunRecord:
        return self.store.get_run(ws, run_id)

    # -- triggers -------------------------------------------------------------------------------------
    def fire(self, ws: str, monitor_id: str) -> RunRecord | None:
        """A schedule invocation. A monitor deleted meanwhile is ignored (None)."""
        try:
            return self.run(ws, monitor_id, trigger="schedule")[0]
        except NotFound:
            log.info("schedule fired for monitor %s of %s, which no longer exists", monitor_id, ws)
            return None

    def on_ingest(self, ws: str, job_status: str, lot_id: str | None) -> builtins.list[RunRecord]:
        """A published snapshot: run the workspace's on_ingest monitors for that lot."""
        if job_status not in PUBLISHED or not lot_id:
            return []
        return [self.run(ws, m.monitor_id, trigger="ingest", lot_id=lot_id)[0] for m in self.store.ingest_monitors(ws)]

    def handle_event(self, event) -> builtins.list[RunRecord]:
        """Event-port subscriber for ``job.*`` events."""
        if not event.kind.startswith("job."):
            return []
        return self.on_ingest(event.workspace, event.kind.split(".", 1)[1], event.subject.get("lot_id"))

    # -- backtest -------------------------------------------------------------------------------------
    def backtest(self, ws: str, monitor_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Evaluate the rule on every snapshot published in [start, end] without recording or notifying."""
        start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
        if end <= start:
            raise BadRequest("'to' must be after 'from'")
        m = self.store.get_monitor(ws, monitor_id)
        t0 = time.perf_counter()
        scope_lots = self._scope_lots(m)
        lots = {x.lot_id: x for x in scope_lots}
        snaps = []
        for status in sorted(PUBLISHED):
            cursor = None
            while True:
                jobs, cursor = self.catalog.list_jobs(ws, status=status, limit=200, cursor=cursor)
                for j in jobs:
                    if j.lot_id in lots and j.finished_at and start <= j.finished_at <= end:
                        snaps.append(j)
                if cursor is None:
                    break
        snaps.sort(key=lambda j: j.finished_at)
        if len(snaps) > self.limits.backtest_max_snapshots:
            raise BadRequest(
                f"the window holds {len(snaps)} published snapshots; a backtest evaluates at most "
                f"{self.limits.backtest_max_snapshots}: narrow 'from'/'to'"
            )
        items: builtins.list[dict[str, Any]] = []
        fired_snaps = 0
        by_lot: dict[str, Any] = {}
        for j in snaps:
            outcomes, _ = self.evaluate(m, lots[j.lot_id], j.job_id, scope_lots)
            hits = [o for o in outcomes if o.fired]
            if hits:
                fired_snaps += 1
                by_lot[j.lot_id] = by_lot.get(j.lot_id, 0) + len(hits)
            items.append(
                {
                    "snapshot_job_id": j.job_id,
                    "lot_id": j.lot_id,
                    "published_at": j.finished_at.isoformat(),
                    "fired": [{"subject": o.subject, "values": o.values, "message": o.message} for o in hits],
                    "evaluated_subjects": len(outcomes),
                }
            )
        return {
            "monitor_id": m.monitor_id,
            "rule": m.rule.kind,
            "rule_version": m.rule_version,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "snapshots_evaluated": len(snaps),
            "snapshots_fired": fired_snaps,
            "findings": sum(by_lot.values()),
            "findings_by_lot": by_lot,
            "snapshots": items,
            "latency_ms": round((time.perf_counter() - t0) * 1e3, 3),
        }

    # -- schedules ------------------------------------------------------------------------------------
    def cron_preview(self, expression: str, timezone: str = "UTC", count: int = 5, after: datetime | None = None):
        if not 1 <= count <= self.limits.preview_max_count:
            raise BadRequest(f"count must be between 1 and {self.limits.preview_max_count}")
        return sch.preview(expression, timezone, count=count, after=after)
