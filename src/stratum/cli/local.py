"""Commands that run Stratum on this machine: ``demo`` (sample lots end to end) and ``serve`` (API + drop folder)."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from stratum.cli.common import runtime_from, table


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cmd_demo(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        return _demo(rt, args)
    finally:
        rt.close()  # DuckDB's threads stop before the interpreter exits


def _demo(rt, args: argparse.Namespace) -> int:
    from stratum.devtools.demo import run_demo

    print(f"Generating sample lots into {rt.settings.data_dir / 'incoming'} and ingesting them ...")
    res = run_demo(rt)
    print()
    rows = [
        [
            lot["lot_id"],
            lot["part_type"],
            lot["file_count"],
            lot["wafer_count"],
            lot["part_count"],
            lot["good_count"],
            _pct(lot["yield"]),
            _pct(lot["first_pass_yield"]),
            lot["retest_count"],
        ]
        for lot in res.lots
    ]
    print(
        table(
            ["lot", "product", "files", "wafers", "dies/parts", "good", "final yield", "first-pass yield", "retests"],
            rows,
        )
    )
    ws = [lot for lot in res.lots if lot["wafer_count"]]
    if ws:
        w = rt.sql.run(
            "default",
            "SELECT wafer_id, part_count, good_count, yield, first_pass_yield FROM wafers "
            f"WHERE lot_id = '{ws[0]['lot_id']}' ORDER BY wafer_id",
            limit=100,
        )
        print(f"\nWafers of {ws[0]['lot_id']}:")
        print(
            table(
                ["wafer", "dies", "good", "final yield", "first-pass yield"],
                [[r[0], r[1], r[2], _pct(r[3]), _pct(r[4])] for r in w.rows],
            )
        )
    print(
        f"\n{len(res.jobs)} jobs: "
        + ", ".join(
            f"{sum(1 for j in res.jobs if j.status == s)} {s}"
            for s in ("succeeded", "partial", "duplicate", "failed")
            if any(j.status == s for j in res.jobs)
        )
    )
    for j in res.failed:
        print(f"  failed  {j.file_name}: {j.error.message if j.error else '?'}")
    for line in _after_demo(rt, args):
        print(line)
    return 0


def invoked_as() -> str:
    """How to call this CLI again: ``stratum`` when that is on PATH and is this program, else the path it was
    started with (``.venv/bin/stratum`` when the virtual environment is not activated)."""
    import shutil

    argv0 = sys.argv[0]
    if Path(argv0).name != "stratum":
        return "stratum"
    on_path = shutil.which("stratum")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "stratum"
    return argv0


def _after_demo(rt, args) -> list[str]:
    dd = "" if args.data_dir is None else f" --data-dir {args.data_dir}"
    lot = "DEMO-WS-1042"
    st = invoked_as()
    out = [
        "",
        "Next:",
        f"  {st} lots{dd}",
        f"  {st} jobs{dd}",
        f"  {st} sql{dd} \"SELECT wafer_id, round(100*yield,1) AS yield_pct FROM wafers WHERE lot_id = '{lot}'\"",
        f"  {st} sql{dd} \"SELECT bin_num, bin_name, part_count, percent FROM bins WHERE lot_id = '{lot}' "
        "AND bin_type = 'H' ORDER BY part_count DESC\"",
    ]
    if st != "stratum":
        out.append("  (or `source .venv/bin/activate` once, then plain `stratum ...`)")
    return out


class _Terminated(Exception):
    """SIGTERM reached ``serve`` (after uvicorn's graceful shutdown, which re-raises the signal it caught)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from stratum.api.app import create_app
    from stratum.ingest.watcher import DropWatcher

    rt = runtime_from(args, one_shot=False)
    if not args.verbose:
        logging.getLogger("stratum").setLevel(logging.INFO)
    app = create_app(rt)
    if rt.settings.warm_up:
        rt.start_warm_up()  # imports, DuckDB and a SQL worker while the server starts; requests need not wait
    for job in rt.ingest.reclaim(rt.catalog.list_workspaces()):
        print(f"[recovery] job {job.job_id} ({job.file_name}): {job.error.message if job.error else job.status}")

    def housekeeping(orphans_before: datetime | None = None, exports: bool = True) -> None:
        for job_ids in rt.uploads.sweep(orphans_before=orphans_before).values():
            for job_id in job_ids:
                print(f"[uploads] job {job_id}: its upload never arrived; failed", flush=True)
        # an export's file goes with its record, exports.retention_days after it ended (S3: lifecycle rule)
        for key in rt.exports.sweep(rt.catalog.list_workspaces()) if exports else ():
            print(f"[exports] {key}: its export expired; deleted", flush=True)

    housekeeping(orphans_before=datetime.now(UTC), exports=False)  # exports: from the loop (no DuckDB import now)

    def report(job) -> None:
        detail = job.error.message if job.error else f"lot {job.lot_id}"
        moved = f" -> {job.source.archived_key}" if job.source.archived_key else ""
        print(f"[drop folder] {job.status}: {job.file_name} ({detail}){moved}", flush=True)

    # the loop also sweeps expired presigned uploads and export files, so it runs with --no-watch too (no scan)
    watcher = DropWatcher(
        rt.drop_processor,
        interval=args.interval,
        on_job=report,
        housekeeping=housekeeping,
        housekeeping_every=rt.settings.input_limits.presign_sweep_seconds,
        scan=not args.no_watch,
    )
    watcher.start()
    scheduler = rt.monitors.scheduler
    if hasattr(scheduler, "start"):
        scheduler.start()  # scheduled monitors fire in-process (EventBridge Scheduler's role on AWS)
    rt.delivery.start_worker()  # outbound webhooks and email digests, from the metadata store
    incoming = rt.settings.data_dir / "incoming"
    print(f"Stratum {rt.settings.backend} runtime, data in {rt.settings.data_dir}")
    if watcher.scan:
        print(f"Watching {incoming}/ : drop STDF files there (in <workspace>/ subfolders, or directly for 'default').")
        dd = rt.settings.data_dir
        print(
            f"  Ingested files move to {dd / 'processed'}/, failed ones to {dd / 'failed'}/ (with <name>.error.json)."
        )
    print(f"API on http://{args.host}:{args.port}/v1/status  (docs: http://{args.host}:{args.port}/docs)")
    keys = app.state.keys.list()
    if not keys:
        print("No API keys yet. Create one (shown once) with:")
        print(
            f"  stratum keys create{'' if args.data_dir is None else ' --data-dir ' + args.data_dir} "
            "--workspace default --scope full --name laptop"
        )
    print(f"Then: curl -H 'Authorization: Bearer <token>' http://{args.host}:{args.port}/v1/lots", flush=True)
    # SIGTERM (a service manager's stop) ends like Ctrl-C: the watcher and the delivery worker stop, the
    # stores close, exit 0. Python's default would end the process at once, skipping the finally below.
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except _Terminated:
        print("Stopped (SIGTERM).", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        watcher.stop()
        rt.close()
    return 0


def register(add) -> None:
    add("demo", cmd_demo, "generate sample lots, ingest them locally and show a summary", workspace=False)
    sp = add(
        "serve",
        cmd_serve,
        "run the local runtime: the HTTP API, the drop-folder watcher and the delivery worker",
        workspace=False,
    )
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sp.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    sp.add_argument("--no-watch", action="store_true", help="do not watch <data-dir>/incoming/")
    sp.add_argument("--interval", type=float, default=1.0, help="drop folder scan interval in seconds")
