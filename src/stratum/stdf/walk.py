"""Header walk and unaligned numpy views over a chunk of STDF bytes.

The walk is the only per-record Python loop on the hot path: it reads REC_LEN and records each
record's offset, nothing else (stdf-parsing §4 step 3). Every other field is read afterwards by numpy
gathers at fixed offsets through *unaligned strided views*: ``np.ndarray(dtype='<f4', strides=(1,))``
over the buffer makes ``view[o]`` the 4-byte value starting at byte ``o`` for any ``o``, so one fancy
index reads a field of every record at once.
"""

from __future__ import annotations

import numpy as np

PAD = 8  # zero bytes appended to every chunk so 8-byte word reads near the end stay in bounds


def walk_le(buf: bytes, end: int) -> tuple[list[int], int]:
    """Offsets of the complete records in ``buf[:end]`` and where the incomplete tail starts."""
    offs: list[int] = []
    ap = offs.append
    o = 0
    last = end - 4
    while o <= last:
        ap(o)
        o += 4 + (buf[o] | (buf[o + 1] << 8))
    if o > end:  # the last record's body runs past the data
        o = offs.pop()
    return offs, o


def walk_be(buf: bytes, end: int) -> tuple[list[int], int]:
    offs: list[int] = []
    ap = offs.append
    o = 0
    last = end - 4
    while o <= last:
        ap(o)
        o += 4 + ((buf[o] << 8) | buf[o + 1])
    if o > end:
        o = offs.pop()
    return offs, o


class Views:
    """Typed unaligned views over one padded chunk buffer, in the file's byte order."""

    __slots__ = ("b", "u2", "i2", "u4", "i4", "f4", "u8", "w8", "f8", "i8", "be")

    def __init__(self, buf: bytes, big_endian: bool) -> None:
        e = ">" if big_endian else "<"
        n = len(buf)
        self.be = big_endian
        self.b = np.frombuffer(buf, dtype=np.uint8)

        def view(t: str, w: int) -> np.ndarray:
            return np.ndarray(shape=(max(n - w + 1, 0),), dtype=e + t, buffer=buf, offset=0, strides=(1,))

        self.u2 = view("u2", 2)
        self.i2 = view("i2", 2)
        self.u4 = view("u4", 4)
        self.i4 = view("i4", 4)
        self.f4 = view("f4", 4)
        self.u8 = view("u8", 8)
        self.i8 = view("i8", 8)
        self.f8 = view("f8", 8)
        # byte-order independent 8-byte words, for hashing/comparing strings
        self.w8 = np.ndarray(shape=(max(n - 7, 0),), dtype="<u8", buffer=buf, offset=0, strides=(1,))


def ramp(counts: np.ndarray) -> np.ndarray:
    """For counts [2, 0, 3] return [0, 1, 0, 1, 2]: the index of each element within its group."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
