"""Export and SDK benchmarks.

* Export: ``SELECT * FROM results`` of a lake built from the big benchmark file, to zstd Parquet, by the
  export service (``ExportService.produce``: its own guarded database, DuckDB ``COPY`` into a private directory,
  SHA-256 of the file) next to DuckDB's own ``COPY (same query) TO ... (same options)`` over the same views on an
  unlocked connection. Each case runs in a fresh subprocess (wall time and its own peak RSS), the two sides
  interleaved with alternating order; the 1-minute load average is recorded (the machine may be shared).
* SDK: ``client.sql(q).to_arrow()`` against a raw httpx POST of the same request, on the Arrow IPC path (the
  SDK's default with pyarrow) and the JSON path: end to end through the in-process app, and client side
  only (the app's recorded answer replayed), in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stratum.devtools.bench import DATA

QUERY = "SELECT * FROM results"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_lake(mb: int) -> Path:
    """A local data directory holding the ingested ``bench_<mb>mb.stdf``."""
    from stratum.devtools.bench.ingest import big_file
    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    lake = DATA / f"export_lake_{mb}"
    marker = lake / ".complete"
    if marker.exists():
        return lake
    src = big_file(mb)
    rt = Runtime.from_settings(settings_for(lake, backend="local"))
    job = rt.ingest.ingest_path("default", str(src))
    assert job.status == "succeeded", job.error
    rt.close()
    marker.touch()
    return lake


def case_export(kind: str, lake: str) -> dict:
    from stratum.query.duckdb_views import view_sql
    from stratum.query.engine import Scope
    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    rt = Runtime.from_settings(settings_for(lake, backend="local"))
    with tempfile.TemporaryDirectory(dir=DATA) as d:
        out = Path(d) / "out.parquet"
        t0 = time.perf_counter()
        if kind == "stratum":
            with rt.exports.produce("default", QUERY, Scope(), "parquet", work_dir=d) as (path, stats):
                os.replace(path, out)
                rows = stats.rows
        else:
            import duckdb

            resolved = rt.engine.resolve("default", Scope())  # the views are timed on both sides
            con = duckdb.connect()
            from stratum.lake import layout

            for stmt in view_sql(
                resolved.members,
                lambda t, m: rt.lake.uri(layout.data_key("default", t, m.lot_id, m.job_id)),
                retest_policy=resolved.retest_policy,
            ):
                con.execute(stmt)
            row_group = rt.settings.exports.row_group_rows  # the options the export service passes
            con.execute(f"COPY ({QUERY}) TO '{out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group})")
            rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]
        el = time.perf_counter() - t0
        size = out.stat().st_size
    rt.close()
    return {"seconds": el, "rows": rows, "bytes": size, "rss_mb": _rss_mb()}


def _run(kind: str, lake: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "stratum.devtools.bench", "_export", kind, str(lake)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"export case {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_export(runs: int, mb: int) -> dict:
    lake = export_lake(mb)
    cases: dict[str, list[dict]] = {"stratum": [], "duckdb_copy": []}
    load = [os.getloadavg()[0]]
    for i in range(runs):  # interleaved, order alternating: both sides see the same machine load and cache
        order = (("stratum", "stratum"), ("duckdb_copy", "duckdb"))
        for name, kind in order if i % 2 == 0 else order[::-1]:
            cases[name].append(_run(kind, lake))
            load.append(os.getloadavg()[0])
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "rss_mb", "bytes")} for k, v in cases.items()}
    rows = {r["rows"] for v in cases.values() for r in v}
    assert len(rows) == 1, rows
    return {
        "source_mb": mb,
        "rows": rows.pop(),
        "runs": runs,
        "median": med,
        "ratio_seconds": med["stratum"]["seconds"] / med["duckdb_copy"]["seconds"],
        "ratio_rss": med["stratum"]["rss_mb"] / med["duckdb_copy"]["rss_mb"],
        "seconds": {k: [round(r["seconds"], 2) for r in v] for k, v in cases.items()},
        "load_avg_1min": [round(x, 1) for x in load],  # the machine is shared: the load while it ran
        "cpus": os.cpu_count(),
    }


def _interleaved(fns: dict, runs: int) -> dict[str, float]:
    """Median ms of each function over ``runs`` rounds, the order rotating every round (neither side always
    runs first)."""
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(runs):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _paired(fns: dict, runs: int) -> dict[str, float]:
    """The SDK and raw cases of one path interleaved together, each path in its own block: a server's SQL
    worker that ends a large JSON page is replaced, and the query after it pays a cold worker."""
    out: dict[str, float] = {}
    for kind in ("ipc", "json"):
        out |= _interleaved({k: f for k, f in fns.items() if k.endswith(kind)}, runs)
    return out


def bench_sdk(runs: int, rows: int = 100_000, wafers: int = 200) -> dict:
    """SDK ``client.sql(q).to_arrow()`` against a raw httpx POST of the same request, in the same run.

    Two paths: Arrow IPC pages (what the SDK asks for when pyarrow is installed; the raw side sends
    ``Accept: application/vnd.apache.arrow.stream`` and reads ``pyarrow.ipc.open_stream``) and JSON pages
    (``arrow=False``; raw side ``.json()``). Measured twice:

    * end to end through the in-process app over the API bench lake: the query's own time is in both sides;
    * client side only: the app's recorded answer replayed by an httpx transport, so only what the SDK adds
      is timed (request building, sending through httpx, retry bookkeeping, parsing): its cost in ms per
      request, which the end-to-end ratio carries on top of the query's time.
    """
    import httpx
    import pyarrow as pa
    from fastapi.testclient import TestClient

    from stratum.api.app import create_app
    from stratum.devtools.bench.api import LAKE, build_lake
    from stratum.settings import settings_for

    sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "sdk" / "python" / "src"))
    import stratum_client  # type: ignore[import-not-found]  # the SDK's source tree (not installed)

    build_lake(wafers)
    big = {"analytics_per_window": 10**9, "sql_per_window": 10**9, "uploads_per_window": 10**9}
    app = create_app(settings=settings_for(LAKE / "data", backend="local", rate_limits=big))
    token = app.state.keys.create("default", ["full"], "bench")[0]
    tc = TestClient(app)
    lot = "BENCH-00"
    q = f"SELECT lot_id, wafer_id, x, y, site_num, test_num, result, passed FROM results LIMIT {rows}"
    body = {"query": q, "limit": rows, "context": {"lot_id": lot}}
    ipc_accept = {"Accept": "application/vnd.apache.arrow.stream"}
    h = {"Authorization": f"Bearer {token}"}

    def cases(http: httpx.Client) -> dict:
        client = stratum_client.Client(api_key=token, base_url="http://testserver", http_client=http)

        def raw_ipc() -> int:
            r = http.post("http://testserver/v1/sql", json=body, headers={**h, **ipc_accept})
            r.raise_for_status()
            return pa.ipc.open_stream(r.content).read_all().num_rows

        def sdk_ipc() -> int:
            res = client.sql(q, lot_id=lot, page_size=rows)
            assert res.arrow
            return res.to_arrow().num_rows

        def raw_json() -> int:
            r = http.post("http://testserver/v1/sql", json=body, headers=h)
            r.raise_for_status()
            return len(r.json()["rows"])

        def sdk_json() -> int:
            return client.sql(q, lot_id=lot, page_size=rows, arrow=False).to_arrow().num_rows

        fns = {"raw_http_ipc": raw_ipc, "sdk_to_arrow_ipc": sdk_ipc, "raw_http_json": raw_json}
        fns["sdk_to_arrow_json"] = sdk_json
        for f in fns.values():
            assert f() == rows  # warm, and the same rows on every path
        return fns

    recorded = {
        "ipc": tc.post("/v1/sql", json=body, headers={**h, **ipc_accept}),
        "json": tc.post("/v1/sql", json=body, headers=h),
    }

    class Replay(httpx.BaseTransport):
        """The app's recorded answer (Arrow or JSON by the request's Accept), without the app."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            r = recorded["ipc" if "arrow" in request.headers.get("accept", "") else "json"]
            return httpx.Response(200, headers=r.headers, content=r.content)

    client_side = _paired(cases(httpx.Client(transport=Replay())), max(runs * 5, 30))
    end_to_end = _paired(cases(tc), runs)
    app.state.runtime.close()

    def ratios(med: dict[str, float]) -> dict[str, float]:
        return {
            "ipc": med["sdk_to_arrow_ipc"] / med["raw_http_ipc"],
            "json": med["sdk_to_arrow_json"] / med["raw_http_json"],
        }

    return {
        "rows": rows,
        "runs": runs,
        "query": q + f"  (context lot_id={lot})",
        "end_to_end_ms": end_to_end,
        "client_side_ms": client_side,
        "client_side_runs": max(runs * 5, 30),
        "ratio_end_to_end": ratios(end_to_end),
        "ratio_client_side": ratios(client_side),
    }


def bench_charts(runs: int) -> dict:
    """Median render time of each chart (PNG and SVG) over the API lake's first lot, numbers fetched once."""
    from stratum.devtools.bench.api import LAKE, build_lake
    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    build_lake(200)
    rt = Runtime.from_settings(settings_for(LAKE / "data", backend="local"))
    from stratum.analytics.charts import ChartService
    from stratum.analytics.service import AnalyticsService

    svc = ChartService(AnalyticsService(rt.engine, rt.catalog))
    lot = "BENCH-00"
    cases = {
        "stacked_map": (svc.stacked_map("default", lot), svc.render_stacked_map),
        "pareto": (svc.pareto("default", lot), svc.render_pareto),
        "histogram": (svc.histogram("default", lot, 1000), svc.render_histogram),
        "boxplot": (svc.boxplot("default", lot, 1000), svc.render_boxplot),
        "trend": (svc.trend("default", 1000), svc.render_trend),
        "gallery": (svc.gallery("default", lot), svc.render_gallery),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (data, render) in cases.items():
        out[name] = {}
        for fmt in ("png", "svg"):
            render(data, fmt)
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                render(data, fmt)
                ts.append((time.perf_counter() - t0) * 1e3)
            out[name][fmt] = statistics.median(ts)
    rt.close()
    return {"runs": runs, "median_ms": out}


def print_exports(rep: dict) -> None:
    e = rep.get("export")
    if e:
        m = e["median"]
        print(f"\nExport of {QUERY!r}: {e['rows']:,} rows (from a {e['source_mb']} MB STDF), median of {e['runs']}")
        for k in ("stratum", "duckdb_copy"):
            mk = m[k]
            print(f"  {k:12s} {mk['seconds']:7.2f} s   peak RSS {mk['rss_mb']:7.0f} MB   {mk['bytes'] / 1e6:7.1f} MB")
        print(f"  ratio        {e['ratio_seconds']:.2f}x time, {e['ratio_rss']:.2f}x RSS")
        if "load_avg_1min" in e:
            print(f"  machine load (1-min average, {e['cpus']} CPUs) during the runs: {e['load_avg_1min']}")
    s = rep.get("sdk")
    if s:
        print(f"\nSDK client.sql(q).to_arrow() vs raw httpx of the same request, {s['rows']:,} rows")
        for label, key, n in (
            ("end to end, in-process app", "end_to_end_ms", s["runs"]),
            ("client side only, recorded answer replayed", "client_side_ms", s["client_side_runs"]),
        ):
            m = s[key]
            r = s["ratio_" + key.removesuffix("_ms")]
            print(f"  {label} (median of {n}):")
            for path, kind in (("Arrow IPC path (SDK default)", "ipc"), ("JSON path (arrow=False)", "json")):
                sdk, raw = m[f"sdk_to_arrow_{kind}"], m[f"raw_http_{kind}"]
                line = f"    {path:29s} SDK {sdk:8.1f} ms  raw {raw:8.1f} ms  ratio {r[kind]:.2f}x"
                print(f"{line}  (SDK adds {sdk - raw:+.2f} ms)")
    c = rep.get("charts")
    if c:
        print(
            f"\nChart render, median of {c['runs']} (ms): "
            + ", ".join(f"{k} {v['png']:.0f}/{v['svg']:.0f}" for k, v in c["median_ms"].items())
            + "  (PNG/SVG)"
        )
