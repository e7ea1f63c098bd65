"""Byte sources: plain, gzip, bzip2 or zip STDF input, detected by content, decompressed as a stream.

A ``ByteSource`` yields decompressed blocks. Decompression runs in a background thread (zlib and bz2
release the GIL), so inflating overlaps with decoding on a multi-core machine; the queue between them
is bounded, so memory stays bounded.

Decompression bombs: no single decompress call returns more than ``PIECE`` bytes (zlib ``max_length``,
bz2 ``max_length``, zip members read piecewise), and the total output is checked against
``DecompressionLimits`` as it grows: past ``max_bytes``, or past ``ratio_floor_bytes`` at more than
``max_ratio`` times the compressed bytes read so far, the stream stops with ``DecompressionLimitError``.
"""

from __future__ import annotations

import bz2
import io
import os
import queue
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

from stratum.settings import InputLimits

from .errors import (
    CompressedStreamError,
    DecompressionLimitError,
    NotStdfError,
    TruncatedError,
    UnsupportedContainerError,
)

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
PIECE = 1 << 20  # most bytes one decompress call may return
COMPRESSED_READ = 1 << 20  # compressed input is read in smaller steps: the ratio guard sees it sooner
HEAD_READ = 64 << 10  # enough to recognise the container

# zip methods zipfile reads (stored, deflate, bzip2, lzma); the names of common others for error messages
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {9: "deflate64", 99: "AES encryption (WinZip AE-x)", 93: "zstd", 95: "xz", 98: "PPMd"}


@dataclass(frozen=True)
class DecompressionLimits:
    """Bounds on what a compressed input may inflate to (``Settings.input_limits`` in the services)."""

    max_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 << 20

    def check(self, produced: int, compressed: int, fmt: str) -> None:
        if produced > self.max_bytes:
            raise DecompressionLimitError(
                f"the {fmt} input inflates past the limit of {self.max_bytes} bytes "
                f"(STRATUM_INPUT_LIMITS__MAX_DECOMPRESSED_BYTES)",
                offset=produced,
            )
        if produced > self.ratio_floor_bytes and produced > self.max_ratio * max(compressed, 1):
            raise DecompressionLimitError(
                f"the {fmt} input inflates more than {self.max_ratio:g} times ({produced} bytes from "
                f"{compressed} compressed bytes): refused as a decompression bomb "
                "(STRATUM_INPUT_LIMITS__MAX_COMPRESSION_RATIO)",
                offset=produced,
            )


def decompression_limits(limits: InputLimits) -> DecompressionLimits:
    """The reader's bounds from the settings' input limits (``Settings.input_limits``)."""
    return DecompressionLimits(
        max_bytes=limits.max_decompressed_bytes,
        max_ratio=limits.max_compression_ratio,
        ratio_floor_bytes=limits.ratio_floor_bytes,
    )


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
    limits:
        Decompression bounds (``DecompressionLimits()`` defaults when omitted).
    """

    def __init__(
        self,
        src: str | os.PathLike | bytes | IO[bytes],
        *,
        size: int | None = None,
        block_size: int = 8 << 20,
        limits: DecompressionLimits | None = None,
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
        self.limits = limits or DecompressionLimits()
        self.compressed_read = 0  # bytes consumed from the input (progress)
        self.inflate_cpu_s = 0.0  # CPU seconds of the producer thread reading and decompressing
        self.decompressed = 0
        self.consumed = 0  # input bytes behind the blocks handed out so far (progress; the reader runs ahead)
        self._head = self._read_raw(HEAD_READ)
        self.format = sniff(self._head)
        self._tmp: IO[bytes] | None = None

    # -- raw reading -------------------------------------------------------------------------
    def _read_raw(self, n: int) -> bytes:
        data = self._fh.read(n)
        self.compressed_read += len(data)
        return data

    def _raw_chunks(self, size: int = 0) -> Iterator[bytes]:
        if self._head:
            yield self._head
            self._head = b""
        while True:
            data = self._read_raw(size or READ_SIZE)
            if not data:
                return
            yield data

    # -- decompressors ----------------------------------------------------------------------
    # A block is handed over as the list of the pieces read or decompressed (the producer never touches them
    # again): the reader joins them into its chunk, the one copy of the data.
    def _plain(self) -> Iterator[list[bytes]]:
        parts: list[bytes] = []
        n = 0
        for data in self._raw_chunks():
            parts.append(data)
            n += len(data)
            if n >= self.block_size:
                yield parts
                parts, n = [], 0
        if parts:
            yield parts

    @staticmethod
    def _pieces(dec: object, data: bytes) -> Iterator[bytes]:
        """Decompress ``data`` in pieces of at most ``PIECE`` bytes (zlib-style and bz2 objects)."""
        if isinstance(dec, bz2.BZ2Decompressor):
            yield dec.decompress(data, PIECE)
            while not dec.eof and not dec.needs_input:
                yield dec.decompress(b"", PIECE)
            return
        piece = dec.decompress(data, PIECE)  # type: ignore[attr-defined]
        yield piece
        while not dec.eof and (dec.unconsumed_tail or len(piece) == PIECE):  # type: ignore[attr-defined]
            piece = dec.decompress(dec.unconsumed_tail, PIECE)  # type: ignore[attr-defined]
            yield piece

    def _stream(self, make: Callable[[], object], name: str) -> Iterator[list[bytes]]:
        dec = make()
        parts: list[bytes] = []
        n = 0  # bytes in parts
        produced = 0  # decompressed bytes so far (this runs in the producer thread)
        started = False
        limits = self.limits
        for data in self._raw_chunks(COMPRESSED_READ):
            while data:
                try:
                    for piece in self._pieces(dec, data):
                        parts.append(piece)
                        n += len(piece)
                        started = True
                        limits.check(produced + n, self.compressed_read, name)
                        if n >= self.block_size:
                            produced += n
                            yield parts
                            parts, n = [], 0
                except (*_INFLATE_ERRORS, OSError, EOFError, ValueError) as exc:  # type: ignore[misc]
                    raise CompressedStreamError(f"corrupt {name} stream: {exc}", offset=produced + n) from exc
                if dec.eof:  # type: ignore[attr-defined]
                    data = dec.unused_data  # type: ignore[attr-defined]
                    if data.strip(b"\x00"):
                        dec = make()  # concatenated members/streams
                        started = False
                    else:
                        data = b""
                else:
                    data = b""
        produced += n
        if n:
            yield parts
        if started and not dec.eof:  # type: ignore[attr-defined]
            raise TruncatedError(
                f"the {name} stream ends before its end marker: the file is truncated", offset=produced
            )

    @staticmethod
    def _zip_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
        """The one STDF file of an archive (see docs/decisions.md: one STDF file per archive)."""
        files = [i for i in zf.infolist() if not i.is_dir()]
        if not files:
            raise NotStdfError("zip archive holds no file", offset=0)
        stdf = [i for i in files if i.filename.lower().endswith((".stdf", ".std"))]
        if len(stdf) > 1:
            names = ", ".join(i.filename for i in stdf[:5]) + (", ..." if len(stdf) > 5 else "")
            raise UnsupportedContainerError(
                f"zip archive holds {len(stdf)} STDF files ({names}); upload one STDF file per archive "
                "(or the files themselves) so each becomes its own job",
                offset=0,
            )
        info = stdf[0] if stdf else files[0]
        if len(files) > 1 and not stdf:
            raise UnsupportedContainerError(
                f"zip archive holds {len(files)} files and none is named .stdf or .std", offset=0
            )
        if info.flag_bits & 0x1:
            raise UnsupportedContainerError(
                f"zip member {info.filename!r} is encrypted; upload it unencrypted", offset=0
            )
        if info.compress_type not in _ZIP_METHODS:
            what = _ZIP_METHOD_NAMES.get(info.compress_type, "an unsupported method")
            raise UnsupportedContainerError(
                f"zip member {info.filename!r} uses compression method {info.compress_type} ({what}); "
                "use deflate, bzip2 or lzma, or upload the file as .gz",
                offset=0,
            )
        return info

    def _zip(self) -> Iterator[list[bytes]]:
        fh = self._fh
        if not (hasattr(fh, "seekable") and fh.seekable()):
            self._tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            for data in self._raw_chunks():
                self._tmp.write(data)
            self._tmp.seek(0)
            fh = self._tmp
        else:
            fh.seek(0)
        limits = self.limits
        try:
            zf = zipfile.ZipFile(fh)
            info = self._zip_member(zf)
            # the declared size first (zipfile never reads past it), then what actually comes out
            limits.check(info.file_size, info.compress_size, "zip")
            produced = 0
            with zf.open(info) as member:
                parts: list[bytes] = []
                n = 0
                while True:
                    piece = member.read(PIECE)
                    if not piece:
                        break
                    parts.append(piece)
                    n += len(piece)
                    limits.check(produced + n, info.compress_size, "zip")
                    if n >= self.block_size:
                        produced += n
                        # progress: the compressed share of what came out so far
                        self.compressed_read = info.compress_size * produced // max(info.file_size, 1)
                        yield parts
                        parts, n = [], 0
                if parts:
                    yield parts
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise CompressedStreamError(f"corrupt zip archive: {exc}", offset=0) from exc

    def _blocks(self) -> Iterator[list[bytes]]:
        if self.format == "gzip":
            return self._stream(lambda: _gzip_impl.decompressobj(wbits=31), "gzip")
        if self.format == "bzip2":
            return self._stream(bz2.BZ2Decompressor, "bzip2")
        if self.format == "zip":
            return self._zip()
        return self._plain()

    def blocks(self, prefetch: int = 2) -> Iterator[bytes]:
        """Decompressed blocks, produced by a background thread ``prefetch`` blocks ahead."""
        for parts in self.block_parts(prefetch):
            yield parts[0] if len(parts) == 1 else b"".join(parts)

    def block_parts(self, prefetch: int = 2) -> Iterator[list[bytes]]:
        """``blocks`` as the pieces each block was read or decompressed in, not joined (the reader joins them
        into its padded chunk, so the data is copied once)."""
        q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        _END = object()

        def produce() -> None:
            try:
                blocks = self._blocks()
                while True:
                    c0 = time.thread_time()
                    block = next(blocks, None)
                    self.inflate_cpu_s += time.thread_time() - c0
                    if block is None:
                        break
                    while not stop.is_set():
                        try:
                            q.put((block, self.compressed_read), timeout=0.1)
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
                parts, self.consumed = item
                self.decompressed += sum(map(len, parts))
                yield parts
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
