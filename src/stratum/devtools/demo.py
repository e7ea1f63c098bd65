"""``stratum demo``: sample lots on the embedded default, end to end, with no AWS account.

Generates realistic STDF files with the writer (a wafer-sort lot of several wafers over two files
plus a retest file, a multi-site final-test lot in big-endian gzip, and one deliberately truncated
file), drops them into ``<data-dir>/incoming/`` and ingests them through the same drop-folder service
``stratum serve`` watches, then summarises what landed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.ingest.watcher import DropWatcher
from stratum.models import Job
from stratum.runtime import Runtime

DEMO_WORKSPACE = "default"


@dataclass
class DemoResult:
    jobs: list[Job] = field(default_factory=list)
    lots: list[dict] = field(default_factory=list)
    failed: list[Job] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def demo_specs(start: int = 1_795_000_000) -> list[LotSpec]:
    return [
        LotSpec(
            lot_id="DEMO-WS-1042",
            sublot_id="1042.1",
            part_type="XC7-200",
            program="XC7_WS_SORT",
            job_rev="3.2",
            tester_type="SIM-93K",
            node_name="sort-tester-04",
            test_code="WS1",
            wafers=("W01", "W02", "W03", "W04", "W05", "W06"),
            die_diameter=30,
            sites=4,
            head=1,
            files=2,
            cluster=(-6.0, 5.0, 3.5),
            retest_fraction=0.4,
            retest_file=True,
            retest_file_fraction=0.6,
            tests=tuple(default_tests(16, n_mpr=1, n_ftr=2)),
            start_time=start,
            seed=11,
        ),
        LotSpec(
            lot_id="DEMO-FT-2203",
            sublot_id="2203.A",
            part_type="XC7-200-PKG",
            program="XC7_FT_HOT",
            job_rev="1.7",
            tester_type="SIM-IGXL",
            node_name="ft-handler-02",
            test_code="FT1",
            wafers=(),
            parts=640,
            sites=8,
            site_base=0,
            head=0,
            stop_on_fail=True,
            retest_fraction=0.5,
            byte_order="big",
            compression="gzip",
            tests=tuple(default_tests(12, n_mpr=0, n_ftr=1)),
            start_time=start + 86_400,
            seed=23,
        ),
    ]


def run_demo(rt: Runtime, workdir: Path | None = None) -> DemoResult:
    """Write the demo files into the drop folder and ingest them; returns what happened."""
    out = DemoResult()
    tmp = Path(workdir or tempfile.mkdtemp(prefix="stratum-demo-"))
    incoming = rt.settings.data_dir / "incoming" / DEMO_WORKSPACE / "demo"
    incoming.mkdir(parents=True, exist_ok=True)
    try:
        for spec in demo_specs():
            truth = write_lot(spec, tmp / spec.lot_id)
            for p in truth.paths:
                shutil.copy2(p, incoming / p.name)
                out.files.append(p.name)
        # a transfer that broke off: the first file of the sort lot, cut inside a record
        first = incoming / out.files[0]
        data = first.read_bytes()
        bad = incoming / "DEMO-WS-1042_WS1_01_incomplete-transfer.stdf"
        bad.write_bytes(data[: len(data) * 2 // 3 + 5])
        out.files.append(bad.name)
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    watcher = DropWatcher(rt.drop_processor)
    out.jobs = watcher.run_until_idle()
    out.failed = [j for j in out.jobs if j.status == "failed"]
    res = rt.sql.run(
        DEMO_WORKSPACE,
        "SELECT lot_id, part_type, file_count, wafer_count, part_count, good_count, "
        "yield, first_pass_yield, retest_count, job_id FROM lots ORDER BY lot_id",
        limit=1000,
    )
    names = [c["name"] for c in res.columns]
    out.lots = [dict(zip(names, r, strict=False)) for r in res.rows]
    return out
