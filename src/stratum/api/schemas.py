"""Request and response models of the API (they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ApiModel(BaseModel):
    """Base of the API's models. Validators and serializers are built on first use, not at import: a cold
    start (Lambda) builds only those of the routes it serves."""

    model_config = ConfigDict(defer_build=True)


class Problem(ApiModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None = Field(None, description="Also in the X-Request-Id response header; quote it in reports")


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for routes: each status answers a :class:`Problem`. The schema is referenced
    rather than given as ``model``, for which FastAPI would build a validator per route and status at import
    (~400 of them, unused: problems are written by the exception handlers); ``create_app``'s OpenAPI document
    adds :class:`Problem` to its components."""
    return {
        status: {"content": {"application/problem+json": {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}
        for status in statuses
    }


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass back as `cursor` for the next page; null on the last page")


class Status(ApiModel):
    status: Literal["ok", "degraded"]
    version: str
    parser_version: str
    schema_version: int
    backend: str
    duckdb: str
    metadata_store: Literal["ok", "unavailable"]
    time: str


class JobWarningOut(ApiModel):
    code: str
    message: str
    count: int = 1
    offset: int | None = None
    summary_count: int | None = Field(None, description="summary_mismatch: the count in the file's summary record")
    record_count: int | None = Field(None, description="summary_mismatch: the same count from the raw records")


class LotWarning(JobWarningOut):
    job_id: str
    file_name: str


class JobErrorOut(ApiModel):
    code: str
    message: str
    offset: int | None = None
    record: str | None = None
    field: str | None = None
    records_before: int | None = None


class JobOut(ApiModel):
    model_config = ConfigDict(extra="allow")
    job_id: str
    workspace: str
    status: Literal["queued", "running", "succeeded", "partial", "failed", "duplicate"]
    file_name: str
    size: int | None = None
    sha256: str | None = None
    lot_id: str | None = None
    bytes_read: int = 0
    records: int | None = None
    parts: int | None = None
    rows: dict[str, int] = {}
    record_counts: dict[str, int] = {}
    warnings: list[JobWarningOut] = []
    error: JobErrorOut | None = None
    duplicate_of: str | None = None
    snapshot_jobs: list[str] | None = Field(None, description="Jobs in the lot snapshot this job published")
    source: dict[str, Any] | None = Field(
        None,
        description="Where the job's file came from and where it went: `kind` (`upload` request body, `presign` "
        "presigned upload URL, `drop` drop folder or bucket, `cli` `stratum ingest`), `bucket` (`local` for the "
        "local drop folder), `key` (the key it was dropped or uploaded under, `incoming/<workspace>/...`), "
        "`version_id` and `etag` of the dropped object, and `archived_key`: where the file was moved when the "
        "job ended, `processed/<rest>` (succeeded, partial, duplicate) or `failed/<rest>` with "
        "`<name>.error.json` beside it (null while the file is still in `incoming/`, and for CLI ingests)",
        examples=[
            {
                "kind": "drop",
                "bucket": "local",
                "key": "incoming/default/lot.stdf",
                "version_id": None,
                "etag": "9e107d9d372bb6826bd81d3542a419d6",
                "archived_key": "processed/default/lot.stdf",
            }
        ],
    )
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    timings: dict[str, float] = {}


class LotSummary(ApiModel):
    lot_id: str
    part_type: str | None = None
    program: str | None = None
    tester_type: str | None = None
    node_name: str | None = None
    test_code: str | None = None
    start_time: str | None = None
    finish_time: str | None = None
    active_job_id: str
    file_count: int
    updated_at: str
    wafer_count: int | None = Field(None, description="Distinct wafers (0 for final test)")
    part_count: int | None = Field(None, description="Dies/parts after retests (final view)")
    good_count: int | None = Field(None, description="Passing dies/parts in the final view")
    yield_: float | None = Field(
        None, alias="yield", description="Final yield, a ratio 0-1: good_count / part_count (retests resolved)"
    )
    first_pass_yield: float | None = Field(None, description="First-pass yield, a ratio 0-1 (before any retest)")


class WaferOut(ApiModel):
    model_config = ConfigDict(extra="allow")
    lot_id: str
    wafer_id: str | None = None
    start_time: str | None = None
    finish_time: str | None = None
    part_count: int
    good_count: int
    yield_: float | None = Field(None, alias="yield")
    first_pass_count: int
    first_pass_good: int
    first_pass_yield: float | None = None
    retest_count: int
    job_id: str | None = None


class WaferList(ApiModel):
    lot_id: str
    items: list[WaferOut]


class LotDetail(ApiModel):
    model_config = ConfigDict(extra="allow")
    lot_id: str
    part_type: str | None = None
    program: str | None = None
    tester_type: str | None = None
    node_name: str | None = None
    start_time: str | None = None
    finish_time: str | None = None
    job_id: str = Field(description="Snapshot job of this view")
    active_job_id: str
    file_count: int | None = None
    part_count: int
    good_count: int
    yield_: float | None = Field(None, alias="yield")
    first_pass_yield: float | None = None
    retest_count: int
    wafers: list[WaferOut]
    files: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    annotations: list[dict[str, Any]] = Field(
        default_factory=list, description="Notes attached to the lot (inbound webhooks), oldest first"
    )
    warnings: list[LotWarning] = Field(
        [], description="Warnings of the snapshot's files, among them summary records that disagree with the raw ones"
    )


class Orientation(ApiModel):
    pos_x: Literal["L", "R"]
    pos_y: Literal["U", "D"]
    orientation_assumed: bool
    flat: Literal["U", "D", "L", "R"] | None = None
    center_x: int | None = None
    center_y: int | None = None
    die_width: float | None = None
    die_height: float | None = None
    units: int | None = None


class WaferMapOut(ApiModel):
    lot_id: str
    wafer_id: str
    snapshot_job_id: str
    view: Literal["final", "first_pass", "all"]
    orientation: Orientation
    counts: dict[str, Any]
    bins: dict[str, dict[str, dict[str, Any]]] = Field(
        description="'H' (hard) and 'S' (soft): bin number -> {name, pass_fail}"
    )
    test: dict[str, Any] | None = None
    dies: dict[str, list[Any]] = Field(
        description="Columns: x, y, hard_bin, soft_bin, passed, part_id, site_num and value when test_num is given"
    )


class TestStat(ApiModel):
    test_num: int
    test_name: str | None = None
    test_type: Literal["P", "M", "F"]
    units: str | None = None
    lo_limit: float | None = None
    hi_limit: float | None = None
    lo_spec: float | None = None
    hi_spec: float | None = None
    res_scal: int | None = None
    scale_mismatch: bool | None = None
    n: int
    n_valid: int | None = None
    mean: float | None = None
    sigma: float | None = None
    min: float | None = None
    max: float | None = None
    fails: int
    fail_rate: float | None = None


class TestList(ApiModel):
    lot_id: str
    wafer_id: str | None = None
    view: str
    items: list[TestStat]


class ResultRow(ApiModel):
    wafer_id: str | None = None
    x: int | None = None
    y: int | None = None
    part_id: str | None = None
    head_num: int
    site_num: int
    result: float | None = None
    valid: bool
    passed: bool | None = None
    lo_limit: float | None = None
    hi_limit: float | None = None
    is_final: bool
    is_retest: bool
    hard_bin: int | None = None
    soft_bin: int | None = None
    job_id: str
    pin_seq: int | None = Field(None, description="MPR only: position of the pin in the record")
    pin_name: str | None = Field(None, description="MPR only: logical pin name (PMR.LOG_NAM, else CHAN_NAM)")
    rtn_stat: int | None = Field(None, description="MPR only: the pin's return state nibble")
    num_fail: int | None = Field(None, description="FTR only: NUM_FAIL, failing pins")
    cycl_cnt: int | None = Field(None, description="FTR only: CYCL_CNT, cycle count of the vector")
    vect_nam: str | None = Field(None, description="FTR only: VECT_NAM, vector pattern name")
    rslt_txt: str | None = Field(None, description="FTR only: RSLT_TXT")
    test_flg: int | None = Field(None, description="FTR only: TEST_FLG")


class ResultsPage(ApiModel):
    lot_id: str
    test: dict[str, Any]
    items: list[ResultRow]
    next_cursor: str | None = None


class CapabilityRow(ApiModel):
    test_num: int
    test_name: str | None = None
    units: str | None = None
    source: Literal["exact", "tsr"]
    n: int
    mean: float | None = None
    sigma_within: float | None = None
    sigma_overall: float | None = None
    sigma_within_source: str | None = None
    cp: float | None = None
    cpl: float | None = None
    cpu: float | None = None
    cpk: float | None = None
    pp: float | None = None
    ppl: float | None = None
    ppu: float | None = None
    ppk: float | None = None
    lsl: float | None = None
    usl: float | None = None
    estimator: str
    unbias: bool
    subgroups: int | None = None


class CapabilityOut(ApiModel):
    lot_id: str
    wafer_id: str | None = None
    snapshot_job_id: str | None = None
    limits: Literal["test", "spec"]
    estimator: str
    unbias: bool
    source: Literal["exact", "auto"]
    tests: list[CapabilityRow]


class BinsOut(ApiModel):
    lot_id: str
    snapshot_job_id: str | None = None
    by: Literal["lot", "wafer", "site"]
    wafer_id: str | None = None
    yield_: list[dict[str, Any]] = Field(alias="yield", description="Final and first-pass yield per group")
    bins: list[dict[str, Any]]


class SqlContext(ApiModel):
    model_config = ConfigDict(extra="forbid")
    lot_id: str | None = None
    snapshot_job_id: str | None = None
    wafer_ids: list[str] | None = Field(None, max_length=10_000)


class SqlRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=100_000)
    limit: int | None = Field(None, ge=1, le=100_000, description="Rows per page (default 1000)")
    cursor: str | None = Field(None, max_length=2048)
    context: SqlContext | None = None


class SqlColumn(ApiModel):
    name: str
    type: str


class SqlResponse(ApiModel):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    next_cursor: str | None = None
    row_count: int
    truncated: bool = Field(description="True when the query yields more rows than the 100,000-row cap")
    elapsed_ms: float


class SchemaColumn(ApiModel):
    name: str
    type: str
    description: str


class SchemaTable(ApiModel):
    name: str
    description: str
    columns: list[SchemaColumn]


class SqlSchema(ApiModel):
    tables: list[SchemaTable]


class PresignRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    size: int | None = Field(None, ge=0)


class PresignOut(ApiModel):
    upload_url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = {}
    expires_at: str
    key: str
    job: JobOut


class InspectOut(ApiModel):
    model_config = ConfigDict(extra="allow")
    valid: bool
    file_name: str
    compression: str | None = None
    lot_id: str | None = None
    records: int | None = None
    problems: list[dict[str, Any]] = []


class ExportRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, min_length=1, max_length=100_000, description="One read-only SELECT")
    table: str | None = Field(None, max_length=64, description="A public table, exported for context.lot_id")
    filters: dict[str, str | int | float | bool | list[str | int | float | bool] | None] | None = Field(
        None, description="With table: column -> value (equality), list of values (IN) or null (IS NULL)"
    )
    format: Literal["parquet", "csv", "arrow"] = Field(
        "parquet",
        description="parquet (zstd), csv (with a header row; quoted only where needed) or arrow (Arrow IPC file; "
        "not available where the server has no pyarrow, as on AWS)",
    )
    context: SqlContext | None = Field(
        None, description="Scope: lot_id (required for a table export), snapshot_job_id, wafer_ids"
    )


class ExportColumn(ApiModel):
    name: str = Field(description="Column name")
    type: str = Field(
        description="The column's SQL type as POST /v1/sql names it (e.g. FLOAT, HUGEINT, TIMESTAMP); "
        "in Parquet files HUGEINT is stored as DECIMAL(38,0)"
    )


class ExportError(ApiModel):
    code: str = Field(description="Machine-readable error code (as in problem+json), e.g. query_timeout")
    message: str = Field(description="What went wrong, for a person")


class ExportOut(ApiModel):
    export_id: str = Field(description="Export id (exp_<ulid>)")
    status: Literal["queued", "running", "succeeded", "failed"] = Field(
        description="queued, then running, then succeeded (the file is ready) or failed (see error)"
    )
    format: Literal["parquet", "csv", "arrow"] = Field(description="File format of the export")
    query: str = Field(description="The SELECT that was exported (built from table and filters for a table export)")
    table: str | None = Field(None, description="The public table of a table export (null for a query export)")
    context: dict[str, Any] = Field(description="Scope of the export: lot_id, snapshot_job_id and wafer_ids")
    created_at: str = Field(description="When the export was requested (ISO 8601, UTC)")
    started_at: str | None = Field(None, description="When the export began running (ISO 8601, UTC)")
    finished_at: str | None = Field(None, description="When the export succeeded or failed (ISO 8601, UTC)")
    rows: int | None = Field(None, description="Rows in the file (when succeeded)")
    bytes: int | None = Field(None, description="Size of the file in bytes (when succeeded)")
    sha256: str | None = Field(None, description="SHA-256 of the file")
    columns: list[ExportColumn] | None = Field(None, description="The file's columns, in order (when succeeded)")
    elapsed_ms: float | None = Field(None, description="Time to run the query and write the file, in milliseconds")
    error: ExportError | None = Field(None, description="Why the export failed (when failed)")
    download_url: str | None = Field(None, description="When succeeded: an expiring URL of the file (no API key)")
    expires_at: str | None = Field(None, description="When the download URL stops working")


# ---- pattern classification ----------------------------------------------------------------------


class PatternRegionOut(ApiModel):
    die_count: int
    fail_density: float
    r_min: float
    r_max: float
    theta_deg_mean: float
    octant: str | None = None
    dies: list[list[int]] = Field(description="[x, y] of the dies in the detected region")


class PatternExplanationOut(ApiModel):
    summary: str
    features: dict[str, float | int]
    region: PatternRegionOut
    orientation_assumed: bool


class PatternOut(ApiModel):
    class_id: str
    family: str
    location: str
    severity: str
    refinement: str | None = None
    confidence: float = Field(description="calibrated probability that the family is right")
    level_confidence: dict[str, float]
    raw_score: float
    explanation: PatternExplanationOut


class ClassifyOut(ApiModel):
    wafer_id: str | None
    lot_id: str | None = None
    snapshot_job_id: str | None = None
    pattern_classes: list[PatternOut] = Field(description="highest confidence first; empty: no pattern")
    classifier_version: str
    latency_ms: float


class BatchItemError(ApiModel):
    wafer_id: str | None
    error: dict[str, Any]


class BatchOut(ApiModel):
    results: list[ClassifyOut | BatchItemError]
    classifier_version: str


class PatternClassOut(ApiModel):
    class_id: str
    family: str
    location: str
    severity: str
    refinement: str | None = None
    parent: str
    description: str
    likely_causes: list[str]
    example_url: str


class QuotaOut(ApiModel):
    key_id: str
    quota: str
    limit: int | None = Field(description="per calendar month (UTC); null: no quota")
    used: int
    remaining: int | None
    resets_at: str


class UsageOut(ApiModel):
    group_by: Literal["day", "route", "key"]
    items: list[dict[str, Any]] = Field(description="one row per group: the group value, requests, classifications")
    quotas: list[QuotaOut] = Field(description="classification quota of every key of the workspace")
