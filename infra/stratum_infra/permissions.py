"""Least-privilege IAM statements shared by the ingest and api functions.

Explicit action lists instead of CDK's ``grant_*`` helpers: those use action wildcards (``s3:GetObject*``,
``s3:List*``, ``dynamodb:*Item``) and ``<table>/index/*``. Every remaining ``*`` in a resource is an S3 key
prefix, suppressed (IAM5) with its reason where the statement is attached.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

# TransactWriteItems / TransactGetItems are authorised through these per-item actions.
METADATA_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
]


def metadata_read_write(table: dynamodb.ITable, index_names: tuple[str, ...]) -> list[iam.PolicyStatement]:
    """Item reads/writes on the table; Query on each named index (explicit index ARNs, no ``index/*``)."""
    return [
        iam.PolicyStatement(sid="MetadataTableItems", actions=METADATA_ACTIONS, resources=[table.table_arn]),
        iam.PolicyStatement(
            sid="MetadataTableIndexes",
            actions=["dynamodb:Query"],
            resources=[f"{table.table_arn}/index/{name}" for name in index_names],
        ),
    ]


def list_prefix(sid: str, bucket: s3.IBucket, prefix: str, *more: str) -> iam.PolicyStatement:
    """s3:ListBucket limited to keys under ``prefix`` (and ``more`` prefixes; each bare prefix too, for
    pyarrow's directory probes)."""
    return iam.PolicyStatement(
        sid=sid,
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [v for p in (prefix, *more) for v in (f"{p}*", p.rstrip("/"))]}},
    )


def objects(sid: str, bucket: s3.IBucket, prefix: str, actions: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
