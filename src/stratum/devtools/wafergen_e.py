"""Independent generator E of labelled wafer maps: the pattern classifier's NEVER-FITTED held-out test set.

Written from the taxonomy's generator spec and labelling rules only (families, masks, equal-area thirds with
the 15 % global rule, severity from the realised density in the region), without reading the other
generators or the classifier. Its maps are shaped after the public datasets the taxonomy describes:

- sizes: a quarter MixedWM38-like (about 52 dies across), half WM-811K-like (20-80 across), a quarter large
  (80-300 across); non-square die pitch (y/x 0.6-1.6) on 40 %; flats (any side), notches, missing inner dies
  (drop-in test sites), 1-16 probe sites in a touchdown footprint, coordinates that start anywhere (+y north);
- families weighted like WM-811K (edge_ring and edge_loc most common, center and loc common, scratch thin and
  long, donut rare) while every one of the 15 families appears; 28 % of maps are mixtures: three quarters the
  MixedWM38 combinations of 2-4 of center/donut/edge_loc/edge_ring/loc/scratch (never center+donut nor
  edge_ring+edge_loc), a quarter one of those with a stripe, a reticle repeat or a bad probe site;
- background: Bernoulli(p0 <= 9 %), a third of it clustered (gamma-mixed per 3x3 block: negative-binomial
  counts, no wafer-scale structure).

Labels: one per drawn component, from its mask (the region) and the fails realised in it, background and other
components included. Location: ``global`` when every equal-area third (split at normalised radius sqrt(1/3),
sqrt(2/3); the radius normalised by the outermost die centre's distance plus half an x pitch, in physical
units) holds >= 15 % of the region's dies, else the third holding most (innermost on a tie); whole-wafer
families are ``global``. Severity: the region's fail density, low < 20 % <= med < 50 % <= high. Refinements:
octant of the blob centre (``loc``) or arc centre (``edge_loc``); scratch orientation from the principal axis
of its region; gross_region side; radial_gradient direction.

Faint and unreachable patterns are never labelled: a component is redrawn (new parameters, same map layout;
after 25 tries a new layout) until it stands out, so E carries no "labelled but invisible" maps. A local
region needs z >= 4 against the fail rate outside every local region, a density >= 10 points above it and
>= 5 fails; a scratch >= 30 % of its dies failing and >= 0.45 R and 6 dies long after clipping at the edge;
a loc blob stays inside r <= 0.93. A bad site or reticle offset needs the same against the other dies, a
gross region 30 points above the rest, a gradient 20 points between the inner and outer thirds; ``none``
realises <= 9 % fails, ``random`` >= 12 %, ``near_full`` >= 78 %. A label whose class the taxonomy does not
list (e.g. a ``loc`` that came out ``global``) is redrawn too. In mixtures, a local component may share at
most 15 % of its region with the others (redrawn otherwise); adjacency and smaller overlaps are left as
drawn (label ambiguity the classifier must live with).

Reproducible: ``numpy.random.Generator(PCG64(seed))``; the same seed gives the same map and labels.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.random import PCG64, Generator

from stratum.devtools.wafergen import Label, Sample
from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import DieMap

#: single-map family weights (WM-811K-like ordering for its 8 classes; the taxonomy's extra 7 families added)
WEIGHTS: dict[str, float] = {
    "none": 8,
    "random": 5,
    "center": 9,
    "donut": 4,
    "edge_ring": 11,
    "edge_loc": 10,
    "loc": 9,
    "scratch": 7,
    "near_full": 3,
    "gross_region": 5,
    "radial_gradient": 5,
    "row_stripe": 5,
    "column_stripe": 5,
    "reticle_repeat": 5,
    "site_pattern": 6,
}
P_MIXED = 0.28
#: the 29 MixedWM38 mixtures (13 of two, 12 of three, 4 of four types)
_C, _D, _EL, _ER, _L, _S = "center", "donut", "edge_loc", "edge_ring", "loc", "scratch"
MIXED_WM38: tuple[tuple[str, ...], ...] = (
    (_C, _EL), (_C, _ER), (_C, _L), (_C, _S), (_D, _EL), (_D, _ER), (_D, _L), (_D, _S),
    (_EL, _L), (_EL, _S), (_ER, _L), (_ER, _S), (_L, _S),
    (_C, _EL, _L), (_C, _EL, _S), (_C, _ER, _L), (_C, _ER, _S), (_C, _L, _S), (_D, _EL, _L),
    (_D, _EL, _S), (_D, _ER, _L), (_D, _ER, _S), (_D, _L, _S), (_EL, _L, _S), (_ER, _L, _S),
    (_C, _L, _EL, _S), (_C, _L, _ER, _S), (_D, _L, _EL, _S), (_D, _L, _ER, _S),
)  # fmt: skip
MIX_BASE = (_C, _D, _EL, _ER, _L, _S)
MIX_EXTRA = ("row_stripe", "column_stripe", "reticle_repeat", "site_pattern")
SPLITS = (math.sqrt(1 / 3), math.sqrt(2 / 3))
#: probe footprints (columns x rows) per site count
FOOTPRINTS: dict[int, tuple[tuple[int, int], ...]] = {
    1: ((1, 1),),
    2: ((2, 1), (1, 2)),
    3: ((3, 1), (1, 3)),
    4: ((4, 1), (1, 4), (2, 2)),
    6: ((3, 2), (2, 3)),
    8: ((4, 2), (2, 4), (8, 1)),
    12: ((4, 3), (3, 4)),
    16: ((4, 4), (8, 2), (2, 8)),
}


class Wafer:
    """A die layout: integer die indices, physical centres, normalised polar coordinates, probe sites."""

    def __init__(self, rng: Generator, need_sites: bool = False) -> None:
        u = rng.random()
        if u < 0.25:
            across = int(rng.integers(50, 55))
        elif u < 0.75:
            across = int(round(math.exp(rng.uniform(math.log(20), math.log(80)))))
        else:
            across = int(round(math.exp(rng.uniform(math.log(80), math.log(300)))))
        self.across = across
        self.px = 1.0
        self.py = float(rng.uniform(0.6, 1.6)) if rng.random() < 0.4 else 1.0
        rw = across / 2  # wafer radius in x pitches
        sx, sy = (float(rng.choice([0.0, 0.5])) for _ in range(2))
        self.sx, self.sy = sx, sy  # die (i, j) is centred at ((i + sx) px, (j + sy) py) from the wafer centre
        ni, nj = int(rw) + 2, int(rw / self.py) + 2
        gi, gj = np.meshgrid(np.arange(-ni, ni + 1), np.arange(-nj, nj + 1))
        ii, jj = gi.ravel(), gj.ravel()
        xc, yc = (ii + sx) * self.px, (jj + sy) * self.py
        keep = np.hypot(xc, yc) <= rw - rng.uniform(0.0, 0.5) * min(self.px, self.py)
        if rng.random() < 0.35:  # a flat on one side
            ang = float(rng.choice([-math.pi / 2, -math.pi / 2, 0.0, math.pi / 2, math.pi]))
            depth = rw * rng.uniform(0.03, 0.09)
            keep &= xc * math.cos(ang) + yc * math.sin(ang) <= rw - depth
        elif rng.random() < 0.35:  # a notch
            ang = float(rng.uniform(0, 2 * math.pi))
            nr = rng.uniform(1.0, 2.5)
            keep &= np.hypot(xc - rw * math.cos(ang), yc - rw * math.sin(ang)) > nr
        ii, jj, xc, yc = ii[keep], jj[keep], xc[keep], yc[keep]
        d = np.hypot(xc, yc)
        rcov = float(d.max()) + 0.5 * self.px
        r = d / rcov
        if rng.random() < 0.3:  # missing inner dies: drop-in test sites (1x1 to 2x3 blocks)
            drop = np.zeros(len(ii), dtype=bool)
            inner = np.flatnonzero(r < 0.85)
            for k in rng.choice(inner, size=min(len(inner), int(rng.integers(2, 9))), replace=False):
                bw, bh = int(rng.integers(1, 3)), int(rng.integers(1, 4))
                drop |= (ii >= ii[k]) & (ii < ii[k] + bw) & (jj >= jj[k]) & (jj < jj[k] + bh)
            keep2 = ~drop
            ii, jj, xc, yc, r = ii[keep2], jj[keep2], xc[keep2], yc[keep2], r[keep2]
        self.i, self.j, self.xc, self.yc = ii, jj, xc, yc
        self.n = len(ii)
        self.rcov = rcov
        self.r = r
        self.u, self.v = xc / rcov, yc / rcov
        self.theta = np.arctan2(yc, xc)
        self.third = (r >= SPLITS[0]).astype(np.int8) + (r >= SPLITS[1]).astype(np.int8)
        self.index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(ii, jj, strict=True))}
        # probe sites
        if need_sites:
            ns = int(rng.choice([2, 3, 4, 4, 6, 8, 8, 12, 16, 16]))
        else:
            ns = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16], p=[0.35, 0.15, 0.03, 0.2, 0.03, 0.12, 0.02, 0.1]))
        fw, fh = FOOTPRINTS[ns][int(rng.integers(len(FOOTPRINTS[ns])))]
        self.n_sites, self.fw, self.fh = ns, fw, fh
        oi, oj = int(rng.integers(fw)), int(rng.integers(fh))
        raw = (ii - oi) % fw + fw * ((jj - oj) % fh)
        perm = rng.permutation(ns) if rng.random() < 0.5 else np.arange(ns)
        base = int(rng.integers(0, 2))
        self.site_idx = perm[raw]  # 0..ns-1
        self.site: np.ndarray | None = (
            None if ns == 1 and rng.random() < 0.5 else (self.site_idx + base).astype(np.int64)
        )
        x0, y0 = int(rng.integers(-400, 400)), int(rng.integers(-400, 400))
        self.x, self.y = (ii - ii.min() + x0).astype(np.int64), (jj - jj.min() + y0).astype(np.int64)

    def location(self, region: np.ndarray) -> str:
        return location_of(self.third[region], int(region.sum()))


def location_of(third: np.ndarray, n: int) -> str:
    """Labelling rule: global if every equal-area third holds >= 15 % of the region, else the fullest third."""
    shares = [int(np.count_nonzero(third == t)) / max(n, 1) for t in range(3)]
    if min(shares) >= 0.15:
        return "global"
    best = max(range(3), key=lambda t: (shares[t], -t))
    return ("center", "mid", "edge")[best]


def severity_of(density: float) -> str:
    return "low" if density < 0.20 else "med" if density < 0.50 else "high"


def _strength(rng: Generator, lo: float = 0.3, low_share: float = 0.2) -> float:
    """In-mask fail probability: mostly ``lo``..1, sometimes a faint 0.12..``lo``."""
    return float(rng.uniform(0.12, lo) if rng.random() < low_share else rng.uniform(lo, 1.0))


class _Comp:
    def __init__(self, family: str, q: np.ndarray, region: np.ndarray, ref: str | None = None) -> None:
        self.family, self.q, self.region, self.ref = family, q, region, ref


def _min_dies(w: Wafer, dies: float) -> float:
    """``dies`` x pitches in normalised radius."""
    return dies * w.px / w.rcov


def _center(rng: Generator, w: Wafer) -> _Comp:
    r0 = max(rng.uniform(0.18, 0.62), _min_dies(w, 2.5))
    region = w.r < r0
    p = _strength(rng)
    if rng.random() < 0.5:  # Gaussian fall-off
        sigma = r0 * rng.uniform(0.5, 0.9)
        q = np.where(region, min(1.0, p * 1.3) * np.exp(-0.5 * (w.r / sigma) ** 2), 0.0)
    else:
        q = np.where(region, p, 0.0)
    return _Comp("center", q, region)


def _donut(rng: Generator, w: Wafer) -> _Comp:
    mid = rng.uniform(0.4, 0.7)
    half = max(rng.uniform(0.06, 0.15), _min_dies(w, 1.2))
    region = (w.r > mid - half) & (w.r < mid + half)
    q = np.where(region, _strength(rng), 0.0)
    return _Comp("donut", q, region)


def _edge_ring(rng: Generator, w: Wafer) -> _Comp:
    width = max(rng.uniform(0.05, 0.16), _min_dies(w, 1.3))
    region = w.r > 1 - width
    return _Comp("edge_ring", np.where(region, _strength(rng, 0.35), 0.0), region)


def _edge_loc(rng: Generator, w: Wafer) -> _Comp:
    width = max(rng.uniform(0.06, 0.18), _min_dies(w, 1.5))
    th0 = rng.uniform(-math.pi, math.pi)
    half = math.radians(rng.uniform(12, 50))
    dth = np.abs((w.theta - th0 + math.pi) % (2 * math.pi) - math.pi)
    region = (w.r > 1 - width) & (dth <= half)
    return _Comp("edge_loc", np.where(region, _strength(rng, 0.4), 0.0), region, tx.octant_of(th0))


def _loc(rng: Generator, w: Wafer) -> _Comp:
    rho = max(rng.uniform(0.07, 0.22), _min_dies(w, 1.8))
    rc = math.sqrt(rng.uniform(0.12**2, max(0.13, min(0.75, 0.92 - rho)) ** 2))  # area-uniform
    th = rng.uniform(-math.pi, math.pi)
    cu, cv = rc * math.cos(th), rc * math.sin(th)
    stretch = rng.uniform(1.0, 1.8)  # elliptical blobs, random axis
    ax = rng.uniform(0, math.pi)
    du, dv = w.u - cu, w.v - cv
    a = du * math.cos(ax) + dv * math.sin(ax)
    b = -du * math.sin(ax) + dv * math.cos(ax)
    d = np.hypot(a / stretch, b)
    region = d < rho
    p = _strength(rng)
    if rng.random() < 0.5:
        q = np.where(region, min(1.0, p * 1.3) * np.exp(-0.5 * (d / (rho * 0.6)) ** 2), 0.0)
    else:
        q = np.where(region, p, 0.0)
    return _Comp("loc", q, region, tx.octant_of(th))


def _bezier_or_polyline(rng: Generator) -> np.ndarray:
    """Points (normalised u, v) along a scratch: straight, a polyline of 2-3 segments, or a quadratic Bezier."""
    r0 = math.sqrt(rng.uniform(0, 0.8**2))
    a0 = rng.uniform(-math.pi, math.pi)
    start = np.array([r0 * math.cos(a0), r0 * math.sin(a0)])
    length = rng.uniform(0.6, 1.6)
    phi = rng.uniform(0, 2 * math.pi)
    kind = rng.random()
    t = np.linspace(0.0, 1.0, 400)[:, None]
    if kind < 0.4:
        end = start + length * np.array([math.cos(phi), math.sin(phi)])
        return start + t * (end - start)
    if kind < 0.7:
        nseg = int(rng.integers(2, 4))
        pts = [start]
        for _ in range(nseg):
            phi += math.radians(rng.uniform(5, 30)) * rng.choice([-1, 1])
            pts.append(pts[-1] + length / nseg * np.array([math.cos(phi), math.sin(phi)]))
        seg = np.linspace(0.0, nseg, 400)
        k = np.minimum(seg.astype(int), nseg - 1)
        f = (seg - k)[:, None]
        arr = np.array(pts)
        return arr[k] + f * (arr[k + 1] - arr[k])
    end = start + length * np.array([math.cos(phi), math.sin(phi)])
    ctrl = (start + end) / 2 + rng.uniform(-0.3, 0.3) * length * np.array([-math.sin(phi), math.cos(phi)])
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * end


def _scratch(rng: Generator, w: Wafer) -> _Comp:
    pts = _bezier_or_polyline(rng)
    wide = rng.random() < 0.35
    n = len(pts)
    # gaps: 0-3 stretches of the curve, <= 30 % of it, without fails
    on = np.ones(n, dtype=bool)
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        gl = int(n * rng.uniform(0.03, 0.1))
        g0 = int(rng.integers(0, n - gl))
        on[g0 : g0 + gl] = False
    if on.mean() < 0.7:
        on[:] = True
    region = np.zeros(w.n, dtype=bool)
    lit = np.zeros(w.n, dtype=bool)
    # dense samples along the curve -> the die under each (die units)
    steps = max(2, int(np.hypot(*np.diff(pts, axis=0).T).sum() * w.rcov * 4))
    idx = np.linspace(0, n - 1, steps).round().astype(int)
    xs, ys = pts[idx, 0] * w.rcov, pts[idx, 1] * w.rcov
    sx, sy = w.xc[0] / w.px - w.i[0], w.yc[0] / w.py - w.j[0]
    gi, gj = np.round(xs / w.px - sx).astype(int), np.round(ys / w.py - sy).astype(int)
    d = np.gradient(pts[idx], axis=0)
    for a, b, k, (dx, dy) in zip(gi, gj, idx, d, strict=True):
        cells = [(int(a), int(b))]
        if wide:  # one more die across the line, on its perpendicular's dominant axis
            cells.append((int(a), int(b) + 1) if abs(dx) >= abs(dy) else (int(a) + 1, int(b)))
        for c in cells:
            m = w.index.get(c)
            if m is not None:
                region[m] = True
                lit[m] |= bool(on[k])
    p = rng.uniform(0.45, 0.75) if rng.random() < 0.25 else rng.uniform(0.75, 1.0)
    q = np.where(lit, p, 0.0)
    ref = "h"
    if region.sum() >= 3:
        pu, pv = w.u[region], w.v[region]
        cov = np.cov(np.vstack([pu - pu.mean(), pv - pv.mean()]))
        vals, vecs = np.linalg.eigh(cov)
        ax = vecs[:, int(np.argmax(vals))]
        ref = tx.orientation_of(math.atan2(ax[1], ax[0]))
        extent = float(np.ptp(pu * ax[0] + pv * ax[1]))  # length along the principal axis (normalised)
        # thin and long (WM-811K): at least 0.45 R and 6 dies long, after clipping at the wafer edge
        if extent < 0.45 or extent * w.rcov < 6 * max(w.px, w.py):
            region[:] = False
    else:
        region[:] = False
    return _Comp("scratch", q, region, ref)


def _stripe(rng: Generator, w: Wafer, family: str) -> _Comp:
    lines = w.j if family == "row_stripe" else w.i
    vals, counts = np.unique(lines, return_counts=True)
    ok = vals[counts >= 0.4 * counts.max()]
    region = np.zeros(w.n, dtype=bool)
    for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3]))):
        first = int(rng.choice(ok))
        width = 1 if rng.random() < 0.75 else 2
        region |= (lines >= first) & (lines < first + width)
    return _Comp(family, np.where(region, _strength(rng, 0.55, 0.2), 0.0), region)


def _reticle(rng: Generator, w: Wafer) -> _Comp:
    for _ in range(50):
        rw, rh = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        # a failing offset must not be a probe site's pattern (it would follow SITE_NUM: site_pattern)
        if w.n_sites == 1 or rw % w.fw or rh % w.fh:
            break
    oi, oj = int(rng.integers(rw)), int(rng.integers(rh))
    cells = rw * rh
    k = int(rng.choice([1, 1, 1, 2, 2, 3]))
    k = max(1, min(k, cells // 3))
    offs = rng.choice(cells, size=k, replace=False)
    code = ((w.i - oi) % rw) + rw * ((w.j - oj) % rh)
    region = np.isin(code, offs)
    return _Comp("reticle_repeat", np.where(region, _strength(rng, 0.5, 0.25), 0.0), region)


def _site(rng: Generator, w: Wafer) -> _Comp:
    bad = int(rng.integers(w.n_sites))
    region = w.site_idx == bad
    return _Comp("site_pattern", np.where(region, _strength(rng, 0.25, 0.2), 0.0), region)


def _gross(rng: Generator, w: Wafer) -> _Comp:
    side = str(rng.choice(tx.SIDES))
    half = {"n": w.v > 0, "s": w.v < 0, "e": w.u > 0, "w": w.u < 0}
    mask = half[side] if len(side) == 1 else half[side[0]] & half[side[1]]
    q = np.where(mask, rng.uniform(0.55, 1.0), 0.0)
    return _Comp("gross_region", q, mask, side)  # region here: the side (the label's region is the wafer)


def _gradient(rng: Generator, w: Wafer) -> _Comp:
    ref = "rising" if rng.random() < 0.55 else "falling"
    gamma = rng.uniform(0.7, 2.0)
    lo = rng.uniform(0.0, 0.08)
    hi = rng.uniform(lo + 0.3, 0.95)
    ramp = w.r**gamma
    q = lo + (hi - lo) * (ramp if ref == "rising" else 1 - ramp)
    return _Comp("radial_gradient", q, np.ones(w.n, dtype=bool), ref)


def _near_full(rng: Generator, w: Wafer) -> _Comp:
    return _Comp("near_full", np.full(w.n, rng.uniform(0.8, 1.0)), np.ones(w.n, dtype=bool))


def _random(rng: Generator, w: Wafer) -> _Comp:
    return _Comp("random", np.full(w.n, rng.uniform(0.13, 0.6)), np.ones(w.n, dtype=bool))


_DRAW = {
    "center": _center,
    "donut": _donut,
    "edge_ring": _edge_ring,
    "edge_loc": _edge_loc,
    "loc": _loc,
    "scratch": _scratch,
    "reticle_repeat": _reticle,
    "site_pattern": _site,
    "gross_region": _gross,
    "radial_gradient": _gradient,
    "near_full": _near_full,
    "random": _random,
    "row_stripe": lambda rng, w: _stripe(rng, w, "row_stripe"),
    "column_stripe": lambda rng, w: _stripe(rng, w, "column_stripe"),
}


def _background(rng: Generator, w: Wafer, none_map: bool) -> np.ndarray:
    u = rng.random()
    p0 = rng.uniform(0.0, 0.02) if u < 0.4 else rng.uniform(0.02, 0.06) if u < 0.85 else rng.uniform(0.06, 0.085)
    if none_map:
        p0 = rng.uniform(0.0, 0.08)
    p = np.full(w.n, p0)
    if rng.random() < 0.33:  # clustered: gamma-mixed intensity per 3x3 block (negative-binomial counts)
        shape = rng.uniform(0.7, 3.0)
        bi, bj = (w.i - w.i.min()) // 3, (w.j - w.j.min()) // 3
        key = bi * (int(bj.max()) + 1) + bj
        g = rng.gamma(shape, 1 / shape, size=int(key.max()) + 1)
        p = np.minimum(p * g[key], 0.5)
    return rng.random(w.n) < p


def _z(fails: np.ndarray, region: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(z of the region's fail count against the rate in ``ref``, density difference)."""
    n = int(region.sum())
    if n == 0 or not ref.any():
        return 0.0, 0.0
    p = min(max(float(fails[ref].mean()), 0.01), 0.99)
    k = float(fails[region].sum())
    return (k - n * p) / math.sqrt(n * p * (1 - p)), k / n - float(fails[ref].mean())


def _pick_families(rng: Generator) -> tuple[str, ...]:
    if rng.random() < P_MIXED:
        if rng.random() < 0.75:
            return MIXED_WM38[int(rng.integers(len(MIXED_WM38)))]
        return (str(rng.choice(MIX_BASE)), str(rng.choice(MIX_EXTRA)))
    names = list(WEIGHTS)
    wts = np.array([WEIGHTS[f] for f in names], dtype=float)
    return (names[int(rng.choice(len(names), p=wts / wts.sum()))],)


def _attempt(rng: Generator, w: Wafer, fams: tuple[str, ...]) -> tuple[np.ndarray, list[Label]] | None:
    whole = {"random", "near_full", "radial_gradient"}
    if fams == ("none",):
        fail = _background(rng, w, True)
        dens = float(fail.mean())
        if dens > 0.09:
            return None
        return fail, [Label("none", "global", "low", None, dens, np.ones(w.n, dtype=bool))]
    comps = [_DRAW[f](rng, w) for f in fams]
    fail = np.zeros(w.n, dtype=bool) if any(f in whole for f in fams) else _background(rng, w, False)
    for c in comps:
        fail |= rng.random(w.n) < c.q
    local = [c for c in comps if c.family not in tx.WHOLE_WAFER]
    any_local = np.zeros(w.n, dtype=bool)
    for c in local:
        any_local |= c.region
    labels: list[Label] = []
    for c in comps:
        fam = c.family
        others = np.zeros(w.n, dtype=bool)
        for o in local:
            if o is not c:
                others |= o.region
        if fam in tx.WHOLE_WAFER and fam not in tx.OWN_REGION:
            region = np.ones(w.n, dtype=bool)
            loc = "global"
        else:
            region = c.region
            if region.sum() < 3:
                return None
            loc = "global" if fam in tx.WHOLE_WAFER else w.location(region)
        dens = float(fail[region].mean())
        # visibility / definition checks
        if fam == "random" and dens < 0.12:
            return None
        if fam == "near_full" and dens < 0.78:
            return None
        if fam == "gross_region":
            _, diff = _z(fail, c.region, ~c.region & ~others)
            if diff < 0.3:
                return None
        elif fam == "radial_gradient":
            inner, outer = fail[w.third == 0].mean(), fail[w.third == 2].mean()
            if abs(float(outer - inner)) < 0.2:
                return None
        elif fam in ("site_pattern", "reticle_repeat"):
            z, diff = _z(fail, region & ~others, ~region & ~others)
            if z < 4 or diff < 0.1:
                return None
        elif fam not in whole:
            if float((c.region & others).sum()) > 0.15 * float(c.region.sum()):
                return None
            if fam == "loc" and float(w.r[region].max()) > 0.93:  # a local cluster stays off the edge
                return None
            z, diff = _z(fail, region, ~any_local)
            # visible: stands out, >= 5 fails; a scratch reads as a line only when >= 30 % of it fails
            if z < 4 or diff < 0.1 or int(fail[region].sum()) < 5 or (fam == "scratch" and dens < 0.3):
                return None
        sev = severity_of(dens)
        if tx.class_id(fam, loc, sev, c.ref) not in tx.by_id():
            return None
        labels.append(Label(fam, loc, sev, c.ref, dens, region.copy()))
    return fail, labels


def generate(seed: int, family: str | None = None) -> Sample:
    """A labelled map; ``family`` forces a single-pattern map of that family."""
    return generate_with_layout(seed, family)[0]


def generate_with_layout(seed: int, family: str | None = None) -> tuple[Sample, Wafer]:
    """``generate`` and the layout it drew (physical die centres, pitch: what tests recompute labels from)."""
    rng = Generator(PCG64(seed))
    fams = (family,) if family is not None else _pick_families(rng)
    if any(f not in tx.FAMILIES for f in fams):
        raise ValueError(f"unknown family {family!r}")
    for _ in range(40):
        w = Wafer(rng, need_sites="site_pattern" in fams)
        for _ in range(25):
            got = _attempt(rng, w, fams)
            if got is not None:
                fail, labels = got
                hard_bin = np.where(fail, rng.integers(2, 10, size=w.n), 1).astype(np.int64)
                dm = DieMap(x=w.x, y=w.y, fail=fail, site=w.site, hard_bin=hard_bin)
                return Sample(dies=dm, labels=labels, diameter=w.across, seed=seed), w
    raise RuntimeError(f"generator E: no visible {fams} map for seed {seed}")
