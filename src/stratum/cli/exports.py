"""``stratum export QUERY -o FILE.(parquet|csv|arrow)``: a query's whole result to a local file, streamed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stratum.cli.common import EXIT_USAGE, err, runtime_from

SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


def cmd_export(args: argparse.Namespace) -> int:
    from stratum.query.engine import Scope

    out = Path(args.output)
    fmt = args.format or SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        err(f"cannot tell the format of {out}: name it .parquet, .csv or .arrow, or pass --format")
        return EXIT_USAGE
    query = sys.stdin.read() if args.query == "-" else args.query
    scope = Scope(lot_id=args.lot, snapshot_job_id=args.snapshot_job_id, wafer_ids=args.wafer or None)
    rt = runtime_from(args)
    try:
        # written in a private directory beside the output (same filesystem), then renamed into place
        with rt.exports.produce(args.workspace, query, scope, fmt, work_dir=out.resolve().parent) as (path, stats):
            os.replace(path, out)
    finally:
        rt.close()
    print(f"{stats.rows} rows, {stats.bytes} bytes, {stats.elapsed_ms / 1e3:.1f} s -> {out} (sha256 {stats.sha256})")
    return 0


def register(add) -> None:
    sp = add("export", cmd_export, "write a query's whole result (no row cap) to a Parquet, CSV or Arrow file")
    sp.add_argument("query", help="a SELECT statement; '-' reads it from stdin")
    sp.add_argument("-o", "--output", required=True, help="FILE.parquet, FILE.csv or FILE.arrow")
    sp.add_argument(
        "--format",
        choices=["parquet", "csv", "arrow"],
        help="overrides the file name's suffix (default: from the suffix)",
    )
    sp.add_argument("--lot", help="scope the tables to one lot")
    sp.add_argument("--snapshot-job-id", help="pin the lot's snapshot published by this job")
    sp.add_argument("--wafer", action="append", help="scope to these wafer ids (repeatable)")
