"""Monitor rules on generated lots whose truth is known (the generator's own arrays): each rule fires on a
seeded bad lot and not on a good one, with the exact triggering values; runs are idempotent, a subject
that recovers emits one recovery finding, on_ingest monitors run from the ingest event, events go out
through the event port.

Lots (one workspace, tested in this order): six history lots H0-H5, then GOOD (like the history),
then BAD (random fails at 60 %, retests, a Cpk-breaking test mean)."""

from __future__ import annotations

import dataclasses
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stratum.devtools.stdf.lots import LotSpec, TestDef, write_lot
from stratum.monitors.model import MonitorIn
from stratum.monitors.rules import chi2_2x2_p, run_rule_hits
from stratum.query.engine import Scope
from tests.fixtures.runtime import make_runtime

WS = "default"
T0 = 1_700_000_000
FUNC = TestDef(2000, "FUNC", kind="F", fail_bin=3)  # takes about half of the seeded fails
GOOD_TESTS = (TestDef(1000, "VDD", lo=0.0, hi=1.0, mean=0.5, sigma=0.05, fail_bin=2), FUNC)
BAD_TESTS = (TestDef(1000, "VDD", lo=0.0, hi=1.0, mean=0.72, sigma=0.1, fail_bin=2), FUNC)


def spec(lot_id: str, i: int, bad: bool = False) -> LotSpec:
    return LotSpec(
        lot_id=lot_id,
        wafers=("W01", "W02", "W03"),
        die_diameter=12,
        tests=BAD_TESTS if bad else GOOD_TESTS,
        random_fail_rate=0.6 if bad else 0.01,
        edge_fail_rate=0.05,
        retest_fraction=0.8 if bad else 0.0,
        start_time=T0 + i * 86_400,
        seed=100 + i,
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("monitors")
    rt = make_runtime(d / "data")
    gens = {}
    names = [f"H{i}" for i in range(6)] + ["GOOD", "BAD"]
    for i, name in enumerate(names):
        g = write_lot(spec(name, i, bad=name == "BAD"), d / name)
        for p in g.paths:
            rt.ingest.ingest_path(WS, p)
        gens[name] = g
    yield rt, gens
    rt.close()


def create(rt, kind: str, params: dict, **extra):
    body = {"label": kind, "rule": {"kind": kind, "params": params}, "trigger": {"on_ingest": True}, **extra}
    return rt.monitors.create(WS, MonitorIn.model_validate(body))


def evaluate(rt, m, lot_id: str):
    svc = rt.monitors
    scope_lots = svc._scope_lots(m)
    lot = rt.catalog.get_lot(WS, lot_id)
    outcomes, reads = svc.evaluate(m, lot, lot.active_job_id, scope_lots)
    return outcomes, reads


def fired(outcomes):
    return {tuple(sorted(o.subject.items())): o for o in outcomes if o.fired}


# -- truth from the generator ----------------------------------------------------------------------
def wafer_truth(g, view: str = "final"):
    mask = g.final() if view == "final" else g.first_pass()
    out = {}
    for w in g.spec.wafers:
        sel = mask & (g.parts.wafer_id == w)
        out[w] = (int(g.parts.passed[sel].sum()), int(sel.sum()))
    return out


def lot_yield(g, view: str = "final") -> float:
    return g.yield_(g.final() if view == "final" else g.first_pass())


# -- 1. yield_below -----------------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["final", "first_pass"])
def test_yield_below_exact(lake, view) -> None:
    rt, gens = lake
    m = create(rt, "yield_below", {"limit": 0.85, "view": view, "level": "wafer"})
    for name in ("BAD", "GOOD"):
        outcomes, reads = evaluate(rt, m, name)
        truth = wafer_truth(gens[name], view)
        assert {o.subject["wafer_id"]: o.values["yield"] for o in outcomes} == {w: g / n for w, (g, n) in truth.items()}
        assert {o.subject["wafer_id"] for o in outcomes if o.fired} == {
            w for w, (g, n) in truth.items() if g / n < 0.85
        }
        assert reads == {rt.catalog.get_lot(WS, name).active_job_id}
    assert len(fired(evaluate(rt, m, "BAD")[0])) == 3
    assert fired(evaluate(rt, m, "GOOD")[0]) == {}


def test_yield_below_lot_level(lake) -> None:
    rt, gens = lake
    m = create(rt, "yield_below", {"limit": 0.85, "level": "lot"})
    (bad,) = evaluate(rt, m, "BAD")[0]
    assert bad.fired is True and bad.values["yield"] == lot_yield(gens["BAD"])
    (good,) = evaluate(rt, m, "GOOD")[0]
    assert good.fired is False and good.values["yield"] == lot_yield(gens["GOOD"])


# -- 2. bin_excursion ---------------------------------------------------------------------------------
def test_bin_excursion_exact(lake) -> None:
    rt, gens = lake
    m = create(rt, "bin_excursion", {"bin_type": "H", "bin_num": 2, "limit": 0.1})
    for name, expect_any in (("BAD", True), ("GOOD", False)):
        g = gens[name]
        fin = g.final()
        outcomes = evaluate(rt, m, name)[0]
        for o in outcomes:
            sel = fin & (g.parts.wafer_id == o.subject["wafer_id"])
            count = int((g.parts.hard_bin[sel] == 2).sum())
            assert (o.values["count"], o.values["parts"]) == (count, int(sel.sum()))
            assert o.values["share"] == count / int(sel.sum())
            assert o.fired == (count / int(sel.sum()) > 0.1)
        assert any(o.fired for o in outcomes) == expect_any


# -- 3. cpk_below ---------------------------------------------------------------------------------------
def test_cpk_below(lake) -> None:
    rt, gens = lake
    m = create(rt, "cpk_below", {"test_num": 1000, "min_n": 30})
    assert m.rule.params == {"test_num": 1000, "test_name": None, "threshold": 1.33, "min_n": 30}
    for name, expect in (("BAD", True), ("GOOD", False)):
        (o,) = evaluate(rt, m, name)[0]
        cap = rt.analytics.capability(WS, name, test_num=1000)["tests"][0]
        assert o.values["cpk"] == cap["cpk"] and o.values["n"] == cap["n"]
        g = gens[name]
        fin = g.final()
        vals = g.results[fin, 0]
        assert o.values["n"] == int(np.isfinite(vals).sum())
        assert o.fired is expect
    # a minimum N above the lot's count: insufficient data, never fires
    m2 = create(rt, "cpk_below", {"test_num": 1000, "min_n": 100_000})
    (o,) = evaluate(rt, m2, "BAD")[0]
    assert o.fired is None and "insufficient data" in o.message


# -- 4. run rules --------------------------------------------------------------------------------------
def test_run_rules_we1_exact(lake) -> None:
    rt, gens = lake
    m = create(rt, "run_rules", {"metric": "yield", "tests": ["WE1"], "baseline_lots": 6, "min_baseline_points": 10})
    base = [g / n for name in ("H0", "H1", "H2", "H3", "H4", "H5") for g, n in wafer_truth(gens[name]).values()]
    mean, sd = statistics.fmean(base), statistics.stdev(base)
    outcomes, reads = evaluate(rt, m, "GOOD")
    assert len(reads) == 7
    for o in outcomes:
        assert o.values["baseline_mean"] == pytest.approx(mean, rel=1e-12)
        assert o.values["baseline_sigma"] == pytest.approx(sd, rel=1e-12)
        g, n = wafer_truth(gens["GOOD"])[o.subject["wafer_id"]]
        assert o.values["z"] == pytest.approx((g / n - mean) / sd, rel=1e-12)
        assert o.fired == (abs(g / n - mean) > 3 * sd)
    bad = evaluate(rt, m, "BAD")[0]
    assert [o.fired for o in bad] == [True, True, True]


def test_run_rule_checks_table() -> None:
    # zones in sigma units (mean 0, sigma 1): each rule on a sequence built to trip it at the last point
    cases = {
        "WE1": [0, 0, 3.5],
        "WE2": [2.5, 0, 2.5],
        "WE3": [1.5, 1.5, 0, 1.5, 1.5],
        "WE4": [0.5] * 8,
        "N2": [0.5] * 9,
        "N3": [0, 0.1, 0.2, 0.3, 0.4, 0.5],
        "N4": [0.1, -0.1] * 7,
        "N7": [0.1] * 15,
        "N8": [1.5, -1.5] * 4,
    }
    for name, seq in cases.items():
        assert run_rule_hits(seq, 0.0, 1.0, len(seq) - 1, [name]) == [[name]], name
        if name != "WE1":  # a run one point short does not signal
            assert run_rule_hits(seq[1:], 0.0, 1.0, len(seq) - 2, [name]) == [[]], name
    assert run_rule_hits([0, 0, 2.9], 0.0, 1.0, 2, ["WE1"]) == [[]]
    assert run_rule_hits([2.5, 0, -2.5], 0.0, 1.0, 2, ["WE2"]) == [[]]  # not on the same side


# -- 5. site delta -------------------------------------------------------------------------------------
def test_site_delta_exact(lake) -> None:
    rt, gens = lake
    g = gens["BAD"]
    fin = g.final()
    per = {}
    for s in sorted(set(g.parts.site.tolist())):
        sel = fin & (g.parts.site == s)
        per[s] = (int(g.parts.passed[sel].sum()), int(sel.sum()))
    tot_g, tot_n = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
    deltas = {s: (tot_g - gs) / (tot_n - n) - gs / n for s, (gs, n) in per.items()}
    limit = sorted(deltas.values())[-1] - 1e-9  # only the worst site fires
    m = create(rt, "site_delta", {"method": "delta", "min_delta": limit, "min_parts_per_site": 10})
    outcomes = evaluate(rt, m, "BAD")[0]
    assert {o.subject["site_num"]: o.values["delta"] for o in outcomes} == pytest.approx(deltas, rel=1e-12)
    worst = max(deltas, key=deltas.get)
    assert {o.subject["site_num"] for o in outcomes if o.fired} == {worst}
    for o in outcomes:
        s = o.subject["site_num"]
        gs, n = per[s]
        assert o.values["p_value"] == chi2_2x2_p(gs, n - gs, tot_g - gs, tot_n - n - (tot_g - gs))


def test_chi2_p_value() -> None:
    # [[10, 90], [30, 70]]: chi2 = 200 * (10*70 - 90*30)^2 / (100*100*40*160) = 12.5; p = erfc(sqrt(6.25))
    assert chi2_2x2_p(10, 90, 30, 70) == pytest.approx(4.0695201744e-4, rel=1e-9)
    assert chi2_2x2_p(0, 0, 5, 5) == 1.0


# -- 6. data health --------------------------------------------------------------------------------------
def test_data_health_retest_rate(lake) -> None:
    rt, gens = lake
    m = create(rt, "data_health", {"max_retest_rate": 0.05, "max_test_time_ratio": None})
    for name, expect in (("BAD", True), ("GOOD", False)):
        g = gens[name]
        out = {o.subject["metric"]: o for o in evaluate(rt, m, name)[0]}
        retests = int((g.parts.retest > 0).sum())
        first = int((g.parts.retest == 0).sum())
        assert out["retest_rate"].values["value"] == retests / first
        assert out["retest_rate"].fired is expect
        for metric in ("aborts", "missing_wrr", "missing_mrr", "partial_files", "failed_jobs", "summary_mismatch"):
            assert out[metric].values["value"] == 0 and out[metric].fired is False, metric
        assert "test_time_ratio" not in out


# -- 7. SYL / SBL ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("robust", [False, True])
def test_statistical_yield_limit(lake, robust) -> None:
    rt, gens = lake
    m = create(rt, "statistical_limit", {"metric": "yield", "k": 3, "min_lots": 6, "history_lots": 6, "robust": robust})
    for name, hist_names, expect in (
        ("GOOD", ["H0", "H1", "H2", "H3", "H4", "H5"], False),
        ("BAD", ["H1", "H2", "H3", "H4", "H5", "GOOD"], True),
    ):
        hist = [lot_yield(gens[h]) for h in hist_names]
        if robust:
            q = statistics.quantiles(hist, n=4, method="inclusive")
            center, spread = statistics.median(hist), (q[2] - q[0]) / 1.35
        else:
            center, spread = statistics.fmean(hist), statistics.stdev(hist)
        (o,) = evaluate(rt, m, name)[0]
        assert o.values["limit"] == pytest.approx(center - 3 * spread, rel=1e-12)
        assert o.values["value"] == lot_yield(gens[name])
        assert o.fired is expect
    # too little history: H2 has two prior lots
    (o,) = evaluate(rt, m, "H2")[0]
    assert o.fired is None and o.values["history_lots"] == 2


def test_statistical_bin_limit(lake) -> None:
    rt, gens = lake
    m = create(rt, "statistical_limit", {"metric": "bin_share", "bin_num": 2, "min_lots": 6, "history_lots": 6})
    (bad,) = evaluate(rt, m, "BAD")[0]
    g = gens["BAD"]
    fin = g.final()
    assert bad.values["value"] == int((g.parts.hard_bin[fin] == 2).sum()) / int(fin.sum())
    assert bad.fired is True


# -- 8. SQL rule -------------------------------------------------------------------------------------------
def test_sql_rule(lake) -> None:
    rt, gens = lake
    m = create(rt, "sql", {"query": "SELECT lot_id, wafer_id, yield FROM wafers WHERE yield < 0.85 ORDER BY wafer_id"})
    outcomes = evaluate(rt, m, "BAD")[0]
    truth = wafer_truth(gens["BAD"])
    assert [(o.subject, o.values["yield"]) for o in outcomes] == [
        ({"lot_id": "BAD", "wafer_id": w}, g / n) for w, (g, n) in sorted(truth.items()) if g / n < 0.85
    ]
    assert evaluate(rt, m, "GOOD")[0] == []


def test_sql_rule_uses_the_guard() -> None:
    with pytest.raises(ValueError, match="SELECT"):
        MonitorIn.model_validate(
            {
                "label": "x",
                "rule": {"kind": "sql", "params": {"query": "DELETE FROM wafers"}},
                "trigger": {"on_ingest": True},
            }
        )


# -- runs: idempotency, recovery, events, ingest trigger, backtest --------------------------------------------
def test_run_is_idempotent_and_recovers_once(lake) -> None:
    rt, gens = lake
    events = []
    unsub = rt.events.subscribe(events.append, kinds=("monitor.fired", "monitor.recovered"))
    try:
        m = create(rt, "yield_below", {"limit": 0.85, "level": "lot"}, scope={"lot_id": "BAD"})
        run, preview = rt.monitors.run(WS, m.monitor_id)
        assert (run.status, run.findings, run.lots) == ("fired", 1, ["BAD"])
        assert preview[0]["subject"] == {"lot_id": "BAD"}
        again, _ = rt.monitors.run(WS, m.monitor_id)
        assert (again.status, again.findings) == ("fired", 0)  # same subject, same snapshot: no second finding
        assert [e.kind for e in events] == ["monitor.fired"]
        f = rt.monitors.store.get_finding(WS, run.finding_ids[0])
        assert f.values["yield"] == lot_yield(gens["BAD"]) and f.rule == "yield_below" and f.rule_version == 1
        assert f.snapshot_job_ids == [rt.catalog.get_lot(WS, "BAD").active_job_id]
        # the limit drops below the lot's yield: the subject recovers, once
        from stratum.monitors.model import MonitorPatch

        rt.monitors.patch(
            WS,
            m.monitor_id,
            MonitorPatch.model_validate({"rule": {"kind": "yield_below", "params": {"limit": 0.01, "level": "lot"}}}),
        )
        assert rt.monitors.get(WS, m.monitor_id).rule_version == 2
    finally:
        unsub()


def test_recovery_finding_once(lake) -> None:
    rt, _ = lake
    events = []
    unsub = rt.events.subscribe(events.append, kinds=("monitor.fired", "monitor.recovered"))
    try:
        m = create(rt, "sql", {"query": "SELECT lot_id FROM lots WHERE yield < 0.85"}, scope={"lot_id": "BAD"})
        run, _ = rt.monitors.run(WS, m.monitor_id)
        assert run.findings == 1
        # the same monitor with a query that no longer returns the lot: one recovery, then nothing
        from stratum.monitors.model import MonitorPatch

        svc = rt.monitors
        mon, version = svc.store.get_monitor_v(WS, m.monitor_id)
        mon.rule.params["query"] = "SELECT lot_id FROM lots WHERE yield < 0.01"
        svc.store.put_monitor(mon, expect=version)  # same rule version: the firing state is kept
        r2, _ = svc.run(WS, m.monitor_id)
        r3, _ = svc.run(WS, m.monitor_id)
        assert (r2.status, r2.recoveries, r3.recoveries) == ("ok", 1, 0)
        assert [e.kind for e in events] == ["monitor.fired", "monitor.recovered"]
        assert events[1].data["kind"] == "recovered" and events[1].subject["lot_id"] == "BAD"
        del MonitorPatch
    finally:
        unsub()


def test_on_ingest_runs_for_the_published_lot(lake, tmp_path) -> None:
    rt, _ = lake
    m = create(rt, "yield_below", {"limit": 0.85, "level": "lot"}, scope={"part_type": "INGEST-DEV"})
    jobs = []
    unsub = rt.events.subscribe(jobs.append, kinds=("job.succeeded", "job.failed", "monitor.fired"))
    try:
        s = dataclasses.replace(spec("NEW1", 20, bad=True), part_type="INGEST-DEV")
        g = write_lot(s, tmp_path / "new")
        job = rt.ingest.ingest_path(WS, g.paths[0])
        assert [e.subject for e in jobs if e.kind.startswith("job.")] == [{"job_id": job.job_id, "lot_id": "NEW1"}]
        mine = [e for e in jobs if e.subject.get("monitor_id") == m.monitor_id]
        assert [(e.kind, e.subject["lot_id"], e.data["values"]["yield"]) for e in mine] == [
            ("monitor.fired", "NEW1", lot_yield(g))
        ]
        runs, _ = rt.monitors.runs(WS, m.monitor_id)
        assert [(r.trigger, r.status, r.lots) for r in runs] == [("ingest", "fired", ["NEW1"])]
        # a file that fails publishes job.failed and runs nothing
        bad = tmp_path / "broken.stdf"
        bad.write_bytes(b"\x02\x00\x00\x0a" + b"\x00" * 3)
        rt.ingest.ingest_path(WS, bad)
        assert [e.kind for e in jobs if e.kind.startswith("job.")][-1] == "job.failed"
        assert len(rt.monitors.runs(WS, m.monitor_id)[0]) == 1
    finally:
        unsub()


def test_paused_schedule_is_skipped_and_failed_run_reported(lake) -> None:
    rt, _ = lake
    body = {
        "label": "cron",
        "rule": {"kind": "cpk_below", "params": {"test_num": 1000}},
        "trigger": {"schedule": {"expression": "cron(0 6 ? * MON-FRI *)", "timezone": "Europe/Berlin"}},
    }
    m = rt.monitors.create(WS, MonitorIn.model_validate(body))
    rt.monitors.set_state(WS, m.monitor_id, "paused")
    run = rt.monitors.fire(WS, m.monitor_id)
    assert run.status == "skipped"
    assert rt.monitors.fire(WS, "mon_gone") is None
    got = []
    unsub = rt.events.subscribe(got.append, kinds=("monitor.failed",))
    try:
        sqlm = create(rt, "sql", {"query": "SELECT no_such_column FROM lots"}, scope={"lot_id": "BAD"})
        run, _ = rt.monitors.run(WS, sqlm.monitor_id)
        assert run.status == "failed" and "no_such_column" in run.error
        assert [e.kind for e in got] == ["monitor.failed"] and got[0].data["run_id"] == run.run_id
        failed, _ = rt.monitors.runs(WS, sqlm.monitor_id, status="failed")
        assert [r.run_id for r in failed] == [run.run_id]
    finally:
        unsub()


def test_backtest(lake) -> None:
    rt, _ = lake
    m = create(rt, "yield_below", {"limit": 0.85, "level": "lot"})
    now = datetime.now(UTC)
    res = rt.monitors.backtest(WS, m.monitor_id, now - timedelta(hours=1), now + timedelta(minutes=1))
    assert res["findings_by_lot"].get("BAD") == 1 and "GOOD" not in res["findings_by_lot"]
    assert res["snapshots_evaluated"] >= 8
    assert rt.monitors.runs(WS, m.monitor_id)[0] == []  # nothing recorded
    assert (
        rt.monitors.backtest(WS, m.monitor_id, now - timedelta(days=30), now - timedelta(days=29))[
            "snapshots_evaluated"
        ]
        == 0
    )


def test_findings_are_readable_in_sql(lake) -> None:
    rt, gens = lake
    m = create(rt, "yield_below", {"limit": 0.85, "level": "wafer"}, scope={"lot_id": "BAD"})
    run, _ = rt.monitors.run(WS, m.monitor_id)
    res = rt.sql.run(
        WS,
        f"SELECT wafer_id, kind, rule, rule_version, json_extract(\"values\", '$.yield')::DOUBLE AS y, "
        f"json_extract_string(snapshot_job_ids, '$[0]') AS snap FROM monitor_findings "
        f"WHERE monitor_id = '{m.monitor_id}' ORDER BY wafer_id",
    )
    truth = wafer_truth(gens["BAD"])
    snap = rt.catalog.get_lot(WS, "BAD").active_job_id
    assert res.rows == [[w, "fired", "yield_below", 1, g / n, snap] for w, (g, n) in sorted(truth.items())]
    # lot-scoped SQL sees only that lot's findings; another workspace sees none
    scoped = rt.sql.run(WS, "SELECT DISTINCT lot_id FROM monitor_findings", scope=Scope(lot_id="GOOD"))
    assert scoped.rows == []
    assert rt.sql.run("other", "SELECT count(*) FROM monitor_findings").rows == [[0]]
