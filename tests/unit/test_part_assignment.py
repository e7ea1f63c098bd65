"""Test records take the part open on their (head, site) at their position: the state table, the per-site
fallback and a record-by-record reference agree."""

from __future__ import annotations

import numpy as np
import pytest

from stratum.stdf.reader import ReaderOptions, _Parser


def _reference(pos, g, markers, carry) -> list[int]:
    mk_pos, mk_g, mk_part = (m.tolist() for m in markers)
    out = []
    for p, gv in zip(pos.tolist(), g.tolist(), strict=True):
        part = carry.get(gv, -1)
        for q, mg, mp in zip(mk_pos, mk_g, mk_part, strict=True):
            if q < p and mg == gv:
                part = mp
        out.append(part)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_state_table_equals_reference_and_fallback(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    sites = rng.choice(np.arange(1 << 16), int(rng.integers(1, 12)), replace=False)
    kinds = rng.random(n)
    mk = np.flatnonzero(kinds < 0.15)  # PIR/PRR positions; the rest are test records
    tests = np.flatnonzero(kinds >= 0.15)
    mk_g = rng.choice(sites, len(mk)).astype(np.int64)
    mk_part = np.where(rng.random(len(mk)) < 0.5, np.arange(len(mk)) + 100, -1).astype(np.int64)
    markers = (mk.astype(np.int64), mk_g, mk_part)
    carry = {int(s): int(i) for i, s in enumerate(sites[: int(rng.integers(0, len(sites) + 1))])}
    g = rng.choice(np.concatenate([sites, [7, 300]]), len(tests)).astype(np.uint16)
    expect = _reference(tests, g, markers, carry)
    p = _Parser(None, ReaderOptions())
    assert p._assign_parts(tests, g, markers, carry).tolist() == expect
    assert p._assign_parts_grouped(tests, g, markers, carry).tolist() == expect
    assert any(x >= 100 for x in expect) and -1 in expect
