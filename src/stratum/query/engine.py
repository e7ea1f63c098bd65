"""DuckDB over the lake, one locked-down database per workspace.

Each workspace gets its own in-memory DuckDB instance whose configuration is set once and locked
before any query runs: extensions never auto-install or auto-load, the S3 secret/httpfs is prepared by
the object store, ``allowed_directories`` holds only the workspace's lake root, then
``enable_external_access=false`` and ``lock_configuration=true``. A session is a cursor on that
instance with temp views (``stratum.query.views``) over one snapshot's files.

On Lambda: one instance per workspace per container, created lazily, memory and threads derived from
the function memory, spill files on the ephemeral storage.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import duckdb

from stratum.catalog import Catalog
from stratum.errors import NotFound
from stratum.lake import layout
from stratum.models import PUBLISHED, Lot, SnapshotMember
from stratum.settings import Settings
from stratum.storage.objectstore import ObjectStore

from .duckdb_views import view_sql
from .views import Member

log = logging.getLogger("stratum.query")

_ENGINES: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Close DuckDB before the interpreter finalises: a DuckDB call still running on a daemon thread at
    finalisation aborts the process (std::terminate on thread teardown)."""
    for engine in list(_ENGINES):
        engine.close()


MAX_DATABASES = 4
MAX_SESSIONS = 16


@dataclass
class Scope:
    lot_id: str | None = None
    snapshot_job_id: str | None = None
    wafer_ids: list[str] | None = None


@dataclass
class Resolved:
    members: list[Member]
    retest_policy: str
    snapshot_job_ids: dict[str, str]  # lot_id -> snapshot job id


def _ordered(lot_id: str, snapshot_job_id: str, members: list[SnapshotMember]) -> list[Member]:
    ms = sorted(members, key=lambda m: (m.start_time or 0, m.publish_seq))
    return [Member(lot_id, m.job_id, m.file_num, i, snapshot_job_id, tuple(m.tables)) for i, m in enumerate(ms)]


class QueryEngine:
    def __init__(self, catalog: Catalog, lake: ObjectStore, settings: Settings) -> None:
        self.catalog = catalog
        self.lake = lake
        self.settings = settings
        self._dbs: OrderedDict[str, duckdb.DuckDBPyConnection] = OrderedDict()
        self._sessions: OrderedDict[tuple, _Cached] = OrderedDict()
        self._lock = threading.RLock()
        _ENGINES.add(self)

    def close(self) -> None:
        """Close every cached session and database (idempotent)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
            dbs, self._dbs = list(self._dbs.values()), OrderedDict()
        for entry in sessions:
            try:
                entry.cur.close()
            except duckdb.Error:
                pass
        for db in dbs:
            try:
                db.close()
            except duckdb.Error:
                pass

    # -- databases ------------------------------------------------------------------------------
    def _config(self) -> dict:
        s = self.settings
        # the object cache keeps Parquet footers between queries: snapshots are immutable files
        cfg: dict = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "enable_object_cache": True,
        }
        mem = s.duckdb_memory_mb or (int(s.lambda_memory_mb * 0.6) if s.lambda_memory_mb else 0)
        if mem:
            cfg["memory_limit"] = f"{mem}MB"
        threads = s.duckdb_threads or (max(1, min(8, s.lambda_memory_mb // 1024)) if s.lambda_memory_mb else 0)
        if threads:
            cfg["threads"] = threads
        if s.backend == "aws" or s.lambda_memory_mb:
            cfg["temp_directory"] = str(s.tmp_dir / "duckdb")
        return cfg

    def database(self, ws: str) -> duckdb.DuckDBPyConnection:
        layout.check_workspace(ws)
        with self._lock:
            db = self._dbs.get(ws)
            if db is not None:
                self._dbs.move_to_end(ws)
                return db
            t0 = time.perf_counter()
            db = duckdb.connect(":memory:", config=self._config())
            t1 = time.perf_counter()
            self.lake.configure_duckdb(db)
            t2 = time.perf_counter()
            root = self.lake.root_uri(layout.lake_root(ws))
            db.execute("SET python_enable_replacements = false")
            db.execute("SET allowed_directories = [" + _lit(root) + "]")
            db.execute("SET enable_external_access = false")
            db.execute("SET lock_configuration = true")
            log.info(
                "duckdb for workspace %s ready: connect %.0f ms, storage %.0f ms, guardrails %.0f ms",
                ws,
                (t1 - t0) * 1e3,
                (t2 - t1) * 1e3,
                (time.perf_counter() - t2) * 1e3,
            )
            self._dbs[ws] = db
            while len(self._dbs) > MAX_DATABASES:
                old_ws, old = self._dbs.popitem(last=False)
                for k in [k for k in self._sessions if k[0] == old_ws]:
                    del self._sessions[k]  # their cursors die with the database
                old.close()
            return db

    # -- snapshots ------------------------------------------------------------------------------
    def resolve(self, ws: str, scope: Scope) -> Resolved:
        policy = self.settings.retest_policy
        if scope.snapshot_job_id:
            try:
                job = self.catalog.get_job(ws, scope.snapshot_job_id)
            except NotFound:
                raise NotFound(f"snapshot job {scope.snapshot_job_id!r} not found") from None
            if job.status not in PUBLISHED or not job.snapshot or not job.lot_id:
                raise NotFound(f"job {scope.snapshot_job_id!r} did not publish a snapshot (status {job.status})")
            if scope.lot_id is not None and job.lot_id != scope.lot_id:
                raise NotFound(f"snapshot job {scope.snapshot_job_id!r} is not a snapshot of lot {scope.lot_id!r}")
            return Resolved(
                _ordered(job.lot_id, job.job_id, job.snapshot), job.options.retest_policy, {job.lot_id: job.job_id}
            )
        if scope.lot_id is not None:
            lot = self.catalog.get_lot(ws, scope.lot_id)
            return Resolved(
                _ordered(lot.lot_id, lot.active_job_id, lot.members),
                self._policy(ws, lot, policy),
                {lot.lot_id: lot.active_job_id},
            )
        members: list[Member] = []
        snaps: dict[str, str] = {}
        for lot in self.catalog.iter_lots(ws):
            members += _ordered(lot.lot_id, lot.active_job_id, lot.members)
            snaps[lot.lot_id] = lot.active_job_id
        return Resolved(members, policy, snaps)

    def _policy(self, ws: str, lot: Lot, default: str) -> str:
        try:
            return self.catalog.get_job(ws, lot.active_job_id).options.retest_policy
        except NotFound:
            return default

    def session_for_schema(self) -> Session:
        return schema_session()

    def session(self, ws: str, scope: Scope | None = None) -> Session:
        """A cursor with the views of the scope's snapshot. Snapshots are immutable, so sessions are cached
        (LRU, per workspace and snapshot) and lent to one request at a time; a busy one is not waited for."""
        scope = scope or Scope()
        resolved = self.resolve(ws, scope)
        key = (
            ws,
            tuple((m.file_num, m.order, m.snapshot_job_id) for m in resolved.members),
            resolved.retest_policy,
            None if scope.wafer_ids is None else tuple(scope.wafer_ids),
        )
        with self._lock:
            cached = self._sessions.get(key)
            if cached is not None and cached.lock.acquire(blocking=False):
                self._sessions.move_to_end(key)
                return Session(cached.cur, resolved, self, key, cached)
        db = self.database(ws)
        cur = db.cursor()

        def uri(table: str, m: Member) -> str:
            return self.lake.uri(layout.data_key(ws, table, m.lot_id, m.job_id))

        t0 = time.perf_counter()
        for stmt in view_sql(resolved.members, uri, retest_policy=resolved.retest_policy, wafer_ids=scope.wafer_ids):
            cur.execute(stmt)
        log.debug(
            "session views for %s (%d files) in %.1f ms", ws, len(resolved.members), (time.perf_counter() - t0) * 1e3
        )
        entry = _Cached(cur, threading.Lock())
        entry.lock.acquire()
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = entry
                while len(self._sessions) > MAX_SESSIONS:
                    old_key, old = next(iter(self._sessions.items()))
                    if not old.lock.acquire(blocking=False):
                        break  # in use: it goes when released
                    del self._sessions[old_key]
                    old.cur.close()
                return Session(cur, resolved, self, key, entry)
        return Session(cur, resolved, self, None, entry)

    def _release(self, key, entry: _Cached, broken: bool) -> None:
        with self._lock:
            cached = self._sessions.get(key) if key is not None else None
            if cached is entry and not broken:
                entry.lock.release()
                return
            if cached is entry:
                del self._sessions[key]
        try:
            entry.cur.close()
        except duckdb.Error:
            pass


def schema_session() -> Session:
    """The public views over no data, on a private in-memory database (schema discovery)."""
    db = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    cur = db.cursor()
    for stmt in view_sql([], lambda t, m: ""):
        cur.execute(stmt)
    return Session(cur, Resolved([], "last", {}))


@dataclass
class _Cached:
    cur: duckdb.DuckDBPyConnection
    lock: threading.Lock


class Session:
    """A cursor with the public views of one snapshot. Close it when done (it goes back to the cache)."""

    def __init__(
        self,
        cur: duckdb.DuckDBPyConnection,
        resolved: Resolved,
        engine: QueryEngine | None = None,
        key=None,
        entry: _Cached | None = None,
    ) -> None:
        self.cur = cur
        self.resolved = resolved
        self._engine = engine
        self._key = key
        self._entry = entry
        self.broken = False

    def execute(self, sql: str, params: list | dict | None = None) -> duckdb.DuckDBPyConnection:
        return self.cur.execute(sql, params or [])

    def rows(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        return self.cur.execute(sql, params or []).fetchall()

    def dicts(self, sql: str, params: list | dict | None = None) -> list[dict]:
        res = self.cur.execute(sql, params or [])
        names = [d[0] for d in res.description]
        return [dict(zip(names, r, strict=False)) for r in res.fetchall()]

    def interrupt(self) -> None:
        self.broken = True  # an interrupted cursor is not lent again
        self.cur.interrupt()

    def close(self) -> None:
        if self._engine is not None and self._entry is not None:
            engine, self._engine = self._engine, None
            engine._release(self._key, self._entry, self.broken)
            return
        try:
            self.cur.close()
        except duckdb.Error:
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
