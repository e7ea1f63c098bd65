"""An analytics request reads the metadata store once: the lot item (or, for a pinned snapshot, the job)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.errors import NotFound
from tests.fixtures.runtime import make_runtime

LOT = "READS-1"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    truth = write_lot(
        LotSpec(lot_id=LOT, wafers=("W01", "W02"), die_diameter=8, tests=tuple(default_tests(4))), d / "stdf"
    )
    rt = make_runtime(d / "data")
    jobs = [rt.ingest.ingest_path("default", p) for p in truth.paths]
    assert [j.status for j in jobs] == ["succeeded"] * len(jobs)
    yield rt, jobs[-1].job_id
    rt.close()


def _count_reads(rt, monkeypatch) -> list[str]:
    calls: list[str] = []
    meta = rt.meta
    for name in ("get", "query"):
        real = getattr(meta, name)

        def counted(*a: Any, _real: Callable = real, _name: str = name, **k: Any) -> Any:
            calls.append(_name)
            return _real(*a, **k)

        monkeypatch.setattr(meta, name, counted)
    return calls


REQUESTS: dict[str, Callable[[Any, str | None], Any]] = {
    "wafers": lambda svc, snap: svc.wafers("default", LOT, snap),
    "wafer_map": lambda svc, snap: svc.wafer_map("default", LOT, "W01", snapshot_job_id=snap),
    "tests": lambda svc, snap: svc.tests("default", LOT, snapshot_job_id=snap),
    "test_results": lambda svc, snap: svc.test_results("default", LOT, 1000, snapshot_job_id=snap, limit=5),
    "capability": lambda svc, snap: svc.capability("default", LOT, snapshot_job_id=snap),
    "bins": lambda svc, snap: svc.bins("default", LOT, snapshot_job_id=snap),
}


@pytest.mark.parametrize("pinned", [False, True], ids=["active", "pinned"])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_one_metadata_read_per_request(seeded, monkeypatch, name: str, pinned: bool) -> None:
    rt, job_id = seeded
    svc = rt.analytics
    REQUESTS[name](svc, job_id if pinned else None)  # warm: the first call also builds the DuckDB session
    calls = _count_reads(rt, monkeypatch)
    REQUESTS[name](svc, job_id if pinned else None)
    # a wafer map also reads the wafer's stored pattern classifications (its caption): one query of the lot's
    assert calls == (["get", "query"] if name == "wafer_map" else ["get"])


def test_an_unknown_lot_is_reported_before_a_bad_snapshot(seeded) -> None:
    rt, job_id = seeded
    with pytest.raises(NotFound, match="lot 'NOPE' not found"):
        rt.analytics.wafers("default", "NOPE", job_id)
    with pytest.raises(NotFound, match="snapshot job 'job_nope' not found"):
        rt.analytics.wafers("default", LOT, "job_nope")
