"""The same guarded SQL on Amazon Athena, for queries too large for a Lambda's DuckDB.

The user query passes the same checks as on DuckDB (``check_query``: one SELECT/EXPLAIN, public tables and
allowed table functions only). The public views are the same view bodies (``view_bodies`` in the Trino
dialect), sent as CTEs in front of the query; their raw tables read the Glue tables of the lake, each
pinned to the workspace and to the snapshot's lots and jobs through the partition projection columns
(``workspace``, ``lot``, ``job``), so Athena reads exactly the files DuckDB would, and nothing of any
other workspace.

Environment: STRATUM_AWS__GLUE_DATABASE, STRATUM_AWS__ATHENA_WORKGROUP (results location and encryption
are enforced by the workgroup).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stratum.errors import BadRequest, QueryTimeout, Unavailable
from stratum.lake import layout
from stratum.lake.schema import TABLES

from .engine import QueryEngine, Scope
from .sql import SqlResult, check_query, jsonable
from .views import TRINO, Member, sql_literal, view_bodies

_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_WITH = re.compile(r"^WITH(\s+RECURSIVE)?\s", re.IGNORECASE)
_EXPLAIN = re.compile(r"^EXPLAIN(\s+ANALYZE)?\s+", re.IGNORECASE)
_NUMERIC = {
    "tinyint": int,
    "smallint": int,
    "integer": int,
    "bigint": int,
    "double": float,
    "float": float,
    "real": float,
    "decimal": float,
}


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _scan(database: str, ws: str, table: str, members: list[Member]) -> str:
    """A stored table's rows for the members: the Glue table filtered on its partitions."""
    cols = ", ".join(_ident(c) for c in TABLES[table].names)
    lots = sorted({layout.encode_lot(m.lot_id) for m in members}) or ["%00"]
    jobs = sorted({m.job_id for m in members}) or ["none"]
    where = (
        f"workspace = {sql_literal(ws)} AND lot IN ({', '.join(sql_literal(x) for x in lots)}) "
        f"AND job IN ({', '.join(sql_literal(x) for x in jobs)})"
    )
    body = f"SELECT {cols} FROM {_ident(database)}.{_ident(table)} WHERE {where}"
    return f"({body}{'' if members else ' AND false'})"


def snapshot_ctes(
    database: str,
    ws: str,
    members: list[Member],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
) -> str:
    """The snapshot's public views as a Trino WITH list (without the WITH)."""
    ctes = view_bodies(
        members,
        lambda t, ms: _scan(database, ws, t, ms),
        retest_policy=retest_policy,
        wafer_ids=wafer_ids,
        dialect=TRINO,
    )
    return ",\n".join(f"{name} AS ({body})" for name, body in ctes)


@dataclass
class AthenaSql:
    engine: QueryEngine
    database: str
    workgroup: str
    client: Any
    poll_seconds: float = 0.5
    timeout_seconds: float = 600.0
    max_rows: int = 100_000

    @classmethod
    def from_runtime(cls, rt) -> AthenaSql:
        s = rt.settings
        if s.backend != "aws" or not s.aws.glue_database or not s.aws.athena_workgroup:
            raise BadRequest(
                "--engine athena needs the AWS backend with STRATUM_AWS__GLUE_DATABASE and "
                "STRATUM_AWS__ATHENA_WORKGROUP set (the stack exports both)"
            )
        import boto3

        client = boto3.client("athena", region_name=s.aws.region, endpoint_url=s.aws.endpoint_url or None)
        return cls(rt.engine, s.aws.glue_database, s.aws.athena_workgroup, client, max_rows=s.sql.max_rows)

    # -- SQL ------------------------------------------------------------------------------------------
    def build(self, ws: str, query: str, scope: Scope | None = None) -> str:
        """The Athena statement for a user query: the snapshot's views as CTEs, then the query."""
        kind = check_query(query)
        resolved = self.engine.resolve(ws, scope or Scope())
        prefix = snapshot_ctes(
            self.database,
            ws,
            resolved.members,
            retest_policy=resolved.retest_policy,
            wafer_ids=(scope or Scope()).wafer_ids,
        )
        user = _LEADING.sub("", query).rstrip().rstrip(";")
        explain = ""
        if kind == "explain":
            m = _EXPLAIN.match(user)
            explain, user = (m.group(0), user[m.end() :]) if m else ("EXPLAIN ", user)
            user = _LEADING.sub("", user)
        w = _WITH.match(user)
        if w:  # merge with the user's own WITH list
            recursive = "RECURSIVE " if w.group(1) else ""
            return f"{explain}WITH {recursive}{prefix},\n{user[w.end() :]}"
        return f"{explain}WITH {prefix}\n{user}"

    # -- execution ------------------------------------------------------------------------------------
    def run(self, ws: str, query: str, *, scope: Scope | None = None, limit: int | None = None) -> SqlResult:
        t0 = time.perf_counter()
        sql = self.build(ws, query, scope)
        want = min(limit or self.max_rows, self.max_rows)
        qid = self.client.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup, QueryExecutionContext={"Database": self.database}
        )["QueryExecutionId"]
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            st = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
            state = st["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                reason = st.get("StateChangeReason", "no reason given")
                raise BadRequest(f"Athena query {qid} {state.lower()}: {reason}")
            if time.monotonic() > deadline:
                self.client.stop_query_execution(QueryExecutionId=qid)
                raise QueryTimeout(f"the Athena query {qid} was stopped after {self.timeout_seconds:g} s")
            time.sleep(self.poll_seconds)
        columns: list[dict[str, str]] = []
        rows: list[list[Any]] = []
        token = None
        more = False  # rows remained after the ones kept
        while True:
            kw: dict[str, Any] = {"QueryExecutionId": qid, "MaxResults": 1000}
            if token:
                kw["NextToken"] = token
            try:
                page = self.client.get_query_results(**kw)
            except self.client.exceptions.InvalidRequestException as exc:
                raise Unavailable(f"could not read the results of Athena query {qid}: {exc}") from None
            rs = page["ResultSet"]
            if not columns:
                columns = [
                    {"name": c["Name"], "type": c.get("Type", "varchar")}
                    for c in rs.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                ]
            data = rs.get("Rows", [])
            if (
                token is None
                and data
                and [d.get("VarCharValue") for d in data[0]["Data"]] == [c["name"] for c in columns]
            ):
                data = data[1:]  # Athena's header row
            room = want - len(rows)
            rows += [
                [_convert(d.get("VarCharValue"), c["type"]) for d, c in zip(r["Data"], columns, strict=False)]
                for r in data[:room]
            ]
            token = page.get("NextToken")
            if len(data) > room or (len(rows) == want and token):
                more = True
                break
            if not token:
                break
        return SqlResult(
            columns=columns,
            rows=rows,
            next_cursor=None,
            row_count=len(rows),
            truncated=more and want == self.max_rows,
            elapsed_ms=(time.perf_counter() - t0) * 1e3,
        )


def _convert(v: str | None, typ: str) -> Any:
    if v is None:
        return None
    base = typ.split("(")[0].lower()
    if base == "boolean":
        return v.lower() == "true"
    conv = _NUMERIC.get(base)
    if conv is not None:
        try:
            return jsonable(conv(v))
        except ValueError:
            return None if v.lower() in ("nan", "infinity", "-infinity") else v
    return v
