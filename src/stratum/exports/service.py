"""Exports: a guarded query (or a public table of one lot with column filters) written whole to Parquet,
CSV or Arrow, with no row cap and bounded memory.

DuckDB writes Parquet and CSV itself: the service wraps the already-checked query in ``COPY (<query>) TO
'<file>'`` where the file lies in a fresh private directory the service created, on a database of its own
(``QueryEngine.export_session``) with the same views and guardrails as SQL's plus that one directory as the
only writable place. DuckDB's writer streams (a row group per thread at a time, spilling under
``memory_limit``), so memory stays bounded whatever the size; the file is then uploaded (multipart on S3).
Arrow IPC files are written from DuckDB's Arrow batches by pyarrow (``batch_rows`` at a time), or where pyarrow is
missing (the AWS functions) from DuckDB's Arrow C stream by nanoarrow (``stratum.query.arrow_ipc``). The query
passes the same checks as ``POST /v1/sql`` (``stratum.query.sql.check_query``; the guard still refuses COPY
and every file function in user SQL), so an export sees exactly what SQL sees. An export is a record in the
metadata store (``queued → running → succeeded | failed``) and a file under ``workspaces/<ws>/exports/<id>/``,
outside the lake root that SQL may read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb

from stratum.auth import signed_urls
from stratum.auth.scopes import PermissionDenied
from stratum.errors import BadRequest, NotFound, QueryTimeout, StratumError
from stratum.events.model import Event, new_event
from stratum.events.port import EventPort
from stratum.ids import ulid
from stratum.lake import layout
from stratum.query import arrow_ipc
from stratum.query.engine import QueryEngine, Scope, Session, resources
from stratum.query.public_schema import PUBLIC
from stratum.query.sql import check_query, memory_exceeded
from stratum.query.views import sql_literal
from stratum.settings import Settings
from stratum.storage.metadata import ABSENT, MetadataStore
from stratum.storage.objectstore import EXPORT_LIFECYCLE, ObjectStore

from .formats import FORMATS, Format

log = logging.getLogger("stratum.exports")

MAX_FILTER_VALUES = 10_000
_CHUNK = 8 << 20


@dataclass
class ExportStats:
    rows: int
    bytes: int
    sha256: str
    columns: list[dict[str, str]]
    elapsed_ms: float


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise BadRequest("filter values must be finite numbers")
        return repr(v)
    if isinstance(v, str):
        if "\x00" in v:
            raise BadRequest("filter values must not contain NUL")
        return "'" + v.replace("'", "''") + "'"
    raise BadRequest(f"filter values must be strings, numbers, booleans or null, not {type(v).__name__}")


def table_query(table: str, filters: dict[str, Any] | None) -> str:
    """``SELECT * FROM table WHERE ...`` for a public table and equality / IN / IS NULL filters on its
    columns (names checked against the public schema, values written as escaped literals)."""
    view = PUBLIC.get(table)
    if view is None:
        raise BadRequest(f"unknown table {table!r}; exportable tables: {', '.join(sorted(PUBLIC))}")
    cols = {c for c, _ in view.cols}
    where = []
    for col, val in (filters or {}).items():
        if col not in cols:
            raise BadRequest(f"unknown column {col!r} of {table} in filters; columns: {', '.join(sorted(cols))}")
        q = '"' + col + '"'
        if val is None:
            where.append(f"{q} IS NULL")
        elif isinstance(val, list):
            if not val or len(val) > MAX_FILTER_VALUES:
                raise BadRequest(f"filter {col!r}: a list needs 1 to {MAX_FILTER_VALUES} values")
            where.append(f"{q} IN ({', '.join(_lit(x) for x in val)})")
        else:
            where.append(f"{q} = {_lit(val)}")
    return f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


REQUESTED = "export.requested"


class ExportService:
    """Export jobs: ``create`` records one, ``dispatch`` hands it to the event port as ``export.requested``,
    whose consumer calls ``handle_event`` → ``run`` (in process under ``stratum serve``; on AWS the exports
    function behind an SQS queue)."""

    def __init__(
        self,
        engine: QueryEngine,
        meta: MetadataStore,
        lake: ObjectStore,
        settings: Settings,
        events: EventPort | None = None,
        isolate: Sequence[str] | None = None,
    ) -> None:
        self.engine, self.meta, self.lake, self.settings, self.events = engine, meta, lake, settings, events
        # a server's exports run in a memory-capped child started with this command (``isolated``)
        self.isolate = tuple(isolate) if isolate else None

    # -- the writer (used by the API's export jobs and by `stratum export`) --------------------------
    @contextlib.contextmanager
    def produce(
        self, ws: str, query: str, scope: Scope, fmt: Format, work_dir: str | os.PathLike[str] | None = None
    ) -> Iterator[tuple[Path, ExportStats]]:
        """Run ``query`` (checked like SQL) over the workspace and write every row to a file in a fresh private
        directory under ``work_dir`` (default: the settings' tmp_dir); yields the file and its stats, and
        removes the directory afterwards (move the file away to keep it)."""
        check_format(fmt)
        check_query(query, self.settings.sql.max_query_chars)
        base = Path(work_dir) if work_dir is not None else self.settings.tmp_dir
        base.mkdir(parents=True, exist_ok=True)
        # resolved: DuckDB compares the COPY target with allowed_directories literally (/tmp may be a symlink)
        d = Path(os.path.realpath(tempfile.mkdtemp(prefix="stratum-export-", dir=base)))
        try:
            path = d / f"out.{FORMATS[fmt][0]}"
            yield path, self._write(ws, query, scope, fmt, d, path)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def _write(self, ws: str, query: str, scope: Scope, fmt: Format, d: Path, path: Path) -> ExportStats:
        limits = self.settings.exports
        r = resources(self.settings)
        t0 = time.perf_counter()
        ses = self.engine.export_session(
            ws,
            scope,
            str(d),
            memory_mb=limits.duckdb_memory_mb or r.duckdb_memory_mb,
            threads=limits.duckdb_threads or r.threads,
            temp_mb=limits.duckdb_temp_mb or r.duckdb_temp_mb,
        )
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            ses.interrupt()

        timer = threading.Timer(limits.timeout_seconds, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            self.engine.fill_rows(ses, ws, query, lot_scoped=scope.lot_id is not None or bool(scope.snapshot_job_id))
            # the column names and types, as POST /v1/sql names them (LIMIT 0: binding only, no rows read)
            # (the query on lines of its own: a trailing "--" comment in it cannot swallow what follows)
            desc = ses.execute(f"SELECT * FROM (\n{query}\n) AS q LIMIT 0").description or []
            if fmt == "arrow":
                rows = _write_arrow(ses, query, path, self.settings.sql.arrow_encoder, limits.batch_rows)
            else:
                src = _exact_parquet(query, desc) if fmt == "parquet" else query
                copy = f"COPY (\n{src}\n) TO {sql_literal(str(path))} ({_copy_options(fmt, limits)})"
                ((rows,),) = ses.rows(copy)
        except duckdb.InterruptException:
            raise QueryTimeout(f"the export was stopped after the {limits.timeout_seconds:g} s time limit") from None
        except (duckdb.OutOfMemoryException, MemoryError) as exc:
            raise memory_exceeded(self.settings, exc if isinstance(exc, duckdb.Error) else None) from None
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeout(
                    f"the export was stopped after the {limits.timeout_seconds:g} s time limit"
                ) from None
            raise BadRequest(f"query failed: {str(exc).strip().splitlines()[0][:500]}") from None
        except arrow_ipc.ArrowIpcError as exc:
            raise BadRequest(f"{exc}; or export parquet") from None
        finally:
            timer.cancel()
            ses.close()
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return ExportStats(
            rows=int(rows),
            bytes=path.stat().st_size,
            sha256=h.hexdigest(),
            columns=[{"name": d[0], "type": str(d[1])} for d in desc],
            elapsed_ms=(time.perf_counter() - t0) * 1e3,
        )

    # -- export jobs -------------------------------------------------------------------------------
    @staticmethod
    def _pk(ws: str) -> str:
        return f"WS#{ws}#EXPORT"

    def create(
        self,
        ws: str,
        *,
        fmt: Format,
        query: str | None = None,
        table: str | None = None,
        filters: dict[str, Any] | None = None,
        scope: Scope | None = None,
    ) -> dict[str, Any]:
        scope = scope or Scope()
        check_format(fmt)
        if (query is None) == (table is None):
            raise BadRequest("give either query or table (with context.lot_id and optional filters)")
        if table is not None:
            if not scope.lot_id:
                raise BadRequest("a table export needs context.lot_id")
            query = table_query(table, filters)
        elif filters:
            raise BadRequest("filters apply to a table export; put conditions of a query in its WHERE clause")
        assert query is not None
        check_query(query, self.settings.sql.max_query_chars)
        self.engine.resolve(ws, scope)  # an unknown lot or snapshot is a 404 now, not a failed job later
        export_id = f"exp_{ulid()}"
        rec = {
            "export_id": export_id,
            "workspace": ws,
            "status": "queued",
            "format": fmt,
            "query": query,
            "table": table,
            "context": {"lot_id": scope.lot_id, "snapshot_job_id": scope.snapshot_job_id, "wafer_ids": scope.wafer_ids},
            "created_at": _now(),
        }
        self.meta.put(self._pk(ws), export_id, rec, expect=ABSENT, ttl=self._ttl())
        return rec

    def _ttl(self) -> int:
        return int(time.time()) + self.settings.exports.retention_days * 86400

    def get(self, ws: str, export_id: str) -> dict[str, Any]:
        item = self.meta.get(self._pk(ws), export_id) if export_id.startswith("exp_") else None
        if item is None:
            raise NotFound(f"export {export_id!r} not found")
        return item.data

    def _save(self, rec: dict[str, Any]) -> None:
        self.meta.put(self._pk(rec["workspace"]), rec["export_id"], rec, ttl=self._ttl())

    def dispatch(self, ws: str, export_id: str) -> None:
        """Queue a created export: publish ``export.requested`` (the API's background task, after the 202). If
        the port refuses it, the export is marked failed (nothing would ever run it)."""
        try:
            if self.events is None:
                self.run(ws, export_id)
                return
            self.events.publish(new_event(REQUESTED, ws, subject={"export_id": export_id}))
        except Exception:
            log.exception("export %s of workspace %s could not be queued", export_id, ws)
            rec = self.get(ws, export_id)
            if rec["status"] == "queued":
                rec.update(
                    status="failed",
                    finished_at=_now(),
                    error={"code": "unavailable", "message": "the export could not be queued; request it again"},
                )
                self._save(rec)

    def handle_event(self, event: Event) -> dict[str, Any] | None:
        """The consumer of ``export.requested`` (local bus subscriber; the AWS exports function)."""
        if event.kind != REQUESTED:
            return None
        export_id = event.subject.get("export_id")
        if not isinstance(export_id, str):
            raise ValueError(f"event {event.id} names no export_id")
        try:
            if self.isolate:
                return self._run_isolated(event.workspace, export_id)
            return self.run(event.workspace, export_id)
        except NotFound:
            log.warning(
                "export %s of workspace %s is gone (expired); event %s ignored", export_id, event.workspace, event.id
            )
            return None

    def _run_isolated(self, ws: str, export_id: str) -> dict[str, Any]:
        from .isolated import run_in_child

        assert self.isolate is not None
        if self.get(ws, export_id)["status"] != "queued":
            return self.run(ws, export_id)  # finished, or running elsewhere: nothing to start
        code = run_in_child(self.isolate, self.settings, ws, export_id)
        rec = self.get(ws, export_id)
        if rec["status"] in ("queued", "running"):  # the child died before recording an end
            log.warning("export %s of workspace %s: worker ended with %s", export_id, ws, code)
            if code is None:
                err: StratumError = QueryTimeout(
                    f"the export was stopped after {self.settings.exports.abandoned_after_seconds:g} s"
                )
            else:
                err = memory_exceeded(self.settings)
            rec.update(status="failed", finished_at=_now(), error={"code": err.code, "message": err.detail})
            self._save(rec)
        return rec

    def run(self, ws: str, export_id: str) -> dict[str, Any]:
        """Run a queued export to its end. Idempotent for at-least-once delivery: a finished export is returned
        as it is; a running one is left alone unless it started more than ``abandoned_after_seconds`` ago, when
        the run that took it was cut off (process or function ended) and it is marked failed (running it again
        would most likely be cut off again)."""
        rec = self.get(ws, export_id)
        if rec["status"] == "running":
            started = dt.datetime.fromisoformat(rec["started_at"])
            age = (dt.datetime.now(dt.UTC) - started).total_seconds()
            if age > self.settings.exports.abandoned_after_seconds:
                rec.update(
                    status="failed",
                    finished_at=_now(),
                    error={
                        "code": "export_interrupted",
                        "message": "the export was cut off before it finished (time or memory limit of the worker); "
                        "narrow the query or split it",
                    },
                )
                self._save(rec)
            return rec
        if rec["status"] != "queued":
            return rec
        rec.update(status="running", started_at=_now())
        self._save(rec)
        ext, _ = FORMATS[rec["format"]]
        filename = f"{export_id}.{ext}"
        key = layout.export_key(ws, export_id, filename)
        ctx = rec["context"]
        scope = Scope(lot_id=ctx["lot_id"], snapshot_job_id=ctx["snapshot_job_id"], wafer_ids=ctx["wafer_ids"])
        try:
            with self.produce(ws, rec["query"], scope, rec["format"]) as (path, stats):
                # streamed (multipart on S3); tagged for the bucket's expiry rule (the local sweep: ``sweep``)
                self.lake.put_file(key, str(path), lifecycle=EXPORT_LIFECYCLE)
        except StratumError as exc:
            rec.update(status="failed", finished_at=_now(), error={"code": exc.code, "message": exc.detail})
        except Exception:
            log.exception("export %s of workspace %s failed", export_id, ws)
            rec.update(
                status="failed", finished_at=_now(), error={"code": "internal_error", "message": "the export failed"}
            )
        else:
            rec.update(
                status="succeeded",
                finished_at=_now(),
                key=key,
                filename=filename,
                rows=stats.rows,
                bytes=stats.bytes,
                sha256=stats.sha256,
                columns=stats.columns,
                elapsed_ms=round(stats.elapsed_ms, 1),
            )
        self._save(rec)
        return rec

    def sweep(self, workspaces: Iterable[str]) -> list[str]:
        """Delete the files of exports whose record has expired (``exports.retention_days`` after the export
        ended): on S3 the bucket's lifecycle rule does this; a local directory has no expiry, so ``stratum serve``
        runs this periodically. Returns the deleted keys."""
        deleted: list[str] = []
        for ws in workspaces:
            prefix = layout.exports_prefix(ws)
            alive: dict[str, bool] = {}
            for info in list(self.lake.list(prefix)):
                export_id = info.key[len(prefix) :].split("/", 1)[0]
                if export_id not in alive:
                    alive[export_id] = self.meta.get(self._pk(ws), export_id) is not None
                if not alive[export_id]:
                    self.lake.delete(info.key)
                    deleted.append(info.key)
        return deleted

    # -- downloads ----------------------------------------------------------------------------------
    def download_url(self, ws: str, rec: dict[str, Any], base_url: str) -> tuple[str, str]:
        """An expiring URL of a finished export's file: presigned S3 GET, or the API's signed local URL."""
        seconds = self.settings.exports.url_seconds
        expires = int(time.time()) + seconds
        url = self.lake.presign_get(rec["key"], expires_seconds=seconds, filename=rec["filename"])
        if url is None:
            sig = signed_urls.sign(self._secret(), "export", ws, rec["export_id"], expires)
            url = (
                f"{base_url.rstrip('/')}/v1/exports/{rec['export_id']}/content"
                f"?workspace={ws}&expires={expires}&signature={sig}"
            )
        return url, dt.datetime.fromtimestamp(expires, dt.UTC).isoformat()

    def _secret(self) -> bytes:
        return signed_urls.local_secret(self.settings.data_dir)

    def open_signed(self, ws: str, export_id: str, expires: int, signature: str) -> tuple[IO[bytes], dict[str, Any]]:
        """The file of a local signed download URL (checked: signature, expiry, finished export)."""
        if not signed_urls.verify(self._secret(), signature, "export", ws, export_id, expires):
            raise PermissionDenied("invalid download URL signature")
        if expires < time.time():
            raise PermissionDenied("this download URL has expired; GET the export again for a new one")
        layout.check_workspace(ws)
        rec = self.get(ws, export_id)
        if rec.get("status") != "succeeded":
            raise NotFound(f"export {export_id!r} has no file")
        return self.lake.open_read(rec["key"]), rec


def _exact_parquet(query: str, description: list) -> str:
    """DuckDB's Parquet writer stores (U)HUGEINT as DOUBLE, losing digits: such columns are cast to
    DECIMAL(38,0), the type their Arrow form has (an out-of-range value fails the export, never rounds)."""
    wide = [d[0] for d in description if str(d[1]) in ("HUGEINT", "UHUGEINT")]
    if not wide:
        return query
    cols = ", ".join(f"CAST({_ident(c)} AS DECIMAL(38,0)) AS {_ident(c)}" for c in wide)
    return f"SELECT * REPLACE ({cols}) FROM (\n{query}\n) AS q"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_options(fmt: str, limits: Any) -> str:
    if fmt == "parquet":
        return f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(limits.row_group_rows)}"
    return "FORMAT csv, HEADER true"


def _write_arrow(ses: Session, query: str, path: Path, encoder: str, batch_rows: int) -> int:
    """Arrow IPC file (DuckDB has no Arrow COPY): DuckDB's Arrow batches into pyarrow's writer, ``batch_rows`` at a
    time; where pyarrow is missing (the AWS functions), DuckDB's Arrow C stream encoded by nanoarrow."""
    if not arrow_ipc.use_pyarrow(encoder):
        return arrow_ipc.write_file(ses.relation(query), path)
    import pyarrow as pa

    rows = 0
    reader = ses.execute(query).to_arrow_reader(batch_rows)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows
