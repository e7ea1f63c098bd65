"""Decompression bombs and hostile inputs, generated cheaply.

A gzip (or bzip2) bomb is one small compressed member of zeros repeated: concatenated members are one
valid stream, so a 4 GiB bomb costs one 64 MiB compression. Also used by ``tests/measure_bombs.py``.
"""

from __future__ import annotations

import bz2
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator

FAR = struct.pack("<HBBBB", 2, 0, 10, 2, 4)
EMPTY_DTR = struct.pack("<HBB", 0, 50, 30)


def _gzip_member(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def gzip_bomb(total: int, member: int = 64 << 20) -> bytes:
    """A gzip stream of ``total`` zero bytes (a multiple of ``member``), ~1000x smaller."""
    assert total % member == 0
    return _gzip_member(bytes(member)) * (total // member)


def bzip2_bomb(total: int, member: int = 64 << 20) -> bytes:
    assert total % member == 0
    return bz2.compress(bytes(member), 9) * (total // member)


def zip_bomb(total: int, chunk: int = 16 << 20, name: str = "bomb.stdf", prefix: bytes = b"") -> bytes:
    """A zip archive with one deflated member: ``prefix`` then zeros, ``total`` bytes (streamed into the
    compressor)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(name, "w", force_zip64=True) as m:
            m.write(prefix)
            total -= len(prefix)
            zero = bytes(chunk)
            left = total
            while left:
                n = min(chunk, left)
                m.write(zero[:n])
                left -= n
    return buf.getvalue()


def empty_records(total: int) -> Iterator[bytes]:
    """A valid STDF stream: FAR then REC_LEN-0 DTRs, ``total`` bytes in all, in 4 MiB pieces."""
    yield FAR
    left = (total - len(FAR)) // 4
    piece = EMPTY_DTR * (1 << 20)
    while left:
        n = min(left, 1 << 20)
        yield piece if n == 1 << 20 else EMPTY_DTR * n
        left -= n


def gzip_empty_records(total: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(c.compress(p) for p in empty_records(total)) + c.flush()
