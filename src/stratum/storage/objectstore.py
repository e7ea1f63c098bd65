"""Object store port: where raw uploads and the Parquet lake live.

Adapters: ``LocalObjectStore`` (a directory; the embedded default) and ``S3ObjectStore`` (boto3 for
object calls; pyarrow's S3 filesystem for streamed Parquet writes; DuckDB httpfs for reads).
Keys are relative, ``/``-separated, never start with ``/`` and never contain ``..`` segments. The lake
layout (keys) is identical on both adapters.

Lifecycle classes: an object written with ``lifecycle=<class>`` is removed by the store's own expiry for that
class. S3 tags it ``LIFECYCLE_TAG=<class>`` in the same request that writes it (PutObject or
CreateMultipartUpload), and the bucket's lifecycle rule for the tag expires it (infra: StorageConstruct); a
local directory has no expiry of its own, so the runtime that owns those objects sweeps them
(``ExportService.sweep`` under ``stratum serve``).
"""

from __future__ import annotations

import contextlib
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any


class ObjectNotFound(KeyError):
    """No object under that key."""


class InvalidKey(ValueError):
    """A key that is absolute, empty, or escapes its root."""


class ObjectExists(FileExistsError):
    """The destination of a ``move`` already holds an object."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    last_modified: datetime | None = None


def check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid object key {key!r}")
    if any(part in ("", ".", "..") for part in key.rstrip("/").split("/")):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


class AtomicWriter(io.RawIOBase):
    """A write-only binary stream that publishes its content only on a clean ``close()``.

    ``abort()`` (or leaving a ``with`` block with an exception, or the writer being garbage collected
    unclosed) discards everything. Subclasses implement ``_write``, ``_commit`` and ``_abort``.
    Not thread-safe (like any file object).
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._pos = 0
        self._done = False
        self._failed = False
        self.info: ObjectInfo | None = None  # set by a successful close()

    # --- file protocol -----------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def write(self, b: Any) -> int:
        if self.closed or self._done:
            raise ValueError("write to a closed writer")
        view = memoryview(b).cast("B")
        n = view.nbytes
        if n:
            try:
                self._write(view)
            except BaseException:
                self._failed = True
                raise
            self._pos += n
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._done:
                self._done = True
                if self._failed:
                    self._abort()
                    raise OSError(f"an earlier write to {self.key!r} failed; nothing was written")
                try:
                    self.info = self._commit()
                except BaseException:
                    self._abort()
                    raise
        finally:
            super().close()

    def abort(self) -> None:
        """Discard everything written; nothing becomes visible. Idempotent."""
        if self.closed:
            return
        try:
            if not self._done:
                self._done = True
                self._abort()
        finally:
            super().close()

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # IOBase.__del__ would call close() and publish a partial object: abort instead.
        if not self.closed:
            with contextlib.suppress(Exception):
                self.abort()

    def result(self) -> ObjectInfo:
        """The published object's info (after a successful ``close()``)."""
        if self.info is None:
            raise RuntimeError(f"writer for {self.key!r} was not committed")
        return self.info

    # --- adapter hooks -----------------------------------------------------------------------
    def _write(self, data: memoryview) -> None:
        raise NotImplementedError

    def _commit(self) -> ObjectInfo:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


LIFECYCLE_TAG = "stratum-lifecycle"
EXPORT_LIFECYCLE = "export"  # export files: expire after exports.retention_days
LIFECYCLES = (EXPORT_LIFECYCLE,)


def check_lifecycle(lifecycle: str | None) -> None:
    if lifecycle is not None and lifecycle not in LIFECYCLES:
        raise ValueError(f"unknown lifecycle class {lifecycle!r}; known: {', '.join(LIFECYCLES)}")


class ObjectStore(ABC):
    """Port. All methods are thread-safe."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo: ...

    @abstractmethod
    def put_file(self, key: str, path: str, *, lifecycle: str | None = None) -> ObjectInfo:
        """Upload a local file (streamed; multipart on S3). ``lifecycle``: the object's lifecycle class (module
        docstring), set atomically with the write."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A streaming binary reader; the caller closes it. Raises ObjectNotFound."""

    @abstractmethod
    def open_write(self, key: str) -> IO[bytes]:
        """A streaming binary writer. The object becomes visible, whole, only when the writer is
        closed without error (local: temp file + rename; S3: multipart completion). If the writer
        is closed after an exception (``abort()`` is called, or the context manager exits with an
        exception) nothing becomes visible."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (recursive), sorted by key; zero-byte ``dir/`` markers skipped."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing key is not an error."""

    @abstractmethod
    def move(self, key: str, new_key: str) -> ObjectInfo:
        """Move the object at ``key`` to ``new_key`` (same store), never replacing an object there:
        ``ObjectExists`` when ``new_key`` is taken, ``ObjectNotFound`` when ``key`` is gone (a concurrent
        mover won). Returns the moved object's info. Local: hard link + unlink (atomic, no replace);
        S3: server-side copy (multipart above 5 GB) then delete; not atomic, so a crash in between leaves
        both objects and the next move finds the destination taken."""

    def delete_prefix(self, prefix: str) -> int:
        n = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            n += 1
        return n

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    # --- engines that do their own I/O -------------------------------------------------------
    @abstractmethod
    def uri(self, key: str) -> str:
        """Where DuckDB (and people) find the object: an absolute local path or ``s3://bucket/key``."""

    @abstractmethod
    def root_uri(self, prefix: str = "") -> str:
        """The URI of a prefix, ending with ``/`` (used for DuckDB ``allowed_directories``)."""

    @abstractmethod
    def configure_duckdb(self, con: Any) -> None:
        """Prepare a DuckDB connection to read this store's URIs (S3: load httpfs by path, create the
        secret with endpoint/credentials/session token). Must run before ``enable_external_access``
        is switched off and the configuration is locked."""

    @abstractmethod
    def presign_put(
        self,
        key: str,
        *,
        expires_seconds: int = 3600,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> str | None:
        """A presigned HTTP PUT URL for ``key``; ``None`` when the store has no such mechanism (local).
        With ``content_length`` the URL only accepts a body of exactly that many bytes."""

    def presign_get(self, key: str, *, expires_seconds: int = 3600, filename: str | None = None) -> str | None:
        """A presigned HTTP GET URL for ``key`` (downloads); ``None`` when the store has no such mechanism
        (local: the API signs its own download URL)."""
        return None
