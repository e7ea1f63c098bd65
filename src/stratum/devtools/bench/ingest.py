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
from collections.abc import Callable
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


# -- paired runs ------------------------------------------------------------------------------------
# The shared 2-core machine moves the same run by +-40 % within minutes, so a figure is only read against the
# reference measured right beside it: runs come in pairs (Stratum, reference) whose order alternates (AB, BA, AB,
# ...) so neither side always runs first or always on a warmer machine, and the first pair is an untimed warm-up
# of both sides (the input file in the page cache for both, the interpreter and its libraries read once). The
# ratio of each pair is taken, and the median of those ratios reported with their min-max spread next to each
# side's median and spread of wall and CPU seconds.
Runner = Callable[[], dict]


def run_pairs(ours: Runner, ref: Runner, runs: int, *, warmup: bool = True, log=None) -> tuple[list[dict], list[dict]]:
    """``runs`` timed pairs of ``ours()`` and ``ref()`` (each returns at least seconds and cpu_seconds), after
    one untimed pair when ``warmup``. Stratum is A, the reference B: the sequence is A B (warm-up) | B A | A B |
    ..., each pair in the order opposite to the pair before it (without the warm-up it starts with B A).
    ``log(kind, pair index, row)`` sees every run (index -1 for the warm-up)."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    timed: dict[str, list[dict]] = {"stratum": [], "reference": []}
    sides = {"stratum": ours, "reference": ref}
    for i in range(-1 if warmup else 0, runs):
        order = ("stratum", "reference") if i % 2 else ("reference", "stratum")
        for kind in order:
            r = sides[kind]()
            if log is not None:
                log(kind, i, r)
            if i >= 0:
                timed[kind].append(r)
    return timed["stratum"], timed["reference"]


def pair_stats(ours: list[dict], ref: list[dict]) -> dict:
    """Per side: median, min and max wall seconds and median CPU seconds; per pair (same index): the ratio
    reference / Stratum (> 1: Stratum is faster) of wall and of CPU seconds, with their median and min-max."""

    def side(rows: list[dict]) -> dict:
        wall = [r["seconds"] for r in rows]
        return {
            "median_s": round(statistics.median(wall), 3),
            "min_s": round(min(wall), 3),
            "max_s": round(max(wall), 3),
            "cpu_s": round(statistics.median(r["cpu_seconds"] for r in rows), 3),
            "cpu_min_s": round(min(r["cpu_seconds"] for r in rows), 3),
            "cpu_max_s": round(max(r["cpu_seconds"] for r in rows), 3),
            "all_s": [round(x, 3) for x in wall],
            "all_cpu_s": [round(r["cpu_seconds"], 3) for r in rows],
        }

    def ratios(key: str) -> dict:
        rs = [b[key] / a[key] for a, b in zip(ours, ref, strict=True)]
        return {
            "median": round(statistics.median(rs), 3),
            "min": round(min(rs), 3),
            "max": round(max(rs), 3),
            "all": [round(x, 3) for x in rs],
        }

    return {
        "pairs": len(ours),
        "stratum": side(ours),
        "reference": side(ref),
        "ratio": ratios("seconds"),
        "cpu_ratio": ratios("cpu_seconds"),
    }


def _pair_runs(
    f: Path, runs: int, cpus: str | None, label: str, *, warmup: bool = True
) -> tuple[list[dict], list[dict]]:
    def log(kind: str, i: int, r: dict) -> None:
        run = "warm-up" if i < 0 else f"run {i + 1}"
        print(
            f"  {f.name:42s} {label:8s} {kind:9s} {run:7s}: {r['seconds']:6.2f} s, "
            f"CPU {r['cpu_seconds']:6.2f} s, peak RSS {r['rss_mb']:6.0f} MB, "
            f"main thread waited for a core {r['waited_s']:5.2f} s",
            flush=True,
        )

    return run_pairs(
        lambda: _run_case("stratum", f, cpus), lambda: _run_case("reference", f, cpus), runs, warmup=warmup, log=log
    )


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
        "paired": pair_stats(ours, ref),  # per-pair ratios: their median and spread
    }


# -- the same as whole processes, as a user runs them --------------------------------------------------------
# the reference: what a user of stdf-convert runs
STDF_CONVERT = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
import stdf_convert
for name, t in stdf_convert.tables(sys.argv[1]).items():
    pq.write_table(t, Path(sys.argv[2]) / f"{name}.parquet", compression="zstd")
"""


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_process(argv: list[str]) -> dict:
    """One whole process: wall seconds and its CPU seconds (user + system, its children included)."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return {"seconds": wall, "cpu_seconds": _children_cpu() - c0}


def stratum_cli() -> list[str]:
    script = Path(sys.executable).parent / "stratum"  # the console script, as a user runs it
    return [str(script)] if script.exists() else [sys.executable, "-m", "stratum"]


def bench_process(f: Path, runs: int) -> dict:
    """``stratum ingest FILE`` into an empty data directory against a Python process running stdf-convert →
    zstd Parquet, both whole processes, ``runs`` timed pairs after a warm-up pair (``run_pairs``)."""

    def in_fresh_dir(argv_of: Callable[[str], list[str]]) -> Runner:
        def run() -> dict:
            with tempfile.TemporaryDirectory(dir=DATA) as d:
                return run_process(argv_of(d))

        return run

    def log(kind: str, i: int, r: dict) -> None:
        run = "warm-up" if i < 0 else f"run {i + 1}"
        print(f"  {f.name:42s} process  {kind:9s} {run:7s}: {r['seconds']:6.2f} s, CPU {r['cpu_seconds']:6.2f} s")

    DATA.mkdir(parents=True, exist_ok=True)
    cli = stratum_cli()
    ours, ref = run_pairs(
        in_fresh_dir(lambda d: [*cli, "ingest", "--data-dir", d, str(f)]),
        in_fresh_dir(lambda d: [sys.executable, "-c", STDF_CONVERT, str(f), d]),
        runs,
        log=log,
    )
    return {
        "file": f.name,
        "what": f"stratum ingest {f.name} (process)",
        "reference_what": "stdf-convert → Parquet (process)",
        **pair_stats(ours, ref),
    }


def _prefetch(f: Path) -> None:
    """Read the input once, untimed: both sides then find it in the page cache."""
    with open(f, "rb") as fh:
        while fh.read(8 << 20):
            pass


def bench_ingest(runs: int, big_mb: int, cores: tuple[str, ...] = ("0", "0,1"), *, big_runs: int = 3) -> dict:
    """D-10 (``runs`` timed pairs after a warm-up pair) in process and as whole processes, and the generated
    ``big_mb`` file (``big_runs`` pairs, no warm-up pair: it is slow), unpinned; then D-10 pinned to each entry of
    ``cores`` (``taskset -c``, ``runs`` pairs) to show how the figures scale with cores."""
    DATA.mkdir(parents=True, exist_ok=True)
    warmup_file()
    d10 = D10.exists()
    if not d10:
        print(f"skipping the D-10 cases: {D10} not found (../shared/corpus absent)")
    big = big_file(big_mb)
    # wall-clock figures only mean something on a quiet machine: the load average is kept with them
    report: dict = {
        "runs": runs,
        "big_runs": big_runs,
        "cases": [],
        "process": [],
        "cores": [],
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if d10:
        _prefetch(D10)
        ours, ref = _pair_runs(D10, runs, None, "")
        report["cases"].append({**_summary(D10, ours, ref), "warmup_pair": True})
        report["process"].append(bench_process(D10, runs))
    _prefetch(big)
    ours, ref = _pair_runs(big, big_runs, None, "", warmup=False)
    report["cases"].append({**_summary(big, ours, ref), "warmup_pair": False})
    scaled = D10 if d10 else big
    for cpus in cores if shutil.which("taskset") else ():
        ours, ref = _pair_runs(scaled, runs if d10 else big_runs, cpus, f"cpu {cpus}", warmup=d10)
        report["cores"].append({"cpus": cpus, "n": len(cpus.split(",")), **_summary(scaled, ours, ref)})
    report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _wall(side: dict, span: dict) -> str:
    """Median wall seconds, with the min-max of the pairs when known."""
    return f"{side['median_s']:.2f} ({span['min_s']:.2f}-{span['max_s']:.2f})" if span else f"{side['median_s']:.2f}"


def _spread(p: dict) -> str:
    return f"{p['median']:.2f} ({p['min']:.2f}-{p['max']:.2f})"


def print_ingest(rep: dict) -> None:
    print(
        f"\nIngest: D-10 {rep['runs']} timed pairs after an untimed warm-up pair, the generated file "
        f"{rep.get('big_runs', rep['runs'])} pairs; each case in a fresh process, the two sides of a pair in "
        "alternating order (AB, BA, ...). s = median wall seconds (min-max); CPU = process CPU seconds of the timed "
        "part (median); ratio = stdf-convert time / Stratum time, > 1 means Stratum is faster: the median of the "
        "pairs' own ratios (min-max), and the ratio of the medians"
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
        f"{'file':42s} {'MB':>6s} {'Stratum s':>17s} {'CPU s':>6s} {'wait':>5s} {'MB/s':>6s} {'RSS MB':>6s} "
        f"{'ref s':>17s} {'CPU s':>6s} {'wait':>5s} {'MB/s':>6s} {'RSS MB':>6s} {'pair ratio':>17s} {'of med':>6s} "
        f"{'CPU pair ratio':>17s}"
    )
    for c in rep["cases"]:
        s, r = c["stratum"], c["stdf_convert"]
        p = c.get("paired")
        ps, pr = (p["stratum"], p["reference"]) if p else ({}, {})

        print(
            f"{c['file']:42s} {c['stdf_mb']:6.1f} {_wall(s, ps):>17s} {s['cpu_s']:6.2f} {s.get('waited_s', 0):5.2f} "
            f"{s['mb_per_s']:6.1f} {s['peak_rss_mb']:6d} {_wall(r, pr):>17s} {r['cpu_s']:6.2f} "
            f"{r.get('waited_s', 0):5.2f} {r['mb_per_s']:6.1f} {r['peak_rss_mb']:6d} "
            f"{_spread(p['ratio']) if p else '':>17s} {c['speed_ratio']:6.2f} "
            f"{_spread(p['cpu_ratio']) if p else '':>17s}"
        )
    for w in rep.get("process", []):
        s, r = w["stratum"], w["reference"]
        print(
            f"\n{w['what']} vs {w['reference_what']}: {w['pairs']} timed pairs after a warm-up pair\n"
            f"    Stratum   {s['median_s']:.2f} s ({s['min_s']:.2f}-{s['max_s']:.2f}), CPU {s['cpu_s']:.2f} s "
            f"({s['cpu_min_s']:.2f}-{s['cpu_max_s']:.2f})\n"
            f"    reference {r['median_s']:.2f} s ({r['min_s']:.2f}-{r['max_s']:.2f}), CPU {r['cpu_s']:.2f} s "
            f"({r['cpu_min_s']:.2f}-{r['cpu_max_s']:.2f})\n"
            f"    ratio (> 1: Stratum is faster), median of the pairs' ratios: wall {_spread(w['ratio'])}, "
            f"CPU {_spread(w['cpu_ratio'])}; ratio of the medians {r['median_s'] / s['median_s']:.2f}"
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
            f"{'ratio':>6s} {'pair ratio':>17s}"
        )
        for c in rep["cores"]:
            s, r = c["stratum"], c["stdf_convert"]
            p = c.get("paired")
            print(
                f"{c['file']:42s} {c['n']:5d} {s['median_s']:10.2f} {s['cpu_s']:6.2f} {s.get('waited_s', 0):5.2f} "
                f"{r['median_s']:7.2f} {r.get('waited_s', 0):5.2f} {c['speed_ratio']:6.2f} "
                f"{_spread(p['ratio']) if p else '':>17s}"
            )
        by_n = {c["n"]: c for c in rep["cores"]}
        if 1 in by_n and 2 in by_n:
            one, two = by_n[1], by_n[2]
            print(
                f"  2 cores vs 1: Stratum {one['stratum']['median_s'] / two['stratum']['median_s']:.2f}x faster, "
                f"stdf-convert {one['stdf_convert']['median_s'] / two['stdf_convert']['median_s']:.2f}x"
            )
