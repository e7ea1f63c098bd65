"""`stratum ingest` and `stratum inspect` (real subprocesses) refuse a decompression bomb with a clear error."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.bombs import FAR, gzip_bomb

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from stratum.cli import main; sys.exit(main(sys.argv[1:]))"]


def test_cli_refuses_a_gzip_bomb(tmp_path):
    bomb = tmp_path / "bomb.stdf.gz"
    bomb.write_bytes(gzip.compress(FAR) + gzip_bomb(64 << 20, member=16 << 20))
    env = {
        **os.environ,
        "STRATUM_BACKEND": "local",
        "STRATUM_DATA_DIR": str(tmp_path / "data"),
        "STRATUM_INPUT_LIMITS__RATIO_FLOOR_BYTES": str(8 << 20),
    }

    def run(*args):
        return subprocess.run([*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    p = run("ingest", str(bomb), "--json")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    out = json.loads(p.stdout)
    assert (out["status"], out["error"]["code"]) == ("failed", "decompression_limit")
    assert "refused as a decompression bomb" in out["error"]["message"]
    p = run("inspect", str(bomb), "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["problems"][0]["code"] == "decompression_limit"
