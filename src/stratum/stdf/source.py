"""Byte sources: plain, gzip, bzip2 or zip STDF input, detected by content, decompressed as a stream.

A ``ByteSource`` yields decompressed blocks. Decompression runs in a background thread (zlib and bz2
release the GIL), so inflating overlaps with decoding on a multi-core machine; the queue between them
is bounded, so memory stays bounded.
"""

from __future__ import annotations

import bz2
import io
import os
import queue
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO

from .errors import CompressedStreamError, NotStdfError, TruncatedError

_gzip_impl: ModuleType
try:  # ISA-L inflate: same stream API as zlib, ~2.5x faster on gzip (optional; zlib otherwise)
    from isal import isal_zlib as _gzip_impl
except ImportError:  # pragma: no cover - isal is a pinned dependency
    _gzip_impl = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = tuple({zlib.error, getattr(_gzip_impl, "error", zlib.error)})

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
ZIP_MAGIC = b"PK\x03\x04"

READ_SIZE = 4 * 1024 * 1024


def sniff(head: bytes) -> str:
    """Container format from the first bytes: 'gzip', 'bzip2', 'zip' or 'plain'."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC) and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "plain"


class ByteSource:
    """Iterate decompressed blocks of an STDF input.

    Parameters
    ----------
    src:
        A path, raw bytes, or a binary file object (e.g. an S3 streaming body). File objects need not
        be seekable except for zip input, which is spooled to a temporary file first.
    size:
        Size of the input in bytes when known (for progress reporting).
    """

    def __init__(
        self, src: str | os.PathLike | bytes | IO[bytes], *, size: int | None = None, block_size: int = 8 << 20
    ):
        self._owned: IO[bytes] | None = None
        if isinstance(src, (bytes, bytearray, memoryview)):
            self._fh: IO[bytes] = io.BytesIO(bytes(src))
            self.size = len(src)
        elif isinstance(src, (str, os.PathLike)):
            self._fh = self._owned = open(src, "rb")  # noqa: SIM115 - closed in close()
            self.size = Path(src).stat().st_size
        else:
            self._fh = src
            self.size = size  # type: ignore[assignment]  # None: unknown (a stream)
        self.block_size = block_size
        self.compressed_read = 0  # bytes consumed from the input (progress)
        self.decompressed = 0
        self._head = self._read_raw(READ_SIZE)
        self.format = sniff(self._head)
        self._tmp: IO[bytes] | None = None

    # -- raw reading -------------------------------------------------------------------------
    def _read_raw(self, n: int) -> bytes:
        data = self._fh.read(n)
        self.compressed_read += len(data)
        return data

    def _raw_chunks(self) -> Iterator[bytes]:
        if self._head:
            yield self._head
            self._head = b""
        while True:
            data = self._read_raw(READ_SIZE)
            if not data:
                return
            yield data

    # -- decompressors ----------------------------------------------------------------------
    # Blocks are handed over as fresh bytearrays (the producer never touches one again): no copy.
    def _plain(self) -> Iterator[bytearray]:
        buf = bytearray()
        for data in self._raw_chunks():
            buf += data
            if len(buf) >= self.block_size:
                yield buf
                buf = bytearray()
        if buf:
            yield buf

    def _stream(self, make: Callable[[], object], name: str) -> Iterator[bytearray]:
        dec = make()
        out = bytearray()
        produced = 0  # decompressed bytes so far (this runs in the producer thread)
        started = False
        for data in self._raw_chunks():
            while data:
                try:
                    piece = dec.decompress(data)  # type: ignore[attr-defined]
                except (*_INFLATE_ERRORS, OSError, EOFError, ValueError) as exc:  # type: ignore[misc]
                    raise CompressedStreamError(f"corrupt {name} stream: {exc}", offset=produced + len(out)) from exc
                out += piece
                started = True
                if dec.eof:  # type: ignore[attr-defined]
                    data = dec.unused_data  # type: ignore[attr-defined]
                    if data.strip(b"\x00"):
                        dec = make()  # concatenated members/streams
                        started = False
                    else:
                        data = b""
                else:
                    data = b""
                if len(out) >= self.block_size:
                    produced += len(out)
                    yield out
                    out = bytearray()
        produced += len(out)
        if out:
            yield out
        if started and not dec.eof:  # type: ignore[attr-defined]
            raise TruncatedError(
                f"the {name} stream ends before its end marker: the file is truncated", offset=produced
            )

    def _zip(self) -> Iterator[bytes]:
        fh = self._fh
        if not (hasattr(fh, "seekable") and fh.seekable()):
            self._tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            for data in self._raw_chunks():
                self._tmp.write(data)
            self._tmp.seek(0)
            fh = self._tmp
        else:
            fh.seek(0)
        try:
            zf = zipfile.ZipFile(fh)
            members = [i for i in zf.infolist() if not i.is_dir()]
            if not members:
                raise NotStdfError("zip archive holds no file", offset=0)
            with zf.open(members[0]) as member:
                while True:
                    block = member.read(self.block_size)
                    if not block:
                        break
                    self.compressed_read = min(self.size or 0, self.compressed_read + len(block))
                    yield block
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise CompressedStreamError(f"corrupt zip archive: {exc}", offset=0) from exc

    def _blocks(self) -> Iterator[bytes | bytearray]:
        if self.format == "gzip":
            return self._stream(lambda: _gzip_impl.decompressobj(wbits=31), "gzip")
        if self.format == "bzip2":
            return self._stream(bz2.BZ2Decompressor, "bzip2")
        if self.format == "zip":
            return self._zip()
        return self._plain()

    def blocks(self, prefetch: int = 2) -> Iterator[bytes]:
        """Decompressed blocks, produced by a background thread ``prefetch`` blocks ahead."""
        q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        _END = object()

        def produce() -> None:
            try:
                for block in self._blocks():
                    while not stop.is_set():
                        try:
                            q.put(block, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_END)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                q.put(exc)

        t = threading.Thread(target=produce, name="stdf-decompress", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.decompressed += len(item)
                yield item
        finally:
            stop.set()
            t.join(timeout=5)

    def close(self) -> None:
        for fh in (self._owned, self._tmp):
            if fh is not None:
                fh.close()

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
