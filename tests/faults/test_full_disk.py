"""Full disk during ``stratum ingest`` (a real subprocess; ENOSPC injected into the object store writer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot

ROOT = Path(__file__).resolve().parents[2]

# the CLI, with every local object store write failing as on a full disk
FULL_DISK_CLI = """
import errno, sys
from stratum.storage import local
def boom(self, data):
    raise OSError(errno.ENOSPC, "No space left on device")
local._LocalWriter._write = boom
from stratum.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def stdf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("full-disk")
    spec = LotSpec(lot_id="FULL1", wafers=("W01",), die_diameter=5, tests=tuple(default_tests(3, n_mpr=0, n_ftr=0)))
    return write_lot(spec, d / "stdf").paths[0]


def _cli(data: Path, *args: str, full: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "STRATUM_BACKEND": "local", "STRATUM_DATA_DIR": str(data)}
    cmd = [sys.executable, "-c", FULL_DISK_CLI] if full else [sys.executable, "-m", "stratum.cli"]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ingest_on_a_full_disk_says_no_space(tmp_path, stdf, as_json):
    data = tmp_path / "data"
    args = ["ingest", str(stdf), "--data-dir", str(data)] + (["--json"] if as_json else [])
    p = _cli(data, *args, full=True)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert "no space left on device while writing the lake; nothing was published" in p.stderr
    if as_json:
        out = json.loads(p.stdout)
        assert (out["status"], out["error"]["code"]) == ("failed", "no_space")
    leftovers = [str(f) for f in data.rglob("*") if f.is_file() and ".~stratum-tmp." in f.name]
    assert leftovers == []
    jobs = json.loads(_cli(data, "jobs", "--json", "--data-dir", str(data), full=False).stdout)
    assert [j["status"] for j in jobs] == ["failed"]
