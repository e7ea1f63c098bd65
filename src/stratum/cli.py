"""The ``stratum`` command line.

Every command takes ``--data-dir`` (default: ``STRATUM_DATA_DIR``, else a per-user data directory) and,
where it touches data, ``--workspace`` (default ``default``). Errors are one line on stderr and a
non-zero exit status; no tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stratum import __version__
from stratum.errors import StratumError
from stratum.settings import Settings, settings_for

EXIT_FAIL = 1
EXIT_USAGE = 2


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return settings_for(getattr(args, "data_dir", None), **overrides)


def _runtime(args: argparse.Namespace):
    from stratum.runtime import Runtime

    return Runtime.from_settings(_settings(args))


def _err(msg: str) -> None:
    print(f"stratum: {msg}", file=sys.stderr)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


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
        el = now - self.t0
        done = job.bytes_read or 0
        rate = done / el / 1e6 if el > 0 else 0.0
        if self.size:
            frac = min(1.0, done / self.size)
            bar = "#" * int(frac * 30)
            line = f"\r{self.name[:40]:40s} [{bar:30s}] {frac * 100:5.1f}% {rate:6.1f} MB/s {el:5.1f}s"
        else:
            line = f"\r{self.name[:40]:40s} {_human_bytes(done)} {rate:6.1f} MB/s {el:5.1f}s"
        sys.stderr.write(line)
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def cmd_ingest(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    opts = rt.ingest.default_options(
        accept_truncated=args.accept_truncated or None, retest_policy=args.retest_policy, test_key=args.test_key
    )
    failed = 0
    for raw in args.paths:
        path = Path(raw)
        if not path.is_file():
            _err(f"{raw}: no such file")
            failed += 1
            continue
        prog = _Progress(path.name, path.stat().st_size) if not args.json else _Progress(path.name, None)
        if args.json:
            prog.enabled = False
        job = rt.ingest.ingest_path(args.workspace, path, options=opts, progress=prog)
        prog.done()
        if job.status == "failed":
            failed += 1
            _err(f"{raw}: {job.error.message if job.error else 'failed'} (job {job.job_id})")
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
    rt = _runtime(args)
    if args.engine == "athena":
        from stratum.query.athena import AthenaSql

        res = AthenaSql.from_runtime(rt).run(args.workspace, query, scope=scope, limit=args.limit)
    else:
        res = rt.sql.run(args.workspace, query, scope=scope, limit=args.limit or rt.settings.sql.max_rows)
    names = [c["name"] for c in res.columns]
    if args.format == "json":
        print(json.dumps({"columns": names, "rows": res.rows, "truncated": res.truncated}))
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(names)
        w.writerows(res.rows)
        sys.stdout.write(buf.getvalue())
    else:
        print(_table(names, res.rows))
        note = " (truncated)" if res.truncated else ""
        print(f"({res.row_count} row{'s' if res.row_count != 1 else ''}{note}, {res.elapsed_ms:.0f} ms)")
    return 0


def _table(names: list[str], rows: list[list[Any]], max_width: int = 40) -> str:
    def cell(v: Any) -> str:
        s = "NULL" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=False)), line]
    out += [" | ".join(c.rjust(w) if _num(c) else c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in cells]
    return "\n".join(out)


def _num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# -- jobs, lots, inspect -------------------------------------------------------------------------
def cmd_jobs(args: argparse.Namespace) -> int:
    rt = _runtime(args)
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
    print(_table(["job_id", "status", "lot", "file", "created (UTC)", "detail"], rows, max_width=120))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    job = rt.catalog.get_job(args.workspace, args.job_id)
    print(json.dumps(job.public(), default=str, indent=2))
    return 0


def cmd_lots(args: argparse.Namespace) -> int:
    rt = _runtime(args)
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
        print(_table([c["name"] for c in res.columns], res.rows) if res.rows else "no lots")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from stratum.ingest.inspect import inspect_input

    out = []
    bad = 0
    for raw in args.paths:
        p = Path(raw)
        if not p.is_file():
            _err(f"{raw}: no such file")
            bad += 1
            continue
        info = inspect_input(str(p), p.name, size=p.stat().st_size)
        bad += 0 if info["valid"] else 1
        out.append(info)
    print(json.dumps(out if len(out) != 1 else out[0], indent=None if args.json else 2, default=str))
    return EXIT_FAIL if bad else 0


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stratum", description="STDF test data into a queryable Parquet lake.")
    p.add_argument("--version", action="version", version=f"stratum {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, workspace: bool = True):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--data-dir", help="data directory (default: $STRATUM_DATA_DIR or a per-user directory)")
        if workspace:
            sp.add_argument("--workspace", default="default", help="workspace (default: default)")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("ingest", cmd_ingest, "convert STDF files (plain, .gz, .bz2, .zip) into the local lake")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    sp.add_argument(
        "--accept-truncated",
        action="store_true",
        help="keep the complete parts of a truncated file (the job is marked partial)",
    )
    sp.add_argument("--retest-policy", choices=["last", "highest_bin"], help="which execution of a die is final")
    sp.add_argument("--test-key", choices=["number_and_name", "number"], help="test identity key")

    sp = add("sql", cmd_sql, "run a read-only SQL query over the lake")
    sp.add_argument("query", help="a SELECT (or EXPLAIN) statement; '-' reads it from stdin")
    sp.add_argument("--format", choices=["json", "csv", "table"], default="table")
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
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--status", choices=["queued", "running", "succeeded", "partial", "failed", "duplicate"])
    sp.add_argument("--lot")
    sp.add_argument("--limit", type=int, default=50)

    sp = add("job", cmd_job, "show one job as JSON")
    sp.add_argument("job_id")

    sp = add("lots", cmd_lots, "list lots with yields")
    sp.add_argument("--json", action="store_true")

    sp = add("inspect", cmd_inspect, "show what STDF files hold, without ingesting them", workspace=False)
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--json", action="store_true")

    for extra in _EXTRA_COMMANDS:
        extra(sub, add)
    return p


_EXTRA_COMMANDS: list[Callable] = []


def extra_command(fn: Callable) -> Callable:
    """Register a function (sub, add) that adds more subcommands (demo, serve, keys)."""
    _EXTRA_COMMANDS.append(fn)
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    from stratum import commands  # noqa: F401 - registers demo/serve/keys
    from stratum.exports import cli as _export_cli  # noqa: F401 - registers export

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.fn(args)
    except StratumError as exc:
        _err(exc.detail)
        return EXIT_FAIL
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except (ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
