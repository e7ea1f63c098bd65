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
    rows = [[lot["lot_id"], lot["part_type"], lot["file_count"], lot["wafer_count"], lot["part_count"],
             lot["good_count"], _pct(lot["yield"]), _pct(lot["first_pass_yield"]), lot["retest_count"]]
            for lot in res.lots]
    print(_table(["lot", "product", "files", "wafers", "dies/parts", "good", "final yield", "first-pass yield",
                  "retests"], rows))
    ws = [lot for lot in res.lots if lot["wafer_count"]]
    if ws:
        w = rt.sql.run("default", "SELECT wafer_id, part_count, good_count, yield, first_pass_yield FROM wafers "
                       f"WHERE lot_id = '{ws[0]['lot_id']}' ORDER BY wafer_id", limit=100)
        print(f"\nWafers of {ws[0]['lot_id']}:")
        print(_table(["wafer", "dies", "good", "final yield", "first-pass yield"],
                     [[r[0], r[1], r[2], _pct(r[3]), _pct(r[4])] for r in w.rows]))
    print(f"\n{len(res.jobs)} jobs: " + ", ".join(
        f"{sum(1 for j in res.jobs if j.status == s)} {s}" for s in ("succeeded", "partial", "duplicate", "failed")
        if any(j.status == s for j in res.jobs)))
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


@extra_command
def _register(sub, add) -> None:
    sp = add("demo", cmd_demo, "generate sample lots, ingest them locally and show a summary", workspace=False)
    del sp


def main() -> int:  # pragma: no cover - convenience
    from stratum.cli import main as cli_main

    return cli_main(sys.argv[1:])
