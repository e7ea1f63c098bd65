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
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from stratum import __version__
from stratum.cli import data, exports, keys, local, monitors
from stratum.cli.common import (
    DATA_DIR_HELP,
    EXIT_BROKEN_PIPE,
    EXIT_FAIL,
    EXIT_USAGE,
    VERBOSE_HELP,
    add_global_options,
    close_runtimes,
    err,
)
from stratum.errors import StratumError


class _Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default (``(default: off)`` for flags) unless it already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        h = action.help or ""
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS:
            return h
        if "default" in h.lower():
            return h
        d = action.default
        shown = (
            "off"
            if d is False
            else "not set"
            if d is None
            else ", ".join(map(str, d))
            if isinstance(d, list)
            else str(d)
        )
        return f"{h} (default: {shown.replace('%', '%%')})".strip()


class _Parser(argparse.ArgumentParser):
    def __init__(self, *a: Any, **k: Any) -> None:
        k.setdefault("formatter_class", _Formatter)
        super().__init__(*a, **k)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stratum", description="STDF test data into a queryable Parquet lake.")
    p.add_argument("--version", action="version", version=f"stratum {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    p.add_argument("--data-dir", default=argparse.SUPPRESS, help=DATA_DIR_HELP)
    p.add_argument("--workspace", default=argparse.SUPPRESS, help="workspace (default: the command's, usually default)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, workspace: bool = True):
        sp = sub.add_parser(name, help=help_, description=help_)
        add_global_options(sp, "default" if workspace else None)
        sp.set_defaults(fn=fn)
        return sp

    data.register(add)
    exports.register(add)
    local.register(add)
    keys.register(sub)
    monitors.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here for output still in the buffer
        return code
    except BrokenPipeError:
        # `stratum ... | head`: the reader went away; stop quietly with the shell's SIGPIPE status
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return EXIT_BROKEN_PIPE


def _run(argv: Sequence[str] | None) -> int:
    from stratum.auth.redact import install as redact_keys_in_logs

    redact_keys_in_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.data_dir = getattr(args, "data_dir", None)
    if not hasattr(args, "workspace"):
        args.workspace = getattr(args, "_workspace_default", None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    for name, value in getattr(args, "environ", {}).items():
        os.environ.setdefault(name, value)  # before the command's libraries load; the user's own setting wins
    from stratum.coldstart import loading, pydantic_plugins_off

    pydantic_plugins_off()

    # the command's libraries (stratum.runtime's pydantic models among them) load without the cyclic GC's
    # passes (stratum.coldstart), its work runs with them
    with loading():
        from stratum.runtime import keep_pandas_out

        keep_pandas_out()
        for name in getattr(args, "preload", ()):
            importlib.import_module(name)
    try:
        return args.fn(args)
    except StratumError as exc:
        err(exc.detail)
        return EXIT_FAIL
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:
        raise
    except (ValueError, OSError) as exc:
        err(str(exc))
        return EXIT_FAIL
    finally:
        close_runtimes()


def run() -> NoReturn:
    """The ``stratum`` console script and ``python -m stratum.cli``: ``main`` with the process's arguments,
    then ``exit_now``. (In-process callers use ``main``, which returns the status.)"""
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message: the interpreter prints it
        code = exc.code or 0
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    """End the process as the interpreter would, without tearing it down: wait for non-daemon threads and run
    the atexit callbacks (logging's flush, weakref finalizers, coverage), flush stdout and stderr, then
    ``os._exit``. Skipped: deallocating every module's objects and the final GC passes, tens of ms of CPU
    after pyarrow, numpy and pydantic loaded, for memory the OS takes back anyway. Every command has closed
    its runtime (SQLite, DuckDB) and files by then."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first (joins non-daemon threads)
    if shutdown is not None:
        shutdown()
    else:  # pragma: no cover - an interpreter without it
        for t in threading.enumerate():
            if t is not threading.main_thread() and not t.daemon:
                t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
