"""The generated view SQL against golden files: a change to a view shows up as a diff in review.

Regenerate after an intended change with ``STRATUM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q
tests/unit/test_golden_sql.py`` and commit the files in ``tests/golden/``.
"""

from __future__ import annotations

import difflib
import os

import pytest

from stratum.lake import layout
from stratum.query.athena import snapshot_ctes
from stratum.query.duckdb_views import view_sql
from stratum.query.views import Member
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
WS = "acme"
# Two lots: one wafer-sort lot of two files (a retest file second) and one final-test lot of one file.
MEMBERS = [
    Member("LOT-A", "job_01A", 1, 0, "job_01B", ("parts", "results")),
    Member("LOT-A", "job_01B", 2, 1, "job_01B", ("parts", "results")),
    Member("LOT'B", "job_02A", 3, 0, "job_02A", ("parts",)),
]
CASES = [
    ("retest_policy=last, no wafer scope", "last", None),
    ("retest_policy=highest_bin, wafers W01 and W'02", "highest_bin", ["W01", "W'02"]),
    ("retest_policy per lot (LOT-A highest_bin, LOT'B last)", {"LOT-A": "highest_bin", "LOT'B": "last"}, None),
]


def _uri(table: str, m: Member) -> str:
    return "s3://lake/" + layout.data_key(WS, table, m.lot_id, m.job_id)


def duckdb_text() -> str:
    out = []
    for title, policy, wafers in CASES:
        out.append(f"-- {title}\n")
        out += [stmt + ";\n\n" for stmt in view_sql(MEMBERS, _uri, retest_policy=policy, wafer_ids=wafers)]
    out.append("-- no members (schema discovery)\n")
    out += [stmt + ";\n\n" for stmt in view_sql([], lambda t, m: "")]
    return "".join(out)


def athena_text() -> str:
    out = []
    for title, policy, wafers in CASES:
        out.append(
            f"-- {title}\nWITH {snapshot_ctes('stratum_db', WS, MEMBERS, retest_policy=policy, wafer_ids=wafers)}\n"
        )
        out.append("SELECT 1;\n\n")
    out.append(f"-- no members\nWITH {snapshot_ctes('stratum_db', WS, [])}\nSELECT 1;\n")
    return "".join(out)


@pytest.mark.parametrize(("name", "build"), [("views_duckdb.sql", duckdb_text), ("views_athena.sql", athena_text)])
def test_generated_view_sql_matches_the_golden_file(name: str, build) -> None:
    path = GOLDEN / name
    text = build()
    if os.environ.get("STRATUM_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    golden = path.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(golden.splitlines(True), text.splitlines(True), name, "generated", n=2))
    assert text == golden, f"the generated SQL differs from tests/golden/{name}:\n{diff[:6000]}"


def test_the_golden_duckdb_sql_runs() -> None:
    """The golden DuckDB statements are real SQL: the no-member section runs on an in-memory database."""
    import duckdb

    text = (GOLDEN / "views_duckdb.sql").read_text(encoding="utf-8")
    section = text.split("-- no members (schema discovery)\n", 1)[1]
    statements = [s for s in section.split(";\n\n") if s.strip()]
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for stmt in statements:
        con.execute(stmt)
    assert con.execute("SELECT count(*) FROM parts").fetchone() == (0,)
    assert len(statements) == len(view_sql([], lambda t, m: ""))
