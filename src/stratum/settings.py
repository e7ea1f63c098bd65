"""Settings: pydantic models read once from the environment.

This is the only module that reads environment variables. Everything else receives a ``Settings``
(or a part of it) as an argument; ``get_settings()`` caches one instance per process (per Lambda
container).

Environment variables use the ``STRATUM_`` prefix, e.g. ``STRATUM_DATA_DIR``, ``STRATUM_BACKEND``,
``STRATUM_LAKE_BUCKET``. Nested groups use ``__``: ``STRATUM_RATE_LIMITS__SQL_PER_WINDOW=30``, or a JSON object
for the whole group (``STRATUM_SQL='{"max_rows": 500}'``; single ``__`` variables win over its keys). Names are
case-insensitive; list values are JSON (``STRATUM_DELIVERY__RETRY_SCHEDULE_SECONDS='[0, 60]'``); a field with
an alias (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``) is read from that variable only; unknown variables are ignored.
Values given to ``Settings(...)`` win over the environment. These are the rules pydantic-settings applied
(``env_prefix="STRATUM_"``, ``env_nested_delimiter="__"``), read by :func:`environment_values` below: its
import and settings sources were ~10 % of the API's cold start for the ~20 variables we read.
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "STRATUM_"
NESTED_DELIMITER = "__"


class SettingsError(ValueError):
    """An environment variable that cannot be read (not JSON where JSON is needed); names the variable."""


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
    classify_per_window: int = 100  # POST /v1/classify and /v1/batch (the production tier's rate)
    # failed authentications per client address per window (then 429 with Retry-After for that address)
    auth_failures_per_window: int = 20


class InputLimits(BaseModel):
    """Bounds on uploaded and dropped input (every path: upload, presigned PUT, inspect, drop folder, CLI)."""

    # largest decompressed STDF stream accepted (64 GiB)
    max_decompressed_bytes: int = 64 << 30
    # past ratio_floor_bytes of output, more than this many decompressed bytes per compressed byte is
    # refused as a decompression bomb (real STDF compresses 5-30x; a 4 GiB gzip bomb is ~1000x)
    max_compression_ratio: float = 200.0
    ratio_floor_bytes: int = 64 << 20
    # largest size a presigned upload may declare (5 GiB: an S3 single PUT's maximum)
    max_presign_bytes: int = 5 << 30
    # how long a presigned upload URL is valid; the upload's job expires with it
    presign_seconds: int = 3600
    # a presigned upload's job fails (upload_expired) this long after its URL expired if nothing arrived:
    # S3 checks the URL when a PUT begins, so a PUT begun just before expiry may still be arriving
    # (15 min: 5 GiB, the largest presigned upload, at ~6 MB/s)
    presign_grace_seconds: int = 900
    # stratum serve: how often the sweep for expired presigned uploads runs (AWS: the ingest schedule, 5 min)
    presign_sweep_seconds: float = 60.0


class SqlLimits(BaseModel):
    timeout_seconds: float = 30.0
    max_rows: int = 100_000
    page_rows: int = 1_000
    max_query_chars: int = 100_000
    # A page of rows is refused (422 query_resources) when its JSON would exceed this many bytes; the Lambda's
    # synchronous response payload is at most 6 MB, so 5 MB leaves room for headers and the envelope.
    max_response_bytes: int = 5_000_000
    # A server runs user queries in worker processes (stratum.query.workers), at most max_concurrent at once;
    # more wait up to queue_seconds, then 503. A worker's data memory is capped (RLIMIT_DATA) at
    # worker_memory_mb (0 = half the Lambda's memory, else 1536); one that has not answered
    # kill_after_seconds past the time limit is killed and replaced. The time limit starts once the query's
    # session is built (the lake's views opened); building it may take up to session_setup_seconds.
    isolate: bool = True
    max_concurrent: int = 2
    queue_seconds: float = 10.0
    worker_memory_mb: int = 0
    kill_after_seconds: float = 5.0
    session_setup_seconds: float = 10.0
    # The CLI (one query per process) keeps each lot snapshot's computed ``parts`` rows in Parquet files under
    # <data-dir>/cache/sql/<workspace>/ (stratum.query.parts_cache), at most this many MB per workspace (least
    # recently used removed first); 0 turns the cache off. Local data directories only.
    cli_cache_mb: int = 512
    # Who encodes Arrow IPC (SQL pages with Accept: application/vnd.apache.arrow.stream, format=arrow exports):
    # "auto" = pyarrow where it is installed (122,880-row batches), else nanoarrow from DuckDB's Arrow C stream
    # (the AWS functions ship no pyarrow; DuckDB hands that stream out in 1,000,000-row batches).
    arrow_encoder: Literal["auto", "pyarrow", "nanoarrow"] = "auto"


class MonitorSettings(BaseModel):
    """Bounds of monitor runs (defaults documented here)."""

    max_lots_per_run: int = 20  # a scheduled / manual run evaluates the most recently updated lots of its scope
    preview_findings: int = 20  # findings returned inline by run-now
    preview_max_count: int = 50  # cron-preview: most fire times per request
    backtest_max_snapshots: int = 500  # snapshots one backtest may evaluate
    tick_seconds: float = 20.0  # local scheduler loop: how often it looks for due schedules
    schedule_group: str = "stratum-monitors"  # EventBridge Scheduler group of the stack
    function_arn: str = ""  # AWS: the monitors Lambda the schedules invoke
    scheduler_role_arn: str = ""  # AWS: the role EventBridge Scheduler assumes to invoke it
    dlq_arn: str = ""  # AWS: dead-letter queue of the schedules' target
    retry_attempts: int = 3  # AWS: schedule target retry policy
    retry_max_age_seconds: int = 3600
    sql_findings_max: int = 10_000  # newest findings visible in the SQL relation monitor_findings


class ExportLimits(BaseModel):
    """Exports (POST /v1/exports, ``stratum export``): no row cap; memory is bounded by streaming batches."""

    timeout_seconds: float = 900.0  # an export job's run time
    batch_rows: int = 65_536  # rows per Arrow batch pulled from DuckDB (arrow exports encoded by pyarrow)
    row_group_rows: int = 122_880  # rows per Parquet row group (DuckDB's default; memory grows with it)
    # the export's own DuckDB database: 0 = the query engine's values (duckdb_memory_mb, duckdb_threads,
    # duckdb_temp_mb); the export file itself is written under tmp_dir besides the spill
    duckdb_memory_mb: int = 0
    duckdb_threads: int = 0
    duckdb_temp_mb: int = 0
    url_seconds: int = 3600  # lifetime of a download URL
    # a "running" export older than this was cut off (its process or function ended): marked failed when its
    # request is delivered again (it exceeds timeout_seconds plus the upload of the file)
    abandoned_after_seconds: float = 1800.0
    retention_days: int = 7  # export records (and their files, by lifecycle rule on AWS) are kept this long


class DeliverySettings(BaseModel):
    """Notifications, outbound/inbound webhooks and email (``STRATUM_DELIVERY__...``)."""

    # seconds after the event of attempt 1, 2, ...: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    retry_schedule_seconds: list[float] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    jitter_fraction: float = 0.1  # each retry delay is stretched by up to this fraction (random)
    disable_after_failing_seconds: float = 5 * 86400  # an endpoint failing this long is disabled
    rotation_overlap_seconds: float = 86400  # the previous secret keeps signing this long
    connect_timeout_seconds: float = 5.0
    total_timeout_seconds: float = 15.0
    max_response_bytes: int = 64 * 1024  # read at most this much of a receiver's answer
    max_retry_after_seconds: float = 36000  # a longer Retry-After is clamped to this
    poll_interval_seconds: float = 1.0  # local worker: how often it looks for due deliveries
    worker_threads: int = 16  # local worker: concurrent attempts
    lease_seconds: float = 60.0  # a claimed attempt is retried by another worker after this
    batch_size: int = 200  # due deliveries claimed per poll
    secret_key: str = ""  # local: base64 AES-256 key sealing webhook secrets (empty: <data-dir>/keys/)
    inbound_max_payload_bytes: int = 64 * 1024
    inbound_rate_limit_per_min: int = 60  # default per-hook limit
    email_from: str = "stratum@localhost"
    max_notification_chars: int = 4000


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
    delivery_kms_key_id: str = ""  # KMS key sealing outbound webhook secrets
    delivery_queue_url: str = ""  # SQS queue of the delivery function (retries are re-sent with a delay)
    ses_region: str = ""  # SES region (empty: ``region``)


class PatternSettings(BaseModel):
    """Wafer-map pattern classification bounds (POST /v1/classify, /v1/batch)."""

    max_batch: int = 100  # maps per /v1/batch request (a key's tier may allow fewer)
    max_dies: int = 200_000  # dies per map (300 across is ~71k)
    max_span: int = 4096  # largest x or y extent of a map, in dies
    max_map_bytes: int = 50 * 1024 * 1024  # decoded (decompressed) STDF per map
    max_request_bytes: int = 32 * 1024 * 1024  # JSON body of POST /v1/classify or /v1/batch (413 past it)
    max_concurrent: int = 4  # classify/batch requests computing at once per server; others wait
    queue_seconds: float = 10.0  # ... at most this long, then 503 with Retry-After
    min_confidence: float = 0.05  # detections below this calibrated confidence are not reported
    severity_low_max: float = 0.20  # severity: low < this <= med
    severity_med_max: float = 0.50  # med < this <= high


class Settings(BaseModel):
    """Everything configurable. ``Settings(**values)`` reads the environment for what ``values`` leaves out;
    ``Settings.model_validate(values)`` does not (``settings_for``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**_deep_merge(environment_values(type(self), os.environ), values))

    backend: Literal["local", "aws"] = "local"
    data_dir: Path = Field(default_factory=default_data_dir)
    workspace: str = "default"
    environment: Literal["dev", "test", "production"] = "dev"

    # ingest
    max_upload_bytes: int = 200 * 1024 * 1024
    # decompressed STDF bytes parsed per chunk: 4 MiB keeps a chunk's per-record arrays in the CPU caches (8-32 MiB
    # decode 5-15 % slower) and the reader's memory small; parts, wafers and test state carry across chunks
    chunk_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    retest_policy: Literal["last", "highest_bin"] = "last"
    accept_truncated: bool = False
    test_key: Literal["number_and_name", "number"] = "number_and_name"
    # at most this many summary_mismatch warnings per job (one per disagreeing count); the rest are counted in one more
    max_summary_warnings: int = Field(default=100, ge=0)
    idempotency_ttl_seconds: int = 86_400  # how long an upload's Idempotency-Key is remembered

    # query engine (DuckDB); sized so the API fits the API Lambda (2048 MB) and a laptop; 0 = derived
    # (stratum.query.engine.resources)
    duckdb_memory_mb: int = 0  # memory_limit per workspace database; 0 = 40% of sql.worker_memory_mb
    duckdb_temp_mb: int = 512  # max_temp_directory_size (spill) per workspace database, on tmp_dir
    duckdb_threads: int = 0  # 0 = 1 per GB of Lambda memory (1-8), else min(4, CPUs)
    lambda_memory_mb: int = Field(default=0, validation_alias="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    tmp_dir: Path = Path("/tmp")  # noqa: S108 - Lambda's only writable storage

    sql: SqlLimits = SqlLimits()
    input_limits: InputLimits = InputLimits()
    monitors: MonitorSettings = MonitorSettings()
    exports: ExportLimits = ExportLimits()
    rate_limits: RateLimits = RateLimits()
    patterns: PatternSettings = PatternSettings()
    aws: AwsSettings = AwsSettings()
    delivery: DeliverySettings = DeliverySettings()
    # comma-separated CIDRs of non-global webhook targets allowed outside production (e.g. 127.0.0.1/32)
    webhook_allow_cidrs: str = ""

    # API
    api_root_path: str = ""
    # a server pays its first requests' one-off costs at start (Runtime.warm_up): `stratum serve` on a
    # background thread, the API Lambda in its init phase (AWS_LAMBDA_INITIALIZATION_TYPE is set there)
    warm_up: bool = True
    lambda_initialization_type: str = Field(default="", validation_alias="AWS_LAMBDA_INITIALIZATION_TYPE")
    public_base_url: str = ""

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_complex(annotation: Any) -> bool:
    """Values of these fields are JSON in the environment: models, lists, dicts, sets, tuples (also optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_complex(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is not None and origin is not Literal:
        return origin in (list, dict, set, frozenset, tuple) or (
            isinstance(origin, type) and issubclass(origin, Mapping)
        )
    return _is_model(annotation) or annotation in (list, dict, set, frozenset, tuple)


def _value(annotation: Any, raw: str, name: str) -> Any:
    if not _is_complex(annotation):
        return raw  # pydantic converts the string (lax mode: "5" -> 5, "false" -> False)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"environment variable {name}: not valid JSON ({exc})") from None


def environment_values(cls: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values of ``cls``'s fields found in ``environ`` (unvalidated; pydantic validates them)."""
    env = {k.lower(): (k, v) for k, v in environ.items()}
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if isinstance(field.validation_alias, str):
            if field.validation_alias.lower() in env:
                values[name] = env[field.validation_alias.lower()][1]
            continue
        key = f"{ENV_PREFIX}{name}".lower()
        if key in env:
            values[name] = _value(field.annotation, env[key][1], env[key][0])
        if _is_model(field.annotation):
            model = typing.cast(type[BaseModel], field.annotation)
            nested = {
                sub: _value(sub_field.annotation, env[var][1], env[var][0])
                for sub, sub_field in model.model_fields.items()
                if (var := f"{key}{NESTED_DELIMITER}{sub}") in env
            }
            if nested:
                whole = values.get(name)
                values[name] = {**whole, **nested} if isinstance(whole, dict) else nested
    return values


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in override.items():
        merged[k] = _deep_merge(merged[k], v) if isinstance(v, Mapping) and isinstance(merged.get(k), dict) else v
    return merged


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
