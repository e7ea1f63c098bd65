"""MonitorStore on every metadata adapter (SQLite file, SQLite in memory, DynamoDB on the moto server): the
monitors package's keys behave the same everywhere (listing, indexes for scheduled / on_ingest monitors,
runs by status, idempotent findings with subject state, the lot-stats cache)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stratum.monitors.model import Finding, Monitor, MonitorIn, RunRecord
from stratum.monitors.store import MonitorStore, finding_id
from stratum.storage.metadata import ConditionFailed, MetadataStore
from stratum.storage.sqlite import SqliteMetadataStore


@pytest.fixture(params=["sqlite-file", "sqlite-memory", pytest.param("dynamo", marks=pytest.mark.aws)])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite-file":
        meta: MetadataStore = SqliteMetadataStore(tmp_path / "meta" / "stratum.db")
    elif request.param == "sqlite-memory":
        meta = SqliteMetadataStore(":memory:")
    else:
        meta = request.getfixturevalue("dynamo_store")
    yield MonitorStore(meta)
    meta.close()


def monitor(ws: str, mid: str, trigger: dict, state: str = "active") -> Monitor:
    body = MonitorIn.model_validate(
        {"label": mid, "rule": {"kind": "yield_below", "params": {"limit": 0.5}}, "trigger": trigger, "state": state}
    )
    return Monitor(monitor_id=mid, workspace=ws, **body.model_dump())


SCHED = {"schedule": {"expression": "rate(1 hour)"}}
INGEST = {"on_ingest": True}


def test_monitors_and_indexes(store: MonitorStore) -> None:
    for i in range(5):
        store.put_monitor(monitor("ws1", f"mon_{i}", SCHED if i % 2 else INGEST))
    store.put_monitor(monitor("ws2", "mon_x", SCHED))
    store.put_monitor(monitor("ws1", "mon_p", SCHED, state="paused"))
    with pytest.raises(ConditionFailed):
        store.put_monitor(monitor("ws1", "mon_0", SCHED))  # create never overwrites
    page, cursor = store.list_monitors("ws1", limit=4)
    rest, end = store.list_monitors("ws1", limit=4, cursor=cursor)
    assert [m.monitor_id for m in page + rest] == ["mon_0", "mon_1", "mon_2", "mon_3", "mon_4", "mon_p"][::-1]
    assert end is None
    assert sorted(m.monitor_id for m in store.ingest_monitors("ws1")) == ["mon_0", "mon_2", "mon_4"]
    assert sorted((m.workspace, m.monitor_id) for m in store.scheduled_monitors()) == [
        ("ws1", "mon_1"),
        ("ws1", "mon_3"),
        ("ws2", "mon_x"),
    ]
    m, v = store.get_monitor_v("ws1", "mon_1")
    m.state = "paused"
    store.put_monitor(m, expect=v)
    assert ("ws1", "mon_1") not in {(x.workspace, x.monitor_id) for x in store.scheduled_monitors()}
    with pytest.raises(ConditionFailed):
        store.put_monitor(m, expect=v)  # stale version
    store.delete_monitor("ws1", "mon_3")
    assert [x.monitor_id for x in store.scheduled_monitors()] == ["mon_x"]
    assert store.list_monitors("ws2")[0][0].monitor_id == "mon_x"


def test_runs_by_status(store: MonitorStore) -> None:
    ids = []
    for i, status in enumerate(["ok", "fired", "failed", "fired"]):
        run = RunRecord(run_id=f"run_{i:02d}", monitor_id="mon_1", status=status, rule="yield_below", rule_version=1)
        store.put_run("ws1", run)
        ids.append(run.run_id)
    assert [r.run_id for r in store.list_runs("ws1", "mon_1")[0]] == ids[::-1]
    assert [r.run_id for r in store.list_runs("ws1", "mon_1", status="fired")[0]] == ["run_03", "run_01"]
    assert store.list_runs("ws2", "mon_1")[0] == []
    assert store.get_run("ws1", "run_02").status == "failed"


def test_findings_are_claimed_once_and_move_the_subject_state(store: MonitorStore) -> None:
    subj = {"lot_id": "L1", "wafer_id": "W01"}
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def finding(kind: str, snap: str, minutes: int) -> Finding:
        return Finding(
            finding_id=finding_id("mon_1", kind, snap, subj),
            monitor_id="mon_1",
            run_id="run_1",
            kind=kind,
            rule="yield_below",
            rule_version=1,
            params={"limit": 0.5},
            subject=subj,
            values={"yield": 0.4},
            message="m",
            snapshot_job_ids=[snap],
            created_at=t0 + timedelta(minutes=minutes),
        )

    assert store.record_finding("ws1", finding("fired", "job_a", 0), "L1") is True
    assert store.record_finding("ws1", finding("fired", "job_a", 1), "L1") is False
    assert store.firing_subjects("ws1", "mon_1", "L1") == [subj]
    assert store.firing_subjects("ws1", "mon_1", "L2") == []
    assert store.record_finding("ws1", finding("recovered", "job_b", 2), "L1") is True
    assert store.firing_subjects("ws1", "mon_1", "L1") == []
    assert store.record_finding("ws1", finding("recovered", "job_b", 3), "L1") is False
    found, _ = store.list_findings("ws1", "mon_1")
    assert [f.kind for f in found] == ["recovered", "fired"]
    assert [f.kind for f in store.list_findings("ws1")[0]] == ["recovered", "fired"]
    assert store.get_finding("ws1", found[1].finding_id).values == {"yield": 0.4}
    assert store.list_findings("ws2")[0] == []


def test_lot_stats_cache(store: MonitorStore) -> None:
    assert store.get_lot_stats("ws1", "job_a") is None
    stats = {"parts": 10, "good": 9, "bins": {"H": {"1": [9, 9]}, "S": {}}, "wafers": [], "test_time_median_ms": 1.5}
    store.put_lot_stats("ws1", "job_a", stats)
    assert store.get_lot_stats("ws1", "job_a") == stats
    assert store.get_lot_stats("ws2", "job_a") is None
