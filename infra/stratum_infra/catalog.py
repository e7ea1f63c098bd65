"""``CatalogConstruct``: the Glue database over the Parquet lake and the Athena workgroup that queries it.

Lake layout (written by ingest)::

    s3://<lake bucket>/workspaces/<workspace>/lake/<table>/lot=<url-encoded lot id>/job=<job id>/part-<n>.parquet

Tables are added with :meth:`CatalogConstruct.add_lake_tables` from the lake schema module
(``stratum.lake.schema``). They use Athena partition projection, so no partition is ever registered in Glue
(no crawler, no ``MSCK REPAIR``, no ``BatchCreatePartition`` from ingest):

- partition columns ``workspace``, ``lot``, ``job`` (strings), all of projection type ``injected``: lot and
  job ids are unbounded and unknown in advance, which rules out ``enum``/``integer``/``date`` projection;
- a query must therefore constrain each of them with ``=`` or ``IN`` on literals, e.g.
  ``WHERE workspace = 'fab1' AND lot IN ('A123%2F01', 'A124') AND job = '…'``. That matches how Stratum reads
  the lake anyway: the API resolves the current job of each lot from the lot pointers in the metadata table
  (older jobs of a lot are superseded snapshots and must not be double-counted);
- partition values are substituted verbatim into ``storage.location.template``, so ``lot`` is the
  URL-encoded id exactly as it appears in the key; the decoded lot id belongs in a data column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from aws_cdk import Aws, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from . import constants as C

PARTITION_KEYS: tuple[tuple[str, str], ...] = (("workspace", "string"), ("lot", "string"), ("job", "string"))
# (name, glue type) or (name, glue type, comment) - stratum.lake.schema.glue_columns() returns the latter
LakeColumns = Sequence[tuple[str, str] | tuple[str, str, str]]
LakeTableSpec = tuple[str, LakeColumns]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")
_GLUE_TYPE = re.compile(
    r"^(boolean|tinyint|smallint|int|integer|bigint|float|double|string|binary|date|timestamp"
    r"|decimal\(\d+,\s*\d+\)|char\(\d+\)|varchar\(\d+\)|array<.+>|map<.+>|struct<.+>)$"
)
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def glue_name(stack_name: str) -> str:
    """Glue/Athena-safe name derived from the stack name ("Stratum" -> "stratum", "Stratum-dev" -> "stratum_dev")."""
    return re.sub(r"[^a-z0-9_]", "_", stack_name.lower())


class CatalogConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        lake_bucket: s3.IBucket,
        results_bucket: s3.IBucket,
        name: str,
        bytes_scanned_cutoff: int = C.ATHENA_BYTES_SCANNED_CUTOFF,
    ) -> None:
        super().__init__(scope, construct_id)
        if not _NAME.match(name):
            raise ValueError(f"invalid Glue database name {name!r}")
        stack = Stack.of(self)
        self.lake_bucket = lake_bucket
        self.database_name = name
        self.workgroup_name = name
        self.output_location = f"s3://{results_bucket.bucket_name}/{C.ATHENA_RESULTS_PREFIX}"
        self.tables: dict[str, glue.CfnTable] = {}

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=name,
                description="Stratum Parquet lake (tables use partition projection; see infra/README.md)",
                location_uri=f"s3://{lake_bucket.bucket_name}/{C.LAKE_WORKSPACES_PREFIX}",
            ),
        )

        self.workgroup = athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=name,
            description="Stratum SQL over the Parquet lake (enforced settings, SSE-S3 results, scan cutoff)",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.output_location,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                ),
            ),
        )

        self.catalog_arn = stack.format_arn(service="glue", resource="catalog")
        self.database_arn = stack.format_arn(service="glue", resource="database", resource_name=name)
        self.tables_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{name}/*")
        self.workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=name)

    # ------------------------------------------------------------------------------------------------ tables

    def location_template(self, table: str) -> str:
        return (
            f"s3://{self.lake_bucket.bucket_name}/{C.LAKE_WORKSPACES_PREFIX}"
            f"${{workspace}}/lake/{table}/lot=${{lot}}/job=${{job}}/"
        )

    def add_lake_tables(self, tables: Iterable[LakeTableSpec]) -> list[glue.CfnTable]:
        """Register lake tables: ``[(table name, [(column name, glue type[, comment]), ...]), ...]``.

        Meant to be fed from the lake schema module, e.g.
        ``[(name, schema.glue_columns(name)) for name in schema.TABLES]``.

        Columns are the Parquet data columns; ``workspace``/``lot``/``job`` are added as projected partition
        columns and must not appear among them. Glue types are Hive DDL types (``string``, ``bigint``,
        ``double``, ``timestamp``, ``decimal(p,s)``, ``array<...>``, ...). Raises ``ValueError`` on invalid or
        duplicate names and unknown types, so a schema mistake fails the synth, not the deploy.
        """
        created = []
        partition_names = {n for n, _ in PARTITION_KEYS}
        for table_name, columns in tables:
            if not _NAME.match(table_name):
                raise ValueError(f"invalid lake table name {table_name!r} (lower-case letters, digits, _)")
            if table_name in self.tables:
                raise ValueError(f"lake table {table_name!r} is already registered")
            columns = [(c[0], c[1], c[2] if len(c) > 2 else "") for c in columns]
            if not columns:
                raise ValueError(f"lake table {table_name!r} has no columns")
            seen: set[str] = set()
            for col, glue_type, _comment in columns:
                if not _NAME.match(col):
                    raise ValueError(f"{table_name}.{col}: invalid column name (lower-case letters, digits, _)")
                if col in partition_names:
                    raise ValueError(f"{table_name}.{col}: {col!r} is a partition column of every lake table")
                if col in seen:
                    raise ValueError(f"{table_name}.{col}: duplicate column")
                if not _GLUE_TYPE.match(glue_type.strip().lower()):
                    raise ValueError(f"{table_name}.{col}: unknown Glue type {glue_type!r}")
                seen.add(col)

            parameters = {
                "classification": "parquet",
                "EXTERNAL": "TRUE",
                "projection.enabled": "true",
                **{f"projection.{key}.type": "injected" for key, _ in PARTITION_KEYS},
                "storage.location.template": self.location_template(table_name),
            }
            table = glue.CfnTable(
                self,
                f"Table_{table_name}",
                catalog_id=Aws.ACCOUNT_ID,
                database_name=self.database_name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=table_name,
                    description=f"Stratum lake table {table_name} (partition projection: workspace, lot, job)",
                    table_type="EXTERNAL_TABLE",
                    parameters=parameters,
                    partition_keys=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in PARTITION_KEYS],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        columns=[
                            glue.CfnTable.ColumnProperty(name=c, type=t.strip().lower(), comment=doc[:255] or None)
                            for c, t, doc in columns
                        ],
                        location=f"s3://{self.lake_bucket.bucket_name}/{C.LAKE_WORKSPACES_PREFIX}",
                        input_format=PARQUET_INPUT,
                        output_format=PARQUET_OUTPUT,
                        serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=PARQUET_SERDE),
                        compressed=False,
                        stored_as_sub_directories=False,
                    ),
                ),
            )
            table.add_dependency(self.database)
            self.tables[table_name] = table
            created.append(table)
        return created
