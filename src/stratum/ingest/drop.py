"""The drop folder: objects landing under ``<drop prefix><workspace>/...`` become ingest jobs.

Used by the ingest Lambda (S3 ObjectCreated → SQS) and by the local watcher on ``<data-dir>/incoming``.
An object is identified by (bucket, key, version id or ETag): delivering it twice yields one job. An
object written by an API upload already has a queued job (claimed by key), which is the one that runs.

When its job has ended the object leaves the drop prefix (``ObjectStore.move``, same store): to
``processed/<rest>`` (succeeded, partial, duplicate) or ``failed/<rest>`` with ``<name>.error.json`` beside
it (failed), ``<rest>`` being the key after the drop prefix. A name already taken there is never replaced:
the job id goes into the name (``lot.<job_id>.stdf``). A job that will be retried stays where it is. The
move is recorded on the job (``source.archived_key``) and by key (``find_move``, for the inbound hook). An
object still under the prefix whose job ended earlier (the process died between the end and the move) is
moved on its next delivery or scan, not ingested again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from stratum.catalog import key_claim, object_claim
from stratum.lake.layout import InvalidWorkspace, check_workspace
from stratum.models import Job, JobSource
from stratum.storage.metadata import ConditionFailed
from stratum.storage.objectstore import ObjectExists, ObjectNotFound, ObjectStore

from .service import IngestService, InputHandle

__all__ = [
    "FAILED_PREFIX",
    "PROCESSED_PREFIX",
    "DropObject",
    "DropProcessor",
    "DropResult",
    "RetryableIngestError",
    "event_key",
    "is_stdf_like",
]

log = logging.getLogger("stratum.ingest.drop")

STDF_SUFFIXES = (".stdf", ".std")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip")
RETRYABLE = frozenset({"internal_error", "input_unreadable", "worker_died"})
MAX_ATTEMPTS = 3
PROCESSED_PREFIX = "processed/"  # where a dropped file goes when its job succeeded, was partial or a duplicate
FAILED_PREFIX = "failed/"  # ... and when it failed, with <name>.error.json beside it
ERROR_SUFFIX = ".error.json"


class RetryableIngestError(RuntimeError):
    """The job failed for a reason that may pass (storage hiccup): let the queue deliver it again."""


def is_stdf_like(key: str) -> bool:
    k = key.lower()
    for c in COMPRESSED_SUFFIXES:
        if k.endswith(c):
            k = k[: -len(c)]
            break
    return k.endswith(STDF_SUFFIXES)


def event_key(raw: str) -> str:
    """S3 event keys are URL-encoded with '+' for spaces."""
    return unquote_plus(raw)


def with_job_id(rest: str, job_id: str) -> str:
    """``dir/lot.stdf.gz`` -> ``dir/lot.<job_id>.stdf.gz``: the job id before the STDF/compression suffixes."""
    head, _, name = rest.rpartition("/")
    low = name.lower()
    cut = len(name)
    for c in COMPRESSED_SUFFIXES:
        if low.endswith(c):
            cut -= len(c)
            low = low[: -len(c)]
            break
    for s in STDF_SUFFIXES:
        if low.endswith(s):
            cut -= len(s)
            break
    if cut <= 0:
        cut = len(name)
    name = f"{name[:cut]}.{job_id}{name[cut:]}"
    return f"{head}/{name}" if head else name


def _iso(t: datetime) -> str:
    """As the API shows times (``...Z``)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def will_retry(job: Job) -> bool:
    """The job failed for a reason that may pass and has attempts left: its object stays for a redelivery."""
    err = job.error
    return job.status == "failed" and err is not None and err.code in RETRYABLE and job.attempts < MAX_ATTEMPTS


@dataclass
class DropResult:
    """What handling one dropped object did: ``job`` (None: not an ingestible object), ``ran`` (the job ran
    in this call; False for a job that had ended before, e.g. on a redelivery or a restart) and
    ``moved_to`` (the key the object was moved to, if it was)."""

    job: Job | None
    ran: bool = False
    moved_to: str | None = None


@dataclass
class DropObject:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None


class DropProcessor:
    def __init__(self, ingest: IngestService, drop: ObjectStore, drop_prefix: str) -> None:
        self.ingest = ingest
        self.drop = drop
        self.prefix = drop_prefix

    def workspace_of(self, key: str) -> str | None:
        """The workspace a drop key belongs to: ``<prefix><ws>/<path>``; a file directly under the
        prefix goes to ``default``. None when the key is outside the prefix or names no valid workspace."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix) :]
        if "/" not in rest:
            return "default"
        ws = rest.split("/", 1)[0]
        try:
            return check_workspace(ws)
        except InvalidWorkspace:
            return None

    def accepts(self, o: DropObject) -> str | None:
        """The workspace if this object should be ingested, else None (and why is logged)."""
        if o.key.endswith("/") or o.size == 0:
            log.info("skipping %s: directory marker or empty object", o.key)
            return None
        if not is_stdf_like(o.key):
            log.info("skipping %s: not an STDF file name (.stdf/.std, optionally .gz/.bz2/.zip)", o.key)
            return None
        ws = self.workspace_of(o.key)
        if ws is None:
            log.info("skipping %s: outside the drop prefix %r or no valid workspace", o.key, self.prefix)
        return ws

    def process(self, o: DropObject, deadline: float | None = None) -> Job | None:
        """Ingest one dropped object (``deadline``: see ``IngestService.run_job``); see ``handle``."""
        return self.handle(o, deadline).job

    def handle(self, o: DropObject, deadline: float | None = None) -> DropResult:
        """Ingest one dropped object, then move it out of the drop prefix if its job ended. Raises
        ``RetryableIngestError`` when the job failed for a reason that may pass (the object stays)."""
        ws = self.accepts(o)
        if ws is None:
            return DropResult(None)
        if o.etag is None and o.version_id is None:
            info = self.drop.head(o.key)
            if info is None:
                log.warning("object %s is gone; nothing to ingest", o.key)
                return DropResult(None)
            o.etag, o.version_id, o.size = info.etag, info.version_id, info.size
        catalog = self.ingest.catalog
        claim = object_claim(ws, o.bucket, o.key, o.version_id or o.etag or "")
        job_id = catalog.find_claim(*claim)
        if job_id is None:
            pre = catalog.find_claim(*key_claim(ws, o.bucket, o.key))
            source = JobSource(kind="drop", bucket=o.bucket, key=o.key, version_id=o.version_id, etag=o.etag)
            name = o.key.rsplit("/", 1)[-1]
            if pre is not None:
                # an API upload or presigned upload created the job before the object existed
                catalog.add_claim(claim, pre)  # another delivery may have won it: the same job either way
                job_id = pre
            else:
                job, _ = self.ingest.create_job(ws, name, source, size=o.size, claims=[claim])
                job_id = job.job_id
        before = catalog.get_job(ws, job_id)
        ended_before = before.terminal and not will_retry(before)
        handle = InputHandle(open=lambda: self.drop.open_read(o.key), size=o.size)
        job = self.ingest.run_job(
            ws, job_id, handle, retry_failed=RETRYABLE, max_attempts=MAX_ATTEMPTS, deadline=deadline
        )
        if will_retry(job):
            raise RetryableIngestError(f"job {job.job_id} failed with {job.error.code}; will be retried")  # type: ignore[union-attr]
        moved = self.archive(o, job) if job.terminal else None
        return DropResult(job, ran=not ended_before, moved_to=moved)

    # -- after the job: processed/ or failed/ ---------------------------------------------------------
    def moved(self, ws: str, bucket: str, key: str) -> dict[str, str] | None:
        """``{"job_id", "to"}`` of the object last moved away from drop key ``key``, if any."""
        return self.ingest.catalog.find_move(ws, bucket, key)

    def archive(self, o: DropObject, job: Job) -> str | None:
        """Move the object of an ended job to processed/ or failed/ (see the module doc); the key it went
        to, or None when it was not moved (gone already, outside the prefix, or replaced by a newer upload,
        which its own delivery will handle)."""
        if not o.key.startswith(self.prefix):
            return None
        info = self.drop.head(o.key)
        if info is None:
            return None  # another delivery moved it
        if (o.version_id and info.version_id != o.version_id) or (not o.version_id and o.etag and info.etag != o.etag):
            log.info("not moving %s: a newer object replaced the one job %s read", o.key, job.job_id)
            return None
        rest = o.key[len(self.prefix) :]
        base = FAILED_PREFIX if job.status == "failed" else PROCESSED_PREFIX
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        names = (rest, with_job_id(rest, job.job_id), with_job_id(rest, f"{job.job_id}.{stamp}"))
        for dst in (base + n for n in names):
            existing = self.drop.head(dst)
            if existing is not None:
                if existing.etag and existing.etag == info.etag and existing.size == info.size:
                    self.drop.delete(o.key)  # the same bytes are there already (a move cut short): done
                    return self._moved(o, job, dst)
                continue
            if job.status == "failed":
                self.drop.put_bytes(dst + ERROR_SUFFIX, self._error_json(o, job, dst), content_type="application/json")
            try:
                self.drop.move(o.key, dst)
            except ObjectExists:
                continue
            except ObjectNotFound:
                return None
            return self._moved(o, job, dst)
        log.warning("could not move %s out of the drop folder: every destination name is taken", o.key)
        return None

    def _moved(self, o: DropObject, job: Job, dst: str) -> str:
        catalog = self.ingest.catalog
        catalog.record_move(job.workspace, o.bucket, o.key, job.job_id, dst)
        for _ in range(3):
            current, version = catalog.get_job_v(job.workspace, job.job_id)
            current.source.archived_key = dst
            try:
                catalog.save_job(current, version)
                job.source.archived_key = dst
                break
            except ConditionFailed:
                continue
        log.info("moved %s to %s (job %s %s)", o.key, dst, job.job_id, job.status)
        return dst

    def _error_json(self, o: DropObject, job: Job, dst: str) -> bytes:
        err = job.error.model_dump(mode="json", exclude_none=True) if job.error else {}
        doc = {
            "job_id": job.job_id,
            "workspace": job.workspace,
            "file_name": job.file_name,
            "dropped_as": o.key,
            "moved_to": dst,
            "status": job.status,
            "error": err,
            "failed_at": _iso(job.finished_at) if job.finished_at else None,
            "moved_at": _iso(datetime.now(UTC)),
        }
        if job.error and job.error.code == "upload_expired":
            doc["note"] = (
                "this file arrived after its upload job had expired, so it was not ingested: drop it into the "
                "drop folder again or request a new upload URL (POST /v1/uploads/presign)"
            )
        return (json.dumps(doc, indent=1) + "\n").encode()
