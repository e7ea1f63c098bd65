"""``stratum monitors`` as real subprocesses (exit codes, output), and the README's monitor examples run
verbatim: the CLI block on a fresh data directory, the curl block against ``stratum serve`` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(STRATUM_DATA_DIR=str(data_dir), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def stratum(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "stratum"), *args], env=env_for(data_dir), capture_output=True, text=True, timeout=120
    )


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- readme-example: {name} -->\n```bash\n(.*?)```", text, re.S)
    assert m, f"README example {name!r} not found"
    return m.group(1)


def test_cli_commands(tmp_path) -> None:
    d = tmp_path / "data"
    r = stratum(
        d,
        "monitors",
        "create",
        "--label",
        "y",
        "--rule",
        "yield_below",
        "--param",
        "limit=0.9",
        "--schedule",
        "cron(0 6 ? * MON-FRI *)",
        "--timezone",
        "Europe/Berlin",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    mid = r.stdout.strip()
    assert re.fullmatch(r"mon_[0-9A-Z]{26}", mid)
    got = json.loads(stratum(d, "monitors", "get", mid).stdout)
    assert got["rule"] == {"kind": "yield_below", "params": {"limit": 0.9, "view": "final", "level": "wafer"}}
    assert got["trigger"]["schedule"] == {"expression": "cron(0 6 ? * MON-FRI *)", "timezone": "Europe/Berlin"}
    assert stratum(d, "monitors", "pause", mid).stdout.strip() == f"monitor {mid} is paused"
    assert stratum(d, "monitors", "resume", mid).stdout.strip() == f"monitor {mid} is active"
    r = stratum(d, "monitors", "run", mid, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "ok"  # an empty workspace
    runs = json.loads(stratum(d, "monitors", "runs", mid, "--json").stdout)
    assert [x["trigger"] for x in runs] == ["manual"]
    bad = stratum(d, "monitors", "create", "--label", "y", "--rule", "yield_below", "--param", "limit=2", "--on-ingest")
    assert bad.returncode == 1 and "rule.params.limit" in bad.stderr and "Traceback" not in bad.stderr
    bad = stratum(
        d,
        "monitors",
        "create",
        "--label",
        "y",
        "--rule",
        "cpk_below",
        "--param",
        "test_num=1",
        "--schedule",
        "cron(0 6 * * * *)",
    )
    assert bad.returncode == 1 and "exactly one of day-of-month and day-of-week must be '?'" in bad.stderr
    assert stratum(d, "monitors", "get", "mon_nope").returncode == 1
    assert stratum(d, "monitors", "delete", mid).returncode == 0
    assert stratum(d, "monitors", "list").stdout.strip() == "no monitors"
    assert stratum(d, "monitors").returncode == 2  # usage


def test_readme_cli_example(tmp_path) -> None:
    d = tmp_path / "data"
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("cli")],
        env=env_for(d),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"run run_\w+: fired, \d+ new finding\(s\)", r.stdout), r.stdout
    assert "wafer yield below 95%" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    d = tmp_path / "data"
    assert stratum(d, "demo").returncode == 0
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "stratum"), "serve", "--port", str(port), "--no-watch"],
        env=env_for(d),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/v1/status", timeout=1)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.1)
        yield d, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_readme_curl_example(server, tmp_path) -> None:
    d, url = server
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block("curl")],
        env=env_for(d, STRATUM_API=url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    monitor = json.loads((tmp_path / "monitor.json").read_text())
    assert monitor["rule"]["params"] == {"test_num": 1000, "test_name": None, "threshold": 1.33, "min_n": 30}
    docs, out, dec = [], r.stdout.strip(), json.JSONDecoder()
    while out:
        obj, end = dec.raw_decode(out)
        docs.append(obj)
        out = out[end:].strip()
    run, runs, preview = docs
    assert run["status"] in ("ok", "fired") and run["run_id"].startswith("run_")
    assert [x["run_id"] for x in runs["items"]] == ([run["run_id"]] if run["status"] == "fired" else [])
    assert preview["valid"] is True and len(preview["next"]) == 3
    assert all(t.endswith(("+01:00", "+02:00")) and "T02:30:00" in t for t in preview["next"])
