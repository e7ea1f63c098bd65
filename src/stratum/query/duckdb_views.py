"""The DuckDB statements that set up a snapshot's public views on a session."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stratum.query.public_schema import METADATA_RELATIONS
from stratum.query.views import Member, scan, sql_literal, view_bodies

MATERIALIZED = ("lot_files", "_bin_names", "parts", "tests")  # immutable snapshot: computed once per session


def view_sql(
    members: list[Member],
    uri_of: Callable[[str, Member], str],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
) -> list[str]:
    """DuckDB statements for a snapshot (members of one or more lots): a TEMP TABLE for each name in
    ``MATERIALIZED`` (``lot_files``, ``_bin_names``, ``parts`` with the retest window every lot-level query
    needs, and ``tests``; the snapshot is immutable, so they are computed once per session), a TEMP VIEW for
    every other view."""
    return [stmt for _, stmt in view_statements(members, uri_of, retest_policy=retest_policy, wafer_ids=wafer_ids)]


def view_statements(
    members: list[Member],
    uri_of: Callable[[str, Member], str],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
    materialize: bool = True,
) -> list[tuple[str, str]]:
    """``view_sql`` with the name each statement creates, in creation order (a statement only refers to
    names created before it). ``materialize=False`` makes every view a view (a process that runs one query
    computes only the columns and rows it reads)."""
    tables = MATERIALIZED if materialize else ()

    def raw_scan(table: str, ms: list[Member]) -> str:
        return scan(table, [uri_of(table, m) for m in ms])

    # the metadata relations first: views read them
    return [(name, f"CREATE TEMP TABLE {name} ({cols})") for name, cols in METADATA_RELATIONS.items()] + [
        (name, f"CREATE TEMP {'TABLE' if name in tables else 'VIEW'} {name} AS {body}")
        for name, body in view_bodies(
            members, raw_scan, retest_policy=retest_policy, wafer_ids=wafer_ids, with_metadata=True
        )
    ]


# stands for a file's URI in a raw table's statement until lazy_view_statements lists the files
_FILE_MARK = "\x01file\x01"


def lazy_view_statements(
    members: list[Member],
    uri_of: Callable[[str, Member], str],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
    materialize: bool = True,
) -> list[tuple[str, str | Callable[[], str]]]:
    """``view_statements`` whose raw-table statements (``_raw_<table>``) are functions that list the table's
    files when called: a session builds only the statements its queries use, and listing a file costs a path
    resolution on a local lake (a query over ``parts`` lists 4 of the 15 tables' files)."""
    scans: dict[str, list[Member]] = {}

    def mark(table: str, m: Member) -> str:
        scans.setdefault(table, []).append(m)
        return _FILE_MARK

    def later(stmt: str, table: str) -> Callable[[], str]:
        def build() -> str:
            pieces = stmt.split(sql_literal(_FILE_MARK))
            files = [sql_literal(uri_of(table, m)) for m in scans[table]]
            assert len(pieces) == len(files) + 1
            return pieces[0] + "".join(f + p for f, p in zip(files, pieces[1:], strict=True))

        return build

    out: list[tuple[str, str | Callable[[], str]]] = []
    for name, stmt in view_statements(
        members, mark, retest_policy=retest_policy, wafer_ids=wafer_ids, materialize=materialize
    ):
        table = name.removeprefix("_raw_")
        out.append((name, later(stmt, table) if name.startswith("_raw_") and table in scans else stmt))
    return out
