"""Build the configured storage adapters from ``Settings``.

Pure: every call builds new adapters. Caching one instance per settings (per process / Lambda
container) is the caller's business.
"""

from __future__ import annotations

from typing import Literal

from stratum.settings import Settings
from stratum.storage.metadata import MetadataStore
from stratum.storage.objectstore import ObjectStore


def build_object_store(settings: Settings, *, area: Literal["lake", "drop"]) -> ObjectStore:
    """``lake``: the Parquet lake. ``drop``: where raw uploads land, keys carrying their own drop prefix
    (``incoming/``): locally the data directory, whose ``incoming/``, ``processed/`` and ``failed/`` are
    the drop folder and where its files go when their job ends; on AWS the drop bucket, same prefixes."""
    if area not in ("lake", "drop"):
        raise ValueError(f"unknown object store area {area!r}")
    if settings.backend == "local":
        from stratum.storage.local import LocalObjectStore

        return LocalObjectStore(settings.data_dir / "lake" if area == "lake" else settings.data_dir)
    from stratum.storage.s3 import S3ObjectStore

    aws = settings.aws
    bucket, prefix = (aws.lake_bucket, aws.lake_prefix) if area == "lake" else (aws.drop_bucket, "")
    if not bucket:
        raise ValueError(f"STRATUM_AWS__{area.upper()}_BUCKET is not set (backend=aws)")
    return S3ObjectStore(bucket, prefix, region=aws.region, endpoint_url=aws.endpoint_url or None)


def build_metadata_store(settings: Settings) -> MetadataStore:
    if settings.backend == "local":
        from stratum.storage.sqlite import SqliteMetadataStore

        return SqliteMetadataStore(settings.data_dir / "stratum.db")
    from stratum.storage.dynamodb import DynamoMetadataStore

    aws = settings.aws
    if not aws.metadata_table:
        raise ValueError("STRATUM_AWS__METADATA_TABLE is not set (backend=aws)")
    return DynamoMetadataStore(aws.metadata_table, aws.region, endpoint_url=aws.endpoint_url or None)
