"""Seeded generator of labelled synthetic wafer maps (dev tool: fitting, calibration, evaluation, examples).

Follows the generator spec of the pattern taxonomy: a circular die grid (any size, non-square pitch, flats
or notches, missing inner dies, 1-16 probe sites, arbitrary coordinate origin), Bernoulli or clustered
background, and one or more pattern masks unioned onto it. Labels (family, location, severity, refinement)
come from the mask and the realised fail density inside it, by the labelling rules.

``profile="A"`` is the fitting/calibration distribution; ``profile="B"`` deliberately shifts every
parameter range and shape (Gaussian instead of flat blobs, wider rings, clustered background, Bezier
scratches, larger maps) to check that the classifier does not overfit A.

Reproducible: ``numpy.random.Generator(PCG64(seed))``; the same (seed, profile) gives the same map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import DieMap

SINGLE = tuple(f for f in tx.FAMILIES)
# MixedWM38-style mixtures: pairs that can co-occur (no centre+donut, no edge_ring+edge_loc)
MIX_BASE = ("center", "donut", "edge_ring", "edge_loc", "loc", "scratch")
MIX_EXTRA = ("row_stripe", "column_stripe", "reticle_repeat", "site_pattern")
EXCLUSIVE = {frozenset({"center", "donut"}), frozenset({"edge_ring", "edge_loc"})}


@dataclass
class Label:
    family: str
    location: str
    severity: str
    refinement: str | None
    density: float
    region: np.ndarray  # bool per die

    @property
    def class_id(self) -> str:
        return tx.class_id(self.family, self.location, self.severity, self.refinement)


@dataclass
class Sample:
    dies: DieMap
    labels: list[Label]
    diameter: int
    seed: int

    @property
    def families(self) -> frozenset[str]:
        return frozenset(lab.family for lab in self.labels)


class _Wafer:
    def __init__(self, rng: np.random.Generator, diameter: int, profile: str, n_sites: int | None = None):
        self.rng = rng
        aspect = math.exp(rng.uniform(-0.45, 0.45)) if rng.random() < 0.5 else 1.0  # pitch_y / pitch_x
        px = 2.0 / diameter
        py = px * aspect
        ox, oy = rng.choice([0.0, 0.5]), rng.choice([0.0, 0.5])
        nx = int(diameter / 2) + 2
        ny = int(diameter / (2 * aspect)) + 2
        gx, gy = np.meshgrid(np.arange(-nx, nx + 1), np.arange(-ny, ny + 1))
        ii, jj = gx.ravel(), gy.ravel()
        X = (ii + ox) * px
        Y = (jj + oy) * py
        dist = np.hypot(X, Y)
        keep = dist <= 1.0 - 0.5 * max(px, py) * rng.uniform(0.8, 1.6)
        flat = rng.choice(["none", "bottom", "top", "left", "right", "notch"], p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.1])
        depth = rng.uniform(0.02, 0.08)
        if flat == "bottom":
            keep &= Y > -1 + depth
        elif flat == "top":
            keep &= Y < 1 - depth
        elif flat == "left":
            keep &= X > -1 + depth
        elif flat == "right":
            keep &= X < 1 - depth
        elif flat == "notch":
            keep &= ~((Y < -0.9) & (np.abs(X) < 0.05))
        ii, jj, X, Y, dist = ii[keep], jj[keep], X[keep], Y[keep], dist[keep]
        # missing inner dies (not tested / inked off): a few random ones, sometimes a small block
        miss = rng.random(len(ii)) < rng.uniform(0.0, 0.02)
        if rng.random() < 0.2:
            bx, by = rng.uniform(-0.5, 0.5, 2)
            miss |= (np.abs(X - bx) < 2.5 * px) & (np.abs(Y - by) < 1.5 * py)
        keep = ~miss
        self.i, self.j, self.X, self.Y = ii[keep], jj[keep], X[keep], Y[keep]
        dist = dist[keep]
        self.px, self.py = px, py
        # labelling radius: normalised by the radius covered by dies (outermost centre + half a pitch)
        self.r = dist / (dist.max() + 0.5 * px)
        self.theta = np.arctan2(self.Y, self.X)
        self.n = len(self.i)
        # probe sites: a sx x sy footprint
        if n_sites is None:
            n_sites = int(rng.choice([1, 1, 2, 4, 4, 8, 16, 2, 3, 6, 12]))
        facs = [(a, n_sites // a) for a in range(1, n_sites + 1) if n_sites % a == 0]
        sx, sy = facs[int(rng.integers(len(facs)))]
        self.n_sites = n_sites
        self.site = ((self.i % sx) + sx * (self.j % sy)).astype(np.int64) + 1
        self.third = np.digitize(self.r, tx.THIRD_SPLITS).astype(np.int8)
        self.origin = (int(rng.integers(-5000, 5000)), int(rng.integers(-5000, 5000)))

    def label(self, family: str, region: np.ndarray, fail: np.ndarray, refinement: str | None) -> Label:
        if family in tx.WHOLE_WAFER:
            if family not in tx.OWN_REGION:
                region = np.ones(self.n, dtype=bool)
            loc = "global"
        else:
            counts = np.bincount(self.third[region], minlength=3) / max(region.sum(), 1)
            loc = tx.location_of(tuple(counts))
        dens = float(fail[region].mean()) if region.any() else 0.0
        return Label(family, loc, tx.severity_of(dens), refinement, dens, region)


_Q_RANGE: tuple[float, float] | None = None


def _intensity(rng, profile: str) -> float:
    if _Q_RANGE is not None:
        return float(rng.uniform(*_Q_RANGE))
    # spread over low/med/high severities
    lo = 0.1 if profile == "A" else 0.12
    return float(
        rng.choice([rng.uniform(lo, 0.2), rng.uniform(0.22, 0.45), rng.uniform(0.45, 0.8), rng.uniform(0.8, 1.0)])
    )


def _pattern(w: _Wafer, fam: str, profile: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(region mask, fail probability per die, refinement) of one pattern."""
    rng = w.rng
    r, th, X, Y = w.r, w.theta, w.X, w.Y
    p = np.zeros(w.n)
    ref = None
    q = _intensity(rng, profile)
    B = profile == "B"
    if fam == "center":
        r0 = rng.uniform(0.18, 0.5) if not B else rng.uniform(0.25, 0.6)
        if rng.random() < 0.08:
            r0 = rng.uniform(0.8, 0.92)  # a centre blob so wide that it covers every third (global)
        reg = r < r0
        if B or rng.random() < 0.5:
            p[reg] = q * np.exp(-0.5 * (r[reg] / (0.6 * r0)) ** 2) ** 0.5
        else:
            p[reg] = q
    elif fam == "donut":
        r1 = rng.uniform(0.2, 0.5) if not B else rng.uniform(0.25, 0.55)
        r2 = min(r1 + (rng.uniform(0.12, 0.3) if not B else rng.uniform(0.15, 0.35)), 0.84)
        reg = (r > r1) & (r < r2)
        p[reg] = q
    elif fam == "edge_ring":
        wd = rng.uniform(0.06, 0.18) if not B else rng.uniform(0.08, 0.22)
        reg = r > 1 - wd
        p[reg] = q
    elif fam == "edge_loc":
        t0 = rng.uniform(-math.pi, math.pi)
        dt = rng.uniform(0.25, 0.9) if not B else rng.uniform(0.3, 1.1)
        wd = rng.uniform(0.08, 0.25)
        d = np.angle(np.exp(1j * (th - t0)))
        reg = (r > 1 - wd) & (np.abs(d) < dt)
        p[reg] = q
        ref = tx.octant_of(t0)
    elif fam == "loc":
        rc = math.sqrt(rng.uniform(0.0, 0.72)) if not B else math.sqrt(rng.uniform(0.02, 0.65))
        tc = rng.uniform(-math.pi, math.pi)
        s = rng.uniform(0.08, 0.2) if not B else rng.uniform(0.1, 0.22)
        ex = rng.uniform(0.7, 1.4)
        cxp, cyp = rc * math.cos(tc), rc * math.sin(tc)
        dd = np.hypot((X - cxp) * ex, (Y - cyp) / ex)
        reg = dd < s
        if B:
            p[reg] = q * np.exp(-0.5 * (dd[reg] / s) ** 2) ** 0.3
        elif rng.random() < 0.5:
            p[reg] = q * np.exp(-0.5 * (dd[reg] / s) ** 2) ** 0.5  # Gaussian blob (the spec's mask)
        else:
            p[reg] = q
        ref = tx.octant_of(math.atan2(cyp, cxp))
    elif fam == "scratch":
        reg, ref = _scratch(w, B)
        p[reg] = rng.uniform(0.75, 1.0) if _Q_RANGE is None else q
        gaps = rng.random(w.n) < rng.uniform(0.0, 0.25)
        p[reg & gaps] = 0.0
    elif fam == "near_full":
        reg = np.ones(w.n, dtype=bool)
        p[:] = rng.uniform(0.82, 1.0)
    elif fam == "gross_region":
        k = int(rng.integers(8))
        ref = tx.SIDES[k]
        ang = {"ne": 0.25, "nw": 0.75, "sw": 1.25, "se": 1.75, "n": 0.5, "w": 1.0, "s": 1.5, "e": 0.0}[ref] * math.pi
        half = math.pi / 4 if k < 4 else math.pi / 2
        d = np.angle(np.exp(1j * (th - ang)))
        reg = np.abs(d) < half
        p[reg] = max(q, 0.5) if _Q_RANGE is None else q
    elif fam == "radial_gradient":
        lo, hi = rng.uniform(0.0, 0.08), rng.uniform(0.35, 1.0)
        expo = rng.uniform(1.0, 2.5) if not B else rng.uniform(0.8, 3.0)
        rising = rng.random() < 0.6
        t = r if rising else 1 - r
        p = lo + (hi - lo) * np.clip(t, 0, 1) ** expo
        reg = np.ones(w.n, dtype=bool)
        ref = "rising" if rising else "falling"
    elif fam in ("row_stripe", "column_stripe"):
        coord = w.j if fam == "row_stripe" else w.i
        vals = np.unique(coord)
        nsel = int(rng.integers(1, 4 if not B else 5))
        start = rng.choice(vals[len(vals) // 10 : -len(vals) // 10 or None])
        if rng.random() < 0.5:
            sel = start + np.arange(nsel)
        else:
            sel = rng.choice(vals[len(vals) // 10 : -len(vals) // 10 or None], nsel, replace=False)
        reg = np.isin(coord, sel)
        p[reg] = max(q, 0.4) if _Q_RANGE is None else q
    elif fam == "reticle_repeat":
        kx, ky = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        nfo = int(rng.integers(1, 3))
        offs = {(int(rng.integers(kx)), int(rng.integers(ky))) for _ in range(nfo)}
        a, b = w.i % kx, w.j % ky
        reg = np.zeros(w.n, dtype=bool)
        for o in offs:
            reg |= (a == o[0]) & (b == o[1])
        p[reg] = q if q > 0.3 else q + 0.2
    elif fam == "site_pattern":
        bad = int(rng.integers(1, w.n_sites + 1))
        reg = w.site == bad
        p[reg] = max(q, 0.15)
    else:  # pragma: no cover
        raise ValueError(fam)
    return reg, p, ref


def _scratch(w: _Wafer, B: bool) -> tuple[np.ndarray, str]:
    rng = w.rng
    step = min(w.px, w.py) * 0.5
    start = rng.uniform(-0.6, 0.6, 2)
    phi = rng.uniform(0, math.pi * 2)
    length = rng.uniform(0.35, 1.3)
    pts: list[np.ndarray] = []
    nseg = 1 if rng.random() < 0.5 else 2
    bend = rng.uniform(-0.5, 0.5) if not B else rng.uniform(-0.9, 0.9)
    if not B and rng.random() < 0.3:
        bend = rng.uniform(-1.0, 1.0)
    pos = start.copy()
    for s in range(nseg):
        ang = phi + (bend if s else 0.0)
        n = int(length / nseg / step)
        for _ in range(n):
            pts.append(pos.copy())
            pos += step * np.array([math.cos(ang), math.sin(ang)])
    xy = np.array(pts)
    xy = xy[np.hypot(xy[:, 0], xy[:, 1]) < 0.98]
    width = rng.choice([1, 2])
    gi = np.round(xy[:, 0] / w.px - (w.X[0] / w.px - w.i[0])).astype(int)
    gj = np.round(xy[:, 1] / w.py - (w.Y[0] / w.py - w.j[0])).astype(int)
    cells = set(zip(gi.tolist(), gj.tolist(), strict=True))
    if width == 2:
        horiz = abs(math.cos(phi)) > abs(math.sin(phi))
        cells |= {(a, b + 1) if horiz else (a + 1, b) for a, b in cells}
    key = w.i.astype(np.int64) * 100003 + w.j
    want = np.array([a * 100003 + b for a, b in cells], dtype=np.int64)
    reg = np.isin(key, want)
    return reg, tx.orientation_of(phi)


def _background(w: _Wafer, profile: str, random_family: bool, clean: bool = False) -> np.ndarray:
    """Background fails; ``clean`` (a ``none`` map) draws the same numbers but lays no fail clumps: a
    clump is spatial structure, which the labelling rules do not allow on ``none``."""
    rng = w.rng
    if random_family:
        p0 = rng.uniform(0.13, 0.55)
    elif rng.random() < 0.25:
        p0 = rng.uniform(0.04, 0.1)  # a noisy wafer under the pattern
    else:
        p0 = rng.uniform(0.0, 0.06) if profile == "A" else rng.uniform(0.0, 0.075)
    fail = rng.random(w.n) < p0
    if profile == "A" and not random_family and rng.random() < 0.3 and not clean:
        # clustered background (negative-binomial-like): Poisson many small fail clumps
        for _ in range(int(rng.poisson(max(w.n / 600, 1.0)))):
            k = int(rng.integers(w.n))
            rad = int(rng.integers(1, 3))
            near = (np.abs(w.i - w.i[k]) <= rad) & (np.abs(w.j - w.j[k]) <= rad)
            fail |= near & (rng.random(w.n) < 0.4)
    if profile == "B" and not random_family and rng.random() < 0.5 and not clean:
        # clustered background: a handful of 2-4-die clusters
        for _ in range(int(rng.integers(1, 6))):
            k = int(rng.integers(w.n))
            near = (np.abs(w.i - w.i[k]) <= 1) & (np.abs(w.j - w.j[k]) <= 1)
            fail |= near & (rng.random(w.n) < 0.5)
    return fail


def generate(
    seed: int,
    *,
    profile: str = "A",
    family: str | None = None,
    mixed_rate: float = 0.3,
    diameter: int | tuple[int, int] = (20, 300),
    n_sites: int | None = None,
    q_range: tuple[float, float] | None = None,
) -> Sample:
    """One labelled map. ``family`` forces a single-pattern map of that family; ``q_range`` forces the
    pattern's fail probability range (used to draw examples of every severity)."""
    global _Q_RANGE
    _Q_RANGE = q_range
    try:
        return _generate(seed, profile, family, mixed_rate, diameter, n_sites)
    finally:
        _Q_RANGE = None


def _generate(seed, profile, family, mixed_rate, diameter, n_sites) -> Sample:
    rng = np.random.Generator(np.random.PCG64([seed, 0 if profile == "A" else 1]))
    if isinstance(diameter, int):
        dia = diameter
    else:  # log-uniform: as many 20-80 maps as 80-300 ones
        lo, hi = math.log(diameter[0]), math.log(diameter[1] + 1)
        dia = min(int(math.exp(rng.uniform(lo, hi))), diameter[1])
    if family is None:
        if rng.random() < mixed_rate:
            k = int(rng.choice([2, 2, 3]))
            fams: list[str] = []
            pool = list(MIX_BASE) + (list(MIX_EXTRA) if rng.random() < 0.3 else [])
            while len(fams) < k:
                f = str(rng.choice(pool))
                if f in fams or any(frozenset({f, g}) in EXCLUSIVE for g in fams):
                    continue
                fams.append(f)
        else:
            fams = [str(rng.choice(SINGLE))]
    else:
        fams = [family]
    if "site_pattern" in fams and n_sites is None:
        n_sites = int(rng.choice([2, 4, 8, 16, 3, 6]))
    w = _Wafer(rng, dia, profile, n_sites)
    fail = _background(w, profile, fams == ["random"], clean=fams == ["none"])
    if fams == ["none"]:
        fail &= rng.random(w.n) < 0.9  # keep clean maps clean
    parts = []
    for f in fams:
        if f in ("none", "random"):
            continue
        reg, p, ref = _pattern(w, f, profile)
        fail = fail | (rng.random(w.n) < p)
        parts.append((f, reg, ref))
    labels = [w.label(f, reg, fail, ref) for f, reg, ref in parts]
    if fams == ["random"]:
        labels = [w.label("random", np.ones(w.n, bool), fail, None)]
    if fams == ["none"]:
        labels = [w.label("none", np.ones(w.n, bool), fail, None)]
    x = (w.i + w.origin[0]).astype(np.int64)
    y = (w.j + w.origin[1]).astype(np.int64)
    dm = DieMap(x=x, y=y, fail=fail, site=w.site if w.n_sites > 1 else None)
    return Sample(dm, labels, dia, seed)


def example_for(cls: tx.PatternClass, *, max_tries: int = 4000, diameter: int = 40) -> Sample | None:
    """A single-pattern map labelled exactly ``cls`` (rejection sampling over seeds)."""
    for s in range(max_tries):
        smp = generate(10_000_000 + s * 7919 + hash_str(cls.class_id), family=cls.family, diameter=diameter)
        lab = smp.labels[0]
        if (lab.location, lab.severity, lab.refinement) == (cls.location, cls.severity, cls.refinement):
            return smp
    return None


def hash_str(s: str) -> int:
    h = 0
    for ch in s.encode():
        h = (h * 131 + ch) % 1_000_003
    return h
