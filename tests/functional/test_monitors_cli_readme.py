"""``stratum monitors`` as real subprocesses (exit codes, output), and the README's examples run
verbatim: the monitor CLI block on a fresh data directory, and every curl example of the README against
``stratum serve`` on 127.0.0.1 (only the README's documented placeholders substituted: the key
``stm_test_...``, the address ``localhost:8000`` and the file ``lot.stdf``)."""

from __future__ import annotations

import base64
import gzip
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


def readme_curl_blocks() -> dict[str, str]:
    """Every bash block of the README that runs curl, by its ``readme-example`` name."""
    text = (ROOT / "README.md").read_text()
    blocks = {}
    for m in re.finditer(r"(?:<!-- readme-example: ([\w-]+) -->\n)?```bash\n(.*?)```", text, re.S):
        if re.search(r"^\s*curl |\| curl |\$\(curl ", m.group(2), re.M):
            assert m.group(1), f"a README curl block has no readme-example marker, so no test runs it:\n{m.group(2)}"
            blocks[m.group(1)] = m.group(2)
    return blocks


# curl exits 22 on an HTTP error status: an example that answers 4xx/5xx fails its block
CURL_FAILS = 'curl() { command curl --fail-with-body -sS "$@"; }\n'


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


def run_curl_block(
    name: str, d: Path, url: str, cwd: Path, token: str = "", var: str = "TOKEN", subs: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    script = readme_curl_blocks()[name]
    if token:
        assert script.count(f"{var}=stm_test_...") == 1
        script = script.replace(f"{var}=stm_test_...", f"{var}={token}")
    for old, new in (subs or {}).items():
        script = script.replace(old, new)
    script = script.replace("localhost:8000", url.removeprefix("http://"))
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL_FAILS + script],
        env=env_for(d, STRATUM_API=url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_readme_has_these_curl_blocks() -> None:
    assert sorted(readme_curl_blocks()) == ["api", "curl", "webhooks"]  # a new block needs its test below


def test_readme_api_example(server, tmp_path) -> None:
    d, url = server
    from stratum.devtools.stdf.lots import LotSpec, write_lot

    # a wafer 40 dies across: its gzip'd base64 (~190 KB) is longer than one command-line argument may be
    # (128 KiB on Linux), as a real lot's is, so the classify example must not pass the body as an argument
    lot = write_lot(LotSpec(lot_id="LOT42", wafers=("W03",), seed=5, die_diameter=40), tmp_path / "gen")
    (tmp_path / "lot.stdf").write_bytes(lot.files[0].path.read_bytes())
    assert len(base64.b64encode(gzip.compress((tmp_path / "lot.stdf").read_bytes()))) > 128 * 1024
    key = stratum(d, "keys", "create", "--workspace", "default", "--scope", "full", "--name", "readme", "--json")
    token = json.loads(key.stdout)["token"]
    r = run_curl_block("api", d, url, tmp_path, token)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    docs, out, dec = [], r.stdout.strip(), json.JSONDecoder()
    while out:
        obj, end = dec.raw_decode(out)
        docs.append(obj)
        out = out[end:].strip()
    lots, job, capability, sql, classified, batch, patterns = docs
    assert sorted(x["lot_id"] for x in lots["items"]) == ["DEMO-FT-2203", "DEMO-WS-1042"]
    assert job["status"] in ("queued", "running", "succeeded") and job["source"]["key"].endswith("/lot.stdf")
    assert len(sql["rows"]) == 1 and sql["rows"][0][0] > 0
    assert classified["wafer_id"] == "W03" and classified["classifier_version"].startswith("stratum-patterns-")
    assert all(set(p) >= {"class_id", "family", "confidence", "explanation"} for p in classified["pattern_classes"])
    wafers = ["W01", "W02", "W03", "W04", "W05", "W06"]
    assert [x["wafer_id"] for x in batch["results"]] == wafers
    assert all(x["lot_id"] == "DEMO-WS-1042" and "pattern_classes" in x for x in batch["results"])
    assert patterns["items"] and {p["family"] for p in patterns["items"]} == {"edge_loc"}
    del capability


def test_readme_curl_example(server, tmp_path) -> None:
    d, url = server
    r = run_curl_block("curl", d, url, tmp_path)
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


def test_readme_webhooks_example(tmp_path) -> None:
    """The webhooks block against a server that allows a loopback receiver, as the block says: the ping
    reaches the receiver signed, and the audit log lists it."""
    import http.server
    import threading

    got: list[dict[str, str]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    d = tmp_path / "data"
    port = _free_port()
    env = env_for(d, STRATUM_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32")
    proc = subprocess.Popen(
        [str(BIN / "stratum"), "serve", "--port", str(port), "--no-watch"],
        env=env,
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
        key = stratum(d, "keys", "create", "--workspace", "default", "--scope", "admin", "--name", "ops", "--json")
        token = json.loads(key.stdout)["token"]
        r = run_curl_block(
            "webhooks",
            d,
            url,
            tmp_path,
            token,
            var="ADMIN",
            subs={"127.0.0.1:9000": f"127.0.0.1:{receiver.server_port}"},
        )
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        receiver.shutdown()
    created = json.loads((tmp_path / "webhook.json").read_text())
    assert created["secret"].startswith("whsec_")
    # one message; delivery is at least once, so a retry of it (a slow answer on a busy machine) carries the
    # same webhook-id, which is what receivers deduplicate on
    assert got and all(g["webhook-signature"].startswith("v1,") for g in got)
    assert len({g["webhook-id"] for g in got}) == 1
    docs, out, dec = [], r.stdout.strip(), json.JSONDecoder()
    while out:
        obj, end = dec.raw_decode(out)
        docs.append(obj)
        out = out[end:].strip()
    ping, deliveries, notifications = docs
    assert (ping["kind"], ping["status"], [a["status_code"] for a in ping["attempts"]]) == ("ping", "succeeded", [204])
    assert [x["webhook_id"] for x in deliveries["items"]] == [created["id"]]
    assert isinstance(notifications["items"], list)
