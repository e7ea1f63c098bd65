"""Read-only SQL over a workspace's lake, with guardrails.

Layers of defence, each tested:

1. the statement: DuckDB's own parser must find exactly one statement, of type SELECT (CTEs
   included) or EXPLAIN of a SELECT; anything else (DDL, DML, COPY, ATTACH, INSTALL/LOAD, PRAGMA, SET,
   CALL, several statements) is rejected before it runs — comments and string literals cannot hide a
   second statement from the parser;
2. the database: per workspace, external access is off, only the workspace's lake root is an allowed
   directory, autoinstall/autoload are off and the configuration is locked (``QueryEngine.database``);
3. the run: a timer interrupts the query at the time limit; results are paged (``limit``/``cursor``)
   and capped at ``max_rows`` in total, after which ``truncated`` is true, and a page's JSON at
   ``max_bytes``; DuckDB's memory and spill are bounded per database (``engine.resources``) and a server runs
   user SQL in memory-capped worker processes (``workers``).

The reference check resolves CTE names by scope and refuses functions that bind SQL of their own or read
the catalog (``check_references``).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import decimal
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from stratum.cursor import decode_cursor, encode_cursor
from stratum.errors import BadRequest, QueryRejected, QueryResources, QueryTimeout
from stratum.settings import Settings

from . import arrow_ipc
from .engine import QueryEngine, Scope, check_wafer_ids, resources
from .floats import float32_columns, float32_value
from .public_schema import PUBLIC

ALLOWED = {duckdb.StatementType.SELECT}
_EXPLAIN_RE = re.compile(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", re.IGNORECASE)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Table functions user SQL may call. File readers (read_parquet, read_csv, glob, ...) are not among
# them: the public views are the only way to data, which also closes the S3 '..' traversal that
# DuckDB's allowed_directories check misses (see docs/decisions.md).
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Scalar functions that bind SQL of their own (and so reach any table function or catalog view), and the
# built-in macros whose bodies read the catalog (pg_get_viewdef returns view SQL with absolute lake paths).
# The macro list is completed from the DuckDB in use (_catalog_macros), so a newer version cannot add one
# silently.
_DENIED_FUNCTIONS = {"json_serialize_plan", "json_execute_serialized_sql", "getvariable", "which_secret"}
# current_setting() may read these; the rest name server paths (allowed_directories, temp_directory,
# home_directory, extension_directory, secret_directory, ...) or credentials.
SAFE_SETTINGS = frozenset(
    {
        "threads",
        "memory_limit",
        "max_temp_directory_size",
        "timezone",
        "calendar",
        "enable_external_access",
        "lock_configuration",
        "default_order",
        "default_null_order",
        "preserve_insertion_order",
        "max_expression_depth",
    }
)


NOT_SELECT = "only SELECT (including WITH ... SELECT) and EXPLAIN statements are allowed"
_PARSER: duckdb.DuckDBPyConnection | None = None
_PARSER_LOCK = threading.Lock()


@contextlib.contextmanager
def _parser():
    """A private connection for parsing user SQL: no file or network access even at parse time (DuckDB
    reads files while parsing some statements, e.g. IMPORT DATABASE reads <dir>/schema.sql). One per
    process behind a lock (parsing takes well under a millisecond); never in a thread-local, whose
    teardown at interpreter exit would destroy a DuckDB connection on a dying thread."""
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is None:
            _PARSER = duckdb.connect(
                ":memory:",
                config={
                    "enable_external_access": False,
                    "lock_configuration": True,
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
            known = CATALOG_MACROS.get(duckdb.__version__)
            _DENIED_FUNCTIONS.update(known if known is not None else _catalog_macros(_PARSER))
        yield _PARSER


# The built-in macros that read the catalog, per DuckDB version (what _catalog_macros finds; a test keeps the
# entry of the installed version equal to it). Listing duckdb_functions() costs tens of milliseconds, once per
# process: a CLI query pays it on every run. Another version is asked at run time.
CATALOG_MACROS: dict[str, frozenset[str]] = {
    "1.5.5": frozenset(
        {
            "duckdb_logs_parsed",
            "duckdb_profiling_settings",
            "format_type",
            "get_block_size",
            "histogram",
            "histogram_values",
            "pg_get_constraintdef",
            "pg_get_viewdef",
        }
    ),
}


def _catalog_macros(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
        "WHERE function_type IN ('macro', 'table_macro') AND macro_definition ILIKE '%FROM%'"
    ).fetchall()
    return {r[0] for r in rows}


@atexit.register
def _close_parser() -> None:
    global _PARSER
    with _PARSER_LOCK:
        if _PARSER is not None:
            _PARSER.close()
            _PARSER = None


def check_query(query: str, max_chars: int = 100_000) -> str:
    """Validate a user query; return the statement kind ('select' or 'explain')."""
    if not isinstance(query, str) or not query.strip():
        raise QueryRejected("the query is empty")
    if len(query) > max_chars:
        raise QueryRejected(f"the query is longer than {max_chars} characters")
    try:
        with _parser() as con:
            stmts = con.extract_statements(query)
    except duckdb.PermissionException:  # a statement that reads files just to be parsed (IMPORT DATABASE)
        raise QueryRejected(NOT_SELECT) from None
    except duckdb.Error as exc:
        raise QueryRejected(f"the query does not parse: {_clean(exc)}") from None
    if len(stmts) != 1:
        raise QueryRejected(f"exactly one statement is allowed per request, found {len(stmts)}")
    st = stmts[0]
    if st.type in ALLOWED:
        check_references(query)
        return "select"
    if st.type == duckdb.StatementType.EXPLAIN:
        inner_text = _EXPLAIN_RE.sub("", st.query, count=1)
        try:
            with _parser() as con:
                inner = con.extract_statements(inner_text)
        except duckdb.Error as exc:
            raise QueryRejected(f"the query does not parse: {_clean(exc)}") from None
        if len(inner) == 1 and inner[0].type in ALLOWED:
            check_references(inner_text)
            return "explain"
        raise QueryRejected("EXPLAIN is allowed only for a SELECT statement")
    kind = str(st.type).split(".")[-1]
    raise QueryRejected(f"{NOT_SELECT}, not {kind}")


def check_references(query: str) -> None:
    """Every table a query reads must be a public view or a CTE in scope where it is read, named by a plain
    identifier; every table function must be on the allow-list; no function may bind SQL of its own
    (``json_serialize_plan``, catalog macros) or read server settings other than ``SAFE_SETTINGS``."""
    with _parser() as con:
        try:
            text = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0]
        except duckdb.Error as exc:
            raise QueryRejected(f"the query does not parse: {_clean(exc)}") from None
    try:
        tree = json.loads(text)
    except RecursionError:
        raise QueryRejected(
            "the query nests expressions or subqueries too deeply to be checked; flatten it (e.g. sum a list, "
            "join instead of nesting subqueries)"
        ) from None
    if tree.get("error"):
        if tree.get("error_type") == "parser" and tree.get("error_message"):
            raise QueryRejected(f"the query does not parse: {str(tree['error_message'])[:500]}")
        raise QueryRejected(
            "only plain SELECT (including WITH ... SELECT) and EXPLAIN statements are allowed "
            "(PRAGMA and other statements that DuckDB rewrites are not)"
        )
    public = frozenset(name.lower() for name in PUBLIC)
    # An explicit stack, not recursion: a deeply nested query must not exhaust the Python stack. Each entry
    # carries the CTE names in scope there: a CTE covers its own query node (and what is nested in it) and the
    # CTEs defined after it in the same WITH; never a sibling or an enclosing query, and never its own body
    # unless it is recursive (DuckDB binds those names to the catalog: pg_settings, duckdb_views, ...).
    stack: list[tuple[Any, frozenset[str]]] = [(tree.get("statements", []), frozenset())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, list):
            stack.extend((v, scope) for v in node)
            continue
        if not isinstance(node, dict):
            continue
        cm = node.get("cte_map")
        entries = cm.get("map", []) if isinstance(cm, dict) else []
        if entries:
            names = [str(e.get("key", "")).lower() for e in entries]
            for i, e in enumerate(entries):
                stack.append((e.get("value"), scope | frozenset(names[:i])))
            scope = scope | frozenset(names)
        t = node.get("type")
        if t == "BASE_TABLE":
            _check_table(node, public | scope)
        elif t == "SHOW_REF" and node.get("table_name"):
            # SHOW TABLES & co. list the session's internal objects; DESCRIBE/SUMMARIZE of a query are fine
            raise QueryRejected("SHOW statements are not allowed; GET /v1/sql/schema lists the public tables")
        elif t == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            name = str(fn.get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS or fn.get("schema") or fn.get("catalog"):
                raise QueryRejected(
                    f"table function {name}() is not allowed; the public tables hold the data "
                    f"(allowed table functions: {', '.join(sorted(TABLE_FUNCTIONS))})"
                )
        elif node.get("class") == "FUNCTION":
            _check_function(node)
        elif t == "RECURSIVE_CTE_NODE" and node.get("cte_name"):
            stack.append((node.get("right"), scope | {str(node["cte_name"]).lower()}))
            node = {k: v for k, v in node.items() if k != "right"}
        stack.extend((v, scope) for k, v in node.items() if k != "cte_map" and isinstance(v, (dict, list)))


def _check_table(node: dict, allowed: frozenset[str]) -> None:
    name = str(node.get("table_name", ""))
    qualified = node.get("catalog_name") or node.get("schema_name")
    if qualified or not _IDENT.match(name) or name.lower() not in allowed:
        shown = ".".join(x for x in (node.get("catalog_name"), node.get("schema_name"), name) if x)
        raise QueryRejected(
            f"unknown table {shown!r}: queries read the public tables ({', '.join(sorted(PUBLIC))}) and their "
            "own CTEs (a CTE is visible in the query that defines it and in what is nested there)"
        )


def _check_function(node: dict) -> None:
    name = str(node.get("function_name", "")).lower()
    if name in _DENIED_FUNCTIONS:
        raise QueryRejected(f"function {name}() is not allowed: it reads the database catalog or binds SQL")
    if name == "current_setting":
        args = node.get("children") or []
        arg = args[0] if len(args) == 1 else {}
        value = (arg.get("value") or {}).get("value") if arg.get("class") == "CONSTANT" else None
        if not isinstance(value, str) or value.lower() not in SAFE_SETTINGS:
            raise QueryRejected(
                "current_setting() reads only these settings, named by a string literal: "
                + ", ".join(sorted(SAFE_SETTINGS))
            )


def _clean(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:500]


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return str(v)


@dataclass
class SqlResult:
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    next_cursor: str | None
    row_count: int
    truncated: bool
    elapsed_ms: float
    offset: int = 0
    snapshot_jobs: dict[str, str] = field(default_factory=dict)
    arrow: bytes | None = None  # the page as an Arrow IPC stream (run(..., arrow=True)); rows is then empty

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "next_cursor": self.next_cursor,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def _fingerprint(query: str, scope: Scope) -> str:
    raw = json.dumps([query, scope.lot_id, scope.snapshot_job_id, scope.wafer_ids], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_result_cursor(offset: int, fp: str) -> str:
    return encode_cursor({"o": offset, "q": fp})


def decode_result_cursor(cursor: str, fp: str) -> int:
    try:
        d = decode_cursor(cursor)
        offset = int(d["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest("invalid cursor") from exc
    if d.get("q") != fp or offset < 0:
        raise BadRequest("the cursor belongs to another query or context")
    return offset


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_page(res: duckdb.DuckDBPyConnection, offset: int, n: int):
    """Rows ``offset`` to ``offset + n`` of a result as one pyarrow.Table (with its schema even when
    empty), and how many rows were skipped."""
    import pyarrow as pa

    reader = res.to_arrow_reader(122_880)
    batches, seen = [], 0
    while seen < offset + n:
        try:
            b = reader.read_next_batch()
        except StopIteration:
            break
        if seen + b.num_rows > offset:
            batches.append(b.slice(max(0, offset - seen)))
        seen += b.num_rows
    skipped = min(seen, offset)
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, n), skipped


def memory_exceeded(settings: Settings, exc: BaseException | None = None) -> QueryResources:
    """The error of a query past its memory bounds (in-process, or a worker process that ran out)."""
    r = resources(settings)
    why = f" ({_clean(exc).split(' (', 1)[0]})" if exc is not None else ""
    return QueryResources(
        f"the query needs more memory than a query may use: {r.duckdb_memory_mb} MB of working memory, "
        f"{r.duckdb_temp_mb} MB of spill, {r.worker_memory_mb} MB in all{why}; aggregate or filter more, "
        "or ask for fewer rows",
        memory_limit_mb=r.duckdb_memory_mb,
        max_temp_directory_mb=r.duckdb_temp_mb,
        worker_memory_mb=r.worker_memory_mb,
    )


class SqlService:
    def __init__(self, engine: QueryEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @staticmethod
    def _fetch(res: duckdb.DuckDBPyConnection, n: int, max_bytes: int | None) -> list[list[Any]]:
        """Up to ``n`` rows as JSON values, refused once their JSON passes ``max_bytes``. Rows come in small
        batches (one at first) so a page of huge values stops at the first batch past the cap."""
        out: list[list[Any]] = []
        size, batch = 2, 1
        while len(out) < n:
            got = res.fetchmany(min(batch, n - len(out)))
            if not got:
                break
            f32 = float32_columns(res.description)
            rows = [[jsonable(float32_value(v) if i in f32 else v) for i, v in enumerate(r)] for r in got]
            if max_bytes is None:
                out += rows
                batch = min(batch * 4, 2048)
                continue
            size += sum(len(json.dumps(r, separators=(",", ":"), allow_nan=False)) + 1 for r in rows)
            if size > max_bytes:
                raise QueryResources(
                    f"the result page is larger than the {max_bytes:,}-byte response cap after "
                    f"{len(out) + len(rows)} rows; ask for fewer rows per request (limit) and follow "
                    "next_cursor, or select fewer or shorter columns",
                    max_response_bytes=max_bytes,
                )
            out += rows
            batch = min(batch * 4, 2048)
        return out

    def schema(self) -> list[dict[str, Any]]:
        """The public tables with their columns, DuckDB types and descriptions."""
        ses = self.engine.session_for_schema()
        try:
            out = []
            for name, view in PUBLIC.items():
                types = {r[0]: r[1] for r in ses.rows(f"DESCRIBE {name}")}
                out.append(
                    {
                        "name": name,
                        "description": view.doc,
                        "columns": [
                            {"name": c, "type": types.get(c, "UNKNOWN"), "description": d} for c, d in view.cols
                        ],
                    }
                )
            return out
        finally:
            ses.close()

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
        on_start: Callable[[], None] | None = None,
    ) -> SqlResult:
        """One page of a query's rows; ``max_bytes`` caps the page's JSON (servers pass
        ``sql.max_response_bytes``; the CLI prints what it gets). ``on_start`` is called when the query's
        time limit starts (after the session is built)."""
        s = self.settings.sql
        scope = scope or Scope()
        check_wafer_ids(scope.wafer_ids)
        check_query(query, s.max_query_chars)
        page = s.page_rows if limit is None else int(limit)
        if page < 1 or page > s.max_rows:
            raise BadRequest(f"limit must be between 1 and {s.max_rows}")
        fp = _fingerprint(query, scope)
        offset = decode_result_cursor(cursor, fp) if cursor else 0
        if offset >= s.max_rows:
            raise BadRequest(f"a query yields at most {s.max_rows} rows in total")
        t0 = time.perf_counter()
        ses = self.engine.session(workspace, scope)
        try:
            self.engine.fill_rows(
                ses, workspace, query, lot_scoped=scope.lot_id is not None or bool(scope.snapshot_job_id)
            )
        except BaseException:
            ses.close()
            raise
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            ses.interrupt()

        timer = threading.Timer(timeout if timeout is not None else s.timeout_seconds, on_timeout)
        timer.daemon = True
        if on_start is not None:
            on_start()
        timer.start()
        limit_s = timeout if timeout is not None else s.timeout_seconds
        ipc: bytes | None = None
        try:
            want = min(page, s.max_rows - offset)
            rows: list[list[Any]]
            if arrow and not arrow_ipc.use_pyarrow(s.arrow_encoder):
                # DuckDB's Arrow C stream encoded by nanoarrow: the AWS functions, which ship no pyarrow
                rel = ses.relation(query)
                columns = [{"name": d[0], "type": str(d[1])} for d in (rel.description or [])]
                ipc, n, more_rows = arrow_ipc.page(rel, offset, want, timezone=lambda: ses.timezone())
                rows = [[]] * (n + more_rows)  # only the length counts below
            else:
                res = ses.execute(query)
                columns = [{"name": d[0], "type": str(d[1])} for d in (res.description or [])]
                skipped = 0
                if arrow:  # skipped inside _arrow_page: fetchmany and Arrow batches must not be mixed
                    table, skipped = _arrow_page(res, offset, want + 1)
                while skipped < offset:
                    got = res.fetchmany(min(10_000, offset - skipped))
                    if not got:
                        break
                    skipped += len(got)
                if arrow:
                    n = table.num_rows if skipped == offset else 0
                    ipc = _ipc(table.slice(0, min(n, want)))
                    rows = [[]] * n  # only the length counts below
                else:
                    rows = self._fetch(res, want + 1, max_bytes) if skipped == offset else []
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query was stopped after the {limit_s:g} s time limit") from None
        except duckdb.OutOfMemoryException as exc:
            ses.broken = True
            raise memory_exceeded(self.settings, exc) from None
        except MemoryError:
            ses.broken = True
            raise memory_exceeded(self.settings) from None
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeout(f"the query was stopped after the {limit_s:g} s time limit") from None
            raise BadRequest(f"query failed: {_clean(exc)}") from None
        except arrow_ipc.ArrowIpcError as exc:
            raise BadRequest(f"{exc}; ask for JSON instead") from None
        finally:
            timer.cancel()
            # Join, never leave it to finish on its own: the timer's closure holds the session, and a daemon
            # thread dropping the last reference to a DuckDB cursor while the interpreter finalises aborts
            # the process (the cursor's destructor re-takes the GIL: pthread_exit through C++ -> terminate).
            timer.join()
            ses.close()
        more = len(rows) > want
        rows = rows[:want]
        end = offset + len(rows)
        truncated = more and end >= s.max_rows
        next_cursor = encode_result_cursor(end, fp) if more and not truncated else None
        return SqlResult(
            columns=columns,
            rows=[] if arrow else rows,
            arrow=ipc,
            next_cursor=next_cursor,
            row_count=len(rows),
            truncated=truncated,
            elapsed_ms=(time.perf_counter() - t0) * 1e3,
            offset=offset,
            snapshot_jobs=ses.resolved.snapshot_job_ids,
        )
