"""Data correctness on real tester files (issue 9, "Data"): exact values from the corpus, in every scope.

Workspaces of one data directory:

- ``default``: ``teradyne_a530_ws_be_lot3`` ingested with ``--retest-policy highest_bin`` (lot GAL-LOT) and
  ``advantest_93k_ws_mpr`` with the default ``last`` (lot 1: one wafer whose WAFER_ID is empty);
- ``ft``: ``advantest_93k_ft_8site`` (final test, lot 826969.501, TSR summaries per site and HEAD 255);
- ``dtr``: ``advantest_93k_ft_4site_dtr`` (final test; test 3110 under several names);
- ``a530last``: ``teradyne_a530_ws_be_lot3`` with the default retest policy (summary cross-check).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from stratum.analytics.service import AnalyticsService
from stratum.api.app import create_app
from stratum.query.engine import Scope
from tests.conftest import corpus_file
from tests.fixtures.runtime import make_runtime
from tests.functional.test_cli_process import run as run_cli
from tests.support import read_all

A530 = "GAL-LOT"
MPR_LOT = "1"
FT_LOT = "826969.501"
HB_FINAL = [1456, 1294, 1294 / 1456]  # a530 under highest_bin: parts, good, yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus") / "data"
    rt = make_runtime(d)
    hb = rt.ingest.default_options(retest_policy="highest_bin")
    jobs = {
        "a530": rt.ingest.ingest_path("default", corpus_file("teradyne_a530_ws_be_lot3.stdf.gz"), options=hb),
        "mpr": rt.ingest.ingest_path("default", corpus_file("advantest_93k_ws_mpr.stdf")),
        "ft": rt.ingest.ingest_path("ft", corpus_file("advantest_93k_ft_8site.std.gz")),
        "dtr": rt.ingest.ingest_path("dtr", corpus_file("advantest_93k_ft_4site_dtr.stdf")),
        "a530_last": rt.ingest.ingest_path("a530last", corpus_file("teradyne_a530_ws_be_lot3.stdf.gz")),
    }
    assert {k: j.status for k, j in jobs.items()} == dict.fromkeys(jobs, "succeeded")
    rt.close()
    app = create_app(settings=make_runtime(d).settings)
    token = app.state.keys.create("default", ["full"], "corpus")[0]
    ft_token = app.state.keys.create("ft", ["full"], "corpus-ft")[0]
    last_token = app.state.keys.create("a530last", ["full"], "corpus-a530")[0]
    client = TestClient(app)
    yield {
        "dir": d,
        "rt": app.state.runtime,
        "an": app.state.analytics,
        "client": client,
        "h": {"Authorization": f"Bearer {token}"},
        "h_ft": {"Authorization": f"Bearer {ft_token}"},
        "h_last": {"Authorization": f"Bearer {last_token}"},
        "jobs": jobs,
    }
    app.state.runtime.close()


def _sql(c, query: str, ws: str = "default", scope: Scope | None = None) -> list[list]:
    return c["rt"].sql.run(ws, query, scope=scope).rows


# -- 2. a wafer whose WAFER_ID is empty -------------------------------------------------------------------
def test_wafer_with_empty_wafer_id_keeps_its_counts(corpus):
    an: AnalyticsService = corpus["an"]
    wafers = an.wafers("default", MPR_LOT)
    assert [
        (w["wafer_id"], w["part_count"], w["good_count"], w["yield"], w["wrr_part_count"], w["wrr_good_count"])
        for w in wafers
    ] == [(None, 140, 32, 32 / 140, 140, 32)]
    assert round(wafers[0]["yield"], 4) == 0.2286
    assert _sql(corpus, "SELECT wafer_count, part_count, good_count FROM lots WHERE lot_id = '1'") == [[1, 140, 32]]
    assert _sql(corpus, "SELECT count(*) FROM parts WHERE lot_id = '1' AND on_wafer AND wafer_id IS NULL") == [[140]]
    detail = corpus["client"].get(f"/v1/lots/{MPR_LOT}", headers=corpus["h"]).json()
    assert detail["wafer_count"] == 1
    assert [(w["wafer_id"], w["part_count"], w["good_count"]) for w in detail["wafers"]] == [(None, 140, 32)]


def test_bins_by_wafer_include_the_null_id_wafer(corpus):
    r = corpus["client"].get(f"/v1/lots/{MPR_LOT}/bins", params={"by": "wafer", "bin_type": "H"}, headers=corpus["h"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(y["wafer_id"], y["parts"], y["good"]) for y in body["yield"]] == [(None, 140, 32)]
    assert body["bins"] and {b["wafer_id"] for b in body["bins"]} == {None}
    assert sum(b["part_count"] for b in body["bins"]) == 140
    lot = corpus["an"].bins("default", MPR_LOT, bin_type="H")
    by_lot = {b["bin_num"]: b["part_count"] for b in lot["bins"]}
    assert {b["bin_num"]: b["part_count"] for b in body["bins"]} == by_lot


def test_bins_by_wafer_of_a_final_test_lot_have_no_wafer_groups(corpus):
    body = corpus["client"].get(f"/v1/lots/{FT_LOT}/bins", params={"by": "wafer"}, headers=corpus["h_ft"]).json()
    assert (body["yield"], body["bins"]) == ([], [])


def test_null_id_wafer_is_one_capability_subgroup(corpus):
    tests = corpus["an"].capability("default", MPR_LOT)["tests"]
    with_data = [t for t in tests if t["n"] >= 2]
    assert with_data and {(t["subgroups"], t["sigma_within_source"]) for t in with_data} == {(1, "pooled")}


# -- 3. one snapshot, one yield, whatever the scope ----------------------------------------------------
def test_highest_bin_policy_in_every_scope(corpus):
    q = "SELECT part_count, good_count, yield FROM lots WHERE lot_id = 'GAL-LOT'"
    assert _sql(corpus, q) == [HB_FINAL]  # no lot scope: every lot of the workspace
    assert _sql(corpus, q, scope=Scope(lot_id=A530)) == [HB_FINAL]
    c, h = corpus["client"], corpus["h"]
    r = c.post("/v1/sql", json={"query": q}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [HB_FINAL]
    r = c.post("/v1/sql", json={"query": q, "context": {"lot_id": A530}}, headers=h)
    assert r.json()["rows"] == [HB_FINAL]
    d = c.get(f"/v1/lots/{A530}", headers=h).json()
    assert [d["part_count"], d["good_count"], d["yield"]] == HB_FINAL
    assert round(d["yield"], 4) == 0.8887
    # the other lot of the workspace keeps its own policy (last) in the same unscoped query
    both = _sql(corpus, "SELECT lot_id, part_count, good_count FROM lots ORDER BY lot_id")
    assert both == [["1", 140, 32], ["GAL-LOT", 1456, 1294]]
    hb_bin8 = "SELECT part_count FROM bins WHERE lot_id = 'GAL-LOT' AND bin_type = 'H' AND bin_num = 8"
    assert _sql(corpus, hb_bin8) == _sql(corpus, hb_bin8, scope=Scope(lot_id=A530))


def test_highest_bin_policy_from_the_cli(corpus):
    d = corpus["dir"]
    q = "SELECT part_count, good_count, yield FROM lots WHERE lot_id = 'GAL-LOT'"
    for extra in ((), ("--lot", A530)):
        p = run_cli(d, "sql", "--format", "json", *extra, q)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["rows"] == [HB_FINAL]
    p = run_cli(d, "lots", "--json")
    assert p.returncode == 0, p.stderr
    lots = {r["lot_id"]: r for r in json.loads(p.stdout)}
    assert (lots[A530]["part_count"], lots[A530]["good_count"], lots[A530]["yield_pct"]) == (1456, 1294, 88.87)
    assert (lots[MPR_LOT]["part_count"], lots[MPR_LOT]["good_count"]) == (140, 32)


# -- 4. capability source=auto ----------------------------------------------------------------------
def test_capability_auto_uses_raw_results_on_the_93k_final_test_lot(corpus):
    an = corpus["an"]
    exact = an.capability("ft", FT_LOT)
    auto = an.capability("ft", FT_LOT, source="auto")
    assert len(auto["tests"]) == len(exact["tests"]) == 412
    assert sum(t["cpk"] is not None for t in exact["tests"]) == 373
    assert sum(t["cpk"] is not None for t in auto["tests"]) == 373
    assert {t["source"] for t in auto["tests"]} == {"exact"}
    assert auto["tests"] == exact["tests"]


def test_tsr_statistics_are_float64_and_null_when_the_sums_cannot_give_a_variance(corpus):
    from stratum.analytics.service import tsr_moments

    # Constant results: float32 sums whose float32 arithmetic used to give variance 0 (then clipped to 0)
    x = 3.3
    n = 140
    sx = float(np.float32(n * x))
    sxx = float(np.float32(n * x * x))
    assert tsr_moments(n, sx, sxx)[2] is None
    assert tsr_moments(1, 3.3, 10.89)[2] is None
    assert tsr_moments(n, math.nan, 1.0)[2] is None
    # resolvable sums: exactly the float64 formula
    assert tsr_moments(4, 10.0, 30.0) == (4.0, 2.5, (30.0 - 25.0) / 3)
    # the 93k file's TSRs: no variance is 0 (this tester writes TST_SQRS that the STDF formula cannot use)
    with corpus["rt"].engine.session("ft", Scope(lot_id=FT_LOT)) as s:
        stats = AnalyticsService._tsr_stats(s)
    assert len(stats) == 412
    assert all(v is None or v > 0 for _, _, v in stats.values())
    n9705, mean9705, _ = stats[(9705, next(k[1] for k in stats if k[0] == 9705))]
    assert (n9705, mean9705) == (140.0, 1104.0 / 140)


# -- 5. final-test lots: overall fallback ---------------------------------------------------------------
def test_final_test_lot_within_sigma_is_the_overall_fallback(corpus):
    tests = corpus["an"].capability("ft", FT_LOT)["tests"]
    assert {t["sigma_within_source"] for t in tests} == {"overall_fallback"}
    assert {t["subgroups"] for t in tests} == {0}
    for t in tests:
        assert t["sigma_within"] == t["sigma_overall"]
        assert t["cpk"] == t["ppk"]


# -- 1. default data belongs to the test number --------------------------------------------------------
def _number_defaults(res) -> tuple[list, dict]:
    """Tests without default data of their own that follow a test of their number which has some."""
    holder: dict[tuple[str, int], object] = {}
    for t in sorted(res.tests, key=lambda t: t.first_rec_seq):
        if t.has_defaults:
            holder.setdefault((t.kind, t.num), t)
    inherited = [
        t
        for t in res.tests
        if not t.has_defaults and (t.kind, t.num) in holder and holder[(t.kind, t.num)].first_rec_seq < t.first_rec_seq
    ]
    return inherited, holder


def test_short_ptrs_take_their_numbers_default_data_advantest_ws_mpr():
    res, sink = read_all(corpus_file("advantest_93k_ws_mpr.stdf"))
    inherited, holder = _number_defaults(res)
    ptr = [t for t in inherited if t.kind == "P"]
    assert (len(ptr), sum(t.exec_count for t in ptr)) == (35, 4515)
    for t in inherited:
        d = holder[(t.kind, t.num)]
        assert (t.units, t.lo_limit, t.hi_limit, t.res_scal) == (d.units, d.lo_limit, d.hi_limit, d.res_scal), t.name
    (vopp,) = [t for t in res.tests if t.num == 3251 and t.name == "MGC1_Vopp_CH1:Vopp@RF_OUT1N[1]"]
    assert (vopp.kind, vopp.has_defaults, vopp.units, vopp.lo_limit, vopp.hi_limit) == ("P", False, "V", 0.0, 3.5)
    r = sink.table("results")
    rows = r["test_idx"] == vopp.idx
    assert int(rows.sum()) == 129
    assert set(np.asarray(r["lo_limit"])[rows].tolist()) == {0.0}
    assert set(np.asarray(r["hi_limit"])[rows].tolist()) == {3.5}
    # every result of the 35 tests has the limits of its number (before: null)
    idx = np.isin(r["test_idx"], [t.idx for t in ptr])
    assert int(idx.sum()) == 4515
    lo = np.asarray(r["lo_limit"])[idx]
    want = np.array([holder[("P", int(n))].lo_limit for n in np.asarray(r["test_num"])[idx]], dtype=np.float64)
    assert np.array_equal(np.isnan(lo), np.isnan(want)) and np.allclose(lo[~np.isnan(lo)], want[~np.isnan(want)])


def test_test_3110_variants_take_the_numbers_limits_advantest_ft_dtr(corpus):
    rows = _sql(
        corpus,
        "SELECT test_name, units, lo_limit, hi_limit FROM tests WHERE test_num = 3110 ORDER BY test_name",
        ws="dtr",
    )
    assert len(rows) == 15
    assert {u for _, u, _, _ in rows} == {"V"}
    named = {n.split(":")[1].split("_Vulp")[0]: (lo, hi) for n, _, lo, hi in rows}
    f32 = 0.8, 1.2  # FLOAT columns are presented at float32 precision (shortest decimal that round-trips)
    for m in (
        "M1",
        "M2",
        "M6",
        "M7",
        "M8",
        "M9",
        "M10",
    ):  # M1 sets the number's defaults; M2, M6-M10 only have short PTRs
        assert named[m] == f32, m
    for m in ("M3", "M4", "M5", "M11", "M12", "M13", "M14", "M15"):  # their own default data
        assert named[m] == (0.5, 0.9), m
    assert _sql(corpus, "SELECT count(*) FROM results WHERE test_num = 3110 AND lo_limit IS NULL", ws="dtr") == [[0]]


# -- 6. summaries that disagree with the raw records --------------------------------------------------
A530_MISMATCHES = {  # (summary, raw) per summary count of teradyne_a530_ws_be_lot3 (retest policy last)
    **{
        f"{rec} {kind} bin {b}": v
        for rec, kind in (("HBR", "hard"), ("SBR", "soft"))
        for b, v in {
            1: (1378, 1377),
            2: (58, 30),
            4: (8, 4),
            5: (16, 8),
            7: (2, 1),
            8: (71, 19),
            10: (20, 10),
            16: (2, 1),
            17: (8, 4),
            20: (55, 1),
        }.items()
    },
    "PCR PART_CNT": (1619, 1456),
    "PCR RTST_CNT": (0, 163),
    "WRR of wafer GAL-LOT-03 PART_CNT": (1619, 1456),
    "WRR of wafer GAL-LOT-03 RTST_CNT": (0, 163),
}


def _mismatches(warnings) -> dict[str, tuple[int, int]]:
    out = {}
    for w in warnings:
        w = w if isinstance(w, dict) else w.model_dump()
        if w["code"] == "summary_mismatch":
            out[w["message"].split(":")[0]] = (w["summary_count"], w["record_count"])
    return out


def test_summary_records_that_disagree_become_job_warnings(corpus):
    job = corpus["jobs"]["a530_last"]
    assert _mismatches(job.warnings) == A530_MISMATCHES
    (bin8,) = [w for w in job.warnings if w.message.startswith("HBR hard bin 8:")]
    assert bin8.message == (
        "HBR hard bin 8: 71 in the summary (HEAD 255), 19 dies in the PRRs after retests "
        "(52 at first pass, 71 executions)"
    )
    (rtst,) = [w for w in job.warnings if w.message.startswith("PCR RTST_CNT")]
    assert rtst.message == "PCR RTST_CNT: 0 in the summary (HEAD 255), 163 retests in the PRRs"
    # files whose summaries agree with their PRRs (PCR/WRR 140 parts, 32 good, 0 retests): no warning
    assert _mismatches(corpus["jobs"]["mpr"].warnings) == {}
    assert _mismatches(corpus["jobs"]["ft"].warnings) == {}


def test_summary_mismatches_follow_the_retest_policy(corpus):
    """Under highest_bin the raw side is the file's final view under that policy: what the bins view reports."""
    got = _mismatches(corpus["jobs"]["a530"].warnings)
    bins = _sql(corpus, "SELECT bin_type, bin_num, part_count FROM bins WHERE lot_id = 'GAL-LOT'")
    raw = {f"{'HBR hard' if t == 'H' else 'SBR soft'} bin {b}": n for t, b, n in bins}
    binned = {k: v for k, v in got.items() if k.startswith(("HBR", "SBR"))}
    assert binned and all(raw[k] == rec for k, (_, rec) in binned.items())
    assert got["HBR hard bin 8"] != A530_MISMATCHES["HBR hard bin 8"]  # the policy changes the final dies
    assert got["PCR RTST_CNT"] == (0, 163)


def test_lot_detail_shows_the_summary_mismatches(corpus):
    r = corpus["client"].get(f"/v1/lots/{A530}", headers=corpus["h_last"])
    assert r.status_code == 200, r.text
    ws = r.json()["warnings"]
    job = corpus["jobs"]["a530_last"]
    assert {(w["job_id"], w["file_name"]) for w in ws} == {(job.job_id, "teradyne_a530_ws_be_lot3.stdf.gz")}
    assert _mismatches(ws) == A530_MISMATCHES
    p = run_cli(corpus["dir"], "lot", "--workspace", "a530last", A530)
    assert p.returncode == 0, p.stderr
    assert "24 warning(s):" in p.stdout
    assert (
        "[summary_mismatch] teradyne_a530_ws_be_lot3.stdf.gz: HBR hard bin 8: 71 in the summary (HEAD 255), "
        "19 dies in the PRRs after retests (52 at first pass, 71 executions)"
    ) in p.stdout
    p = run_cli(corpus["dir"], "lot", "--workspace", "a530last", "--json", A530)
    assert p.returncode == 0, p.stderr
    assert _mismatches(json.loads(p.stdout)["warnings"]) == A530_MISMATCHES
    assert run_cli(corpus["dir"], "lot", "--workspace", "a530last", "NO-SUCH-LOT").returncode == 1


def test_summary_warnings_are_capped_by_the_setting(tmp_path):
    rt = make_runtime(tmp_path / "data", max_summary_warnings=5)
    try:
        job = rt.ingest.ingest_path("default", corpus_file("teradyne_a530_ws_be_lot3.stdf.gz"))
    finally:
        rt.close()
    ws = [w for w in job.warnings if w.code == "summary_mismatch"]
    assert len(ws) == 6
    assert [w.summary_count for w in ws[:5]] == [1378, 58, 8, 16, 2]
    assert (ws[5].count, ws[5].summary_count, ws[5].message) == (
        19,
        None,
        "19 more summary counts disagree with the raw records (not listed)",
    )
