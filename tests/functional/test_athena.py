"""`stratum sql --engine athena`: the same guarded query, with the same view logic, submitted to Athena
(moto records it and serves queued results)."""

from __future__ import annotations

import io
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
    from tests.support import athena_raw_scan

    raw = athena_raw_scan(runtime.lake, "default")
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
        "SELECT * FROM wafer_patterns ORDER BY wafer_id, rank",
        "SELECT count(*) FROM wafer_pattern_history",
    ]
    trino_answers = [cur.execute(q).fetchall() for q in queries]
    cur.close()
    assert trino_answers[-1] == [(2 * 2,)]  # one row per wafer and publish here, read from the lake objects
    with eng.session("default", Scope(lot_id="DIALECT")) as s:
        assert [s.rows(q) for q in queries] == trino_answers


def test_publish_classification_lands_in_the_lake_where_athena_reads_it(athena_rt, boto_session):
    """On AWS (moto: S3, DynamoDB), classifying a published snapshot stores the rows in the metadata store and
    writes them as a Parquet object of the lake table wafer_patterns_final, under the key Glue's partition
    projection template names for the snapshot job; the Athena statement reads that table pinned to the
    snapshot's partitions."""
    rt, _, job, stack, _ = athena_rt
    import pyarrow.parquet as pq

    from stratum.lake import layout
    from stratum.patterns import service as pattern_service
    from stratum.patterns.store import PatternStore

    assert rt.patterns.classify_published("default", "ATH/LOT 1", job.job_id) == 1
    version = pattern_service.classifier_version()
    key = layout.final_patterns_key("default", "ATH/LOT 1", job.job_id, "W1", version)
    assert key.startswith(f"workspaces/default/lake/wafer_patterns_final/lot=ATH%2FLOT%201/job={job.job_id}/")
    s3 = boto_session.client("s3", region_name="us-east-1", endpoint_url=stack.endpoint)
    listed = s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix="workspaces/default/lake/wafer_patterns_final/")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    t = pq.read_table(io.BytesIO(s3.get_object(Bucket=stack.lake_bucket, Key=key)["Body"].read()))
    stored = PatternStore(rt.meta).rows("default")
    got = t.to_pylist()
    assert len(got) == len(stored) >= 1
    for row, st in zip(got, stored, strict=True):
        assert (row["lot_id"], row["wafer_id"], row["job_id"], row["class_id"], row["rank"]) == (
            st[0],
            st[1],
            st[2],
            st[3],
            st[10],
        )
        assert row["classifier_version"] == version and row["publish_seq"] == st[13]
        assert row["classified_at"] == st[14].replace(tzinfo=None)
    # a redelivered publish event writes nothing new
    assert rt.patterns.classify_published("default", "ATH/LOT 1", job.job_id) == 1
    again = s3.list_objects_v2(Bucket=stack.lake_bucket, Prefix="workspaces/default/lake/wafer_patterns_final/")
    assert [(o["Key"], o["ETag"]) for o in again["Contents"]] == [(o["Key"], o["ETag"]) for o in listed["Contents"]]
    sql = AthenaSql.from_runtime(rt).build("default", "SELECT family FROM wafer_patterns")
    assert (
        "\"stratum_db\".\"wafer_patterns_final\" WHERE workspace = 'default' AND lot IN ('ATH%2FLOT%201') "
        f"AND job IN ('{job.job_id}')" in sql
    )
