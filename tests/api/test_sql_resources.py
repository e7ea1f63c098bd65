"""The server survives any query: each hostile query class of the security review ends in a 4xx
problem+json within bounded time and memory while ``/v1/status`` keeps answering, against a real
``stratum serve`` over HTTP (peak RSS of the server and its SQL workers measured from /proc); the bounds
come from settings (DuckDB memory_limit, spill size and directory, threads; the response-byte cap; the
worker memory cap; the number of queries at once)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stratum.query.engine import resources
from stratum.settings import settings_for

from .conftest import strict_json

# Small bounds so each query meets one quickly; test_default_bounds runs one at the shipped defaults.
SMALL = {
    "STRATUM_SQL__TIMEOUT_SECONDS": "4",
    "STRATUM_SQL__WORKER_MEMORY_MB": "640",
    "STRATUM_DUCKDB_MEMORY_MB": "192",
    "STRATUM_DUCKDB_TEMP_MB": "128",
    "STRATUM_DUCKDB_THREADS": "2",
}
SERVER_MB = 640 + 400
STRATUM = str(
    Path(sys.executable).with_name("stratum")
)  # the installed console script  # the worker cap + the server process and an idle worker

HOSTILE = {
    "1gb-string": "SELECT repeat('x', 1000000000) AS s",
    "100k-rows-of-10kB": "SELECT repeat('x', 10000) AS s FROM range(100000)",
    "string_agg-bomb": "SELECT string_agg(repeat('x', 1000), ',') FROM range(10000000)",
    "list-bomb": "SELECT list(repeat('x', 1000)) FROM range(10000000)",
    "lambda-list-bomb": "SELECT list_transform(range(100000000), x -> repeat('x', 100))",
    "huge-sort": "SELECT * FROM range(1000000000) t(x) ORDER BY random()",
    "range-1e12-order-by": "SELECT * FROM range(1000000000000) t(x) ORDER BY x DESC",
    "window-bomb": "SELECT list(x) OVER (ORDER BY x ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
    "FROM range(1000000) t(x)",
    "recursive-strings": "WITH RECURSIVE t(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM t "
    "WHERE length(s) < 4000000000) SELECT length(s) FROM t",
    "distinct-bomb": "SELECT count(*) FROM (SELECT DISTINCT repeat('x', 100) || x FROM range(100000000) t(x))",
}


def _rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


class Server:
    """``stratum serve`` on a free loopback port, with a sampler of the RSS of its process tree."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.env = {**os.environ, "STRATUM_DATA_DIR": str(data_dir), "STRATUM_BACKEND": "local", **env}
        out = subprocess.run(
            [STRATUM, "keys", "create", "--workspace", "default", "--scope", "full", "--name", "t", "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = json.loads(out.stdout)["token"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [STRATUM, "serve", "--no-watch", "--host", "127.0.0.1", "--port", str(port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.base + "/v1/status", timeout=1)
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "stratum serve did not start"
                time.sleep(0.1)
        self.peak = 0
        self._stop = False
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop:
            pids = [self.proc.pid, *_children(self.proc.pid)]
            self.peak = max(self.peak, sum(_rss_mb(p) for p in pids))
            time.sleep(0.01)

    def sql(self, query: str, **body) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.base + "/v1/sql",
            data=json.dumps({"query": query, **body}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, strict_json(r.read())
        except urllib.error.HTTPError as e:
            assert e.headers["content-type"] == "application/problem+json"
            return e.code, strict_json(e.read())

    def close(self) -> None:
        self._stop = True
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve"), SMALL)
    yield srv
    srv.close()


def _status_latencies(base: str, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(base + "/v1/status", timeout=10) as r:
                assert r.status == 200
            out.append(time.monotonic() - t0)
        except OSError:
            out.append(float("inf"))
        stop.wait(0.2)


PEAKS: dict[str, tuple[int, float, str]] = {}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_query_gets_a_clean_4xx_and_the_server_stays_up(server, name):
    server.peak = 0
    stop, lat = threading.Event(), []
    poller = threading.Thread(target=_status_latencies, args=(server.base, stop, lat))
    poller.start()
    t0 = time.monotonic()
    try:
        code, body = server.sql(HOSTILE[name], limit=100_000)
    finally:
        elapsed = time.monotonic() - t0
        stop.set()
        poller.join()
    PEAKS[name] = (server.peak, elapsed, body.get("code", ""))
    print(f"\n{name}: {code} {body.get('code')} in {elapsed:.1f} s, peak RSS {server.peak} MB (server + workers)")
    assert code == 422, body
    assert body["code"] in ("query_resources", "query_timeout"), body
    if body["code"] == "query_resources":
        assert body["detail"].startswith(("the query needs more memory", "the result page is larger")), body
    assert elapsed < 4 + 5 + 3  # time limit + the kill margin + slack
    assert server.peak < SERVER_MB, server.peak
    assert server.proc.poll() is None
    assert lat and max(lat) < 2.0, lat  # /v1/status answered all along
    code, body = server.sql("SELECT 42 AS answer")  # and SQL works again
    assert (code, body.get("rows")) == (200, [[42]]), body


def test_response_byte_cap(server):
    code, body = server.sql("SELECT repeat('x', 10000) AS s FROM range(1000)", limit=1000)
    assert code == 422
    assert body["code"] == "query_resources"
    assert body["max_response_bytes"] == 5_000_000
    assert "larger than the 5,000,000-byte response cap after" in body["detail"]
    assert "limit" in body["detail"] and "next_cursor" in body["detail"]
    code, body = server.sql("SELECT repeat('x', 10000) AS s FROM range(1000)", limit=400)
    assert code == 200 and body["row_count"] == 400 and body["next_cursor"]
    assert len(body["rows"][0][0]) == 10000


def test_one_huge_value_is_refused_past_the_cap(server):
    code, body = server.sql("SELECT repeat('x', 6000000) AS s")
    assert code == 422 and body["code"] == "query_resources"
    assert "after 1 rows" in body["detail"]


def test_engine_settings_per_workspace(tmp_path):
    from stratum.runtime import Runtime

    s = settings_for(tmp_path, backend="local", duckdb_memory_mb=100, duckdb_temp_mb=64, duckdb_threads=3)
    rt = Runtime.from_settings(s)
    try:
        got = {}
        for ws in ("default", "other"):
            db = rt.engine.database(ws)
            got[ws] = db.execute(
                "SELECT current_setting('memory_limit'), current_setting('max_temp_directory_size'), "
                "current_setting('temp_directory'), current_setting('threads')"
            ).fetchone()
        for ws, (mem, temp, tdir, threads) in got.items():
            assert (mem, temp, threads) == ("95.3 MiB", "61.0 MiB", 3)  # DuckDB shows MB as MiB
            assert Path(tdir).name.startswith(f"stratum-duckdb-{ws}-") and Path(tdir).is_dir()
        assert got["default"][2] != got["other"][2]  # one spill directory per workspace database
    finally:
        rt.close()
    assert not any(Path(t).exists() for *_, t, _ in got.values())  # removed with their databases


@pytest.mark.parametrize(
    ("lambda_mb", "expected"),
    [(2048, (1024, 409, 512, 2)), (3008, (1504, 601, 512, 2)), (0, (1536, 614, 512, min(4, os.cpu_count() or 1)))],
)
def test_derived_bounds(tmp_path, monkeypatch, lambda_mb, expected):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    s = settings_for(tmp_path, lambda_memory_mb=lambda_mb)
    r = resources(s)
    assert (r.worker_memory_mb, r.duckdb_memory_mb, r.duckdb_temp_mb, r.threads) == expected


def test_api_lambda_memory_holds_the_sql_worker():
    """The API function's memory holds the server process (~150 MB), an idle worker (~100 MB) and one busy
    worker at its cap."""
    text = (Path(__file__).parents[2] / "infra" / "stratum_infra" / "constants.py").read_text()
    (api_mb,) = re.findall(r"^API_MEMORY_MB = (\d+)$", text, re.MULTILINE)
    r = resources(settings_for(None, lambda_memory_mb=int(api_mb)))
    assert 150 + 100 + r.worker_memory_mb <= int(api_mb)


def test_default_bounds_stop_a_bomb(make_app):
    """At the shipped defaults (in-process app, real worker process)."""
    app, client, tokens = make_app()
    r = client.post(
        "/v1/sql",
        json={"query": HOSTILE["string_agg-bomb"]},
        headers={"Authorization": f"Bearer {tokens['full']}"},
    )
    assert r.status_code == 422, r.text
    body = strict_json(r.text)
    assert body["code"] == "query_resources"
    d = resources(app.state.runtime.settings)
    assert body["memory_limit_mb"] == d.duckdb_memory_mb == 614
    assert f"{d.duckdb_memory_mb} MB of working memory, 512 MB of spill" in body["detail"]


def test_queries_past_the_concurrency_bound_wait_then_503(make_app):
    app, client, tokens = make_app(sql={"max_concurrent": 1, "queue_seconds": 0.5, "timeout_seconds": 4})
    h = {"Authorization": f"Bearer {tokens['full']}"}
    slow = "SELECT count(*) FROM range(100000000000) a"
    assert client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h).status_code == 200  # worker started
    results: list = []
    t = threading.Thread(target=lambda: results.append(client.post("/v1/sql", json={"query": slow}, headers=h)))
    t.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    r = client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h)
    assert r.status_code == 503, r.text
    assert 0.4 < time.monotonic() - t0 < 3
    assert "1 SQL queries are running and this one waited 0.5 s" in strict_json(r.text)["detail"]
    assert client.get("/v1/status").status_code == 200  # other routes are answered meanwhile
    t.join()
    assert results[0].status_code == 422 and results[0].json()["code"] == "query_timeout"


def _busy_worker(app):
    workers = app.state.runtime.sql_runner
    assert len(workers._idle) == 1
    return workers._idle[0]


def test_a_worker_that_stops_answering_is_killed_and_replaced(make_app):
    """A worker past its time limit by kill_after_seconds (here: stopped by SIGSTOP, as a query stuck in a
    function that never checks for the interrupt) is killed; the next query gets a fresh worker."""
    import signal

    app, client, tokens = make_app(sql={"timeout_seconds": 1, "kill_after_seconds": 1})
    h = {"Authorization": f"Bearer {tokens['full']}"}
    assert client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h).status_code == 200
    w = _busy_worker(app)
    os.kill(w.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    r = client.post("/v1/sql", json={"query": "SELECT 2"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "query_timeout", r.text
    assert 1.9 < time.monotonic() - t0 < 15  # timeout + kill_after, plus a loaded machine's scheduling
    assert w.proc.poll() is not None  # killed
    r = client.post("/v1/sql", json={"query": "SELECT 3 AS n"}, headers=h)
    assert (r.status_code, r.json()["rows"]) == (200, [[3]])


def test_a_reply_already_in_the_pipe_with_started_is_read(make_app, monkeypatch):
    """On a busy machine the server may read a worker's pipe only after the worker wrote both "started" and
    its reply. Forced here: the server's select() on the pipe returns only once both are in it. The reply is
    read at once (it once sat in the reader's buffer while select() waited for the kill deadline, and a
    `SELECT 42` came back as a 422 time-out) and the worker is kept."""
    import fcntl
    import pickle
    import select
    import struct
    import termios
    import types

    from stratum.query import workers as workers_module

    app, client, tokens = make_app(sql={"timeout_seconds": 2, "kill_after_seconds": 1})
    h = {"Authorization": f"Bearer {tokens['full']}"}
    assert client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h).status_code == 200
    w = _busy_worker(app)
    started = 8 + len(pickle.dumps(("started",), protocol=pickle.HIGHEST_PROTOCOL))

    def unread(fd: int) -> int:
        buf = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
        return struct.unpack("i", buf)[0]

    def select_once_the_reply_is_written(rlist, wlist, xlist, timeout):
        deadline = time.monotonic() + timeout
        while unread(rlist[0].fileno()) <= started and time.monotonic() < deadline:
            time.sleep(0.005)
        return select.select(rlist, wlist, xlist, max(0.0, deadline - time.monotonic()))

    monkeypatch.setattr(workers_module, "select", types.SimpleNamespace(select=select_once_the_reply_is_written))
    for n in (42, 43):
        r = client.post("/v1/sql", json={"query": f"SELECT {n} AS n"}, headers=h)
        assert (r.status_code, r.json()["rows"]) == (200, [[n]]), r.text
    assert _busy_worker(app) is w and w.proc.poll() is None


def test_a_worker_killed_mid_query_is_a_422_and_replaced(make_app):
    """The kernel's OOM killer (or Lambda's) ending a worker: the query is a 422 naming the bounds, the server
    carries on with a new worker."""
    import signal

    app, client, tokens = make_app()
    h = {"Authorization": f"Bearer {tokens['full']}"}
    assert client.post("/v1/sql", json={"query": "SELECT 1"}, headers=h).status_code == 200
    w = _busy_worker(app)
    threading.Timer(1.0, os.kill, (w.pid, signal.SIGKILL)).start()
    r = client.post("/v1/sql", json={"query": "SELECT count(*) FROM range(100000000000)"}, headers=h)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "query_resources" and body["worker_memory_mb"] == 1536
    r = client.post("/v1/sql", json={"query": "SELECT 4 AS n"}, headers=h)
    assert (r.status_code, r.json()["rows"]) == (200, [[4]])
