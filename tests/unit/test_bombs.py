"""Decompression bombs and unreadable containers: bounded output, clear errors (never unbounded memory)."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import zipfile

import pytest

from stratum.stdf.errors import DecompressionLimitError, UnsupportedContainerError
from stratum.stdf.source import PIECE, ByteSource, DecompressionLimits
from tests.bombs import FAR, bzip2_bomb, gzip_bomb, gzip_empty_records, zip_bomb

MB = 1 << 20
SMALL = DecompressionLimits(max_bytes=48 * MB, max_ratio=100, ratio_floor_bytes=8 * MB)


def _drain(src: ByteSource) -> tuple[int, int]:
    total = biggest = 0
    for block in src.blocks():
        total += len(block)
        biggest = max(biggest, len(block))
    return total, biggest


@pytest.mark.parametrize("make", [gzip_bomb, bzip2_bomb], ids=["gzip", "bzip2"])
def test_stream_bomb_stops_at_the_ratio_guard(make):
    data = make(64 * MB, member=16 * MB)
    with ByteSource(data, block_size=MB, limits=SMALL) as src:
        with pytest.raises(DecompressionLimitError, match="more than 100 times") as ei:
            _drain(src)
    # stopped just past the floor, one piece at most beyond it
    assert 8 * MB < ei.value.offset <= 8 * MB + PIECE


def test_stream_bomb_stops_at_the_size_limit():
    data = gzip_bomb(64 * MB, member=16 * MB)
    limits = DecompressionLimits(max_bytes=20 * MB, max_ratio=1e9, ratio_floor_bytes=0)
    with ByteSource(data, block_size=MB, limits=limits) as src:
        with pytest.raises(DecompressionLimitError, match="past the limit of 20971520 bytes"):
            _drain(src)


def test_one_decompress_call_never_returns_more_than_a_piece():
    """One 64 MiB gzip member (64 KB compressed): blocks stay at block_size + one piece at most."""
    data = gzip_bomb(64 * MB, member=64 * MB)
    with ByteSource(data, block_size=MB, limits=DecompressionLimits()) as src:
        total, biggest = _drain(src)
    assert total == 64 * MB
    assert biggest <= MB + PIECE


def test_zip_bomb_is_refused_from_its_declared_size():
    data = zip_bomb(32 * MB)
    with ByteSource(data, limits=SMALL) as src:
        with pytest.raises(DecompressionLimitError, match="zip input inflates more than 100 times"):
            _drain(src)


def test_empty_records_under_the_floor_pass():
    data = gzip_empty_records(4 * MB)
    with ByteSource(data, block_size=MB, limits=SMALL) as src:
        total, _ = _drain(src)
    assert total == 4 * MB - (4 * MB - len(FAR)) % 4


def test_normal_gzip_and_bzip2_pass():
    payload = random.Random(7).randbytes(5 * MB) * 2  # compresses about 2x: well under the ratio
    for data in (gzip.compress(payload), bz2.compress(payload)):
        with ByteSource(data, block_size=MB, limits=SMALL) as src:
            assert _drain(src)[0] == len(payload)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _patch_method(data: bytes, method: int, flag: int = 0) -> bytes:
    """Rewrite the compression method (and OR the flag bits) in the local and central headers."""
    b = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = b.find(sig)
        b[i + method_at : i + method_at + 2] = method.to_bytes(2, "little")
        b[i + flag_at] |= flag
    return bytes(b)


@pytest.mark.parametrize(
    ("method", "flag", "reason"),
    [
        (8, 1, "zip member 'a.stdf' is encrypted; upload it unencrypted"),
        (99, 0, "zip member 'a.stdf' uses compression method 99 (AES encryption (WinZip AE-x))"),
        (9, 0, "zip member 'a.stdf' uses compression method 9 (deflate64)"),
    ],
    ids=["encrypted", "aes", "deflate64"],
)
def test_unreadable_zip_members_say_why(method, flag, reason):
    data = _patch_method(_zip({"a.stdf": FAR * 100}), method, flag)
    with ByteSource(data) as src:
        with pytest.raises(UnsupportedContainerError) as ei:
            _drain(src)
    assert ei.value.code == "unsupported_compression"
    assert ei.value.message.startswith(reason)


def test_zip_with_two_stdf_files_is_refused_with_their_names():
    data = _zip({"a.stdf": FAR, "b.std": FAR, "readme.txt": b"hi"})
    with ByteSource(data) as src:
        with pytest.raises(UnsupportedContainerError, match=r"holds 2 STDF files \(a.stdf, b.std\)"):
            _drain(src)


def test_zip_with_one_stdf_file_and_others_reads_the_stdf_file():
    data = _zip({"readme.txt": b"hello", "lot.stdf": FAR * 3})
    with ByteSource(data) as src:
        assert b"".join(src.blocks()) == FAR * 3


@pytest.mark.parametrize("container", ["plain", "gzip", "bzip2", "zip"])
def test_block_parts_are_the_blocks_unjoined(container):
    """The reader takes each block as the pieces it was read or decompressed in (and joins them once, into its
    chunk): joined, they are ``blocks()``, block for block, and every block but the last reaches the block size."""
    payload = random.Random(3).randbytes(MB + 12_345) * 5  # more than one plain read (READ_SIZE)
    data = {
        "plain": lambda: payload,
        "gzip": lambda: gzip.compress(payload),
        "bzip2": lambda: bz2.compress(payload),
        "zip": lambda: _zip({"a.stdf": payload}),
    }[container]()
    with ByteSource(data, block_size=MB, limits=SMALL) as src:
        parts = list(src.block_parts())
    with ByteSource(data, block_size=MB, limits=SMALL) as src:
        blocks = list(src.blocks())
        assert src.decompressed == len(payload)
    assert [b"".join(p) for p in parts] == [bytes(b) for b in blocks]
    assert b"".join(bytes(b) for b in blocks) == payload
    assert all(sum(map(len, p)) >= MB for p in parts[:-1]) and len(parts) > 1
