"""DuckDB over the lake, one locked-down database per workspace.

Each workspace gets its own in-memory DuckDB instance whose configuration is set once and locked
before any query runs: extensions never auto-install or auto-load, the S3 secret/httpfs is prepared by
the object store, ``allowed_directories`` holds only the workspace's lake root, then
``enable_external_access=false`` and ``lock_configuration=true``. A session is a cursor on that
instance with temp views (``stratum.query.views``) over one snapshot's files.

Every instance has a memory_limit, a bounded spill directory of its own (``temp_directory``,
``max_temp_directory_size``) and a thread count (``resources``); on Lambda they are derived from the
function memory and spill goes to the ephemeral storage.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from stratum.catalog import Catalog
from stratum.errors import BadRequest, NotFound
from stratum.lake import layout
from stratum.models import PUBLISHED, Lot
from stratum.settings import Settings
from stratum.storage.objectstore import ObjectStore

from .duckdb_views import lazy_view_statements, view_sql
from .floats import float32_columns, float32_value
from .public_schema import METADATA_TRIGGERS
from .views import Member, sql_literal
from .views import ordered_members as _ordered

if TYPE_CHECKING:
    from pathlib import Path

    from .parts_cache import PartsCache

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
# values derived from one snapshot's rows (Session.memo): aggregates the analytics routes reuse between calls
MAX_MEMOS = 32


@dataclass(frozen=True)
class Resources:
    worker_memory_mb: int
    duckdb_memory_mb: int
    duckdb_temp_mb: int
    threads: int


def resources(s: Settings) -> Resources:
    """The memory, spill and thread bounds of the query engine, derived where a setting is 0: a SQL worker's
    data memory (``stratum.query.workers``) is half the Lambda's memory (else 1536 MB), DuckDB's memory_limit
    40 % of that, leaving room for values DuckDB does not count (function results, the Python rows)."""
    worker = s.sql.worker_memory_mb or (s.lambda_memory_mb // 2 if s.lambda_memory_mb else 1536)
    memory = s.duckdb_memory_mb or max(64, int(worker * 0.4))
    threads = s.duckdb_threads or (
        max(1, min(8, s.lambda_memory_mb // 1024)) if s.lambda_memory_mb else min(4, os.cpu_count() or 1)
    )
    return Resources(worker, memory, s.duckdb_temp_mb, threads)


@dataclass
class Scope:
    lot_id: str | None = None
    snapshot_job_id: str | None = None
    wafer_ids: list[str] | None = None


def check_wafer_ids(wafer_ids: list[str] | None) -> None:
    """The views quote wafer ids as SQL literals, which cannot hold a NUL character (DuckDB's parser stops at
    it: a 500). No real wafer id has one; refuse it as a bad request."""
    if wafer_ids and any("\x00" in w for w in wafer_ids):
        raise BadRequest("wafer ids must not contain NUL characters")


@dataclass
class Resolved:
    members: list[Member]
    retest_policy: dict[str, str]  # lot_id -> the retest policy of its snapshot (one snapshot, one yield)
    snapshot_job_ids: dict[str, str]  # lot_id -> snapshot job id
    lot: Lot | None = None  # the scope's lot, when the scope named one and resolving read it


class QueryEngine:
    def __init__(
        self,
        catalog: Catalog,
        lake: ObjectStore,
        settings: Settings,
        *,
        materialize: bool = True,
        parts_cache: PartsCache | None = None,
    ) -> None:
        self.catalog = catalog
        self.lake = lake
        self.settings = settings
        # a server keeps sessions and computes parts/tests once each (duckdb_views.MATERIALIZED); a one-shot
        # process (the CLI) runs one query per session and only creates views, with ``parts`` read from the
        # files of ``parts_cache`` (computed by the first process that needs them)
        self.materialize = materialize
        self.parts_cache = parts_cache
        self._dbs: OrderedDict[str, duckdb.DuckDBPyConnection] = OrderedDict()
        self._spill: dict[str, str] = {}
        self._sessions: OrderedDict[tuple, _Cached] = OrderedDict()
        self._memos: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()
        # name -> rows(workspace, lot_ids or None) for the relations kept in the metadata store
        # (public_schema.METADATA_RELATIONS); their owners register them (Runtime wires the monitors' findings)
        self.row_sources: dict[str, Callable[[str, set[str] | None], list[tuple]]] = {}
        _ENGINES.add(self)

    def close(self) -> None:
        """Close every cached session and database (idempotent)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
            self._memos.clear()
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
        for path in self._spill.values():
            shutil.rmtree(path, ignore_errors=True)
        self._spill.clear()
        if self.parts_cache is not None:
            self.parts_cache.release()  # after the databases: no query reads the private names any more

    # -- databases ------------------------------------------------------------------------------
    def _config(self, ws: str) -> dict:
        r = resources(self.settings)
        # private to this database: processes (CLI runs, SQL workers) never share or remove each other's spill
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        spill = tempfile.mkdtemp(prefix=f"stratum-duckdb-{ws}-", dir=self.settings.tmp_dir)
        self._spill[ws] = spill
        # the object cache keeps Parquet footers between queries: snapshots are immutable files
        return {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "enable_object_cache": True,
            "memory_limit": f"{r.duckdb_memory_mb}MB",
            "max_temp_directory_size": f"{r.duckdb_temp_mb}MB",
            "temp_directory": spill,
            "threads": r.threads,
        }

    def _lock_down(self, db: duckdb.DuckDBPyConnection, ws: str, write_dir: str | None = None) -> None:
        """Storage access, then the guardrails: only the workspace's lake root (and ``write_dir``) reachable,
        external access off, configuration locked."""
        self.lake.configure_duckdb(db)
        allowed = [self.lake.root_uri(layout.lake_root(ws))]
        if write_dir is not None:
            allowed.append(os.path.join(os.path.realpath(write_dir), ""))
        db.execute("SET python_enable_replacements = false")
        db.execute("SET allowed_directories = [" + ", ".join(sql_literal(d) for d in allowed) + "]")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")

    def database(self, ws: str) -> duckdb.DuckDBPyConnection:
        layout.check_workspace(ws)
        with self._lock:
            db = self._dbs.get(ws)
            if db is not None:
                self._dbs.move_to_end(ws)
                return db
            t0 = time.perf_counter()
            db = duckdb.connect(":memory:", config=self._config(ws))
            t1 = time.perf_counter()
            cache = self.parts_cache
            self._lock_down(db, ws, str(cache.directory(ws)) if cache is not None else None)
            log.info(
                "duckdb for workspace %s ready: connect %.0f ms, storage and guardrails %.0f ms",
                ws,
                (t1 - t0) * 1e3,
                (time.perf_counter() - t1) * 1e3,
            )
            self._dbs[ws] = db
            while len(self._dbs) > MAX_DATABASES:
                old_ws, old = self._dbs.popitem(last=False)
                for k in [k for k in self._sessions if k[0] == old_ws]:
                    del self._sessions[k]  # their cursors die with the database
                old.close()
                shutil.rmtree(self._spill.pop(old_ws, ""), ignore_errors=True)
            return db

    def export_session(
        self, ws: str, scope: Scope, write_dir: str, *, memory_mb: int, threads: int, temp_mb: int
    ) -> Session:
        """A session on a database of its own for one export: the workspace database's guardrails, plus
        ``write_dir`` (a fresh directory the export service created) as the one place DuckDB may write, so the
        service can ``COPY`` the already-checked query there. User SQL still cannot name a file: the guard
        rejects COPY and every file-reading function. Spill goes under ``write_dir``/spill."""
        layout.check_workspace(ws)
        resolved = self.resolve(ws, scope)
        spill = os.path.join(write_dir, "spill")
        os.makedirs(spill, exist_ok=True)
        db = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "memory_limit": f"{memory_mb}MB",
                "max_temp_directory_size": f"{temp_mb}MB",
                "temp_directory": spill,
                "threads": threads,
            },
        )
        try:
            self._lock_down(db, ws, write_dir)

            def uri(table: str, m: Member) -> str:
                return self.lake.uri(layout.data_key(ws, table, m.lot_id, m.job_id))

            for stmt in view_sql(
                resolved.members, uri, retest_policy=resolved.retest_policy, wafer_ids=scope.wafer_ids
            ):
                db.execute(stmt)
        except BaseException:
            db.close()
            raise
        return Session(db, resolved)

    # -- snapshots ------------------------------------------------------------------------------
    def resolve(self, ws: str, scope: Scope) -> Resolved:
        """The scope's snapshot members, each lot with the retest policy of its snapshot whatever the scope (one
        snapshot, one yield), with one metadata read for a lot or a pinned snapshot (the lot's item carries its
        retest policy; only lots published before it did cost a read of their job)."""
        if scope.snapshot_job_id:
            return self._resolve_pinned(ws, scope)
        if scope.lot_id is not None:
            lot = self.catalog.get_lot(ws, scope.lot_id)
            return Resolved(
                _ordered(lot.lot_id, lot.active_job_id, lot.members),
                {lot.lot_id: self._policy(ws, lot)},
                {lot.lot_id: lot.active_job_id},
                lot,
            )
        members: list[Member] = []
        snaps: dict[str, str] = {}
        policies: dict[str, str] = {}
        for lot in self.catalog.iter_lots(ws):
            members += _ordered(lot.lot_id, lot.active_job_id, lot.members)
            snaps[lot.lot_id] = lot.active_job_id
            policies[lot.lot_id] = self._policy(ws, lot)
        return Resolved(members, policies, snaps)

    def _resolve_pinned(self, ws: str, scope: Scope) -> Resolved:
        assert scope.snapshot_job_id is not None
        try:
            job = self.catalog.get_job(ws, scope.snapshot_job_id)
            problem = None
        except NotFound:
            job, problem = None, f"snapshot job {scope.snapshot_job_id!r} not found"
        if job is not None and (job.status not in PUBLISHED or not job.snapshot or not job.lot_id):
            problem = f"job {scope.snapshot_job_id!r} did not publish a snapshot (status {job.status})"
        elif job is not None and scope.lot_id is not None and job.lot_id != scope.lot_id:
            problem = f"snapshot job {scope.snapshot_job_id!r} is not a snapshot of lot {scope.lot_id!r}"
        if problem is not None:
            if scope.lot_id is not None:
                self.catalog.get_lot(ws, scope.lot_id)  # an unknown lot is the first thing to report
            raise NotFound(problem)
        assert job is not None and job.lot_id is not None and job.snapshot is not None
        return Resolved(
            _ordered(job.lot_id, job.job_id, job.snapshot),
            {job.lot_id: job.options.retest_policy},
            {job.lot_id: job.job_id},
        )

    def _policy(self, ws: str, lot: Lot) -> str:
        if lot.retest_policy is not None:
            return lot.retest_policy
        try:  # lots published before the lot item carried its policy
            return self.catalog.get_job(ws, lot.active_job_id).options.retest_policy
        except NotFound:
            return self.settings.retest_policy

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
            tuple(sorted(resolved.retest_policy.items())),
            None if scope.wafer_ids is None else tuple(scope.wafer_ids),
        )
        with self._lock:
            cached = self._sessions.get(key)
            if cached is not None and cached.lock.acquire(blocking=False):
                self._sessions.move_to_end(key)
                return Session(cached.cur, resolved, self, key, cached, ws=ws)
        db = self.database(ws)
        cur = db.cursor()
        pending = _Pending(
            lazy_view_statements(
                resolved.members,
                self._uri(ws),
                retest_policy=resolved.retest_policy,
                wafer_ids=scope.wafer_ids,
                materialize=self.materialize,
            )
        )
        if self.parts_cache is not None and scope.wafer_ids is None and resolved.members:
            pending.resolvers["parts"] = lambda: self._cached_parts(ws, db, resolved.members, resolved, pending)
        entry = _Cached(cur, threading.Lock(), pending)
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
                return Session(cur, resolved, self, key, entry, ws=ws)
        return Session(cur, resolved, self, None, entry, ws=ws)

    def _uri(self, ws: str) -> Callable[[str, Member], str]:
        def uri(table: str, m: Member) -> str:
            return self.lake.uri(layout.data_key(ws, table, m.lot_id, m.job_id))

        return uri

    def _cached_parts(
        self, ws: str, db: duckdb.DuckDBPyConnection, members: list[Member], resolved: Resolved, pending: _Pending
    ) -> str | None:
        """The ``parts`` view over the cached files of the snapshot's lots (``parts_cache``), writing those
        missing; None (the view computes the rows) when a file cannot be written."""
        cache = self.parts_cache
        assert cache is not None
        lots: dict[str, list[Member]] = {}
        for m in members:
            lots.setdefault(m.lot_id, []).append(m)
        paths = {
            lot_id: cache.path(ws, lot_id, resolved.retest_policy.get(lot_id, "last"), ms)
            for lot_id, ms in lots.items()
        }
        missing = {lot_id: ms for lot_id, ms in lots.items() if not cache.intact(paths[lot_id])}
        if missing:
            written = self._write_parts(ws, db, missing, paths, resolved, pending)
            # also when a lot's file was refused: the other lots' files may have been kept
            cache.evict(ws, list(paths.values()))
            if not written:
                return None
        pinned = cache.pin(list(paths.values()))
        if pinned is None:
            return None  # another process evicted a file after the check: the views compute the rows
        cache.used(list(paths.values()))
        files = ", ".join(sql_literal(str(p)) for p in pinned)
        # a ``key=value`` directory above the cache would otherwise become a column (hive partitioning)
        return f"CREATE TEMP VIEW parts AS SELECT * FROM read_parquet([{files}], hive_partitioning = false)"

    def _write_parts(
        self,
        ws: str,
        db: duckdb.DuckDBPyConnection,
        lots: dict[str, list[Member]],
        paths: dict[str, Path],
        resolved: Resolved,
        pending: _Pending,
    ) -> bool:
        """The ``parts`` rows of ``lots`` into their cache files, computed once for them all (the windows
        partition by lot, so a lot's rows do not depend on the others) on a cursor of the workspace database
        (interrupted with the session that asked). False when a file cannot be written."""
        from .parts_cache import KEY_COLUMN

        cache = self.parts_cache
        assert cache is not None
        cur = db.cursor()
        pending.aux = cur
        try:
            ms = [m for group in lots.values() for m in group]
            policies = {lot_id: resolved.retest_policy.get(lot_id, "last") for lot_id in lots}
            views = _Pending(lazy_view_statements(ms, self._uri(ws), retest_policy=policies, materialize=False))
            views.create_for(cur, "parts")
            key = " ".join(
                f"WHEN file_num IN ({', '.join(str(int(m.file_num)) for m in group)}) "
                f"THEN {sql_literal(paths[lot_id].stem)}"
                for lot_id, group in lots.items()
            )

            def copy(tmp: str) -> None:
                cur.execute(
                    f"COPY (SELECT *, CASE {key} END AS {KEY_COLUMN} FROM parts) TO {sql_literal(tmp)} "
                    f"(FORMAT parquet, PARTITION_BY ({KEY_COLUMN}))"
                )

            def empty(tmp: str) -> None:
                cur.execute(f"COPY (SELECT * FROM parts LIMIT 0) TO {sql_literal(tmp)} (FORMAT parquet)")

            return cache.write([paths[lot_id] for lot_id in lots], copy, empty)
        finally:
            pending.aux = None
            cur.close()

    def fill_rows(self, ses: Session, ws: str, query: str, lot_scoped: bool) -> None:
        """Refresh the metadata relations a query names (they change between queries, unlike snapshots)."""
        low = query.lower()
        for name, rows_of in self.row_sources.items():
            if not any(w in low for w in METADATA_TRIGGERS.get(name, (name,))):
                continue
            rows = rows_of(ws, set(ses.resolved.snapshot_job_ids) if lot_scoped else None)
            ses.execute(f"DELETE FROM {name}")
            for i in range(0, len(rows), 200):
                chunk = rows[i : i + 200]
                width = len(chunk[0])
                marks = ", ".join("(" + ", ".join("?" * width) + ")" for _ in chunk)
                ses.execute(f"INSERT INTO {name} VALUES {marks}", [v for r in chunk for v in r])

    def memo(self, key: tuple, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per snapshot (``key`` names an immutable snapshot, see ``session``) and ``name``;
        later calls return the same value (LRU of MAX_MEMOS). Two concurrent first calls may both compute."""
        k = (key, name)
        with self._lock:
            if k in self._memos:
                self._memos.move_to_end(k)
                return self._memos[k]
        value = compute()
        with self._lock:
            self._memos[k] = value
            while len(self._memos) > MAX_MEMOS:
                self._memos.popitem(last=False)
        return value

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
    return Session(cur, Resolved([], {}, {}))


# a query naming none of the views (schema listings, SHOW, DESCRIBE of a catalog function) gets them all
_LISTS_RELATIONS = re.compile(r"information_schema|duckdb_\w+|\bshow\b|\bsummarize\b|\bpragma\b|sqlite_master", re.I)


# a single-quoted SQL string literal (our statements quote file paths, ids and names this way)
_LITERAL = re.compile(r"'(?:[^']|'')*'")


class _Pending:
    """The views and tables of a session not created yet. A statement runs when a query first names what it
    creates (or something built on it): a query over ``parts`` does not bind the Parquet files of ``pins``
    or materialise ``tests``. Matching is by name, case-insensitive, anywhere in the SQL text: a name inside a
    string literal creates a view nobody reads, never the reverse. A statement may be a function that returns
    it (raw tables list their files only then), and a name may have a resolver: called once, when the name is
    first needed, it returns the statement to run instead (the CLI's cached ``parts``) or None."""

    def __init__(
        self,
        stmts: list[tuple[str, str | Callable[[], str]]],
        resolvers: dict[str, Callable[[], str | None]] | None = None,
    ) -> None:
        self.stmts = dict(stmts)
        self.order = {name: i for i, (name, _) in enumerate(stmts)}
        self.resolvers = dict(resolvers or {})
        self.aux: duckdb.DuckDBPyConnection | None = None  # a resolver's cursor, interrupted with the session
        self._names = re.compile(r"\b(" + "|".join(map(re.escape, self.stmts)) + r")\b", re.I) if stmts else None

    def _named(self, sql: str) -> set[str]:
        assert self._names is not None
        return {m.lower() for m in self._names.findall(sql)} & self.stmts.keys()

    def _refs(self, name: str) -> set[str]:
        """The names a pending statement reads (a raw table reads files only; paths are not names)."""
        stmt = self.stmts[name]
        return set() if callable(stmt) else self._named(_LITERAL.sub("''", stmt))

    def create_for(self, cur: duckdb.DuckDBPyConnection, sql: str) -> None:
        if not self.stmts:
            return
        need = set(self.stmts) if _LISTS_RELATIONS.search(sql) else self._named(sql)
        todo: set[str] = set()
        while need:
            name = need.pop()
            if name in todo:
                continue
            resolve = self.resolvers.get(name)
            if resolve is not None:
                instead = resolve()
                if instead is not None:
                    self.stmts[name] = instead
                del self.resolvers[name]
            todo.add(name)
            need |= self._refs(name) - todo
        if not todo:
            return
        t0 = time.perf_counter()
        for name in sorted(todo, key=self.order.__getitem__):
            stmt = self.stmts[name]
            cur.execute(stmt() if callable(stmt) else stmt)
            del self.stmts[name]  # only once it exists: a failed statement is retried by the next query
        log.debug("session: %d views created in %.1f ms", len(todo), (time.perf_counter() - t0) * 1e3)


@dataclass
class _Cached:
    cur: duckdb.DuckDBPyConnection
    lock: threading.Lock
    pending: _Pending | None = None


class Session:
    """A cursor with the public views of one snapshot. Close it when done (it goes back to the cache)."""

    def __init__(
        self,
        cur: duckdb.DuckDBPyConnection,
        resolved: Resolved,
        engine: QueryEngine | None = None,
        key=None,
        entry: _Cached | None = None,
        *,
        ws: str | None = None,
    ) -> None:
        self.ws = ws
        self.cur = cur
        self.resolved = resolved
        self._engine = engine
        self._memo_engine = engine
        self._key = key
        self._entry = entry
        self.broken = False

    def execute(self, sql: str, params: list | dict | None = None) -> duckdb.DuckDBPyConnection:
        if self._entry is not None and self._entry.pending is not None:
            self._entry.pending.create_for(self.cur, sql)
        return self.cur.execute(sql, params or [])

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation:
        """``sql`` as a relation: its Arrow C stream (``__arrow_c_stream__``) needs no pyarrow."""
        if self._entry is not None and self._entry.pending is not None:
            self._entry.pending.create_for(self.cur, sql)
        return self.cur.sql(sql)

    def timezone(self) -> str:
        """The session's time zone (the zone DuckDB gives TIMESTAMPTZ values in Arrow)."""
        ((tz,),) = self.cur.execute("SELECT current_setting('TimeZone')").fetchall()
        return str(tz)

    def _fill(self, sql: str) -> None:
        """Services' own queries see the metadata relations too (the SQL service fills them itself)."""
        if self._engine is not None and self.ws is not None and self._engine.row_sources:
            self._engine.fill_rows(self, self.ws, sql, lot_scoped=True)

    def rows(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        self._fill(sql)
        return self.execute(sql, params).fetchall()

    def dicts(self, sql: str, params: list | dict | None = None) -> list[dict]:
        self._fill(sql)
        res = self.execute(sql, params)
        names = [d[0] for d in res.description]
        f32 = set(float32_columns(res.description))  # presented at float32 precision (1e-05)
        return [
            {n: float32_value(v) if i in f32 else v for i, (n, v) in enumerate(zip(names, r, strict=False))}
            for r in res.fetchall()
        ]

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed from this snapshot's rows, once per snapshot (sessions outside the engine's
        cache compute it every time)."""
        if self._memo_engine is None or self._key is None:
            return compute()
        return self._memo_engine.memo(self._key, name, compute)

    def interrupt(self) -> None:
        self.broken = True  # an interrupted cursor is not lent again
        self.cur.interrupt()
        aux = self._entry.pending.aux if self._entry is not None and self._entry.pending is not None else None
        if aux is not None:
            try:
                aux.interrupt()
            except duckdb.Error:
                pass  # it was closing: its work is over

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
