"""User SQL in worker processes, so that no query can take the server down.

DuckDB's ``memory_limit`` covers its buffer-managed memory (hash tables, sorts, aggregate states) but not
every value a function builds (``repeat('x', 1e9)``, lists from lambdas) nor the Python objects of a result.
A server therefore runs user SQL (``POST /v1/sql``) in child processes, each with its data memory capped
(RLIMIT_DATA): past the cap an allocation fails and the query ends with a 422 instead of the kernel (or
Lambda) killing the server. A worker that dies, overruns its time limit by ``kill_after_seconds`` or ends a
query holding more than half its cap is replaced (DuckDB's allocator keeps address space it has used, which
the cap counts). The CLI runs SQL in-process (``SqlService``): there the user owns the machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stratum import errors
from stratum.settings import Settings

from .engine import Scope, resources
from .sql import SqlResult, SqlService, check_query, memory_exceeded

log = logging.getLogger("stratum.query")
STARTUP_SECONDS = 60.0  # a worker imports DuckDB and builds its runtime (well under 1 s on Lambda)

_ERRORS = {
    cls.__name__: cls
    for cls in (
        errors.BadRequest,
        errors.NotFound,
        errors.QueryRejected,
        errors.QueryTimeout,
        errors.QueryResources,
        errors.Unavailable,
    )
}


def _vm(key: str) -> int:
    """A VmXxx figure of this process in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _send(f, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[f.write(view) :]  # an unbuffered pipe may take part of it
    f.flush()


def _read(f, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))  # an unbuffered pipe returns what has arrived
        if not chunk:
            raise EOFError("the other side closed the pipe")
        buf += chunk
    return bytes(buf)


def _recv(f) -> Any:
    (n,) = struct.unpack("<Q", _read(f, 8))
    return pickle.loads(_read(f, n))  # noqa: S301 - our own child process, over its private pipe


def serve(open_sql: Callable[[Settings], tuple[SqlService, Callable[[], None]]]) -> None:  # pragma: no cover
    """The worker process's loop (runs in the child; tested over HTTP and via SqlWorkers): caps its memory,
    then answers queries with the SQL service ``open_sql`` builds from the parent's settings (its second
    value closes what it built). The wiring level passes ``open_sql`` and starts the child."""
    # the protocol owns stdin/stdout; anything else printed goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    settings = Settings.model_validate_json(_recv(inp))
    try:
        import resource

        cap = resources(settings).worker_memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    except (ImportError, ValueError, OSError):
        pass  # no RLIMIT_DATA here: DuckDB's memory_limit and the response cap still hold
    sql, close = open_sql(settings)
    _send(out, ("ready", _vm("VmData")))
    try:
        while True:
            try:
                ws, query, scope, limit, cursor, timeout, max_bytes, arrow = _recv(inp)
            except (EOFError, OSError):
                return
            try:
                res = sql.run(
                    ws,
                    query,
                    scope=Scope(**scope),
                    limit=limit,
                    cursor=cursor,
                    timeout=timeout,
                    max_bytes=max_bytes,
                    arrow=arrow,
                    on_start=lambda: _send(out, ("started",)),
                )
                reply: tuple = ("ok", asdict(res))
            except errors.StratumError as exc:
                reply = ("err", type(exc).__name__, exc.detail, exc.extra)
            except MemoryError:
                reply = ("oom", None)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it
                reply = ("crash", f"{type(exc).__name__}: {exc}")
            try:
                _send(out, (*reply, _vm("VmData")))
            except MemoryError:
                _send(out, ("oom", None, _vm("VmData")))
    finally:
        close()


class _Worker:
    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        # the worker spills under a directory of its own, removed here even when the worker was killed
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="stratum-sql-worker-", dir=settings.tmp_dir)
        settings_json = settings.model_copy(update={"tmp_dir": Path(self.tmp)}).model_dump_json()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        # Unbuffered pipes: the parent waits for replies with select(), which sees only bytes not yet read. A
        # buffered reader reading "started" may take the reply written right after it into its buffer, and
        # select() would then wait for nothing until the kill deadline (a loaded machine runs the parent
        # late enough for both to be in the pipe: a `SELECT 1` came back as a time-out).
        self.proc = subprocess.Popen(  # noqa: S603 - the wiring level's command: this interpreter, `serve`
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self.pid = self.proc.pid
        self._ready = False
        _send(self.proc.stdin, settings_json)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        """Wait for the worker to have imported and built its runtime (the query's time starts after)."""
        if not self._ready:
            if not select.select([self.proc.stdout], [], [], STARTUP_SECONDS)[0]:  # type: ignore[type-var]
                return False
            self._ready = _recv(self.proc.stdout)[0] == "ready"
        return self._ready

    def _next(self, wait: float) -> Any | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)  # type: ignore[type-var]
        return _recv(self.proc.stdout) if ready else None

    def ask(self, msg: Any, wait: float, setup: float) -> Any | None:
        """Send a query; its reply, or None when none came within ``wait`` seconds of the query's start.
        Building the session (opening the lake's views) comes before the start and has its own bound
        (``setup`` seconds), so a slow first query of a fresh worker on a busy machine is not taken for a
        stuck one."""
        if not self.ready():
            raise EOFError("the worker did not start")
        _send(self.proc.stdin, msg)
        reply = self._next(setup)
        if reply is not None and reply[0] == "started":
            reply = self._next(wait)
        return reply

    def stop(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()  # type: ignore[union-attr]  # both are pipes
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SqlWorkers:
    """The ``SqlService.run`` of a server: the same arguments and result, run in a pool of worker processes
    (at most ``sql.max_concurrent`` at once; the API's gate keeps callers within that). ``command`` starts
    one worker process, which runs ``serve``."""

    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        self.settings = settings
        self.command = tuple(command)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    return w
                w.stop()
        return _Worker(self.settings, self.command)

    def _give(self, w: _Worker) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.settings.sql.max_concurrent:
                self._idle.append(w)
                return
        w.stop()

    def warm(self) -> None:
        """Start one worker now (a server's first query then skips the process start)."""
        w = self._take()
        if w.ready():
            self._give(w)
        else:
            w.stop()

    def _replace(self) -> None:
        """Start a worker in the background when none is idle, so the next query does not wait for one."""
        with self._lock:
            if self._idle or self._closed:
                return
        threading.Thread(target=self.warm, name="stratum-sql-warm", daemon=True).start()

    def run(
        self,
        workspace: str,
        query: str,
        *,
        scope: Scope | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
        arrow: bool = False,
    ) -> SqlResult:
        s = self.settings.sql
        check_query(query, s.max_query_chars)  # rejected queries never reach a worker
        limit_s = timeout if timeout is not None else s.timeout_seconds
        scope = scope or Scope()
        w = self._take()
        t0 = time.perf_counter()
        try:
            msg = (workspace, query, asdict(scope), limit, cursor, timeout, max_bytes, arrow)
            reply = w.ask(msg, limit_s + s.kill_after_seconds, s.session_setup_seconds)
        except (EOFError, OSError):
            w.stop()
            self._replace()
            log.warning("sql worker %s died (exit %s) running a query", w.pid, w.proc.returncode)
            raise memory_exceeded(self.settings) from None
        if reply is None:
            w.stop()
            self._replace()
            log.warning("sql worker %s killed: no answer %.0f s past the time limit", w.pid, s.kill_after_seconds)
            raise errors.QueryTimeout(f"the query was stopped after the {limit_s:g} s time limit")
        kind, vm_data = reply[0], reply[-1]
        cap = resources(self.settings).worker_memory_mb
        spent = kind in ("oom", "crash") or (kind == "err" and reply[1] == "QueryResources")
        if spent or vm_data > cap // 2:
            w.stop()  # its allocator keeps the address space the cap counts: a fresh worker starts clean
            self._replace()
        else:
            self._give(w)
        if kind == "ok":
            return SqlResult(**reply[1])
        if kind == "err":
            cls = _ERRORS.get(reply[1], errors.BadRequest)
            raise cls(reply[2], **reply[3])
        if kind == "oom":
            raise memory_exceeded(self.settings)
        log.error("sql worker failed after %.0f ms: %s", (time.perf_counter() - t0) * 1e3, reply[1])
        raise errors.StratumError("the query failed unexpectedly; it has been logged")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.stop()
