"""``stratum.query.final_dies`` (the snapshot's files, no DuckDB) against the parts view it stands in for on publish:
the same maps where the view's answer is unique, including parts without a pass/fail flag (the HBR decides);
None, and so the view, where it is not (two sublots' dies at one place, HBR rows that disagree), without pyarrow,
and for a job that published no snapshot of the lot. Tests with retest files and both policies are in
test_lake_maps.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stratum.devtools.stdf.lots import LotSpec, write_lot
from stratum.errors import NotFound
from stratum.lake import layout
from stratum.patterns.service import lake_adapters
from stratum.patterns.store import PatternStore
from stratum.query.final_dies import final_dies
from tests.conftest import corpus_file
from tests.fixtures.runtime import make_runtime

WS = "default"


def _spec(**kw) -> LotSpec:
    base = dict(lot_id="FD-LOT", wafers=("W01", "W02"), files=1, die_diameter=12, seed=11, sites=2)
    return LotSpec(**{**base, **kw})


def _same(got, want) -> None:
    assert got is not None
    assert got[0] == want[0]
    assert list(got[1]) == list(want[1])
    for w, cols in want[1].items():
        for k, v in cols.items():
            g = got[1][w][k]
            assert g.dtype == v.dtype and np.array_equal(g, v), f"wafer {w}: {k}"


def _rewrite(rt, table: str, lot: str, job: str, change) -> None:
    path = rt.lake.uri(layout.data_key(WS, table, lot, job))
    t = pq.read_table(path)
    pq.write_table(change(t), path, compression="zstd")


@pytest.fixture
def one_file(tmp_path):
    """A fresh runtime per check (the query engine keeps what it read of a snapshot) over one ingested file."""
    paths = write_lot(_spec(), tmp_path / "stdf").paths
    data = tmp_path / "data"
    rt = make_runtime(data)
    job = rt.ingest.ingest_path(WS, paths[0])
    assert job.status == "succeeded", job.error
    rt.close()
    return data, job.lot_id, job.job_id


def _null_passed_every_third(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("passed")
    keep = pa.array(np.arange(t.num_rows) % 3 != 0)
    return t.set_column(i, t.schema.field(i), pc.if_else(keep, t.column(i), pa.scalar(None, pa.bool_())))


def test_parts_without_pass_fail_take_the_hbr_verdict(one_file) -> None:
    data, lot, job = one_file
    rt = make_runtime(data)
    _rewrite(rt, "parts", lot, job, _null_passed_every_third)
    try:
        got = final_dies(rt.catalog, rt.lake, WS, lot, job)
        want = rt.analytics.job_final_dies(WS, lot, job)
        _same(got, want)
        assert sorted(want[1]) == ["W01", "W02"]
        # not vacuous: the HBR said pass for some and fail for others of the rows that lost their flag
        fails = sum(int((~c["passed"]).sum()) for c in want[1].values())
        assert 0 < fails < sum(len(c["passed"]) for c in want[1].values())
    finally:
        rt.close()


def test_hbr_rows_that_disagree_hand_over_to_the_view(one_file) -> None:
    data, lot, job = one_file
    rt = make_runtime(data)
    _rewrite(rt, "parts", lot, job, _null_passed_every_third)

    def contradict(t: pa.Table) -> pa.Table:
        rows = t.to_pylist()
        extra = [{**r, "pass_fail": "F" if r["pass_fail"] == "P" else "P"} for r in rows if r["bin_type"] == "H"]
        return pa.Table.from_pylist(rows + extra, schema=t.schema)

    _rewrite(rt, "bin_records", lot, job, contradict)
    try:
        assert final_dies(rt.catalog, rt.lake, WS, lot, job) is None
        # the adapter still answers, through the view
        maps = lake_adapters(lambda: rt.analytics, rt.catalog, lake=rt.lake)["lake_maps"](WS, lot, job)
        assert sorted(maps) == ["W01", "W02"]
    finally:
        rt.close()


def test_two_sublots_at_one_place_hand_over_to_the_view(tmp_path) -> None:
    rt = make_runtime(tmp_path / "data")
    try:
        jobs = []
        for i, sub in enumerate(("S01", "S02")):
            (p,) = write_lot(_spec(sublot_id=sub, seed=20 + i), tmp_path / sub).paths
            jobs.append(rt.ingest.ingest_path(WS, p))
        assert [j.status for j in jobs] == ["succeeded", "succeeded"]
        lot = jobs[0].lot_id
        _same(
            final_dies(rt.catalog, rt.lake, WS, lot, jobs[0].job_id),
            rt.analytics.job_final_dies(WS, lot, jobs[0].job_id),
        )
        # the second snapshot holds both sublots' dies at every place: the view's order between them is its own
        assert final_dies(rt.catalog, rt.lake, WS, lot, jobs[1].job_id) is None
        files = lake_adapters(lambda: rt.analytics, rt.catalog, lake=rt.lake)["lake_maps"](WS, lot, jobs[1].job_id)
        view = lake_adapters(lambda: rt.analytics)["lake_maps"](WS, lot, jobs[1].job_id)
        assert list(files) == list(view) == ["W01", "W02"]
        for w in view:
            assert len(files[w][0].x) == len(view[w][0].x) == 2 * len(set(zip(view[w][0].x, view[w][0].y, strict=True)))
    finally:
        rt.close()


def test_no_pyarrow_or_no_snapshot_of_the_lot(one_file, monkeypatch) -> None:
    data, lot, job = one_file
    rt = make_runtime(data)
    try:
        assert final_dies(rt.catalog, rt.lake, WS, "OTHER-LOT", job) is None
        assert final_dies(rt.catalog, rt.lake, WS, lot, "job_01J00000000000000000000000") is None
        with pytest.raises(NotFound):  # the view reports it, as before
            lake_adapters(lambda: rt.analytics, rt.catalog, lake=rt.lake)["lake_maps"](WS, "OTHER-LOT", job)
        assert final_dies(rt.catalog, rt.lake, WS, lot, job) is not None
        monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # a function that carries DuckDB only
        assert final_dies(rt.catalog, rt.lake, WS, lot, job) is None
    finally:
        rt.close()


def test_a_cli_ingest_classifies_on_publish_without_the_parts_view(tmp_path) -> None:
    """A fresh ``stratum ingest`` process of a wafer-sort file stores each wafer's classification and never loads
    the analytics service, the query engine (the DuckDB views) or DuckDB: pyarrow writes the lake objects."""
    (path,) = write_lot(_spec(), tmp_path / "stdf").paths
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(STRATUM_BACKEND="local", STRATUM_DATA_DIR=str(data))
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stratum.cli", "ingest", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert {"stratum.query.final_dies", "stratum.patterns.classifier"} <= modules
    assert sorted(m for m in modules if m.startswith(("stratum.analytics", "stratum.query.engine", "duckdb"))) == []
    job = json.loads(p.stdout)
    rt = make_runtime(data)
    try:
        rows = PatternStore(rt.meta).rows(WS)
        assert sorted({(r[0], r[1], r[2]) for r in rows}) == [(job["lot_id"], w, job["job_id"]) for w in ("W01", "W02")]
        keys = [o.key for o in rt.lake.list(f"workspaces/{WS}/lake/wafer_patterns_final/")]
        assert len(keys) == 2
    finally:
        rt.close()


def test_a_corpus_ingest_writes_the_lake_objects_without_duckdb(tmp_path) -> None:
    """A fresh ``stratum ingest`` of a real wafer-sort file (the a530's one wafer) writes the stored classification's
    lake object with pyarrow, never importing DuckDB; ``stratum sql`` afterwards (DuckDB, the store's rows) answers
    with the same families as that object (what Athena reads) and the store."""
    src = corpus_file("teradyne_a530_ws_be_lot3.stdf.gz")
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(STRATUM_BACKEND="local", STRATUM_DATA_DIR=str(data))

    def cli(*argv: str, importtime: bool = False) -> subprocess.CompletedProcess:
        x = ["-X", "importtime"] if importtime else []
        return subprocess.run(
            [sys.executable, *x, "-m", "stratum.cli", *argv], capture_output=True, text=True, timeout=300, env=env
        )

    p = cli("ingest", "--json", str(src), importtime=True)
    assert p.returncode == 0, p.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert {"stratum.lake.final_patterns", "pyarrow.parquet"} <= modules
    assert sorted(m for m in modules if m.split(".")[0] == "duckdb") == []
    job = json.loads(p.stdout)
    assert (job["status"], job["lot_id"]) == ("succeeded", "GAL-LOT")

    rt = make_runtime(data)
    try:
        stored = PatternStore(rt.meta).rows(WS)
        (obj,) = rt.lake.list(f"workspaces/{WS}/lake/wafer_patterns_final/")
        lake = pq.read_table(rt.lake.uri(obj.key))
    finally:
        rt.close()
    assert pq.ParquetFile(rt.lake.uri(obj.key)).metadata.created_by.startswith("parquet-cpp-arrow")
    assert sorted({(r[0], r[1], r[2]) for r in stored}) == [("GAL-LOT", "GAL-LOT-03", job["job_id"])]
    assert lake.column("wafer_id").to_pylist() == ["GAL-LOT-03"] * len(stored)
    families = sorted(
        {f: lake.column("family").to_pylist().count(f) for f in lake.column("family").to_pylist()}.items()
    )
    assert families == sorted({f: [r[4] for r in stored].count(f) for f in {r[4] for r in stored}}.items())

    q = cli("sql", "--format", "json", "SELECT family, count(*) FROM wafer_patterns GROUP BY 1 ORDER BY 1")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout)["rows"] == [[f, n] for f, n in families]
