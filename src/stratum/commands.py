"""Commands beyond the core ones: demo, serve, keys (registered with ``stratum.cli.extra_command``)."""

from __future__ import annotations

import argparse
import sys

from stratum.cli import _runtime, _table, extra_command


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cmd_demo(args: argparse.Namespace) -> int:
    from stratum.demo import run_demo

    rt = _runtime(args)
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
        _table(
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
            _table(
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


def _after_demo(rt, args) -> list[str]:
    dd = "" if args.data_dir is None else f" --data-dir {args.data_dir}"
    lot = "DEMO-WS-1042"
    out = [
        "",
        "Next:",
        f"  stratum lots{dd}",
        f"  stratum jobs{dd}",
        f"  stratum sql{dd} \"SELECT wafer_id, round(100*yield,1) AS yield_pct FROM wafers WHERE lot_id = '{lot}'\"",
        f"  stratum sql{dd} \"SELECT bin_num, bin_name, part_count, percent FROM bins WHERE lot_id = '{lot}' "
        "AND bin_type = 'H' ORDER BY part_count DESC\"",
    ]
    for hook in _DEMO_HOOKS:
        out += hook(rt, args)
    return out


_DEMO_HOOKS: list = []


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from stratum.api.app import create_app
    from stratum.ingest.drop import DropProcessor
    from stratum.ingest.watcher import DropWatcher

    rt = _runtime(args)
    if not args.verbose:
        logging.getLogger("stratum").setLevel(logging.INFO)
    app = create_app(rt)
    watcher = None
    if not args.no_watch:

        def report(job) -> None:
            detail = job.error.message if job.error else f"lot {job.lot_id}"
            print(f"[drop folder] {job.status}: {job.file_name} ({detail})", flush=True)

        watcher = DropWatcher(DropProcessor(rt.ingest, rt.drop, rt.drop_prefix), interval=args.interval, on_job=report)
        watcher.start()
    rt.delivery.start_worker()  # outbound webhooks and email digests, from the metadata store
    incoming = rt.settings.data_dir / "incoming"
    print(f"Stratum {rt.settings.backend} runtime, data in {rt.settings.data_dir}")
    if watcher:
        print(f"Watching {incoming}/ : drop STDF files there (in <workspace>/ subfolders, or directly for 'default').")
    print(f"API on http://{args.host}:{args.port}/v1/status  (docs: http://{args.host}:{args.port}/docs)")
    keys = app.state.keys.list()
    if not keys:
        print("No API keys yet. Create one (shown once) with:")
        print(
            f"  stratum keys create{'' if args.data_dir is None else ' --data-dir ' + args.data_dir} "
            "--workspace default --scope full --name laptop"
        )
    print(f"Then: curl -H 'Authorization: Bearer <token>' http://{args.host}:{args.port}/v1/lots", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if watcher:
            watcher.stop()
        rt.close()
    return 0


@extra_command
def _register(sub, add) -> None:
    add("demo", cmd_demo, "generate sample lots, ingest them locally and show a summary", workspace=False)
    sp = add("serve", cmd_serve, "run the local runtime: the HTTP API and the drop-folder watcher", workspace=False)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--no-watch", action="store_true", help="do not watch <data-dir>/incoming/")
    sp.add_argument("--interval", type=float, default=1.0, help="drop folder scan interval in seconds")


def main() -> int:  # pragma: no cover - convenience
    from stratum.cli import main as cli_main

    return cli_main(sys.argv[1:])


# -- keys ----------------------------------------------------------------------------------------
class _Keys:
    """A KeyService on the configured metadata store only (SQLite locally, DynamoDB with backend=aws):
    key management needs no object store, so no bucket settings are required."""

    def __init__(self, args: argparse.Namespace) -> None:
        from stratum.auth.keys import KeyService
        from stratum.cli import _settings
        from stratum.storage.factory import build_metadata_store

        settings = _settings(args)
        self.meta = build_metadata_store(settings)
        self.svc = KeyService(self.meta, environment=settings.environment)

    def __enter__(self):
        return self.svc

    def __exit__(self, *exc) -> None:
        self.meta.close()


def _print_new_key(token: str, rec, args: argparse.Namespace, verb: str) -> None:
    import json

    if args.json:
        print(json.dumps({"token": token, **rec.public()}))
        print("stratum: store the token now, it will not be shown again", file=sys.stderr)
        return
    expires = rec.public()["expires_at"] or "never"
    print(f"{verb} API key {rec.key_id} ({rec.name!r}) for workspace {rec.workspace}")
    print(f"  scopes:  {', '.join(rec.scopes)}")
    print(f"  expires: {expires}")
    if rec.rotated_from:
        print(f"  replaces {rec.rotated_from}, which is revoked as of now")
    print()
    print(f"  {token}")
    print()
    print("Store it now: it will not be shown again.")


def cmd_keys_create(args: argparse.Namespace) -> int:
    from stratum.auth.keys import parse_expires

    expires_in = parse_expires(args.expires)  # before touching the store: a typo creates nothing
    with _Keys(args) as keys:
        token, rec = keys.create(args.workspace, args.scope, args.name, expires_in)
    _print_new_key(token, rec, args, "Created")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    import json

    with _Keys(args) as keys:
        records = keys.list(args.workspace)
    rows = [r.public() for r in records]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no API keys")
        return 0
    print(
        _table(
            ["key_id", "workspace", "name", "scopes", "status", "created", "expires", "last used"],
            [
                [
                    r["key_id"],
                    r["workspace"],
                    r["name"],
                    ",".join(r["scopes"]),
                    r["status"],
                    r["created_at"],
                    r["expires_at"] or "never",
                    r["last_used_at"] or "-",
                ]
                for r in rows
            ],
            max_width=60,
        )
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _Keys(args) as keys:
        rec = keys.revoke(args.key_id)
    print(f"revoked API key {rec.key_id} ({rec.name!r}, workspace {rec.workspace}) at {rec.public()['revoked_at']}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    with _Keys(args) as keys:
        token, rec = keys.rotate(args.key_id)
    _print_new_key(token, rec, args, "Rotated: new")
    return 0


@extra_command
def _register_keys(sub, add) -> None:
    from stratum.auth.scopes import SCOPES

    kp = sub.add_parser(
        "keys",
        help="manage API keys (create, list, revoke, rotate)",
        description="Manage the bearer API keys of the HTTP API. Tokens are shown once, when "
        "created or rotated; only a hash is stored.",
    )
    ks = kp.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def leaf(name: str, fn, help_: str):
        sp = ks.add_parser(name, help=help_, description=help_)
        sp.add_argument("--data-dir", help="data directory (default: $STRATUM_DATA_DIR or a per-user directory)")
        sp.set_defaults(fn=fn)
        return sp

    sp = leaf("create", cmd_keys_create, "issue an API key (the workspace is created if new)")
    sp.add_argument("--workspace", required=True, help="the workspace the key belongs to")
    sp.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="a scope (repeatable): " + ", ".join(SCOPES)
    )
    sp.add_argument("--name", required=True, help="what the key is for, e.g. 'dashboard'")
    sp.add_argument("--expires", default="never", help="lifetime: 90d, 12h, 30m or never (default: never)")
    sp.add_argument("--json", action="store_true", help="print a JSON object (token included)")

    sp = leaf("list", cmd_keys_list, "list API keys (never shows tokens or hashes)")
    sp.add_argument("--workspace", help="only this workspace's keys (default: all)")
    sp.add_argument("--json", action="store_true")

    sp = leaf("revoke", cmd_keys_revoke, "revoke an API key (takes effect at once)")
    sp.add_argument("key_id")

    sp = leaf("rotate", cmd_keys_rotate, "issue a replacement key (same workspace, scopes, name) and revoke the old")
    sp.add_argument("key_id")
    sp.add_argument("--json", action="store_true", help="print a JSON object (token included)")
