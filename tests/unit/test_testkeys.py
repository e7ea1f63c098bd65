"""Test-name verification must equal a byte-for-byte comparison, whatever the mix of name lengths."""

from __future__ import annotations

import numpy as np
import pytest

from stratum.stdf import testkeys
from stratum.stdf.walk import PAD, Views

Case = tuple[testkeys.TestRegistry, Views, np.ndarray, np.ndarray, np.ndarray, list[bool]]


def _case(seed: int, long_share: float) -> Case:
    rng = np.random.default_rng(seed)
    reg = testkeys.TestRegistry()
    names: list[bytes] = []
    for i in range(40):
        n = int(rng.integers(17, 45)) if rng.random() < long_share else int(rng.integers(0, 17))
        raw = bytes(rng.integers(32, 127, n, dtype=np.uint8))
        if raw in names:
            continue
        names.append(raw)
        reg.get_or_add("P", i, raw, i)
    buf = bytearray()
    starts, lens, idx, expect = [], [], [], []
    for _ in range(3000):
        t = int(rng.integers(-1, len(names)))
        raw = names[t] if t >= 0 else names[0]
        kind = rng.random()
        if kind < 0.2 and raw:  # one byte changed at a random place
            j = int(rng.integers(0, len(raw)))
            raw = raw[:j] + bytes([(raw[j] + 1) % 256]) + raw[j + 1 :]
        elif kind < 0.3:  # another test's name (maybe of the same length)
            raw = names[int(rng.integers(0, len(names)))]
        buf += bytes(rng.integers(0, 256, int(rng.integers(0, 9)), dtype=np.uint8))  # noise between names
        starts.append(len(buf))
        lens.append(len(raw))
        buf += raw
        idx.append(t)
        expect.append(t >= 0 and names[t] == raw)
    buf += bytes(rng.integers(0, 256, 8, dtype=np.uint8)) + bytes(PAD)
    v = Views(bytes(buf), False)
    return reg, v, np.array(idx, np.int64), np.array(starts, np.int64), np.array(lens, np.int64), expect


@pytest.mark.parametrize("long_share", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verified_equals_byte_comparison(seed: int, long_share: float) -> None:
    reg, v, idx, starts, lens, expect = _case(seed, long_share)
    got = reg._verified(v, idx, starts, lens)
    assert got.tolist() == expect
    assert sum(expect) > 100 and not all(expect)
