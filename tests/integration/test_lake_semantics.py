"""Lot semantics end to end: generated files with a known truth → ingest → views and analytics.

The lot has two wafer files, in-file retests (PART_FLG bit 1) and a separate retest file without flags,
so first-pass and final views, retests across files, bins and capability are all exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from stratum.analytics import capability as cap
from stratum.analytics.service import AnalyticsService
from stratum.devtools.stdf.lots import LotSpec, write_lot
from stratum.query.engine import Scope
from tests.fixtures.runtime import make_runtime


@pytest.fixture(scope="module")
def lot(tmp_path_factory):
    d = tmp_path_factory.mktemp("lot")
    spec = LotSpec(
        lot_id="SEM-LOT",
        wafers=("W01", "W02", "W03", "W04"),
        files=2,
        die_diameter=14,
        retest_fraction=0.5,
        retest_file=True,
        seed=7,
        sites=4,
    )
    truth = write_lot(spec, d / "stdf")
    rt = make_runtime(d / "data")
    jobs = [rt.ingest.ingest_path("default", p) for p in truth.paths]
    assert [j.status for j in jobs] == ["succeeded"] * len(jobs)
    yield truth, rt, jobs
    rt.close()


def _q(rt, sql, scope=None):
    with rt.engine.session("default", scope) as s:
        return s.rows(sql)


def test_files_and_retests_are_in_the_truth(lot):
    truth, _, jobs = lot
    assert len(jobs) == 3  # two wafer files + one retest file
    assert truth.parts.retest.max() >= 1
    assert (truth.parts.retest[truth.parts.file == 2] >= 1).all()


def test_lot_final_and_first_pass_counts(lot):
    truth, rt, _ = lot
    final, first = truth.final(), truth.first_pass()
    (row,) = _q(
        rt,
        "SELECT part_count, good_count, first_pass_count, first_pass_good, retest_count, file_count, "
        "wafer_count FROM lots",
    )
    assert row == (
        int(final.sum()),
        int(truth.parts.passed[final].sum()),
        int(first.sum()),
        int(truth.parts.passed[first].sum()),
        int((~first).sum()),
        3,
        4,
    )


def test_is_final_matches_truth_per_execution(lot):
    truth, rt, jobs = lot
    order = {j.job_id: i for i, j in enumerate(jobs)}
    rows = _q(rt, "SELECT job_id, rec_seq, is_final, is_retest, retest_ordinal FROM parts")
    got = {(order[j], seq): (f, r, o) for j, seq, f, r, o in rows}
    p = truth.parts
    final = truth.final()
    for i in range(len(p.seq)):
        assert got[(int(p.file[i]), int(p.seq[i]))] == (bool(final[i]), bool(p.retest[i] > 0), int(p.retest[i]))


def test_wafer_counts(lot):
    truth, rt, _ = lot
    final, first = truth.final(), truth.first_pass()
    rows = {
        w: (n, g, fn, fg)
        for w, n, g, fn, fg in _q(
            rt, "SELECT wafer_id, part_count, good_count, first_pass_count, first_pass_good FROM wafers"
        )
    }
    for w in ("W01", "W02", "W03", "W04"):
        m = truth.parts.wafer_id == w
        assert rows[w] == (
            int((m & final).sum()),
            int((m & final & truth.parts.passed).sum()),
            int((m & first).sum()),
            int((m & first & truth.parts.passed).sum()),
        )


def test_bins_final_and_first_pass(lot):
    truth, rt, _ = lot
    final, first = truth.final(), truth.first_pass()
    rows = _q(rt, "SELECT bin_type, bin_num, bin_name, pass_fail, part_count, first_pass_count FROM bins")
    hard = {b: (n, fp) for t, b, _, _, n, fp in rows if t == "H"}
    exp_final = truth.bin_counts("hard", final)
    exp_first = truth.bin_counts("hard", first)
    for b in set(exp_final) | set(exp_first):
        assert hard[b] == (exp_final.get(b, 0), exp_first.get(b, 0))
    names = {b: (n, pf) for t, b, n, pf, _, _ in rows if t == "H"}
    for b, (name, pf) in truth.hard_bins.items():
        if b in names:
            assert names[b] == (name, pf)


def test_results_exact_values(lot):
    truth, rt, _ = lot
    final = truth.final()
    t = next(i for i, td in enumerate(truth.tests) if td.kind == "P")
    td = truth.tests[t]
    vals = truth.results[:, t]
    valid = truth.executed[:, t] & ((truth.test_flg[:, t] & 0x3F) == 0) & ((truth.parm_flg[:, t] & 0x07) == 0)
    exp = np.sort(vals[final & valid].astype(np.float32))
    got = np.array(
        [
            r[0]
            for r in _q(
                rt,
                f"SELECT result FROM results WHERE test_num = {td.num} AND "
                f"test_name = '{td.name}' AND is_final AND valid ORDER BY result",
            )
        ],
        dtype=np.float32,
    )
    assert np.array_equal(got.view(np.uint32), exp.view(np.uint32))


def test_capability_matches_formula_on_truth(lot):
    truth, rt, _ = lot
    final = truth.final()
    svc = AnalyticsService(rt.engine, rt.catalog)
    out = svc.capability("default", "SEM-LOT")
    by_key = {(r["test_num"], r["test_name"]): r for r in out["tests"]}
    checked = 0
    for i, td in enumerate(truth.tests):
        if td.kind != "P":
            continue
        valid = (
            final & truth.executed[:, i] & ((truth.test_flg[:, i] & 0x3F) == 0) & ((truth.parm_flg[:, i] & 0x07) == 0)
        )
        x = truth.results[valid, i].astype(np.float64)
        stats = cap.from_values(x, truth.parts.wafer_id[valid])
        # limits as the file stores them (R4)
        lo = None if td.lo is None else float(np.float32(td.lo))
        hi = None if td.hi is None else float(np.float32(td.hi))
        exp = cap.compute_capability(stats, lo, hi)
        got = by_key[(td.num, td.name)]
        for k in ("n", "mean", "sigma_within", "sigma_overall", "cp", "cpk", "pp", "ppk"):
            e = getattr(exp, k)
            if e is None:
                assert got[k] is None, (td.name, k)
            else:
                assert got[k] == pytest.approx(e, rel=1e-9, abs=1e-12), (td.name, k)
        checked += 1
    assert checked >= 5


def test_snapshot_pinning_is_reproducible(lot):
    truth, rt, jobs = lot
    first_job = jobs[0]
    (n_first,) = _q(rt, "SELECT part_count FROM lots", Scope(lot_id="SEM-LOT", snapshot_job_id=first_job.job_id))[0]
    m = truth.parts.file == 0
    keys = {k for k, f in zip(truth.die_keys(), m, strict=False) if f}
    assert n_first == len(keys)
    assert first_job.snapshot and [s.job_id for s in first_job.snapshot] == [first_job.job_id]
    latest = rt.catalog.get_lot("default", "SEM-LOT")
    assert latest.active_job_id == jobs[-1].job_id
    assert [m.job_id for m in latest.members] == [j.job_id for j in jobs]


def test_highest_bin_policy(tmp_path, lot):
    truth, _, _ = lot
    rt = make_runtime(tmp_path / "hb", retest_policy="highest_bin")
    for p in truth.paths:
        assert rt.ingest.ingest_path("default", p).status == "succeeded"
    fin = truth.final("highest_bin")
    (row,) = _q(rt, "SELECT part_count, good_count FROM lots")
    assert row == (int(fin.sum()), int(truth.parts.passed[fin].sum()))
    rt.close()
