"""The drop folder: objects landing under ``<drop prefix><workspace>/...`` become ingest jobs.

Used by the ingest Lambda (S3 ObjectCreated → SQS) and by the local watcher on ``<data-dir>/incoming``.
An object is identified by (bucket, key, version id or ETag): delivering it twice yields one job. An
object written by an API upload already has a queued job (claimed by key), which is the one that runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote_plus

from stratum.catalog import key_claim, object_claim
from stratum.lake.layout import InvalidWorkspace, check_workspace
from stratum.models import Job, JobSource
from stratum.storage.objectstore import ObjectStore

from .service import IngestService, InputHandle

__all__ = ["DropObject", "DropProcessor", "RetryableIngestError", "event_key", "is_stdf_like"]

log = logging.getLogger("stratum.ingest.drop")

STDF_SUFFIXES = (".stdf", ".std")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip")
RETRYABLE = frozenset({"internal_error", "input_unreadable", "worker_died"})
MAX_ATTEMPTS = 3


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
        """Ingest one dropped object (``deadline``: see ``IngestService.run_job``)."""
        ws = self.accepts(o)
        if ws is None:
            return None
        if o.etag is None and o.version_id is None:
            info = self.drop.head(o.key)
            if info is None:
                log.warning("object %s is gone; nothing to ingest", o.key)
                return None
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
        handle = InputHandle(open=lambda: self.drop.open_read(o.key), size=o.size)
        job = self.ingest.run_job(
            ws, job_id, handle, retry_failed=RETRYABLE, max_attempts=MAX_ATTEMPTS, deadline=deadline
        )
        if job.status == "failed" and job.error and job.error.code in RETRYABLE and job.attempts < MAX_ATTEMPTS:
            raise RetryableIngestError(f"job {job.job_id} failed with {job.error.code}; will be retried")
        return job
