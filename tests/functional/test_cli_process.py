"""Every ``stratum`` command as a real subprocess (the installed console script), with exit codes.

The query commands also run 100 times each, four at a time: they used to print a correct answer and then
abort with exit 134 ("terminate called without an active exception") in a few percent of runs, more under
load (a daemon timer thread dropped the last reference to a DuckDB cursor during interpreter finalisation).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import corpus_file

STRATUM = Path(sys.executable).with_name("stratum")
REPEAT = 100
CONCURRENCY = 4


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(STRATUM_BACKEND="local", STRATUM_ENVIRONMENT="dev", STRATUM_DATA_DIR=str(data_dir))
    return env


def run(data_dir: Path, *argv: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(STRATUM), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(data_dir),
        check=False,
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """A data directory with the a530 wafer-sort lot ingested through the CLI."""
    if not STRATUM.is_file():
        pytest.skip(f"the stratum console script is not installed at {STRATUM}")
    d = tmp_path_factory.mktemp("cli") / "data"
    p = run(d, "ingest", "--json", str(corpus_file("teradyne_a530_ws_be_lot3.stdf.gz")))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "succeeded"
    return d


def test_version_help_and_usage_errors(lake: Path) -> None:
    p = run(lake, "--version")
    assert (p.returncode, p.stdout.startswith("stratum ")) == (0, True)
    assert run(lake).returncode == 2  # no command: help, usage exit status
    assert run(lake, "frobnicate").returncode == 2
    assert run(lake, "sql").returncode == 2  # missing argument
    assert run(lake, "ingest", "--retest-policy", "newest", "x.stdf").returncode == 2


def test_ingest_inspect_jobs_job(lake: Path, tmp_path: Path) -> None:
    f = corpus_file("advantest_93k_ws_mpr.stdf")
    p = run(lake, "inspect", "--json", str(f))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["valid"] is True
    bad = tmp_path / "not.stdf"
    bad.write_bytes(b"hello, not STDF at all")
    assert run(lake, "inspect", str(bad)).returncode == 1
    assert run(lake, "inspect", str(tmp_path / "absent.stdf")).returncode == 1

    p = run(lake, "ingest", str(f))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("succeeded ")
    p = run(lake, "ingest", str(f))  # byte-identical: a duplicate, not a failure
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("duplicate ")
    p = run(lake, "ingest", str(bad))
    assert p.returncode == 1
    assert "stratum:" in p.stderr and "Traceback" not in p.stderr
    assert run(lake, "ingest", str(tmp_path / "absent.stdf")).returncode == 1

    p = run(lake, "jobs", "--json")
    assert p.returncode == 0, p.stderr
    jobs = json.loads(p.stdout)
    assert sorted(j["status"] for j in jobs) == ["duplicate", "failed", "succeeded", "succeeded"]
    p = run(lake, "jobs")
    assert p.returncode == 0 and "job_id" in p.stdout
    p = run(lake, "job", jobs[0]["job_id"])
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["job_id"] == jobs[0]["job_id"]
    p = run(lake, "job", "job_00000000000000000000000000")
    assert p.returncode == 1 and "not found" in p.stderr


def test_sql_and_lots(lake: Path) -> None:
    p = run(lake, "sql", "--format", "json", "SELECT part_count, good_count FROM lots WHERE lot_id = 'GAL-LOT'")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rows"] == [[1456, 1377]]
    p = run(lake, "sql", "--format", "csv", "-", stdin="SELECT 1 AS one")
    assert (p.returncode, p.stdout.splitlines()) == (0, ["one", "1"])
    p = run(lake, "sql", "SELECT 42 AS answer")
    assert p.returncode == 0 and "42" in p.stdout
    p = run(lake, "sql", "DROP TABLE parts")
    assert p.returncode == 1 and "only SELECT" in p.stderr
    p = run(lake, "sql", "SELECT * FROM nowhere")
    assert p.returncode == 1 and "unknown table" in p.stderr
    p = run(lake, "lots", "--json")
    assert p.returncode == 0, p.stderr
    lots = {r["lot_id"]: r for r in json.loads(p.stdout)}
    assert lots["GAL-LOT"]["part_count"] == 1456
    p = run(lake, "lots")
    assert p.returncode == 0 and "GAL-LOT" in p.stdout


def test_sql_reads_parts_from_its_cache_after_the_first_run(lake: Path) -> None:
    """The first query over ``parts`` writes each lot's rows under <data-dir>/cache/sql/<workspace>/; later
    processes read them: the same answer, with the cache off too (STRATUM_SQL__CLI_CACHE_MB=0)."""
    q = "SELECT lot_id, count(*) FILTER (WHERE is_final) AS final, count(*) AS n FROM parts GROUP BY 1 ORDER BY 1"
    cache = lake / "cache" / "sql" / "default"
    first = run(lake, "sql", "--format", "json", q)
    assert first.returncode == 0, first.stderr
    got = json.loads(first.stdout)["rows"]
    assert ["GAL-LOT", 1456] in [r[:2] for r in got]
    files = sorted(cache.glob("*.parquet"))
    lots = run(lake, "lots", "--json")
    assert len(files) == len(json.loads(lots.stdout)) >= 1  # one file per lot
    again = run(lake, "sql", "--format", "json", q)
    assert (again.returncode, again.stdout) == (0, first.stdout)
    assert sorted(cache.glob("*.parquet")) == files
    off = subprocess.run(
        [str(STRATUM), "sql", "--format", "json", q],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(lake), "STRATUM_SQL__CLI_CACHE_MB": "0"},
        check=False,
    )
    assert (off.returncode, off.stdout) == (0, first.stdout)


def test_sql_processes_writing_the_cache_at_once_agree(lake: Path, tmp_path: Path) -> None:
    """Three processes start on an empty cache at once: each writes under a temporary name and renames, so each
    answers what the views compute, one file per lot stays and no temporary file is left."""
    d = tmp_path / "data"
    shutil.copytree(lake, d, ignore=shutil.ignore_patterns("cache"))
    q = (
        "SELECT lot_id, count(*) FILTER (WHERE is_final), count(*) FILTER (WHERE is_retest), sum(hard_bin), "
        "sum(retest_ordinal) FROM parts GROUP BY 1 ORDER BY 1"
    )
    off = subprocess.run(
        [str(STRATUM), "sql", "--format", "json", q],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(d), "STRATUM_SQL__CLI_CACHE_MB": "0"},
        check=False,
    )
    assert off.returncode == 0 and not (d / "cache" / "sql").exists(), off.stderr
    assert ["GAL-LOT", 1456] in [r[:2] for r in json.loads(off.stdout)["rows"]]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda _: run(d, "sql", "--format", "json", q), range(3)))
    assert [(p.returncode, p.stdout) for p in got] == [(0, off.stdout)] * 3
    cache = d / "cache" / "sql" / "default"
    assert len(list(cache.glob("*.parquet"))) == len(json.loads(run(d, "lots", "--json").stdout))
    assert [p.name for p in cache.iterdir() if p.suffix != ".parquet"] == []
    again = run(d, "sql", "--format", "json", q)
    assert (again.returncode, again.stdout) == (0, off.stdout)


def test_keys(tmp_path: Path) -> None:
    d = tmp_path / "data"
    p = run(d, "keys", "create", "--workspace", "default", "--scope", "read", "--name", "ci", "--json")
    assert p.returncode == 0, p.stderr
    key_id = json.loads(p.stdout)["key_id"]
    p = run(d, "keys", "list", "--json")
    assert p.returncode == 0 and [k["key_id"] for k in json.loads(p.stdout)] == [key_id]
    p = run(d, "keys", "rotate", key_id, "--json")
    assert p.returncode == 0, p.stderr
    new_id = json.loads(p.stdout)["key_id"]
    p = run(d, "keys", "revoke", new_id)
    assert p.returncode == 0 and new_id in p.stdout
    assert run(d, "keys", "revoke", "key_doesnotexist").returncode == 1
    bad_expiry = ("keys", "create", "--workspace", "default", "--scope", "read", "--name", "x", "--expires", "soon")
    assert run(d, *bad_expiry).returncode == 1
    assert run(d, "keys").returncode == 2


def test_demo(tmp_path: Path) -> None:
    p = run(tmp_path / "data", "demo")
    assert p.returncode == 0, p.stderr
    assert "DEMO-WS-1042" in p.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_answers_and_exits_cleanly_on_a_stop_signal(lake: Path, sig: signal.Signals) -> None:
    """Ctrl-C and a service manager's SIGTERM both stop the server gracefully and exit 0 (uvicorn re-raises
    SIGTERM after its shutdown; unhandled, that ended the process with 143 before the stores were closed)."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(STRATUM), "serve", "--no-watch", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(lake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=2) as r:  # noqa: S310
                    status = r.status
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert status == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "terminate called" not in err


QUERY_COMMANDS = [
    ("sql", "SELECT 1"),
    ("sql", "--format", "json", "SELECT lot_id, part_count, good_count FROM lots ORDER BY lot_id"),
    ("lots",),
    ("jobs",),
]


def test_query_commands_exit_zero_every_time_under_load(lake: Path) -> None:
    """sql, lots and jobs, 100 times each, four subprocesses at a time: every run exits 0, nothing on stderr."""
    argvs = []
    for i in range(REPEAT):
        argvs += [QUERY_COMMANDS[i % 2], QUERY_COMMANDS[2], QUERY_COMMANDS[3]]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        done = list(pool.map(lambda a: (a, run(lake, *a)), argvs))
    bad = [(a[0], p.returncode, p.stderr.strip()[-200:]) for a, p in done if p.returncode != 0 or p.stderr]
    assert bad == [], f"{len(bad)} of {len(done)} runs failed: {bad[:5]}"
    assert len(done) == 3 * REPEAT
    assert all(p.stdout for _, p in done)
