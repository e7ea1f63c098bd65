"""The speculative header walk must return exactly what the record-by-record walk returns."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum.stdf.walk import PAD, WalkState, walk_fast


def plain_walk(buf: bytes, end: int, be: bool) -> tuple[list[int], int]:
    """The reference: a record-by-record walk, written independently of the one in ``walk``."""
    offs: list[int] = []
    o = 0
    while o + 4 <= end:
        offs.append(o)
        o += 4 + int.from_bytes(buf[o : o + 2], "big" if be else "little")
    if o > end:  # the last record's body runs past the data
        o = offs.pop()
    return offs, o


def build(lengths: list[int], be: bool, cut: int | None = None) -> tuple[bytes, int]:
    out = bytearray()
    for i, ln in enumerate(lengths):
        out += struct.pack(">HBB" if be else "<HBB", ln, 15, 10 + (i % 3))
        out += bytes((i + j) % 251 for j in range(ln))
    data = bytes(out if cut is None else out[:cut])
    return data + b"\x00" * PAD, len(data)


def check(data: bytes, end: int, be: bool) -> None:
    ref, ref_stop = plain_walk(data, end, be)
    got, stop = walk_fast(data, end, be, block=256, probe=16)
    assert stop == ref_stop
    assert np.array_equal(got, np.asarray(ref, np.int64))


def check_chunked(data: bytes, end: int, be: bool, cuts: list[int]) -> None:
    """Walked in chunks as ``parse`` does (each chunk starts with the previous one's incomplete tail), with the
    template carried from chunk to chunk: the same offsets as one plain walk."""
    ref, ref_stop = plain_walk(data, end, be)
    state = WalkState()
    got: list[int] = []
    base = 0
    pending = b""
    bounds = sorted({min(c, end) for c in cuts} | {end})
    prev = 0
    for c in bounds:
        block = data[prev:c]
        prev = c
        chunk_end = len(pending) + len(block)
        padded = pending + block + b"\x00" * PAD
        offs, stop = walk_fast(padded, chunk_end, be, block=256, probe=16, state=state)
        got.extend((offs + base).tolist())
        pending = padded[stop:chunk_end]
        base += stop
    assert got == ref
    assert base == ref_stop


@settings(max_examples=150, deadline=None)
@given(
    period=st.lists(st.integers(0, 60), min_size=1, max_size=40),
    repeats=st.integers(1, 60),
    noise=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 60)), max_size=12),
    be=st.booleans(),
    cut=st.integers(0, 40),
)
def test_periodic_streams_with_noise(period, repeats, noise, be, cut):
    lengths = period * repeats
    for pos, ln in noise:  # insertions break the pattern at random places
        lengths.insert(pos % (len(lengths) + 1), ln)
    data, end = build(lengths, be)
    check(data, end, be)
    check(data, max(0, end - cut), be)  # a tail cut inside the last record(s)


@settings(max_examples=100, deadline=None)
@given(
    period=st.lists(st.integers(0, 60), min_size=1, max_size=40),
    repeats=st.integers(1, 80),
    noise=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 60)), max_size=8),
    be=st.booleans(),
    cuts=st.lists(st.integers(0, 200_000), max_size=12),
)
def test_chunks_carry_the_template(period, repeats, noise, be, cuts):
    lengths = period * repeats
    for pos, ln in noise:
        lengths.insert(pos % (len(lengths) + 1), ln)
    data, end = build(lengths, be)
    check_chunked(data, end, be, cuts)


def test_carried_template_meets_a_changed_pattern():
    """The next chunk starts with a pattern the carried template does not know (and a run of one length)."""
    lengths = [3, 7, 9, 30] * 900 + [12] * 3000 + [1, 2, 40] * 1500 + [3, 7, 9, 30] * 700
    for be in (False, True):
        data, end = build(lengths, be)
        check_chunked(data, end, be, list(range(0, end, 9_000)))
        check_chunked(data, end, be, [7, 15_001, 40_000, 40_003])


def test_long_run_of_equal_records_then_pattern_change():
    lengths = [20] * 5000 + [3, 7, 9, 30] * 800 + [12] * 3000 + [1, 2] * 2000
    for be in (False, True):
        data, end = build(lengths, be)
        check(data, end, be)


def test_tiny_and_empty():
    for lengths in ([], [0], [5], [0, 0, 0]):
        data, end = build(lengths, False)
        check(data, end, False)
    data, end = build([10, 10], False, cut=17)
    check(data, end, False)


def test_empty_records_go_at_header_walk_speed():
    """6 MB of REC_LEN-0 DTRs (1.5M records) took 11 s; they are counted in bulk now, not decoded."""
    import time

    from stratum.stdf.reader import parse
    from tests.bombs import FAR, empty_records

    data = b"".join(empty_records(6 + 4 * 1_500_000))
    t0 = time.perf_counter()
    res = parse(data)
    elapsed = time.perf_counter() - t0
    assert res.records == 1 + 1_500_000
    assert res.record_counts["DTR"] == 1_500_000
    w = {x.code: x for x in res.warnings}
    assert (w["empty_records"].count, w["empty_records"].offset) == (1_500_000, len(FAR))
    assert res.rows.get("texts", 0) == 0
    assert elapsed < 3.0, f"{elapsed:.1f} s"


def test_a_repeating_chunk_hands_its_template_to_the_next(monkeypatch):
    """The next chunk predicts from its first record: no block is walked record by record to find the period."""
    from stratum.stdf import walk

    lengths = [3, 7, 9, 30, 12, 0] * 3000
    data, end = build(lengths, False)
    cut = end // 2
    state = WalkState()
    offs, stop = walk_fast(data[:cut] + b"\x00" * PAD, cut, False, block=256, probe=16, state=state)
    assert state.tsig is not None and len(state.tsig) == 6
    sizes: list[int] = []
    real = walk._walk_n

    def counting(buf, pos, end_, n, be):
        sizes.append(n)
        return real(buf, pos, end_, n, be)

    monkeypatch.setattr(walk, "_walk_n", counting)
    rest = data[stop:end] + b"\x00" * PAD
    offs2, stop2 = walk_fast(rest, end - stop, False, block=256, probe=16, state=state)
    assert 256 not in sizes  # only probes
    ref, ref_stop = plain_walk(data, end, False)
    assert np.concatenate([offs, offs2 + stop]).tolist() == ref and stop + stop2 == ref_stop
