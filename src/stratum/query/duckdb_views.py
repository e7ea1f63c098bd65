"""The DuckDB statements that set up a snapshot's public views on a session."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stratum.query.public_schema import METADATA_RELATIONS
from stratum.query.views import Member, scan, view_bodies

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
