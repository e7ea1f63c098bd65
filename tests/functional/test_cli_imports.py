"""What each ``stratum`` command imports, in a real process (``python -X importtime -m stratum.cli ...``: the
console script's entry, every module the process loads listed on stderr). A command pays only for what it
uses: ``--version`` loads no data library, ``sql`` no web stack and no pattern/monitor services, ``ingest`` of
a file without wafers neither DuckDB nor the pattern classifier. The answers are checked too, so a command
that skipped its work would fail here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratum.devtools.demo import demo_specs
from stratum.devtools.stdf.lots import GeneratedLot, write_lot

WEB = ("fastapi", "uvicorn", "starlette", "stratum.api", "mangum")
# pandas is left out: DuckDB tries to import it and our processes refuse (runtime.keep_pandas_out), which
# -X importtime lists as an import all the same
DATA_LIBS = ("duckdb", "pyarrow", "numpy")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(STRATUM_BACKEND="local", STRATUM_DATA_DIR=str(data_dir))
    return env


def stratum(data_dir: Path, *argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI in a fresh interpreter; returns the process and the modules it imported."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stratum.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(data_dir),
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")} - {
        "package"
    }
    p.stderr = "\n".join(line for line in p.stderr.splitlines() if not line.startswith("import time:"))
    return p, modules


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages or modules) were imported."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.fixture(scope="module")
def lots(tmp_path_factory) -> dict[str, GeneratedLot]:
    """The demo's generated lots: a wafer-sort lot of two files and a final-test lot (no wafers)."""
    d = tmp_path_factory.mktemp("lots")
    sort, final = demo_specs()
    return {"sort": write_lot(sort, d / "sort"), "final": write_lot(final, d / "final")}


@pytest.fixture(scope="module")
def files(lots) -> dict[str, list[Path]]:
    return {k: lot.paths for k, lot in lots.items()}


@pytest.fixture(scope="module")
def lake(files, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli-imports") / "data"
    for f in files["sort"]:
        p, _ = stratum(d, "ingest", str(f))
        assert p.returncode == 0, p.stderr
    return d


def test_version_loads_no_data_library_and_no_web_stack(tmp_path) -> None:
    p, modules = stratum(tmp_path / "data", "--version")
    assert (p.returncode, p.stdout) == (0, "stratum 0.1.0\n")
    assert loaded(modules, (*DATA_LIBS, *WEB, "pydantic", "stratum.runtime")) == []


def test_sql_loads_duckdb_but_no_web_stack_and_no_services_it_does_not_use(lake, lots) -> None:
    q = "SELECT count(*) AS n, count(DISTINCT wafer_id) AS w FROM parts"
    p, modules = stratum(lake, "sql", "--format", "json", q)
    assert p.returncode == 0, p.stderr
    truth = lots["sort"]
    rows = [[len(truth.parts.seq), len(truth.spec.wafers)]]  # every tested part (retests too), every wafer
    assert json.loads(p.stdout) == {"columns": ["n", "w"], "rows": rows, "truncated": False}
    assert loaded(modules, ("duckdb",)) == ["duckdb"]
    unused = (
        *WEB,
        "pyarrow",
        "numpy",
        "stratum.query.workers",  # a local trusted user: no worker pool, the guard runs in the CLI process
        "stratum.monitors",
        "stratum.patterns",
        "stratum.analytics",
        "stratum.ingest",
        "stratum.stdf",
    )
    assert loaded(modules, unused) == []


def test_sql_on_a_metadata_relation_still_reads_its_store(lake) -> None:
    p, modules = stratum(lake, "sql", "--format", "json", "SELECT count(*) AS n FROM monitor_findings")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rows"] == [[0]]
    assert loaded(modules, ("stratum.monitors.store",)) == ["stratum.monitors.store"]


def test_ingest_of_a_final_test_file_loads_neither_duckdb_nor_the_pattern_services(lots, files, tmp_path) -> None:
    d = tmp_path / "data"
    p, modules = stratum(d, "ingest", "--json", str(files["final"][0]))
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    parts = len(lots["final"].parts.seq[lots["final"].files[0].parts])
    assert (job["status"], job["parts"], job["rows"].get("wafer_runs")) == ("succeeded", parts, None)
    heavy = (*WEB, "duckdb", "stratum.patterns", "stratum.analytics", "stratum.query", "stratum.monitors.service")
    assert loaded(modules, heavy) == []


def test_ingest_of_a_wafer_sort_file_classifies_its_wafers(lots, files, tmp_path) -> None:
    d = tmp_path / "data"
    p, modules = stratum(d, "ingest", "--json", str(files["sort"][0]))
    assert p.returncode == 0, p.stderr
    wafers = len(lots["sort"].files[0].wafers)
    assert json.loads(p.stdout)["rows"]["wafer_runs"] == wafers
    assert loaded(modules, ("stratum.patterns.classifier", *WEB)) == ["stratum.patterns.classifier"]
    # classified at ingest (the file's rows) and on publish (the snapshot's final view, stored)
    # a wafer may hold several patterns: one rank-1 row per wafer, and every wafer present in both views
    q = (
        "SELECT (SELECT count(DISTINCT wafer_id) FROM wafer_patterns), (SELECT count(*) FROM wafer_patterns"
        " WHERE rank = 1), (SELECT count(DISTINCT wafer_id) FROM wafer_pattern_history),"
        " (SELECT count(*) FROM wafer_pattern_history WHERE rank = 1)"
    )
    p, _ = stratum(d, "sql", "--format", "json", q)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rows"] == [[wafers] * 4]


def test_an_on_ingest_monitor_runs_when_a_fresh_cli_process_ingests(files, tmp_path) -> None:
    d = tmp_path / "data"
    p, _ = stratum(
        d, "monitors", "create", "--label", "ft yield", "--rule", "yield_below", "--param", "limit=0.99", "--on-ingest"
    )
    assert p.returncode == 0, p.stderr
    mid = json.loads(stratum(d, "monitors", "list", "--json")[0].stdout)[0]["monitor_id"]
    p, modules = stratum(d, "ingest", str(files["final"][0]))
    assert p.returncode == 0, p.stderr
    assert loaded(modules, ("stratum.monitors.service",)) == ["stratum.monitors.service"]
    runs = json.loads(stratum(d, "monitors", "runs", mid, "--json")[0].stdout)
    assert [(r["trigger"], r["status"]) for r in runs] == [("ingest", "ok")]


def test_a_command_loads_its_libraries_without_gc_passes_and_runs_with_the_gc(lake) -> None:
    """``sql`` and ``ingest`` preload their libraries under ``stratum.coldstart.loading`` (GC paused, then what
    was loaded frozen); the command itself runs with the collector on."""
    probe = (
        "import gc, sys\n"
        "from stratum.cli import main\n"
        "seen = []\n"
        "import stratum.cli.data as d\n"
        "real = d.cmd_sql\n"
        "def spy(args):\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count() > 10_000, 'duckdb' in sys.modules))\n"
        "    return real(args)\n"
        "d.cmd_sql = spy  # the parser is built by main, after this\n"
        "rc = main(['sql', '--format', 'csv', 'SELECT 1 AS one'])\n"
        "print(rc, seen)\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=_env(lake))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["one", "1", "0 [(True, True, True)]"]


@pytest.mark.parametrize("preset", [None, "3"])
def test_ingest_loads_numpy_with_one_blas_thread_unless_the_user_chose(files, tmp_path, preset) -> None:
    """OpenBLAS sizes its thread pool from OPENBLAS_NUM_THREADS when numpy loads: ingest sets 1 first (a pool per
    core costs 30-40 ms of CPU at start), a value the user set is kept."""
    code = (
        "import os, sys\n"
        "from stratum.cli import main\n"
        "rc = main(['ingest', '--json', sys.argv[1]])\n"
        "print(rc, 'numpy' in sys.modules, os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = _env(tmp_path / "data")
    env.pop("OPENBLAS_NUM_THREADS", None)
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    p = subprocess.run(
        [sys.executable, "-c", code, str(files["final"][0])], capture_output=True, text=True, timeout=300, env=env
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == f"0 True {preset or 1}"


@pytest.mark.parametrize("preset", [None, "", "__all__"])
def test_ingest_builds_its_models_without_pydantic_plugin_discovery_unless_the_user_chose(
    lots, files, tmp_path, preset
) -> None:
    """Ingest switches pydantic's plugins off (PYDANTIC_DISABLE_PLUGINS=__all__) unless the user set the variable,
    and then pydantic's plugin loader, with its importlib.metadata and entry-point scan, is not imported
    (stratum.coldstart.pydantic_plugins_off). A user's own value is kept: "" lets pydantic look for plugins."""
    code = (
        "import os, sys\n"
        "from stratum.cli import main\n"
        "rc = main(['ingest', '--json', sys.argv[1]])\n"
        "loader = sys.modules['pydantic.plugin._loader']\n"
        "print(rc, repr(os.environ.get('PYDANTIC_DISABLE_PLUGINS')), 'importlib.metadata' in sys.modules,\n"
        "      hasattr(loader, 'PYDANTIC_ENTRY_POINT_GROUP'))\n"
    )
    env = _env(tmp_path / "data")
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    p = subprocess.run(
        [sys.executable, "-c", code, str(files["final"][0])], capture_output=True, text=True, timeout=300, env=env
    )
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout.splitlines()[0])
    parts = len(lots["final"].parts.seq[lots["final"].files[0].parts])
    assert (job["status"], job["parts"]) == ("succeeded", parts)
    value = "__all__" if preset is None else preset
    discovered = value == ""  # the real loader (it defines the entry-point group) and its importlib.metadata
    assert p.stdout.splitlines()[-1] == f"0 {value!r} {discovered} {discovered}"


def test_the_stand_in_plugin_loader_answers_as_pydantics_own() -> None:
    """pydantic imports only ``get_plugins`` from its plugin loader, and with each value of PLUGINS_OFF its own
    loader finds no plugins, as the stand-in answers. A pydantic release that changes either fails here."""
    import ast
    import os
    from pathlib import Path

    import pydantic

    from stratum.coldstart import PLUGINS_OFF

    names = set()
    for f in Path(pydantic.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_loader") and f.name != "_loader.py":
                names |= {a.name for a in node.names}
    assert names == {"get_plugins"}
    for value in PLUGINS_OFF:
        code = "from pydantic.plugin._loader import get_plugins; print(tuple(get_plugins()))"
        env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": value}
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        assert (p.returncode, p.stdout) == (0, "()\n"), p.stderr
    probe = (
        "import os, sys\n"
        "os.environ['PYDANTIC_DISABLE_PLUGINS'] = '1'\n"
        "from stratum.coldstart import pydantic_plugins_off\n"
        "first = pydantic_plugins_off()\n"
        "import stratum.models\n"
        "job = stratum.models.Job(job_id='j', workspace='w', file_name='f.stdf')\n"
        "print(first, pydantic_plugins_off(), tuple(sys.modules['pydantic.plugin._loader'].get_plugins()),\n"
        "      'importlib.metadata' in sys.modules, job.status)\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (0, "True False () False queued\n"), p.stderr


def test_sql_builds_its_models_with_pydantic_plugins_off(lake) -> None:
    code = (
        "import os, sys\n"
        "from stratum.cli import main\n"
        "rc = main(['sql', '--format', 'csv', 'SELECT 1 AS one'])\n"
        "loader = sys.modules['pydantic.plugin._loader']\n"
        "print(rc, os.environ.get('PYDANTIC_DISABLE_PLUGINS'), hasattr(loader, 'PYDANTIC_ENTRY_POINT_GROUP'))\n"
    )
    env = _env(lake)
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["one", "1", "0 __all__ False"]
