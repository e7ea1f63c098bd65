"""An independent seeded generator of labelled wafer maps ("profile C"), written from the taxonomy's
generator spec and labelling rules only, to measure how the classifier generalises beyond the dev
generator it was fitted on (``wafergen``, profiles A and B).

Everything is modelled in physical wafer units (wafer radius 1), then sampled onto a die grid:

- grid: 20-300 dies across (log-uniform), a die pitch that is non-square on most wafers (y/x 0.6-1.6), a
  continuous grid phase, dies kept when all four corners lie inside the edge exclusion; a flat at any of
  four sides (or a notch); missing inner dies (scattered, a block, or a cross of test-structure sites);
  integer coordinates that start anywhere; 1-16 probe sites with a
  footprint sx x sy, site numbers starting at 0 or 1, sometimes column-major;
- background: Bernoulli(p0), or a mildly clustered negative-binomial (gamma-Poisson) field: a gamma
  multiplier on coarse cells, bilinearly smoothed (never under ``random``: it has no spatial structure);
- patterns (their own sub-seed each): Gaussian centre blob, annulus with soft edges, edge ring, edge arc,
  Gaussian ellipse at (r, theta), cubic Bezier or polyline scratch 1-2 dies wide with gaps, near-full,
  rotated quadrant or half-plane, monotone p(r) (linear, power, logistic), rows or columns, fixed
  in-reticle offsets at a random reticle size and phase, one bad probe site;
- labels by the labelling rules: radius normalised by the die-covered radius (outermost die centre plus
  half a die pitch along its direction); equal-area thirds split at sqrt(1/3), sqrt(2/3); location
  ``global`` when every third holds >= 15 % of the region, else the third holding most of it; whole-wafer
  families ``global``; severity = realised fail density in the region, background included (a scratch's
  region includes its gaps, a site pattern's is the site's dies, a reticle repeat's the dies at the
  failing offsets, whole-wafer families' the wafer); ``none`` at most 9 % fails, ``random`` at least 12 %.

A pattern is redrawn (new parameters) until its region holds clearly more fails than the background gives
(z >= 3 over the background rate): a mask that noise hides completely is not a pattern, and labelling it
would grade the classifier on label noise. Each label carries that ``visibility`` z, so an evaluation can
separate classifier failures from barely visible patterns.

Reproducible: ``numpy.random.Generator(PCG64(seed))`` streams; the same seed gives the same map and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stratum.devtools.wafergen import Label, Sample
from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import DieMap

SPLIT_1, SPLIT_2 = math.sqrt(1 / 3), math.sqrt(2 / 3)
LOC_MIN_SHARE = 0.15
NONE_MAX, RANDOM_MIN = 0.09, 0.12
MIN_VISIBILITY = 3.0  # z of a pattern region's fails over the background rate
WHOLE = ("random", "near_full", "radial_gradient", "reticle_repeat", "site_pattern", "gross_region")
SHAPES = ("center", "donut", "edge_ring", "edge_loc", "loc", "scratch")
# single-pattern family mix (every family drawn; local shapes a bit more often, as in real data)
SINGLE_WEIGHTS = {
    "none": 1.2,
    "random": 1.0,
    "center": 1.0,
    "donut": 1.0,
    "edge_ring": 1.0,
    "edge_loc": 1.1,
    "loc": 1.2,
    "scratch": 1.2,
    "near_full": 0.6,
    "gross_region": 0.9,
    "radial_gradient": 1.0,
    "row_stripe": 0.9,
    "column_stripe": 0.9,
    "reticle_repeat": 0.9,
    "site_pattern": 0.9,
}


@dataclass
class CLabel(Label):
    visibility: float = 0.0


class Wafer:
    def __init__(self, rng: np.random.Generator, want_sites: int | None):
        self.rng = rng
        across = int(round(math.exp(rng.uniform(math.log(20), math.log(300)))))
        aspect = 1.0 if rng.random() < 0.35 else float(rng.uniform(0.6, 1.6))
        self.px = 2.0 / across
        self.py = self.px * aspect
        phx, phy = rng.random(2)
        excl = rng.uniform(0.0, 0.03)
        nx, ny = int(1 / self.px) + 3, int(1 / self.py) + 3
        gi, gj = np.meshgrid(np.arange(-nx, nx + 1), np.arange(-ny, ny + 1))
        ii, jj = gi.ravel(), gj.ravel()
        X, Y = (ii + phx) * self.px, (jj + phy) * self.py
        hx, hy = self.px / 2, self.py / 2
        keep = np.ones(len(ii), bool)
        for sx in (-1, 1):
            for sy in (-1, 1):
                keep &= np.hypot(X + sx * hx, Y + sy * hy) <= 1.0 - excl
        kind = rng.choice(["none", "flat", "flat", "notch"])
        side = int(rng.integers(4))
        if kind == "flat":
            d = rng.uniform(0.88, 0.97)
            proj = (Y, X, -Y, -X)[side]
            keep &= proj > -d
        elif kind == "notch":
            ang = side * math.pi / 2 - math.pi / 2
            keep &= np.hypot(X - math.cos(ang), Y - math.sin(ang)) > 0.06
        ii, jj, X, Y = ii[keep], jj[keep], X[keep], Y[keep]
        miss = rng.random(len(ii)) < rng.choice([0.0, 0.0, 0.005, 0.02])
        style = rng.random()
        if style < 0.15:  # a rectangular block not tested
            bx, by = rng.uniform(-0.6, 0.6, 2)
            miss |= (np.abs(X - bx) < rng.uniform(1, 4) * self.px) & (np.abs(Y - by) < rng.uniform(1, 3) * self.py)
        elif style < 0.3:  # test-structure dies in a cross
            for cx, cy in ((0, 0), (0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
                miss |= (np.abs(X - cx) < 0.6 * self.px) & (np.abs(Y - cy) < 0.6 * self.py)
        ii, jj, X, Y = ii[~miss], jj[~miss], X[~miss], Y[~miss]
        self.i, self.j, self.X, self.Y = ii, jj, X, Y
        self.n = len(ii)
        dist = np.hypot(X, Y)
        k = int(np.argmax(dist))
        t = math.atan2(Y[k], X[k])
        half = 0.5 * math.hypot(self.px * math.cos(t), self.py * math.sin(t))
        self.R = float(dist[k] + half)
        self.r = dist / self.R
        self.theta = np.arctan2(Y, X)
        self.third = (self.r >= SPLIT_1).astype(np.int8) + (self.r >= SPLIT_2)
        # probe sites
        ns = want_sites if want_sites is not None else int(rng.choice([1, 1, 1, 2, 4, 8, 16, 2, 4, 3, 6, 12]))
        pairs = [(a, ns // a) for a in range(1, ns + 1) if ns % a == 0]
        fx, fy = pairs[int(rng.integers(len(pairs)))]
        ox, oy = int(rng.integers(fx)), int(rng.integers(fy))
        a, b = (ii + ox) % fx, (jj + oy) % fy
        code = a * fy + b if rng.random() < 0.5 else b * fx + a
        self.n_sites = ns
        self.site = code.astype(np.int64) + int(rng.integers(0, 2))
        self.footprint = (fx, fy)
        # coordinates: integers that start anywhere
        self.origin = (int(rng.integers(-20000, 20000)), int(rng.integers(-20000, 20000)))

    def die_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Indices of the dies whose cells hold the physical points (x, y) (points off the grid dropped)."""
        gi = np.floor(x / self.px - (self.X[0] / self.px - self.i[0]) + 0.5).astype(np.int64)
        gj = np.floor(y / self.py - (self.Y[0] / self.py - self.j[0]) + 0.5).astype(np.int64)
        key = self.i.astype(np.int64) * 1_000_003 + self.j
        order = np.argsort(key)
        want = np.unique(gi * 1_000_003 + gj)
        pos = np.searchsorted(key[order], want)
        pos = np.minimum(pos, len(order) - 1)
        hit = key[order][pos] == want
        return order[pos[hit]]


def _location(w: Wafer, region: np.ndarray) -> str:
    n = int(region.sum())
    share = np.bincount(w.third[region], minlength=3) / max(n, 1)
    if share.min() >= LOC_MIN_SHARE:
        return "global"
    return ("center", "mid", "edge")[int(np.argmax(share))]


def _severity(d: float) -> str:
    return "low" if d < 0.2 else "med" if d < 0.5 else "high"


def _level(rng: np.random.Generator, p0: float) -> float:
    """A pattern's fail probability: spread over the three severities, always clearly above background."""
    band = rng.choice(3, p=[0.25, 0.35, 0.4])
    lo, hi = ((0.12, 0.2), (0.2, 0.5), (0.5, 1.0))[int(band)]
    return float(max(rng.uniform(lo, hi), p0 + 0.1))


def _pattern(w: Wafer, fam: str, rng: np.random.Generator, p0: float):
    """(region, fail probability per die, refinement)."""
    r, th, X, Y = w.r, w.theta, w.X / w.R, w.Y / w.R
    p = np.zeros(w.n)
    ref = None
    q = _level(rng, p0)
    if fam == "center":
        r0 = rng.uniform(0.2, 0.62) if rng.random() < 0.85 else rng.uniform(0.62, 0.9)
        sig = r0 * rng.uniform(0.45, 1.2)
        reg = r < r0
        p[reg] = q * np.exp(-0.5 * (r[reg] / sig) ** 2) / math.exp(-0.5 * (0.35 * r0 / sig) ** 2)
        p = np.minimum(p, q)
    elif fam == "donut":
        mid = rng.uniform(0.32, 0.66)
        half = rng.uniform(0.07, 0.16)
        r1, r2 = max(mid - half, 0.12), min(mid + half, 0.8)
        reg = (r > r1) & (r < r2)
        soft = rng.uniform(0.0, 0.04)
        edge = np.minimum(r - r1, r2 - r)
        p[reg] = q * np.clip(0.6 + edge[reg] / max(soft, 1e-6), 0, 1) if soft > 0 else q
    elif fam == "edge_ring":
        wd = rng.uniform(0.05, 0.2)
        reg = r > 1 - wd
        p[reg] = q
    elif fam == "edge_loc":
        t0 = rng.uniform(-math.pi, math.pi)
        dt = rng.uniform(0.2, 1.0)
        wd = rng.uniform(0.07, 0.28)
        dd = np.abs(np.angle(np.exp(1j * (th - t0))))
        reg = (r > 1 - wd) & (dd < dt)
        p[reg] = q
        ref = tx.octant_of(t0)
    elif fam == "loc":
        sa, sb = rng.uniform(0.05, 0.13), rng.uniform(0.05, 0.13)
        # off the wafer centre (a blob over the centre is a centre blob): the centre lies outside its region
        rc = rng.uniform(2 * max(sa, sb) + 0.02, 0.78)
        tc = rng.uniform(-math.pi, math.pi)
        cx, cy = rc * math.cos(tc), rc * math.sin(tc)
        rot = rng.uniform(0, math.pi)
        u = (X - cx) * math.cos(rot) + (Y - cy) * math.sin(rot)
        v = -(X - cx) * math.sin(rot) + (Y - cy) * math.cos(rot)
        m2 = (u / sa) ** 2 + (v / sb) ** 2
        reg = m2 < 4.0  # 2 sigma
        p[reg] = q * np.exp(-0.5 * m2[reg] * rng.uniform(0.0, 0.5))
        ref = tx.octant_of(math.atan2(float(Y[reg].mean()), float(X[reg].mean()))) if reg.any() else "e"
    elif fam == "scratch":
        reg, ref = _scratch(w, rng)
        p[reg] = rng.uniform(0.7, 1.0)
        # gaps: a few missing stretches along the line, plus single dies
        gaps = rng.random(w.n) < rng.uniform(0.0, 0.2)
        p[reg & gaps] = 0.0
    elif fam == "near_full":
        reg = np.ones(w.n, bool)
        p[:] = rng.uniform(0.8, 1.0)
    elif fam == "gross_region":
        k = int(rng.integers(8))
        ref = tx.SIDES[k]
        deg = {"e": 0, "ne": 45, "n": 90, "nw": 135, "w": 180, "sw": 225, "s": 270, "se": 315}[ref]
        ang = math.radians(deg + rng.uniform(-12, 12))
        half = math.pi / 4 if k < 4 else math.pi / 2
        reg = np.abs(np.angle(np.exp(1j * (th - ang)))) < half
        p[reg] = rng.uniform(0.35, 1.0)
    elif fam == "radial_gradient":
        rising = rng.random() < 0.5
        lo = rng.uniform(0.0, 0.06)
        hi = rng.uniform(0.35, 0.95)
        t = r if rising else 1 - r
        shape = rng.choice(["linear", "power", "logistic"])
        if shape == "linear":
            s = t
        elif shape == "power":
            s = t ** rng.uniform(1.3, 3.0)
        else:
            c0, steep = rng.uniform(0.4, 0.6), rng.uniform(4, 7)
            s = 1 / (1 + np.exp(-steep * (t - c0)))
        p = lo + (hi - lo) * np.clip(s, 0, 1)
        reg = np.ones(w.n, bool)
        ref = "rising" if rising else "falling"
    elif fam in ("row_stripe", "column_stripe"):
        coord = w.j if fam == "row_stripe" else w.i
        vals = np.unique(coord)
        inner = vals[len(vals) // 8 : len(vals) - len(vals) // 8]
        k = int(rng.integers(1, 5))
        if rng.random() < 0.6:
            start = int(rng.integers(len(inner) - k + 1)) if len(inner) > k else 0
            sel = inner[start : start + k]
        else:
            sel = rng.choice(inner, min(k, len(inner)), replace=False)
        reg = np.isin(coord, sel)
        p[reg] = max(q, 0.35)
    elif fam == "reticle_repeat":
        kx, ky = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        ax, ay = int(rng.integers(kx)), int(rng.integers(ky))
        n_off = int(rng.integers(1, min(3, kx * ky // 2) + 1))
        cells = rng.choice(kx * ky, n_off, replace=False)
        a, b = (w.i + ax) % kx, (w.j + ay) % ky
        reg = np.isin(a * ky + b, cells)
        p[reg] = max(q, 0.3)
    elif fam == "site_pattern":
        codes = np.unique(w.site)
        bad = int(rng.choice(codes))
        reg = w.site == bad
        p[reg] = max(q, p0 + 0.12)
    else:  # pragma: no cover
        raise ValueError(fam)
    return reg, np.clip(p, 0.0, 1.0), ref


def _scratch(w: Wafer, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A cubic Bezier curve or a 2-3 segment polyline, rasterised 1-2 dies wide."""
    length = rng.uniform(0.3, 1.3)
    c = rng.uniform(-0.55, 0.55, 2)
    phi = rng.uniform(0, math.pi)
    d = np.array([math.cos(phi), math.sin(phi)])
    a, b = c - d * length / 2, c + d * length / 2
    nrm = np.array([-d[1], d[0]])
    if rng.random() < 0.6:
        b1 = a + (b - a) / 3 + nrm * rng.uniform(-0.25, 0.25) * length
        b2 = a + 2 * (b - a) / 3 + nrm * rng.uniform(-0.25, 0.25) * length
        t = np.linspace(0, 1, 800)[:, None]
        pts = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b1 + 3 * (1 - t) * t**2 * b2 + t**3 * b
    else:
        nseg = int(rng.integers(2, 4))
        knots = [a + (b - a) * k / nseg + nrm * rng.uniform(-0.12, 0.12) * length for k in range(nseg + 1)]
        knots[0], knots[-1] = a, b
        t = np.linspace(0, 1, 300)[:, None]
        pts = np.concatenate([k0 + (k1 - k0) * t for k0, k1 in zip(knots[:-1], knots[1:], strict=True)])
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) < 0.97] * w.R
    if len(pts) == 0:
        pts = np.array([[0.0, 0.0]])
    idx = w.die_index(pts[:, 0], pts[:, 1])
    if rng.random() < 0.45:  # 2 dies wide: the neighbour across the line
        off = np.array([-d[1] * w.px, d[0] * w.py]) * 0.9
        idx = np.union1d(idx, w.die_index(pts[:, 0] + off[0], pts[:, 1] + off[1]))
    reg = np.zeros(w.n, bool)
    reg[idx] = True
    return reg, tx.orientation_of(phi)


def _background(w: Wafer, rng: np.random.Generator, p0: float, clustered: bool) -> np.ndarray:
    if not clustered or rng.random() < 0.6 or p0 == 0:
        rate = np.full(w.n, p0)
    else:  # gamma-Poisson (negative binomial) clustering on coarse cells, smoothed; mild (alpha >= 2.5)
        cell = rng.uniform(0.08, 0.25)
        alpha = rng.uniform(2.5, 8.0)
        gx, gy = int(2 / cell) + 2, int(2 / cell) + 2
        field = rng.gamma(alpha, 1 / alpha, size=(gy, gx))
        fx, fy = (w.X / w.R + 1) / cell, (w.Y / w.R + 1) / cell
        x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
        ax, ay = fx - x0, fy - y0
        x1, y1 = np.minimum(x0 + 1, gx - 1), np.minimum(y0 + 1, gy - 1)
        mult = (
            field[y0, x0] * (1 - ax) * (1 - ay)
            + field[y0, x1] * ax * (1 - ay)
            + field[y1, x0] * (1 - ax) * ay
            + field[y1, x1] * ax * ay
        )
        rate = 1 - np.exp(math.log1p(-min(p0, 0.95)) * mult)
    return rng.random(w.n) < rate


def _visibility(fail: np.ndarray, region: np.ndarray, p0: float) -> float:
    n = int(region.sum())
    if n == 0:
        return 0.0
    pb = min(max(p0, 0.01), 0.99)
    return float((fail[region].sum() - n * pb) / math.sqrt(n * pb * (1 - pb)))


def _follows_site(region: np.ndarray, site: np.ndarray) -> bool:
    """The region is (almost exactly) the dies of one probe site."""
    codes, counts = np.unique(site[region], return_counts=True)
    best = codes[int(np.argmax(counts))]
    same = site == best
    return bool((region & same).sum() >= 0.8 * (region | same).sum())


def _families(rng: np.random.Generator, mixed_rate: float) -> list[str]:
    if rng.random() < mixed_rate:
        k = int(rng.choice([2, 2, 3]))
        pool = list(SHAPES) + (
            ["row_stripe", "column_stripe", "reticle_repeat", "site_pattern"] if rng.random() < 0.3 else []
        )
        fams: list[str] = []
        while len(fams) < k:
            f = str(rng.choice(pool))
            if f in fams or {f, *fams} >= {"center", "donut"} or {f, *fams} >= {"edge_ring", "edge_loc"}:
                continue
            fams.append(f)
        return fams
    names = list(SINGLE_WEIGHTS)
    wts = np.array([SINGLE_WEIGHTS[f] for f in names])
    return [names[int(rng.choice(len(names), p=wts / wts.sum()))]]


def generate(seed: int, *, family: str | None = None, mixed_rate: float = 0.3) -> Sample:
    """One labelled map of the independent generator (``family`` forces a single-pattern map)."""
    rng = np.random.Generator(np.random.PCG64([seed, 0xC]))
    fams = [family] if family else _families(rng, mixed_rate)
    w = Wafer(rng, int(rng.choice([2, 4, 8, 3, 6, 12, 16])) if "site_pattern" in fams else None)
    for _ in range(20):  # redraw the background until none / random satisfy their fail-ratio rules
        if fams == ["random"]:
            p0 = float(rng.uniform(0.13, 0.6))
        elif fams == ["none"]:
            p0 = float(rng.uniform(0.0, 0.075))
        else:
            p0 = float(rng.choice([rng.uniform(0.0, 0.02), rng.uniform(0.01, 0.06), rng.uniform(0.04, 0.09)]))
        fail = _background(w, rng, p0, clustered=fams != ["random"])  # random: no spatial structure at all
        ratio = float(fail.mean())
        if fams == ["none"] and ratio > NONE_MAX or fams == ["random"] and ratio < RANDOM_MIN:
            continue
        break
    parts: list[tuple[str, np.ndarray, str | None]] = []
    taken = np.zeros(w.n, bool)
    for f in fams:
        if f in ("none", "random"):
            continue
        prng = np.random.Generator(np.random.PCG64([seed, 0xC, len(parts) + 1]))
        for _ in range(12):
            reg, p, ref = _pattern(w, f, prng, p0)
            new = fail | (prng.random(w.n) < p)
            # a labelled pattern must exist: components of a mixed map must not hide each other, and the
            # region must hold clearly more fails than the background gives (z >= MIN_VISIBILITY)
            if (
                reg.sum() >= 3
                and (reg & taken).sum() <= 0.3 * reg.sum()
                and _visibility(new, reg, p0) >= MIN_VISIBILITY
            ):
                break
        taken |= reg
        fail = new
        parts.append((f, reg, ref))
    site = w.site if (w.n_sites > 1 or rng.random() < 0.3) else None
    labels: list[Label] = []
    for f, reg, ref in parts:
        if f == "reticle_repeat" and site is not None and _follows_site(reg, site):
            f = "site_pattern"  # the elevated fail rate follows SITE_NUM: a site pattern by the rules
        if f in WHOLE and f not in ("reticle_repeat", "site_pattern"):
            reg = np.ones(w.n, bool)
        loc = "global" if f in WHOLE else _location(w, reg)
        dens = float(fail[reg].mean())
        labels.append(CLabel(f, loc, _severity(dens), ref, dens, reg, _visibility(fail, reg, p0)))
    if fams in (["none"], ["random"]):
        dens = float(fail.mean())
        labels = [CLabel(fams[0], "global", _severity(dens), None, dens, np.ones(w.n, bool), 0.0)]
    x = (w.i + w.origin[0]).astype(np.int64)
    y = (w.j + w.origin[1]).astype(np.int64)
    return Sample(DieMap(x=x, y=y, fail=fail, site=site), labels, int(round(2 / w.px)), seed)
