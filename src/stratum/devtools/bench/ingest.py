"""Ingest throughput against stdf-convert (each case in a fresh subprocess, so its peak RSS is its own)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stratum.devtools.bench import D10, DATA


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- single cases (run in a subprocess) -------------------------------------------------------------
# Both sides first convert a small warm-up file, untimed, so that one-off costs (imports, pyarrow's
# lazy kernel and writer initialisation) stay out of the figures: a long-lived worker pays them once.
WARMUP = DATA / "warmup_2mb.stdf"


def warmup_file() -> Path:
    from stratum.devtools.stdf.benchfile import write_bench_file

    DATA.mkdir(parents=True, exist_ok=True)
    if not WARMUP.exists():
        write_bench_file(WARMUP, 2_000_000, seed=2)
    return WARMUP


def case_stratum(path: str) -> dict:
    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    with tempfile.TemporaryDirectory(dir=DATA) as d:
        rt = Runtime.from_settings(settings_for(d, backend="local"))
        warm = rt.ingest.ingest_path("warmup", str(warmup_file()))
        assert warm.status == "succeeded", warm.error
        t0 = time.perf_counter()
        job = rt.ingest.ingest_path("default", path)
        el = time.perf_counter() - t0
        out_bytes = sum(o.bytes for o in job.outputs.values())
        assert job.status == "succeeded", job.error
        return {
            "seconds": el,
            "stdf_bytes": job.stdf_bytes,
            "parquet_bytes": out_bytes,
            "records": job.records,
            "rss_mb": _peak_rss_mb(),
            "timings": job.timings,
        }


def case_reference(path: str) -> dict:
    import pyarrow.parquet as pq
    import stdf_convert

    with tempfile.TemporaryDirectory(dir=DATA) as d:
        for name, t in stdf_convert.tables(str(warmup_file())).items():
            pq.write_table(t, Path(d) / f"warmup_{name}.parquet", compression="zstd")
        t0 = time.perf_counter()
        tables = stdf_convert.tables(path)
        t1 = time.perf_counter()
        out = 0
        for name, t in tables.items():
            p = Path(d) / f"{name}.parquet"
            pq.write_table(t, p, compression="zstd")
            out += p.stat().st_size
        el = time.perf_counter() - t0
        records = sum(t.num_rows for t in tables.values())
        return {
            "seconds": el,
            "read_seconds": t1 - t0,
            "parquet_bytes": out,
            "records": records,
            "rss_mb": _peak_rss_mb(),
        }


def _run_case(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "stratum.devtools.bench", "_case", kind, str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} on {path.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- ingest benchmark ------------------------------------------------------------------------------
def big_file(mb: int) -> Path:
    from stratum.devtools.stdf.benchfile import write_bench_file

    DATA.mkdir(parents=True, exist_ok=True)
    p = DATA / f"bench_{mb}mb.stdf"
    if not p.exists() or p.stat().st_size < mb * 1_000_000:
        print(f"generating {p.name} ({mb} MB) ...", flush=True)
        write_bench_file(p, mb * 1_000_000, seed=1)
    return p


def bench_ingest(runs: int, big_mb: int) -> dict:
    DATA.mkdir(parents=True, exist_ok=True)
    warmup_file()
    files = []
    if D10.exists():
        files.append(D10)
    else:
        print(f"skipping the D-10 case: {D10} not found (../shared/corpus absent)")
    files.append(big_file(big_mb))
    report: dict = {"runs": runs, "cases": []}
    for f in files:
        ours: list[dict] = []
        ref: list[dict] = []
        for i in range(runs):
            # alternate the order so neither side always runs on a warmer cache
            pair = (("stratum", ours), ("reference", ref)) if i % 2 == 0 else (("reference", ref), ("stratum", ours))
            for kind, sink in pair:
                r = _run_case(kind, f)
                sink.append(r)
                print(
                    f"  {f.name:42s} {kind:9s} run {i + 1}: {r['seconds']:6.2f} s, peak RSS {r['rss_mb']:6.0f} MB",
                    flush=True,
                )
        stdf_mb = ours[0]["stdf_bytes"] / 1e6
        med = statistics.median(r["seconds"] for r in ours)
        med_ref = statistics.median(r["seconds"] for r in ref)
        case = {
            "file": f.name,
            "stdf_mb": round(stdf_mb, 1),
            "records": ours[0]["records"],
            "stratum": {
                "median_s": round(med, 3),
                "mb_per_s": round(stdf_mb / med, 1),
                "peak_rss_mb": round(max(r["rss_mb"] for r in ours)),
                "parquet_mb": round(ours[0]["parquet_bytes"] / 1e6, 1),
                "all_s": [round(r["seconds"], 3) for r in ours],
            },
            "stdf_convert": {
                "median_s": round(med_ref, 3),
                "mb_per_s": round(stdf_mb / med_ref, 1),
                "peak_rss_mb": round(max(r["rss_mb"] for r in ref)),
                "parquet_mb": round(ref[0]["parquet_bytes"] / 1e6, 1),
                "all_s": [round(r["seconds"], 3) for r in ref],
            },
            "speed_ratio": round(med_ref / med, 2),
        }
        report["cases"].append(case)
    return report


def print_ingest(rep: dict) -> None:
    print(
        f"\nIngest (median of {rep['runs']} runs; ratio = stdf-convert time / Stratum time, "
        "> 1 means Stratum is faster)"
    )
    print(
        f"{'file':42s} {'MB':>7s} {'Stratum s':>10s} {'MB/s':>7s} {'RSS MB':>7s} {'ref s':>8s} {'MB/s':>7s} "
        f"{'RSS MB':>7s} {'ratio':>6s}"
    )
    for c in rep["cases"]:
        s, r = c["stratum"], c["stdf_convert"]
        print(
            f"{c['file']:42s} {c['stdf_mb']:7.1f} {s['median_s']:10.2f} {s['mb_per_s']:7.1f} {s['peak_rss_mb']:7d} "
            f"{r['median_s']:8.2f} {r['mb_per_s']:7.1f} {r['peak_rss_mb']:7d} {c['speed_ratio']:6.2f}"
        )
