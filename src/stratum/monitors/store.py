"""Monitors, runs, findings and subject states on the metadata store port. This package owns these keys:

- ``WS#<ws>#MON`` / ``<monitor_id>``: monitor; gsi1 ``MON#SCHEDULED`` / ``<ws>#<monitor_id>`` while it is
  active with a schedule (the local scheduler loop lists them); gsi2 ``WS#<ws>#MON#INGEST`` /
  ``<monitor_id>`` while it is active and runs on ingest;
- ``WS#<ws>#MONRUN`` / ``<run_id>``: run; gsi1 ``WS#<ws>#MON#<id>#RUN`` / run_id, gsi2
  ``WS#<ws>#MON#<id>#RUNST#<status>`` / run_id;
- ``WS#<ws>#MONFIND`` / ``<finding_id>``: finding (the id is derived from monitor, kind, snapshot and
  subject, and written only if absent: the idempotency claim); gsi1 ``WS#<ws>#MON#<id>#FIND`` /
  ``<created>#<finding_id>``,
  gsi2 ``WS#<ws>#FINDINGS`` / ``<created>#<finding_id>``;
- ``WS#<ws>#MONSTATE#<id>`` / ``<lot_id>#<subject key>``: a subject currently firing (deleted when it
  recovers);
- ``WS#<ws>#MONLOTSTAT`` / ``<snapshot_job_id>``: lot aggregates of an immutable snapshot (a cache).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from stratum.catalog import Catalog
from stratum.errors import NotFound
from stratum.storage.metadata import ABSENT, ConditionFailed, Delete, MetadataStore, Put

from . import ingest_index
from .model import Finding, Monitor, RunRecord

SCHEDULED = "MON#SCHEDULED"


def subject_key(subject: dict[str, Any]) -> str:
    return json.dumps(subject, sort_keys=True, separators=(",", ":"), default=str)


def finding_id(monitor_id: str, kind: str, snapshot_job_id: str, subject: dict[str, Any]) -> str:
    h = hashlib.sha256(f"{monitor_id}|{kind}|{snapshot_job_id}|{subject_key(subject)}".encode()).hexdigest()
    return f"fnd_{h[:26]}"


class MonitorStore:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self._pages = Catalog(meta)  # reuse its cursor-paged listing

    # -- monitors ---------------------------------------------------------------------------------
    @staticmethod
    def _indexes(m: Monitor) -> dict[str, tuple[str, str] | None]:
        active = m.state == "active"
        return {
            "gsi1": (SCHEDULED, f"{m.workspace}#{m.monitor_id}") if active and m.trigger.schedule else None,
            "gsi2": (ingest_index(m.workspace), m.monitor_id) if active and m.trigger.on_ingest else None,
        }

    def put_monitor(self, m: Monitor, *, expect: Any = ABSENT) -> int:
        idx = self._indexes(m)
        data = m.model_dump(mode="json")
        return self.meta.put(
            f"WS#{m.workspace}#MON", m.monitor_id, data, expect=expect, gsi1=idx["gsi1"], gsi2=idx["gsi2"]
        ).version

    def get_monitor_v(self, ws: str, monitor_id: str) -> tuple[Monitor, int]:
        it = self.meta.get(f"WS#{ws}#MON", monitor_id)
        if it is None:
            raise NotFound(f"monitor {monitor_id!r} not found")
        return Monitor.model_validate(it.data), it.version

    def get_monitor(self, ws: str, monitor_id: str) -> Monitor:
        return self.get_monitor_v(ws, monitor_id)[0]

    def delete_monitor(self, ws: str, monitor_id: str) -> None:
        self.meta.delete(f"WS#{ws}#MON", monitor_id)

    def list_monitors(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> tuple[list[Monitor], str | None]:
        return self._pages._page(f"WS#{ws}#MON", "table", limit, cursor, Monitor.model_validate)

    def iter_monitors(self, ws: str):
        cursor = None
        while True:
            page, cursor = self.list_monitors(ws, limit=200, cursor=cursor)
            yield from page
            if cursor is None:
                return

    def ingest_monitors(self, ws: str) -> list[Monitor]:
        out, cursor = [], None
        while True:
            page = self.meta.query(ingest_index(ws), index="gsi2", limit=200, cursor=cursor)
            for it in page.items:
                out.append(Monitor.model_validate(it.data))
            cursor = page.cursor
            if cursor is None:
                return out

    def scheduled_monitors(self) -> list[Monitor]:
        """Every active scheduled monitor of every workspace (the local scheduler loop)."""
        out, cursor = [], None
        while True:
            page = self.meta.query(SCHEDULED, index="gsi1", limit=500, cursor=cursor)
            out += [Monitor.model_validate(it.data) for it in page.items]
            cursor = page.cursor
            if cursor is None:
                return out

    # -- runs -------------------------------------------------------------------------------------
    def put_run(self, ws: str, run: RunRecord) -> None:
        mid = run.monitor_id
        self.meta.put(
            f"WS#{ws}#MONRUN",
            run.run_id,
            run.model_dump(mode="json"),
            gsi1=(f"WS#{ws}#MON#{mid}#RUN", run.run_id),
            gsi2=(f"WS#{ws}#MON#{mid}#RUNST#{run.status}", run.run_id),
        )

    def get_run(self, ws: str, run_id: str) -> RunRecord:
        it = self.meta.get(f"WS#{ws}#MONRUN", run_id)
        if it is None:
            raise NotFound(f"run {run_id!r} not found")
        return RunRecord.model_validate(it.data)

    def list_runs(
        self, ws: str, monitor_id: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        index: Literal["gsi1", "gsi2"]
        if status is None:
            pk, index = f"WS#{ws}#MON#{monitor_id}#RUN", "gsi1"
        else:
            pk, index = f"WS#{ws}#MON#{monitor_id}#RUNST#{status}", "gsi2"
        return self._pages._page(pk, index, limit, cursor, RunRecord.model_validate)

    # -- findings and subject state -----------------------------------------------------------------
    def record_finding(self, ws: str, f: Finding, lot_id: str) -> bool:
        """Write the finding and move the subject's state, atomically, unless a finding with the same id
        (monitor, kind, snapshot, subject) exists. Returns False when it did (nothing written)."""
        state_pk = f"WS#{ws}#MONSTATE#{f.monitor_id}"
        state_sk = f"{lot_id}#{subject_key(f.subject)}"
        ops: list = [
            Put(
                f"WS#{ws}#MONFIND",
                f.finding_id,
                f.model_dump(mode="json"),
                expect=ABSENT,
                gsi1=(f"WS#{ws}#MON#{f.monitor_id}#FIND", f"{f.created_at.isoformat()}#{f.finding_id}"),
                gsi2=(f"WS#{ws}#FINDINGS", f"{f.created_at.isoformat()}#{f.finding_id}"),
            )
        ]
        if f.kind == "fired":
            ops.append(Put(state_pk, state_sk, {"subject": f.subject, "finding_id": f.finding_id}))
        else:
            ops.append(Delete(state_pk, state_sk))
        try:
            self.meta.transact(ops)
        except ConditionFailed:
            return False
        return True

    def firing_subjects(self, ws: str, monitor_id: str, lot_id: str) -> list[dict[str, Any]]:
        out, cursor = [], None
        while True:
            page = self.meta.query(f"WS#{ws}#MONSTATE#{monitor_id}", prefix=f"{lot_id}#", limit=500, cursor=cursor)
            out += [it.data["subject"] for it in page.items]
            cursor = page.cursor
            if cursor is None:
                return out

    def get_finding(self, ws: str, fid: str) -> Finding | None:
        it = self.meta.get(f"WS#{ws}#MONFIND", fid)
        return None if it is None else Finding.model_validate(it.data)

    def list_findings(
        self, ws: str, monitor_id: str | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Finding], str | None]:
        if monitor_id is None:
            return self._pages._page(f"WS#{ws}#FINDINGS", "gsi2", limit, cursor, Finding.model_validate)
        return self._pages._page(f"WS#{ws}#MON#{monitor_id}#FIND", "gsi1", limit, cursor, Finding.model_validate)

    def finding_rows(self, ws: str, lot_ids: set[str] | None = None, limit: int = 10_000) -> list[tuple]:
        """Rows of the SQL relation ``monitor_findings`` (public_schema), newest first, at most ``limit``."""
        out: list[tuple] = []
        cursor = None
        while len(out) < limit:
            page = self.meta.query(f"WS#{ws}#FINDINGS", index="gsi2", descending=True, limit=500, cursor=cursor)
            for it in page.items:
                f = Finding.model_validate(it.data)
                lot = f.subject.get("lot_id")
                if lot_ids is not None and lot not in lot_ids:
                    continue
                out.append(
                    (
                        f.finding_id,
                        f.monitor_id,
                        f.run_id,
                        f.kind,
                        f.rule,
                        f.rule_version,
                        lot,
                        f.subject.get("wafer_id"),
                        json.dumps(f.subject, default=str),
                        json.dumps(f.params, default=str),
                        json.dumps(f.values, default=str),
                        f.message,
                        json.dumps(f.snapshot_job_ids),
                        f.created_at,
                    )
                )
            cursor = page.cursor
            if cursor is None:
                break
        return out[:limit]

    def clear_monitor_state(self, ws: str, monitor_id: str) -> None:
        cursor = None
        while True:
            page = self.meta.query(f"WS#{ws}#MONSTATE#{monitor_id}", limit=500, cursor=cursor)
            for it in page.items:
                self.meta.delete(it.pk, it.sk)
            cursor = page.cursor
            if cursor is None:
                return

    # -- lot aggregates cache -------------------------------------------------------------------------
    def get_lot_stats(self, ws: str, snapshot_job_id: str) -> dict[str, Any] | None:
        it = self.meta.get(f"WS#{ws}#MONLOTSTAT", snapshot_job_id, consistent=False)
        return None if it is None else it.data

    def put_lot_stats(self, ws: str, snapshot_job_id: str, stats: dict[str, Any]) -> None:
        self.meta.put(f"WS#{ws}#MONLOTSTAT", snapshot_job_id, stats)
