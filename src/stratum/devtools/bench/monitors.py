"""Monitors benchmark on the generated 200-wafer lake of the API benchmark (8 lots of 25 wafers):

- each rule's evaluation of one lot (the newest; the 7 others are its history), median of warm runs;
- 1,000 active monitors (every rule kind, scopes spread over the lots) run once, total wall time;
- schedule fire -> finding recorded, locally: the in-process scheduler's tick dispatching a due monitor until
  its finding is in the metadata store (the loop's polling interval, ``monitors.tick_seconds``, comes on top).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from stratum.devtools.bench.api import build_lake

WS = "default"
LOT = "BENCH-07"
RULES: dict[str, dict] = {
    "yield_below": {"limit": 0.99, "level": "wafer"},
    "bin_excursion": {"bin_num": 2, "limit": 0.01},
    "cpk_below": {"test_num": 1000, "threshold": 1.33},
    "run_rules": {"tests": ["WE1", "WE2", "WE3", "WE4"], "baseline_lots": 7, "min_baseline_points": 20},
    "site_delta": {"method": "chi2", "test_num": 1000},
    "data_health": {"max_test_time_ratio": 1.5},
    "statistical_limit": {"min_lots": 6, "history_lots": 7},
    "sql": {"query": "SELECT lot_id, wafer_id, yield FROM wafers WHERE yield < 0.9"},
}


def _monitor(svc, kind: str, params: dict, scope: dict | None = None, trigger: dict | None = None):
    from stratum.monitors.model import MonitorIn

    body = {
        "label": f"bench {kind}",
        "rule": {"kind": kind, "params": params},
        "scope": scope or {},
        "trigger": trigger or {"on_ingest": True},
    }
    return svc.create(WS, MonitorIn.model_validate(body))


def bench_monitors(runs: int = 15, wafers: int = 200, monitors: int = 1000, fires: int = 15) -> dict:
    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    lake = build_lake(wafers)
    rt = Runtime.from_settings(settings_for(lake / "data", backend="local"))
    svc = rt.monitors
    created = []
    try:
        # start without the monitors' per-snapshot aggregates, so "first" is a real (uncached) evaluation
        while True:
            page = rt.meta.query(f"WS#{WS}#MONLOTSTAT", limit=500)
            for it in page.items:
                rt.meta.delete(it.pk, it.sk)
            if page.cursor is None:
                break
        lots = sorted(x.lot_id for x in rt.catalog.iter_lots(WS))
        lot = rt.catalog.get_lot(WS, LOT)
        rules = {}
        for kind, params in RULES.items():
            m = _monitor(svc, kind, params)
            created.append(m.monitor_id)
            scope_lots = svc._scope_lots(m)
            t0 = time.perf_counter()
            outcomes, _ = svc.evaluate(m, lot, lot.active_job_id, scope_lots)
            first = (time.perf_counter() - t0) * 1e3
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                svc.evaluate(m, lot, lot.active_job_id, scope_lots)
                ts.append((time.perf_counter() - t0) * 1e3)
            rules[kind] = {
                "first_ms": round(first, 1),
                "median_warm_ms": round(statistics.median(ts), 2),
                "subjects": len(outcomes),
                "fired": sum(1 for o in outcomes if o.fired),
            }
            print(f"  monitors: {kind}: {rules[kind]['median_warm_ms']} ms warm", flush=True)

        kinds = list(RULES)
        batch = []
        for i in range(monitors):
            kind = kinds[i % len(kinds)]
            m = _monitor(svc, kind, RULES[kind], scope={"lot_id": lots[i % len(lots)]})
            batch.append(m.monitor_id)
        created += batch
        t0 = time.perf_counter()
        statuses: dict[str, int] = {}
        for mid in batch:
            run, _ = svc.run(WS, mid)
            statuses[run.status] = statuses.get(run.status, 0) + 1
        total = time.perf_counter() - t0
        print(f"  monitors: {monitors} runs in {total:.1f} s", flush=True)

        sched = svc.scheduler
        lat = []
        start = datetime(2030, 1, 7, 9, 0, 30, tzinfo=UTC)
        for k in range(fires):
            m = _monitor(
                svc,
                "yield_below",
                {"limit": 0.99, "level": "lot"},
                scope={"lot_id": LOT},
                trigger={"schedule": {"expression": "cron(* * ? * * *)"}},
            )
            created.append(m.monitor_id)
            now = start + timedelta(minutes=2 * k)
            sched.tick(now)  # first sight (earlier scheduled monitors are paused: off the scheduler's index)
            t0 = time.perf_counter()
            sched.tick(now + timedelta(minutes=1))
            found, _ = svc.store.list_findings(WS, m.monitor_id, limit=1)
            lat.append((time.perf_counter() - t0) * 1e3)
            assert found, "the scheduled monitor recorded no finding"
            svc.set_state(WS, m.monitor_id, "paused")
        return {
            "lake": {"lots": len(lots), "wafers": wafers, "lot": LOT},
            "rules": rules,
            "batch": {"monitors": monitors, "total_s": round(total, 2), "statuses": statuses},
            "fire_to_finding_ms": {"median": round(statistics.median(lat), 1), "max": round(max(lat), 1)},
            "tick_seconds": rt.settings.monitors.tick_seconds,
        }
    finally:
        for mid in created:
            try:
                svc.delete(WS, mid)
            except Exception:  # noqa: BLE001, S110 - best effort cleanup of the bench lake
                pass
        rt.close()


def print_monitors(rep: dict) -> None:
    print(f"\nMonitors on {rep['lake']['wafers']} wafers / {rep['lake']['lots']} lots (lot {rep['lake']['lot']}):")
    for kind, r in rep["rules"].items():
        print(
            f"  {kind:18s} warm median {r['median_warm_ms']:8.2f} ms  (first {r['first_ms']:.0f} ms, "
            f"{r['subjects']} subjects, {r['fired']} fired)"
        )
    b = rep["batch"]
    print(f"  {b['monitors']} active monitors run once: {b['total_s']} s ({b['statuses']})")
    f = rep["fire_to_finding_ms"]
    print(
        f"  schedule fire -> finding recorded: median {f['median']} ms, max {f['max']} ms "
        f"(+ up to {rep['tick_seconds']:g} s of the local loop's polling)"
    )
