"""SIGKILL of ``stratum serve`` during a drop-folder ingest: after a restart the job does not stay
``running`` (reclaimed as ``worker_died`` and re-run), and the lot kept its previous snapshot meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.runtime import Runtime
from stratum.settings import settings_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from stratum.cli import main; sys.exit(main(sys.argv[1:]))"]

# `stratum serve` whose ingest crawls (a pause per chunk), so the test can kill it mid-ingest
SLOW_SERVE = """
import sys, time
from stratum.ingest import service
from stratum.stdf import source
source.READ_SIZE = 65536  # plain files come in 64 KB blocks (STRATUM_CHUNK_BYTES below)
real = service._Run._on_chunk
def slow(self, source, res):
    time.sleep(1.0)
    return real(self, source, res)
service._Run._on_chunk = slow
from stratum.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data: Path) -> dict:
    return {**os.environ, "STRATUM_BACKEND": "local", "STRATUM_DATA_DIR": str(data), "STRATUM_CHUNK_BYTES": "65536"}


def _serve(data: Path, slow: bool) -> subprocess.Popen:
    head = [sys.executable, "-c", SLOW_SERVE] if slow else CLI
    return subprocess.Popen(
        [*head, "serve", "--port", str(_port()), "--interval", "0.2"],
        env=_env(data),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _jobs(data: Path) -> list[dict]:
    p = subprocess.run(
        [*CLI, "jobs", "--json"],
        env=_env(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _wait(data: Path, file_name: str, want, timeout: float = 90, server: subprocess.Popen | None = None) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"the server exited ({server.returncode}): {_stop(server)}")
        for j in _jobs(data):
            if j["file_name"] == file_name and want(j):
                return j
        time.sleep(1.0)
    raise AssertionError(f"no job for {file_name} reached the wanted state: {_jobs(data)}")


def _stop(p: subprocess.Popen) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.stdout.read() if p.stdout else ""


def test_sigkill_during_ingest_then_restart(tmp_path):
    data = tmp_path / "data"
    tests = tuple(default_tests(20, n_mpr=0, n_ftr=0))
    v1 = write_lot(LotSpec(lot_id="SIGK", wafers=("W01",), die_diameter=8, tests=tests, seed=1), tmp_path / "v1")
    v2 = write_lot(LotSpec(lot_id="SIGK", wafers=("W01",), die_diameter=30, tests=tests, seed=2), tmp_path / "v2")
    p = subprocess.run(
        [*CLI, "ingest", str(v1.paths[0]), "--json"],
        env=_env(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout)["job_id"]

    server = _serve(data, slow=True)
    try:
        incoming = data / "incoming" / "default"
        incoming.mkdir(parents=True, exist_ok=True)
        shutil.copy(v2.paths[0], tmp_path / "late.stdf")
        os.replace(tmp_path / "late.stdf", incoming / "late.stdf")
        running = _wait(data, "late.stdf", lambda j: j["status"] == "running", server=server)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        _stop(server)
    assert _wait(data, "late.stdf", lambda j: True)["status"] == "running"  # left behind by the killed server
    rt = Runtime.from_settings(settings_for(data, backend="local"))
    try:
        assert rt.catalog.get_lot("default", "SIGK").active_job_id == first  # the previous snapshot answers
    finally:
        rt.close()

    server = _serve(data, slow=False)
    try:
        done = _wait(data, "late.stdf", lambda j: j["status"] == "succeeded", server=server)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserver output:\n{_stop(server)}") from None
    finally:
        out = _stop(server)
    assert f"[recovery] job {running['job_id']} (late.stdf): the process ingesting this file stopped" in out
    assert done["job_id"] == running["job_id"]
    assert done["attempts"] == 2
    rt = Runtime.from_settings(settings_for(data, backend="local"))
    try:
        assert rt.catalog.get_lot("default", "SIGK").active_job_id == done["job_id"]
    finally:
        rt.close()
