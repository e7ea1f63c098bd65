"""Independent generator D of labelled wafer maps (dev tool: a test set written from the taxonomy's generator
spec and labelling rules alone, without reading the other generators or the classifier).

Wafer: a physical circle of radius 1 tiled by dies of pitch (px, py), px = 2 / dies-across, py / px drawn in
0.6-1.7 (square in a third of the maps); dies-across log-uniform over 20-120 (80 %) or 120-300 (20 %). A die is
on the wafer when its centre (or, in half the maps, all four corners) lies inside the edge exclusion. Flats and
notches cut the edge, a few inner dies may be missing (scattered, or one per reticle-sized block as test
structures), coordinates start anywhere in -500..500, 0-16 probe sites from a regular touchdown footprint (1x1
to 4x4, 8x1, 8x2; numbering from 0 or 1, permuted), hard bins in most maps.

Background: Bernoulli(p0) or clustered (negative-binomial: Poisson defects with a gamma multiplier per block of
2-6 dies), p0 mostly 1-5 %.

Patterns (one per map in 75 % of maps, every family equally likely; else a MixedWM38-style mixture of two or
three of centre, donut, edge ring, edge loc, loc and scratch, never centre+donut nor ring+edge loc, one of them
sometimes swapped for a stripe, reticle repeat or site pattern): flat or Gaussian blobs in a disc (centre), an
annulus (donut), the outer band (edge ring), an arc of it (edge loc), Gaussian (possibly elliptical) blobs at
(r, theta) (loc), polylines and Bezier curves 1-2 dies wide, at least 8 dies long, with gaps (scratch), a
quadrant or half with jittered boundary (gross region), p(r) monotone in r (radial gradient), 1-4 bands of whole
rows or columns (each line reaching inside r = 0.75: a short line along the rim is an edge arc to the eye),
fixed offsets inside a reticle of 2-6 x 2-6 dies, one elevated probe site.

Labels follow the labelling rules, computed here from the physical layout: normalised radius = distance from the
true wafer centre over (outermost die centre + half the mean pitch), thirds split at sqrt(1/3) and sqrt(2/3),
location ``global`` when every third holds >= 15 % of the region's dies else the third holding most; severity
from the realised fail density in the region, background fails included (a scratch's region includes its gaps,
a site pattern's is the bad site's dies, a reticle repeat's the dies at the failing offsets, other whole-wafer
families' the whole wafer). Refinements: octant of the blob or arc centre (loc, edge loc), orientation of the
principal axis of a scratch's region, side of a gross region, direction of a gradient.

Faint patterns (decision): a pattern is only labelled when a test engineer would see it. A map is redrawn (same
random stream, so still a function of the seed) when any labelled local pattern's region is not clearly above the
fail rate outside every pattern region (density at least 2x and 8 points above it, z >= 4.5, >= 3 fails), when a
site pattern's bad site is not as clearly above the other sites, when a gradient's inner and outer thirds differ
by less than 12 points or 2x, when a gross region's part is not 2x and 15 points above the rest, when two local
regions overlap by more than 25 % of the smaller (touching is allowed, as in MixedWM38), or when a label's class
is not reachable in the taxonomy (e.g. a scratch whose region is below 20 % fails). Ambiguous shapes are redrawn
too: a scratch shorter than 8 dies (a blob) or with half its dies at r >= 0.85 (a line along the rim is an edge
arc to the eye). ``none`` maps hold at most 9 % fails, ``random`` maps 12-75 %, ``near_full`` maps at least 80 %.
Redrawing rather than dropping the label keeps family frequencies as designed and keeps every label honest:
faint maps are simply not produced.

Reproducible: ``numpy.random.Generator(PCG64(seed))``; the same seed (and family) gives the same map and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stratum.devtools.wafergen import Label, Sample
from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import DieMap

LOCAL = ("center", "donut", "edge_ring", "edge_loc", "loc", "scratch")
EXTRAS = ("row_stripe", "column_stripe", "reticle_repeat", "site_pattern")
EXCLUSIVE = (frozenset({"center", "donut"}), frozenset({"edge_ring", "edge_loc"}))
FOOTPRINTS = ((1, 1), (2, 1), (1, 2), (4, 1), (1, 4), (2, 2), (4, 2), (2, 4), (4, 4), (8, 1), (8, 2))
MIXED_SHARE = 0.25
MAX_ATTEMPTS = 60


@dataclass
class SampleD(Sample):
    """A generator-D sample; ``meta`` keeps the physical layout the labels were computed from (for tests)."""

    meta: dict = field(default_factory=dict)


@dataclass
class _Wafer:
    i: np.ndarray  # grid column of each die
    j: np.ndarray  # grid row
    X: np.ndarray  # physical centre, wafer radius 1
    Y: np.ndarray
    rn: np.ndarray  # normalised radius by the labelling rules
    th: np.ndarray  # angle, counter-clockwise from +x
    third: np.ndarray  # 0 inner, 1 middle, 2 outer
    px: float
    py: float
    site: np.ndarray | None
    footprint: tuple[int, int]
    edge: str
    rdies: float  # wafer radius in (mean) dies
    x0: int
    y0: int

    @property
    def n(self) -> int:
        return len(self.i)


@dataclass
class _Comp:
    family: str
    shape: np.ndarray  # where the pattern is (visibility, overlap)
    p: np.ndarray  # fail probability the pattern adds per die
    refinement: str | None = None
    whole: bool = False  # severity region = whole wafer
    region: np.ndarray | None = None  # label region when not the shape (site, reticle: same; whole: all)


def _wafer(rng: np.random.Generator, need_sites: bool) -> _Wafer:
    lo, hi = (20, 120) if rng.random() < 0.8 else (120, 300)
    across = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    px = 2.0 / across
    py = px * (1.0 if rng.random() < 1 / 3 else math.exp(rng.uniform(math.log(0.6), math.log(1.7))))
    ox, oy = rng.uniform(-0.5, 0.5, 2)
    excl = rng.uniform(0.0, 0.02)
    ni, nj = int(1.2 / px) + 2, int(1.2 / py) + 2
    mi, mj = np.meshgrid(np.arange(-ni, ni + 1), np.arange(-nj, nj + 1))
    gi, gj = mi.ravel(), mj.ravel()
    X, Y = (gi + ox) * px, (gj + oy) * py
    lim = (1.0 - excl) ** 2
    if rng.random() < 0.5:
        keep = X * X + Y * Y <= lim
    else:
        keep = np.ones(len(X), dtype=bool)
        for sx in (-0.5, 0.5):
            for sy in (-0.5, 0.5):
                keep &= (X + sx * px) ** 2 + (Y + sy * py) ** 2 <= lim
    u = rng.random()
    edge = "flat" if u < 0.35 else "notch" if u < 0.65 else "round"
    if u < 0.35:  # flat, mostly at the bottom
        ang = -math.pi / 2 if rng.random() < 0.6 else rng.integers(4) * math.pi / 2
        keep &= X * math.cos(ang) + Y * math.sin(ang) <= 1.0 - rng.uniform(0.03, 0.1)
    elif u < 0.65:  # notch
        ang = -math.pi / 2 if rng.random() < 0.6 else rng.integers(4) * math.pi / 2
        rad = rng.uniform(0.02, 0.06)
        keep &= (X - math.cos(ang)) ** 2 + (Y - math.sin(ang)) ** 2 > rad * rad
    gi, gj, X, Y = gi[keep], gj[keep], X[keep], Y[keep]
    rr = np.hypot(X, Y)
    inner = rr < 0.85
    u = rng.random()
    drop = np.zeros(len(X), dtype=bool)
    if u < 0.25:  # scattered missing inner dies
        drop = inner & (rng.random(len(X)) < rng.uniform(0.002, 0.02))
    elif u < 0.4:  # one test-structure die per block
        bw, bh = int(rng.integers(3, 8)), int(rng.integers(3, 8))
        a, b = int(rng.integers(bw)), int(rng.integers(bh))
        drop = inner & (gi % bw == a) & (gj % bh == b)
    gi, gj, X, Y, rr = gi[~drop], gj[~drop], X[~drop], Y[~drop], rr[~drop]
    pitch = 0.5 * (px + py)
    rcov = float(rr.max()) + 0.5 * pitch
    rn = rr / rcov
    third = (rn >= tx.THIRD_SPLITS[0]).astype(np.int8) + (rn >= tx.THIRD_SPLITS[1]).astype(np.int8)
    site = None
    fp = (1, 1)
    if need_sites or rng.random() < 0.75:
        fp = FOOTPRINTS[int(rng.integers(1 if need_sites else 0, len(FOOTPRINTS)))]
        k = fp[0] * fp[1]
        if k > 1 or rng.random() < 0.5:
            perm = rng.permutation(k) + int(rng.integers(2))
            a, b = int(rng.integers(fp[0])), int(rng.integers(fp[1]))
            site = perm[((gi + a) % fp[0]) + fp[0] * ((gj + b) % fp[1])].astype(np.int64)
    return _Wafer(
        i=gi,
        j=gj,
        X=X,
        Y=Y,
        rn=rn,
        th=np.arctan2(Y, X),
        third=third,
        px=px,
        py=py,
        site=site,
        footprint=fp,
        edge=edge,
        rdies=rcov / pitch,
        x0=int(rng.integers(-500, 501)),
        y0=int(rng.integers(-500, 501)),
    )


def _pk(rng: np.random.Generator) -> float:
    """Peak fail probability of a pattern: covers the three severity bands."""
    return float(rng.uniform(0.15, 1.0) if rng.random() < 0.7 else rng.uniform(0.6, 1.0))


def _center(rng, w: _Wafer) -> _Comp:
    cx, cy = rng.normal(0, 0.04, 2)
    r0 = max(rng.uniform(0.18, 0.6), 2.0 / w.rdies)
    d = np.hypot(w.X - cx, w.Y - cy)
    shape = d < r0
    pk = _pk(rng)
    prof = np.ones(w.n) if rng.random() < 0.5 else np.exp(-0.5 * (d / (r0 * rng.uniform(0.5, 1.0))) ** 2)
    return _Comp("center", shape, np.where(shape, pk * prof, 0.0))


def _donut(rng, w: _Wafer) -> _Comp:
    mid, half = rng.uniform(0.3, 0.72), max(rng.uniform(0.06, 0.17), 1.0 / w.rdies)
    r1, r2 = max(mid - half, 0.12), min(mid + half, 0.88)
    shape = (w.rn > r1) & (w.rn < r2)
    pk = _pk(rng)
    prof = np.ones(w.n) if rng.random() < 0.5 else np.exp(-0.5 * ((w.rn - mid) / (half * rng.uniform(0.6, 1.2))) ** 2)
    if rng.random() < 0.3:  # uneven around the ring
        prof = prof * (0.65 + 0.35 * np.cos(w.th - rng.uniform(0, 2 * math.pi)))
    return _Comp("donut", shape, np.where(shape, pk * prof, 0.0))


def _edge_ring(rng, w: _Wafer) -> _Comp:
    width = max(rng.uniform(0.05, 0.2), 1.6 / w.rdies)
    shape = w.rn > 1.0 - width
    pk = _pk(rng)
    prof = np.ones(w.n) if rng.random() < 0.5 else 1.0 - 0.6 * (1.0 - w.rn) / width
    return _Comp("edge_ring", shape, np.where(shape, pk * prof, 0.0))


def _edge_loc(rng, w: _Wafer) -> _Comp:
    th0 = rng.uniform(0, 2 * math.pi)
    half = math.radians(rng.uniform(12, 60))
    width = max(rng.uniform(0.08, 0.3), 2.2 / w.rdies)
    dth = np.abs((w.th - th0 + math.pi) % (2 * math.pi) - math.pi)
    shape = (w.rn > 1.0 - width) & (dth <= half)
    pk = _pk(rng)
    prof = np.ones(w.n) if rng.random() < 0.5 else 1.0 - 0.6 * (1.0 - w.rn) / width
    return _Comp("edge_loc", shape, np.where(shape, pk * prof, 0.0), tx.octant_of(th0))


def _loc(rng, w: _Wafer) -> _Comp:
    r, th0 = math.sqrt(rng.uniform(0.15**2, 0.78**2)), rng.uniform(0, 2 * math.pi)
    cx, cy = r * math.cos(th0), r * math.sin(th0)
    s = max(rng.uniform(0.05, 0.14), 1.1 / w.rdies)
    ratio, rot = rng.uniform(1.0, 2.0), rng.uniform(0, math.pi)
    dx, dy = w.X - cx, w.Y - cy
    a = (dx * math.cos(rot) + dy * math.sin(rot)) / (s * math.sqrt(ratio))
    b = (-dx * math.sin(rot) + dy * math.cos(rot)) * math.sqrt(ratio) / s
    q = a * a + b * b
    shape = q < rng.uniform(1.5, 2.2) ** 2
    pk = _pk(rng)
    prof = np.exp(-0.5 * q) if rng.random() < 0.7 else np.ones(w.n)
    return _Comp("loc", shape, np.where(shape, pk * prof, 0.0), tx.octant_of(th0))


def _die_index(w: _Wafer) -> tuple[np.ndarray, int, int]:
    imin, jmin = int(w.i.min()), int(w.j.min())
    grid = np.full((int(w.j.max()) - jmin + 1, int(w.i.max()) - imin + 1), -1, dtype=np.int64)
    grid[w.j - jmin, w.i - imin] = np.arange(w.n)
    return grid, imin, jmin


def _scratch(rng, w: _Wafer) -> _Comp:
    length = max(rng.uniform(0.3, 1.5), 8.0 / w.rdies)  # at least 8 dies: shorter reads as a blob, not a line
    p0 = np.array([rng.uniform(-0.75, 0.75), rng.uniform(-0.75, 0.75)])
    ang = rng.uniform(0, 2 * math.pi)
    if rng.random() < 0.5:  # polyline: 1-3 segments with small bends
        nseg = int(rng.integers(1, 4))
        pts = [p0]
        for _ in range(nseg):
            ang += rng.normal(0, 0.35)
            pts.append(pts[-1] + length / nseg * np.array([math.cos(ang), math.sin(ang)]))
        ctrl = np.array(pts)
        seglen = np.hypot(*np.diff(ctrl, axis=0).T)
        t = np.linspace(0, seglen.sum(), max(int(seglen.sum() / (0.25 * min(w.px, w.py))), 8))
        cum = np.concatenate([[0], np.cumsum(seglen)])
        k = np.clip(np.searchsorted(cum, t, side="right") - 1, 0, nseg - 1)
        f = ((t - cum[k]) / seglen[k])[:, None]
        curve = ctrl[k] * (1 - f) + ctrl[k + 1] * f
    else:  # quadratic or cubic Bezier
        p3 = p0 + length * np.array([math.cos(ang), math.sin(ang)])
        normal = np.array([-math.sin(ang), math.cos(ang)])
        mids = [p0 + (p3 - p0) * s + normal * rng.normal(0, 0.25 * length) for s in (1 / 3, 2 / 3)]
        ctrl = np.array([p0, mids[0], p3]) if rng.random() < 0.5 else np.array([p0, *mids, p3])
        t = np.linspace(0, 1, max(int(1.5 * length / (0.25 * min(w.px, w.py))), 8))[:, None]
        if len(ctrl) == 3:
            curve = (1 - t) ** 2 * ctrl[0] + 2 * (1 - t) * t * ctrl[1] + t * t * ctrl[2]
        else:
            curve = (
                (1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1] + 3 * (1 - t) * t**2 * ctrl[2] + t**3 * ctrl[3]
            )
    # gaps along the arc length: 0-3 intervals, each 4-15 % of it
    m = len(curve)
    drawn = np.ones(m, dtype=bool)
    for _ in range(int(rng.integers(0, 4))):
        g0 = rng.uniform(0.05, 0.9)
        drawn[int(g0 * m) : int((g0 + rng.uniform(0.04, 0.15)) * m)] = False
    pts = [curve]
    if rng.random() < 0.5:  # two dies wide: a parallel copy half a pitch to one side
        tang = np.gradient(curve, axis=0)
        nrm = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(np.hypot(tang[:, 0], tang[:, 1]), 1e-12)[:, None]
        pts.append(curve + nrm * 0.6 * np.array([w.px, w.py]))
        drawn = np.concatenate([drawn, drawn])
    allp = np.concatenate(pts)
    grid, imin, jmin = _die_index(w)
    ox = w.X[0] / w.px - w.i[0]
    oy = w.Y[0] / w.py - w.j[0]
    gi = np.rint(allp[:, 0] / w.px - ox).astype(np.int64) - imin
    gj = np.rint(allp[:, 1] / w.py - oy).astype(np.int64) - jmin
    ok = (gi >= 0) & (gj >= 0) & (gi < grid.shape[1]) & (gj < grid.shape[0])
    idx = np.full(len(allp), -1)
    idx[ok] = grid[gj[ok], gi[ok]]
    shape = np.zeros(w.n, dtype=bool)
    shape[idx[idx >= 0]] = True
    on = np.zeros(w.n, dtype=bool)
    on[idx[(idx >= 0) & drawn]] = True
    pline = rng.uniform(0.55, 1.0)
    comp = _Comp("scratch", shape, np.where(on, pline, 0.0))
    if shape.sum() >= 2:
        cx, cy = w.X[shape] - w.X[shape].mean(), w.Y[shape] - w.Y[shape].mean()
        cov = np.cov(np.stack([cx, cy]))
        ev, evec = np.linalg.eigh(cov)
        comp.refinement = tx.orientation_of(math.atan2(evec[1, -1], evec[0, -1]))
    return comp


def _near_full(rng, w: _Wafer) -> _Comp:
    p = np.full(w.n, rng.uniform(0.82, 0.99))
    if rng.random() < 0.3:  # a few passing patches
        for _ in range(int(rng.integers(1, 4))):
            c = rng.uniform(-0.6, 0.6, 2)
            p[np.hypot(w.X - c[0], w.Y - c[1]) < rng.uniform(0.05, 0.15)] *= 0.3
    return _Comp("near_full", np.ones(w.n, dtype=bool), p, whole=True)


def _gross(rng, w: _Wafer) -> _Comp:
    quadrant = rng.random() < 0.5
    k = int(rng.integers(4))
    if quadrant:
        phi = math.pi / 4 + k * math.pi / 2 + math.radians(rng.uniform(-12, 12))
        a1, a2 = phi - math.pi / 4, phi + math.pi / 4
        off = rng.uniform(-0.08, 0.08, 2)
        xs, ys = w.X - off[0], w.Y - off[1]
        shape = (xs * math.cos(a1) + ys * math.sin(a1) > 0) & (xs * math.cos(a2) + ys * math.sin(a2) > 0)
        side = ("ne", "nw", "sw", "se")[k]
    else:
        phi = k * math.pi / 2 + math.radians(rng.uniform(-12, 12))
        shape = w.X * math.cos(phi) + w.Y * math.sin(phi) > rng.uniform(-0.1, 0.1)
        side = ("e", "n", "w", "s")[k]
    return _Comp("gross_region", shape, np.where(shape, rng.uniform(0.35, 1.0), 0.0), side, whole=True)


def _gradient(rng, w: _Wafer) -> _Comp:
    lo, hi = rng.uniform(0.0, 0.12), rng.uniform(0.3, 0.95)
    k = rng.uniform(0.8, 2.2)
    rising = rng.random() < 0.5
    t = np.clip(w.rn, 0, 1) ** k
    p = lo + (hi - lo) * (t if rising else 1 - t)
    return _Comp("radial_gradient", np.ones(w.n, dtype=bool), p, "rising" if rising else "falling", whole=True)


def _stripes(rng, w: _Wafer, family: str) -> _Comp:
    coord = w.j if family == "row_stripe" else w.i
    per = w.footprint[1] if family == "row_stripe" else w.footprint[0]
    other = w.footprint[0] if family == "row_stripe" else w.footprint[1]
    # only lines whose chord reaches inside r = 0.75: a short row along the rim reads as an edge arc, not a stripe
    lo = int(coord.min())
    inner = np.full(int(coord.max()) - lo + 1, np.inf)
    np.minimum.at(inner, coord - lo, w.rn)
    cand = np.flatnonzero(inner < 0.75) + lo
    for _ in range(20):
        lines: set[int] = set()
        for _ in range(int(rng.integers(1, 5))):
            c = int(rng.choice(cand))
            lines.update(v for v in range(c, c + int(rng.integers(1, 3))) if v in cand)
        # several lines all on one probe-site row would be a site pattern, not a stripe
        if w.site is None or per == 1 or other > 1 or len(lines) == 1 or len({v % per for v in lines}) > 1:
            break
    shape = np.isin(coord, sorted(lines))
    return _Comp(family, shape, np.where(shape, rng.uniform(0.3, 1.0), 0.0))


def _reticle(rng, w: _Wafer) -> _Comp:
    for _ in range(20):
        rw, rh = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        offs = rng.choice(rw * rh, size=int(rng.integers(1, min(3, rw * rh // 2) + 1)), replace=False)
        a, b = int(rng.integers(rw)), int(rng.integers(rh))
        pos = ((w.i + a) % rw) + rw * ((w.j + b) % rh)
        shape = np.isin(pos, offs)
        if w.site is None or len(np.unique(w.site[shape])) > 1:
            break
    return _Comp("reticle_repeat", shape, np.where(shape, rng.uniform(0.3, 1.0), 0.0), region=shape, whole=False)


def _site(rng, w: _Wafer) -> _Comp:
    assert w.site is not None
    bad = rng.choice(np.unique(w.site))
    shape = w.site == bad
    return _Comp("site_pattern", shape, np.where(shape, rng.uniform(0.1, 0.85), 0.0), region=shape)


_DRAW = {
    "center": _center,
    "donut": _donut,
    "edge_ring": _edge_ring,
    "edge_loc": _edge_loc,
    "loc": _loc,
    "scratch": _scratch,
    "near_full": _near_full,
    "gross_region": _gross,
    "radial_gradient": _gradient,
    "reticle_repeat": _reticle,
    "site_pattern": _site,
}


def _families(rng: np.random.Generator, family: str | None) -> list[str]:
    if family is not None:
        if family not in tx.FAMILIES:
            raise ValueError(f"unknown family {family!r}")
        return [family]
    if rng.random() >= MIXED_SHARE:
        return [tx.FAMILIES[int(rng.integers(len(tx.FAMILIES)))]]
    size = 2 if rng.random() < 0.65 else 3
    while True:
        fams = [str(f) for f in rng.choice(LOCAL, size=size, replace=False)]
        if not any(ex <= set(fams) for ex in EXCLUSIVE):
            break
    if rng.random() < 0.2:
        fams[-1] = EXTRAS[int(rng.integers(len(EXTRAS)))]
    return fams


def _background(rng, w: _Wafer, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    u = rng.random()
    p0 = rng.uniform(0.0, 0.01) if u < 0.2 else rng.uniform(0.01, 0.05) if u < 0.8 else rng.uniform(0.05, 0.1)
    if hi is not None:
        p0 = rng.uniform(lo, hi)
    if rng.random() < 0.3:  # clustered: negative-binomial defect counts per die
        b = int(rng.choice((2, 3, 4, 6)))
        bi, bj = (w.i + int(rng.integers(b))) // b, (w.j + int(rng.integers(b))) // b
        bi, bj = bi - bi.min(), bj - bj.min()
        alpha = rng.uniform(1.0, 4.0)
        mult = rng.gamma(alpha, 1 / alpha, size=(int(bj.max()) + 1, int(bi.max()) + 1))
        lam = -math.log(1 - min(p0, 0.95)) * mult[bj, bi]
        return rng.poisson(lam) > 0
    return rng.random(w.n) < p0


def _z(k: int, n: int, p: float) -> float:
    return (k - n * p) / math.sqrt(n * p * (1 - p))


def _visible(c: _Comp, fail: np.ndarray, outside: np.ndarray, w: _Wafer) -> bool:
    """A test engineer would see this pattern (the faint-pattern rule of the module docstring)."""
    if c.family == "near_full":
        return bool(fail.mean() >= 0.8)
    if c.family == "radial_gradient":
        inner, outer = fail[w.third == 0].mean(), fail[w.third == 2].mean()
        hi, lo = max(inner, outer), min(inner, outer)
        return bool((outer > inner) == (c.refinement == "rising") and hi - lo >= 0.12 and hi >= 2 * lo)
    if c.family == "site_pattern":
        rest = outside & ~c.shape
    elif c.family == "gross_region":
        rest = ~c.shape
    else:
        rest = outside
    n = int(c.shape.sum())
    if n < (8 if c.family == "scratch" else 3) or not rest.any():
        return False
    if c.family == "scratch" and np.mean(w.rn[c.shape] >= 0.85) >= 0.5:
        return False  # a line hugging the rim is an edge arc to the eye
    k = int(fail[c.shape].sum())
    p = min(max(float(fail[rest].mean()), 0.005), 0.99)
    dens = k / n
    gap = 0.15 if c.family == "gross_region" else 0.08
    return k >= 3 and dens >= 2 * p and dens >= p + gap and _z(k, n, p) >= 4.5


def _label(c: _Comp, fail: np.ndarray, w: _Wafer) -> Label:
    region = np.ones(w.n, dtype=bool) if c.whole else (c.region if c.region is not None else c.shape)
    dens = float(fail[region].mean())
    if c.whole or c.family in tx.OWN_REGION:
        loc = "global"
    else:
        cnt = np.bincount(w.third[region], minlength=3) / region.sum()
        loc = tx.location_of((float(cnt[0]), float(cnt[1]), float(cnt[2])))
    return Label(c.family, loc, tx.severity_of(dens), c.refinement, dens, region.copy())


def _attempt(rng: np.random.Generator, fams: list[str]) -> SampleD | None:
    w = _wafer(rng, need_sites="site_pattern" in fams)
    if fams == ["none"] or fams == ["random"]:
        none = fams == ["none"]
        fail = _background(rng, w, *((0.0, 0.085) if none else (0.13, 0.72)))
        dens = float(fail.mean())
        if (none and dens > 0.09) or (not none and not 0.12 <= dens <= 0.75):
            return None
        lab = Label(fams[0], "global", tx.severity_of(dens), None, dens, np.ones(w.n, dtype=bool))
        return _sample(rng, w, fail, [lab], [])
    comps = [_stripes(rng, w, f) if f.endswith("_stripe") else _DRAW[f](rng, w) for f in fams]
    local = [c for c in comps if not c.whole and c.family not in ("site_pattern", "reticle_repeat")]
    for a in range(len(local)):
        for b in range(a + 1, len(local)):
            ov = int((local[a].shape & local[b].shape).sum())
            if ov > 0.25 * min(local[a].shape.sum(), local[b].shape.sum()):
                return None
    fail = _background(rng, w)
    for c in comps:
        fail |= rng.random(w.n) < c.p
    union = np.zeros(w.n, dtype=bool)
    for c in comps:
        if not c.whole:
            union |= c.shape
    outside = ~union
    labels = []
    for c in comps:
        if not _visible(c, fail, outside, w):
            return None
        lab = _label(c, fail, w)
        if lab.class_id not in tx.by_id():
            return None
        labels.append(lab)
    return _sample(rng, w, fail, labels, comps)


def _sample(rng, w: _Wafer, fail: np.ndarray, labels: list[Label], comps: list[_Comp]) -> SampleD:
    x = (w.i - w.i.min() + w.x0).astype(np.int64)
    y = (w.j - w.j.min() + w.y0).astype(np.int64)
    hard_bin = None
    if rng.random() < 0.7:
        hard_bin = np.ones(w.n, dtype=np.int64)
        hard_bin[fail] = rng.integers(5, 13, size=int(fail.sum()))
        for c in comps:
            hard_bin[fail & c.shape] = int(rng.integers(2, 40))
    dies = DieMap(x=x, y=y, fail=fail.copy(), site=w.site, hard_bin=hard_bin)
    diameter = int(w.i.max() - w.i.min() + 1)
    meta = {
        "px": w.px,
        "py": w.py,
        "X": w.X,
        "Y": w.Y,
        "rn": w.rn,
        "footprint": w.footprint,
        "edge": w.edge,
    }
    return SampleD(dies=dies, labels=labels, diameter=diameter, seed=-1, meta=meta)


def generate(seed: int, family: str | None = None) -> SampleD:
    """A labelled map; ``family`` forces a single-pattern map of that family."""
    rng = np.random.Generator(np.random.PCG64(seed))
    fams = _families(rng, family)
    for _ in range(MAX_ATTEMPTS):
        smp = _attempt(rng, fams)
        if smp is not None:
            smp.seed = seed
            return smp
    raise RuntimeError(f"generator D: no visible map of {fams} in {MAX_ATTEMPTS} attempts (seed {seed})")
