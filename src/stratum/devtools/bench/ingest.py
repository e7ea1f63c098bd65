"""Ingest throughput against stdf-convert (each case in a fresh subprocess, so its peak RSS is its own)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from stratum.devtools.bench import D10, DATA


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _runq_s() -> float:
    """Seconds this thread has waited for a core while runnable so far (Linux schedstat; 0 elsewhere). The main
    thread runs the record walk and the gathers, the critical path: its wait is mostly what other processes'
    load added to the wall-clock figure."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


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
        c0 = time.process_time()
        q0 = _runq_s()
        job = rt.ingest.ingest_path("default", path)
        el = time.perf_counter() - t0
        cpu = time.process_time() - c0
        waited = _runq_s() - q0
        out_bytes = sum(o.bytes for o in job.outputs.values())
        assert job.status == "succeeded", job.error
        return {
            "seconds": el,
            "cpu_seconds": cpu,
            "stdf_bytes": job.stdf_bytes,
            "parquet_bytes": out_bytes,
            "records": job.records,
            "rss_mb": _peak_rss_mb(),
            "waited_s": waited,
            "timings": job.timings,
        }


def case_reference(path: str) -> dict:
    import pyarrow.parquet as pq
    import stdf_convert

    with tempfile.TemporaryDirectory(dir=DATA) as d:
        for name, t in stdf_convert.tables(str(warmup_file())).items():
            pq.write_table(t, Path(d) / f"warmup_{name}.parquet", compression="zstd")
        t0 = time.perf_counter()
        c0 = time.process_time()
        q0 = _runq_s()
        tables = stdf_convert.tables(path)
        t1 = time.perf_counter()
        c1 = time.process_time()
        out = 0
        for name, t in tables.items():
            p = Path(d) / f"{name}.parquet"
            pq.write_table(t, p, compression="zstd")
            out += p.stat().st_size
        el = time.perf_counter() - t0
        cpu = time.process_time() - c0
        waited = _runq_s() - q0
        records = sum(t.num_rows for t in tables.values())
        return {
            "seconds": el,
            "cpu_seconds": cpu,
            "read_seconds": t1 - t0,
            "read_cpu_seconds": c1 - c0,
            "write_cpu_seconds": cpu - (c1 - c0),
            "parquet_bytes": out,
            "records": records,
            "rss_mb": _peak_rss_mb(),
            "waited_s": waited,
        }


def _run_case(kind: str, path: Path, cpus: str | None = None) -> dict:
    """One case in a fresh process; ``cpus`` pins it to those cores (``taskset -c``), e.g. "0" or "0,1"."""
    pin = ["taskset", "-c", cpus] if cpus else []
    out = subprocess.run(
        [*pin, sys.executable, "-m", "stratum.devtools.bench", "_case", kind, str(path)],
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


STAGES = (
    ("inflate_cpu_s", "inflate"),
    ("walk_cpu_s", "record walk"),
    ("decode_cpu_s", "gathers"),
    ("arrow_cpu_s", "Arrow"),
    ("encode_cpu_s", "Parquet encode"),
)


def _pair_runs(f: Path, runs: int, cpus: str | None, label: str) -> tuple[list[dict], list[dict]]:
    ours: list[dict] = []
    ref: list[dict] = []
    for i in range(runs):
        # alternate the order so neither side always runs on a warmer cache
        pair = (("stratum", ours), ("reference", ref)) if i % 2 == 0 else (("reference", ref), ("stratum", ours))
        for kind, sink in pair:
            r = _run_case(kind, f, cpus)
            sink.append(r)
            print(
                f"  {f.name:42s} {label:8s} {kind:9s} run {i + 1}: {r['seconds']:6.2f} s, "
                f"CPU {r['cpu_seconds']:6.2f} s, peak RSS {r['rss_mb']:6.0f} MB, "
                f"main thread waited for a core {r['waited_s']:5.2f} s",
                flush=True,
            )
    return ours, ref


def _med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _side(rows: list[dict], stdf_mb: float, stages: dict) -> dict:
    med = _med(rows, "seconds")
    return {
        "median_s": round(med, 3),
        "cpu_s": round(_med(rows, "cpu_seconds"), 3),
        "waited_s": round(_med(rows, "waited_s"), 3),  # the (main) thread's wait for a core: the load's share
        "mb_per_s": round(stdf_mb / med, 1),
        "peak_rss_mb": round(max(r["rss_mb"] for r in rows)),
        "parquet_mb": round(rows[0]["parquet_bytes"] / 1e6, 1),
        "all_s": [round(r["seconds"], 3) for r in rows],
        "stages": stages,
    }


def _stage(sec: float, stdf_mb: float) -> dict:
    return {"cpu_s": round(sec, 3), "mb_per_s": round(stdf_mb / sec, 1) if sec > 0 else None}


def _summary(f: Path, ours: list[dict], ref: list[dict]) -> dict:
    stdf_mb = ours[0]["stdf_bytes"] / 1e6
    stages = {}
    for key, name in STAGES:
        vals = [r["timings"][key] for r in ours if key in r.get("timings", {})]
        if vals:
            stages[name] = _stage(statistics.median(vals), stdf_mb)
    ref_stages = {
        name: _stage(_med(ref, key), stdf_mb)
        for key, name in (("read_cpu_seconds", "stdf-convert read"), ("write_cpu_seconds", "Parquet write"))
    }
    return {
        "file": f.name,
        "stdf_mb": round(stdf_mb, 1),
        "records": ours[0]["records"],
        "stratum": _side(ours, stdf_mb, stages),
        "stdf_convert": _side(ref, stdf_mb, ref_stages),
        # ratios of the unrounded medians
        "speed_ratio": round(_med(ref, "seconds") / _med(ours, "seconds"), 2),  # > 1: Stratum is faster (wall clock)
        "cpu_ratio": round(_med(ref, "cpu_seconds") / _med(ours, "cpu_seconds"), 2),  # > 1: Stratum uses less CPU
    }


def bench_ingest(runs: int, big_mb: int, cores: tuple[str, ...] = ("0", "0,1")) -> dict:
    """Both sides on D-10 and on the generated ``big_mb`` file, unpinned; then D-10 pinned to each entry of
    ``cores`` (``taskset -c``) to show how the figures scale with cores."""
    DATA.mkdir(parents=True, exist_ok=True)
    warmup_file()
    files = []
    if D10.exists():
        files.append(D10)
    else:
        print(f"skipping the D-10 case: {D10} not found (../shared/corpus absent)")
    files.append(big_file(big_mb))
    # wall-clock figures only mean something on a quiet machine: the load average is kept with them
    report: dict = {"runs": runs, "cases": [], "cores": [], "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    for f in files:
        ours, ref = _pair_runs(f, runs, None, "")
        report["cases"].append(_summary(f, ours, ref))
    scaled = files[0]
    for cpus in cores if shutil.which("taskset") else ():
        ours, ref = _pair_runs(scaled, runs, cpus, f"cpu {cpus}")
        report["cores"].append({"cpus": cpus, "n": len(cpus.split(",")), **_summary(scaled, ours, ref)})
    report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def print_ingest(rep: dict) -> None:
    print(
        f"\nIngest (median of {rep['runs']} runs, each in a fresh process; ratio = stdf-convert time / Stratum time, "
        "> 1 means Stratum is faster; CPU = process CPU seconds of the timed part)"
    )
    if "load_avg_start" in rep:
        print(
            f"load average (1, 5, 15 min) at the start {rep['load_avg_start']}, at the end {rep.get('load_avg_end')} "
            f"on {os.cpu_count()} cores: above the core count, wall-clock ratios measure the share of the machine"
        )
    print(
        "wait = seconds the main thread (Stratum's walk and gathers) waited for a core while runnable: other "
        "processes' load (and Stratum's own writer and inflate threads when they outnumber the cores)"
    )
    print(
        f"{'file':42s} {'MB':>7s} {'Stratum s':>10s} {'CPU s':>6s} {'wait':>5s} {'MB/s':>7s} {'RSS MB':>7s} "
        f"{'ref s':>7s} {'CPU s':>6s} {'wait':>5s} {'MB/s':>7s} {'RSS MB':>7s} {'ratio':>6s} {'CPU ratio':>9s}"
    )
    for c in rep["cases"]:
        s, r = c["stratum"], c["stdf_convert"]
        print(
            f"{c['file']:42s} {c['stdf_mb']:7.1f} {s['median_s']:10.2f} {s['cpu_s']:6.2f} {s.get('waited_s', 0):5.2f} "
            f"{s['mb_per_s']:7.1f} {s['peak_rss_mb']:7d} {r['median_s']:7.2f} {r['cpu_s']:6.2f} "
            f"{r.get('waited_s', 0):5.2f} {r['mb_per_s']:7.1f} {r['peak_rss_mb']:7d} {c['speed_ratio']:6.2f} "
            f"{c['cpu_ratio']:9.2f}"
        )
    print("\nper stage: CPU seconds (median) and STDF MB per CPU second of that stage")
    for c in rep["cases"]:
        parts = [f"{k} {v['cpu_s']:.2f} s = {v['mb_per_s']} MB/s" for k, v in c["stratum"]["stages"].items()]
        print(f"  {c['file']}\n    Stratum:      " + "; ".join(parts))
        parts = [f"{k} {v['cpu_s']:.2f} s = {v['mb_per_s']} MB/s" for k, v in c["stdf_convert"]["stages"].items()]
        print("    stdf-convert: " + "; ".join(parts))
    if rep.get("cores"):
        print("\nscaling with cores (taskset -c; median wall seconds)")
        print(
            f"{'file':42s} {'cores':>5s} {'Stratum s':>10s} {'CPU s':>6s} {'wait':>5s} {'ref s':>7s} {'wait':>5s} "
            f"{'ratio':>6s}"
        )
        for c in rep["cores"]:
            s, r = c["stratum"], c["stdf_convert"]
            print(
                f"{c['file']:42s} {c['n']:5d} {s['median_s']:10.2f} {s['cpu_s']:6.2f} {s.get('waited_s', 0):5.2f} "
                f"{r['median_s']:7.2f} {r.get('waited_s', 0):5.2f} {c['speed_ratio']:6.2f}"
            )
        by_n = {c["n"]: c for c in rep["cores"]}
        if 1 in by_n and 2 in by_n:
            one, two = by_n[1], by_n[2]
            print(
                f"  2 cores vs 1: Stratum {one['stratum']['median_s'] / two['stratum']['median_s']:.2f}x faster, "
                f"stdf-convert {one['stdf_convert']['median_s'] / two['stdf_convert']['median_s']:.2f}x"
            )
