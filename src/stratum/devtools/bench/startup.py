"""Start-up costs, each in fresh processes with its reference measured in the same run (interleaved, so load
on the machine hits both alike): ``import stratum.api.app`` against a bare ``import fastapi``; the first request
of a fresh app (map PNG, capability, SQL) on the API bench lake, without and after ``Runtime.warm_up`` (what
``stratum serve`` starts on a background thread and the API Lambda runs in its init phase; its own duration is
reported); whole CLI processes (``stratum sql``, ``stratum ingest`` of a 180 KB file) against ``stratum
--version``; and ``stratum ingest`` of D-10 against a Python process running stdf-convert → zstd Parquet.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stratum.devtools.bench import CORPUS, D10, DATA

# a server process: pandas kept out (every entry point does), the app built, the test client's event-loop
# thread started; then the first request is timed, after the warm-up when argv[4] == "warm"
_FIRST_REQUEST = """
import json, sys, time
from stratum.runtime import keep_pandas_out
keep_pandas_out()
t0 = time.perf_counter()
from stratum.api.app import create_app
from stratum.settings import settings_for
t1 = time.perf_counter()
from fastapi.testclient import TestClient
lake, path, body, warm = sys.argv[1:5]
settings = settings_for(lake, backend="local", rate_limits={"analytics_per_window": 10**9, "sql_per_window": 10**9})
app = create_app(settings=settings)
token, _ = app.state.keys.create("default", ["full"], "bench-first")
client = TestClient(app)
client.__enter__()
h = {"Authorization": f"Bearer {token}"}
tw = time.perf_counter()
if warm == "warm":
    app.state.runtime.warm_up()
t2 = time.perf_counter()
r = client.post(path, headers=h, json=json.loads(body)) if body != "-" else client.get(path, headers=h)
t3 = time.perf_counter()
assert r.status_code == 200, r.text
print(json.dumps({"import_s": t1 - t0, "warm_up_s": t2 - tw, "first_request_s": t3 - t2}))
client.__exit__(None, None, None)
app.state.runtime.close()
"""

# the reference of the whole-process ingest row: what a user of stdf-convert runs
_STDF_CONVERT = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
import stdf_convert
for name, t in stdf_convert.tables(sys.argv[1]).items():
    pq.write_table(t, Path(sys.argv[2]) / f"{name}.parquet", compression="zstd")
"""


def _seconds(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def _import_seconds(code: str) -> float:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def _row(what: str, ours: list[float], ref: list[float], ref_name: str) -> dict:
    a, b = statistics.median(ours), statistics.median(ref)
    return {"what": what, "s": round(a, 3), "reference": ref_name, "reference_s": round(b, 3), "ratio": round(a / b, 2)}


def bench_startup(runs: int, lake: Path, lot: str, wafer: str, sql: str, *, ingest_runs: int = 3) -> dict:
    rows = []
    app, fastapi = [], []
    for _ in range(runs):
        fastapi.append(_import_seconds("import fastapi"))
        app.append(_import_seconds("import stratum.api.app"))
    rows.append(_row("import stratum.api.app", app, fastapi, "import fastapi"))
    requests = {
        "map PNG": (f"/v1/lots/{lot}/wafers/{wafer}/map?format=png", "-"),
        "capability": (f"/v1/lots/{lot}/capability", "-"),
        "SQL": ("/v1/sql", json.dumps({"query": sql, "context": {"lot_id": lot}})),
    }
    for what, (path, body) in requests.items():
        first: dict[str, list[float]] = {"cold": [], "warm": []}
        warm_up, ref = [], []
        for _ in range(runs):
            ref.append(_import_seconds("import fastapi"))
            for mode in ("cold", "warm"):
                out = subprocess.run(
                    [sys.executable, "-c", _FIRST_REQUEST, str(lake / "data"), path, body, mode],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    raise RuntimeError(f"{what}: {out.stderr.strip()[-2000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                first[mode].append(res["first_request_s"])
                if mode == "warm":
                    warm_up.append(res["warm_up_s"])
        rows.append(_row(f"first request: {what} (no warm-up)", first["cold"], ref, "import fastapi"))
        rows.append(
            _row(
                f"first request: {what} (after warm-up, {statistics.median(warm_up):.2f} s)",
                first["warm"],
                ref,
                "import fastapi",
            )
        )
    script = Path(sys.executable).parent / "stratum"  # the console script, as a user runs it
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "stratum.cli"]
    env_data = ["--data-dir", str(lake / "data")]
    version, python, sql_run, ingest = [], [], [], []
    small = _small_file()
    for _ in range(runs):
        python.append(_seconds([sys.executable, "-c", "pass"]))
        version.append(_seconds([*cli, "--version"]))
        sql_run.append(_seconds([*cli, "sql", *env_data, "SELECT count(*) FROM parts"]))
        with tempfile.TemporaryDirectory() as d:
            ingest.append(_seconds([*cli, "ingest", "--data-dir", d, str(small)]))
    rows.append(_row("stratum --version (process)", version, python, "python -c pass"))
    rows.append(_row('stratum sql "SELECT count(*) FROM parts" (process)', sql_run, version, "stratum --version"))
    rows.append(
        _row(f"stratum ingest {small.stat().st_size // 1000} KB file (process)", ingest, version, "stratum --version")
    )
    if D10.exists():
        ours, ref = [], []
        for i in range(ingest_runs):
            with tempfile.TemporaryDirectory(dir=DATA) as a, tempfile.TemporaryDirectory(dir=DATA) as b:
                pair = [
                    (ours, [*cli, "ingest", "--data-dir", a, str(D10)]),
                    (ref, [sys.executable, "-c", _STDF_CONVERT, str(D10), b]),
                ]
                for sink, argv in pair if i % 2 == 0 else pair[::-1]:  # alternate which side runs first
                    sink.append(_seconds(argv))
        row = _row("stratum ingest D-10 95 MB .gz (process)", ours, ref, "stdf-convert → Parquet (process)")
        row["speed_ratio"] = round(row["reference_s"] / row["s"], 2)  # > 1: stratum is faster
        rows.append(row)
    return {"runs": runs, "rows": rows}


def _small_file() -> Path:
    """The corpus's 182 KB Advantest 93k file, or (without the corpus) a generated file of about that size."""
    corpus = CORPUS / "advantest_93k_ft_be.stdf"
    if corpus.exists():
        return corpus
    from stratum.devtools.stdf.benchfile import write_bench_file

    p = DATA / "small_200kb.stdf"
    if not p.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        write_bench_file(p, 180_000, seed=5, wafers=1, tests=50, ftr_per_part=2, mpr_per_part=1)
    return p


def print_startup(rep: dict) -> None:
    print(f"\nstart-up (median of {rep['runs']} fresh processes; reference measured in the same run)")
    print(f"{'what':58s} {'s':>7s} {'reference':>33s} {'ref s':>7s} {'ratio':>6s}")
    for r in rep["rows"]:
        print(f"{r['what']:58s} {r['s']:7.3f} {r['reference']:>33s} {r['reference_s']:7.3f} {r['ratio']:6.2f}")
    for r in rep["rows"]:
        if "speed_ratio" in r:
            print(f"  {r['what']}: {r['speed_ratio']:.2f}x the speed of {r['reference']} (> 1: faster)")
