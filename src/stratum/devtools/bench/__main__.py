"""``python -m stratum.devtools.bench {ingest,api,monitors,startup,coldstart,exports,sdk,delivery,all}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stratum.devtools.bench import RESULTS
from stratum.devtools.bench.api import LAKE, SQL_AGGREGATE, bench_api, bench_wafer, build_lake, print_api
from stratum.devtools.bench.delivery import bench_delivery, print_delivery
from stratum.devtools.bench.exports import bench_charts, bench_export, bench_sdk, case_export, print_exports
from stratum.devtools.bench.ingest import bench_ingest, case_reference, case_stratum, print_ingest
from stratum.devtools.bench.monitors import bench_monitors, print_monitors
from stratum.devtools.bench.startup import bench_lambda_cold_start, bench_startup, print_startup


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stratum.devtools.bench")
    sub = ap.add_subparsers(dest="what", required=True)
    cores_help = "comma-separated core lists (taskset -c) for the D-10 scaling rows, separated by ';' ('' for none)"
    d10_help = "timed pairs (Stratum, reference) of each D-10 row, after an untimed warm-up pair"
    big_help = "pairs of the generated --big-mb file (no warm-up pair: it is slow)"
    p = sub.add_parser("ingest")
    p.add_argument("--runs", type=int, default=5, help=d10_help)
    p.add_argument("--big-runs", type=int, default=3, help=big_help)
    p.add_argument("--big-mb", type=int, default=520)
    p.add_argument("--cores", default="0;0,1", help=cores_help)
    p = sub.add_parser("api")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--wafers", type=int, default=200)
    p = sub.add_parser("monitors")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--wafers", type=int, default=200)
    p.add_argument("--monitors", type=int, default=1000)
    p = sub.add_parser("startup")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--wafers", type=int, default=200)
    p = sub.add_parser("coldstart")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--wafers", type=int, default=200)
    p.add_argument("--layers", type=Path, help="layers built for this host (layers/build.py --out): packaged run")
    p.add_argument("--python", help="interpreter of the layers' Python version (with --layers)")
    p = sub.add_parser("exports")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--big-mb", type=int, default=520)
    p.add_argument("--wafers", type=int, default=200)
    p = sub.add_parser("sdk")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--wafers", type=int, default=200)
    sub.add_parser("delivery")
    p = sub.add_parser("all")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--ingest-runs", type=int, default=5, help=d10_help)
    p.add_argument("--big-runs", type=int, default=3, help=big_help)
    p.add_argument("--big-mb", type=int, default=520)
    p.add_argument("--cores", default="0;0,1", help=cores_help)
    p.add_argument("--wafers", type=int, default=200)
    p = sub.add_parser("_export")
    p.add_argument("kind", choices=["stratum", "duckdb"])
    p.add_argument("lake")
    p = sub.add_parser("_case")
    p.add_argument("kind", choices=["stratum", "reference"])
    p.add_argument("path")
    args = ap.parse_args(argv)
    if args.what == "_case":
        res = case_stratum(args.path) if args.kind == "stratum" else case_reference(args.path)
        print(json.dumps(res))
        return 0
    if args.what == "_export":
        print(json.dumps(case_export(args.kind, args.lake)))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.what in ("ingest", "all"):
        rep = bench_ingest(
            args.runs if args.what == "ingest" else args.ingest_runs,
            args.big_mb,
            tuple(c for c in args.cores.split(";") if c),
            big_runs=args.big_runs,
        )
        (RESULTS / "ingest.json").write_text(json.dumps(rep, indent=2))
        print_ingest(rep)
    if args.what in ("startup", "all"):
        build_lake(args.wafers)
        rep = bench_startup(
            args.runs if args.what == "startup" else max(args.runs, 5),
            LAKE,
            "BENCH-03",
            bench_wafer(args.wafers),
            SQL_AGGREGATE,
        )
        (RESULTS / "startup.json").write_text(json.dumps(rep, indent=2))
        print_startup(rep)
    if args.what == "coldstart":
        build_lake(args.wafers)
        rows = bench_lambda_cold_start(args.runs, LAKE, "BENCH-03", layers=args.layers, python=args.python)
        rep = {"runs": args.runs, "rows": rows}
        (RESULTS / "coldstart.json").write_text(json.dumps(rep, indent=2))
        print_startup(rep)
    if args.what in ("api", "all"):
        # calls take milliseconds: many more of them than ingest runs for a stable median
        rep = bench_api(runs=max(args.runs, 15 if args.what == "all" else 5), wafers=args.wafers)
        (RESULTS / "api.json").write_text(json.dumps(rep, indent=2))
        print_api(rep)
    if args.what in ("monitors", "all"):
        rep = bench_monitors(
            runs=max(args.runs, 15 if args.what == "all" else 5),
            wafers=args.wafers,
            monitors=getattr(args, "monitors", 1000),
        )
        (RESULTS / "monitors.json").write_text(json.dumps(rep, indent=2))
        print_monitors(rep)
    if args.what in ("exports", "all"):
        runs = min(args.runs, 3)  # each export case reads the whole results table: keep it short
        rep = {
            "export": bench_export(runs, args.big_mb),
            "sdk": bench_sdk(max(runs, 7), wafers=args.wafers),
            "charts": bench_charts(max(runs, 7)),
        }
        (RESULTS / "exports.json").write_text(json.dumps(rep, indent=2))
        print_exports(rep)
    if args.what == "sdk":
        rep = {"sdk": bench_sdk(args.runs, wafers=args.wafers)}
        (RESULTS / "sdk.json").write_text(json.dumps(rep, indent=2))
        print_exports(rep)
    if args.what in ("delivery", "all"):
        rep = bench_delivery()
        (RESULTS / "delivery.json").write_text(json.dumps(rep, indent=2))
        print_delivery(rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
