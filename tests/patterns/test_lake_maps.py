"""On publish the wafers of a job are classified from one query (``lake_maps``): the same die maps, and so the
same stored classifications, as ``lake_map`` wafer by wafer (the map GET .../wafers/{wafer_id}/map draws),
on real wafer-sort files and on a multi-file lot with retests under both retest policies."""

from __future__ import annotations

import numpy as np
import pytest

from stratum.devtools.stdf.lots import LotSpec, write_lot
from stratum.patterns.geometry import DieMap
from stratum.patterns.service import PatternService, lake_adapters
from stratum.query.final_dies import final_dies
from tests.conftest import corpus_file
from tests.fixtures.runtime import make_runtime

WS = "default"


def _arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def assert_same_map(got: DieMap, want: DieMap, where: str) -> None:
    for f in ("x", "y", "fail", "site", "hard_bin"):
        assert _arrays_equal(getattr(got, f), getattr(want, f)), f"{where}: {f} differs"


def per_wafer(rt, lot: str, job: str) -> dict[str, tuple[DieMap, str]]:
    a = lake_adapters(lambda: rt.analytics)
    return {w: a["lake_map"](WS, lot, w, job) for w in a["job_wafers"](WS, lot, job)}


def stored(rt, lot: str, job: str, *, batched: bool) -> tuple[int, list[tuple]]:
    """What ``classify_published`` hands the store, through the batched or the per-wafer adapters."""
    a = lake_adapters(lambda: rt.analytics)
    if not batched:
        del a["lake_maps"]
    calls: list[tuple] = []
    svc = PatternService(rt.settings.patterns, store=lambda *args: calls.append(args), **a)
    return svc.classify_published(WS, lot, job), calls


def check_files_path(rt, lot: str, job: str) -> None:
    """``final_dies`` (the snapshot's files, no DuckDB) answers what ``job_final_dies`` (the parts view) does:
    the same wafers in the same order, the same arrays with the same dtypes, and it did not hand over to the view."""
    got = final_dies(rt.catalog, rt.lake, WS, lot, job)
    assert got is not None, f"lot {lot} job {job}: the files path handed over to the view"
    want = rt.analytics.job_final_dies(WS, lot, job)
    assert got[0] == want[0] == job
    assert list(got[1]) == list(want[1])
    for w, cols in want[1].items():
        assert list(got[1][w]) == list(cols)
        for k, v in cols.items():
            assert _arrays_equal(got[1][w][k], v), f"lot {lot} wafer {w} job {job}: {k} differs"


def check_job(rt, lot: str, job: str) -> dict[str, tuple[DieMap, str]]:
    want = per_wafer(rt, lot, job)
    check_files_path(rt, lot, job)
    got = lake_adapters(lambda: rt.analytics)["lake_maps"](WS, lot, job)
    files = lake_adapters(lambda: rt.analytics, rt.catalog, lake=rt.lake)["lake_maps"](WS, lot, job)
    assert list(got) == list(want) == list(files)
    for w, (dm, snap) in want.items():
        assert got[w][1] == snap == job == files[w][1]
        assert_same_map(got[w][0], dm, f"lot {lot} wafer {w} job {job}")
        assert_same_map(files[w][0], dm, f"lot {lot} wafer {w} job {job} (files)")
    n_batched, rows_batched = stored(rt, lot, job, batched=True)
    n_single, rows_single = stored(rt, lot, job, batched=False)
    assert n_batched == n_single == len(rows_batched) == sum(len(dm.x) >= 20 for dm, _ in want.values())
    assert rows_batched == rows_single
    return got


# -- a multi-file lot with retests (in-file and a retest file), both retest policies -----------------------------
@pytest.fixture(scope="module")
def lot_files(tmp_path_factory):
    spec = LotSpec(
        lot_id="LM-LOT",
        wafers=("W01", "W02", "W03"),
        files=2,
        die_diameter=14,
        retest_fraction=0.5,
        retest_file=True,
        seed=7,
        sites=4,
    )
    truth = write_lot(spec, tmp_path_factory.mktemp("lake-maps") / "stdf")
    assert len(truth.paths) == 3
    return truth.paths


@pytest.fixture(scope="module")
def finals(lot_files, tmp_path_factory):
    """{policy: {job order: {wafer: DieMap}}}, each job checked against the per-wafer path."""
    out: dict[str, list[dict[str, DieMap]]] = {}
    for policy in ("last", "highest_bin"):
        rt = make_runtime(tmp_path_factory.mktemp(policy) / "data", retest_policy=policy)
        try:
            jobs = [rt.ingest.ingest_path(WS, p) for p in lot_files]
            assert [j.status for j in jobs] == ["succeeded"] * 3
            out[policy] = [{w: dm for w, (dm, _) in check_job(rt, j.lot_id, j.job_id).items()} for j in jobs]
        finally:
            rt.close()
    return out


def test_batched_maps_equal_per_wafer_maps_under_both_retest_policies(finals) -> None:
    for policy, per_job in finals.items():
        assert [sorted(m) for m in per_job] == [["W01", "W02"], ["W03"], ["W01", "W02", "W03"]], policy


def test_the_lot_exercises_retests_and_the_policies(finals) -> None:
    # not vacuous: the retest file changes the final maps, and the two policies keep different dies
    last, high = finals["last"], finals["highest_bin"]
    assert any(not np.array_equal(last[0][w].fail, last[2][w].fail) for w in last[0])
    assert any(not np.array_equal(last[2][w].hard_bin, high[2][w].hard_bin) for w in last[2])


# -- real wafer-sort files ---------------------------------------------------------------------------------------
CORPUS_WS = {
    "ltx_diamond_d10_ws_4site_95mb.std.gz": 1,
    "advantest_93k_ws_6904dies.std.gz": 1,
    "advantest_93k_ws_mpr.stdf": 0,  # no die coordinates: nothing to classify on either path
    "teradyne_a530_ws_be_lot3.stdf.gz": 1,
    "teradyne_catalyst_a595_3wafers_be.stdf.gz": 3,
}


@pytest.mark.corpus
@pytest.mark.parametrize("name", list(CORPUS_WS))
def test_batched_maps_equal_per_wafer_maps_on_corpus_files(tmp_path, name) -> None:
    path = corpus_file(name)
    rt = make_runtime(tmp_path / "data")
    try:
        job = rt.ingest.ingest_path(WS, path)
        assert job.status in ("succeeded", "partial"), job.error
        maps = check_job(rt, job.lot_id, job.job_id)
        assert len(maps) == CORPUS_WS[name], name
    finally:
        rt.close()
