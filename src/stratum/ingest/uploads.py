"""Uploads: API bodies and presigned uploads become drop objects with an ingest job waiting for them.

The HTTP routes only read the request and call this service once. It owns the drop-key layout of
uploads (``<drop prefix><ws>/uploads/<job_id>/<name>``), the local signed upload URLs (the local
stand-in for S3 presigned PUTs), and what happens when storage fails: a full disk answers
``InsufficientStorage`` (507), removes what was written and leaves no queued job behind.

- ``upload``: a spooled body is validated (container, FAR) and stored; its job is created first, with
  a claim on the key, so the drop processor (S3 notification, local background task) runs that job.
- ``presign``: the job is created now with ``expires_at``; the upload must arrive before then. A
  declared size above ``input_limits.max_presign_bytes`` is refused.
- ``receive``: the local presigned PUT. Single-use: the job is marked received with a versioned
  write before a byte is stored, so a second PUT (even a concurrent one) gets 409. The body streams
  into the drop store's atomic writer (nothing buffered in memory, nothing visible until complete).
- ``expire_uploads`` / ``sweep``: presigned jobs whose URL expired ``input_limits.presign_grace_seconds``
  ago with nothing uploaded fail with ``upload_expired`` (status ``failed``: the job model has no separate
  expired status). ``stratum serve`` sweeps every minute; on AWS a schedule invokes the ingest function.
  A file that still arrives later is not ingested: its job stays failed and the drop processor moves the
  file to ``failed/`` with an ``.error.json`` saying so.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from stratum.auth import signed_urls
from stratum.catalog import key_claim
from stratum.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    no_space,
)
from stratum.ids import new_job_id
from stratum.models import Job, JobError, JobSource
from stratum.settings import Settings
from stratum.stdf.errors import StdfError
from stratum.stdf.reader import check_header
from stratum.stdf.source import decompression_limits
from stratum.storage.metadata import ConditionFailed
from stratum.storage.objectstore import ObjectStore

from .drop import COMPRESSED_SUFFIXES, STDF_SUFFIXES, DropObject, DropProcessor, is_stdf_like
from .idempotency import Idempotency, fingerprint, in_progress
from .service import IngestService
from .watcher import LOCAL_BUCKET

log = logging.getLogger("stratum.ingest.uploads")

_SAFE = re.compile(r"[^A-Za-z0-9._+\- ]")


def full(where: str) -> InsufficientStorage:
    return InsufficientStorage(f"no space left on the server's storage while {where}; nothing was kept, try later")


class Forbidden(BadRequest):
    status, code, title = 403, "forbidden", "Forbidden"


def safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name.strip()
    base = _SAFE.sub("_", base)[:200].strip(" .")
    if not base:
        raise BadRequest("filename is empty after removing unsafe characters")
    return base


def check_stdf_name(name: str) -> None:
    # the drop processor ignores other names: the job would stay queued forever
    if not is_stdf_like(name):
        raise BadRequest(
            "filename must end in .stdf or .std (optionally .gz, .bz2 or .zip) so the drop folder ingests it"
        )


CONTAINER_SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "zip": ".zip"}


def stdf_name(name: str, container: str | None) -> str:
    """``name`` when the drop processor takes it (the reader sniffs the container itself); else
    ``<name>.stdf`` plus the content's container suffix (a ``.gz``/``.bz2``/``.zip`` ending is replaced)."""
    if is_stdf_like(name):
        return name
    suffix = CONTAINER_SUFFIX.get(container or "", "")
    stem = name
    for c in COMPRESSED_SUFFIXES:
        if stem.lower().endswith(c):
            stem = stem[: -len(c)]
            break
    if not stem.lower().endswith(STDF_SUFFIXES):
        stem += ".stdf"
    return stem + suffix


class Received:
    """A presigned upload being received: ``write`` chunks, then ``finish`` (or ``abort``)."""

    def __init__(self, svc: UploadService, job: Job, version: int, limit: int) -> None:
        self.svc, self.job, self.version, self.limit = svc, job, version, limit
        self.n = 0
        self._writer: IO[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        self.n += len(chunk)
        if self.n > self.limit:
            raise PayloadTooLarge(f"upload exceeds the {self.limit} bytes this upload URL allows")
        if self._writer is None:
            self._writer = self.svc.drop.open_write(self.job.source.key or "")
        try:
            self._writer.write(chunk)
        except OSError as exc:
            if no_space(exc):
                raise full("receiving the upload") from None
            raise

    def finish(self) -> Job:
        if self.n == 0:
            raise BadRequest("the request body is empty: send the STDF file as application/octet-stream")
        assert self._writer is not None
        try:
            self._writer.close()
        except OSError as exc:
            if no_space(exc):
                raise full("receiving the upload") from None
            raise
        self.svc.after_store(self.job.workspace, self.job.source.key or "")
        return self.job

    def abort(self, exc: BaseException) -> None:
        """Nothing stays: the partial object is discarded and the job fails (its URL is spent)."""
        if self._writer is not None:
            self._writer.abort()  # type: ignore[attr-defined]
        code = "no_space" if isinstance(exc, InsufficientStorage) else "upload_failed"
        detail = getattr(exc, "detail", None) or type(exc).__name__
        self.svc.fail(self.job.workspace, self.job.job_id, JobError(code=code, message=f"the upload failed: {detail}"))


class UploadService:
    def __init__(
        self,
        settings: Settings,
        ingest: IngestService,
        drop: ObjectStore,
        drop_prefix: str,
        processor: DropProcessor,
        idempotency: Idempotency | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.catalog = ingest.catalog
        self.drop = drop
        self.drop_prefix = drop_prefix
        self.processor = processor
        self.local = settings.backend == "local"
        self.idempotency = idempotency

    # -- layout -----------------------------------------------------------------------------------
    def key(self, ws: str, job_id: str, name: str) -> str:
        return f"{self.drop_prefix}{ws}/uploads/{job_id}/{name}"

    @property
    def bucket(self) -> str:
        return LOCAL_BUCKET if self.local else self.settings.aws.drop_bucket

    def _new_job(
        self,
        ws: str,
        name: str,
        kind: str,
        size: int | None,
        expires_at: datetime | None = None,
        job_id: str | None = None,
    ) -> Job:
        job_id = job_id or new_job_id()
        key = self.key(ws, job_id, name)
        job, _ = self.ingest.create_job(
            ws,
            name,
            JobSource(kind=kind, bucket=self.bucket, key=key),  # type: ignore[arg-type]  # 'upload' or 'presign'
            size=size,
            claims=[key_claim(ws, self.bucket, key)],
            job_id=job_id,
            expires_at=expires_at,
        )
        return job

    # -- direct uploads ---------------------------------------------------------------------------
    def upload(self, ws: str, filename: str, body: IO[bytes], size: int, job_id: str | None = None) -> Job:
        """Store a spooled request body as a drop object with its queued job. Validates first (422).

        The container (plain, gzip, bzip2, zip) is read from the content, not the name: a name that does
        not say it (``lot.zip``, ``wafer.dat``) is stored as ``<name>.stdf[.<container>]`` so the drop
        processor picks it up."""
        name = safe_name(filename)
        if size == 0:
            raise BadRequest("the request body is empty: send the STDF file as application/octet-stream")
        try:
            header = check_header(body, decompression_limits(self.settings.input_limits))
        except StdfError as exc:
            raise Unprocessable(str(exc), error=exc.to_dict()) from None
        body.seek(0)
        name = stdf_name(name, header["compression"])
        job = self._new_job(ws, name, "upload", size, job_id=job_id)
        key = job.source.key or ""
        try:
            with self.drop.open_write(key) as w:
                shutil.copyfileobj(body, w, 1 << 20)
        except OSError as exc:
            self.catalog.discard_job(job, [key_claim(ws, self.bucket, key)])
            if no_space(exc):
                raise full("storing the upload") from None
            raise
        return job

    # -- Idempotency-Key (stratum.ingest.idempotency) -----------------------------------------------
    def catalog_has(self, ws: str, job_id: str) -> bool:
        try:
            self.catalog.get_job(ws, job_id)
            return True
        except NotFound:
            return False

    def upload_once(
        self, ws: str, api_key_id: str, idem_key: str, filename: str, body: IO[bytes], size: int
    ) -> tuple[Job, bool]:
        """``upload`` under an Idempotency-Key: (the job, whether it is an earlier request's)."""
        assert self.idempotency is not None
        job_id = new_job_id()
        fp = fingerprint(safe_name(filename), size)
        first = self.idempotency.claim(ws, api_key_id, "upload", idem_key, fp, job_id)
        if first:
            if not self.catalog_has(ws, first):
                raise in_progress(idem_key)
            return self.catalog.get_job(ws, first), True
        try:
            return self.upload(ws, filename, body, size, job_id=job_id), False
        except BaseException:
            self.idempotency.release(ws, api_key_id, "upload", idem_key)
            raise

    def presign_once(
        self, ws: str, api_key_id: str, idem_key: str, filename: str, size: int | None, base_url: str
    ) -> tuple[dict, bool]:
        """``presign`` under an Idempotency-Key: a replay gets the first request's job with a fresh URL."""
        assert self.idempotency is not None
        job_id = new_job_id()
        fp = fingerprint(safe_name(filename), size)
        first = self.idempotency.claim(ws, api_key_id, "presign", idem_key, fp, job_id)
        if first:
            if not self.catalog_has(ws, first):
                raise in_progress(idem_key)
            return self.presign(ws, filename, size, base_url, job_id=first), True
        try:
            return self.presign(ws, filename, size, base_url, job_id=job_id), False
        except BaseException:
            self.idempotency.release(ws, api_key_id, "presign", idem_key)
            raise

    def after_store(self, ws: str, key: str) -> None:
        """Local runtime: ingest right away (on AWS the S3 notification does it)."""
        if not self.local:
            return
        info = self.drop.head(key)
        if info is not None:
            self.processor.process(
                DropObject(bucket=LOCAL_BUCKET, key=key, etag=info.etag, version_id=info.version_id, size=info.size)
            )

    # -- presigned uploads ------------------------------------------------------------------------
    def presign(self, ws: str, filename: str, size: int | None, base_url: str, job_id: str | None = None) -> dict:
        name = safe_name(filename)
        check_stdf_name(name)
        lim = self.settings.input_limits
        if size is not None and size > lim.max_presign_bytes:
            raise PayloadTooLarge(
                f"declared size {size} bytes exceeds the limit of {lim.max_presign_bytes} bytes for one upload"
            )
        seconds = lim.presign_seconds
        expires = int(time.time()) + seconds
        if job_id is not None and self.catalog_has(ws, job_id):  # a replay: the same job, a fresh URL
            job = self.catalog.get_job(ws, job_id)
        else:
            job = self._new_job(ws, name, "presign", size, datetime.fromtimestamp(expires, UTC), job_id=job_id)
        key = job.source.key or ""
        url = self.drop.presign_put(
            key, expires_seconds=seconds, content_type="application/octet-stream", content_length=size
        )
        if url is None:  # local runtime: our own signed upload route
            sig = self._sign(ws, job.job_id, expires)
            url = f"{base_url}/v1/uploads/{job.job_id}/content?workspace={ws}&expires={expires}&signature={sig}"
        return {
            "upload_url": url,
            "headers": {"Content-Type": "application/octet-stream"},
            "key": key,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            "job": job,
        }

    def _sign(self, ws: str, job_id: str, expires: int) -> str:
        return signed_urls.sign(signed_urls.local_secret(self.settings.data_dir), "upload", ws, job_id, expires)

    def receive(self, ws: str, job_id: str, expires: int, signature: str, declared: int | None) -> Received:
        """Authorise a local presigned PUT and claim it (single use)."""
        if not self.local:
            raise NotFound("not found")
        secret = signed_urls.local_secret(self.settings.data_dir)
        if not signed_urls.verify(secret, signature, "upload", ws, job_id, expires):
            raise Forbidden("invalid upload URL signature")
        if expires < time.time():
            raise Forbidden("this upload URL has expired; request a new one")
        job, version = self.catalog.get_job_v(ws, job_id)
        if job.source.kind != "presign" or not job.source.key:
            raise NotFound(f"upload {job_id!r} not found")
        lim = self.settings.input_limits
        limit = min(max(job.size or 0, self.settings.max_upload_bytes), lim.max_presign_bytes)
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"upload of {declared} bytes exceeds the {limit} bytes this upload URL allows")
        used = Conflict("this upload URL has already been used; request a new one for another upload")
        if job.status != "queued" or job.received_at is not None or self.drop.exists(job.source.key):
            raise used
        job.received_at = datetime.now(UTC)
        try:
            version = self.catalog.save_job(job, version)
        except ConditionFailed:
            raise used from None
        return Received(self, job, version, limit)

    def fail(self, ws: str, job_id: str, error: JobError) -> None:
        job, version = self.catalog.get_job_v(ws, job_id)
        if job.terminal:
            return
        job.status, job.error, job.finished_at = "failed", error, datetime.now(UTC)
        try:
            self.catalog.save_job(job, version)
        except ConditionFailed:
            log.info("job %s changed while failing it; left as is", job_id)

    def expire_uploads(self, ws: str, now: datetime | None = None, orphans_before: datetime | None = None) -> list[str]:
        """Fail the presigned jobs of ``ws`` whose URL expired with nothing uploaded; with
        ``orphans_before`` (a server's start), also direct uploads created before it whose object was
        never stored (the process died while receiving it)."""
        now = now or datetime.now(UTC)
        grace = timedelta(seconds=self.settings.input_limits.presign_grace_seconds)
        out = []
        for job in self._queued(ws):
            if job.source.kind == "upload" and orphans_before is not None and job.created_at < orphans_before:
                if job.source.key and not self.drop.exists(job.source.key):
                    self.fail(
                        ws,
                        job.job_id,
                        JobError(
                            code="upload_interrupted",
                            message="the server stopped while receiving this upload; nothing was stored: "
                            "upload the file again",
                        ),
                    )
                    out.append(job.job_id)
                continue
            if job.source.kind != "presign" or job.expires_at is None or job.expires_at + grace >= now:
                continue
            if job.received_at is not None or (job.source.key and self.drop.exists(job.source.key)):
                continue
            self.fail(
                ws,
                job.job_id,
                JobError(
                    code="upload_expired",
                    message=f"no file was uploaded before the upload URL expired at {job.expires_at.isoformat()}",
                ),
            )
            out.append(job.job_id)
        return out

    def sweep(self, now: datetime | None = None, orphans_before: datetime | None = None) -> dict[str, list[str]]:
        """``expire_uploads`` over every workspace: ``{workspace: [failed job ids]}`` (workspaces with none
        left out). Run by ``stratum serve`` and, on AWS, by the ingest function on a schedule."""
        out: dict[str, list[str]] = {}
        for ws in self.catalog.list_workspaces():
            failed = self.expire_uploads(ws, now=now, orphans_before=orphans_before)
            if failed:
                out[ws] = failed
        return out

    def _queued(self, ws: str) -> Iterator[Job]:
        cursor = None
        while True:
            jobs, cursor = self.catalog.list_jobs(ws, status="queued", limit=200, cursor=cursor)
            yield from jobs
            if cursor is None:
                return
