"""Settings: pydantic models read once from the environment.

This is the only module that reads environment variables. Everything else receives a ``Settings``
(or a part of it) as an argument; ``get_settings()`` caches one instance per process (per Lambda
container).

Environment variables use the ``STRATUM_`` prefix, e.g. ``STRATUM_DATA_DIR``, ``STRATUM_BACKEND``,
``STRATUM_LAKE_BUCKET``. Nested groups use ``__``: ``STRATUM_LIMITS__SQL_PER_MINUTE=30``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Per-user data directory (XDG on Linux, ~/Library on macOS)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "stratum"
    home = Path.home()
    if (home / "Library").is_dir() and os.uname().sysname == "Darwin":
        return home / "Library" / "Application Support" / "stratum"
    return home / ".local" / "share" / "stratum"


class RateLimits(BaseModel):
    """Requests per key, per route bucket, per window."""

    window_seconds: int = 60
    analytics_per_window: int = 60
    sql_per_window: int = 30
    uploads_per_window: int = 10


class SqlLimits(BaseModel):
    timeout_seconds: float = 30.0
    max_rows: int = 100_000
    page_rows: int = 1_000
    max_query_chars: int = 100_000


class ExportLimits(BaseModel):
    """Exports (POST /v1/exports, ``stratum export``): no row cap; memory is bounded by streaming batches."""

    timeout_seconds: float = 900.0  # an export job's run time
    batch_rows: int = 65_536  # rows per Arrow batch pulled from DuckDB (and per Parquet row group at least)
    row_group_rows: int = 1_048_576  # rows per Parquet row group
    url_seconds: int = 3600  # lifetime of a download URL
    retention_days: int = 7  # export records (and their files, by lifecycle rule on AWS) are kept this long


class AwsSettings(BaseModel):
    region: str = "us-east-1"
    drop_bucket: str = ""
    drop_prefix: str = "incoming/"
    lake_bucket: str = ""
    lake_prefix: str = ""
    metadata_table: str = ""
    # Only for moto / local emulators; empty on real AWS.
    endpoint_url: str = ""
    athena_workgroup: str = ""
    glue_database: str = ""
    athena_output: str = ""
    event_bus_name: str = ""  # EventBridge bus for the event port (empty: the account's default bus)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STRATUM_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    backend: Literal["local", "aws"] = "local"
    data_dir: Path = Field(default_factory=default_data_dir)
    workspace: str = "default"
    environment: Literal["dev", "test", "production"] = "dev"

    # ingest
    max_upload_bytes: int = 200 * 1024 * 1024
    chunk_bytes: int = 32 * 1024 * 1024
    retest_policy: Literal["last", "highest_bin"] = "last"
    accept_truncated: bool = False
    test_key: Literal["number_and_name", "number"] = "number_and_name"
    idempotency_ttl_seconds: int = 86_400  # how long an upload's Idempotency-Key is remembered

    # query engine (DuckDB)
    duckdb_memory_mb: int = 0  # 0 = derived from the Lambda memory (or DuckDB's default locally)
    duckdb_threads: int = 0
    lambda_memory_mb: int = Field(default=0, validation_alias="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    tmp_dir: Path = Path("/tmp")  # noqa: S108 - Lambda's only writable storage

    sql: SqlLimits = SqlLimits()
    exports: ExportLimits = ExportLimits()
    rate_limits: RateLimits = RateLimits()
    aws: AwsSettings = AwsSettings()

    # API
    api_root_path: str = ""
    public_base_url: str = ""

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_for(data_dir: str | Path | None = None, **overrides) -> Settings:
    """Settings from the environment with explicit overrides (CLI flags, tests)."""
    base = get_settings().model_dump()
    if data_dir is not None:
        base["data_dir"] = Path(data_dir)
    base.update(overrides)
    return Settings.model_validate(base)
