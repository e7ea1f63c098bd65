"""Issue 16: a snapshot's materialised sufficient statistics equal the raw computation, on every corpus file and
under every retest policy; they are written on first use only (a failed ingest leaves none), once, and a
snapshot published before them gets them on first use (backfill)."""

from __future__ import annotations

import math
import threading

import pytest

from stratum.analytics import snapstats
from stratum.analytics.service import AnalyticsService
from stratum.lake import layout
from stratum.lake import snapstats as store
from stratum.query.engine import Scope
from stratum.query.floats import float32_value
from tests.api.conftest import assert_same
from tests.conftest import CORPUS, corpus_file
from tests.fixtures.runtime import make_runtime

CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*") if p.is_file() and p.name != "SOURCES.md") or ["(absent)"]

FIELDS = ("n", "fails", "n_valid", "mean", "sigma", "min", "max")


def _rows_by_key(rows: list, width: int) -> dict:
    return {tuple(r[:width]): [None if isinstance(v, float) and math.isnan(v) else v for v in r[width:]] for r in rows}


VIEW = {"final": lambda f, r: f, "first_pass": lambda f, r: not r, "all": lambda f, r: True}
SOURCES = {
    "P": "SELECT test_num, test_name, wafer_id, on_wafer, is_final, is_retest, valid, passed, result::DOUBLE "
    "FROM results",
    "M": "SELECT test_num, test_name, wafer_id, wafer_id IS NOT NULL, is_final, is_retest, valid, passed, "
    "result::DOUBLE FROM mpr_results",
    "F": "SELECT test_num, test_name, wafer_id, wafer_id IS NOT NULL, is_final, is_retest, false, passed, NULL "
    "FROM ftr_results",
}


def exact(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample variance, correctly rounded sums (math.fsum) and two passes: the reference."""
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.fsum((v - mean) * (v - mean) for v in values) / (len(values) - 1)


def reference(s) -> dict[tuple, dict]:
    """(view, wafer or None for the lot, test type, number, name) -> the statistics, from the raw rows."""
    groups: dict[tuple, list] = {}
    for tt, sql in SOURCES.items():
        for tn, name, wafer, on_wafer, fin, retest, valid, passed, x in s.rows(sql):
            for view, keep in VIEW.items():
                if not keep(fin, retest):
                    continue
                scopes = [None, ("w", wafer)] if on_wafer else [None]
                for scope in scopes:
                    g = groups.setdefault((view, scope, tt, tn, name), [0, 0, []])
                    g[0] += 1
                    g[1] += passed is False
                    if valid:
                        g[2].append(x)
    out = {}
    for key, (n, fails, vals) in groups.items():
        mean, var = exact(vals)
        out[key] = {
            "n": n,
            "fails": fails,
            "n_valid": len(vals) if key[2] != "F" else None,
            "mean": mean,
            "var": var,
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
        }
    return out


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    rt = make_runtime(tmp_path_factory.mktemp("snapstats") / "data")
    yield rt
    rt.close()


@pytest.mark.parametrize("policy", ["last", "highest_bin"])
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_materialised_statistics_equal_the_raw_computation(lake, name, policy):
    path = corpus_file(name)
    ws = f"c{CORPUS_FILES.index(name)}-{policy.replace('_', '')}"
    job = lake.ingest.ingest_path(ws, path, options=lake.ingest.default_options(retest_policy=policy))
    if job.status not in ("succeeded", "partial"):
        pytest.skip(f"{name} publishes no snapshot ({job.status})")
    an = lake.analytics
    with lake.engine.session(ws, Scope(lot_id=job.lot_id)) as s:
        assert s.resolved.retest_policy[job.lot_id] == policy
        stats = snapstats.load(lake.lake, ws, s, job.lot_id)
        key = store.stats_key(ws, job.lot_id, job.job_id, policy)
        assert lake.lake.exists(key)
        ref = reference(s)
        wafers = [None] + [r[0] for r in s.rows("SELECT DISTINCT wafer_id FROM wafer_runs WHERE wafer_id IS NOT NULL")]
        for wafer in wafers:
            scope = None if wafer is None else ("w", wafer)
            sub, tot = AnalyticsService._capability_stats(stats, wafer)
            want_sub = {
                (k[3], k[4], k[1][1]): [r["n_valid"], r["mean"], r["var"], r["min"], r["max"]]
                for k, r in ref.items()
                if k[0] == "final"
                and k[2] == "P"
                and k[1] is not None
                and (wafer is None or k[1] == scope)
                and r["n_valid"]
            }
            want_tot = {
                (k[3], k[4]): [r["n_valid"], r["mean"], r["var"]]
                for k, r in ref.items()
                if k[0] == "final" and k[2] == "P" and k[1] == scope and r["n_valid"]
            }
            assert_same(_rows_by_key(sub, 3), want_sub, where=f"{name} {policy} subgroups of {wafer}")
            assert_same(_rows_by_key(tot, 2), want_tot, where=f"{name} {policy} totals of {wafer}")
            for view in VIEW:
                got = {
                    (r["test_type"], r["test_num"], r["test_name"]): [r[k] for k in FIELDS]
                    for r in an._test_stats(ws, s, job.lot_id, view, wafer)  # type: ignore[arg-type]
                    if r["n"] is not None
                }
                want = {
                    k[2:]: [
                        r["n"],
                        r["fails"],
                        r["n_valid"],
                        r["mean"],
                        None if r["var"] is None else math.sqrt(r["var"]),
                        float32_value(r["min"]),
                        float32_value(r["max"]),
                    ]
                    for k, r in ref.items()
                    if k[0] == view and k[1] == scope
                }
                assert_same(got, want, where=f"{name} {policy} tests {view} {wafer}")
        p_tests = s.rows("SELECT count(*) FROM tests WHERE test_type = 'P'")[0][0]
    assert len(an.capability(ws, job.lot_id)["tests"]) == p_tests  # served from the file


def _stats_files(rt, ws: str) -> list[str]:
    return [o.key for o in rt.lake.list(f"{layout.lake_root(ws)}_stats/")]


def test_a_failed_ingest_publishes_no_statistics(tmp_path):
    rt = make_runtime(tmp_path / "data")
    try:
        bad = tmp_path / "bad.stdf"
        bad.write_bytes(b"\x02\x00\x00\x0a\x01\x04" + b"\xff" * 64)  # a FAR, then garbage
        job = rt.ingest.ingest_path("default", bad)
        assert job.status == "failed"
        assert _stats_files(rt, "default") == []
    finally:
        rt.close()


def test_statistics_are_written_on_first_use_and_read_by_a_new_process(tmp_path, monkeypatch):
    """A snapshot published without the file (as before this change) gets it on first use (backfill); another
    process reads it instead of aggregating the results; a failed write serves the computed numbers."""
    path = corpus_file("teradyne_a530_ws_be_lot3.stdf.gz")
    d = tmp_path / "data"
    rt = make_runtime(d)
    job = rt.ingest.ingest_path("default", path)
    assert _stats_files(rt, "default") == []  # publishing writes none: the first use does
    first = rt.analytics.capability("default", job.lot_id)
    key = store.stats_key("default", job.lot_id, job.job_id, "last")
    assert _stats_files(rt, "default") == [key]
    rt.close()

    computed: list[int] = []
    orig = snapstats.compute
    monkeypatch.setattr(snapstats, "compute", lambda s: computed.append(1) or orig(s))
    rt2 = make_runtime(d)
    try:
        assert rt2.analytics.capability("default", job.lot_id) == first
        assert computed == []  # read from the lake
    finally:
        rt2.close()

    rt.lake.delete(key)  # a snapshot from before the change, in a process whose lake writes fail
    rt3 = make_runtime(d)
    try:

        def refuse(*a, **k):
            raise OSError("read-only lake")

        monkeypatch.setattr(rt3.lake, "put_file", refuse)
        assert_same(rt3.analytics.capability("default", job.lot_id), first)  # recomputed: to the last bits
        assert computed == [1] and not rt3.lake.exists(key)
    finally:
        rt3.close()


def test_concurrent_first_uses_write_one_file(tmp_path):
    rt = make_runtime(tmp_path / "data")
    try:
        job = rt.ingest.ingest_path("default", corpus_file("teradyne_catalyst_a595_3wafers_be.stdf.gz"))
        out: list = []

        def call() -> None:
            out.append(rt.analytics.tests("default", job.lot_id, view="all"))

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(out) == 4
        for o in out[1:]:
            assert_same(o, out[0])
        assert _stats_files(rt, "default") == [store.stats_key("default", job.lot_id, job.job_id, "last")]
    finally:
        rt.close()
