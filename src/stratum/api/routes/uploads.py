"""Uploads: raw STDF bodies, presigned uploads for large files, and inspect-without-ingest.

Each route reads the request (the body spooled to a temporary file, never held whole in memory) and
makes one call to the upload service (``stratum.ingest.uploads``); parsing runs in the threadpool so
the event loop keeps serving other requests.
"""

from __future__ import annotations

import tempfile
from typing import IO

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from stratum.errors import BadRequest, PayloadTooLarge, Unprocessable

from .._fastapi import DeclaredRoute
from ..params import JobId, Signature, SignedExpires, SignedWorkspace
from ..schemas import InspectOut, JobOut, PresignOut, PresignRequest, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["uploads"], route_class=DeclaredRoute)

ERRORS = problem_responses(400, 401, 403, 409, 413, 422, 429, 507)
SPOOL_MEMORY = 1 << 20  # request bodies past this size spool to a temporary file


def _too_large(limit: int, n: int | None = None) -> PayloadTooLarge:
    size = f"upload of {n} bytes" if n is not None else "upload"
    return PayloadTooLarge(f"{size} exceeds the limit of {limit} bytes; use POST /v1/uploads/presign for large files")


async def spool_body(request: Request, limit: int) -> tuple[IO[bytes], int]:
    """The request body in a temporary file (in memory while small), at most ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, int(declared))
    rt = request.app.state.runtime
    spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY, dir=rt.settings.tmp_dir)  # noqa: SIM115 - closed by caller
    n = 0
    try:
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise _too_large(limit)
            spool.write(chunk)
        spool.seek(0)
    except OSError as exc:
        spool.close()
        from stratum.ingest.uploads import full, no_space  # not on the import path (it loads the STDF reader)

        if no_space(exc):
            raise full("receiving the upload") from None
        raise
    except BaseException:
        spool.close()
        raise
    return spool, n


async def form_file(request: Request, spool: IO[bytes]) -> tuple[IO[bytes], int, str | None]:
    """The ``file`` part of a spooled multipart/form-data body: (file, size, its filename)."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def chunks():
        while chunk := await run_in_threadpool(spool.read, 1 << 20):
            yield chunk

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise BadRequest(f"multipart/form-data body: {exc.message}") from None
    part = form.get("file")
    if not isinstance(part, UploadFile):
        fields = ", ".join(sorted(form.keys())) or "none"
        raise BadRequest(
            f"multipart/form-data upload needs a file part named 'file' (curl -F file=@lot.stdf); got {fields}"
        )
    part.file.seek(0, 2)
    size = part.file.tell()
    part.file.seek(0)
    return part.file, size, part.filename


async def upload_body(
    request: Request, limit: int, filename: str | None, default: str | None = None
) -> tuple[IO[bytes], int, str]:
    """The uploaded file and its name, from a raw body (``?filename=``) or a multipart form's ``file`` part."""
    body, size = await spool_body(request, limit)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        with body:
            body, size, part_name = await form_file(request, body)
        filename = filename or part_name
    filename = filename or default
    if not filename:
        body.close()
        raise BadRequest("filename is required: pass ?filename= (or upload a multipart form's file part with a name)")
    return body, size, filename


# the STDF request body, documented for OpenAPI (FastAPI reads it from the Request, not a model)
_BINARY = {
    "schema": {
        "type": "string",
        "format": "binary",
        "description": "The STDF V4 file: plain, gzip, bzip2 or zip (detected by content)",
    }
}
_BINARY_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {**_BINARY["schema"], "description": "The STDF file (curl -F file=@lot.stdf)"}
                    },
                }
            },
        },
    }
}


def _job_out(job) -> JobOut:
    return JobOut.model_validate(job.public())


@router.post(
    "/v1/uploads",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Upload an STDF file (raw body or multipart form; plain, gzip, bzip2 or zip) and start its ingest job",
    openapi_extra=_UPLOAD_BODY,
)
async def upload(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    filename: str | None = Query(
        None,
        min_length=1,
        max_length=255,
        description="Original file name; required for a raw body, defaults to the form part's file name",
    ),
    principal: Principal = Depends(require("upload", "uploads")),
) -> JobOut:
    """Store the file and queue its ingest job; the answer (202, `Location: /v1/jobs/{job_id}`) is the queued job.
    Poll the job until it is terminal; a succeeded job publishes a new snapshot of its lot. The body is the file
    itself (`Content-Type: application/octet-stream`, `?filename=` required) or a multipart form with a `file`
    part (`curl -F file=@lot.stdf`). Bytes identical to an earlier upload make a `duplicate` job. Send an
    `Idempotency-Key` header to make retries safe: a repeated key answers the first job
    (`Idempotent-Replayed: true`). Files over the upload limit answer 413: use POST /v1/uploads/presign."""
    rt = request.app.state.runtime
    body, size, filename = await upload_body(request, rt.settings.max_upload_bytes, filename)
    idem = request.headers.get("idempotency-key")
    with body:
        if idem is None:
            job, replayed = await run_in_threadpool(rt.uploads.upload, principal.workspace, filename, body, size), False
        else:
            job, replayed = await run_in_threadpool(
                rt.uploads.upload_once, principal.workspace, principal.key_id, idem, filename, body, size
            )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        background.add_task(rt.uploads.after_store, principal.workspace, job.source.key)
    # behind API Gateway the app is mounted under the stage prefix (root_path): the link must carry it
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/v1/jobs/{job.job_id}"
    return _job_out(job)


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
    """For files too large for a direct upload: answers a URL to PUT the file to (with the headers to send)
    and the ingest job, queued. The job starts when the file lands; if the URL expires unused, the job fails
    with `upload_expired`.
    `Idempotency-Key` works as on POST /v1/uploads."""
    rt = request.app.state.runtime
    base = (rt.settings.public_base_url or str(request.base_url)).rstrip("/")
    idem = request.headers.get("idempotency-key")
    if idem is None:
        out = rt.uploads.presign(principal.workspace, body.filename, body.size, base)
    else:
        out, replayed = rt.uploads.presign_once(
            principal.workspace, principal.key_id, idem, body.filename, body.size, base
        )
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
    return PresignOut(**{**out, "job": _job_out(out["job"])})


@router.put(
    "/v1/uploads/{job_id}/content",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Local runtime only: the target of a presigned upload URL (authorised by its signature; single use)",
    openapi_extra=_BINARY_BODY,
)
async def presigned_content(
    request: Request,
    background: BackgroundTasks,
    job_id: JobId,
    workspace: SignedWorkspace,
    expires: SignedExpires,
    signature: Signature,
) -> JobOut:
    """The local runtime's stand-in for an S3 presigned PUT: call the `upload_url` that presign returned, as is,
    with the file as the body. No API key: the URL's signature authorises one upload of one job until it
    expires (403 otherwise). Answers the job, now queued for ingest."""
    rt = request.app.state.runtime
    declared = request.headers.get("content-length")
    upload = await run_in_threadpool(
        rt.uploads.receive,
        workspace,
        job_id,
        expires,
        signature,
        int(declared) if declared and declared.isdigit() else None,
    )
    try:
        async for chunk in request.stream():  # straight to the drop store's atomic writer
            if chunk:
                await run_in_threadpool(upload.write, chunk)
        job = await run_in_threadpool(upload.finish)
    except BaseException as exc:
        await run_in_threadpool(upload.abort, exc)
        raise
    background.add_task(rt.uploads.after_store, workspace, job.source.key)
    return _job_out(job)


@router.post(
    "/v1/uploads/inspect",
    response_model=InspectOut,
    responses=ERRORS,
    summary="What an STDF file holds (lot, part type, tester, record counts, wafers, problems), without ingesting it",
    openapi_extra=_UPLOAD_BODY,
)
async def inspect(
    request: Request,
    filename: str | None = Query(
        None, min_length=1, max_length=255, description="File name (default: the form part's, else upload.stdf)"
    ),
    principal: Principal = Depends(require("upload", "uploads")),
):
    """Read an STDF file (raw body or multipart `file` part, as for uploads) and describe it without storing or
    ingesting it: MIR metadata (lot, part type, program, tester), record counts, parts passed/failed, sites,
    wafers with their WRR counts, and the problems found. A file that is not STDF, or cannot be decompressed or
    parsed at all, answers 422 with the first problem."""
    rt = request.app.state.runtime
    body, size, filename = await upload_body(request, rt.settings.max_upload_bytes, filename, "upload.stdf")
    if size == 0:
        body.close()
        raise BadRequest("the request body is empty: send the STDF file as application/octet-stream")
    with body:
        from stratum.ingest.inspect import inspect_input  # the STDF reader loads on the first upload
        from stratum.ingest.uploads import safe_name
        from stratum.stdf.source import decompression_limits

        limits = decompression_limits(rt.settings.input_limits)
        info = await run_in_threadpool(inspect_input, body, safe_name(filename), size=size, limits=limits)
    if not info["valid"] and info.get("problems") and info["problems"][0].get("code") in _REFUSED:
        first = info["problems"][0]
        raise Unprocessable(first["message"], error=first)
    del principal
    return info


_REFUSED = (
    "not_stdf",
    "unsupported_version",
    "bad_compression",
    "bad_record",
    "decompression_limit",
    "unsupported_compression",
)
