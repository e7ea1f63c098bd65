"""Object store on S3 (boto3), plus the glue that lets DuckDB and pyarrow read the same objects.

- Keys are stored under ``prefix`` (normalised to end with ``/`` unless empty): key ``raw/a.stdf`` in a
  store with prefix ``lake/`` is ``s3://<bucket>/lake/raw/a.stdf``.
- ``open_write`` streams with a multipart upload (parts of ``part_size``, 8 MiB by default, buffered in
  memory; the part size doubles every 1,000 parts to stay under S3's 10,000-part limit). Nothing is
  visible until ``CompleteMultipartUpload``; ``abort()`` or an exception aborts the upload. Objects
  smaller than one part are sent with a single ``PutObject`` on close. Should an abort itself fail, the
  bucket's ``AbortIncompleteMultipartUpload`` lifecycle rule cleans up the parts.
- ETags are S3's: the MD5 hex for single-part objects, ``<md5-of-md5s>-<n>`` for multipart ones (so
  only single-part ETags equal the local adapter's MD5).
- This module imports boto3 only. pyarrow and duckdb are imported lazily (the API Lambda ships without
  pyarrow).

DuckDB connections that read these URIs must be created with
``duckdb.connect(config=DUCKDB_CONFIG)`` (``autoinstall_known_extensions`` and
``autoload_known_extensions`` off: nothing is ever downloaded), then passed to ``configure_duckdb``,
which loads httpfs **by path** from the ``duckdb_extension_httpfs`` package and creates a scoped
secret. Call it before ``SET enable_external_access=false`` / ``SET lock_configuration=true``.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from stratum.storage.objectstore import (
    LIFECYCLE_TAG,
    AtomicWriter,
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    check_key,
    check_lifecycle,
)

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem

PART_SIZE = 8 * 1024 * 1024
DUCKDB_CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}  # NoSuchBucket is a configuration error: raise it
_FORBIDDEN = {"403", "Forbidden", "AccessDenied"}
MAX_COPY_BYTES = 5 * 1024**3  # CopyObject's limit: larger objects are copied part by part
COPY_PART_BYTES = 256 * 1024**2


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _etag(raw: str | None) -> str | None:
    return raw.strip('"') if raw else None


def httpfs_extension_path(duckdb_version: str) -> Path:
    """The signed ``httpfs.duckdb_extension`` shipped by the ``duckdb_extension_httpfs`` package for
    ``duckdb_version`` (``v1.5.5`` or ``1.5.5``). Never downloads anything."""
    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the duckdb-extension-httpfs package is not installed; cannot read s3:// with DuckDB")
    version = duckdb_version if duckdb_version.startswith("v") else f"v{duckdb_version}"
    base = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    path = base / version / "httpfs.duckdb_extension"
    if not path.is_file():
        have = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
        raise RuntimeError(f"no httpfs extension for DuckDB {version} in {base} (have: {have}); pin matching versions")
    return path


def load_httpfs(con: Any) -> None:
    """LOAD httpfs by path into ``con`` (no INSTALL, no autoload). Idempotent."""
    row = con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()
    if row and row[0]:
        return
    for setting in ("autoinstall_known_extensions", "autoload_known_extensions"):
        with contextlib.suppress(Exception):  # already locked: the caller is responsible (DUCKDB_CONFIG)
            con.execute(f"SET {setting} = false")
    version = con.execute("SELECT library_version FROM pragma_version()").fetchone()[0]
    con.execute(f"LOAD {_sql_str(str(httpfs_extension_path(version)))}")


class _S3Writer(AtomicWriter):
    def __init__(self, store: S3ObjectStore, key: str, content_type: str | None) -> None:
        super().__init__(key)
        self._store = store
        self._client = store.client
        self._full = store._full(key)
        self._content_type = content_type
        self._buf = bytearray()
        self._part_size = store.part_size
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        # mirror s3transfer: with the default checksum policy, declare CRC32 on the upload and pass the
        # per-part checksums back on completion
        self._crc = getattr(store.client.meta.config, "request_checksum_calculation", None) == "when_supported"

    def _write(self, data: memoryview) -> None:
        self._buf += data
        while len(self._buf) >= self._part_size:
            chunk = bytes(self._buf[: self._part_size])
            del self._buf[: self._part_size]
            self._upload_part(chunk)

    def _upload_part(self, chunk: bytes) -> None:
        b = self._store.bucket
        extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if self._crc else {}
        if self._upload_id is None:
            kw = dict(extra)
            if self._content_type:
                kw["ContentType"] = self._content_type
            self._upload_id = self._client.create_multipart_upload(Bucket=b, Key=self._full, **kw)["UploadId"]
        number = len(self._parts) + 1
        resp = self._client.upload_part(
            Bucket=b, Key=self._full, UploadId=self._upload_id, PartNumber=number, Body=chunk, **extra
        )
        part = {"ETag": resp["ETag"], "PartNumber": number}
        if self._crc and "ChecksumCRC32" in resp:
            part["ChecksumCRC32"] = resp["ChecksumCRC32"]
        self._parts.append(part)
        if number % 1000 == 0:
            self._part_size *= 2

    def _commit(self) -> ObjectInfo:
        b = self._store.bucket
        if self._upload_id is None:
            kw: dict[str, Any] = {"ContentType": self._content_type} if self._content_type else {}
            resp = self._client.put_object(Bucket=b, Key=self._full, Body=bytes(self._buf), **kw)
        else:
            if self._buf:
                self._upload_part(bytes(self._buf))
            resp = self._client.complete_multipart_upload(
                Bucket=b, Key=self._full, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buf = bytearray()
        return ObjectInfo(key=self.key, size=self._pos, etag=_etag(resp.get("ETag")), version_id=resp.get("VersionId"))

    def _abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            with contextlib.suppress(ClientError):
                self._client.abort_multipart_upload(Bucket=self._store.bucket, Key=self._full, UploadId=self._upload_id)


class S3ObjectStore(ObjectStore):
    """``endpoint_url`` is for moto / emulators only (path-style addressing is used then). Pass
    ``session`` to control where credentials come from (DuckDB and pyarrow get the same ones)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        session: boto3.session.Session | None = None,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 object store needs a bucket")
        prefix = prefix.lstrip("/")
        if prefix:
            check_key(prefix)
            prefix = prefix.rstrip("/") + "/"
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.part_size = part_size
        self._session = session or boto3.session.Session(region_name=region)
        self._creds_lock = threading.Lock()
        if client is None:
            # emulators: path-style; AWS: virtual-hosted on the regional host (presigned URLs then
            # point at bucket.s3.<region>.amazonaws.com, not the global host that 307-redirects)
            s3cfg: dict[str, Any] = {"addressing_style": "path" if self.endpoint_url else "virtual"}
            cfg = Config(
                signature_version="s3v4",
                s3=s3cfg,
                retries={"mode": "standard", "max_attempts": 5},
                max_pool_connections=32,
            )
            client = self._session.client("s3", region_name=region, endpoint_url=self.endpoint_url, config=cfg)
        self.client = client

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.root_uri()!r})"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _full_prefix(self, prefix: str) -> str:
        if prefix.startswith("/"):
            raise InvalidKey(f"invalid prefix {prefix!r}")
        if prefix:
            check_key(prefix)
        return self.prefix + prefix

    # --- port --------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        kw: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        resp = self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=bytes(data), **kw)
        return ObjectInfo(key=key, size=len(data), etag=_etag(resp.get("ETag")), version_id=resp.get("VersionId"))

    def put_file(self, key: str, path: str, *, lifecycle: str | None = None) -> ObjectInfo:
        full = self._full(key)
        check_lifecycle(lifecycle)
        cfg = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size)
        # x-amz-tagging on PutObject / CreateMultipartUpload: the object never exists untagged
        extra = {"Tagging": urlencode({LIFECYCLE_TAG: lifecycle})} if lifecycle else None
        self.client.upload_file(str(path), self.bucket, full, Config=cfg, ExtraArgs=extra)
        info = self.head(key)
        if info is None:  # pragma: no cover - S3 is strongly consistent for read-after-write
            raise ObjectNotFound(key)
        return info

    def get_bytes(self, key: str) -> bytes:
        with contextlib.closing(self.open_read(key)) as body:
            return body.read()

    def open_read(self, key: str) -> IO[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        return resp["Body"]  # botocore StreamingBody: read(n), iter_chunks(), close()

    def open_write(self, key: str) -> IO[bytes]:
        return self.writer(key)  # type: ignore[return-value]

    def writer(self, key: str, *, content_type: str | None = None) -> _S3Writer:
        """``open_write`` with a content type; ``.result()`` gives the ObjectInfo after close."""
        if key.endswith("/"):
            raise InvalidKey(f"cannot stream into a directory key {key!r}")
        check_key(key)
        return _S3Writer(self, key, content_type)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            if _code(e) in _FORBIDDEN and not self._listed(key, e):
                return None  # S3 answers 403 for a missing key when ListBucket is granted by prefix only
            raise
        return ObjectInfo(
            key=key,
            size=r["ContentLength"],
            etag=_etag(r.get("ETag")),
            version_id=r.get("VersionId"),
            last_modified=r.get("LastModified"),
        )

    def _listed(self, key: str, error: ClientError) -> bool:
        """Whether ``key`` exists, by listing it (re-raises ``error`` when listing is not allowed either)."""
        full = self._full(key)
        try:
            resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        except ClientError:
            raise error from None
        return any(o["Key"] == full for o in resp.get("Contents", ()))

    def _raw_list(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._full_prefix(prefix)
        )
        for page in pages:
            yield from page.get("Contents", ())

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        n = len(self.prefix)
        for obj in self._raw_list(prefix):
            if obj["Key"].endswith("/") and obj["Size"] == 0:
                continue  # "dir/" marker (pyarrow write_dataset, the console)
            yield ObjectInfo(
                key=obj["Key"][n:],
                size=obj["Size"],
                etag=_etag(obj.get("ETag")),
                last_modified=obj.get("LastModified"),
            )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def move(self, key: str, new_key: str) -> ObjectInfo:
        """Copy then delete. On a versioned bucket the delete leaves a delete marker and the source
        version becomes noncurrent (the bucket's lifecycle expires it)."""
        if key.endswith("/") or new_key.endswith("/"):
            raise InvalidKey(f"cannot move a directory key: {key!r} -> {new_key!r}")
        src, dst = self._full(key), self._full(new_key)
        info = self.head(key)
        if info is None:
            raise ObjectNotFound(key)
        if self.head(new_key) is not None:
            raise ObjectExists(new_key)
        source: dict[str, str] = {"Bucket": self.bucket, "Key": src}
        if info.version_id:
            source["VersionId"] = info.version_id  # exactly the version looked at, not a newer upload
        cfg = TransferConfig(multipart_threshold=MAX_COPY_BYTES, multipart_chunksize=COPY_PART_BYTES)
        try:
            self.client.copy(source, self.bucket, dst, Config=cfg)
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        self.client.delete_object(Bucket=self.bucket, Key=src)
        moved = self.head(new_key)
        if moved is None:  # pragma: no cover - S3 is strongly consistent for read-after-write
            raise ObjectNotFound(new_key)
        return moved

    def delete_prefix(self, prefix: str) -> int:
        """Batch-deletes everything under ``prefix`` (markers included); returns the number of objects
        ``list`` would have shown."""
        n = 0
        batch: list[dict[str, str]] = []
        for obj in self._raw_list(prefix):
            if not (obj["Key"].endswith("/") and obj["Size"] == 0):
                n += 1
            batch.append({"Key": obj["Key"]})
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)
        return n

    def _delete_batch(self, batch: builtins.list[dict[str, str]]) -> None:
        resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: {first.get('Message')}"
            )

    # --- engines -----------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def root_uri(self, prefix: str = "") -> str:
        full = self._full_prefix(prefix)
        if full and not full.endswith("/"):
            full += "/"
        return f"s3://{self.bucket}/{full}"

    def arrow_path(self, key: str) -> str:
        """The path of ``key`` for ``arrow_filesystem()`` (``bucket/prefix/key``, no scheme)."""
        return f"{self.bucket}/{self._full(key)}"

    def _frozen_credentials(self) -> Any:
        with self._creds_lock:  # boto3 sessions are not thread-safe
            creds = self._session.get_credentials()
            return creds.get_frozen_credentials() if creds is not None else None

    def _endpoint(self) -> tuple[str, bool] | None:
        if not self.endpoint_url:
            return None
        parts = urlsplit(self.endpoint_url)
        return parts.netloc, parts.scheme == "https"

    def configure_duckdb(self, con: Any) -> None:
        """Load httpfs by path and create a temporary S3 secret scoped to this store's root, with the
        boto3 session's credentials (session token included), region, and for emulators the endpoint,
        path-style URLs and ``USE_SSL`` from the endpoint's scheme. Frozen credentials do not refresh:
        recreate the connection (or call this again before locking) when they expire."""
        load_httpfs(con)
        opts = ["TYPE s3", f"REGION {_sql_str(self.region)}", f"SCOPE {_sql_str(self.root_uri())}"]
        creds = self._frozen_credentials()
        if creds is not None and creds.access_key:
            opts += [f"KEY_ID {_sql_str(creds.access_key)}", f"SECRET {_sql_str(creds.secret_key)}"]
            if creds.token:
                opts.append(f"SESSION_TOKEN {_sql_str(creds.token)}")
        endpoint = self._endpoint()
        if endpoint is not None:
            host, ssl = endpoint
            opts += [f"ENDPOINT {_sql_str(host)}", "URL_STYLE 'path'", f"USE_SSL {'true' if ssl else 'false'}"]
        name = "stratum_" + hashlib.sha1(self.root_uri().encode(), usedforsecurity=False).hexdigest()[:16]
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {name} ({', '.join(opts)})")

    def arrow_filesystem(self) -> S3FileSystem:
        """A ``pyarrow.fs.S3FileSystem`` with the same credentials/region/endpoint (paths: ``arrow_path``)."""
        from pyarrow import fs  # lazy: the API Lambda ships without pyarrow

        kw: dict[str, Any] = {"region": self.region}
        creds = self._frozen_credentials()
        if creds is not None and creds.access_key:
            kw.update(access_key=creds.access_key, secret_key=creds.secret_key)
            if creds.token:
                kw["session_token"] = creds.token
        endpoint = self._endpoint()
        if endpoint is not None:
            kw.update(endpoint_override=endpoint[0], scheme="https" if endpoint[1] else "http")
        return fs.S3FileSystem(**kw)

    def presign_get(self, key: str, *, expires_seconds: int = 3600, filename: str | None = None) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(check_key(key))}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)

    def presign_put(
        self,
        key: str,
        *,
        expires_seconds: int = 3600,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> str | None:
        """A SigV4 presigned PUT URL; when ``content_type`` is given the uploader must send that exact
        ``Content-Type`` header."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if content_type:
            params["ContentType"] = content_type
        if content_length is not None:
            params["ContentLength"] = content_length  # signed: S3 refuses any other body size
        return self.client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_seconds, HttpMethod="PUT"
        )
