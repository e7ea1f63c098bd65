"""How a ``stratum`` process ends (``stratum.cli.exit_now``, the console script's last step): the status, every
byte written to stdout, the atexit callbacks and the non-daemon threads are kept; only the interpreter's teardown
is skipped. Real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STRATUM = Path(sys.executable).with_name("stratum")

_PROBE = """
import atexit, sys, threading, time
from stratum.cli import exit_now

def late():
    time.sleep(0.3)
    sys.stdout.write("thread done\\n")

threading.Thread(target=late).start()  # not a daemon: the exit waits for it
atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
sys.stdout.write("x" * 1_000_000 + "\\n")  # buffered, still unwritten when exit_now starts
exit_now(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_exit_now_keeps_the_status_the_output_the_threads_and_the_atexit_callbacks(code: int) -> None:
    p = subprocess.run([sys.executable, "-c", _PROBE, str(code)], capture_output=True, text=True, timeout=60)
    assert p.returncode == code, p.stderr
    assert p.stdout.splitlines() == ["x" * 1_000_000, "thread done", "atexit ran"]
    assert p.stderr == ""


def test_output_to_a_reader_that_went_away_ends_quietly() -> None:
    """The last flush fails (stdout's reader is gone, the output still buffered): no traceback, the status kept."""
    probe = (
        "import os, sys\n"
        "from stratum.cli import exit_now\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"
        "sys.stdout = open(w, 'w', buffering=1 << 16)\n"
        "sys.stdout.write('y' * 4000)\n"
        "exit_now(5)\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (5, "", "")


def test_the_console_script_statuses(tmp_path: Path) -> None:
    if not STRATUM.is_file():
        pytest.skip(f"the stratum console script is not installed at {STRATUM}")

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(STRATUM), *argv], capture_output=True, text=True, timeout=120)

    p = run("--version")
    assert (p.returncode, p.stdout, p.stderr) == (0, "stratum 0.1.0\n", "")
    p = run("--no-such-option")
    assert p.returncode == 2 and "unrecognized arguments: --no-such-option" in p.stderr
    p = run("ingest", "--data-dir", str(tmp_path / "data"), str(tmp_path / "missing.stdf"))
    assert p.returncode == 1 and "missing.stdf: no such file or directory" in p.stderr
    p = run("sql", "--data-dir", str(tmp_path / "data"), "--format", "csv", "SELECT 41 + 1 AS answer")
    assert (p.returncode, p.stdout.splitlines()) == (0, ["answer", "42"]), p.stderr
