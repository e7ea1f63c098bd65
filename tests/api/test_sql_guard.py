"""The reference guard against the probes of the security review: CTE names resolved by scope (never a
sibling's or an enclosing query's), functions that bind SQL of their own or read the catalog, settings that
name server paths, and queries nested too deeply to check (400 with the reason, never 500)."""

from __future__ import annotations

import pytest

from .conftest import strict_json

# Catalog views DuckDB resolves by bare name; each was readable through a CTE of the same name elsewhere
# in the query (the catalog's view SQL carries absolute lake paths).
CATALOG_VIEWS = (
    "pg_settings",
    "duckdb_views",
    "duckdb_columns",
    "duckdb_tables",
    "duckdb_schemas",
    "duckdb_databases",
    "duckdb_types",
    "duckdb_constraints",
    "duckdb_indexes",
    "pg_proc",
    "pg_class",
    "pg_namespace",
    "pg_tables",
    "pg_views",
    "sqlite_master",
    "sqlite_schema",
    "pragma_database_list",
)

SCOPE_TRICKS = {
    "sibling-subquery": "SELECT v.* FROM (WITH {v} AS (SELECT 1 AS c) SELECT 1) a, {v} v",
    "scalar-subquery": "SELECT (WITH {v} AS (SELECT 1 AS c) SELECT 1), * FROM {v}",
    "forward-reference": "WITH a AS (SELECT * FROM {v}), {v} AS (SELECT 1 AS c) SELECT * FROM a",
    "self-reference": "WITH {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
    "union-branch": "SELECT * FROM (WITH {v} AS (SELECT 1) SELECT * FROM {v}) UNION ALL SELECT 1 FROM {v}",
    "in-list": "SELECT 1 WHERE 1 IN (WITH {v} AS (SELECT 1) SELECT 1) AND EXISTS (SELECT * FROM {v})",
}


def sql(seeded, query: str, **body):
    return seeded.client.post("/v1/sql", json={"query": query, **body}, headers=seeded.headers())


def rejected(seeded, query: str) -> str:
    r = sql(seeded, query)
    assert r.status_code == 400, (query, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert body["code"] == "query_rejected", body
    assert str(seeded.data_dir) not in r.text
    return body["detail"]


@pytest.mark.parametrize("view", CATALOG_VIEWS)
def test_a_cte_does_not_cover_a_catalog_view_outside_its_scope(seeded, view):
    detail = rejected(seeded, SCOPE_TRICKS["sibling-subquery"].format(v=view))
    assert detail.startswith(f"unknown table '{view}'"), detail


@pytest.mark.parametrize("trick", list(SCOPE_TRICKS))
def test_cte_scope_tricks(seeded, trick):
    detail = rejected(seeded, SCOPE_TRICKS[trick].format(v="duckdb_views"))
    assert detail.startswith("unknown table 'duckdb_views'"), detail


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        (
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM b UNION ALL SELECT * FROM a",
            [[2], [1]],
        ),
        (
            "WITH a AS (SELECT 2 AS x) SELECT * FROM (SELECT * FROM a) s, "
            "(WITH b AS (SELECT x FROM a) SELECT * FROM b)",
            [[2, 2]],
        ),
        ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 4) SELECT sum(n) FROM t", [[10]]),
        ("WITH lots AS (SELECT 7 AS n) SELECT n FROM lots", [[7]]),  # a CTE may shadow a public table
        ("SELECT (WITH c AS (SELECT count(*) AS n FROM lots) SELECT n FROM c)", [[2]]),
        ("SELECT current_setting('threads') > 0, current_setting('TimeZone')", [[True, "Etc/UTC"]]),
    ],
)
def test_scoped_ctes_still_work(seeded, query, rows):
    r = sql(seeded, query)
    assert r.status_code == 200, r.text
    assert strict_json(r.text)["rows"] == rows


@pytest.mark.parametrize(
    ("query", "fn"),
    [
        ("SELECT json_serialize_plan('SELECT * FROM duckdb_settings()')", "json_serialize_plan"),
        ("SELECT json_serialize_plan('SELECT * FROM glob(''/*'')')", "json_serialize_plan"),
        ("SELECT json_serialize_plan('SELECT * FROM read_text(''/etc/passwd'')')", "json_serialize_plan"),
        ("SELECT json_serialize_plan('SELECT * FROM read_blob(''/etc/passwd'')')", "json_serialize_plan"),
        ("SELECT json_serialize_plan('SELECT * FROM parquet_metadata(''x.parquet'')')", "json_serialize_plan"),
        ("SELECT json_serialize_plan('SELECT * FROM query_table(''lots'')')", "json_serialize_plan"),
        ("SELECT main.json_serialize_plan('SELECT 1')", "json_serialize_plan"),
        ("SELECT pg_get_viewdef(v) FROM range(100000) t(v)", "pg_get_viewdef"),
        ("SELECT pg_catalog.pg_get_viewdef(1)", "pg_get_viewdef"),
        ("SELECT format_type(1, 1)", "format_type"),
        ("SELECT get_block_size('memory')", "get_block_size"),
        ("SELECT getvariable('x')", "getvariable"),
    ],
)
def test_functions_that_bind_sql_or_read_the_catalog(seeded, query, fn):
    assert rejected(seeded, query) == f"function {fn}() is not allowed: it reads the database catalog or binds SQL"


def test_json_execute_serialized_sql_is_a_table_function_outside_the_list(seeded):
    detail = rejected(seeded, "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))")
    assert detail.startswith("table function json_execute_serialized_sql() is not allowed")


@pytest.mark.parametrize(
    "setting",
    [
        "allowed_directories",
        "temp_directory",
        "home_directory",
        "extension_directory",
        "secret_directory",
        "ALLOWED_DIRECTORIES",
        "s3_secret_access_key",
    ],
)
def test_current_setting_does_not_disclose_server_paths(seeded, setting):
    detail = rejected(seeded, f"SELECT current_setting('{setting}')")
    assert detail.startswith("current_setting() reads only these settings, named by a string literal: calendar")


def test_current_setting_needs_a_literal(seeded):
    detail = rejected(seeded, "SELECT current_setting('allowed_' || 'directories')")
    assert "named by a string literal" in detail
    detail = rejected(seeded, "SELECT current_setting(name) FROM (SELECT 'temp_directory' AS name)")
    assert "named by a string literal" in detail


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + " + ".join(["1"] * 600),
        "SELECT " + "(SELECT " * 300 + "1" + ")" * 300,
    ],
    ids=["600-plus", "300-subqueries"],
)
def test_deep_queries_are_400_with_the_reason(seeded, query):
    assert rejected(seeded, query).startswith("the query nests expressions or subqueries too deeply to be checked")


def test_deeper_than_duckdb_parses_is_400(seeded):
    detail = rejected(seeded, "SELECT " + "+".join(["1"] * 5000))
    assert detail.startswith("the query does not parse: Parser Error: Max expression depth limit of 1000 exceeded")


def test_the_recorded_catalog_macros_are_the_installed_duckdbs():
    """The guard takes the catalog-reading macros of the installed DuckDB from a list recorded per version (listing
    them costs every CLI query tens of milliseconds); the list must be what this DuckDB actually has. On a DuckDB
    upgrade, add its entry (the guard asks DuckDB at run time for a version it has no entry for)."""
    import duckdb

    from stratum.query.sql import CATALOG_MACROS, _catalog_macros

    con = duckdb.connect(":memory:")
    try:
        live = _catalog_macros(con)
    finally:
        con.close()
    assert duckdb.__version__ in CATALOG_MACROS, f"record CATALOG_MACROS[{duckdb.__version__!r}] = {sorted(live)}"
    assert CATALOG_MACROS[duckdb.__version__] == live
