"""What every command module shares: settings and runtime from the arguments, one-line errors, tables."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by the commands that need it: `stratum --version` and `--help` stay light
    from stratum.settings import Settings

EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that stopped early
VERBOSE_HELP = "log progress details to stderr (default: off)"
DATA_DIR_HELP = "data directory (default: $STRATUM_DATA_DIR or a per-user directory)"


def add_global_options(sp: argparse.ArgumentParser, workspace: str | None = "default", data_dir: bool = True) -> None:
    """The options a command accepts before or after its name: ``-v``, ``--data-dir``, ``--workspace``. In a
    subcommand they default to SUPPRESS so a value given before the subcommand is not overwritten; ``main``
    fills what is still missing (``_workspace_default`` is the command's own default)."""
    sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    if data_dir:
        sp.add_argument("--data-dir", default=argparse.SUPPRESS, help=DATA_DIR_HELP)
    if workspace is not None:
        sp.add_argument("--workspace", default=argparse.SUPPRESS, help=f"workspace (default: {workspace})")
        sp.set_defaults(_workspace_default=workspace)


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    from stratum.settings import settings_for

    return settings_for(getattr(args, "data_dir", None), **overrides)


_RUNTIMES: list = []  # closed by close_runtimes() (cli.main) before the process exits


def runtime_from(args: argparse.Namespace, *, one_shot: bool = True):
    """The command's runtime; ``one_shot=False`` for a long-lived process (``stratum serve``)."""
    from stratum.runtime import Runtime

    rt = Runtime.from_settings(settings_from(args), one_shot=one_shot)
    _RUNTIMES.append(rt)
    return rt


def close_runtimes() -> None:
    """Close DuckDB and the metadata store on the main thread, deterministically, before the interpreter
    finalises (closing is idempotent: commands that close their runtime themselves are fine)."""
    while _RUNTIMES:
        _RUNTIMES.pop().close()


def err(msg: str) -> None:
    print(f"stratum: {msg}", file=sys.stderr)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


def table(names: list[str], rows: list[list[Any]], max_width: int = 40) -> str:
    """A text table: numbers (int, float, Decimal values) right-aligned, everything else - text such as the lot
    id '840138.000' - left-aligned."""

    def cell(v: Any) -> str:
        s = "NULL" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=False)), line]
    out += [
        " | ".join(c.rjust(w) if _is_number(v) else c.ljust(w) for v, c, w in zip(r, cr, widths, strict=False))
        for r, cr in zip(rows, cells, strict=True)
    ]
    return "\n".join(out)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)
