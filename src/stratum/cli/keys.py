"""``stratum keys``: create, list, revoke and rotate the API's bearer keys (on the metadata store only)."""

from __future__ import annotations

import argparse
import sys

from stratum.cli.common import add_global_options, settings_from, table


class _Keys:
    """A KeyService on the configured metadata store only (SQLite locally, DynamoDB with backend=aws):
    key management needs no object store, so no bucket settings are required."""

    def __init__(self, args: argparse.Namespace) -> None:
        from stratum.auth.keys import KeyService
        from stratum.storage.factory import build_metadata_store

        settings = settings_from(args)
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
    if rec.tier or rec.rate_limits or rec.quotas:
        lim = ", ".join(f"{b}={v:g}/min" for b, v in (rec.rate_limits or {}).items())
        quo = ", ".join(f"{q}={v}/month" for q, v in (rec.quotas or {}).items())
        print(f"  tier:    {rec.tier or '-'}" + (f"; limits {lim}" if lim else "") + (f"; quotas {quo}" if quo else ""))
    if rec.rotated_from:
        print(f"  replaces {rec.rotated_from}, which is revoked as of now")
    print()
    print(f"  {token}")
    print()
    print("Store it now: it will not be shown again.")


def cmd_keys_create(args: argparse.Namespace) -> int:
    from stratum.auth.keys import parse_expires
    from stratum.auth.tiers import parse_limit, parse_quota

    expires_in = parse_expires(args.expires)  # before touching the store: a typo creates nothing
    rates = dict(parse_limit(v) for v in args.limit)
    quotas = dict(parse_quota(v) for v in args.quota)
    with _Keys(args) as keys:
        token, rec = keys.create(
            args.workspace, args.scope, args.name, expires_in, tier=args.tier, rate_limits=rates, quotas=quotas
        )
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
        table(
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


def register(sub) -> None:
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
        add_global_options(sp, workspace=None)
        sp.set_defaults(fn=fn)
        return sp

    sp = leaf("create", cmd_keys_create, "issue an API key (the workspace is created if new)")
    sp.add_argument("--workspace", required=True, help="the workspace the key belongs to")
    sp.add_argument(
        "--scope", action="append", required=True, choices=SCOPES, help="a scope (repeatable): " + ", ".join(SCOPES)
    )
    sp.add_argument("--name", required=True, help="what the key is for, e.g. 'dashboard'")
    sp.add_argument("--expires", default="never", help="lifetime: 90d, 12h, 30m or never (default: never)")
    sp.add_argument("--tier", choices=("pilot", "production"), help="classification tier (rate, batch size, quota)")
    sp.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="BUCKET=N/min",
        help="per-key rate limit override (repeatable), e.g. analytics=600/min",
    )
    sp.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="NAME=N/month",
        help="per-key monthly quota override, e.g. classifications=2000/month",
    )
    sp.add_argument("--json", action="store_true", help="print a JSON object (token included)")

    sp = leaf("list", cmd_keys_list, "list API keys (never shows tokens or hashes)")
    sp.add_argument("--workspace", default=argparse.SUPPRESS, help="only this workspace's keys (default: all)")
    sp.add_argument("--json", action="store_true", help="print the keys as JSON")

    sp = leaf("revoke", cmd_keys_revoke, "revoke an API key (takes effect at once)")
    sp.add_argument("key_id")

    sp = leaf("rotate", cmd_keys_rotate, "issue a replacement key (same workspace, scopes, name) and revoke the old")
    sp.add_argument("key_id")
    sp.add_argument("--json", action="store_true", help="print a JSON object (token included)")
