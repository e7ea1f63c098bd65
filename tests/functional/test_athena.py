"""`stratum sql --engine athena`: the same guarded query, with the same view logic, submitted to Athena
(moto records it and serves queued results)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.errors import QueryRejected
from stratum.query.athena import AthenaSql
from stratum.query.engine import Scope
from stratum.query.views import TRINO, view_bodies
from tests.fixtures.aws import unique_name

pytestmark = pytest.mark.aws


@pytest.fixture
def athena_rt(aws_stack, boto_session, tmp_path):
    wg = unique_name("stratum-wg")
    settings = aws_stack.settings.model_copy(
        update={
            "aws": aws_stack.settings.aws.model_copy(update={"glue_database": "stratum_db", "athena_workgroup": wg})
        }
    )
    from stratum.runtime import Runtime

    rt = Runtime.from_settings(settings)
    athena = boto_session.client("athena", region_name="us-east-1", endpoint_url=aws_stack.endpoint)
    athena.create_work_group(
        Name=wg,
        Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{aws_stack.lake_bucket}/athena-results/"}},
    )
    truth = write_lot(
        LotSpec(
            lot_id="ATH/LOT 1", wafers=("W1",), die_diameter=8, seed=9, tests=tuple(default_tests(4, n_mpr=0, n_ftr=0))
        ),
        tmp_path / "stdf",
    )
    job = rt.ingest.ingest_path("default", truth.paths[0])
    assert job.status == "succeeded"
    other = write_lot(
        LotSpec(
            lot_id="OTHER-WS-LOT",
            wafers=("W9",),
            die_diameter=6,
            seed=2,
            tests=tuple(default_tests(3, n_mpr=0, n_ftr=0)),
        ),
        tmp_path / "o",
    )
    assert rt.ingest.ingest_path("team-b", other.paths[0]).status == "succeeded"
    return rt, athena, job, aws_stack, wg


def test_built_statement_reads_only_the_snapshot_partitions(athena_rt):
    rt, _, job, _, _ = athena_rt
    sql = AthenaSql.from_runtime(rt).build("default", "SELECT lot_id, part_count FROM lots ORDER BY lot_id")
    assert sql.startswith("WITH _members AS (")
    assert sql.rstrip().endswith("SELECT lot_id, part_count FROM lots ORDER BY lot_id")
    enc = "ATH%2FLOT%201"
    assert (
        f"\"stratum_db\".\"parts\" WHERE workspace = 'default' AND lot IN ('{enc}') AND job IN ('{job.job_id}')" in sql
    )
    assert "OTHER-WS-LOT" not in sql and "team-b" not in sql
    assert "arg_max" not in sql and "max_by(" in sql and "any_value" not in sql


def test_user_with_clause_and_explain_are_merged(athena_rt):
    rt, *_ = athena_rt
    a = AthenaSql.from_runtime(rt)
    sql = a.build("default", "-- mine\nWITH y AS (SELECT wafer_id FROM wafers) SELECT * FROM y")
    assert sql.startswith("WITH _members AS (") and ",\ny AS (SELECT wafer_id FROM wafers) SELECT * FROM y" in sql
    sql = a.build("default", "EXPLAIN SELECT count(*) FROM parts")
    assert sql.startswith("EXPLAIN WITH _members AS (")


def test_guardrails_apply_before_anything_is_submitted(athena_rt):
    rt, athena, _, _, wg = athena_rt
    a = AthenaSql.from_runtime(rt)
    for q in (
        "DROP TABLE parts",
        "SELECT * FROM read_parquet('s3://x/y.parquet')",
        "SELECT 1; SELECT 2",
        'SELECT * FROM "stratum_db"."results"',
    ):
        with pytest.raises(QueryRejected):
            a.run("default", q)
    assert athena.list_query_executions(WorkGroup=wg)["QueryExecutionIds"] == []


def test_run_submits_and_parses_typed_results(athena_rt):
    rt, athena, job, stack, wg = athena_rt
    results = {
        "account_id": "123456789012",
        "region": "us-east-1",
        "results": [
            {
                "rows": [
                    {
                        "Data": [
                            {"VarCharValue": "lot_id"},
                            {"VarCharValue": "part_count"},
                            {"VarCharValue": "yield"},
                            {"VarCharValue": "ok"},
                        ]
                    },
                    {
                        "Data": [
                            {"VarCharValue": "ATH/LOT 1"},
                            {"VarCharValue": "48"},
                            {"VarCharValue": "0.875"},
                            {"VarCharValue": "true"},
                        ]
                    },
                ],
                "column_info": [
                    {
                        "Name": "lot_id",
                        "Type": "varchar",
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Label": "lot_id",
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": True,
                        "Precision": 0,
                        "Scale": 0,
                    },
                    {
                        "Name": "part_count",
                        "Type": "bigint",
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Label": "part_count",
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": False,
                        "Precision": 0,
                        "Scale": 0,
                    },
                    {
                        "Name": "yield",
                        "Type": "double",
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Label": "yield",
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": False,
                        "Precision": 0,
                        "Scale": 0,
                    },
                    {
                        "Name": "ok",
                        "Type": "boolean",
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Label": "ok",
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": False,
                        "Precision": 0,
                        "Scale": 0,
                    },
                ],
            }
        ],
    }
    req = urllib.request.Request(
        f"{stack.endpoint}/moto-api/static/athena/query-results",
        data=json.dumps(results).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - local moto server
    res = AthenaSql.from_runtime(rt).run(
        "default", "SELECT lot_id, part_count, yield, true AS ok FROM lots", scope=Scope(lot_id="ATH/LOT 1")
    )
    assert res.rows == [["ATH/LOT 1", 48, 0.875, True]]
    assert [c["name"] for c in res.columns] == ["lot_id", "part_count", "yield", "ok"]
    (qid,) = athena.list_query_executions(WorkGroup=wg)["QueryExecutionIds"]
    submitted = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Query"]
    assert "workspace = 'default'" in submitted and "team-b" not in submitted


def test_trino_view_bodies_mean_the_same_as_duckdb(runtime, tmp_path):
    """The Trino-dialect views, run by DuckDB on the same files, answer exactly like the DuckDB views."""
    truth = write_lot(
        LotSpec(
            lot_id="DIALECT",
            wafers=("W1", "W2"),
            files=2,
            retest_file=True,
            die_diameter=9,
            retest_fraction=0.5,
            seed=4,
        ),
        tmp_path / "s",
    )
    for p in truth.paths:
        assert runtime.ingest.ingest_path("default", p).status == "succeeded"
    eng = runtime.engine
    resolved = eng.resolve("default", Scope(lot_id="DIALECT"))
    from stratum.lake import layout
    from stratum.query.views import scan

    def raw(table, ms):
        return scan(table, [runtime.lake.uri(layout.data_key("default", table, m.lot_id, m.job_id)) for m in ms])

    db = eng.database("default")
    cur = db.cursor()
    for name, body in view_bodies(resolved.members, raw, dialect=TRINO):
        cur.execute(f"CREATE TEMP VIEW {name} AS {body}")
    queries = [
        "SELECT * FROM lots",
        "SELECT * FROM wafers ORDER BY wafer_id",
        "SELECT * FROM bins ORDER BY 2, 3",
        "SELECT * FROM parts ORDER BY job_id, part_seq",
        "SELECT * FROM tests ORDER BY 2, 3",
    ]
    trino_answers = [cur.execute(q).fetchall() for q in queries]
    cur.close()
    with eng.session("default", Scope(lot_id="DIALECT")) as s:
        assert [s.rows(q) for q in queries] == trino_answers
