"""Low-level, deterministic feature operators on die rasters (numpy only)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

_lapack: Any = None
try:  # the LAPACK gufuncs np.linalg.eigh/eigvalsh/solve call, without their per-call checks (same routine, same bits)
    from numpy.linalg import _umath_linalg as _lapack
except ImportError:  # pragma: no cover - a numpy without the private module
    pass


try:  # np.count_nonzero(a) calls this for a whole array; its Python wrapper costs more than counting ~2,000 dies
    from numpy._core.multiarray import count_nonzero
except ImportError:  # pragma: no cover - a numpy without the private module
    count_nonzero = np.count_nonzero


def eigh(a: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """``np.linalg.eigh(a)`` of a finite, symmetric float64 matrix: (ascending eigenvalues, eigenvectors)."""
    if _lapack is None:
        w, v = np.linalg.eigh(a)
        return w, v
    return _lapack.eigh_lo(a, signature="d->dd")


def eigvalsh(a: NDArray[np.float64]) -> NDArray:
    """``np.linalg.eigvalsh(a)`` of a finite, symmetric float64 matrix."""
    if _lapack is None:
        return np.linalg.eigvalsh(a)
    return _lapack.eigvalsh_lo(a, signature="d->d")


def _singular(err: str, flag: int) -> None:
    raise np.linalg.LinAlgError("Singular matrix")


def solve(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray:
    """``np.linalg.solve(a, b)`` of a square float64 matrix and a float64 vector (LinAlgError when singular)."""
    if _lapack is None:
        return np.linalg.solve(a, b)
    with np.errstate(call=_singular, invalid="call", over="ignore", divide="ignore", under="ignore"):
        return _lapack.solve1(a, b, signature="dd->d")


def box_sum(a: NDArray, k: int) -> NDArray[np.float64]:
    """Sum over a k x k window (k odd) centred on each cell, zero outside. ``a`` may stack several rasters
    on leading axes; the window runs over the last two. Shifted adds, columns then rows (for the 0/1
    rasters it serves, exact counts; a cumulative-sum integral image is several times slower)."""
    h = k // 2
    *lead, rows, cols = a.shape
    p = np.zeros((*lead, rows + 2 * h, cols + 2 * h))
    p[..., h : h + rows, h : h + cols] = a
    c = p[..., :cols].copy()
    for j in range(1, k):
        c += p[..., j : j + cols]
    out = c[..., :rows, :].copy()
    for i in range(1, k):
        out += c[..., i : i + rows, :]
    return out


def dilate(a: NDArray[np.bool_], r: int) -> NDArray[np.bool_]:
    """Cells within ``r`` cells (Chebyshev) of a set cell, over the last two axes: ``box_sum(a, 2r+1) > 0``
    by shifted ORs (columns, then rows) along each raster flattened with ``r`` empty columns on the right
    (contiguous shifts; a shift along a row ends in its padding, never in the next row)."""
    *lead, h, w = a.shape
    wp = w + r
    p = np.zeros((*lead, h, wp), dtype=bool)
    p[..., :w] = a
    f = p.reshape(*lead, h * wp)
    out = f.copy()
    for s in range(1, r + 1):
        out[..., s:] |= f[..., :-s]
        out[..., :-s] |= f[..., s:]
    f = out.copy()
    for s in range(1, min(r, h - 1) + 1):
        out[..., s * wp :] |= f[..., : -s * wp]
        out[..., : -s * wp] |= f[..., s * wp :]
    return np.ascontiguousarray(out.reshape(*lead, h, wp)[..., :w])


def dilated_at(
    a: NDArray[np.bool_], radii: tuple[int, ...], iy: NDArray[np.intp], ix: NDArray[np.intp]
) -> list[NDArray[np.bool_]]:
    """``dilate(a, r)[..., iy, ix]`` for each ``r`` of the ascending ``radii``: one padded raster (as many empty
    columns on the right as the largest radius) grown a cell at a time, read at the cells after each radius.
    An integer raster grows every bit on its own (bit i of a cell: cell in raster i), as several rasters at once."""
    *lead, h, w = a.shape
    wp = w + radii[-1]  # a cell moves at most radii[-1] columns: into its row's padding or the previous row's
    p = np.zeros((*lead, h, wp), dtype=a.dtype)
    p[..., :w] = a
    return grown_at(p.reshape(*lead, h * wp), wp, radii, iy * wp + ix)


def grown_at(cur: NDArray, wp: int, radii: tuple[int, ...], at: NDArray[np.intp]) -> list[NDArray]:
    """``dilated_at``'s growth on a raster already raveled with ``wp - w >= radii[-1]`` empty columns on the right
    of each row, read at the raveled cells ``at``."""
    out, done = [], 0
    for r in radii:
        for _ in range(r - done):
            nxt = cur.copy()
            nxt[..., 1:] |= cur[..., :-1]
            nxt[..., :-1] |= cur[..., 1:]
            cols = nxt.copy()
            nxt[..., wp:] |= cols[..., :-wp]
            nxt[..., :-wp] |= cols[..., wp:]
            cur = nxt
        done = r
        out.append(cur.take(at, axis=-1))
    return out


#: up to this many run adjacencies, union-find in Python beats numpy's per-round call overhead
_UF_MAX_EDGES = 256


def components(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """8-connected component labels (1..n, 0 = background), numbered in raster order of their first cell.

    Works on the horizontal runs of set cells: runs of adjacent rows that touch (8-connected) are joined,
    each run's root is the lowest-numbered run of its component (union-find in Python for few joins,
    otherwise rounds of neighbour-min, root hooking and pointer jumping), and the roots in raster order
    number the components.
    """
    h, w = mask.shape
    out = np.zeros((h, w), dtype=np.int32)
    wp = w + 2  # an empty column either side: no run crosses a row end
    p = np.zeros((h, wp), dtype=bool)
    p[:, 1:-1] = mask
    pf = p.ravel()
    body = pf[1:-1]
    first = body & ~pf[:-2]  # body[k] is padded cell k + 1
    s = first.nonzero()[0] + 1  # run starts and ends in raster order, so run i is (s[i], e[i])
    if not len(s):
        return out, 0
    e = (body & ~pf[2:]).nonzero()[0] + 1
    nr = len(s)
    # run b of the next row touches run a when s[b] <= e[a] + wp + 1 and e[b] >= s[a] + wp - 1: a range of b
    # array methods rather than the np.* functions: the same routines without a Python wrapper each
    lo = e.searchsorted(s + (wp - 1))
    hi = s.searchsorted(e + (wp + 1), side="right")
    cnt = np.maximum(hi - lo, 0)
    ne = int(np.add.reduce(cnt))
    lab = np.arange(nr)
    if ne:
        ea = lab.repeat(cnt)
        eb = np.arange(ne) + (lo - (cnt.cumsum() - cnt)).repeat(cnt)
        if ne <= _UF_MAX_EDGES:
            parent = list(range(nr))
            for a, b in zip(ea.tolist(), eb.tolist(), strict=True):
                while parent[a] != a:
                    a = parent[a]
                while parent[b] != b:
                    b = parent[b]
                if a < b:
                    parent[b] = a
                elif b < a:
                    parent[a] = b
            for i in range(nr):  # parents are lower runs: in order, each parent already points at its root
                parent[i] = parent[parent[i]]
            lab = np.array(parent)
        else:
            while True:
                la, lb = lab[ea], lab[eb]
                m = lab.copy()
                np.minimum.at(m, ea, lb)
                np.minimum.at(m, eb, la)
                np.minimum.at(m, la, lb)
                np.minimum.at(m, lb, la)
                m = m[m]
                m = m[m]
                if not (m != lab).any():
                    break
                lab = m
    is_root = lab == np.arange(nr)
    num = is_root.cumsum()[lab].astype(np.int32)
    cells = mask.ravel().nonzero()[0]  # np.flatnonzero
    # each cell's run: the run starts up to the cell (its body index row * wp + column = cell + 2 * row)
    out.ravel()[cells] = num[first.cumsum()[cells + 2 * (cells // w)] - 1]
    return out, int(count_nonzero(is_root))


def runs_longest(t: NDArray[np.float64], hit: NDArray[np.bool_], max_gap: float) -> tuple[float, float, int]:
    """Longest stretch along sorted positions ``t`` of hits with no gap between hits above ``max_gap``.
    Returns (start, end, hits)."""
    th = t[hit]  # a copy: sorted in place
    th.sort()
    n = len(th)
    if n == 0:
        return 0.0, 0.0, 0
    if n <= 128:  # a short list: the same float operations and first-maximum choice, without numpy's per-call cost
        v = th.tolist()
        best, bs, be, s = -math.inf, 0, 0, 0
        for i in range(1, n + 1):
            if i == n or v[i] - v[i - 1] > max_gap:
                key = (v[i - 1] - v[s]) + 1e-6 * (i - s)
                if key > best:
                    best, bs, be = key, s, i - 1
                s = i
        return v[bs], v[be], be - bs + 1
    br = ((th[1:] - th[:-1]) > max_gap).nonzero()[0]
    starts = np.zeros(len(br) + 1, dtype=np.intp)
    starts[1:] = br + 1
    ends = np.full(len(br) + 1, len(th) - 1, dtype=np.intp)
    ends[:-1] = br
    cnt = ends - starts + 1
    span = th[ends] - th[starts]
    best = int(np.argmax(span + 1e-6 * cnt))
    return float(th[starts[best]]), float(th[ends[best]]), int(cnt[best])
