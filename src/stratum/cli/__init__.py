"""The ``stratum`` command line.

Every command takes ``--data-dir`` (default: ``STRATUM_DATA_DIR``, else a per-user data directory) and,
where it touches data, ``--workspace`` (default ``default``). Errors are one line on stderr and a
non-zero exit status; no tracebacks.

One module per command group, each with a ``register(add)`` (or ``register(sub, add)``) that adds its
subcommands: :mod:`.data` (ingest, sql, jobs, job, lots, inspect), :mod:`.exports` (export),
:mod:`.local` (demo, serve), :mod:`.keys` (keys create/list/revoke/rotate), :mod:`.monitors` (monitors
list/create/get/pause/resume/delete/run/runs). Shared helpers live in :mod:`.common`; this module only
builds the parser and runs a command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from stratum import __version__
from stratum.cli import data, exports, keys, local, monitors
from stratum.cli.common import DATA_DIR_HELP, EXIT_FAIL, EXIT_USAGE, close_runtimes, err
from stratum.errors import StratumError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stratum", description="STDF test data into a queryable Parquet lake.")
    p.add_argument("--version", action="version", version=f"stratum {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, workspace: bool = True):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--data-dir", help=DATA_DIR_HELP)
        if workspace:
            sp.add_argument("--workspace", default="default", help="workspace (default: default)")
        sp.set_defaults(fn=fn)
        return sp

    data.register(add)
    exports.register(add)
    local.register(add)
    keys.register(sub)
    monitors.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from stratum.auth.redact import install as redact_keys_in_logs

    redact_keys_in_logs()
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
        err(exc.detail)
        return EXIT_FAIL
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except (ValueError, OSError) as exc:
        err(str(exc))
        return EXIT_FAIL
    finally:
        close_runtimes()


if __name__ == "__main__":
    sys.exit(main())
