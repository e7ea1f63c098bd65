"""Object store on a local directory (the embedded default).

Keys map to files under ``root``: ``raw/lot1.stdf`` is ``<root>/raw/lot1.stdf``. Directories are
implicit (like S3 prefixes): they are created on write and are never objects themselves, so ``list``
never yields them.

- **Atomic writes.** Every write goes to a hidden temp file in the target directory
  (``.~stratum-tmp.<name>.<random>``) and is ``os.replace``d onto the key on success, so readers see
  the old object or the whole new one, never a partial file. Temp files are skipped by ``list`` and
  removed on abort or error.
- **ETag** = the MD5 hex of the content (as S3 gives for single-part uploads). It is computed while
  writing for ``put_bytes`` / ``put_file`` / ``open_write``; files that appeared by other means (pyarrow
  writing straight into the lake directory, a user copying files) are hashed lazily on ``head`` /
  ``list``. Hashes are cached by ``(size, mtime_ns)`` in memory and, where the filesystem supports it,
  in a ``user.stratum.md5`` extended attribute so other processes reuse them. A file rewritten by a
  foreign tool with the same size within the same mtime tick could keep a stale etag; writes through
  this store always refresh it.
- **Confinement.** Keys are validated with ``check_key`` and the resolved path (symlinks followed) must
  stay under the resolved root, otherwise ``InvalidKey``. ``list`` does not descend into symlinked
  directories and skips symlinks that point outside the root. (The check is path based: a directory
  swapped for a symlink between the check and the open by someone with write access to the root is
  out of scope.)
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from stratum.storage.objectstore import (
    AtomicWriter,
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    check_key,
    check_lifecycle,
)

TMP_PREFIX = ".~stratum-tmp."
_XATTR = "user.stratum.md5"
_CHUNK = 1024 * 1024


class _LocalWriter(AtomicWriter):
    def __init__(self, store: LocalObjectStore, key: str, final: Path) -> None:
        super().__init__(key)
        self._store = store
        self._final = final
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._tmp, self._fh = store._open_temp(final)

    def _write(self, data: memoryview) -> None:
        self._fh.write(data)
        self._md5.update(data)

    def _commit(self) -> ObjectInfo:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        etag = self._md5.hexdigest()
        st = self._tmp.stat()
        self._store._remember(self._tmp, st, etag)
        os.replace(self._tmp, self._final)
        self._store._cache_put(self._final, st, etag)
        return ObjectInfo(key=self.key, size=st.st_size, etag=etag, last_modified=_mtime(st))

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str | Path) -> None:
        root = Path(root).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)
        self._etags: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # --- paths -------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        check_key(key)
        p = self.root / key
        if not p.resolve(strict=False).is_relative_to(self.root):
            raise InvalidKey(f"key {key!r} resolves outside the store root")
        return p

    def _prefix_dir(self, prefix: str) -> Path:
        if prefix:
            check_key(prefix)
        p = self.root / prefix
        base = p if prefix.endswith("/") or not prefix else p.parent
        if not base.resolve(strict=False).is_relative_to(self.root):
            raise InvalidKey(f"prefix {prefix!r} resolves outside the store root")
        return base

    def _open_temp(self, final: Path) -> tuple[Path, IO[bytes]]:
        for _ in range(5):  # a concurrent delete_prefix may prune the directory between mkdir and open
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f"{TMP_PREFIX}{final.name[:100]}.{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileNotFoundError:
                continue
            return tmp, os.fdopen(fd, "wb")
        raise OSError(f"could not create a temp file in {final.parent}")

    # --- etag cache --------------------------------------------------------------------------
    def _cache_put(self, path: Path, st: os.stat_result, etag: str) -> None:
        with self._lock:
            self._etags[str(path)] = (st.st_size, st.st_mtime_ns, etag)

    @staticmethod
    def _remember(path: Path, st: os.stat_result, etag: str) -> None:
        """Persist the etag beside the file (xattr) when the filesystem allows it."""
        if hasattr(os, "setxattr"):
            with contextlib.suppress(OSError):
                os.setxattr(path, _XATTR, f"{st.st_size}:{st.st_mtime_ns}:{etag}".encode())

    def _etag(self, path: Path, st: os.stat_result) -> str:
        with self._lock:
            cached = self._etags.get(str(path))
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        if hasattr(os, "getxattr"):
            with contextlib.suppress(OSError, ValueError):
                size, mtime, etag = os.getxattr(path, _XATTR).decode().split(":")
                if int(size) == st.st_size and int(mtime) == st.st_mtime_ns:
                    self._cache_put(path, st, etag)
                    return etag
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                md5.update(chunk)
        etag = md5.hexdigest()
        self._remember(path, st, etag)
        self._cache_put(path, st, etag)
        return etag

    def _info(self, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(key=key, size=st.st_size, etag=self._etag(path, st), last_modified=_mtime(st))

    # --- port --------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        if key.endswith("/"):
            if data:
                raise InvalidKey(f"a key ending with '/' cannot hold data locally: {key!r}")
            path.mkdir(parents=True, exist_ok=True)  # a directory marker is just a directory
            return ObjectInfo(key=key, size=0)
        with self._writer(key) as w:
            w.write(data)
        return w.result()

    def put_file(self, key: str, path: str, *, lifecycle: str | None = None) -> ObjectInfo:
        check_lifecycle(lifecycle)  # no expiry in a directory: the owner's sweep removes such objects
        with open(path, "rb") as src, self._writer(key) as w:
            shutil.copyfileobj(src, w, _CHUNK)
        return w.result()

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as fh:
            return fh.read()

    def open_read(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def open_write(self, key: str) -> IO[bytes]:
        return self._writer(key)  # type: ignore[return-value]

    def _writer(self, key: str) -> _LocalWriter:
        path = self._path(key)
        if key.endswith("/"):
            raise InvalidKey(f"cannot stream into a directory key {key!r}")
        return _LocalWriter(self, key, path)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
            if not path.is_file():
                return None
            return self._info(key, path, st)
        except (FileNotFoundError, NotADirectoryError):  # absent, or deleted meanwhile
            return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._prefix_dir(prefix)
        found: list[tuple[str, Path]] = []
        if base.is_dir():
            self._walk(base, base.relative_to(self.root).as_posix(), prefix, found)
        found.sort(key=lambda kp: kp[0])
        for key, path in found:
            try:
                info = self._info(key, path, path.stat())
            except FileNotFoundError:  # deleted meanwhile
                continue
            yield info

    def _walk(self, directory: Path, rel: str, prefix: str, out: builtins.list[tuple[str, Path]]) -> None:
        rel = "" if rel == "." else rel + "/"
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue
            key = rel + entry.name
            if entry.is_dir(follow_symlinks=False):
                # descend only where keys under it can still match the prefix
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    self._walk(Path(entry.path), key, prefix, out)
            elif key.startswith(prefix):
                if entry.is_symlink():
                    target = Path(entry.path).resolve(strict=False)
                    if not target.is_relative_to(self.root) or not target.is_file():
                        continue
                elif not entry.is_file(follow_symlinks=False):
                    continue
                out.append((key, Path(entry.path)))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if key.endswith("/"):
                path.rmdir()
            else:
                path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError:  # a non-empty directory "marker": S3 would delete just the marker
            pass
        with self._lock:
            self._etags.pop(str(path), None)

    def move(self, key: str, new_key: str) -> ObjectInfo:
        if key.endswith("/") or new_key.endswith("/"):
            raise InvalidKey(f"cannot move a directory key: {key!r} -> {new_key!r}")
        src, dst = self._path(key), self._path(new_key)
        if not src.is_file():
            raise ObjectNotFound(key)
        for _ in range(5):  # a concurrent delete_prefix may prune the directory between mkdir and link
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst, follow_symlinks=False)  # fails if dst exists: no replace, no race
                break
            except FileExistsError:
                raise ObjectExists(new_key) from None
            except FileNotFoundError:
                if not src.exists():
                    raise ObjectNotFound(key) from None
            except OSError:  # no hard links on this filesystem: check, then rename (a small race)
                if dst.exists():
                    raise ObjectExists(new_key) from None
                try:
                    os.rename(src, dst)
                except FileNotFoundError:
                    raise ObjectNotFound(key) from None
                break
        else:
            raise OSError(f"could not create {dst.parent}")
        with contextlib.suppress(FileNotFoundError):
            src.unlink()
        with self._lock:
            self._etags.pop(str(src), None)
        return self._info(new_key, dst, dst.stat())

    def delete_prefix(self, prefix: str) -> int:
        n = super().delete_prefix(prefix)
        # prune directories left empty under the prefix (best effort; writers retry if they lose a race)
        base = self._prefix_dir(prefix)
        if base.is_dir():
            for dirpath, _dirs, _files in os.walk(base, topdown=False):
                p = Path(dirpath)
                if p != self.root and (p.relative_to(self.root).as_posix() + "/").startswith(prefix):
                    with contextlib.suppress(OSError):
                        p.rmdir()
        return n

    # --- engines -----------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return str(self._path(key))

    def root_uri(self, prefix: str = "") -> str:
        if prefix:
            check_key(prefix)
            p = self.root / prefix
            if not p.resolve(strict=False).is_relative_to(self.root):
                raise InvalidKey(f"prefix {prefix!r} resolves outside the store root")
            return str(p).rstrip("/") + "/"
        return str(self.root).rstrip("/") + "/"

    def configure_duckdb(self, con: Any) -> None:
        """Nothing to do: DuckDB reads local paths natively."""

    def presign_put(
        self,
        key: str,
        *,
        expires_seconds: int = 3600,
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> str | None:
        return None
