"""Request and response models of the API (they are the OpenAPI schema).

No ``from __future__ import annotations`` here: pydantic would compile each of the ~340 field annotations
from its string at import (a sixth of this module's import time).
"""

from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

# descriptions shared by several models
D_LOT = "Lot id (MIR.LOT_ID)"
D_WAFER = "Wafer id (WRR.WAFER_ID, else WIR.WAFER_ID); null when the file leaves it empty or in final test"
D_SNAP = "The job whose publish produced the snapshot these numbers come from (pin it with `snapshot_job_id`)"
D_TIME = "ISO 8601 date-time, UTC"
D_STDF_TIME = "Unix seconds (UTC), as the STDF record states it; null when the file leaves it out"
D_CURSOR = "Pass back as `cursor` for the next page; null on the last page"
D_VIEW = (
    "Which tests of each die count: `final` the execution the retest policy keeps, `first_pass` the first "
    "execution, `all` every execution"
)
D_YIELD = "Final yield, a fraction 0-1: good_count / part_count after retests (null when there are no parts)"
D_FP_YIELD = "First-pass yield, a fraction 0-1: first_pass_good / first_pass_count (null when there are no parts)"


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model config that shows ``values`` as the schema's examples (OpenAPI)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


def _page_examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """The example of ``Page[X]``: one page holding X's first example."""
    (item,) = get_args(cls.model_fields["items"].annotation) or (None,)
    extra = getattr(item, "model_config", {}).get("json_schema_extra") if item is not None else None
    found = extra.get("examples") if isinstance(extra, dict) else None
    if found:
        schema["examples"] = [{"items": [found[0]], "next_cursor": "eyJrIjoiMDFKRDhZM1Y0SzZRMk05VDBCN0M1TjFYV1oifQ"}]


class ApiModel(BaseModel):
    """Base of the API's models. Validators and serializers are built on first use, not at import: a cold
    start (Lambda) builds only those of the routes it serves."""

    model_config = ConfigDict(defer_build=True)


class Problem(ApiModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    model_config = examples(
        {
            "type": "https://stratum.dev/problems/not_found",
            "title": "Not found",
            "status": 404,
            "detail": "lot 'LOT99' not found",
            "instance": "/v1/lots/LOT99",
            "code": "not_found",
            "request_id": "req_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
        }
    )
    type: str = Field(description="URI naming the problem kind: https://stratum.dev/problems/<code>")
    title: str = Field(description="Short human summary of the problem kind (same for every instance of it)")
    status: int = Field(description="The HTTP status code of the answer")
    detail: str = Field(description="What went wrong in this request and, where it helps, how to fix it")
    instance: str = Field(description="The request path the problem occurred on")
    code: str = Field(
        description="Stable machine-readable problem code (e.g. bad_request, not_found, forbidden, rate_limited, "
        "query_timeout); some problems add fields such as `errors` (invalid fields) or `required_scopes`"
    )
    request_id: str | None = Field(
        default=None, description="Also in the X-Request-Id response header; quote it in reports"
    )


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
    """One page of a list; follow ``next_cursor`` for the rest."""

    model_config = ConfigDict(json_schema_extra=_page_examples)
    items: list[T] = Field(description="The items of this page, in the list's order")
    next_cursor: str | None = Field(default=None, description=D_CURSOR)


class Status(ApiModel):
    model_config = examples(
        {
            "status": "ok",
            "version": "0.9.0",
            "parser_version": "1.4.0",
            "schema_version": 3,
            "backend": "local",
            "duckdb": "1.1.3",
            "metadata_store": "ok",
            "time": "2026-12-04T18:35:40.123456+00:00",
        }
    )
    status: Literal["ok", "degraded"] = Field(description="`degraded` when the metadata store cannot be reached")
    version: str = Field(description="Version of the Stratum server")
    parser_version: str = Field(description="Version of the STDF parser (recorded in every job's snapshot)")
    schema_version: int = Field(description="Version of the Parquet lake schema")
    backend: str = Field(description="Adapters in use: `local` (directory + SQLite) or `aws` (S3 + DynamoDB)")
    duckdb: str = Field(description="Version of the DuckDB query engine")
    metadata_store: Literal["ok", "unavailable"] = Field(description="Whether the metadata store answered")
    time: str = Field(description="Server time, ISO 8601 with UTC offset")


class JobWarningOut(ApiModel):
    code: str = Field(description="Stable warning code, e.g. summary_mismatch, truncated, unknown_record")
    message: str = Field(description="What the parser noticed, in words")
    count: int = Field(default=1, description="How many times it occurred in the file (repeats are folded into one)")
    offset: int | None = Field(default=None, description="Byte offset in the uncompressed STDF of the first occurrence")
    summary_count: int | None = Field(
        default=None, description="summary_mismatch: the count in the file's summary record"
    )
    record_count: int | None = Field(default=None, description="summary_mismatch: the same count from the raw records")


class LotWarning(JobWarningOut):
    job_id: str = Field(description="The ingest job of the file the warning belongs to")
    file_name: str = Field(description="Name of that file as uploaded")


class JobErrorOut(ApiModel):
    code: str = Field(description="Stable error code, e.g. not_stdf, bad_record, truncated, decompression_limit")
    message: str = Field(description="What is wrong and where, in words")
    offset: int | None = Field(default=None, description="Byte offset in the uncompressed STDF where it went wrong")
    record: str | None = Field(default=None, description="The STDF record type being read (e.g. PTR), when known")
    field: str | None = Field(default=None, description="The record's field being read (e.g. RESULT), when known")
    records_before: int | None = Field(default=None, description="Records read successfully before the error")


JOB_EXAMPLE: dict[str, Any] = {
    "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
    "workspace": "default",
    "status": "succeeded",
    "file_name": "LOT42_W03.stdf.gz",
    "size": 18234511,
    "sha256": "9f2c4e0d6b1a7c3e5f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e",
    "lot_id": "LOT42",
    "bytes_read": 18234511,
    "records": 1843210,
    "parts": 5210,
    "rows": {"parts": 5210, "results": 1625520},
    "record_counts": {"FAR": 1, "MIR": 1, "PIR": 5210, "PTR": 1625520, "PRR": 5210, "MRR": 1},
    "warnings": [],
    "error": None,
    "duplicate_of": None,
    "snapshot_jobs": ["job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"],
    "created_at": "2026-12-04T18:02:11.402000Z",
    "started_at": "2026-12-04T18:02:11.950000Z",
    "finished_at": "2026-12-04T18:02:19.311000Z",
    "timings": {"parse_write_s": 6.1, "finish_s": 0.3, "publish_s": 0.4, "total_s": 7.4},
}


class JobOut(ApiModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [JOB_EXAMPLE]})
    job_id: str = Field(description="Job id (`job_` + a ULID)")
    workspace: str = Field(description="Workspace of the key that created the job")
    status: Literal["queued", "running", "succeeded", "partial", "failed", "duplicate"] = Field(
        description="`queued` waiting (a presigned upload waits for its file), `running`, `succeeded` (a lot "
        "snapshot is published), `partial` (a truncated file was accepted and what could be read is published), "
        "`failed` (see `error`; nothing published), `duplicate` (same bytes as `duplicate_of`; nothing published)"
    )
    file_name: str = Field(description="File name as uploaded (sanitised)")
    size: int | None = Field(default=None, description="Size of the uploaded file in bytes (compressed, as sent)")
    sha256: str | None = Field(
        default=None, description="SHA-256 (hex) of the uploaded bytes; duplicates are found by it"
    )
    lot_id: str | None = Field(
        default=None, description="Lot of the file (MIR.LOT_ID, else from the file name); null until read"
    )
    bytes_read: int = Field(default=0, description="Bytes of the uploaded file read so far (progress of a running job)")
    records: int | None = Field(default=None, description="STDF records read")
    parts: int | None = Field(default=None, description="Parts (PRR records) in the file, every execution counted")
    rows: dict[str, int] = Field(default={}, description="Rows written per lake table (e.g. parts, results)")
    record_counts: dict[str, int] = Field(default={}, description="Records read per STDF record type (e.g. PTR, PRR)")
    warnings: list[JobWarningOut] = Field(
        default=[], description="Things the parser noticed that did not stop the ingest"
    )
    error: JobErrorOut | None = Field(
        default=None,
        description="Why the job failed; null unless status is failed (a partial job's cut is the `truncated` warning)",
    )
    duplicate_of: str | None = Field(default=None, description="status duplicate: the earlier job with the same bytes")
    snapshot_jobs: list[str] | None = Field(default=None, description="Jobs in the lot snapshot this job published")
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
    created_at: str = Field(description=f"When the job was created; {D_TIME}")
    started_at: str | None = Field(default=None, description=f"When parsing started; {D_TIME}; null while queued")
    finished_at: str | None = Field(default=None, description=f"When the job ended; {D_TIME}; null until it ends")
    timings: dict[str, float] = Field(
        default={},
        description="Seconds per ingest phase (wall clock): parse_write_s, finish_s, publish_s, total_s; and CPU "
        "seconds per pipeline stage: inflate_cpu_s (reading and decompressing), walk_cpu_s (record offsets), "
        "decode_cpu_s (field gathers and the structural pass), arrow_cpu_s (Arrow conversion), encode_cpu_s "
        "(Parquet encoding and compression)",
    )


LOT_META = {
    "part_type": "Product (MIR.PART_TYP) of the newest file",
    "program": "Test program (MIR.JOB_NAM) of the newest file",
    "tester_type": "Tester type (MIR.TSTR_TYP) of the newest file",
    "node_name": "Tester host (MIR.NODE_NAM) of the newest file",
}


class LotSummary(ApiModel):
    model_config = examples(
        {
            "lot_id": "LOT42",
            "part_type": "XC7A35T",
            "program": "WS1_REV7",
            "tester_type": "93000",
            "node_name": "smt-tester-04",
            "test_code": "WS1",
            "start_time": "2026-11-30T06:12:44Z",
            "finish_time": "2026-11-30T14:51:02Z",
            "active_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
            "file_count": 2,
            "updated_at": "2026-12-04T18:02:19.311000Z",
            "wafer_count": 25,
            "part_count": 130250,
            "good_count": 121133,
            "yield": 0.93,
            "first_pass_yield": 0.912,
        }
    )
    lot_id: str = Field(description=D_LOT)
    part_type: str | None = Field(default=None, description=LOT_META["part_type"])
    program: str | None = Field(default=None, description=LOT_META["program"])
    tester_type: str | None = Field(default=None, description=LOT_META["tester_type"])
    node_name: str | None = Field(default=None, description=LOT_META["node_name"])
    test_code: str | None = Field(
        default=None, description="Test step (MIR.TEST_COD, e.g. WS1, FT1) of the newest file"
    )
    start_time: str | None = Field(default=None, description=f"Earliest MIR.START_T of the lot's files; {D_TIME}")
    finish_time: str | None = Field(default=None, description=f"Latest MRR.FINISH_T of the lot's files; {D_TIME}")
    active_job_id: str = Field(description="The job whose snapshot is the lot's current (active) one")
    file_count: int = Field(description="Files (ingest jobs) in the active snapshot")
    updated_at: str = Field(description=f"When the active snapshot was published; {D_TIME}")
    wafer_count: int | None = Field(default=None, description="Distinct wafers (0 for final test)")
    part_count: int | None = Field(default=None, description="Dies/parts after retests (final view)")
    good_count: int | None = Field(default=None, description="Passing dies/parts in the final view")
    yield_: float | None = Field(default=None, alias="yield", description=D_YIELD)
    first_pass_yield: float | None = Field(default=None, description=D_FP_YIELD)


WAFER_EXAMPLE: dict[str, Any] = {
    "lot_id": "LOT42",
    "wafer_id": "W03",
    "start_time": "2026-11-30T06:12:44Z",
    "finish_time": "2026-11-30T06:31:09Z",
    "part_count": 5210,
    "good_count": 4846,
    "yield": 0.9301,
    "first_pass_count": 5210,
    "first_pass_good": 4751,
    "first_pass_yield": 0.9119,
    "retest_count": 187,
    "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
}


class WaferOut(ApiModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [WAFER_EXAMPLE]})
    lot_id: str = Field(description=D_LOT)
    wafer_id: str | None = Field(default=None, description=D_WAFER)
    start_time: str | None = Field(default=None, description=f"First WIR.START_T of the wafer; {D_TIME}")
    finish_time: str | None = Field(default=None, description=f"Last WRR.FINISH_T of the wafer; {D_TIME}")
    part_count: int = Field(description="Dies after retests (final view; counted from PRRs)")
    good_count: int = Field(description="Passing dies after retests")
    yield_: float | None = Field(default=None, alias="yield", description=D_YIELD)
    first_pass_count: int = Field(description="Dies at their first execution")
    first_pass_good: int = Field(description="Dies passing at their first execution")
    first_pass_yield: float | None = Field(default=None, description=D_FP_YIELD)
    retest_count: int = Field(description="Die executions that are retests")
    job_id: str | None = Field(default=None, description="Newest job (file) holding the wafer")


class WaferList(ApiModel):
    model_config = examples({"lot_id": "LOT42", "items": [WAFER_EXAMPLE]})
    lot_id: str = Field(description=D_LOT)
    items: list[WaferOut] = Field(
        description="Every wafer of the lot in test order (first WIR start time, then wafer id)"
    )


class LotDetail(ApiModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "lot_id": "LOT42",
                    "part_type": "XC7A35T",
                    "program": "WS1_REV7",
                    "tester_type": "93000",
                    "node_name": "smt-tester-04",
                    "start_time": "2026-11-30T06:12:44Z",
                    "finish_time": "2026-11-30T14:51:02Z",
                    "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                    "active_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                    "file_count": 1,
                    "part_count": 5210,
                    "good_count": 4846,
                    "yield": 0.9301,
                    "first_pass_yield": 0.9119,
                    "retest_count": 187,
                    "wafers": [WAFER_EXAMPLE],
                    "files": [
                        {
                            "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                            "file_name": "LOT42_W03.stdf.gz",
                            "file_order": 1,
                            "start_time": "2026-11-30T06:12:44Z",
                            "finish_time": "2026-11-30T14:51:02Z",
                            "sublot_id": None,
                            "test_code": "WS1",
                            "records": 1843210,
                            "partial": False,
                        }
                    ],
                    "jobs": [
                        {
                            "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                            "status": "succeeded",
                            "file_name": "LOT42_W03.stdf.gz",
                            "created_at": "2026-12-04T18:02:11.402000+00:00",
                            "duplicate_of": None,
                            "error": None,
                        }
                    ],
                    "annotations": [],
                    "warnings": [],
                }
            ]
        },
    )
    lot_id: str = Field(description=D_LOT)
    part_type: str | None = Field(default=None, description=LOT_META["part_type"])
    program: str | None = Field(default=None, description=LOT_META["program"])
    tester_type: str | None = Field(default=None, description=LOT_META["tester_type"])
    node_name: str | None = Field(default=None, description=LOT_META["node_name"])
    start_time: str | None = Field(default=None, description=f"Earliest MIR.START_T of the lot's files; {D_TIME}")
    finish_time: str | None = Field(default=None, description=f"Latest MRR.FINISH_T of the lot's files; {D_TIME}")
    job_id: str = Field(description="Snapshot job of this view")
    active_job_id: str = Field(description="The lot's current (active) snapshot job; differs from job_id when pinned")
    file_count: int | None = Field(default=None, description="Files (ingest jobs) in the snapshot")
    part_count: int = Field(description="Dies/parts after retests (final view)")
    good_count: int = Field(description="Passing dies/parts after retests")
    yield_: float | None = Field(default=None, alias="yield", description=D_YIELD)
    first_pass_yield: float | None = Field(default=None, description=D_FP_YIELD)
    retest_count: int = Field(description="Executions that are retests")
    wafers: list[WaferOut] = Field(description="The lot's wafers with their yields (empty for final test)")
    files: list[dict[str, Any]] = Field(
        description="The snapshot's files in lot order: job_id, file_name, file_order, start_time, finish_time, "
        "sublot_id, test_code, records, partial"
    )
    jobs: list[dict[str, Any]] = Field(
        description="The lot's ingest jobs (up to 200), also those not in the snapshot (failed, duplicate, "
        "superseded): job_id, status, file_name, created_at, duplicate_of, error (its message)"
    )
    annotations: list[dict[str, Any]] = Field(
        default_factory=list, description="Notes attached to the lot (inbound webhooks), oldest first"
    )
    warnings: list[LotWarning] = Field(
        default=[],
        description="Warnings of the snapshot's files, among them summary records that disagree with the raw ones",
    )


class Orientation(ApiModel):
    pos_x: Literal["L", "R"] = Field(
        description="Direction of increasing X on the map (WCR.POS_X): `R` right, `L` left; `R` when assumed"
    )
    pos_y: Literal["U", "D"] = Field(
        description="Direction of increasing Y on the map (WCR.POS_Y): `U` up, `D` down; `U` when assumed"
    )
    orientation_assumed: bool = Field(description="True when the file's WCR does not state POS_X or POS_Y")
    flat: Literal["U", "D", "L", "R"] | None = Field(
        default=None, description="Side of the wafer flat or notch (WCR.WF_FLAT); null when not stated"
    )
    center_x: int | None = Field(
        default=None, description="X of the wafer's centre die (WCR.CENTER_X); null when not stated"
    )
    center_y: int | None = Field(
        default=None, description="Y of the wafer's centre die (WCR.CENTER_Y); null when not stated"
    )
    die_width: float | None = Field(
        default=None, description="Die width (WCR.DIE_WID) in `units`; null when not stated"
    )
    die_height: float | None = Field(
        default=None, description="Die height (WCR.DIE_HT) in `units`; null when not stated"
    )
    units: int | None = Field(
        default=None, description="WCR.WF_UNITS: 1 inches, 2 cm, 3 mm, 4 mils; 0 or null when not stated"
    )


class MapCounts(ApiModel):
    dies: int = Field(description="Dies on the map (parts with X and Y) in the view")
    good: int = Field(description="Passing dies among them")
    yield_: float | None = Field(
        default=None, alias="yield", description="good / dies, a fraction 0-1; null without dies"
    )
    view: Literal["final", "first_pass", "all"] = Field(description="The view counted (as requested)")


class WaferMapOut(ApiModel):
    model_config = examples(
        {
            "lot_id": "LOT42",
            "wafer_id": "W03",
            "snapshot_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
            "view": "final",
            "orientation": {
                "pos_x": "R",
                "pos_y": "D",
                "orientation_assumed": False,
                "flat": "D",
                "center_x": 0,
                "center_y": 0,
                "die_width": 2.21,
                "die_height": 3.13,
                "units": 3,
            },
            "counts": {"dies": 3, "good": 2, "yield": 0.6667, "view": "final"},
            "bins": {
                "H": {"1": {"name": "PASS", "pass_fail": "P"}, "7": {"name": "IDDQ", "pass_fail": "F"}},
                "S": {"1": {"name": "PASS", "pass_fail": "P"}, "712": {"name": "IDDQ_HI", "pass_fail": "F"}},
            },
            "test": None,
            "dies": {
                "x": [-1, 0, 1],
                "y": [4, 4, 4],
                "hard_bin": [1, 7, 1],
                "soft_bin": [1, 712, 1],
                "passed": [True, False, True],
                "part_id": ["101", "102", "103"],
                "site_num": [0, 1, 2],
            },
        }
    )
    lot_id: str = Field(description=D_LOT)
    wafer_id: str = Field(description="The wafer drawn")
    snapshot_job_id: str = Field(description=D_SNAP)
    view: Literal["final", "first_pass", "all"] = Field(description=D_VIEW)
    orientation: Orientation = Field(description="How to draw the map, from the newest file's WCR record")
    counts: MapCounts = Field(description="Die counts and yield of the map")
    bins: dict[str, dict[str, dict[str, Any]]] = Field(
        description="'H' (hard) and 'S' (soft): bin number -> {name, pass_fail ('P', 'F' or null), "
        "pass_fail_source ('bin_record' from HBR/SBR, 'prr' derived from the parts' PRR flags, or null)}"
    )
    test: dict[str, Any] | None = Field(
        default=None,
        description="With test_num: the test drawn (test_num, test_name, test_type, units, limits); null otherwise",
    )
    dies: dict[str, list[Any]] = Field(
        description="Columns of equal length, one entry per die: x, y, hard_bin, soft_bin, passed, part_id, "
        "site_num, and with test_num `value` (the result in the test's units; for FTR/MPR tests 1 pass, 0 fail; "
        "null when the die has no valid result)"
    )


TEST_STAT_EXAMPLE: dict[str, Any] = {
    "test_num": 1030,
    "test_name": "IDD_STATIC",
    "test_type": "P",
    "units": "A",
    "lo_limit": 0.0,
    "hi_limit": 0.05,
    "lo_spec": None,
    "hi_spec": None,
    "res_scal": 3,
    "scale_mismatch": False,
    "n": 5210,
    "n_valid": 5208,
    "mean": 0.02104,
    "sigma": 0.00311,
    "min": 0.01422,
    "max": 0.05104,
    "fails": 12,
    "fail_rate": 0.0023,
}


class TestStat(ApiModel):
    model_config = examples(TEST_STAT_EXAMPLE)
    test_num: int = Field(description="Test number (TEST_NUM)")
    test_name: str | None = Field(default=None, description="Test name (TEST_TXT)")
    test_type: Literal["P", "M", "F"] = Field(
        description="`P` parametric (PTR), `M` multi-pin parametric (MPR), `F` functional (FTR)"
    )
    units: str | None = Field(
        default=None, description="Units of results and limits (base units: results are unscaled)"
    )
    lo_limit: float | None = Field(default=None, description="Low test limit (LO_LIMIT) in `units`; null: none")
    hi_limit: float | None = Field(default=None, description="High test limit (HI_LIMIT) in `units`; null: none")
    lo_spec: float | None = Field(default=None, description="Low specification limit (LO_SPEC) in `units`; null: none")
    hi_spec: float | None = Field(default=None, description="High specification limit (HI_SPEC) in `units`; null: none")
    res_scal: int | None = Field(
        default=None, description="Display exponent of the results (RES_SCAL), e.g. 3 to show mA"
    )
    scale_mismatch: bool | None = Field(default=None, description="True when RES_SCAL differs from the limits' scales")
    n: int = Field(description="Executions of the test in the view (MPR: pin results)")
    n_valid: int | None = Field(default=None, description="Executions with a valid, finite result (null for FTR)")
    mean: float | None = Field(default=None, description="Mean of the valid results, in `units` (null for FTR)")
    sigma: float | None = Field(
        default=None, description="Sample standard deviation (N-1) of the valid results, in `units`"
    )
    min: float | None = Field(default=None, description="Smallest valid result, in `units`")
    max: float | None = Field(default=None, description="Largest valid result, in `units`")
    fails: int = Field(description="Executions that failed the test")
    fail_rate: float | None = Field(default=None, description="fails / n, a fraction 0-1; null when n is 0")


class TestList(ApiModel):
    model_config = examples({"lot_id": "LOT42", "wafer_id": None, "view": "final", "items": [TEST_STAT_EXAMPLE]})
    lot_id: str = Field(description=D_LOT)
    wafer_id: str | None = Field(default=None, description="The wafer asked for; null: the whole lot")
    view: str = Field(description=D_VIEW)
    items: list[TestStat] = Field(description="Every test of the lot, by test number and name")


class ResultRow(ApiModel):
    wafer_id: str | None = Field(default=None, description=D_WAFER)
    x: int | None = Field(default=None, description="Die X (PRR.X_COORD); null in final test or when missing")
    y: int | None = Field(default=None, description="Die Y (PRR.Y_COORD); null in final test or when missing")
    part_id: str | None = Field(default=None, description="PRR.PART_ID of the part")
    head_num: int = Field(description="Test head (HEAD_NUM)")
    site_num: int = Field(description="Test site (SITE_NUM)")
    result: float | None = Field(
        default=None, description="Result in the test's base units (PTR/MPR; null for FTR or when the tester gave none)"
    )
    valid: bool = Field(description="Usable for statistics: the result's flags mark it valid and it is finite")
    passed: bool | None = Field(
        default=None, description="Pass/fail of this result (null when the record does not say)"
    )
    lo_limit: float | None = Field(default=None, description="Low limit in effect for this result, in the test's units")
    hi_limit: float | None = Field(
        default=None, description="High limit in effect for this result, in the test's units"
    )
    is_final: bool = Field(description="The part's execution is the one the retest policy keeps for its die")
    is_retest: bool = Field(description="The part's execution is not the first of its die")
    hard_bin: int | None = Field(default=None, description="Hard bin of the part (PRR.HARD_BIN)")
    soft_bin: int | None = Field(default=None, description="Soft bin of the part (PRR.SOFT_BIN); null when missing")
    job_id: str = Field(description="Job (file) of the execution")
    pin_seq: int | None = Field(default=None, description="MPR only: position of the pin in the record")
    pin_name: str | None = Field(default=None, description="MPR only: logical pin name (PMR.LOG_NAM, else CHAN_NAM)")
    rtn_stat: int | None = Field(default=None, description="MPR only: the pin's return state nibble")
    num_fail: int | None = Field(default=None, description="FTR only: NUM_FAIL, failing pins")
    cycl_cnt: int | None = Field(default=None, description="FTR only: CYCL_CNT, cycle count of the vector")
    vect_nam: str | None = Field(default=None, description="FTR only: VECT_NAM, vector pattern name")
    rslt_txt: str | None = Field(default=None, description="FTR only: RSLT_TXT")
    test_flg: int | None = Field(default=None, description="FTR only: TEST_FLG")


class ResultsPage(ApiModel):
    model_config = examples(
        {
            "lot_id": "LOT42",
            "test": {"test_num": 1030, "test_name": "IDD_STATIC", "test_type": "P", "units": "A"},
            "items": [
                {
                    "wafer_id": "W03",
                    "x": 12,
                    "y": -7,
                    "part_id": "1187",
                    "head_num": 1,
                    "site_num": 2,
                    "result": 0.02104,
                    "valid": True,
                    "passed": True,
                    "lo_limit": 0.0,
                    "hi_limit": 0.05,
                    "is_final": True,
                    "is_retest": False,
                    "hard_bin": 1,
                    "soft_bin": 1,
                    "job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
                }
            ],
            "next_cursor": "eyJvIjoxMDAwfQ",
        }
    )
    lot_id: str = Field(description=D_LOT)
    test: dict[str, Any] = Field(description="The test: test_num, test_name, test_type, units, limits")
    items: list[ResultRow] = Field(description="One row per execution (MPR: per pin), by file, wafer, y, x")
    next_cursor: str | None = Field(default=None, description=D_CURSOR)


CAP_INDEX = "null when a needed limit is missing, sigma is 0 or fewer than 2 values"


class CapabilityRow(ApiModel):
    test_num: int = Field(description="Test number (TEST_NUM)")
    test_name: str | None = Field(default=None, description="Test name (TEST_TXT)")
    units: str | None = Field(default=None, description="Units of mean, sigmas and limits")
    source: Literal["exact", "tsr"] = Field(
        description="`exact` computed from the results; `tsr` from the files' TSR summary sums (source=auto)"
    )
    n: int = Field(description="Valid results used")
    mean: float | None = Field(default=None, description="Grand mean of the valid results, in `units`")
    sigma_within: float | None = Field(default=None, description="Within-subgroup (within-wafer) sigma, for Cp/Cpk")
    sigma_overall: float | None = Field(default=None, description="Overall sample sigma (N-1), for Pp/Ppk")
    sigma_within_source: str | None = Field(
        default=None,
        description="How sigma_within was obtained: `pooled`, `overall_fallback` (no wafers or one value per "
        "wafer: the overall sigma) or the compatibility estimator's name",
    )
    cp: float | None = Field(default=None, description=f"(USL - LSL) / (6 sigma_within); {CAP_INDEX}")
    cpl: float | None = Field(default=None, description=f"(mean - LSL) / (3 sigma_within); {CAP_INDEX}")
    cpu: float | None = Field(default=None, description=f"(USL - mean) / (3 sigma_within); {CAP_INDEX}")
    cpk: float | None = Field(default=None, description=f"min(cpl, cpu), or the one side with a limit; {CAP_INDEX}")
    pp: float | None = Field(default=None, description=f"(USL - LSL) / (6 sigma_overall); {CAP_INDEX}")
    ppl: float | None = Field(default=None, description=f"(mean - LSL) / (3 sigma_overall); {CAP_INDEX}")
    ppu: float | None = Field(default=None, description=f"(USL - mean) / (3 sigma_overall); {CAP_INDEX}")
    ppk: float | None = Field(default=None, description=f"min(ppl, ppu), or the one side with a limit; {CAP_INDEX}")
    lsl: float | None = Field(
        default=None, description="Lower limit used (test or spec limit, per `limits`), in `units`"
    )
    usl: float | None = Field(
        default=None, description="Upper limit used (test or spec limit, per `limits`), in `units`"
    )
    estimator: str = Field(description="The within-sigma estimator requested")
    unbias: bool = Field(description="Whether both sigmas were divided by c4")
    subgroups: int | None = Field(default=None, description="Wafers (subgroups) with at least one valid result")


class CapabilityOut(ApiModel):
    model_config = examples(
        {
            "lot_id": "LOT42",
            "wafer_id": None,
            "snapshot_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
            "limits": "test",
            "estimator": "pooled",
            "unbias": False,
            "source": "exact",
            "tests": [
                {
                    "test_num": 1030,
                    "test_name": "IDD_STATIC",
                    "units": "A",
                    "source": "exact",
                    "n": 130200,
                    "mean": 0.02104,
                    "sigma_within": 0.00298,
                    "sigma_overall": 0.00311,
                    "sigma_within_source": "pooled",
                    "cp": 2.796,
                    "cpl": 2.353,
                    "cpu": 3.239,
                    "cpk": 2.353,
                    "pp": 2.68,
                    "ppl": 2.255,
                    "ppu": 3.104,
                    "ppk": 2.255,
                    "lsl": 0.0,
                    "usl": 0.05,
                    "estimator": "pooled",
                    "unbias": False,
                    "subgroups": 25,
                }
            ],
        }
    )
    lot_id: str = Field(description=D_LOT)
    wafer_id: str | None = Field(
        default=None, description="The wafer asked for; null: the stacked lot (subgroup = wafer)"
    )
    snapshot_job_id: str | None = Field(default=None, description=D_SNAP)
    limits: Literal["test", "spec"] = Field(description="Limits used: test limits (LO/HI_LIMIT) or spec limits")
    estimator: str = Field(description="Within-subgroup sigma estimator (pooled, or a JMP/Minitab-compatible one)")
    unbias: bool = Field(description="Whether both sigmas were divided by c4")
    source: Literal["exact", "auto"] = Field(description="As requested: `auto` may use TSR summaries (per row)")
    tests: list[CapabilityRow] = Field(description="One row per parametric test, by test number")


class BinRow(ApiModel):
    model_config = ConfigDict(extra="allow")
    bin_type: Literal["H", "S"] = Field(description="`H` hard bin or `S` soft bin")
    wafer_id: str | None = Field(default=None, description="by=wafer: the wafer of the row")
    head_num: int | None = Field(default=None, description="by=site: the test head of the row")
    site_num: int | None = Field(default=None, description="by=site: the test site of the row")
    bin_num: int = Field(description="Bin number")
    part_count: int = Field(description="Dies/parts in the bin after retests (final view)")
    first_pass_count: int = Field(description="Dies/parts in the bin at their first execution")
    percent: float | None = Field(
        default=None,
        description="part_count as a percentage 0-100 of the group's dies/parts after retests (not a 0-1 "
        "fraction like yield), rounded to 4 decimals",
    )
    first_pass_percent: float | None = Field(
        default=None, description="first_pass_count as a percentage 0-100 of the group's first executions"
    )
    bin_name: str | None = Field(default=None, description="Bin name from the HBR/SBR records; null when none names it")
    pass_fail: str | None = Field(default=None, description="'P', 'F' (from HBR/SBR) or null when not stated")
    summary_count: int | None = Field(
        default=None, description="by=lot: the count in the HBR/SBR summary records (a cross-check only); else null"
    )


class YieldRow(ApiModel):
    model_config = ConfigDict(extra="allow")
    wafer_id: str | None = Field(default=None, description="by=wafer: the wafer of the row")
    head_num: int | None = Field(default=None, description="by=site: the test head of the row")
    site_num: int | None = Field(default=None, description="by=site: the test site of the row")
    parts: int = Field(description="Dies/parts after retests (final view)")
    good: int = Field(description="Passing dies/parts after retests")
    first_pass_parts: int = Field(description="Dies/parts at their first execution")
    first_pass_good: int = Field(description="Dies/parts passing at their first execution")
    retests: int = Field(description="Executions that are retests")
    yield_: float | None = Field(
        default=None, alias="yield", description="good / parts, a fraction 0-1; null without parts"
    )
    first_pass_yield: float | None = Field(
        default=None, description="first_pass_good / first_pass_parts, a fraction 0-1; null without parts"
    )


class BinsOut(ApiModel):
    model_config = examples(
        {
            "lot_id": "LOT42",
            "snapshot_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
            "by": "lot",
            "wafer_id": None,
            "yield": [
                {
                    "parts": 5210,
                    "good": 4846,
                    "first_pass_parts": 5210,
                    "first_pass_good": 4751,
                    "retests": 187,
                    "yield": 0.9301,
                    "first_pass_yield": 0.9119,
                }
            ],
            "bins": [
                {
                    "bin_type": "H",
                    "bin_num": 1,
                    "part_count": 4846,
                    "first_pass_count": 4751,
                    "percent": 93.0134,
                    "first_pass_percent": 91.1900,
                    "bin_name": "PASS",
                    "pass_fail": "P",
                    "summary_count": 4846,
                }
            ],
        }
    )
    lot_id: str = Field(description=D_LOT)
    snapshot_job_id: str | None = Field(default=None, description=D_SNAP)
    by: Literal["lot", "wafer", "site"] = Field(description="Grouping of the rows, as requested")
    wafer_id: str | None = Field(default=None, description="The wafer asked for; null: every wafer")
    yield_: list[YieldRow] = Field(alias="yield", description="Final and first-pass yield per group")
    bins: list[BinRow] = Field(description="Per group and bin: counts and percentages, most parts first")


class SqlContext(ApiModel):
    model_config = ConfigDict(extra="forbid")
    lot_id: str | None = Field(
        default=None, description="Narrow the tables to this lot (its active or pinned snapshot)"
    )
    snapshot_job_id: str | None = Field(
        default=None,
        description="Read the lot snapshot published by this job (reproducible results); needs lot_id or "
        "pins the job's lot",
    )
    wafer_ids: list[str] | None = Field(
        default=None, max_length=10_000, description="Narrow the tables to these wafers"
    )


class SqlRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "query": "SELECT wafer_id, part_count, yield FROM wafers ORDER BY wafer_id",
                    "limit": 100,
                    "context": {"lot_id": "LOT42"},
                }
            ]
        },
    )
    query: str = Field(
        min_length=1, max_length=100_000, description="One read-only SELECT (or EXPLAIN) in the DuckDB dialect"
    )
    limit: int | None = Field(default=None, ge=1, le=100_000, description="Rows per page (default 1000)")
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        description="The previous page's `next_cursor` (same query and context); omit first",
    )
    context: SqlContext | None = Field(default=None, description="Narrow every table to a lot, snapshot and wafers")


class SqlColumn(ApiModel):
    name: str = Field(description="Column name")
    type: str = Field(description="DuckDB type of the column (e.g. VARCHAR, BIGINT, DOUBLE, FLOAT, BOOLEAN)")


class SqlResponse(ApiModel):
    model_config = examples(
        {
            "columns": [
                {"name": "wafer_id", "type": "VARCHAR"},
                {"name": "part_count", "type": "BIGINT"},
                {"name": "yield", "type": "DOUBLE"},
            ],
            "rows": [["W01", 5210, 0.9301], ["W02", 5210, 0.9148]],
            "next_cursor": None,
            "row_count": 2,
            "truncated": False,
            "elapsed_ms": 14.215,
        }
    )
    columns: list[SqlColumn] = Field(description="The result's columns in order")
    rows: list[list[Any]] = Field(
        description="The page's rows, one array per row in column order (FLOAT columns at float32 precision)"
    )
    next_cursor: str | None = Field(default=None, description=D_CURSOR)
    row_count: int = Field(description="Rows in this page")
    truncated: bool = Field(description="True when the query yields more rows than the 100,000-row cap")
    elapsed_ms: float = Field(description="Server time spent on the query, milliseconds")


class SchemaColumn(ApiModel):
    name: str = Field(description="Column name")
    type: str = Field(description="DuckDB type of the column")
    description: str = Field(description="What the column holds (its STDF source, units, null meaning)")


class SchemaTable(ApiModel):
    name: str = Field(description="Table (view) name to use in queries")
    description: str = Field(description="What one row of the table is")
    columns: list[SchemaColumn] = Field(description="The table's columns in order")


class SqlSchema(ApiModel):
    model_config = examples(
        {
            "tables": [
                {
                    "name": "wafers",
                    "description": "One row per wafer of a lot (all its executions merged; counts from PRRs).",
                    "columns": [
                        {"name": "lot_id", "type": "VARCHAR", "description": "Lot id"},
                        {"name": "yield", "type": "DOUBLE", "description": "good_count / part_count, a fraction 0-1"},
                    ],
                }
            ]
        }
    )
    tables: list[SchemaTable] = Field(description="Every public table")


class PresignRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filename": "LOT42.stdf.gz", "size": 98304512}]}
    )
    filename: str = Field(min_length=1, max_length=255, description="Name of the file to upload (kept on the job)")
    size: int | None = Field(
        default=None,
        ge=0,
        description="Size in bytes; checked against the upload limit and bound to the URL when given",
    )


class PresignOut(ApiModel):
    model_config = examples(
        {
            "upload_url": "https://stratum-drop.s3.amazonaws.com/workspaces/default/incoming/job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ"
            "/LOT42.stdf.gz?X-Amz-Signature=...",
            "method": "PUT",
            "headers": {"Content-Type": "application/octet-stream"},
            "expires_at": "2026-12-04T19:02:11+00:00",
            "key": "workspaces/default/incoming/job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ/LOT42.stdf.gz",
            "job": {**JOB_EXAMPLE, "status": "queued", "records": None, "parts": None, "rows": {}},
        }
    )
    upload_url: str = Field(description="PUT the file's bytes here before expires_at (no API key: the URL is signed)")
    method: Literal["PUT"] = Field(default="PUT", description="The HTTP method to use with upload_url")
    headers: dict[str, str] = Field(default={}, description="Headers to send with the PUT, exactly")
    expires_at: str = Field(
        description=f"When the URL stops working; the queued job expires then if no file arrived; {D_TIME}"
    )
    key: str = Field(description="Object key the file is stored under")
    job: JobOut = Field(description="The ingest job, queued until the file lands (poll GET /v1/jobs/{job_id})")


class InspectOut(ApiModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "valid": True,
                    "file_name": "LOT42_W03.stdf.gz",
                    "compression": "gzip",
                    "lot_id": "LOT42",
                    "part_type": "XC7A35T",
                    "program": "WS1_REV7",
                    "tester_type": "93000",
                    "records": 1843210,
                    "record_counts": {"MIR": 1, "PTR": 1625520, "PRR": 5210},
                    "parts": 5210,
                    "wafers": [{"wafer_id": "W03", "head_num": 1, "part_count": 5210, "good_count": 4846}],
                    "problems": [],
                }
            ]
        },
    )
    valid: bool = Field(description="True when the whole file reads as STDF V4 (false: see problems)")
    file_name: str = Field(description="The file name given")
    compression: str | None = Field(
        default=None, description="Detected by content: gzip, bzip2, zip, or null for plain STDF"
    )
    lot_id: str | None = Field(default=None, description="MIR.LOT_ID (else from the file name; see lot_id_source)")
    records: int | None = Field(default=None, description="STDF records read")
    problems: list[dict[str, Any]] = Field(
        default=[], description="What is wrong or odd in the file: {code, message, count, offset}; empty when clean"
    )


class ExportRequest(ApiModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "SELECT * FROM results WHERE test_num = 1030", "format": "parquet"},
                {
                    "table": "parts",
                    "filters": {"wafer_id": ["W01", "W02"]},
                    "format": "csv",
                    "context": {"lot_id": "LOT42"},
                },
            ]
        },
    )
    query: str | None = Field(default=None, min_length=1, max_length=100_000, description="One read-only SELECT")
    table: str | None = Field(default=None, max_length=64, description="A public table, exported for context.lot_id")
    filters: dict[str, str | int | float | bool | list[str | int | float | bool] | None] | None = Field(
        default=None, description="With table: column -> value (equality), list of values (IN) or null (IS NULL)"
    )
    format: Literal["parquet", "csv", "arrow"] = Field(
        default="parquet", description="File format: Parquet (zstd), CSV with a header line, or an Arrow IPC stream"
    )
    context: SqlContext | None = Field(default=None, description="Narrow the tables to a lot, snapshot and wafers")


class ExportColumn(ApiModel):
    name: str = Field(description="Column name")
    type: str = Field(description="DuckDB type of the column")


class ExportError(ApiModel):
    code: str = Field(description="Stable error code (e.g. query_timeout, bad_request)")
    message: str = Field(description="What went wrong, in words")


class ExportOut(ApiModel):
    model_config = examples(
        {
            "export_id": "exp_01JD8ZB2R5W1E0Q4H7M3K9P6TS",
            "status": "succeeded",
            "format": "parquet",
            "query": "SELECT * FROM results WHERE test_num = 1030",
            "table": None,
            "context": {"lot_id": None, "snapshot_job_id": None, "wafer_ids": None},
            "created_at": "2026-12-04T18:10:02.118000+00:00",
            "started_at": "2026-12-04T18:10:02.131000+00:00",
            "finished_at": "2026-12-04T18:10:05.902000+00:00",
            "rows": 1450112,
            "bytes": 9437184,
            "sha256": "0b8e4f1c2d3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
            "columns": [{"name": "lot_id", "type": "VARCHAR"}, {"name": "result", "type": "FLOAT"}],
            "elapsed_ms": 3771.4,
            "error": None,
            "download_url": "https://stratum-exports.s3.amazonaws.com/...&X-Amz-Signature=...",
            "expires_at": "2026-12-04T19:10:06+00:00",
        }
    )
    export_id: str = Field(description="Export id (`exp_` + a ULID)")
    status: Literal["queued", "running", "succeeded", "failed"] = Field(
        description="`queued`, `running`, `succeeded` (download it), `failed` (see error)"
    )
    format: Literal["parquet", "csv", "arrow"] = Field(description="File format, as requested")
    query: str = Field(description="The query run (for a table export, the query made from table and filters)")
    table: str | None = Field(default=None, description="The table exported, when the export named one")
    context: dict[str, Any] = Field(description="The context applied: lot_id, snapshot_job_id, wafer_ids")
    created_at: str = Field(description=f"When the export was requested; {D_TIME}")
    started_at: str | None = Field(default=None, description=f"When it started running; {D_TIME}")
    finished_at: str | None = Field(default=None, description=f"When it ended; {D_TIME}")
    rows: int | None = Field(default=None, description="Rows written (when succeeded)")
    bytes: int | None = Field(default=None, description="Size of the file in bytes (when succeeded)")
    sha256: str | None = Field(default=None, description="SHA-256 of the file")
    columns: list[ExportColumn] | None = Field(default=None, description="The file's columns (when succeeded)")
    elapsed_ms: float | None = Field(default=None, description="Time spent writing the file, milliseconds")
    error: ExportError | None = Field(default=None, description="Why it failed; null unless status is failed")
    download_url: str | None = Field(
        default=None, description="When succeeded: an expiring URL of the file (no API key)"
    )
    expires_at: str | None = Field(default=None, description="When the download URL stops working")


# ---- pattern classification ----------------------------------------------------------------------


class PatternRegionOut(ApiModel):
    die_count: int = Field(description="Dies in the detected region")
    fail_density: float = Field(description="Failing dies / dies in the region, a fraction 0-1")
    r_min: float = Field(description="Inner radius of the region, normalised: 0 at the wafer centre, 1 at its edge")
    r_max: float = Field(description="Outer radius of the region, normalised: 0 at the wafer centre, 1 at its edge")
    theta_deg_mean: float = Field(
        description="Mean angle of the region's dies around the wafer centre, degrees (-180 to 180, 0 towards +X)"
    )
    octant: str | None = Field(
        default=None,
        description="Compass octant of the region (e, ne, n, nw, w, sw, s, se) for loc, edge_loc and gross_region; "
        "null for other families",
    )
    dies: list[list[int]] = Field(description="[x, y] of the dies in the detected region")


class PatternExplanationOut(ApiModel):
    summary: str = Field(description="One sentence saying what was found and where")
    features: dict[str, float | int] = Field(description="The map features that drove the decision, by name")
    region: PatternRegionOut = Field(description="The region of the map the pattern occupies")
    orientation_assumed: bool = Field(
        description="True when the map's orientation is not known, so octants read X to the right and Y up"
    )


PATTERN_EXAMPLE: dict[str, Any] = {
    "class_id": "edge_loc/edge/high/ne",
    "family": "edge_loc",
    "location": "edge",
    "severity": "high",
    "refinement": "ne",
    "confidence": 0.91,
    "level_confidence": {"location": 0.88, "severity": 0.79},
    "raw_score": 3.42,
    "explanation": {
        "summary": "failing dies concentrated on the north-east edge",
        "features": {"edge_fail_ratio": 0.62, "radial_gradient": 1.9},
        "region": {
            "die_count": 41,
            "fail_density": 0.78,
            "r_min": 0.86,
            "r_max": 1.0,
            "theta_deg_mean": 44.5,
            "octant": "ne",
            "dies": [[11, 9], [12, 8]],
        },
        "orientation_assumed": False,
    },
}


class PatternOut(ApiModel):
    class_id: str = Field(description="Pattern class, `family/location/severity[/refinement]` (see GET /v1/patterns)")
    family: str = Field(
        description="Pattern family (one of 15, e.g. center, donut, edge_ring, edge_loc, loc, scratch, random)"
    )
    location: str = Field(description="Where on the wafer: global, center, mid or edge (equal-area radial thirds)")
    severity: str = Field(
        description="Fail density inside the pattern region: low (< 20 %), med (20-50 %) or high (>= 50 %)"
    )
    refinement: str | None = Field(
        default=None, description="Octant, scratch orientation, side or direction where the family needs it; else null"
    )
    confidence: float = Field(description="Calibrated probability that the family is right, a fraction 0-1")
    level_confidence: dict[str, float] = Field(
        description="Calibrated probability 0-1 that the location and the severity are right"
    )
    raw_score: float = Field(description="The classifier's uncalibrated score (for comparison between versions)")
    explanation: PatternExplanationOut = Field(description="Why: summary, features and the region found")


CLASSIFY_EXAMPLE: dict[str, Any] = {
    "wafer_id": "W03",
    "lot_id": "LOT42",
    "snapshot_job_id": "job_01JD8Y3V4K6Q2M9T0B7C5N1XWZ",
    "pattern_classes": [PATTERN_EXAMPLE],
    "classifier_version": "stratum-patterns-3+cal.2",
    "latency_ms": 38.2,
}


class ClassifyOut(ApiModel):
    model_config = examples(CLASSIFY_EXAMPLE)
    wafer_id: str | None = Field(description="The wafer classified (as given or found in the map)")
    lot_id: str | None = Field(default=None, description="The lot, when the map came from the lake (or the STDF file)")
    snapshot_job_id: str | None = Field(default=None, description="The snapshot read, when the map came from the lake")
    pattern_classes: list[PatternOut] = Field(description="highest confidence first; empty: no pattern")
    classifier_version: str = Field(description="Version of the classifier that answered")
    latency_ms: float = Field(description="Server time spent classifying, milliseconds")


class BatchItemError(ApiModel):
    wafer_id: str | None = Field(description="The wafer of the map that failed (null when it named none)")
    error: dict[str, Any] = Field(description="Why: the problem+json fields (code, title, detail, status)")


class BatchOut(ApiModel):
    model_config = examples(
        {
            "results": [
                CLASSIFY_EXAMPLE,
                {"wafer_id": "W04", "error": {"code": "bad_request", "status": 400, "detail": "grid is empty"}},
            ],
            "classifier_version": "stratum-patterns-3+cal.2",
        }
    )
    results: list[ClassifyOut | BatchItemError] = Field(
        description="One entry per map in request order: a classification, or the error of that map"
    )
    classifier_version: str = Field(description="Version of the classifier that answered")


class PatternClassOut(ApiModel):
    model_config = examples(
        {
            "class_id": "edge_loc/edge/high/ne",
            "family": "edge_loc",
            "location": "edge",
            "severity": "high",
            "refinement": "ne",
            "parent": "edge_loc/edge/high",
            "description": "A localised cluster of failing dies on one part of the wafer edge.",
            "likely_causes": ["wafer handling damage", "edge bead removal issues"],
            "example_url": "/v1/patterns/edge_loc/edge/high/ne/example.png",
        }
    )
    class_id: str = Field(description="Pattern class, `family/location/severity[/refinement]`")
    family: str = Field(description="Pattern family")
    location: str = Field(description="Where on the wafer")
    severity: str = Field(description="low, med or high (fail density inside the region)")
    refinement: str | None = Field(default=None, description="A finer distinction of the class; null when none")
    parent: str = Field(description="The class one level up the taxonomy")
    description: str = Field(description="What the pattern looks like")
    likely_causes: list[str] = Field(description="Process causes that typically produce it")
    example_url: str = Field(description="Path of an example map of the class (PNG)")


class QuotaOut(ApiModel):
    key_id: str = Field(description="Public id of the key")
    quota: str = Field(description="What is counted: classifications")
    limit: int | None = Field(description="per calendar month (UTC); null: no quota")
    used: int = Field(description="Counted this calendar month (UTC)")
    remaining: int | None = Field(description="limit - used; null: no quota")
    resets_at: str = Field(description=f"Start of the next calendar month; {D_TIME}")


class UsageOut(ApiModel):
    model_config = examples(
        {
            "group_by": "day",
            "items": [{"day": "2026-12-04", "requests": 412, "classifications": 25}],
            "quotas": [
                {
                    "key_id": "k7q2m4xz9abc",
                    "quota": "classifications",
                    "limit": 10000,
                    "used": 25,
                    "remaining": 9975,
                    "resets_at": "2027-01-01T00:00:00Z",
                }
            ],
        }
    )
    group_by: Literal["day", "route", "key"] = Field(description="How items are grouped, as requested")
    items: list[dict[str, Any]] = Field(description="one row per group: the group value, requests, classifications")
    quotas: list[QuotaOut] = Field(description="classification quota of every key of the workspace")


# ---- OpenAPI helpers for routes -------------------------------------------------------------------


def ok(example: Any, description: str, status: int = 200, media: str = "application/json") -> dict[int | str, dict]:
    """OpenAPI ``responses`` entry: the success answer with its description and an example."""
    return {status: {"description": description, "content": {media: {"example": example}}}}


def binary(description: str) -> dict[str, Any]:
    """OpenAPI media type of a binary answer (image, CSV, Arrow, file): no JSON example, a described schema."""
    return {"schema": {"type": "string", "format": "binary", "description": description}}
