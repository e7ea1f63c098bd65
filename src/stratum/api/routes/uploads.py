"""Uploads: raw STDF bodies, presigned uploads for large files, and inspect-without-ingest."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from stratum.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable
from stratum.ids import new_job_id
from stratum.ingest.drop import DropObject, is_stdf_like, key_claim
from stratum.ingest.idempotency import fingerprint, in_progress
from stratum.ingest.inspect import inspect_input
from stratum.ingest.watcher import LOCAL_BUCKET
from stratum.models import JobSource
from stratum.stdf.errors import StdfError
from stratum.stdf.reader import check_header

from ..problems import ApiProblem
from ..schemas import InspectOut, JobOut, PresignOut, PresignRequest, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["uploads"])

_SAFE = re.compile(r"[^A-Za-z0-9._+\- ]")
PRESIGN_SECONDS = 3600
ERRORS = problem_responses(400, 401, 403, 413, 422, 429)


def safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name.strip()
    base = _SAFE.sub("_", base)[:200].strip(" .")
    if not base:
        raise BadRequest("filename is empty after removing unsafe characters")
    return base


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes; use "
            "POST /v1/uploads/presign for large files"
        )
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLarge(
                f"upload exceeds the limit of {limit} bytes; use POST /v1/uploads/presign for large files"
            )
    if not buf:
        raise BadRequest("the request body is empty: send the STDF file as application/octet-stream")
    return bytes(buf)


def _check_stdf_name(name: str) -> None:
    if not is_stdf_like(name):
        raise BadRequest(
            "filename must end in .stdf or .std (optionally .gz, .bz2 or .zip) so the drop folder ingests it"
        )


def _validate_stdf(data: bytes) -> None:
    try:
        check_header(data)
    except StdfError as exc:
        raise Unprocessable(str(exc), error=exc.to_dict()) from None


def _drop_key(rt, ws: str, job_id: str, name: str) -> str:
    return f"{rt.drop_prefix}{ws}/uploads/{job_id}/{name}"


def _bucket(rt) -> str:
    return rt.settings.aws.drop_bucket if rt.settings.backend == "aws" else LOCAL_BUCKET


def _process_local(request: Request, ws: str, key: str) -> None:
    """Local runtime: ingest right away (on AWS the S3 notification does it)."""
    drop = request.app.state.drop
    info = request.app.state.runtime.drop.head(key)
    if info is not None:
        drop.process(
            DropObject(bucket=LOCAL_BUCKET, key=key, etag=info.etag, version_id=info.version_id, size=info.size)
        )


# the raw STDF request body, documented for OpenAPI (FastAPI reads it from the Request, not a model)
_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _job_out(job) -> JobOut:
    return JobOut.model_validate(job.public())


def _first_job(request: Request, ws: str, job_id: str, key: str, response: Response):
    """The job of the earlier request with this Idempotency-Key (a replay)."""
    try:
        job = request.app.state.runtime.catalog.get_job(ws, job_id)
    except NotFound:
        raise in_progress(key) from None
    response.headers["Idempotent-Replayed"] = "true"
    return job


@router.post(
    "/v1/uploads",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Upload an STDF file (raw body; plain, gzip or bzip2) and start its ingest job",
    openapi_extra=_BINARY_BODY,
)
async def upload(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    filename: str = Query(..., min_length=1, max_length=255, description="Original file name"),
    principal: Principal = Depends(require("upload", "uploads")),
) -> JobOut:
    rt = request.app.state.runtime
    name = safe_name(filename)
    _check_stdf_name(name)  # the drop processor ignores other names: the job would stay queued forever
    data = await read_body(request, rt.settings.max_upload_bytes)
    _validate_stdf(data)
    ws = principal.workspace
    job_id = new_job_id()
    idem = request.headers.get("idempotency-key")
    first = idem and rt.idempotency.claim(ws, principal.key_id, "upload", idem, fingerprint(name, len(data)), job_id)
    if first:
        job = _first_job(request, ws, first, idem, response)
    else:
        key = _drop_key(rt, ws, job_id, name)
        try:
            job, _ = rt.ingest.create_job(
                ws,
                name,
                JobSource(kind="upload", bucket=_bucket(rt), key=key),
                size=len(data),
                claims=[key_claim(ws, _bucket(rt), key)],
                job_id=job_id,
            )
            rt.drop.put_bytes(key, data, content_type="application/octet-stream")
        except BaseException:
            if idem:
                rt.idempotency.release(ws, principal.key_id, "upload", idem)
            raise
        if rt.settings.backend == "local":
            background.add_task(_process_local, request, ws, key)
    # behind API Gateway the app is mounted under the stage prefix (root_path): the link must carry it
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/v1/jobs/{job.job_id}"
    return _job_out(job)


def _local_secret(rt) -> bytes:
    """Signing key for local upload URLs, kept in the data directory (created once, mode 0600)."""
    path = rt.settings.data_dir / ".upload-signing-key"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()


def _sign(secret: bytes, ws: str, job_id: str, expires: int) -> str:
    return hmac.new(secret, f"{ws}:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


@router.post(
    "/v1/uploads/presign",
    response_model=PresignOut,
    responses=ERRORS,
    summary="A URL to PUT a large STDF file to (S3 presigned URL; on the local runtime an equivalent "
    "signed upload URL); its ingest job is created now and runs when the file lands",
)
def presign(
    request: Request,
    response: Response,
    body: PresignRequest,
    principal: Principal = Depends(require("upload", "uploads")),
) -> PresignOut:
    rt = request.app.state.runtime
    name = safe_name(body.filename)
    _check_stdf_name(name)
    ws = principal.workspace
    job_id = new_job_id()
    idem = request.headers.get("idempotency-key")
    first = idem and rt.idempotency.claim(ws, principal.key_id, "presign", idem, fingerprint(name, body.size), job_id)
    if first:  # the same upload URL again (a new expiry) for the first request's job
        job = _first_job(request, ws, first, idem, response)
        key = job.source.key
    else:
        key = _drop_key(rt, ws, job_id, name)
        try:
            job, _ = rt.ingest.create_job(
                ws,
                name,
                JobSource(kind="presign", bucket=_bucket(rt), key=key),
                size=body.size,
                claims=[key_claim(ws, _bucket(rt), key)],
                job_id=job_id,
            )
        except BaseException:
            if idem:
                rt.idempotency.release(ws, principal.key_id, "presign", idem)
            raise
    expires = int(time.time()) + PRESIGN_SECONDS
    url = rt.drop.presign_put(key, expires_seconds=PRESIGN_SECONDS, content_type="application/octet-stream")
    headers = {"Content-Type": "application/octet-stream"}
    if url is None:  # local runtime: our own signed upload route
        base = (rt.settings.public_base_url or str(request.base_url)).rstrip("/")
        sig = _sign(_local_secret(rt), ws, job.job_id, expires)
        url = f"{base}/v1/uploads/{job.job_id}/content?workspace={ws}&expires={expires}&signature={sig}"
    return PresignOut(
        upload_url=url,
        headers=headers,
        key=key,
        expires_at=datetime.fromtimestamp(expires, UTC).isoformat(),
        job=_job_out(job),
    )


@router.put(
    "/v1/uploads/{job_id}/content",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Local runtime only: the target of a presigned upload URL (authorised by its signature)",
    openapi_extra=_BINARY_BODY,
)
async def presigned_content(
    request: Request,
    background: BackgroundTasks,
    job_id: str,
    workspace: str = Query(..., max_length=63),
    expires: int = Query(...),
    signature: str = Query(..., max_length=128),
) -> JobOut:
    rt = request.app.state.runtime
    if rt.settings.backend != "local":
        raise NotFound("not found")
    # compare bytes: compare_digest raises TypeError on non-ASCII str (a forged URL must be a 403, not a 500)
    if not hmac.compare_digest(_sign(_local_secret(rt), workspace, job_id, expires).encode(), signature.encode()):
        raise ApiProblem(403, "forbidden", "Forbidden", "invalid upload URL signature")
    if expires < time.time():
        raise ApiProblem(403, "forbidden", "Forbidden", "this upload URL has expired; request a new one")
    job = rt.catalog.get_job(workspace, job_id)
    if job.source.kind != "presign" or not job.source.key:
        raise NotFound(f"upload {job_id!r} not found")
    if job.status != "queued" or rt.drop.exists(job.source.key):
        raise ApiProblem(409, "conflict", "Conflict", "this upload URL has already been used")
    data = await read_body(request, max(rt.settings.max_upload_bytes, job.size or 0))
    rt.drop.put_bytes(job.source.key, data, content_type="application/octet-stream")
    background.add_task(_process_local, request, workspace, job.source.key)
    return _job_out(job)


@router.post(
    "/v1/uploads/inspect",
    response_model=InspectOut,
    responses=ERRORS,
    summary="What an STDF file holds (lot, part type, tester, record counts, wafers, problems), without ingesting it",
    openapi_extra=_BINARY_BODY,
)
async def inspect(
    request: Request,
    filename: str = Query("upload.stdf", min_length=1, max_length=255),
    principal: Principal = Depends(require("upload", "uploads")),
):
    rt = request.app.state.runtime
    data = await read_body(request, rt.settings.max_upload_bytes)
    info = inspect_input(data, safe_name(filename), size=len(data))
    if (
        not info["valid"]
        and info.get("problems")
        and info["problems"][0].get("code") in ("not_stdf", "unsupported_version", "bad_compression", "bad_record")
    ):
        first = info["problems"][0]
        raise Unprocessable(first["message"], error=first)
    del principal
    return JSONResponse(info)
