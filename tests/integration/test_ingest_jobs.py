"""Ingest jobs: lifecycle, bad input, injected faults, duplicates, idempotency and concurrency.

Every failure must end as a failed job with a clear error, leave no visible partial data, and leave the
lot's previous snapshot answering the same queries.
"""

from __future__ import annotations

import threading

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.models import JobSource
from stratum.query.engine import Scope

QUERIES = [
    "SELECT part_count, good_count, first_pass_count, retest_count FROM lots",
    "SELECT wafer_id, part_count, good_count FROM wafers ORDER BY 1",
    "SELECT bin_type, bin_num, part_count FROM bins ORDER BY 1, 2",
    "SELECT count(*), sum(result) FROM results WHERE valid AND is_final",
]


def _answers(rt, lot_id="FLT-LOT"):
    with rt.engine.session("default", Scope(lot_id=lot_id)) as s:
        return [s.rows(q) for q in QUERIES]


def _lake_keys(rt):
    return sorted(i.key for i in rt.lake.list("workspaces/"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stdf")
    spec = LotSpec(
        lot_id="FLT-LOT",
        wafers=("W01", "W02"),
        files=2,
        die_diameter=12,
        seed=3,
        tests=tuple(default_tests(8, n_mpr=1, n_ftr=1)),
    )
    truth = write_lot(spec, d)
    return truth.paths


@pytest.fixture
def base(runtime, files):
    """A runtime whose lot holds the first file."""
    job = runtime.ingest.ingest_path("default", files[0])
    assert job.status == "succeeded"
    return runtime, job


def _assert_untouched(rt, before_answers, before_keys, before_active):
    assert _answers(rt) == before_answers
    assert _lake_keys(rt) == before_keys
    assert rt.catalog.get_lot("default", "FLT-LOT").active_job_id == before_active


def test_job_lifecycle_and_record(base):
    rt, job = base
    assert job.status == "succeeded"
    assert job.lot_id == "FLT-LOT"
    assert job.started_at and job.finished_at and job.created_at
    assert job.bytes_read == job.size > 0
    assert job.records and job.record_counts["PRR"] == job.parts
    assert job.rows["parts"] == job.parts and job.rows["results"] > 0
    assert job.sha256 and len(job.sha256) == 64
    assert job.timings["total_s"] >= job.timings["parse_write_s"] > 0
    stages = ("inflate_cpu_s", "walk_cpu_s", "decode_cpu_s", "arrow_cpu_s", "encode_cpu_s")
    assert set(job.timings) == {"parse_write_s", "finish_s", "publish_s", "total_s", *stages}
    assert all(job.timings[k] >= 0 for k in stages)
    assert job.snapshot and job.snapshot[0].job_id == job.job_id
    listed, _ = rt.catalog.list_jobs("default")
    assert [j.job_id for j in listed] == [job.job_id]


@pytest.mark.parametrize("case", ["truncated", "not_stdf", "empty", "bad_version"])
def test_bad_input_fails_cleanly(base, files, tmp_path, case):
    rt, first = base
    before = (_answers(rt), _lake_keys(rt), first.job_id)
    data = files[1].read_bytes()
    payload = {
        "truncated": data[: len(data) // 2 + 3],
        "not_stdf": b"%PDF-1.7 this is not an STDF file\n" * 10,
        "empty": b"",
        "bad_version": data[:5] + b"\x03" + data[6:],
    }[case]
    p = tmp_path / f"{case}.stdf"
    p.write_bytes(payload)
    job = rt.ingest.ingest_path("default", p)
    assert job.status == "failed"
    assert job.error is not None
    expected = {
        "truncated": "truncated",
        "not_stdf": "not_stdf",
        "empty": "not_stdf",
        "bad_version": "unsupported_version",
    }[case]
    assert job.error.code == expected
    if case == "truncated":
        assert job.error.offset and job.error.offset > 0
        assert job.error.records_before and job.error.records_before > 0
        assert "truncated" in job.error.message and "byte offset" in job.error.message
    assert job.outputs == {} and job.rows == {}
    _assert_untouched(rt, *before)


def test_truncated_accepted_is_partial(base, files, tmp_path):
    rt, _ = base
    data = files[1].read_bytes()
    p = tmp_path / "cut.stdf"
    p.write_bytes(data[: int(len(data) * 0.7)])
    job = rt.ingest.ingest_path("default", p, options=rt.ingest.default_options(accept_truncated=True))
    assert job.status == "partial"
    assert job.warnings[0].code == "truncated"
    assert job.parts and job.parts > 0
    # the complete parts are published: every part row has its PRR, no partial part leaks in
    with rt.engine.session("default", Scope(lot_id="FLT-LOT")) as s:
        n = s.rows("SELECT count(*) FROM parts WHERE job_id = ?", [job.job_id])[0][0]
        orphans = s.rows(
            "SELECT count(*) FROM results WHERE job_id = ? AND part_id IS NULL AND x IS NULL", [job.job_id]
        )[0][0]
    assert n == job.parts and orphans == 0


class FailingStore:
    """A real store whose writes of one table fail after ``after`` bytes (everything else delegates)."""

    def __init__(self, inner, table: str, after: int = 0) -> None:
        self.inner, self.table, self.after = inner, table, after

    def open_write(self, key):
        w = self.inner.open_write(key)
        if f"/lake/{self.table}/" not in key:
            return w
        budget = [self.after]
        orig = w.write

        def write(data):
            budget[0] -= len(data)
            if budget[0] < 0:
                raise OSError("injected fault: the disk went away")
            return orig(data)

        w.write = write
        return w

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("table", ["results", "parts", "lot_files"])
def test_fault_midway_through_writing_publishes_nothing(base, files, table):
    from stratum.ingest.service import IngestService

    rt, first = base
    before = (_answers(rt), _lake_keys(rt), first.job_id)
    svc = IngestService(rt.catalog, FailingStore(rt.lake, table, after=1000), rt.settings)
    job = svc.ingest_path("default", files[1])
    assert job.status == "failed"
    assert job.error.code == "internal_error"
    assert "previous snapshot is unchanged" in job.error.message
    assert "Traceback" not in job.error.message and "/" not in job.error.message.split("(")[0]
    _assert_untouched(rt, *before)
    # the same file ingests fine afterwards (the failed job claimed nothing)
    ok = rt.ingest.ingest_path("default", files[1])
    assert ok.status == "succeeded"
    assert rt.catalog.get_lot("default", "FLT-LOT").active_job_id == ok.job_id


def test_deadline_fails_the_job_and_publishes_nothing(base, files):
    """A worker whose time runs out (a Lambda near its limit) fails the job with ingest_timeout; a later
    run of the same job (e.g. where time is not limited) does not get the half-read file."""
    import time

    from stratum.ingest.service import InputHandle

    rt, first = base
    before = (_answers(rt), _lake_keys(rt), first.job_id)
    p = files[1]
    job, _ = rt.ingest.create_job("default", p.name, JobSource(kind="cli", path=str(p)), size=p.stat().st_size)
    handle = InputHandle(open=lambda: open(p, "rb"), size=p.stat().st_size)
    failed = rt.ingest.run_job("default", job.job_id, handle, deadline=time.monotonic() - 1)
    assert failed.status == "failed" and failed.error.code == "ingest_timeout"
    assert "nothing was published" in failed.error.message and "MB" in failed.error.message
    assert failed.outputs == {} and failed.rows == {}
    _assert_untouched(rt, *before)
    retried = rt.ingest.run_job("default", job.job_id, handle, retry_failed=frozenset({"ingest_timeout"}))
    assert retried.status == "succeeded" and retried.attempts == 2


def test_fault_during_publish_removes_files(base, files, monkeypatch):
    rt, first = base
    before = (_answers(rt), _lake_keys(rt), first.job_id)

    def boom(*a, **k):
        raise RuntimeError("metadata store unavailable")

    monkeypatch.setattr(rt.catalog, "publish", boom)
    job = rt.ingest.ingest_path("default", files[1])
    assert job.status == "failed"
    _assert_untouched(rt, *before)


def test_duplicate_file_adds_nothing(base, files, tmp_path):
    rt, first = base
    before = _answers(rt)
    copy = tmp_path / "renamed-copy.stdf"
    copy.write_bytes(files[0].read_bytes())
    dup = rt.ingest.ingest_path("default", copy)
    assert dup.status == "duplicate"
    assert dup.duplicate_of == first.job_id
    assert dup.lot_id == "FLT-LOT" and dup.rows == {}
    assert _answers(rt) == before
    assert [m.job_id for m in rt.catalog.get_lot("default", "FLT-LOT").members] == [first.job_id]


def test_same_object_delivered_twice_is_one_job(runtime, files):
    rt = runtime
    claims = [("WS#default#OBJ", "bucket/incoming/default/a.stdf#etag1")]
    j1, created1 = rt.ingest.create_job("default", "a.stdf", JobSource(kind="drop", key="a.stdf"), claims=claims)
    j2, created2 = rt.ingest.create_job("default", "a.stdf", JobSource(kind="drop", key="a.stdf"), claims=claims)
    assert created1 and not created2 and j1.job_id == j2.job_id
    from stratum.ingest.service import InputHandle

    h = InputHandle(open=lambda: open(files[0], "rb"))
    done = rt.ingest.run_job("default", j1.job_id, h)
    again = rt.ingest.run_job("default", j1.job_id, h)
    assert done.status == again.status == "succeeded"
    assert len(rt.catalog.get_lot("default", "FLT-LOT").members) == 1


def test_concurrent_ingests_of_one_lot(runtime, files):
    rt = runtime
    results = []

    def go(p):
        results.append(rt.ingest.ingest_path("default", p))

    threads = [threading.Thread(target=go, args=(p,)) for p in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j.status for j in results) == ["succeeded"] * len(files)
    lot = rt.catalog.get_lot("default", "FLT-LOT")
    assert sorted(m.job_id for m in lot.members) == sorted(j.job_id for j in results)
    assert sorted(m.publish_seq for m in lot.members) == list(range(1, len(files) + 1))
    # each job's own snapshot contains itself and only jobs published before it
    for j in results:
        snap = [m.job_id for m in j.snapshot]
        assert snap[-1] == j.job_id and len(snap) == j.publish_seq
