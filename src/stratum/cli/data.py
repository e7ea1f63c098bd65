"""Commands on the data: ingest, sql, jobs, job, lots, inspect."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from stratum.cli.common import EXIT_FAIL, err, human_bytes, runtime_from, settings_from, table


# -- ingest --------------------------------------------------------------------------------------
class _Progress:
    """A one-line progress bar on a terminal (stderr)."""

    def __init__(self, name: str, size: int | None) -> None:
        self.name = name
        self.size = size
        self.t0 = time.monotonic()
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, job) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        sys.stderr.write("\r" + self.line(job, now - self.t0))
        sys.stderr.flush()

    def line(self, job, elapsed: float) -> str:
        """Progress through the (possibly compressed) input; throughput in uncompressed STDF bytes."""
        done = job.bytes_read or 0
        stdf = job.stdf_bytes or done
        rate = stdf / elapsed / 1e6 if elapsed > 0 else 0.0
        if self.size:
            frac = min(1.0, done / self.size)
            bar = "#" * int(frac * 30)
            return f"{self.name[:40]:40s} [{bar:30s}] {frac * 100:5.1f}% {rate:6.1f} MB/s STDF {elapsed:5.1f}s"
        return f"{self.name[:40]:40s} {human_bytes(stdf)} STDF {rate:6.1f} MB/s {elapsed:5.1f}s"

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


STDF_SUFFIXES = (".stdf", ".std")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip")


def _is_stdf_name(p: Path) -> bool:
    """What a folder walk picks up: *.stdf / *.std, optionally .gz/.bz2/.zip, and *.zip (case-insensitive)."""
    name = p.name.lower()
    for c in COMPRESSED_SUFFIXES:
        if name.endswith(c):
            if c == ".zip":
                return True
            name = name[: -len(c)]
            break
    return name.endswith(STDF_SUFFIXES)


def expand_paths(raw_paths: list[str]) -> list[tuple[str, Path | None]]:
    """Files as given; a folder becomes its STDF files, recursively, sorted (hidden entries skipped).
    ``None`` marks a path that does not exist."""
    out: list[tuple[str, Path | None]] = []
    for raw in raw_paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and _is_stdf_name(f) and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            out += [(str(f), f) for f in found]
        else:
            out.append((raw, p if p.is_file() else None))
    return out


def _missing(raw: str, as_json: bool) -> None:
    msg = f"{raw}: no such file or directory"
    err(msg)
    if as_json:
        print(json.dumps({"file": raw, "status": "error", "error": {"code": "not_found", "message": msg}}), flush=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    opts = rt.ingest.default_options(
        accept_truncated=args.accept_truncated or None, retest_policy=args.retest_policy, test_key=args.test_key
    )
    failed = 0
    files = expand_paths(args.paths)
    for raw in args.paths:
        if Path(raw).is_dir() and not any(r.startswith(str(Path(raw))) for r, f in files if f is not None):
            err(f"{raw}: no STDF files (*.stdf, *.std, optionally .gz/.bz2/.zip) in this folder")
            failed += 1
    for raw, path in files:
        if path is None:
            _missing(raw, args.json)
            failed += 1
            continue
        prog = _Progress(path.name, path.stat().st_size) if not args.json else _Progress(path.name, None)
        if args.json:
            prog.enabled = False
        job = rt.ingest.ingest_path(args.workspace, path, options=opts, progress=prog)
        prog.done()
        if job.status == "failed":
            failed += 1
            err(f"{raw}: {job.error.message if job.error else 'failed'} (job {job.job_id})")
        if args.json:
            print(json.dumps(_job_summary(job)), flush=True)
        else:
            _print_job_line(job, raw)
    return EXIT_FAIL if failed else 0


def _job_summary(job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "file": job.file_name,
        "lot_id": job.lot_id,
        "rows": job.rows,
        "records": job.records,
        "parts": job.parts,
        "duplicate_of": job.duplicate_of,
        "warnings": [w.model_dump() for w in job.warnings],
        "error": job.error.model_dump() if job.error else None,
        "timings": job.timings,
    }


def _print_job_line(job, name: str) -> None:
    if job.status in ("succeeded", "partial"):
        secs = job.timings.get("total_s")
        extra = f", {len(job.warnings)} warning(s)" if job.warnings else ""
        print(
            f"{job.status:9s} {name}: lot {job.lot_id}, {job.parts} parts, {job.rows.get('results', 0)} results"
            f"{f' in {secs:.2f}s' if secs else ''}{extra} (job {job.job_id})"
        )
    elif job.status == "duplicate":
        print(f"duplicate {name}: byte-identical to job {job.duplicate_of} (lot {job.lot_id}); nothing added")
    else:
        print(f"{job.status:9s} {name} (job {job.job_id})")


# -- sql -----------------------------------------------------------------------------------------
def cmd_sql(args: argparse.Namespace) -> int:
    from stratum.query.engine import Scope

    query = sys.stdin.read() if args.query == "-" else args.query
    scope = Scope(lot_id=args.lot, snapshot_job_id=args.snapshot_job_id, wafer_ids=args.wafer if args.wafer else None)
    rt = runtime_from(args)
    if args.engine == "athena":
        from stratum.query.athena import AthenaSql

        res = AthenaSql.from_runtime(rt).run(args.workspace, query, scope=scope, limit=args.limit)
    else:
        res = rt.sql.run(args.workspace, query, scope=scope, limit=args.limit or rt.settings.sql.max_rows)
    names = [c["name"] for c in res.columns]
    if res.truncated:  # on stderr, whatever the format, so a CSV or JSON on stdout stays clean
        err(
            f"the result was cut at {res.row_count:,} rows (the row cap); the query returns more. For every row "
            "use `stratum export`, or page with --limit and ORDER BY ... LIMIT/OFFSET in the query"
        )
    if args.format == "json":
        print(json.dumps({"columns": names, "rows": res.rows, "truncated": res.truncated}))
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(names)
        w.writerows(res.rows)
        sys.stdout.write(buf.getvalue())
    else:
        print(table(names, res.rows))
        note = " (truncated)" if res.truncated else ""
        print(f"({res.row_count} row{'s' if res.row_count != 1 else ''}{note}, {res.elapsed_ms:.0f} ms)")
    return 0


# -- jobs, lots, inspect -------------------------------------------------------------------------
def cmd_jobs(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    jobs, _ = rt.catalog.list_jobs(args.workspace, status=args.status, lot_id=args.lot, limit=args.limit)
    if args.json:
        print(json.dumps([j.public() for j in jobs], default=str))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    rows = []
    for j in jobs:
        detail = (
            j.error.message
            if j.error
            else (
                f"duplicate of {j.duplicate_of}"
                if j.duplicate_of
                else f"{j.parts} parts, {sum(j.rows.values())} rows"
                if j.rows
                else ""
            )
        )
        rows.append(
            [j.job_id, j.status, j.lot_id or "", j.file_name, j.created_at.strftime("%Y-%m-%d %H:%M:%S"), detail]
        )
    print(table(["job_id", "status", "lot", "file", "created (UTC)", "detail"], rows, max_width=120))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    job = rt.catalog.get_job(args.workspace, args.job_id)
    print(json.dumps(job.public(), default=str, indent=2))
    return 0


def cmd_lot(args: argparse.Namespace) -> int:
    """One lot: yields, wafers, files and the warnings of its files (summary records that disagree with the raw
    records among them) - what GET /v1/lots/{lot_id} answers."""
    rt = runtime_from(args)
    d = rt.analytics.lot(args.workspace, args.lot_id, args.snapshot_job_id)
    if args.json:
        print(json.dumps(d, default=str))
        return 0

    def pct(v) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    print(
        f"lot {d['lot_id']} (snapshot {d['snapshot_job_id']}): {d['file_count']} file(s), {d['part_count']} parts, "
        f"{d['good_count']} good, yield {pct(d['yield'])}, first-pass {pct(d['first_pass_yield'])}, "
        f"{d['retest_count']} retests, {d['wafer_count']} wafer(s)"
    )
    if d["wafers"]:
        rows = [[w["wafer_id"], w["part_count"], w["good_count"], pct(w["yield"])] for w in d["wafers"]]
        print(table(["wafer", "parts", "good", "yield"], rows))
    if d["warnings"]:
        print(f"{len(d['warnings'])} warning(s):")
        for w in d["warnings"]:
            print(f"  [{w['code']}] {w['file_name']}: {w['message']}")
    return 0


def cmd_lots(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    res = rt.sql.run(
        args.workspace,
        "SELECT lot_id, part_type, program, file_count, wafer_count, part_count, "
        "good_count, round(100 * yield, 2) AS yield_pct, round(100 * first_pass_yield, 2) AS "
        "first_pass_pct, job_id FROM lots ORDER BY start_time DESC NULLS LAST, lot_id",
        limit=rt.settings.sql.max_rows,
    )
    if args.json:
        names = [c["name"] for c in res.columns]
        print(json.dumps([dict(zip(names, r, strict=False)) for r in res.rows]))
    else:
        print(table([c["name"] for c in res.columns], res.rows) if res.rows else "no lots")
    return 0


def _iso(epoch: Any) -> str:
    """STDF epoch seconds → ISO 8601 UTC text ('-' when unknown)."""
    from datetime import UTC, datetime

    if not isinstance(epoch, int | float) or epoch <= 0:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inspect_summary(info: dict[str, Any]) -> str:
    """The human summary of one inspected file."""
    head = f"{info['file_name']}: " + ("valid STDF" if info["valid"] else "NOT valid")
    lines = [head + (f" ({info['compression']})" if info.get("compression") not in (None, "plain") else "")]
    if "records" in info:
        lines += [
            f"  lot        {info.get('lot_id') or '-'} (from {info.get('lot_id_source') or '-'})"
            + (f", sublot {info['sublot_id']}" if info.get("sublot_id") else ""),
            f"  product    {info.get('part_type') or '-'}, program {info.get('program') or '-'}",
            f"  tester     {info.get('tester_type') or '-'} on {info.get('node_name') or '-'}",
            f"  started    {_iso(info.get('start_time'))}",
            f"  size       {human_bytes(info.get('stdf_bytes') or 0)} of STDF, {info['records']:,} records, "
            f"{info.get('tests', 0)} tests",
            f"  parts      {info.get('parts', 0):,} ({info.get('parts_passed', 0):,} passed, "
            f"{info.get('parts_failed', 0):,} failed), sites {info.get('sites', [])}, heads {info.get('heads', [])}",
        ]
    wafers = info.get("wafers") or []
    if wafers:
        rows = [
            [w["wafer_id"], w["part_count"], w["good_count"], _iso(w.get("start_time")), _iso(w.get("finish_time"))]
            for w in wafers
        ]
        lines.append("  " + table(["wafer", "parts", "good", "started", "finished"], rows).replace("\n", "\n  "))
    for pr in info.get("problems") or []:
        lines.append(f"  problem [{pr['code']}] {pr['message']}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from stratum.ingest.inspect import inspect_input
    from stratum.stdf.source import decompression_limits

    out = []
    bad = 0
    limits = decompression_limits(settings_from(args).input_limits)
    for raw, p in expand_paths(args.paths):
        if p is None:
            _missing(raw, args.json)
            bad += 1
            continue
        info = inspect_input(str(p), p.name, size=p.stat().st_size, limits=limits)
        bad += 0 if info["valid"] else 1
        if args.json:
            print(json.dumps(info, default=str), flush=True)
        else:
            out.append(inspect_summary(info))
    if out:
        print("\n\n".join(out))
    return EXIT_FAIL if bad else 0


# numpy's OpenBLAS starts a thread per core when it loads (30-40 ms of CPU, more on a busy machine). Reading STDF
# needs no BLAS; what runs after an ingest (wafer classification, on_ingest monitors) multiplies small matrices,
# which one thread does as fast, with the bits a 1-vCPU Lambda gets (a product's rounding can depend on the
# thread count). A user's own OPENBLAS_NUM_THREADS is kept.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1"}

# ingest and sql build their pydantic models with pydantic's plugins off (stratum.coldstart.pydantic_plugins_off:
# its plugin loader's importlib.metadata import and scan of every installed package's entry points cost ~20 ms of
# CPU, the scan alone ~5 ms); a user's own PYDANTIC_DISABLE_PLUGINS is kept
PYDANTIC_PLUGINS_OFF = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
INGEST_ENVIRON = {**ONE_BLAS_THREAD, **PYDANTIC_PLUGINS_OFF}

# what every ingest imports, loaded up front without GC passes (cli._run): the lake writer's first Arrow
# conversion imports pyarrow.compute (casts) and numpy.ma (masks) on its own
INGEST_PRELOAD = ("stratum.runtime", "stratum.ingest.service", "stratum.lake.writer", "pyarrow.compute", "numpy.ma")


def register(add) -> None:
    sp = add("ingest", cmd_ingest, "convert STDF files (plain, .gz, .bz2, .zip) into the local lake")
    sp.set_defaults(preload=INGEST_PRELOAD, environ=INGEST_ENVIRON)
    sp.add_argument("paths", nargs="+", metavar="PATH", help="STDF files or folders (searched recursively)")
    sp.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    sp.add_argument(
        "--accept-truncated",
        action="store_true",
        help="keep the complete parts of a truncated file (the job is marked partial)",
    )
    sp.add_argument("--retest-policy", choices=["last", "highest_bin"], help="which execution of a die is final")
    sp.add_argument("--test-key", choices=["number_and_name", "number"], help="test identity key")

    sp = add("sql", cmd_sql, "run a read-only SQL query over the lake")
    sp.set_defaults(preload=("stratum.runtime", "stratum.query.sql"), environ=PYDANTIC_PLUGINS_OFF)
    sp.add_argument("query", help="a SELECT (or EXPLAIN) statement; '-' reads it from stdin")
    sp.add_argument("--format", choices=["json", "csv", "table"], default="table", help="output format")
    sp.add_argument("--lot", help="scope the tables to one lot")
    sp.add_argument("--snapshot-job-id", help="pin the lot's snapshot published by this job")
    sp.add_argument("--wafer", action="append", help="scope to these wafer ids (repeatable)")
    sp.add_argument("--limit", type=int, help="maximum rows (default and cap: 100000)")
    sp.add_argument(
        "--engine",
        choices=["duckdb", "athena"],
        default="duckdb",
        help="athena: submit the same guarded query to Amazon Athena (AWS backend)",
    )

    sp = add("jobs", cmd_jobs, "list ingest jobs with their status and errors")
    sp.add_argument("--json", action="store_true", help="print the jobs as a JSON list")
    sp.add_argument(
        "--status",
        choices=["queued", "running", "succeeded", "partial", "failed", "duplicate"],
        help="only jobs with this status",
    )
    sp.add_argument("--lot", help="only this lot's jobs")
    sp.add_argument("--limit", type=int, default=50, help="most jobs to list, newest first")

    sp = add("job", cmd_job, "show one job as JSON")
    sp.add_argument("job_id")

    sp = add("lots", cmd_lots, "list lots with yields")
    sp.add_argument("--json", action="store_true", help="print the lots as a JSON list")

    sp = add("lot", cmd_lot, "one lot: yields, wafers and its files' warnings (summary mismatches)")
    sp.add_argument("lot_id")
    sp.add_argument("--snapshot-job-id", help="the lot's snapshot published by this job")
    sp.add_argument("--json", action="store_true", help="the lot detail as JSON (as GET /v1/lots/{lot_id})")

    sp = add("inspect", cmd_inspect, "show what STDF files hold, without ingesting them", workspace=False)
    sp.set_defaults(environ=ONE_BLAS_THREAD)
    sp.add_argument("paths", nargs="+", metavar="PATH", help="STDF files or folders (searched recursively)")
    sp.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines) instead of a summary")
