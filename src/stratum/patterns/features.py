"""Low-level, deterministic feature operators on die rasters (numpy only)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def box_sum(a: NDArray, k: int) -> NDArray[np.float64]:
    """Sum over a k x k window (k odd) centred on each cell, zero outside (integral image)."""
    h = k // 2
    p = np.zeros((a.shape[0] + k, a.shape[1] + k))
    p[h + 1 : h + 1 + a.shape[0], h + 1 : h + 1 + a.shape[1]] = a
    c = p.cumsum(0).cumsum(1)
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def components(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """8-connected component labels (1..n, 0 = background), numbered in raster order of their first cell.

    Label propagation with pointer jumping: each round takes the minimum label over the 3x3
    neighbourhood, then follows labels to their roots; stops when nothing changes.
    """
    h, w = mask.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    big = h * w
    lab = np.where(mask, idx, big)
    p = np.full((h + 2, w + 2), big, dtype=np.int64)
    while True:
        p[1:-1, 1:-1] = lab
        m = lab.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                np.minimum(m, p[dy : dy + h, dx : dx + w], out=m)
        m = np.where(mask, m, big)
        flat = m.ravel()
        inside = flat < big
        flat[inside] = flat[flat[inside]]
        flat[inside] = flat[flat[inside]]
        if np.array_equal(m, lab):
            break
        lab = m
    roots = np.unique(lab[mask])
    out = np.zeros((h, w), dtype=np.int32)
    out[mask] = np.searchsorted(roots, lab[mask]) + 1
    return out, len(roots)


def runs_longest(t: NDArray[np.float64], hit: NDArray[np.bool_], max_gap: float) -> tuple[float, float, int]:
    """Longest stretch along sorted positions ``t`` of hits with no gap between hits above ``max_gap``.
    Returns (start, end, hits)."""
    th = np.sort(t[hit])
    if len(th) == 0:
        return 0.0, 0.0, 0
    br = np.flatnonzero(np.diff(th) > max_gap)
    starts = np.r_[0, br + 1]
    ends = np.r_[br, len(th) - 1]
    cnt = ends - starts + 1
    span = th[ends] - th[starts]
    best = int(np.argmax(span + 1e-6 * cnt))
    return float(th[starts[best]]), float(th[ends[best]]), int(cnt[best])
