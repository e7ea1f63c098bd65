"""Domain models stored in the metadata store and returned by the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "partial", "failed", "duplicate"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "partial", "failed", "duplicate"})
PUBLISHED: frozenset[str] = frozenset({"succeeded", "partial"})


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobSource(BaseModel):
    kind: Literal["cli", "upload", "drop", "presign"] = "cli"
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    etag: str | None = None
    path: str | None = None
    archived_key: str | None = None  # where the dropped object went when its job ended (processed/, failed/)


class JobError(BaseModel):
    code: str
    message: str
    offset: int | None = None
    record: str | None = None
    field: str | None = None
    records_before: int | None = None


class JobWarning(BaseModel):
    code: str
    message: str
    count: int = 1
    offset: int | None = None
    summary_count: int | None = None  # summary_mismatch: the file's summary record says this ...
    record_count: int | None = None  # ... and its raw records this


class TableOutput(BaseModel):
    key: str
    rows: int
    bytes: int


class SnapshotMember(BaseModel):
    """A job whose rows are part of a lot snapshot, with the order used for retests across files."""

    job_id: str
    file_num: int
    publish_seq: int
    start_time: int | None = None  # MIR.START_T (epoch s)
    file_name: str | None = None
    tables: list[str] = Field(default_factory=list)  # stored tables the job wrote rows to


class JobOptions(BaseModel):
    accept_truncated: bool = False
    retest_policy: Literal["last", "highest_bin"] = "last"
    test_key: Literal["number_and_name", "number"] = "number_and_name"


class Job(BaseModel):
    job_id: str
    workspace: str
    file_num: int = 0  # workspace-wide file number (integer join key of the job's rows)
    status: JobStatus = "queued"
    source: JobSource = Field(default_factory=JobSource)
    file_name: str
    size: int | None = None
    sha256: str | None = None
    lot_id: str | None = None
    options: JobOptions = Field(default_factory=JobOptions)
    bytes_read: int = 0
    stdf_bytes: int | None = None
    records: int | None = None
    record_counts: dict[str, int] = Field(default_factory=dict)
    rows: dict[str, int] = Field(default_factory=dict)
    parts: int | None = None
    warnings: list[JobWarning] = Field(default_factory=list)
    error: JobError | None = None
    duplicate_of: str | None = None
    outputs: dict[str, TableOutput] = Field(default_factory=dict)
    snapshot: list[SnapshotMember] | None = None  # members of the lot snapshot this job published
    publish_seq: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    attempts: int = 0
    expires_at: datetime | None = None  # presigned uploads: when the URL (and the waiting job) expires
    received_at: datetime | None = None  # presigned uploads: when the one PUT the URL allows began
    owner: str | None = None  # the process running the job: "<host>/<boot id>/<pid>/<process start>"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        """The job as shown to users (API, CLI --json): no internal storage keys."""
        d = self.model_dump(mode="json", exclude={"outputs", "snapshot", "owner"})
        d["source"].pop("path", None)  # a server-side path (CLI ingests) is not the API's business
        d["snapshot_jobs"] = [m.job_id for m in self.snapshot] if self.snapshot else None
        return d


class Lot(BaseModel):
    workspace: str
    lot_id: str
    active_job_id: str
    members: list[SnapshotMember]
    part_type: str | None = None
    program: str | None = None
    tester_type: str | None = None
    node_name: str | None = None
    test_code: str | None = None
    start_time: int | None = None
    finish_time: int | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    next_publish_seq: int = 1
    retest_policy: str | None = None  # the active job's; None on lots published before it was stored
