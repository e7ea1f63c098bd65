"""Deliberate defaults for every Stratum Lambda, API and storage resource, in one place.

Anything a reviewer would want to argue about (memory, timeouts, batch size, limits) is a named constant here,
with the reason next to it, so the constructs only wire things together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Size
from aws_cdk import aws_lambda as lambda_

from stratum.events.eventbridge import SOURCE
from stratum.events.model import EVENT_KINDS
from stratum.settings import ExportLimits

# ------------------------------------------------------------------------------------------------ paths
PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAYERS_CONFIG_PATH = PROJECT_ROOT / "layers" / "layers.json"
DEFAULT_LAYERS_BUILD_DIR = PROJECT_ROOT / "layers" / "build"
# Function assets are assembled here before synth (git-ignored through infra/.gitignore).
DEFAULT_ASSET_BUILD_DIR = PROJECT_ROOT / "infra" / ".build"

# ------------------------------------------------------------------------------------------------ Lambda
# python3.12 (Amazon Linux 2023, glibc 2.34): duckdb >= 1.3 wheels are manylinux_2_28 and need AL2023; the
# layers are built and size-checked for cp312 aarch64 wheels (toolchain-notes sections 4 and 6).
RUNTIME = lambda_.Runtime.PYTHON_3_12
# arm64: every pinned wheel exists for cp312 aarch64 and the api function fits the 250 MB limit only on
# arm64 (toolchain-notes section 6); Graviton is also cheaper per GB-second.
ARCHITECTURE = lambda_.Architecture.ARM_64
ARCHITECTURE_NAME = "arm64"
LOG_LEVEL = "INFO"  # Lambda's advanced logging level and POWERTOOLS_LOG_LEVEL agree (Powertools warns otherwise)
LOG_RETENTION_DAYS = 90
METRICS_NAMESPACE = "Stratum"
HANDLER = "handler.handler"  # functions/<name>/handler.py defines `handler`


@dataclass(frozen=True)
class FunctionSpec:
    """Sizing of one Lambda function. ``name`` is the folder under functions/ and the layers.json key."""

    name: str
    description: str
    memory_mb: int
    timeout: Duration
    ephemeral_storage: Size
    service_name: str


# ingest: the STDF reader streams the raw object in 32 MB chunks and pyarrow buffers row groups of 250k-1M rows
# before writing Parquet (toolchain-notes section 4), so memory is sized for the column buffers, not the file.
# 3008 MB also buys ~1.8 vCPU for decompression + Parquet encoding. 15 min is Lambda's maximum: a large
# compressed STDF (uploads are capped at 200 MB) must not time out half-way. 4 GiB of /tmp holds a
# decompressed .gz/.bz2/.zip member and Parquet spill files.
INGEST = FunctionSpec(
    name="ingest",
    description="Stratum ingest: STDF object from the drop bucket -> Parquet lake + metadata",
    memory_mb=3008,
    timeout=Duration.minutes(15),
    ephemeral_storage=Size.mebibytes(4096),
    service_name="stratum-ingest",
)

# monitors: a run reads a few lot snapshots through DuckDB (as the API does) and writes findings to the metadata
# table; 2048 MB gives DuckDB ~1.2 GB. Five minutes bounds a scheduled run over `monitors.max_lots_per_run` lots.
MONITORS = FunctionSpec(
    name="monitors",
    description="Stratum monitors: scheduled and on-ingest rule runs over the lake -> findings + events",
    memory_mb=2048,
    timeout=Duration.minutes(5),
    ephemeral_storage=Size.mebibytes(1024),
    service_name="stratum-monitors",
)
MONITORS_RETRY_ATTEMPTS = 3  # schedule targets and the ingest-event rule target (stratum.settings.MonitorSettings)
MONITORS_MAX_EVENT_AGE_SECONDS = 3600

# api: DuckDB's memory_limit and threads are derived from the function memory (settings.lambda_memory_mb);
# 2048 MB gives DuckDB ~1.5 GB and ~1.2 vCPU. The timeout is derived from the API Gateway integration timeout
# (see api_timeouts below). /tmp holds DuckDB's temp_directory (spill) and its external file cache.
API_MEMORY_MB = 2048
API_EPHEMERAL_STORAGE = Size.mebibytes(2048)

# ------------------------------------------------------------------------------------------------ SQL / API
SQL_TIMEOUT_SECONDS = 30  # the product's SQL limit (stratum.settings.SqlLimits.timeout_seconds)
SQL_TIMEOUT_MARGIN_SECONDS = 3  # DuckDB init + result serialisation after the query deadline
API_LAMBDA_MARGIN_SECONDS = 5  # the function outlives the SQL deadline by this much to return a clean error
# API Gateway REST integrations may wait at most 29 s unless the account's "Maximum integration timeout in
# milliseconds" quota is raised (Regional/private REST APIs only, since 2024-06). The default keeps a fresh
# account deployable; raise the quota, then deploy with -c stratum:apiIntegrationTimeoutSeconds=40.
DEFAULT_API_INTEGRATION_TIMEOUT_SECONDS = 29
QUOTA_FREE_INTEGRATION_TIMEOUT_SECONDS = 29  # above this, API Gateway needs the quota increase

# Stage-wide throttling defaults (per-key limits are enforced by the application against the metadata table).
API_THROTTLE_RATE = 50  # steady-state requests per second
API_THROTTLE_BURST = 100
API_STAGE_NAME = "prod"  # routes carry their own /v1 version prefix
# Raw STDF uploads (gz/bz2/zip) and PNG wafer maps. `*/*` is what makes binary responses work for browsers:
# API Gateway only converts a base64 Lambda response to binary when the request's *first* Accept type matches.
# Consequence: every request body reaches Lambda base64-encoded, which Mangum decodes.
API_BINARY_MEDIA_TYPES = [
    "application/octet-stream",
    "application/gzip",
    "application/x-bzip2",
    "application/zip",
    "image/png",
    "*/*",
]


@dataclass(frozen=True)
class ApiTimeouts:
    integration_seconds: int
    lambda_seconds: int
    sql_seconds: int


def api_timeouts(integration_seconds: int) -> ApiTimeouts:
    """SQL deadline < Lambda timeout <= API Gateway integration timeout.

    With the default 29 s integration timeout the SQL budget is 26 s (exported to the app as
    ``STRATUM_SQL__TIMEOUT_SECONDS``) so a slow query ends with the application's timeout error instead of an
    API Gateway 504. With a raised quota (>= 36 s) the full 30 s SQL limit applies.
    """
    if integration_seconds < 10:
        raise ValueError(f"API integration timeout {integration_seconds}s is too short for SQL requests")
    lambda_seconds = min(SQL_TIMEOUT_SECONDS + API_LAMBDA_MARGIN_SECONDS, integration_seconds)
    sql_seconds = min(SQL_TIMEOUT_SECONDS, lambda_seconds - SQL_TIMEOUT_MARGIN_SECONDS)
    return ApiTimeouts(integration_seconds, lambda_seconds, sql_seconds)


# ------------------------------------------------------------------------------------------------ ingest queue
# One S3 object per invocation: a file can take minutes and several GB of memory, a batch shares one 15 min
# timeout (a timeout fails every message of the batch, partial-batch reporting cannot help), and concurrency
# across invocations is cheaper than batching. reportBatchItemFailures stays on so the handler's
# BatchProcessor contract is the same if the batch size is ever raised.
INGEST_BATCH_SIZE = 1
# Bound parallel ingests so a bulk upload cannot starve the API of account concurrency (no reserved
# concurrency: that would fail to deploy in accounts with the default 10-execution quota).
INGEST_MAX_CONCURRENCY = 10
INGEST_MAX_RECEIVE_COUNT = 3  # a file that fails three times is poison: park it in the DLQ and alarm
VISIBILITY_TIMEOUT_FACTOR = 6  # AWS guidance for SQS event sources: >= 6x the function timeout
DLQ_RETENTION = Duration.days(14)  # SQS maximum: time to investigate and redrive

DROP_PREFIX = "incoming/"
# where the ingest function moves a dropped file when its job ended (stratum.ingest.drop); outside
# DROP_PREFIX, so the drop bucket's notification (prefix incoming/) can never fire for them
DROP_PROCESSED_PREFIX = "processed/"
DROP_FAILED_PREFIX = "failed/"
# presigned uploads that never arrived fail (upload_expired) on this schedule, run by the ingest function
EXPIRE_UPLOADS_EVERY = Duration.minutes(5)
EXPIRE_UPLOADS_INPUT = {"task": "expire_uploads"}
LAKE_PREFIX = ""  # lake keys start at workspaces/
LAKE_WORKSPACES_PREFIX = "workspaces/"
ATHENA_RESULTS_PREFIX = "athena-results/"
# S3 matches suffixes case-sensitively; one rule per (prefix, suffix). See IngestConstruct for why these
# rules cannot overlap.
STDF_SUFFIXES = (".stdf", ".std", ".stdf.gz", ".std.gz", ".stdf.bz2", ".std.bz2", ".zip", ".STDF", ".STD")

# ------------------------------------------------------------------------------------------------ retention
INCOMPLETE_MULTIPART_DAYS = 2
NONCURRENT_VERSION_DAYS = 30  # ingest overwrites deterministic keys; old Parquet versions are kept 30 days
ATHENA_RESULTS_DAYS = 7
ACCESS_LOG_DAYS = 365
ATHENA_BYTES_SCANNED_CUTOFF = 10 * 1024**3  # 10 GiB per query (about USD 0.05)


def layers_config() -> dict:
    """layers/layers.json: the layer list and which function gets which layers (shared with layers/build.py)."""
    return json.loads(LAYERS_CONFIG_PATH.read_text())


API_MAX_UPLOAD_BYTES = 4_000_000  # raw bytes; base64 makes ~5.3 MB of the 6 MB Lambda payload

# ------------------------------------------------------------------------------------------------ delivery
# delivery: records events (DynamoDB writes) and makes webhook attempts of at most 15 s each
# (stratum.settings.DeliverySettings.total_timeout_seconds); the handler stops claiming attempts 30 s before
# its end. 512 MB is plenty for JSON and HTTP; 5 min lets one invocation work through a backlog.
DELIVERY = FunctionSpec(
    name="delivery",
    description="Stratum delivery: events -> inbox, signed outbound webhooks (retries), email digests",
    memory_mb=512,
    timeout=Duration.minutes(5),
    ephemeral_storage=Size.mebibytes(512),
    service_name="stratum-delivery",
)
DELIVERY_BATCH_SIZE = 10  # events per invocation; each is only recorded before the attempts run
DELIVERY_MAX_CONCURRENCY = 5
DELIVERY_MAX_RECEIVE_COUNT = 5  # an event that cannot even be recorded 5 times is parked in the DLQ
DELIVERY_TICK = Duration.minutes(1)  # retries and digests: the schedule's granularity on AWS
# the kinds the bus routes to delivery: every producer kind but ping
DELIVERY_EVENT_KINDS = tuple(kind for kind in EVENT_KINDS if kind != "ping")
EVENT_SOURCE = SOURCE

# ------------------------------------------------------------------------------------------------ exports
# exports: DuckDB runs the export query and writes the Parquet/CSV file itself (COPY) under /tmp, then the
# file is uploaded to the lake bucket (multipart). DuckDB's memory_limit is EXPORTS_DUCKDB_MEMORY_MB of the
# 4096 MB (the rest: Python, the upload's part buffers, what DuckDB does not count); 4096 MB also buys ~2.3 vCPU
# for the scan and zstd. 15 min is Lambda's maximum; the query gets EXPORTS_QUERY_SECONDS of it, leaving time to
# upload a multi-GB file and record the result. /tmp (10 GiB, the maximum) holds the file and DuckDB's spill, so
# a file is at most ~10 GiB less the spill bound (a 500 MB STDF lake's results are ~70 MB of Parquet).
EXPORTS = FunctionSpec(
    name="exports",
    description="Stratum exports: guarded query -> Parquet/CSV written by DuckDB -> lake bucket exports/",
    memory_mb=4096,
    timeout=Duration.minutes(15),
    ephemeral_storage=Size.mebibytes(10240),
    service_name="stratum-exports",
)
EXPORTS_QUERY_SECONDS = 720  # stratum.settings.ExportLimits.timeout_seconds on Lambda (< the 900 s timeout)
EXPORTS_DUCKDB_MEMORY_MB = 2560
EXPORTS_DUCKDB_TEMP_MB = 4096  # spill bound on /tmp, beside the file being written
EXPORTS_BATCH_SIZE = 1  # one export per invocation: each may take the whole 15 min (see INGEST_BATCH_SIZE)
EXPORTS_MAX_CONCURRENCY = 5  # bounded so a burst of exports cannot starve the API of account concurrency
# an export request whose function failed twice (not the export: that is recorded as failed) is parked in the DLQ
EXPORTS_MAX_RECEIVE_COUNT = 2
EXPORTS_EVENT_KINDS = ("export.requested",)
EXPORTS_PREFIX = "workspaces/*/exports/"  # stratum.lake.layout.export_key
# stored classifications of lake wafers, written by the API and monitors functions (stratum.lake.final_patterns)
FINAL_PATTERNS_PREFIX = "workspaces/*/lake/wafer_patterns_final/"  # stratum.lake.layout.final_patterns_key
# export records (DynamoDB TTL) and files (lake bucket lifecycle rule on the objects' lifecycle tag) are kept this
# long: the setting's documented default, passed to every function so the records' TTL and the rule agree. S3 runs
# the rule once a day and rounds up to the next midnight UTC, so a file outlives its record by up to ~1 day.
EXPORTS_RETENTION_DAYS = ExportLimits().retention_days
EXPORTS_NONCURRENT_DAYS = 1  # the lake bucket is versioned: an expired export's old version goes a day later
