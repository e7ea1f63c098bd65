"""The DynamoDB table behind the metadata store, defined once.

The adapter (``stratum.storage.dynamodb``) creates and reads the table with these names, the CDK stack
(``infra/stratum_infra/storage.py``) defines the same table from them, and the infra tests compare the
synthesized template with :func:`table_definition`. Standard library only, so infra can import it.
"""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
INDEXES = ("gsi1", "gsi2")  # each projects ALL attributes
TTL_ATTRIBUTE = "ttl"  # N, epoch seconds


def index_keys(index: str) -> tuple[str, str]:
    """(partition key, sort key) attribute names of a secondary index."""
    return f"{index}pk", f"{index}sk"


def key_attributes() -> tuple[str, ...]:
    """Every key attribute (all strings): the table's and the indexes'."""
    return (PARTITION_KEY, SORT_KEY, *(a for index in INDEXES for a in index_keys(index)))


def table_definition(table_name: str) -> dict[str, Any]:
    """``create_table`` arguments (on-demand billing); TTL on :data:`TTL_ATTRIBUTE` is enabled separately."""

    def gsi(name: str) -> dict[str, Any]:
        pk, sk = index_keys(name)
        return {
            "IndexName": name,
            "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }

    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in key_attributes()],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [gsi(i) for i in INDEXES],
    }
