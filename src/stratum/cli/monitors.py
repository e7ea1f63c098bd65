"""``stratum monitors``: list, create, get, pause, resume, delete, run and show the runs of monitors
(the same monitor service as ``/v1/monitors``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stratum.cli.common import EXIT_FAIL, add_global_options, runtime_from, table


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param {text!r}: expected NAME=VALUE (VALUE is JSON, else a string)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _body(args: argparse.Namespace) -> dict[str, Any]:
    if args.json_body:
        text = open(args.json_body).read() if args.json_body != "-" else __import__("sys").stdin.read()  # noqa: SIM115
        return json.loads(text)
    if not args.label or not args.rule:
        raise ValueError("create needs --label and --rule (or --json-body FILE)")
    if bool(args.schedule) == bool(args.on_ingest):
        raise ValueError("give exactly one of --schedule EXPRESSION and --on-ingest")
    scope = {
        k: v
        for k, v in (
            ("lot_id", args.lot),
            ("part_type", args.part_type),
            ("program", args.program),
            ("tester", args.tester),
        )
        if v
    }
    trigger = (
        {"on_ingest": True}
        if args.on_ingest
        else {"schedule": {"expression": args.schedule, "timezone": args.timezone}}
    )
    return {
        "label": args.label,
        "description": args.description,
        "rule": {"kind": args.rule, "params": dict(_param(p) for p in args.param or [])},
        "scope": scope,
        "trigger": trigger,
        "notify": args.notify or [],
    }


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from stratum.monitors.model import MonitorIn

    try:
        body = MonitorIn.model_validate(_body(args))
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        ) from None
    rt = runtime_from(args)
    try:
        m = rt.monitors.create(args.workspace, body)
    finally:
        rt.close()
    if args.quiet:
        print(m.monitor_id)
    else:
        _print(m.public())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        items = list(rt.monitors.store.iter_monitors(args.workspace))
    finally:
        rt.close()
    if args.json:
        _print([m.public() for m in items])
        return 0
    if not items:
        print("no monitors")
        return 0
    rows = []
    for m in items:
        trig = f"{m.trigger.schedule.expression} {m.trigger.schedule.timezone}" if m.trigger.schedule else "on ingest"
        rows.append([m.monitor_id, m.label, m.rule.kind, trig, m.state])
    print(table(["monitor_id", "label", "rule", "trigger", "state"], rows, max_width=50))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        _print(rt.monitors.get(args.workspace, args.monitor_id).public())
    finally:
        rt.close()
    return 0


def _state(state: str):
    def cmd(args: argparse.Namespace) -> int:
        rt = runtime_from(args)
        try:
            m = rt.monitors.set_state(args.workspace, args.monitor_id, state)
        finally:
            rt.close()
        print(f"monitor {m.monitor_id} is {m.state}")
        return 0

    return cmd


def cmd_delete(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        rt.monitors.delete(args.workspace, args.monitor_id)
    finally:
        rt.close()
    print(f"deleted monitor {args.monitor_id}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        run, preview = rt.monitors.run(args.workspace, args.monitor_id)
    finally:
        rt.close()
    if args.json:
        _print({**run.model_dump(mode="json"), "findings_preview": preview})
    else:
        print(
            f"run {run.run_id}: {run.status}, {run.findings} new finding(s), {run.recoveries} recovery(ies), "
            f"{len(run.lots)} lot(s), {run.latency_ms:.0f} ms"
        )
        for f in preview:
            print(f"  {f['message']}")
        if run.error:
            print(f"  error: {run.error}")
    return EXIT_FAIL if run.status == "failed" else 0


def cmd_runs(args: argparse.Namespace) -> int:
    rt = runtime_from(args)
    try:
        runs, _ = rt.monitors.runs(args.workspace, args.monitor_id, status=args.status, limit=args.limit)
    finally:
        rt.close()
    if args.json:
        _print([r.model_dump(mode="json") for r in runs])
        return 0
    rows = [[r.run_id, r.trigger, r.status, r.findings, r.recoveries, ",".join(r.lots), r.latency_ms] for r in runs]
    print(table(["run_id", "trigger", "status", "findings", "recoveries", "lots", "ms"], rows, max_width=50))
    return 0


def register(sub) -> None:
    mp = sub.add_parser(
        "monitors",
        help="manage and run monitors (rules over the lake)",
        description="Monitors: rules over the lake that run on a schedule or on ingest and record findings.",
    )
    ms = mp.add_subparsers(dest="monitors_command", metavar="ACTION", required=True)

    def leaf(name: str, fn, help_: str, monitor_id: bool = True):
        sp = ms.add_parser(name, help=help_, description=help_)
        add_global_options(sp, "default")
        if monitor_id:
            sp.add_argument("monitor_id")
        sp.set_defaults(fn=fn)
        return sp

    sp = leaf("list", cmd_list, "list the workspace's monitors", monitor_id=False)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = leaf("create", cmd_create, "create a monitor", monitor_id=False)
    sp.add_argument("--label", help="a short name shown in lists and notifications")
    sp.add_argument("--description", help="what the monitor watches and why")
    sp.add_argument(
        "--rule",
        help="rule kind: yield_below, bin_excursion, cpk_below, run_rules, site_delta, "
        "data_health, statistical_limit, sql",
    )
    sp.add_argument("--param", action="append", metavar="NAME=VALUE", help="rule parameter (repeatable; JSON value)")
    sp.add_argument("--schedule", metavar="EXPRESSION", help="cron(...), rate(...) or at(...)")
    sp.add_argument("--timezone", default="UTC", help="IANA time zone of the schedule (default UTC)")
    sp.add_argument("--on-ingest", action="store_true", help="run whenever a snapshot of a lot in scope is published")
    sp.add_argument("--lot", help="scope: one lot")
    sp.add_argument("--part-type", help="scope: a product")
    sp.add_argument("--program", help="scope: a test program")
    sp.add_argument("--tester", help="scope: a tester (host or type)")
    sp.add_argument("--notify", action="append", metavar="CHANNEL", help="channel ref, e.g. inbox:default")
    sp.add_argument("--json-body", metavar="FILE", help="the whole monitor as JSON (as POST /v1/monitors; - = stdin)")
    sp.add_argument("--quiet", action="store_true", help="print only the new monitor's id")
    sp = leaf("get", cmd_get, "show one monitor as JSON")
    leaf("pause", _state("paused"), "pause a monitor (its schedule stops firing)")
    leaf("resume", _state("active"), "resume a paused monitor")
    leaf("delete", cmd_delete, "delete a monitor and its schedule")
    sp = leaf("run", cmd_run, "run a monitor now (exit status 1 if the run failed)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = leaf("runs", cmd_runs, "list a monitor's runs, newest first")
    sp.add_argument("--status", choices=["ok", "fired", "failed", "skipped"], help="only runs with this outcome")
    sp.add_argument("--limit", type=int, default=20, help="most runs to list, newest first")
    sp.add_argument("--json", action="store_true", help="print JSON")
