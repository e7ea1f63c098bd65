"""Export jobs of a server in a child process, for the reason user SQL runs in workers
(``stratum.query.workers``): DuckDB's ``memory_limit`` does not cover every value a query builds, so an export
runs in a one-shot child whose data memory is capped (RLIMIT_DATA at ``sql.worker_memory_mb``). Past the cap
the export fails (``query_resources``), not the server. The child gets a spill/work directory of its own,
removed by the parent even when the child was killed; a child still running ``exports.abandoned_after_seconds``
after it started is killed. ``stratum serve`` uses this; the AWS exports function is its own process already.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from stratum.settings import Settings

log = logging.getLogger("stratum.exports")
EXIT_MEMORY = 3


def run_in_child(command: Sequence[str], settings: Settings, ws: str, export_id: str) -> int | None:
    """Run ``ExportService.run(ws, export_id)`` in a child started with ``command`` (which calls ``serve``).
    Its exit code, or None when it was killed for overrunning ``abandoned_after_seconds``."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="stratum-export-worker-", dir=settings.tmp_dir)
    try:
        child_settings = settings.model_copy(update={"tmp_dir": Path(tmp)}).model_dump_json()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, env=env)  # noqa: S603 - the wiring's command
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"settings": child_settings, "workspace": ws, "export_id": export_id}).encode())
        proc.stdin.close()
        try:
            return proc.wait(settings.exports.abandoned_after_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log.warning("export %s of workspace %s: worker %s killed (overran its time)", export_id, ws, proc.pid)
            return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def serve(
    open_run: Callable[[Settings], tuple[Callable[[str, str], object], Callable[[], None]]],
) -> None:  # pragma: no cover - runs in the child (tested through the API)
    """The child's main: read the request, cap the data memory, run the export, exit (``EXIT_MEMORY`` when
    Python itself ran out of memory). ``open_run`` builds the run function from the settings."""
    req = json.loads(sys.stdin.buffer.read())
    settings = Settings.model_validate_json(req["settings"])
    try:
        import resource

        from stratum.query.engine import resources

        cap = resources(settings).worker_memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    except (ImportError, ValueError, OSError):
        pass  # no RLIMIT_DATA here: DuckDB's memory_limit still holds
    run, close = open_run(settings)
    try:
        run(req["workspace"], req["export_id"])
    except MemoryError:
        sys.exit(EXIT_MEMORY)
    finally:
        close()
