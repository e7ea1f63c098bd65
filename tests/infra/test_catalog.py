"""CatalogConstruct.add_lake_tables with a small fake schema (the real one comes from stratum.lake.schema)."""

from __future__ import annotations

import pytest

from .conftest import render

pytestmark = pytest.mark.infra

FAKE_TABLES = [
    ("test_results", [("part_id", "string"), ("test_num", "bigint"), ("result", "double"), ("flags", "int")]),
    ("parts", [("part_id", "string"), ("hard_bin", "int"), ("x", "smallint"), ("tested_at", "timestamp")]),
    ("counts", [("lot_id", "string", "Lot id"), ("n", "decimal(20,0)", "count"), ("v", "array<smallint>", "")]),
]


@pytest.fixture(scope="module")
def catalog_stack():
    import aws_cdk as cdk
    from aws_cdk.assertions import Template
    from infra.stratum_infra.application import cdk_json_context
    from infra.stratum_infra.catalog import CatalogConstruct
    from infra.stratum_infra.storage import StorageConstruct

    app = cdk.App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "CatalogTest")
    storage = StorageConstruct(stack, "Storage")
    catalog = CatalogConstruct(
        stack, "Catalog", lake_bucket=storage.lake_bucket, results_bucket=storage.results_bucket, name="stratum_test"
    )
    created = catalog.add_lake_tables(FAKE_TABLES)
    return catalog, created, Template.from_stack(stack), stack


def test_tables_use_partition_projection_over_the_lake_layout(catalog_stack) -> None:
    catalog, created, template, stack = catalog_stack
    assert len(created) == 3
    template.resource_count_is("AWS::Glue::Table", 3)
    lake = stack.resolve(catalog.lake_bucket.node.default_child.logical_id)
    tables = {t["Properties"]["TableInput"]["Name"]: t for t in template.find_resources("AWS::Glue::Table").values()}
    for name, columns in FAKE_TABLES:
        table = tables[name]
        assert table["Properties"]["DatabaseName"] == "stratum_test"
        assert "DependsOn" in table  # created after the database
        ti = table["Properties"]["TableInput"]
        assert ti["TableType"] == "EXTERNAL_TABLE"
        assert [k["Name"] for k in ti["PartitionKeys"]] == ["workspace", "lot", "job"]
        assert all(k["Type"] == "string" for k in ti["PartitionKeys"])
        assert [(c["Name"], c["Type"]) for c in ti["StorageDescriptor"]["Columns"]] == [c[:2] for c in columns]
        assert [c.get("Comment", "") for c in ti["StorageDescriptor"]["Columns"]] == [
            (c[2] if len(c) > 2 else "") for c in columns
        ]
        assert ti["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        params = ti["Parameters"]
        assert params["projection.enabled"] == "true"
        for key in ("workspace", "lot", "job"):
            assert params[f"projection.{key}.type"] == "injected"
        assert render(params["storage.location.template"]) == (
            f"s3://<{lake}>/workspaces/${{workspace}}/lake/{name}/lot=${{lot}}/job=${{job}}/"
        )
        assert render(ti["StorageDescriptor"]["Location"]) == f"s3://<{lake}>/workspaces/"


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([("Bad-Name", [("a", "string")])], "invalid lake table name"),
        ([("t", [])], "has no columns"),
        ([("t", [("lot", "string")])], "partition column"),
        ([("t", [("a", "string"), ("a", "int")])], "duplicate column"),
        ([("t", [("a", "varchar")])], "unknown Glue type"),
        ([("t", [("A", "string")])], "invalid column name"),
        ([("parts", [("a", "string")])], "already registered"),
    ],
)
def test_invalid_tables_fail_the_synth(catalog_stack, tables, message) -> None:
    catalog = catalog_stack[0]
    with pytest.raises(ValueError, match=message):
        catalog.add_lake_tables(tables)


def test_the_real_lake_schema_is_accepted() -> None:
    """Compatibility tripwire with stratum.lake.schema (the lead wires the tables into the stack)."""
    schema = pytest.importorskip("stratum.lake.schema")
    if not hasattr(schema, "glue_columns") or not hasattr(schema, "TABLES"):
        pytest.skip("stratum.lake.schema has no TABLES/glue_columns yet")
    import aws_cdk as cdk
    from infra.stratum_infra.application import cdk_json_context
    from infra.stratum_infra.catalog import CatalogConstruct
    from infra.stratum_infra.storage import StorageConstruct

    stack = cdk.Stack(cdk.App(context=cdk_json_context()), "SchemaTest")
    storage = StorageConstruct(stack, "Storage")
    catalog = CatalogConstruct(
        stack, "Catalog", lake_bucket=storage.lake_bucket, results_bucket=storage.results_bucket, name="stratum"
    )
    created = catalog.add_lake_tables([(name, schema.glue_columns(name)) for name in schema.TABLES])
    assert len(created) == len(schema.TABLES)
