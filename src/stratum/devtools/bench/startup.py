"""Start-up costs, each in fresh processes with its reference measured in the same run (interleaved, so load
on the machine hits both alike): ``import stratum.api.app`` against a bare ``import fastapi``; the first request
of a fresh app (map PNG, capability, SQL, classify a 50-die-wide grid, classify a lake wafer, which also stores
it) on the API bench lake, without and after ``Runtime.warm_up`` (what ``stratum serve`` starts on a background
thread and the API Lambda runs in its init phase; its own duration is reported); whole CLI processes (``stratum
sql``, ``stratum ingest`` of a 180 KB file) against ``stratum --version``; and the API Lambda's cold start for chart
routes (functions/api/handler.py loaded in a fresh process, then its first invoke with an API Gateway event for a
chart PNG). ``stratum ingest`` of D-10 as a whole process is in the ingest benchmark (``ingest.bench_process``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stratum.devtools.bench import CORPUS, DATA
from stratum.devtools.bench.ingest import _children_cpu, stratum_cli

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
limits = {"analytics_per_window": 10**9, "sql_per_window": 10**9, "classify_per_window": 10**9}
settings = settings_for(lake, backend="local", rate_limits=limits)
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


# The API Lambda's cold start for a chart: a fresh process loads functions/api/handler.py (what Lambda's
# init phase does) and its handler answers an API Gateway event (the first invoke builds the app, runtime and
# DuckDB, then queries and renders); a second invoke of the same chart shows what is warm.
_LAMBDA_COLD = """
import base64, copy, importlib.util, json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("stratum_fn_api", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
t1, c1 = time.perf_counter(), time.process_time()

class Context:
    function_name = "stratum-api"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stratum-api"
    aws_request_id = "6f1d8a3e-1c2b-4d5e-8f90-a1b2c3d4e5f6"

event = json.loads(open(sys.argv[2]).read().replace("{{API_KEY}}", sys.argv[3]))
path, query = sys.argv[4], json.loads(sys.argv[5])
event.update(path=path, queryStringParameters=query, multiValueQueryStringParameters={k: [v] for k, v in query.items()})
event["pathParameters"] = {"proxy": path.lstrip("/")}
heavy = ("duckdb", "numpy", "pyarrow", "PIL", "boto3", "pandas")
before = {m for m in heavy if m in sys.modules}
out = mod.handler(copy.deepcopy(event), Context())
t2, c2 = time.perf_counter(), time.process_time()
lazy = sorted(m for m in heavy if m in sys.modules and m not in before)
again = mod.handler(copy.deepcopy(event), Context())
t3 = time.perf_counter()
for o in (out, again):
    assert o["statusCode"] == 200, o
    body = base64.b64decode(o["body"]) if o["isBase64Encoded"] else o["body"].encode()
    assert body[:8] == b"\\x89PNG\\r\\n\\x1a\\n", body[:40]
print(json.dumps({"import_s": t1 - t0, "first_invoke_s": t2 - t1, "second_invoke_s": t3 - t2, "lazy": lazy,
                  "import_cpu_s": c1 - c0, "first_invoke_cpu_s": c2 - c1}))
"""


def _infra_assets():
    """infra/stratum_infra/assets.py (standard library only), loaded by path as layers/build.py does."""
    import importlib.util

    from stratum.devtools.bench import ROOT

    spec = importlib.util.spec_from_file_location("_stratum_assets", ROOT / "infra" / "stratum_infra" / "assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def packaged_api_function(layers: Path, python: str, build_dir: Path) -> tuple[list[str], dict[str, str], Path]:
    """The API function as Lambda runs it, from ``layers`` (built by layers/build.py for this host's
    architecture): the function asset assembled as the CDK app does (with bytecode when the layers have it),
    imported with ``python -S`` from the asset, the function's layers and the runtime's boto3 stand-in, with
    nothing written next to the code (Lambda's /var/task and /opt are read-only). Returns (argv prefix,
    environment additions, handler file)."""
    from stratum.devtools.bench import ROOT

    assets = _infra_assets()
    config = json.loads((ROOT / "layers" / "layers.json").read_text())
    names = config["functions"]["api"]
    version = config["python_version"]
    compiled = json.loads((layers / names[0] / "manifest.json").read_text()).get("bytecode")
    asset = assets.assemble_function_asset(
        "api", ROOT, build_dir, bytecode_python=python if compiled else None, python_version=version
    )
    # the bench runs the local backend, whose webhook-secret sealing needs cryptography (the AWS backend uses
    # KMS): installed beside the layers for the layers' Python, compiled, so it is the same in every run
    extras = layers / ".bench-local-backend"
    if not (extras / "cryptography").is_dir():
        from importlib.metadata import version as installed

        pin = f"cryptography=={installed('cryptography')}"
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        pip += ["--only-binary=:all:", "--implementation", "cp", "--python-version", version]
        subprocess.run([*pip, "--target", str(extras), pin], check=True)
        subprocess.run([python, "-m", "compileall", "-q", "-q", str(extras)], check=True)
    paths = [str(asset.path), *(str(layers / n / "python") for n in names), str(layers / ".runtime-standin")]
    paths.append(str(extras))
    env = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}
    return [python, "-S"], env, asset.path / "handler.py"


def bench_lambda_cold_start(
    runs: int, lake: Path, lot: str, *, layers: Path | None = None, python: str | None = None
) -> list[dict]:
    """Rows: the API function's cold start for chart routes (PNG), median of ``runs`` fresh processes, each
    with ``import fastapi`` measured next to it. With ``layers`` (and ``python`` of the layers' version): the
    packaged function instead of this checkout (``packaged_api_function``)."""

    from stratum.api.app import create_app
    from stratum.devtools.bench import ROOT
    from stratum.settings import settings_for

    data = lake / "data"
    app = create_app(settings=settings_for(data, backend="local"))
    token = app.state.keys.create("default", ["full"], "bench-cold-start")[0]
    app.state.runtime.close()
    env = {
        **os.environ,
        "STRATUM_BACKEND": "local",
        "STRATUM_DATA_DIR": str(data),
        "STRATUM_RATE_LIMITS__ANALYTICS_PER_WINDOW": str(10**9),
        "POWERTOOLS_SERVICE_NAME": "stratum-api",
        "POWERTOOLS_METRICS_NAMESPACE": "Stratum",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONWARNINGS": "ignore",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",  # as Lambda sets it: the handler's init phase runs
    }
    env.pop("STRATUM_API_ROOT_PATH", None)
    handler = ROOT / "functions" / "api" / "handler.py"
    interpreter = [sys.executable]
    label = ""
    build = tempfile.TemporaryDirectory()
    if layers is not None:
        interpreter, extra, handler = packaged_api_function(layers, python or sys.executable, Path(build.name))
        env.update(extra)
        compiled = (handler.parent / "__pycache__").is_dir()
        label = f" (packaged, {'with' if compiled else 'without'} bytecode)"
    template = ROOT / "events" / "api" / "get_lots.json"
    charts = {
        "pareto PNG": (f"/v1/lots/{lot}/bins/pareto", {"format": "png"}),
        "stacked map PNG": (f"/v1/lots/{lot}/stacked-map", {"format": "png"}),
    }
    rows = []
    for name, (path, query) in charts.items():
        got: list[dict] = []
        ref: list[float] = []
        libs: list[float] = []
        for _ in range(runs):
            ref.append(_import_seconds("import fastapi"))
            libs.append(_import_seconds("import duckdb, numpy, PIL.Image, PIL.ImageDraw"))
            argv = [*interpreter, "-c", _LAMBDA_COLD, str(handler), str(template), token, path, json.dumps(query)]
            t0 = time.perf_counter()
            out = subprocess.run(argv, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if out.returncode:
                raise RuntimeError(f"cold start {name}: {out.stderr.strip()[-2000:]}")
            got.append({**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": wall})

        def med(k: str, got: list[dict] = got) -> float:
            return round(statistics.median(g[k] for g in got), 3)

        row = _row(
            f"API Lambda cold start{label}: load handler + first {name}",
            [g["import_s"] + g["first_invoke_s"] for g in got],
            ref,
            "import fastapi",
        )
        row.update(
            import_s=med("import_s"),
            first_invoke_s=med("first_invoke_s"),
            second_invoke_s=med("second_invoke_s"),
            process_s=med("process_s"),
            first_invoke_imports=got[0]["lazy"],
            cpu_s=med("import_cpu_s") + med("first_invoke_cpu_s"),
            import_cpu_s=med("import_cpu_s"),
            first_invoke_cpu_s=med("first_invoke_cpu_s"),
            import_duckdb_numpy_pil_s=round(statistics.median(libs), 3),
        )
        rows.append(row)
    build.cleanup()
    return rows


def classify_grid(diameter: int) -> dict:
    """A WM-811K grid body (0 off-wafer, 1 pass, 2 fail): a disc with a failing centre blob."""
    c = (diameter - 1) / 2
    grid = [
        [
            0 if (i - c) ** 2 + (j - c) ** 2 > c * c else 2 if (i - c) ** 2 + (j - c) ** 2 <= (c / 3) ** 2 else 1
            for j in range(diameter)
        ]
        for i in range(diameter)
    ]
    return {"wafer_id": "BENCH", "grid": grid}


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


def cli_rows(runs: int, lake: Path) -> list[dict]:
    """Whole ``stratum`` processes against ``stratum --version`` (wall medians; CPU medians of the processes):
    ``--version`` itself, ``sql`` on the bench lake (its parts cache written by the run before, and the first
    run after the cache is removed) and ``ingest`` of the 180 KB file into an empty data directory."""
    rows: list[dict] = []
    cli = stratum_cli()
    env_data = ["--data-dir", str(lake / "data")]
    version, python, sql_run, sql_first, ingest = [], [], [], [], []
    cli_cpu: dict[str, list[float]] = {"sql": [], "sql_first": [], "ingest": []}  # CPU seconds of each child process

    def timed(name: str, argv: list[str]) -> float:
        c0 = _children_cpu()
        wall = _seconds(argv)
        cli_cpu[name].append(_children_cpu() - c0)
        return wall

    small = _small_file()
    query = [*cli, "sql", *env_data, "SELECT count(*) FROM parts"]
    for _ in range(runs):
        python.append(_seconds([sys.executable, "-c", "pass"]))
        version.append(_seconds([*cli, "--version"]))
        # a lake (or lot) the CLI has not queried since it changed: the first query writes its parts cache
        # (stratum.query.parts_cache); later ones read it
        shutil.rmtree(lake / "data" / "cache", ignore_errors=True)
        sql_first.append(timed("sql_first", query))
        sql_run.append(timed("sql", query))
        with tempfile.TemporaryDirectory() as d:
            ingest.append(timed("ingest", [*cli, "ingest", "--data-dir", d, str(small)]))
    rows.append(_row("stratum --version (process)", version, python, "python -c pass"))
    for what, name, walls in (
        ('stratum sql "SELECT count(*) FROM parts" (process)', "sql", sql_run),
        ('stratum sql "SELECT count(*) FROM parts" (first run, process)', "sql_first", sql_first),
        (f"stratum ingest {small.stat().st_size // 1000} KB file (process)", "ingest", ingest),
    ):
        rows.append(
            {**_row(what, walls, version, "stratum --version"), "cpu_s": round(statistics.median(cli_cpu[name]), 3)}
        )
    return rows


def bench_startup(runs: int, lake: Path, lot: str, wafer: str, sql: str) -> dict:
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
        "classify (50-wide grid)": ("/v1/classify", json.dumps(classify_grid(50))),
        "classify (lake wafer, stored)": ("/v1/classify", json.dumps({"lot_id": lot, "wafer_id": wafer})),
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
    rows += cli_rows(runs, lake)
    # stratum ingest of D-10 as a whole process: the ingest benchmark (bench_process, paired runs)
    rows += bench_lambda_cold_start(runs, lake, lot)
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
        if "speed_ratio" in r:
            print(f"{'':4s}{r['speed_ratio']:.2f}x the speed of {r['reference']} (> 1: faster)")
            if "cpu_s" in r:
                print(f"{'':4s}CPU seconds {r['cpu_s']:.2f} vs {r['reference_cpu_s']:.2f}")
        elif "cpu_s" in r and "first_invoke_s" not in r:
            print(f"{'':4s}CPU seconds of the process (user + system, median) {r['cpu_s']:.3f}")
        if "first_invoke_s" in r:
            print(
                f"{'':4s}handler load = Lambda init phase (imports, app, warm-up) {r['import_s']:.3f} s, "
                f"first invoke {r['first_invoke_s']:.3f} s, second invoke {r['second_invoke_s']:.3f} s "
                f"(whole process {r['process_s']:.3f} s)"
            )
            print(
                f"{'':4s}CPU seconds of the function's process (not its SQL worker): init {r['import_cpu_s']:.3f} + "
                f"first invoke {r['first_invoke_cpu_s']:.3f} = {r['cpu_s']:.3f} s"
            )
            print(
                f"{'':4s}the first invoke imports {', '.join(r['first_invoke_imports']) or 'nothing heavy'}; "
                f"import duckdb, numpy, PIL alone: {r['import_duckdb_numpy_pil_s']:.3f} s"
            )
