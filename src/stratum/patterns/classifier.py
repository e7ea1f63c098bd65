"""Deterministic, explainable wafer-map pattern classifier (hand features, frozen rules).

Detectors run in a fixed order; each explains away the dies of what it found before the next one looks:

1. ``near_full``: overall fail ratio.
2. ``site_pattern``: per-site fail rates (needs SITE_NUM), z-test of the worst site against the rest.
3. ``reticle_repeat``: residues of x and y modulo 2..8; the best pitch pair; hot in-reticle offsets that
   repeat in every quadrant.
4. ``row_stripe`` / ``column_stripe``: line fail rate against both flanking lines 4 away, uniform along
   the line (every quarter of the chord).
5. ``center`` / ``donut`` / ``edge_ring`` / ``radial_gradient``: equal-area radial bands x 8 sectors; a band
   is ring-like when its second-lowest sector is hot; the radial profile's transition width separates
   a gradient from a step.
6. ``scratch``: Hough accumulator of the fails (48 angles, 1-die rho bins), line-vs-flank contrast, then
   the longest dense run along the best lines.
7. ``loc`` / ``edge_loc`` / ``gross_region``: 8-connected components of the smoothed hot dies; edge share,
   angular extent, area.
8. ``random`` / ``none``: nothing fired; fail ratio.

Each detection carries a raw score in [0, 1] (a squashed margin over its firing threshold); calibration
maps it to a confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stratum.patterns import taxonomy as tx
from stratum.patterns import verifier
from stratum.patterns.features import (
    box_sum,
    components,
    count_nonzero,
    dilate,
    dilated_at,
    eigh,
    eigvalsh,
    grown_at,
    runs_longest,
    solve,
)
from stratum.patterns.geometry import DieMap, Geometry, edge_depth, geometry, raster_mask, sec8, thirds_masks

RULES_VERSION = "14"


@dataclass(frozen=True)
class Thresholds:
    near_full: float = 0.72
    random_min: float = 0.105
    accept: float = 0.5  # the verifier's probability at which a candidate is kept
    # when none is kept, the likeliest candidate is reported from this probability (below it the fallbacks are
    # mostly wrong: 2026-12-05 decision, replayed with the dev tool patterns_decide)
    fallback: float = 0.15
    # candidate generation is generous (the verifier prunes): blobs and lines
    blob_z: float = 3.0
    blob_sigma: float = 2.5
    blob_lift: float = 0.06
    blob_keep: int = 2  # clusters kept per family (the strongest by z; a noise clump can outscore the pattern)
    scratch_contrast: float = 3.0
    scratch_fill: float = 0.45
    scratch_margin: float = 0.3
    scratch_tries: int = 3  # Hough cells tried per scratch
    line_thick: float = 0.9  # dies: a blob's fails farther than this from their best quadratic are not a line
    rim_z: float = 4.5  # binomial z of a thin edge arc over the background (many windows are tried)
    line_aspect: float = 8.0  # curve length over thickness from which a cluster of fails is a scratch
    severity_splits: tuple[float, float] = tx.SEVERITY_SPLITS


@dataclass
class Detection:
    family: str
    location: str
    severity: str
    refinement: str | None
    score: float
    region: NDArray[np.bool_]
    density: float
    features: dict[str, float] = field(default_factory=dict)
    summary: str = ""
    source: str = ""  # the detector family when this is another reading of that detector's region

    @property
    def class_id(self) -> str:
        return tx.class_id(self.family, self.location, self.severity, self.refinement)


# ufunc reductions called directly: ``a.sum()`` / ``a.max()`` / ``a.min()`` of a 1-d array (or along ``axis``) are
# these same reductions behind a Python wrapper
_add = np.add.reduce
_amax = np.maximum.reduce
_amin = np.minimum.reduce


def _nz(a: NDArray) -> NDArray[np.intp]:
    """``np.flatnonzero`` of a 1-d array, without its wrappers."""
    return a.nonzero()[0]


def _median(a) -> float:
    """np.median without its Python-level overhead (hot loops on small arrays)."""
    v = np.array(a, dtype=np.float64).ravel()  # a copy, sorted in place: np.sort's result
    v.sort()
    n = len(v)
    return float((v[(n - 1) // 2] + v[n // 2]) / 2) if n else float("nan")


def _frac(m: NDArray[np.bool_]) -> float:
    """``m.mean()`` of a boolean array (the same bits: an exact count over the size)."""
    n = m.size
    return count_nonzero(m) / n if n else math.nan


def _frac_in(f: NDArray[np.bool_], m: NDArray[np.bool_]) -> float:
    """``f[m].mean()`` for boolean ``f`` and mask ``m``, without the gather."""
    n = count_nonzero(m)
    return count_nonzero(f & m) / n if n else math.nan


def _lerp_at(v: NDArray[np.float64], q: float) -> float:
    n = len(v)
    vi = (n - 1) * q
    if vi >= n - 1:
        return float(v[-1])
    lo = math.floor(vi)
    g = vi - lo
    a, b = v.item(lo), v.item(lo + 1)
    d = b - a
    return b - d * (1 - g) if g >= 0.5 else a + d * g


def _quantile(a: NDArray, q: float) -> float:
    """``np.quantile(a, q)`` (linear method, the same bits) for a 1-d array without NaN, without its
    Python-level overhead."""
    v = np.array(a, dtype=np.float64)
    n = len(v)
    if n > 64:  # the two order statistics it reads, by a partition: the same values as a full sort, in O(n)
        lo = min(math.floor((n - 1) * q), n - 2)
        v.partition((lo, lo + 1))
    else:
        v.sort()
    return _lerp_at(v, q)


def _quantiles(a: NDArray, q0: float, q1: float) -> tuple[float, float]:
    v = np.array(a, dtype=np.float64)
    v.sort()
    return _lerp_at(v, q0), _lerp_at(v, q1)


def _cov(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.cov(np.vstack([xs, ys]))`` of at least two points: the same operations in the same order, without its
    argument checks."""
    X = np.empty((2, len(xs)))
    X[0], X[1] = xs, ys
    X -= (np.add.reduce(X, axis=1) / X.shape[1])[:, None]  # X.mean(axis=1), the same bits
    cv = np.dot(X, X.T.conj())
    cv *= 1 / (X.shape[1] - 1)  # np.true_divide(1, n - 1)'s value (IEEE division either way)
    return cv


def _corr(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> float:
    """``float(np.corrcoef(xs, ys)[0, 1])`` (the same operations) for non-constant ``xs`` and ``ys``."""
    cv = _cov(xs, ys)
    r = float(cv[0, 1] / math.sqrt(cv[0, 0]) / math.sqrt(cv[1, 1]))
    return min(max(r, -1.0), 1.0)


def _squash(margin: float) -> float:
    return float(1.0 - math.exp(-max(margin, 0.0)))


class _Ctx:
    def __init__(self, dm: DieMap, th: Thresholds):
        self.dm = dm
        self.th = th
        self.g: Geometry = geometry(dm)
        self.f = np.asarray(dm.fail, dtype=bool)
        self.fail_ratio = float(_frac(self.f))  # f.mean(), the same bits
        self.n = self.g.n
        self.active = np.ones(self.n, dtype=bool)
        # dies a radial pattern explained: local patterns are still looked for there, above its level
        self.soft = np.zeros(self.n, dtype=bool)
        self.dets: list[Detection] = []
        self.fallback: list[Detection] = []  # candidates the verifier rejected
        self.dry = False
        g = self.g
        # die units, pitch-corrected: x and y, each also a row of xyd
        self.xyd = np.empty((2, self.n))
        self.xd, self.yd = self.xyd
        np.multiply(g.u, g.rx, out=self.xd)
        np.multiply(g.v, g.rx, out=self.yd)
        self.dia = 2 * g.rx
        self.profile: Detection | None = None  # a radial gradient short of its rule, for the verifier

    def sec8(self) -> NDArray[np.intp]:
        """Each die's polar sector of eight (0 from -pi), computed once per layout."""
        return sec8(self.g)

    def explain(self, region: NDArray[np.bool_], margin: int, soft: bool = False) -> None:
        """Take a found pattern's dies, and ``margin`` dies around them, out of the later detectors
        (``soft``: a radial pattern's, which the local detectors still search against its level)."""
        if margin:
            g = self.g
            region = region | dilated_at(self.raster(region), (margin,), g.iy, g.ix)[0]  # dilate(...)[iy, ix]
        if soft:
            self.soft |= region & self.active
        else:
            self.soft &= ~region
        self.active &= ~region

    def raster(self, vals: NDArray) -> NDArray:
        g = self.g
        a = np.zeros(g.shape[0] * g.shape[1], dtype=vals.dtype)
        m = raster_mask(g)
        if m is not None:
            a[m] = vals
        else:
            a[g.flat] = vals
        return a.reshape(g.shape)

    def region_stats(self, region: NDArray[np.bool_], thirds: bool = True) -> tuple[float, NDArray | None]:
        """A region's fail density, and the shares of its dies in the inner/middle/outer third."""
        n = int(count_nonzero(region))
        dens = int(count_nonzero(self.f & region)) / n if n else 0.0
        if not thirds:
            return dens, None
        mid, outer = thirds_masks(self.g)
        c1, c2 = int(count_nonzero(region & mid)), int(count_nonzero(region & outer))
        return dens, np.array([n - c1 - c2, c1, c2]) / max(n, 1)  # np.bincount(third[region], minlength=3)'s

    def detect(self, family, region, score, feats, summary, refinement=None, stats=None) -> Detection:
        dens, counts = stats or self.region_stats(region, family not in tx.WHOLE_WAFER)
        if family in tx.WHOLE_WAFER:
            loc = "global"
            if family not in tx.OWN_REGION:
                dens = float(self.fail_ratio)
        else:
            assert counts is not None
            c0, c1, c2 = counts.tolist()
            loc = tx.location_of((c0, c1, c2))
            locs = tx.REACHABLE[family][0]
            if loc not in locs:  # e.g. an edge arc reaching inwards: the reachable third holding most of it
                inner = [(counts[i], name) for i, name in enumerate(("center", "mid", "edge")) if name in locs]
                loc = max(inner)[1] if inner else "global"
        sev = tx.severity_of(dens, self.th.severity_splits)
        if (family, sev, refinement) in tx.IMPOSSIBLE:
            sev = "med"  # the nearest producible severity (low lines and quadrants at 'high' cannot occur)
        d = Detection(family, loc, sev, refinement, round(score, 6), region, dens, feats, summary)
        if not self.dry:
            self.dets.append(d)
        return d


# --------------------------------------------------------------------------------------------------


def _codes(s: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
    """``np.unique(s, return_inverse=True)`` by counting when the values span a small range."""
    if not len(s):
        return s, np.zeros(0, dtype=np.intp)
    lo = int(s.min())
    span = int(s.max()) - lo + 1
    if span > 4096:
        return np.unique(s, return_inverse=True)
    present = np.bincount(s - lo, minlength=span) > 0
    return _nz(present) + lo, (present.cumsum() - 1)[s - lo]


def _site(c: _Ctx) -> Detection | None:
    site = c.dm.site
    if site is None:
        return None
    act = c.active
    codes, inv = _codes(np.asarray(site)[act])
    if len(codes) < 2:
        return None
    ns = np.bincount(inv)
    ks = np.bincount(inv, weights=c.f[act])
    rates = ks / np.maximum(ns, 1)
    b = int(rates.argmax())
    rest_n = _add(ns) - ns[b]
    rest = (_add(ks) - ks[b]) / max(rest_n, 1)
    pr = max(rest, 0.01)
    z = (rates[b] - rest) / math.sqrt(pr * (1 - pr) / max(ns[b], 1))
    others = rates.copy()
    others[b] = -np.inf  # the other sites (rates >= 0)
    second = float(_amax(others))
    gap = rates[b] - second
    if z < 4.5 or rates[b] - rest < 0.08 or gap < 0.5 * (rates[b] - rest) or ns[b] < 8:
        # a ring, blob or gradient raises every site's rate where it lies: each site against the other sites
        # in the same radial band and quadrant
        b, rest, z, gap = _site_matched(c, act, inv, ks, ns)
        if z < 4.5 or rates[b] - rest < 0.08 or gap < 0.5 * (rates[b] - rest) or ns[b] < 8:
            return None
    region = np.zeros(c.n, dtype=bool)
    region[_nz(act)[inv == b]] = True
    # a bad site fails over the site's many rows and columns: fails piled on one or two lines of it are a
    # stripe (or scratch) crossing the site
    fo = region & c.f
    nfo = int(count_nonzero(fo))
    for line, lines_on in ((c.g.iy[fo], c.g.iy[region]), (c.g.ix[fo], c.g.ix[region])) if nfo else ():
        per_line = np.bincount(line - _amin(line))
        per_line.sort()
        top2 = float(_add(per_line[::-1][:2]))
        p2 = min(2.0 / _distinct(lines_on), 1.0)  # the top two lines' share if the fails spread evenly
        z2 = (top2 - nfo * p2) / math.sqrt(max(nfo * p2 * (1 - p2), 1e-9))
        if top2 >= 0.6 * nfo and z2 >= 4.0:
            return None
    if nfo and _lines_explain(c, region, float(rates[b]), rest):
        return None
    m = min((z - 4.5) / 4, (rates[b] - rest - 0.08) / 0.1, (gap / (rates[b] - rest) - 0.5) / 0.2)
    d = c.detect(
        "site_pattern",
        region,
        _squash(m + 0.3),
        {"site": float(codes[b]), "site_fail_rate": float(rates[b]), "other_sites_rate": float(rest), "z": z},
        f"site {int(codes[b])} fails {rates[b]:.0%} of its dies against {rest:.0%} on the other sites",
    )
    if not c.dry:
        c.active &= ~d.region
    return d


_SITE_BANDS = 8  # equal-area radial bands of the matched site comparison


def _site_matched(
    c: _Ctx, act: NDArray[np.bool_], inv: NDArray[np.intp], ks: NDArray, ns: NDArray
) -> tuple[int, float, float, float]:
    """The site failing most above the other sites' dies in the same stratum (equal-area radial band x quadrant), as
    (site index, the rate its dies would have at the other sites' rates, z, excess over the runner-up)."""
    g = c.g
    strata = g.extra.get("site_strata")  # each die's stratum, once per layout
    if strata is None:
        band = np.minimum((g.r * g.r * _SITE_BANDS).astype(np.intp), _SITE_BANDS - 1)
        strata = band * 4 + (g.u >= 0) + 2 * (g.v >= 0)
        strata.setflags(write=False)
        g.extra["site_strata"] = strata
    ns_, S = len(ns), 4 * _SITE_BANDS
    cell = inv * S + strata[act]
    n_ks = np.bincount(cell, minlength=ns_ * S).reshape(ns_, S).astype(np.float64)
    f_ks = np.bincount(cell, weights=c.f[act], minlength=ns_ * S).reshape(ns_, S)
    n_s, f_s = _add(n_ks, 0), _add(f_ks, 0)
    n_o = n_s - n_ks
    r_o = (f_s - f_ks) / np.maximum(n_o, 1)
    usable = n_o > 0
    expect = _add(np.where(usable, n_ks * r_o, 0.0), 1)
    n_use = np.maximum(_add(np.where(usable, n_ks, 0.0), 1), 1)
    excess = (_add(np.where(usable, f_ks, 0.0), 1) - expect) / n_use
    b = int(excess.argmax())
    p_s = np.clip(f_s / np.maximum(n_s, 1), 0.01, 0.99)
    var = _add(np.where(usable[b], p_s * (1 - p_s) * n_ks[b] * (1 + n_ks[b] / np.maximum(n_o[b], 1)), 0.0))
    z = float(excess[b] * n_use[b] / math.sqrt(max(var, 1e-9)))
    others = excess.copy()
    others[b] = -np.inf
    rate_b = float(ks[b] / max(ns[b], 1))
    return b, rate_b - float(excess[b]), z, float(excess[b] - _amax(others))


def _lines_explain(c: _Ctx, region: NDArray[np.bool_], rate: float, rest: float) -> bool:
    """A few of the site's lines (at most 4, at most half of them) hold its excess fails, and its other dies
    fail no more than the other sites: the elevated rate follows those rows or columns, not SITE_NUM."""
    fr = c.f[region]
    n_all, k_all = float(len(fr)), float(count_nonzero(fr))
    excess = rate - rest
    pr = min(max(rest, 0.01), 0.99)
    p_site = k_all / max(n_all, 1.0)
    for coord in (c.g.iy[region], c.g.ix[region]):
        line = coord - _amin(coord)
        n_l = np.bincount(line)
        k_l = np.bincount(line, weights=fr)
        # only when the fails are not spread evenly over the site's lines (chi-square 4 sd beyond its null):
        # the top half of a sparse site's lines holds most of its fails by chance
        lines = n_l > 0
        e_l = n_l[lines] * p_site
        chi = float(_add((k_l[lines] - e_l) ** 2 / np.maximum(e_l * (1 - p_site), 1e-9)))
        df = float(count_nonzero(lines) - 1)
        if df < 1 or chi < df + 4 * math.sqrt(2 * df):
            continue
        order = np.argsort(-k_l, kind="stable")
        n_top = k_top = 0.0
        for m in range(min(4, int(count_nonzero(n_l)) // 2)):
            n_top += float(n_l[order[m]])
            k_top += float(k_l[order[m]])
            n_rem = n_all - n_top
            r_rem = (k_all - k_top) / n_rem
            if r_rem - rest <= 0.25 * excess and (r_rem - rest) / math.sqrt(pr * (1 - pr) / n_rem) < 2.0:
                return True
    return False


_RL = 60  # lcm(2..6): one joint histogram of (x mod 60, y mod 60) serves every pitch pair
_PITCHES = [(kx, ky) for ky in range(2, 7) for kx in range(2, 7)]  # the search order
_KOFF = {k: k * (k - 1) // 2 - 1 for k in range(2, 7)}  # row/column of residue 0 of pitch k in the fold
# fold[_KOFF[k] + r, j] = 1 when j % k == r: fold @ hist @ fold.T holds every pitch pair's residue counts
_FOLD = np.zeros((20, _RL))
for _k in range(2, 7):
    _FOLD[_KOFF[_k] + np.arange(_RL) % _k, np.arange(_RL)] = 1.0
# the 400 folded cells ordered pitch pair by pair (in the search order), each pair's residues in raster order
_PAIR_CELLS = np.concatenate(
    [((_KOFF[ky] + np.arange(ky))[:, None] * 20 + _KOFF[kx] + np.arange(kx)[None, :]).ravel() for kx, ky in _PITCHES]
)
_PAIR_SIZE = np.array([kx * ky for kx, ky in _PITCHES])
_PAIR_START = np.concatenate([[0], np.cumsum(_PAIR_SIZE)[:-1]])
_PAIR_ID = np.repeat(np.arange(len(_PITCHES)), _PAIR_SIZE)
# each pair's rates in a row of its own (padded with +inf) so that one row sort gives every pair's median
_PAIR_W = int(_PAIR_SIZE.max())
_PAIR_PAD = _PAIR_ID * _PAIR_W + np.arange(len(_PAIR_ID)) - np.repeat(_PAIR_START, _PAIR_SIZE)
_PAIR_ROW = np.arange(len(_PITCHES)) * _PAIR_W
_PAIR_LOWMED = _PAIR_ROW + (_PAIR_SIZE - 1) // 2
_PAIR_TOP = _PAIR_ROW + _PAIR_SIZE - 1


def _small(a: NDArray[np.intp], g: Geometry) -> NDArray:
    """Raster coordinates as int32 when the raster allows (numpy divides int32 several times faster)."""
    return a.astype(np.int32) if max(g.shape) < 2**31 else a


def _mod(a: NDArray, k: int) -> NDArray:
    """``a % k`` of non-negative integers (k > 0) by a floor division: numpy's remainder is slower."""
    return a - (a // k) * k


def _reticle(c: _Ctx) -> Detection | None:
    act = c.active
    if count_nonzero(act) < 60:
        return None
    ix, iy, f = c.g.ix[act], c.g.iy[act], c.f[act]
    mean = _frac(f)
    pm = max(mean, 0.01)
    L = _RL
    ix32, iy32 = _small(ix, c.g), _small(iy, c.g)
    # x mod 60 is x itself on a map at most 60 dies across
    cell = (iy32 if c.g.shape[0] <= L else _mod(iy32, L)) * L + (ix32 if c.g.shape[1] <= L else _mod(ix32, L))
    # dies and fails per cell from one count over (cell, fail) (integer counts: the same float64 values)
    both = np.bincount(cell * 2 + f, minlength=2 * L * L)
    hist = np.empty((2, L * L))
    hist[1] = both[1::2]
    hist[0] = both[::2] + hist[1]
    # every pitch pair at once; integer counts, so exact in float64 whatever the summation order
    nk = (_FOLD @ hist.reshape(2, L, L) @ _FOLD.T).reshape(2, 400)[:, _PAIR_CELLS]  # hist is float64
    no_all, ko_all = nk[0], nk[1]
    r_all = ko_all / np.maximum(no_all, 1)
    srt = np.full(len(_PITCHES) * _PAIR_W, np.inf)
    srt[_PAIR_PAD] = r_all
    srt.reshape(len(_PITCHES), _PAIR_W).sort(axis=1)
    # the lower median: a cold offset while at most half the offsets are hot (a 2x2 reticle with two hot
    # offsets has a median halfway between hot and cold)
    med = srt[_PAIR_LOWMED]
    top_all = srt[_PAIR_TOP]  # each pair's largest rate
    zs = ((top_all - med) / np.sqrt(pm * (1 - pm) / np.maximum(np.minimum.reduceat(no_all, _PAIR_START), 1))).tolist()
    bi = 0
    for i in range(1, len(zs)):
        if zs[i] > zs[bi] * 1.1:
            bi = i
    # a pitch that divides the reticle's folds its hot offsets in with cold ones: nearly as significant, at a
    # fraction of the rate; the multiple whose hot offsets fail far more often is the reticle
    kx0, ky0 = _PITCHES[bi]
    tops = top_all.tolist()
    best = bi
    for i, (kx1, ky1) in enumerate(_PITCHES):
        if kx1 % kx0 == 0 and ky1 % ky0 == 0 and zs[i] >= 0.8 * zs[bi] and tops[i] >= 1.25 * max(tops[best], 1e-9):
            best = i
    bi = best
    z = zs[bi]
    kx, ky = _PITCHES[bi]
    sl = slice(int(_PAIR_START[bi]), int(_PAIR_START[bi] + _PAIR_SIZE[bi]))
    no, ko, rates = no_all[sl], ko_all[sl], r_all[sl]
    m = kx * ky
    off = _mod(iy32, ky) * kx + _mod(ix32, kx)
    if z < 5:
        return None
    top = float(_amax(rates))
    base = float(med[bi])
    hot = rates >= max(0.5 * top, base + 0.2)
    if count_nonzero(hot) > m / 2 or top - base < 0.22:
        return None
    # it must repeat over the whole wafer: every quadrant shows the hot offsets failing
    idx = _nz(act)
    on = hot[off]
    quad = (c.g.u[idx] >= 0).astype(int) + 2 * (c.g.v[idx] >= 0)
    qn = np.bincount(quad[on], minlength=4)
    qk = np.bincount(quad[on], weights=f[on], minlength=4)
    qr = qk / np.maximum(qn, 1)
    hot_rate = float(_add(ko[hot]) / max(_add(no[hot]), 1))
    spread = float(_amin(qr) / max(hot_rate, 1e-9))
    # every quadrant fails at the hot offsets: at least 45 % of their rate, or short of it by chance only
    short = (hot_rate * qn - qk) / np.sqrt(np.maximum(qn * hot_rate * (1 - hot_rate), 1e-9))
    np.maximum(short, 0.0, out=short)
    if spread < 0.45 and not float(_add(short * short)) < 2.3**2:
        return None
    # ... and over many rows and columns: fails piled on one or two lines are a stripe
    fo = on & f
    nfo = int(count_nonzero(fo))
    for line, lines_on in ((iy[fo], iy[on]), (ix[fo], ix[on])):
        if not nfo:
            break
        cnt = np.bincount(line - _amin(line))
        cnt.sort()
        cnt = cnt[::-1]
        share = float(cnt[:2].sum()) / nfo  # against 2 / (lines the hot offsets lie on) if spread evenly
        if share >= 0.6 and share >= 4.0 / max(_distinct(lines_on), 1):
            return None
    region = np.zeros(c.n, dtype=bool)
    region[idx[on]] = True
    mgn = min((top - base - 0.22) / 0.15, (spread - 0.45) / 0.2, (z - 5) / 4)
    d = c.detect(
        "reticle_repeat",
        region,
        _squash(mgn + 0.3),
        {
            "pitch_x": kx,
            "pitch_y": ky,
            "hot_offsets": int(count_nonzero(hot)),
            "hot_rate": hot_rate,
            "base_rate": base,
            "quadrant_spread": spread,
        },
        f"{int(count_nonzero(hot))} of {m} positions in a {kx}x{ky}-die reticle fail {hot_rate:.0%} across the wafer "
        f"(others {base:.0%})",
    )
    if not c.dry:
        c.active &= ~d.region
    return d


def _stripes(c: _Ctx, axis: int, rasters: tuple[NDArray, NDArray] | None = None) -> tuple[NDArray, NDArray] | None:
    """axis 1: rows (row_stripe); axis 0: columns (column_stripe). Returns the active and failing rasters
    it used when it left the active dies as they were (``rasters`` for the next call), else None."""
    V, F = rasters or (c.raster(c.active), c.raster(c.f & c.active))
    out = V, F
    if axis == 0:
        V, F = V.T, F.T
    h, w = V.shape
    if h < 10:
        return out
    D = 4
    n_row = _add(V, 1)  # bool sums: int64
    k_row = _add(F, 1)
    rate = k_row / np.maximum(n_row, 1)
    # each line against the lines D before and D after it
    vf = _flank_counts(V, F, D)
    side_rate = vf[:, 1] / np.maximum(vf[:, 0], 1)
    ok = vf[:, 0] >= 0.25 * n_row
    flank_ok = ok[0] & ok[1] & (n_row >= 6)
    flank = np.maximum(side_rate[0], side_rate[1])
    contrast = rate - flank >= 0.25
    seed = contrast & flank_ok
    # a line fewer than D lines from the rim has no flank there: the line 3 or 2 beyond it stands in (a stripe
    # is a whole line wherever it lies; a line 1 from the rim keeps no flank, the rim's own dies read as an arc).
    # The nearer line's chord lies within the line's (it is nearer the rim), so its own dies are the dies in both
    stood: NDArray[np.bool_] | None = None  # [side, line]: a nearer line is that side's flank
    near = contrast > flank_ok  # contrast without the flanks: where an absent flank counts as none
    if count_nonzero(near):
        ok_l, n_l, rate_l = ok.tolist(), n_row.tolist(), rate.tolist()
        for i in _nz(near).tolist():
            s = 1 if ok_l[0][i] else 0  # the side without a flank; the other must have one
            if ok_l[s][i] or not ok_l[1 - s][i] or n_l[i] < 6:
                continue
            for dn in (3, 2):
                j = i + dn if s else i - dn
                if 0 <= j < h and n_l[j] >= 0.25 * n_l[i]:
                    if stood is None:
                        stood = np.zeros((2, h), dtype=bool)
                    side_rate[s, i] = rate_l[j]
                    stood[s, i] = True
                    fl = max(float(side_rate[0, i]), float(side_rate[1, i]))
                    flank[i] = fl
                    # a short flank line is a noisy background: the line must stand out clearly (binomial z)
                    r_i, n_i, r_j, n_j = rate_l[i], n_l[i], rate_l[j], n_l[j]
                    p = (r_i * n_i + r_j * n_j) / (n_i + n_j)
                    z = (r_i - r_j) / math.sqrt(max(p * (1 - p), 1e-9) * (1 / n_i + 1 / n_j))
                    seed[i] = flank_ok[i] = r_i - fl >= 0.25 and z >= 2.5
                    break
    # a flank line above the lines 2 either side of it may be a stripe itself (a ring or blob crossing the lines
    # rises smoothly): the line it flanks may yet be a stripe beside it (below)
    nb2 = np.zeros(h)
    nb2[2:] = rate[:-2]
    np.maximum(nb2[:-2], rate[2:], out=nb2[:-2])
    peak = rate - nb2 >= 0.25
    side_peak = np.zeros((2, h), dtype=bool)
    side_peak[0, D:] = peak[:-D]
    side_peak[1, :-D] = peak[D:]
    maybe = seed | ((rate >= 0.25) & flank_ok & (side_peak[0] | side_peak[1]))
    if not count_nonzero(maybe):
        return out
    # uniform along the line: every quarter of the chord fails
    cum = V.cumsum(axis=1) - 1
    q = np.where(V, (4 * cum) // np.maximum(n_row[:, None], 1), 0)
    rows = np.arange(h)[:, None].repeat(w, 1)
    qn = np.bincount((rows * 4 + q)[V], minlength=4 * h).reshape(h, 4)
    qk = np.bincount((rows * 4 + q)[V], weights=F[V], minlength=4 * h).reshape(h, 4)
    qmin = _amin(qk / np.maximum(qn, 1), 1)
    # ... or no quarter falls short of the line's rate by more than chance explains (short chords)
    rr = rate[:, None]
    short = (qn * rr - qk) / np.sqrt(np.maximum(qn * rr * (1 - rr), 1e-9))
    even = (_amax(short, 1) < 2.3) & (_amin(qk, 1) > 0)
    uniform = (qmin >= 0.35 * rate) | even
    seed &= uniform
    # a flank line that is itself a stripe (D lines further out fail far less) is no background: stripes D
    # lines apart would each hide the other; the line 2D away stands in for it
    D2 = 2 * D
    if h > D2 and (maybe & ~seed).any():
        vf2 = _flank_counts(V, F, D2)
        far = vf2[:, 1] / np.maximum(vf2[:, 0], 1)
        hot_side = (side_rate - far >= 0.25) & (vf2[:, 0] >= 0.25 * n_row) & side_peak
        if hot_side.any():
            flank2 = np.maximum(*np.where(hot_side, far, side_rate))
            more = (rate - flank2 >= 0.25) & flank_ok & uniform & ~seed
            if more.any():
                seed |= more
                flank = np.where(more, flank2, flank)
    if stood is not None and (seed & (stood[0] | stood[1])).any():
        _rim_line_check(c, axis, V, F, rate, stood, seed, D)
    if not seed.any():
        return out
    # a line beside a stripe joins it unless its quarters fall short of its rate jointly by more than chance
    # (one empty quarter of a few dies is chance at a 40 % fill)
    np.maximum(short, 0.0, out=short)
    even |= _add(short * short, 1) < 2.3**2
    base = float(_median(rate[n_row >= 3]))
    grow = (rate >= base + 0.2) & ((qmin >= 0.3 * rate) | even) & (n_row >= 3)
    sel = seed.copy()
    for _ in range(6):
        nb = np.zeros_like(sel)
        nb[1:] |= sel[:-1]
        nb[:-1] |= sel[1:]
        new = sel | (nb & grow)
        if not (new != sel).any():  # np.array_equal (same shape), without its wrapper
            break
        sel = new
    if count_nonzero(sel) > 0.3 * count_nonzero(n_row >= 3):
        return out  # a gross region, not stripes
    line = _nz(sel)
    coord = c.g.iy if axis == 1 else c.g.ix
    on_line = np.zeros(h, dtype=bool)
    on_line[line] = True
    region = on_line[coord] & c.active
    best = float((rate - flank)[seed].max())
    fam = "row_stripe" if axis == 1 else "column_stripe"
    what = "rows" if axis == 1 else "columns"
    d = c.detect(
        fam,
        region,
        _squash((best - 0.25) / 0.2 + 0.3),
        {
            "lines": int(len(line)),
            "line_fail_rate": float(k_row[sel].sum() / max(n_row[sel].sum(), 1)),
            "flank_rate": float(flank[seed].min()),
            "contrast": best,
        },
        f"{len(line)} whole {what} fail {k_row[sel].sum() / max(n_row[sel].sum(), 1):.0%} against "
        f"{float(flank[seed].min()):.0%} on the neighbouring {what}",
    )
    c.explain(d.region, 1)
    return None


def _flank_counts(V: NDArray[np.bool_], F: NDArray[np.bool_], d: int) -> NDArray[np.int64]:
    """Each line against the lines ``d`` before (side 0) and ``d`` after (side 1) it, none beyond the map:
    ``[side, 0]`` the dies present in both lines, ``[side, 1]`` the flank line's fails among them."""
    vf = np.zeros((2, 2, V.shape[0]), dtype=np.int64)
    vv = _add(V[:-d] & V[d:], 1)
    vf[0, 0, d:] = vv
    vf[1, 0, :-d] = vv
    vf[0, 1, d:] = _add(F[:-d] & V[d:], 1)
    vf[1, 1, :-d] = _add(V[:-d] & F[d:], 1)
    return vf


def _rim_line_check(
    c: _Ctx,
    axis: int,
    V: NDArray[np.bool_],
    F: NDArray[np.bool_],
    rate: NDArray[np.float64],
    stood: NDArray[np.bool_],
    seed: NDArray[np.bool_],
    D: int,
) -> None:
    """Unseed (in place) each seeded line near the rim whose flank there is a nearer line unless it fails at least
    twice as often as, and 25 points above, the dies as far out from the centre elsewhere (an edge ring's rim rows
    are no stripe)."""
    Rr = c.raster(c.g.r)
    if axis == 0:
        Rr = Rr.T
    for i in _nz(seed & (stood[0] | stood[1])).tolist():
        far = V & (Rr >= float(_amin(Rr[i][V[i]])))
        far[max(i - D, 0) : i + D + 1] = False
        n_far = int(count_nonzero(far))
        r_far = int(count_nonzero(F & far)) / n_far if n_far else 0.0
        if float(rate[i]) - r_far < 0.25 or r_far > 0.5 * float(rate[i]):
            seed[i] = False


def _radial(c: _Ctx) -> None:
    g = c.g
    act = c.active
    na = int(count_nonzero(act))
    if na < 40:
        return
    ns = 8
    ia: NDArray[np.intp] | None = None  # the dies scanned (None: every die)
    if na == c.n:  # every die (no periodic pattern or stripe found): the layout's cells, once per layout
        nb, rmax, cell, cn, bn, per = _radial_cells(c)
        fa = c.f
    else:
        ia = _nz(act)
        nb, rmax, cell, cn, bn, per = _radial_cells(c, ia)
        fa = c.f[ia]
    ck = np.bincount(cell, weights=fa, minlength=nb * ns).reshape(nb, ns)
    cr = ck / np.maximum(cn, 1)
    bk = _add(ck, 1)
    brate = bk / np.maximum(bn, 1)
    seen = cn > 0
    bg = _quantile(cr[seen], 0.25)
    thr = bg + max(0.1, 3.0 * math.sqrt(max(bg, 0.02) * (1 - bg) / per))
    bg = max(bg, _quantile(brate, 0.3) if nb >= 8 else bg)  # bands: a wide pattern may hold half of them
    bsig = 3.0 * np.sqrt(max(bg, 0.02) * (1 - bg) / np.maximum(bn, 1))
    lift = brate - bg
    # a sector belongs to the ring when its fails are likelier under the band's rate than under background
    pb = np.minimum(np.maximum(brate, 1e-3), 1 - 1e-3)[:, None]  # np.clip
    p0 = min(max(bg, 1e-3), 1 - 1e-3)
    llr = ck * np.log(pb / p0) + (cn - ck) * np.log((1 - pb) / (1 - p0))
    cover8 = _add((llr > 0) & seen, 1) / np.maximum(_add(seen, 1), 1)
    lift_min, cover_min = _ring_floors(nb)
    ring = (lift >= np.maximum(lift_min, bsig)) & (cover8 >= cover_min)
    edges = _band_edges(nb) * rmax
    # gradient: a smooth monotone radial profile over (nearly) the whole radius
    lo, hi = float(_amin(brate)), float(_amax(brate))
    span = hi - lo
    if span >= 0.08:
        rc = (edges[:-1] + edges[1:]) / 2
        corr = _corr(rc, brate)  # span > 0: brate is not constant
        trans = int(count_nonzero((brate > lo + 0.2 * span) & (brate < lo + 0.8 * span)))
        srt = cr.copy()  # np.sort(cr, axis=1)
        srt.sort(axis=1)
        floor = (srt[:, 1] / np.maximum(brate, 1e-9))[brate > lo + 0.5 * span]  # not empty: span > 0
        angular = float(_add(floor)) / len(floor)  # the mean, the same bits
        tw = trans / nb
        rising = corr > 0
        steps = (brate[1:] - brate[:-1]) * (1.0 if rising else -1.0)  # np.diff
        feats = {
            "radial_corr": corr,
            "transition_width": tw,
            "inner_rate": float(brate[0]),
            "outer_rate": float(brate[-1]),
            "angular_floor": angular,
            "profile_span": span,
            # a step (a ring's or blob's edge) puts most of the span in one band; a gradient spreads it
            "largest_step": float(_amax(steps)) / span,
            "monotone_share": float(_frac(steps > -0.02)),
        }
        text = (
            f"fail density {'rises' if rising else 'falls'} from {brate[0]:.0%} at the centre to "
            f"{brate[-1]:.0%} at the edge"
        )
        rule = bool(span >= 0.2 and count_nonzero(ring) >= 1 and abs(corr) >= 0.85 and tw >= 0.3 and angular >= 0.5)
        # short of the rule (|corr| >= 0.6): a whole-wafer reading the verifier weighs against the blob or ring
        # found here
        if rule or abs(corr) >= 0.6:
            c.dry = not rule
            d = c.detect(
                "radial_gradient",
                act.copy(),
                _squash(min((abs(corr) - 0.85) / 0.05, (tw - 0.3) / 0.1, (span - 0.2) / 0.1) + 0.3),
                feats,
                text,
                "rising" if rising else "falling",
            )
            c.dry = False
            if rule:
                c.explain(d.region, 0, soft=True)
                return
            d.source = PROFILE
            c.profile = d
    if not count_nonzero(ring):
        return
    # contiguous runs of ring bands
    for run in _runs(ring.tolist()):
        b0, b1 = run.start, run.stop - 1
        if b0 == 0 and b1 == nb - 1:
            continue  # whole wafer: random / near-full territory
        lvl = float(_add(bk[b0 : b1 + 1]) / max(_add(bn[b0 : b1 + 1]), 1))
        # no hole inside: a centre blob whose core band fell short of the coverage test
        inner = float(_add(bk[:b0]) / max(_add(bn[:b0]), 1)) if b0 else 0.0
        if 0 < b0 <= nb // 3 and inner >= bg + 0.7 * (lvl - bg):
            b0 = 0
        # the fading rim of the pattern belongs to it (soft edges)
        soft = (lift >= np.maximum(0.5 * (lvl - bg), bsig)) & (cover8 >= 0.6)
        while b0 > 0 and soft[b0 - 1] and not (b0 - 1 == 0 and b1 >= nb - 2):
            b0 -= 1
        while b1 < nb - 1 and soft[b1 + 1] and not (b0 == 0 and b1 + 1 == nb - 1):
            b1 += 1
        r_in, r_out = float(edges[b0]), float(edges[b1 + 1])
        lvl = float(_add(bk[b0 : b1 + 1]) / max(_add(bn[b0 : b1 + 1]), 1))
        if b0 == 0 and b1 < nb - 2:
            r_in = _hole(c, r_out, bg, lvl)
        # band edges are coarse on small maps: move each inner boundary to the die-level step in the fails
        if b1 < nb - 1:
            r_out = _step(c, r_out, float(edges[b1 + 1] - edges[b1]), inside_below=True)
        if r_in > 0.0:
            r_in = _step(c, r_in, float(edges[max(b0, 1)] - edges[max(b0, 1) - 1]), inside_below=False)
        region = act & (g.r >= r_in) & (g.r < r_out if b1 < nb - 1 else True)
        lvl = float(_frac_in(c.f, region)) if count_nonzero(region) else lvl
        cover = float(_frac(cr[b0 : b1 + 1] >= thr))
        if r_in == 0.0 and not _stands_above(c, region, lvl, ring, cell // ns, ia):
            continue  # no higher than the rest of the wafer (a wide "blob" on random fails): not a centre pattern
        if r_in == 0.0:
            fam = "center"
            text = f"blob of fails at r < {r_out:.2f} R, {lvl:.0%} failing, on {cover:.0%} of sectors"
        elif b1 >= nb - 2 or r_out >= 0.93 * rmax:
            fam = "edge_ring"
            text = f"ring of fails at {r_in:.2f}-1.0 R, {lvl:.0%} failing, on {cover:.0%} of the edge sectors"
        else:
            fam = "donut"
            text = f"ring of fails at {r_in:.2f}-{r_out:.2f} R, {lvl:.0%} failing, on {cover:.0%} of sectors"
        mgn = min((float(_add(cover8[run])) / (run.stop - run.start) - 0.75) / 0.1, (lvl - bg - 0.07) / 0.07)
        d = c.detect(
            fam,
            region,
            _squash(mgn + 0.3),
            {"r_inner": r_in, "r_outer": r_out, "ring_fail_rate": lvl, "background_rate": bg, "sector_coverage": cover},
            text,
        )
        c.explain(d.region, 1, soft=True)


def _stands_above(
    c: _Ctx,
    region: NDArray[np.bool_],
    lvl: float,
    ring: NDArray[np.bool_],
    band: NDArray[np.intp],
    ia: NDArray[np.intp] | None,
) -> bool:
    """A centre pattern stands above the rest of the wafer: its fail rate exceeds that of the active dies outside
    it (other ring bands left out: an edge ring is a pattern of its own) by three standard errors (pooled
    binomial)."""
    if ia is None:  # every die is active: ``band`` is per die
        out = ~ring[band]
    else:
        out = np.zeros(c.n, dtype=bool)
        out[ia] = ~ring[band]
    out &= ~region
    n_in, n_out = int(count_nonzero(region)), int(count_nonzero(out))
    if n_out < 8 or n_in < 3:
        return True  # nothing (or too little) to compare with
    k_out = int(count_nonzero(c.f & out))
    p_out = k_out / n_out
    p = (lvl * n_in + k_out) / (n_in + n_out)
    se = math.sqrt(max(p * (1 - p), 1e-4) * (1.0 / n_in + 1.0 / n_out))
    return lvl - p_out >= 3.0 * se


def _radial_cells(c: _Ctx, ia: NDArray[np.intp] | None = None) -> tuple:
    """The radial scan's grid over the dies ``ia`` (every die when None: cached per layout): bands, each die's
    cell (band x 8 sectors), dies per cell and per band, the median dies per cell."""
    g = c.g
    if ia is None:
        got = g.extra.get("radial_cells")
        if got is not None:
            return got
    na = g.n if ia is None else len(ia)
    nb = min(max(na // 80, 6), 20)
    ra = g.r if ia is None else g.r[ia]
    rmax = float(_amax(ra))
    band = np.minimum(((ra / rmax) ** 2 * nb).astype(int), nb - 1)
    sec = c.sec8() if ia is None else c.sec8()[ia]  # 8 sectors
    cell = band * 8 + sec
    cn = np.bincount(cell, minlength=nb * 8).reshape(nb, 8)
    out = (nb, rmax, cell, cn, _add(cn, 1), max(float(_median(cn)), 1.0))
    if ia is None:
        for a in (cell, cn, out[4]):
            a.setflags(write=False)
        g.extra["radial_cells"] = out
    return out


_RING_FLOORS: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}


def _ring_floors(nb: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per radial band of ``nb``: the lift and sector coverage a ring band needs (the outer two bands less)."""
    fl = _RING_FLOORS.get(nb)
    if fl is None:
        outer = np.arange(nb) >= nb - 2
        fl = _RING_FLOORS[nb] = (np.where(outer, 0.07, 0.09), np.where(outer, 0.7, 0.8))
        for a in fl:
            a.setflags(write=False)
    return fl


_BAND_EDGES: dict[int, NDArray[np.float64]] = {}


def _band_edges(nb: int) -> NDArray[np.float64]:
    """The ``nb`` equal-area radial bands' edges on a unit radius: ``np.sqrt(np.arange(nb + 1) / nb)``."""
    e = _BAND_EDGES.get(nb)
    if e is None:
        e = _BAND_EDGES[nb] = np.sqrt(np.arange(nb + 1) / nb)
        e.setflags(write=False)
    return e


def _runs(flags: list[bool]) -> list[slice]:
    """The maximal runs of True in ``flags``, as slices in order."""
    out, start = [], None
    for i, v in enumerate(flags):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append(slice(start, i))
            start = None
    if start is not None:
        out.append(slice(start, len(flags)))
    return out


def _distinct(a: NDArray[np.intp]) -> int:
    """``len(np.unique(a))`` of non-negative integers with a small range, by counting."""
    if not len(a):
        return 0
    lo = int(a.min())
    return int(count_nonzero(np.bincount(a - lo)))


def _step(c: _Ctx, r0: float, width: float, *, inside_below: bool) -> float:
    """The radius near ``r0`` (within one band ``width``, at least two dies) where a two-level step fits the
    active dies' fails best (maximum Bernoulli likelihood); the pattern lies below it when ``inside_below``.
    ``r0`` itself when the window is too thin or the step does not keep the pattern side the hotter one."""
    w = max(width, 2.0 / c.g.rx)
    act = c.active
    rr = c.g.r
    win = act & (rr >= r0 - w) & (rr < r0 + w)
    n = int(count_nonzero(win))
    if n < 12:
        return r0
    rw = rr[win]
    order = rw.argsort(kind="stable")
    rs = rw[order]
    fs = c.f[win][order].astype(np.float64)
    ck = fs.cumsum()
    k_all = float(ck[-1])
    i = np.arange(3, n - 2)  # split before index i: [0, i) below, [i, n) above; both sides >= 3 dies
    i = i[rs[i] > rs[i - 1]]  # only between distinct radii
    if not len(i):
        return r0
    kb = ck[i - 1]
    nb_, na_ = i.astype(np.float64), (n - i).astype(np.float64)
    ka = k_all - kb

    def ll(k, m):
        p = k / m
        np.maximum(p, 1e-9, out=p)  # np.clip's values (no NaN here)
        np.minimum(p, 1 - 1e-9, out=p)
        return k * np.log(p) + (m - k) * np.log(1 - p)

    tot = ll(kb, nb_) + ll(ka, na_)
    hot_below = kb / nb_ > ka / na_
    tot = np.where(hot_below == inside_below, tot, -np.inf)
    j = int(tot.argmax())
    if not np.isfinite(tot[j]):
        return r0
    return float((rs[i[j] - 1] + rs[i[j]]) / 2)


def _hole(c: _Ctx, r_out: float, bg: float, lvl: float) -> float:
    """Inner radius of a ring whose hole is smaller than the innermost radial band (0.0: no hole)."""
    act = c.active
    step = 1.0 / c.g.rx  # one die
    nbin = max(int(r_out / step), 1)
    rb = np.minimum((c.g.r[act] / step).astype(int), nbin)
    inside = rb < nbin
    hn = np.bincount(rb[inside], minlength=nbin)
    hk = np.bincount(rb[inside], weights=c.f[act][inside], minlength=nbin)
    cn, ck = hn.cumsum(), hk.cumsum()
    mid = bg + 0.4 * (lvl - bg)
    # the largest disk (>= 8 dies) that stays below the midpoint is the hole
    ok = (cn >= 8) & (ck / np.maximum(cn, 1) < bg + 0.3 * (lvl - bg))
    if not count_nonzero(ok):
        return 0.0
    j = int(_nz(ok)[-1])
    rate_next = hk[j + 1 :] / np.maximum(hn[j + 1 :], 1)
    above = _nz(rate_next >= mid)
    j2 = j + 1 + (int(above[0]) if len(above) else 0)
    return float(j2 * step)


def _scratch(c: _Ctx) -> None:
    for _ in range(3):
        if not _one_scratch(c):
            return


_ANG = np.arange(48) * math.pi / 48
_COS, _SIN = np.cos(_ANG), np.sin(_ANG)


def _one_scratch(c: _Ctx) -> bool:
    act = c.active
    fi = _nz(act & c.f)
    if len(fi) < 5:
        return False
    off = int(math.ceil(c.g.rx)) + 6
    nbins = 2 * off + 1
    # np.outer's products; the bin offsets are small integers, so adding them before the cast is exact
    rho = c.xd[fi][:, None] * _COS
    rho += c.yd[fi][:, None] * _SIN
    # nearest bin, halves up: rint's halves-to-even would pair the columns of a grid whose centre lies
    # between two dies (die centres at k + 0.5) into every other bin, a comb of false line contrasts
    rho += 0.5
    np.floor(rho, out=rho)
    rho += off + np.arange(48.0) * nbins
    H = np.bincount(rho.astype(np.intp).ravel(), minlength=48 * nbins).reshape(48, nbins)
    # a line 1-2 dies wide spreads over up to 3 rho bins off the axes: 3-bin sums against 3-bin flanks 4 away
    Hp = np.zeros((48, nbins + 10), dtype=H.dtype)
    Hp[:, 5 : 5 + nbins] = H
    S = Hp[:, :-2] + Hp[:, 1:-1] + Hp[:, 2:]  # S[:, j + 4] is the sum over bins j-1..j+1
    flank3 = 0.5 * (S[:, :-8] + S[:, 8:])
    flank1 = 0.5 * (Hp[:, 2 : 2 + nbins] + Hp[:, 8 : 8 + nbins])
    contrast = np.maximum(S[:, 4:-4] - flank3, H - flank1)
    # cells ranked by the Poisson z of either window (a chord through a noisy wafer collects many fails: raw
    # contrasts favour long chords); a short line's 3-bin peak is flat over angles: the 1-bin z breaks ties
    z1 = (H - flank1) / np.sqrt(flank1 + 1.0)
    cf = np.maximum((S[:, 4:-4] - flank3) / np.sqrt(flank3 + 3.0), z1) + 0.01 * z1
    # the best cells, each at least 2 angles or 3 rho bins from an earlier one (ties in raster order)
    order = []
    for _ in range(c.th.scratch_tries):
        top = int(np.argmax(cf))
        order.append(top)
        ta, tb = divmod(top, nbins)
        cf[max(ta - 1, 0) : ta + 2, max(tb - 2, 0) : tb + 3] = -np.inf
    best = None
    ai = None
    for flat in order:
        a, b = divmod(int(flat), nbins)
        if contrast[a, b] < c.th.scratch_contrast:
            break
        if ai is None:
            ai = _nz(act)
            xa, ya = c.xd[ai], c.yd[ai]
            bg = _cell_median_rate(c, act)
        res = _line_run(c, a, b - off, ai, xa, ya, bg)
        if res is not None and (best is None or res[0] > best[0]):
            best = res
    if best is None:
        return False
    length, region, feats, ang = best
    ori = tx.orientation_of(ang)
    c.detect(
        "scratch",
        region,
        _squash(min((feats["fill"] - feats["flank_fill"] - 0.42) / 0.15, (length - feats["min_len"]) / 4) + 0.3),
        feats,
        f"line of fails {length:.0f} dies long at {math.degrees(ang) % 180:.0f} deg, {feats['fill']:.0%} filled, "
        f"{feats['flank_fill']:.0%} beside it",
        ori,
    )
    c.explain(region, 1)
    return True


def _line_run(
    c: _Ctx,
    a: int,
    rho0: float,
    ai: NDArray[np.intp],
    xa: NDArray[np.float64],
    ya: NDArray[np.float64],
    bg: float = 0.0,
):
    """The scratch along Hough cell (``a``, ``rho0``) among the active dies ``ai`` (at ``xa``, ``ya``), whose
    background fail rate is ``bg``: (length, region, features, angle), or None."""
    cs, sn = _COS[a], _SIN[a]
    # distances across the line in units of a die's extent across it (a diagonal die spans sqrt 2; with a
    # non-square pitch the rows of a horizontal line are pitch_y / pitch_x apart)
    across = max(1.0, abs(cs) + abs(sn) * c.g.rx / c.g.ry)
    dist = (xa * cs + ya * sn - rho0) / across
    # every test below looks at active dies within 4 of the line once it is recentred (by at most 1): the
    # active dies within 6 of it are all it needs (elementwise, so the same values on fewer dies)
    keep = np.abs(dist) <= 6.0
    sub = ai[keep]
    dist, f = dist[keep], c.f[sub]
    near0 = f & (np.abs(dist) <= 1.0)
    if near0.any():  # centre the line on its fails (die centres may sit between rho bins)
        dist = dist - float(_median(dist[near0]))
    t = -c.xd[sub] * sn + c.yd[sub] * cs
    adist = np.abs(dist)
    on = adist <= 1.0
    hit = on & f
    t0, t1, cnt = runs_longest(t, hit, 3.2)
    # at least 5.5 dies long: along a short pitch (non-square dies) that is a shorter line in x-pitch units
    along = (abs(sn) + abs(cs) * c.g.rx / c.g.ry) / (abs(sn) + abs(cs))
    min_len = max(5.5 * along, 0.08 * c.dia)
    if t1 - t0 < min_len or cnt < 5:
        return None
    inside = (t >= t0) & (t <= t1)
    # a blob, not a line: the fails above the background within 4 dies spread across the line (counted without
    # the background, a line on a wafer with ~6 % fails or more failed this test however clear it was)
    band = (adist <= 4.0) & inside
    near = f & band
    k_near, k_on = count_nonzero(near), count_nonzero(near & on)
    if k_near >= 3 and k_on - bg * count_nonzero(band & on) < 0.7 * (k_near - bg * count_nonzero(band)):
        return None
    mid = hit & inside
    r_mid = c.g.r[sub[mid]]
    if _frac(r_mid > 0.85) >= 0.7:
        radial = np.abs(c.g.u[sub[mid]] * -sn + c.g.v[sub[mid]] * cs) / np.maximum(r_mid, 1e-9)
        if float(radial.sum()) / len(radial) < 0.5:  # the mean, the same bits
            return None  # runs along the edge: an edge arc, left to the blob stage
    # the dies whose footprint the line crosses; then the row beside it when that fails too (2 dies wide)
    along = (t >= t0 - 0.5) & (t <= t1 + 0.5)
    seg = (adist <= 0.5) & along
    for side in (1, -1):
        band2 = (side * dist > 0.5) & (side * dist <= 1.2) & along
        if count_nonzero(band2) >= 3 and _frac_in(f, band2) >= 0.45:
            seg |= band2
    fill = float(_frac_in(f, seg))
    fl = (adist >= 2.0) & (adist <= 4.0) & inside
    fl_a = fl & (dist > 0)
    fl_b = fl & (dist < 0)
    nseg = count_nonzero(seg)
    if count_nonzero(fl_a) < 0.3 * nseg or count_nonzero(fl_b) < 0.3 * nseg:
        return None
    ffill = float(max(_frac_in(f, fl_a), _frac_in(f, fl_b)))
    if fill < c.th.scratch_fill or fill - ffill < c.th.scratch_margin:
        return None
    region = np.zeros(c.n, dtype=bool)
    region[sub[seg]] = True
    ang = (_ANG[a] + math.pi / 2) % math.pi
    # the rest of the line's chord: a stripe fails along all of it, a scratch only along its run
    chord = adist <= 0.5
    rest = chord & ~along
    ts = t[chord]
    feats = {
        "length": t1 - t0,
        "fill": fill,
        "flank_fill": ffill,
        "angle_deg": math.degrees(ang),
        "min_len": min_len,
        "chord_rest_fill": float(_frac_in(f, rest)) if rest.any() else -1.0,
        "run_share": (t1 - t0) / max(float(ts.max() - ts.min()), 1.0) if len(ts) else 1.0,
    }
    return t1 - t0, region, feats, ang


def _curve(xs: NDArray[np.float64], ys: NDArray[np.float64], ang: float) -> tuple[float, float]:
    """(length, thickness) of points along direction ``ang``: the 5-95 % extent along it, and the 80th
    percentile of the distances from the least-squares quadratic across it (a straight or bent scratch is
    thin; a blob is not)."""
    ca, sa = math.cos(ang), math.sin(ang)
    n = len(xs)
    dx, dy = xs - float(xs.sum()) / n, ys - float(ys.sum()) / n  # the means, the same bits
    t = dx * ca + dy * sa
    d = dy * ca - dx * sa
    t05, t95 = _quantiles(t, 0.05, 0.95)
    tn = t / max(float(np.abs(t).max()), 1.0)
    t2 = tn * tn
    # least squares d ~ b0 + b1 t + b2 t^2 by its normal equations (t is centred: sum t ~ 0)
    s1, s2, s3, s4 = float(tn.sum()), float(t2.sum()), float(t2 @ tn), float(t2 @ t2)
    y0, y1, y2 = float(d.sum()), float(d @ tn), float(d @ t2)
    m = np.array([[n, s1, s2], [s1, s2, s3], [s2, s3, s4]])
    try:
        b0, b1, b2 = solve(m, np.array([y0, y1, y2])).tolist()
    except np.linalg.LinAlgError:  # every point at one position along the axis
        b0, b1, b2 = y0 / n, 0.0, 0.0
    return t95 - t05, _quantile(np.abs(d - b0 - b1 * tn - b2 * t2), 0.8)


def _cell_median_rate(c: _Ctx, act: NDArray[np.bool_]) -> float:
    """Background fail rate: the median over 32 polar cells (8 sectors x 4 equal-area bands) of their fail
    rate; a local pattern holds a minority of the cells."""
    g = c.g
    idx = _nz(act)
    rr = g.r[idx]
    band = np.minimum((rr * rr / max(float(_amax(rr)) ** 2, 1e-12) * 4).astype(np.intp), 3)
    sec = c.sec8()[idx]
    cell = band * 8 + sec
    cn = np.bincount(cell, minlength=32)
    ck = np.bincount(cell, weights=c.f[idx], minlength=32)
    ok = cn >= 5
    return _median(ck[ok] / cn[ok]) if count_nonzero(ok) >= 8 else 0.0


def _soft_level(c: _Ctx, act: NDArray[np.bool_], bg: float) -> NDArray[np.float64]:
    """Expected fail rate of each die: ``bg``, or inside a radial pattern the pattern's own radial profile
    (per thin equal-area band, the median over 8 sectors: a local pattern holds a minority of them)."""
    e = np.full(c.n, bg)
    if not c.soft.any():
        return e
    g = c.g
    na = int(act.sum())
    nb = min(max(na // 48, 6), 60)
    rmax = float(g.r[act].max())
    band = np.minimum(((g.r / rmax) ** 2 * nb).astype(np.intp), nb - 1)
    cell = (band * 8 + c.sec8())[act]
    cn = np.bincount(cell, minlength=nb * 8).reshape(nb, 8)
    ck = np.bincount(cell, weights=c.f[act], minlength=nb * 8).reshape(nb, 8)
    rate = np.where(cn >= 2, ck / np.maximum(cn, 1), np.inf)
    srt = np.sort(rate, axis=1)
    ok = (cn >= 2).sum(1)
    rows = np.arange(nb)
    lo = np.maximum((ok - 1) // 2, 0)
    med = 0.5 * (srt[rows, lo] + srt[rows, np.maximum(ok // 2, 0)])
    mean = ck.sum(1) / np.maximum(cn.sum(1), 1)
    prof = np.where(ok >= 4, med, mean)
    e[c.soft] = np.maximum(prof[band[c.soft]], bg)
    return e


def _blobs(c: _Ctx) -> None:
    g = c.g
    act = c.active | c.soft
    # a line's dies (and the ring the line search took around them) stay searchable: a dense cluster the line
    # search read a line through is still found as the cluster it is
    lines = [d.region for d in c.dets if d.family == "scratch" and not d.source]
    taken: NDArray[np.bool_] | None = None
    if lines:
        taken = np.logical_or.reduce(lines)
        taken = taken | dilate(c.raster(taken), 1).reshape(-1)[g.flat]
        act = act | taken
    if act.sum() < 20:
        return
    k = 3 if c.dia < 40 else 5
    V = c.raster(act)
    F = c.raster(c.f & act)
    sv, sf = box_sum(np.stack((V, F)), k)
    dens = np.where(V, sf / np.maximum(sv, 1), 0.0)
    dv = dens.reshape(-1)[g.flat]
    plain = c.active if c.active.sum() >= 20 else act
    bg = _quantile(dv[plain], 0.4)
    e = _soft_level(c, act, bg)
    edv: NDArray[np.float64] | float
    liftv: NDArray[np.float64] | float
    if c.soft.any():
        ed = np.clip(np.where(V, box_sum(c.raster(np.where(act, e, 0.0)), k) / np.maximum(sv, 1), bg), 0.0, 1.0)
        lift = np.maximum(c.th.blob_lift, c.th.blob_sigma * np.sqrt(np.maximum(ed, 0.02) * (1 - ed) / (k * k)))
        hot = V & (dens >= ed + lift)
        edv, liftv = ed.reshape(-1)[g.flat], lift.reshape(-1)[g.flat]
    else:
        edv = bg
        liftv = max(c.th.blob_lift, c.th.blob_sigma * math.sqrt(max(bg, 0.02) * (1 - bg) / (k * k)))
        hot = V & (dens >= bg + liftv)
    lab, nlab = components(hot)
    if nlab == 0:
        return
    dl = lab.reshape(-1)[g.flat]
    sizes = np.bincount(dl, minlength=nlab + 1)
    found: dict[str, list[tuple[float, Detection]]] = {}
    sz = sizes.tolist()
    kf = np.bincount(dl, weights=c.f, minlength=nlab + 1)
    ke = np.bincount(dl, weights=e, minlength=nlab + 1)
    kfl, comp_e = kf.tolist(), ke.tolist()
    comps = [
        comp for comp in (np.argsort(-sizes[1:], kind="stable")[:6] + 1).tolist() if sz[comp] >= max(5, 0.004 * c.n)
    ]
    if not comps:
        return
    # the region: component dies whose local excess is at least halfway to the component's peak excess (the
    # smoothing window spreads a dense blob into a fringe of mostly passing dies); all components at once
    xv = dv - edv
    inc = np.flatnonzero(dl)
    xs_, dls = xv[inc], dl[inc]
    order = np.lexsort((xs_, dls))
    first = np.searchsorted(dls[order], np.arange(nlab + 1))
    peak = np.full(nlab + 1, np.inf)
    for comp in comps:
        peak[comp] = _lerp_at(xs_[order[first[comp] : first[comp] + sz[comp]]], 0.9)
    core_all = (dl > 0) & (xv >= 0.5 * (liftv + np.maximum(peak[dl], liftv)) - 0.05)
    cdl = dl[core_all]
    core_n = np.bincount(cdl, minlength=nlab + 1).tolist()
    core_k = np.bincount(cdl, weights=c.f[core_all], minlength=nlab + 1).tolist()
    core_e = np.bincount(cdl, weights=e[core_all], minlength=nlab + 1).tolist()
    for comp in comps:
        in_core = core_n[comp] >= 3
        nreg = core_n[comp] if in_core else sz[comp]
        kk = float(core_k[comp] if in_core else kfl[comp])
        exp = float(core_e[comp] if in_core else comp_e[comp])
        z = (kk - exp) / math.sqrt(max(exp, 1.0))
        if z < c.th.blob_z:
            continue
        region = (dl == comp) & core_all if in_core else dl == comp
        ri = _nz(region)
        rr, tt = g.r[ri], g.theta[ri]
        r_min, r_max = float(rr.min()), float(rr.max())
        area = nreg / c.n
        edge_share = float(_frac(rr > 0.85))
        sec16 = np.bincount(((tt + math.pi) / (2 * math.pi) * 16).astype(int) & 15, minlength=16)  # & 15: % 16
        cover16 = float(_frac(sec16 > 0.02 * nreg))
        cx, cy = float(g.u[ri].sum()) / nreg, float(g.v[ri].sum()) / nreg  # the means, the same bits
        ang = math.atan2(cy, cx)
        xs, ys = c.xd[ri], c.yd[ri]
        cov = _cov(xs, ys) if nreg > 2 else np.eye(2)
        ev = np.sort(eigvalsh(cov))
        elong = float(math.sqrt(max(ev[1], 1e-9) / max(ev[0], 0.05)))
        feats = {
            "area_share": area,
            "edge_share": edge_share,
            "sector_coverage": cover16,
            "elongation": elong,
            "fail_rate": kk / nreg,
            "background_rate": exp / nreg,
            "z": z,
            "r_min": r_min,
            "r_max": r_max,
        }
        octant = tx.octant_of(ang)
        fm = ri[c.f[ri]]
        if len(fm) >= 4:
            fev = eigh(_cov(c.xd[fm], c.yd[fm]))
            fl = np.sort(fev[0])
            felong = float(math.sqrt(max(fl[1], 1e-9) / max(fl[0], 0.05)))
            fdir = float(math.atan2(fev[1][1, 1], fev[1][0, 1]))  # the major axis
            length, thick = _curve(c.xd[fm], c.yd[fm], fdir)
            # a line or a gently curved arc 1-2 dies wide: the fails hug a quadratic along the major axis
            thin = thick <= c.th.line_thick and length >= max(5.0, 4.0 * thick)
            # a long curve is a scratch even when bent (a blob's extent is a few times its thickness at most)
            long = length >= c.th.line_aspect * max(thick, 1.0)
            line_like = (thin or long) and len(fm) >= 6
        else:
            fdir, felong, line_like, length, thick, long = 0.0, 0.0, False, 0.0, 0.0, False
        feats.update({"curve_length": length, "curve_thickness": thick})
        r05, r95 = _quantiles(rr, 0.05, 0.95)
        depth = r95 - r05
        dth = np.angle(np.exp(1j * (tt - ang)))
        q05, q95 = _quantiles(dth, 0.05, 0.95)
        arc = (q95 - q05) * (float(rr.sum()) / nreg)
        feats.update({"fail_elongation": felong, "arc_to_depth": arc / max(depth, 0.03)})
        if area >= 0.1 and r_min < 0.25 and r_max > 0.85 and cover16 <= 0.8:
            side_q = cover16 <= 0.45
            k8 = int(math.floor((ang % (2 * math.pi)) / (math.pi / 2)))
            side = (
                ("ne", "nw", "sw", "se")[k8]
                if side_q
                else ("e", "n", "w", "s")[int(math.floor((ang % (2 * math.pi)) / (math.pi / 2) + 0.5)) % 4]
            )
            fam, ref = "gross_region", side
            text = f"{'quadrant' if side_q else 'half'} of the wafer ({side.upper()}) fails, {area:.0%} of dies"
        elif depth < 0.14 and arc / max(depth, 0.03) >= 2.5 and r95 < 0.88:
            continue  # a concentric arc away from the edge: the rim of a ring, not a pattern of its own
        elif line_like and not (r95 >= 0.88 and arc / max(depth, 0.03) >= 1.8 and (depth < 0.2 or long)):
            if taken is not None and count_nonzero(region & taken) >= 0.5 * nreg:
                continue  # the line already found
            fam, ref = "scratch", tx.orientation_of(fdir)
            text = f"thin elongated cluster of {nreg} dies (elongation {felong:.1f})"
        elif r95 >= 0.88 and (arc / max(depth, 0.03) >= 1.8 or r05 >= 0.75):
            fam, ref = "edge_loc", octant
            text = (
                f"arc of fails along the {octant.upper()} edge, {edge_share:.0%} of it beyond 0.85 R, "
                f"{feats['fail_rate']:.0%} failing"
            )
        else:
            fam, ref = "loc", octant
            text = (
                f"cluster of {nreg} dies towards {octant.upper()} at r = {math.hypot(cx, cy):.2f} R, "
                f"{feats['fail_rate']:.0%} failing"
            )
        score = _squash((z - 5) / 4 + 0.3)
        # the blob_keep strongest of each family, for the verifier to weigh
        kept = found.setdefault(fam, [])
        if len(kept) == c.th.blob_keep and min(kept, key=lambda t: t[0])[0] >= score:
            continue
        if len(kept) == c.th.blob_keep:
            worst = min(kept, key=lambda t: t[0])
            kept.remove(worst)
            c.dets.remove(worst[1])
        d = c.detect(fam, region, score, feats, text, ref)
        kept.append((score, d))


_RIM_WIDTHS = (2, 3, 4, 6, 8, 12, 16, 24)


def _rim_arcs(c: _Ctx) -> None:
    """Thin edge arcs (1-3 dies deep) that window densities miss: the fail counts of the outermost die rings
    per angular bin, every circular run of 2-24 bins tested against the background rate (binomial z)."""
    g = c.g
    act = c.active
    if act.sum() < 60 or any(d.family in ("edge_loc", "edge_ring") for d in c.dets):
        return
    bg = max(_cell_median_rate(c, act), 0.01)
    depth = edge_depth(g)  # dies from the wafer edge
    nb, abin = _rim_bins(g)
    best = None
    for dmax in (1.5, 2.5, 3.5):
        rim = act & (depth < dmax)
        n_b = np.bincount(abin[rim], minlength=nb).astype(np.float64)
        k_b = np.bincount(abin[rim], weights=c.f[rim], minlength=nb)
        cn = np.concatenate([[0.0], np.cumsum(np.concatenate([n_b, n_b]))])
        ck = np.concatenate([[0.0], np.cumsum(np.concatenate([k_b, k_b]))])
        # every width at once (rows; widths ascending), then the same choice in the same order
        ws = [w for w in _RIM_WIDTHS if w <= 0.6 * nb]
        at = np.array(ws)[:, None] + np.arange(nb)
        nn_w = cn[at] - cn[:nb]
        kk_w = ck[at] - ck[:nb]
        z_w = (kk_w - bg * nn_w) / np.sqrt(np.maximum(bg * (1 - bg) * nn_w, 1e-9))
        js = z_w.argmax(1)
        rows = np.arange(len(ws))
        picks = zip(
            ws, js.tolist(), z_w[rows, js].tolist(), nn_w[rows, js].tolist(), kk_w[rows, js].tolist(), strict=True
        )
        for w, j, zj, nj, kj in picks:
            if nj >= 6 and (best is None or zj > best[0]):
                best = (zj, dmax, j, w, kj, nj, n_b, k_b)
    if best is None:
        return
    z, dmax, j, w, kk, nn, n_b, k_b = best
    rate = kk / nn
    if z < c.th.rim_z or rate < bg + 0.12:
        return
    # the densest run is the core: grow it two bins at a time while those stay above the midpoint
    mid = bg + 0.5 * (rate - bg)
    for step in (-1, 1):
        while w + 2 <= 0.6 * nb:
            nxt = [(j - 1) % nb, (j - 2) % nb] if step < 0 else [(j + w) % nb, (j + w + 1) % nb]
            n2 = float(n_b[nxt].sum())
            if n2 == 0 or float(k_b[nxt].sum()) / n2 < mid:
                break
            j = (j - 2) % nb if step < 0 else j
            w += 2
    kk = float(k_b[(np.arange(j, j + w) % nb)].sum())
    nn = float(n_b[(np.arange(j, j + w) % nb)].sum())
    rate = kk / nn
    bins = (np.arange(j, j + w) % nb).tolist()
    region = act & (depth < dmax) & np.isin(abin, bins)
    # an arc whose fails are mostly a cluster or line already found is that pattern, not a second one
    local = [d.region for d in c.dets if d.family in ("loc", "scratch")]
    if local:
        hot = region & c.f
        if int((hot & np.logical_or.reduce(local)).sum()) >= 0.5 * int(hot.sum()):
            return
    t0 = -math.pi + (j + w / 2) / nb * 2 * math.pi
    octant = tx.octant_of(t0)
    span = w / nb
    c.detect(
        "edge_loc",
        region,
        _squash((z - c.th.rim_z) / 3 + 0.3),
        {"z": z, "fail_rate": rate, "background_rate": bg, "rim_depth": dmax, "arc_fraction": span},
        f"arc of fails along the {octant.upper()} edge, {dmax:.1f} dies deep over {span * 360:.0f} deg, "
        f"{rate:.0%} failing against {bg:.0%}",
        octant,
    )


def _rim_bins(g: Geometry) -> tuple[int, NDArray[np.intp]]:
    """The rim scan's angular bins (about 3 dies of arc each) and each die's bin, computed once per layout."""
    rb = g.extra.get("rim_bins")
    if rb is None:
        nb = min(max(round(2 * math.pi * g.rx / 3), 16), 96)  # np.clip, without its cost on a scalar
        abin = ((g.theta + math.pi) / (2 * math.pi) * nb).astype(np.intp)
        abin[abin == nb] = 0  # % nb of 0..nb, without numpy's slow int64 remainder
        abin.setflags(write=False)
        rb = g.extra["rim_bins"] = (nb, abin)
    return rb


def analyse(dm: DieMap, th: Thresholds | None = None, *, verify: bool = True) -> tuple[list[Detection], Geometry]:
    c = _Ctx(dm, th or Thresholds())
    p = float(c.fail_ratio)
    if p >= c.th.near_full:
        c.detect(
            "near_full",
            np.ones(c.n, bool),
            _squash((p - c.th.near_full) / 0.05 + 0.3),
            {"fail_ratio": p},
            f"{p:.0%} of all dies fail",
        )
        return c.dets, c.g
    _detect_all(c)
    if verify:
        _verify(c)
    return _finish(c)


def _detect_all(c: _Ctx) -> None:
    # a periodic pattern that follows SITE_NUM is a site pattern; otherwise the reticle explains it first
    c.dry = True
    ret, site = _reticle(c), _site(c)
    c.dry = False
    if ret is not None and site is not None:
        inter = float(count_nonzero(ret.region & site.region))
        union = float(count_nonzero(ret.region | site.region))
        in_site = inter >= 0.8 * float(count_nonzero(ret.region))  # the hot offsets lie in the site
        in_ret = inter >= 0.8 * float(count_nonzero(site.region))  # the site lies in the hot offsets
        # one inside the other is judged by the dies only one of them holds (a reticle offset that is half of a
        # site's dies overlaps it by half, yet the site's other half fails no more than the rest)
        if (in_site and in_ret) or (inter / union >= 0.5 and not (in_site or in_ret)):
            ret = None
        elif in_ret:
            # the site lies inside the hot reticle offsets: the reticle is only the site unless its other
            # dies fail well above what neither pattern holds
            rest = ret.region & ~site.region
            bg = _frac_in(c.f, ~(ret.region | site.region))
            if not rest.any() or _frac_in(c.f, rest) < bg + 0.5 * (site.density - bg):
                ret = None
        elif in_site:
            # the hot offsets are part of one site: the site explains them when its other dies fail too, clearly
            # above the rest (on a small map the offsets a reticle search picks are the site's noisiest part)
            rest = site.region & ~ret.region
            bg = _frac_in(c.f, ~(ret.region | site.region))
            n_rest = float(count_nonzero(rest))
            if n_rest:
                lift = float(_frac_in(c.f, rest)) - bg
                pb = min(max(bg, 0.01), 0.99)
                if lift >= 0.25 * (ret.density - bg) and lift / math.sqrt(pb * (1 - pb) / n_rest) >= 2.0:
                    ret = None
    if ret is not None and _lines_explain(c, ret.region, ret.features["hot_rate"], ret.features["base_rate"]):
        ret = None  # a few whole rows or columns hold the hot offsets' excess: stripes, not a repeat across the wafer
    if ret is not None:
        c.dets.append(ret)
        c.active &= ~ret.region
        site = _site(c)
    elif site is not None:
        c.dets.append(site)
        c.active &= ~site.region
    _stripes(c, 0, _stripes(c, 1))
    _radial(c)
    _scratch(c)
    _blobs(c)
    _rim_arcs(c)
    _alternatives(c)
    if c.profile is not None:
        c.dets.append(c.profile)
    _random_candidate(c)


def _join_ratio(c: _Ctx) -> float:
    """Observed / expected fail-fail pairs among 4-neighbour die pairs (1 for spatially random fails), over
    every die (``_resid_join``: over some of them)."""
    V = c.g.valid
    F = c.raster(c.f)
    p = float(c.fail_ratio)
    pairs = c.g.extra.get("pairs")
    if pairs is None:  # the layout's neighbour pairs, once per layout
        pairs = c.g.extra["pairs"] = float(count_nonzero(V[:, 1:] & V[:, :-1]) + count_nonzero(V[1:] & V[:-1]))
    ff = float(count_nonzero(F[:, 1:] & F[:, :-1]) + count_nonzero(F[1:] & F[:-1]))
    return ff / max(pairs * p * p, 1e-9)


def _join_z(c: _Ctx, jr: float) -> float:
    """The join ratio as a z score of a clean (binomial) map's fail-fail neighbour pairs: their expectation is
    pairs * p^2, their variance pairs * (p^2 - p^4) plus the covariance of the pairs that share a die, counted from
    the mean degree."""
    pairs = float(c.g.extra["pairs"])
    p = float(c.fail_ratio)
    deg = 2.0 * pairs / max(c.n, 1)
    shared = c.n * deg * (deg - 1.0) / 2.0
    var = pairs * (p * p - p**4) + 2.0 * shared * (p**3 - p**4)
    return (jr - 1.0) * pairs * p * p / math.sqrt(var) if var > 0 else 0.0


def _random_candidate(c: _Ctx) -> None:
    rest = float(c.fail_ratio)
    jr = _join_ratio(c)
    jz = _join_z(c, jr)
    c.dry = True
    d = c.detect(
        "random",
        np.ones(c.n, bool),
        _squash((rest - c.th.random_min) / 0.03),
        {"fail_ratio": rest, "join_ratio": jr, "join_z": jz},
        f"{rest:.0%} of dies fail with no spatial structure (fail neighbours {jr:.2f}x what chance gives)",
    )
    c.dry = False
    c.dets.append(d)


#: other readings of a detector's region, each scored by its own family's verifier
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "loc": ("center", "scratch", "edge_loc"),
    "edge_loc": ("loc", "edge_ring"),
    "scratch": ("loc", "edge_loc", "row_stripe", "column_stripe"),
    "center": ("loc",),
    "radial_gradient": ("center", "edge_ring"),
    "row_stripe": ("scratch",),
    "column_stripe": ("scratch",),
    "donut": ("edge_ring", "center"),
    "edge_ring": ("edge_loc", "donut"),
}


#: the source of a radial-gradient reading of a map whose radial profile fell short of the gradient rule
PROFILE = "profile"
#: the readings of the radial profile a gradient excludes: both are the same fails (never mixed)
RADIAL_READINGS = ("center", "donut", "edge_ring")

_ALT_WHAT = {"loc": "local cluster", "edge_loc": "edge arc", "scratch": "line", "center": "centre blob"}


def _alternatives(c: _Ctx) -> None:
    g = c.g
    made = []
    for d in list(c.dets):
        alts = ALTERNATIVES.get(d.family, ())
        if not alts:
            continue
        reg = d.region
        ri = _nz(reg)
        if not len(ri):
            continue
        stats = c.region_stats(reg)
        octant = None
        for alt in alts:
            ref = None
            if alt in ("loc", "edge_loc"):
                if octant is None:  # the means, the same bits
                    octant = tx.octant_of(math.atan2(float(_add(g.v[ri])) / len(ri), float(_add(g.u[ri])) / len(ri)))
                ref = octant
            elif alt == "scratch":
                xs, ys = c.xd[ri], c.yd[ri]
                if len(xs) >= 3:
                    w, vec = eigh(_cov(xs, ys))
                    ref = tx.orientation_of(float(math.atan2(vec[1, 1], vec[0, 1])))
                else:
                    ref = "h"
            text = f"{d.summary}; read as a {_ALT_WHAT.get(alt, alt.replace('_', ' '))}"
            c.dry = True
            alt_d = c.detect(alt, reg, d.score, dict(d.features), text, ref, stats)
            c.dry = False
            alt_d.source = d.family
            made.append(alt_d)
    c.dets.extend(made)


def candidates(dm: DieMap, th: Thresholds | None = None) -> tuple[list[Detection], list[dict[str, float]]]:
    """The rule detectors' candidates before verification, with the verifier's features (fitting)."""
    c = _Ctx(dm, th or Thresholds())
    if float(c.fail_ratio) >= c.th.near_full:
        return [], []
    _detect_all(c)
    return c.dets, candidate_features(c)


def report(
    kept: list[Detection],
    rejected: list[Detection],
    fail_ratio: float,
    th: Thresholds,
    in_centre: Callable[[Detection, Detection], bool],
) -> list[Detection]:
    """The reporting decision over verified candidates (``kept`` >= ``th.accept``, the random candidate among
    them; ``rejected`` below it): the detections reported, one per family; ``[]`` reports no pattern.
    ``in_centre(loc, center)``: the loc is the centre blob's own fringe. Pure, so the dev tools replay other
    thresholds over candidates classified once."""
    rnd = next((d for d in kept if d.family == "random"), None)
    dets = [d for d in kept if d.family != "random"]
    if not dets and rnd is not None and "rule_score" in rnd.features:
        top = max(rejected, key=lambda d: d.score) if rejected else None
        if rnd.score >= th.accept:
            dets = [rnd]
        elif top is not None and top.score >= th.fallback:
            dets = [top]  # the verifier kept nothing: the likeliest candidate, if likely enough
        elif fail_ratio >= th.random_min:
            dets = [rnd]  # `none` is a clean wafer (at most ~9 % fails): unexplained fails are random
    # one detection per family: the strongest
    best: dict[str, Detection] = {}
    for d in dets:
        if d.family not in best or d.score > best[d.family].score:
            best[d.family] = d
    dets = [d for d in dets if best[d.family] is d]
    cen, loc = best.get("center"), best.get("loc")
    if cen is not None and loc is not None and cen in dets and loc in dets and in_centre(loc, cen):
        dets.remove(loc)  # the centre blob's own fringe (an off-centre or soft blob), not a second pattern
    grad = best.get("radial_gradient")
    if grad is not None and grad.source == PROFILE and grad in dets:
        rivals = [d for d in dets if d.family in RADIAL_READINGS]
        if rivals and max(d.score for d in rivals) > grad.score:
            dets.remove(grad)
        else:
            dets = [d for d in dets if d.family not in RADIAL_READINGS]
    return dets


def _finish(c: _Ctx) -> tuple[list[Detection], Geometry]:
    rnd = next((d for d in c.dets if d.family == "random"), None)
    verified = rnd is not None and "rule_score" in rnd.features
    c.dets = report(c.dets, c.fallback, float(c.fail_ratio), c.th, lambda loc, cen: _in_centre(c, loc, cen))
    if not c.dets:
        rest = float(c.fail_ratio)
        if not verified and rest >= c.th.random_min:
            c.detect(
                "random",
                np.ones(c.n, bool),
                _squash((rest - c.th.random_min) / 0.03),
                {"fail_ratio": rest},
                f"{rest:.0%} of dies fail with no spatial structure",
            )
        else:
            c.detect(
                "none",
                np.ones(c.n, bool),
                1.0 - rnd.score if verified and rnd is not None else _squash((c.th.random_min - rest) / 0.03),
                {"fail_ratio": rest},
                f"{rest:.0%} of dies fail with no spatial structure",
            )
    return c.dets, c.g


def _in_centre(c: _Ctx, loc: Detection, cen: Detection) -> bool:
    """A local cluster is the centre blob's own fringe: most of its dies lie within the blob's soft extent (1.5
    times its radius), it is comparable in size (>= 35 % of the blob's dies) and no denser (<= 1.25 times). A
    separate cluster beside a centre blob is smaller or denser than the blob."""
    ci = _nz(cen.region)
    n = int(count_nonzero(loc.region))
    if not len(ci) or not n or n < 0.35 * len(ci) or loc.density > 1.25 * cen.density:
        return False
    r_soft = 1.5 * float(_amax(c.g.r[ci]))
    return int(count_nonzero(loc.region & (c.g.r < r_soft))) >= 0.5 * n


def _shape(c: _Ctx, freg: NDArray[np.bool_], nfm: int, rr: NDArray[np.float64]) -> dict[str, float]:
    """Principal axes of a region's ``nfm`` (>= 3) failing dies ``freg``: length, thickness, elongation, line fit,
    edge share."""
    g = c.g
    fm = freg.nonzero()[0]
    # x and y as the rows of one array: a row's reduction is the same pairwise sum as its own array's
    xy = c.xyd.take(fm, axis=1)
    sx, sy = _add(xy, axis=1).tolist()
    mx, my = sx / nfm, sy / nfm  # means as sums over counts: the same bits as .mean()
    d = xy - np.array(((mx,), (my,)))
    dx, dy = d
    sxx, syy = (v / nfm for v in _add(d * d, axis=1).tolist())
    sxy = float(_add(dx * dy)) / nfm
    tr, det = sxx + syy, sxx * syy - sxy * sxy
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, max(tr / 2 - disc, 0.0)
    ang = 0.5 * math.atan2(2 * sxy, sxx - syy)
    # |-dx sin + dy cos|: dy cos - dx sin is the same sum (IEEE addition commutes, negation is exact)
    off = dy * math.cos(ang)
    off -= dx * math.sin(ang)
    th = g.theta[fm]
    return {
        "c_major": math.sqrt(l1),
        "c_minor": math.sqrt(l2),
        "c_elong": math.sqrt(l1 / max(l2, 0.05)),
        "c_line_frac": float(count_nonzero(np.abs(off, out=off) <= 1.0) / nfm),  # _frac: a count over the size
        "c_edge_share": float(_frac(rr > 0.85)),
        "c_ang_spread": float(1 - math.hypot(float(_add(np.cos(th))) / nfm, float(_add(np.sin(th))) / nfm)),
    }


_S_FLAGS = {src: {"s_" + f: float(src == f) for f in ALTERNATIVES} for src in ("", *ALTERNATIVES)}
_O_KEYS = [(f, "o_" + f) for f in tx.FAMILIES]
#: the o_* flags of each set of other families seen (a few dozen sets occur)
_O_FLAGS: dict[frozenset[str], dict[str, float]] = {}


class _Prefixed(dict):
    """A detector feature's key in the verifier's rows: ``"f_" + key``, made once per key."""

    def __missing__(self, key: str) -> str:
        v = self[key] = "f_" + key
        return v


_F_KEYS = _Prefixed()


def _o_flags(ofams: frozenset[str]) -> dict[str, float]:
    flags = _O_FLAGS.get(ofams)
    if flags is None:
        if len(_O_FLAGS) >= 4096:
            _O_FLAGS.clear()
        flags = _O_FLAGS[ofams] = {key: float(f in ofams) for f, key in _O_KEYS}
    return flags


def _bits(regions: list[NDArray[np.bool_]]) -> NDArray:
    """The regions as one integer per die: bit i set when the die is in region i (up to 64 regions in a machine
    integer, more as Python integers)."""
    nb = len(regions)
    if nb <= 8:  # a bool is a 0/1 byte: its uint8 view, without a cast
        bits = regions[0].view(np.uint8).copy()
        for i, reg in enumerate(regions[1:], 1):
            bits |= reg.view(np.uint8) << i
        return bits
    dt = np.dtype(object) if nb > 64 else np.dtype(f"uint{1 << (nb - 1).bit_length()}")
    bits = regions[0].astype(dt)
    for i, reg in enumerate(regions[1:], 1):
        bits |= reg.astype(dt) << i
    return bits


def _near_bits(c: _Ctx, bits: NDArray, radii: tuple[int, ...]) -> list[NDArray]:
    """Per die, the regions packed in ``bits`` (``_bits``) within ``r`` dies (Chebyshev) of it, for each ``r`` of the
    ascending ``radii`` (every region at once; each radius grows the previous one): ``dilated_at`` of their raster,
    filled straight into its padded form (each die's padded cell once per layout and padding)."""
    g = c.g
    h, w = g.shape
    wp = w + radii[-1]
    key = ("padded_at", wp)
    at = g.extra.get(key)
    if at is None:
        at = g.extra[key] = g.iy * wp + g.ix
        at.setflags(write=False)
    p = np.zeros(h * wp, dtype=bits.dtype)
    p[at] = bits
    return grown_at(p, wp, radii, at)


def _resid_join(c: _Ctx, rest: NDArray[np.bool_], fails: NDArray[np.bool_], p: float) -> float:
    """``_join_ratio`` over the dies of ``rest``, given ``fails`` (``c.f & rest``) and ``p`` (their share of
    ``rest``): both rasters as one (0 outside, 1 in rest, 2 failing in rest), so a neighbour pair's product is
    nonzero when both dies are in rest and 4 when both fail."""
    P = c.raster(rest.view(np.uint8) + fails.view(np.uint8))
    across, down = P[:, 1:] * P[:, :-1], P[1:] * P[:-1]
    pairs = float(count_nonzero(across) + count_nonzero(down))
    ff = float(count_nonzero(across == 4) + count_nonzero(down == 4))
    return ff / max(pairs * p * p, 1e-9)


def candidate_features(c: _Ctx) -> list[dict[str, float]]:
    """Context features of every candidate, for the verifier (the detector's own features included)."""
    g = c.g
    dets = c.dets
    f = c.f
    base = [d for d in dets if not d.source and d.family != "random"]
    if base:
        bits = _bits([o.region for o in base])  # bit i: base candidate i
        rest = bits == 0
    else:
        rest = np.ones(c.n, dtype=bool)
    n_rest = count_nonzero(rest)
    f_rest = f & rest
    resid = float(count_nonzero(f_rest) / n_rest) if n_rest else float(c.fail_ratio)  # _frac_in(f, rest)
    p0 = min(max(resid, 0.01), 0.99)
    # clustering left over once every candidate is taken out (1: the rest is spatially random)
    resid_join = _resid_join(c, rest, f_rest, resid) if n_rest else 1.0
    nf = max(int(count_nonzero(f)), 1)
    scores: dict[str, list[float]] = {}  # each family's candidate scores
    for d in dets:
        scores.setdefault(d.family, []).append(d.score)
    log_n, fail_ratio, has_site, n_base = math.log(c.n), c.fail_ratio, float(c.dm.site is not None), float(len(base))
    join_z = next((d.features.get("join_z", 0.0) for d in dets if d.family == "random"), 0.0)
    # the distinct regions (alternative readings share their detector's region), as rows
    slot: dict[int, int] = {}
    regs: list[NDArray[np.bool_]] = []
    for d in dets:
        if id(d.region) not in slot:
            slot[id(d.region)] = len(regs)
            regs.append(d.region)
    R = np.array(regs)
    FR = R & f
    nregs = [int(count_nonzero(reg)) for reg in regs]
    ks = [int(count_nonzero(fr)) for fr in FR]
    # the base candidates' regions and the dies within 2, 1 and 3 dies of each (rows in that order): a fringe
    # of another pattern hugs it, a pattern beside it reaches away; per set of "other" candidates, their union
    near: NDArray | None = None
    if base:
        near_1, near_2, near_3 = _near_bits(c, bits, (1, 2, 3))
        near = np.stack((bits, near_2, near_1, near_3))
    unions: dict[tuple[int, ...], NDArray[np.bool_]] = {}
    per_region: list[tuple] = []
    for j, reg in enumerate(regs):
        nreg, k = nregs[j], ks[j]
        nr = max(nreg, 1)
        oi = tuple(i for i, o in enumerate(base) if o.region is not reg)
        if oi:
            assert near is not None
            un = unions.get(oi)
            if un is None:
                un = unions[oi] = (near & sum(1 << i for i in oi)) != 0
            # dies of the region in: the others, their 2-, 1- and 3-die neighbourhoods
            c_ovl, c_adj, c_adj1, c_n3 = (int(count_nonzero(a)) for a in un & reg)
            adj = c_adj / nreg if nreg else 0.0
            adj1 = c_adj1 / nreg if nreg else 0.0
            far = 1.0 - c_n3 / nreg if nreg else 1.0
            far_fails = float(k - count_nonzero(un[3] & FR[j])) / max(k, 1)
            ovl = float(c_ovl / nr)
            oth = [base[i] for i in oi]
        else:
            oth = []
            adj = ovl = adj1 = 0.0
            far = far_fails = 1.0
        rr = g.r[reg] if nreg else g.r[:1]
        per_region.append(
            (
                nr,
                float(k),
                adj,
                ovl,
                rr,
                float(_add(rr)) / len(rr),  # rr.mean(), the same bits
                float(_amin(rr)),
                float(_amax(rr)),
                max([o.score for o in oth], default=0.0),
                _o_flags(frozenset(o.family for o in oth)),
                adj1,
                far,
                far_fails,
                k,
            )
        )
    shape_cache: dict[int, dict[str, float]] = {}
    f_keys = _F_KEYS
    out = []
    for d in dets:
        j = slot[id(d.region)]
        nr, k, adj, ovl, rr, r_mean, r_min, r_max, other_max, o_flags, adj1, far, far_fails, nfm = per_region[j]
        shape: dict[str, float] = {}
        if nfm >= 3 and d.family != "random":
            shape = shape_cache.get(j) or shape_cache.setdefault(j, _shape(c, FR[j], nfm, rr))
        z = (k - nr * p0) / math.sqrt(nr * p0 * (1 - p0))
        x = {
            "g_dia": c.dia,
            "c_region_dies": float(nr),
            "c_region_fails": float(nfm),
            **shape,
            "g_log_dies": log_n,
            "g_fail_ratio": fail_ratio,
            "g_resid_rate": resid,
            "g_candidates": n_base,
            "g_has_site": has_site,
            "g_resid_join": resid_join,
            "g_join_z": join_z,
            "c_raw_score": d.score,
            "c_area": nr / c.n,
            "c_density": d.density,
            "c_lift": d.density - resid,
            "c_z": z,
            # z over the largest z that noise alone gives among the map's ~n / nr windows of this size
            "c_z_excess": z - math.sqrt(2 * math.log(max(c.n / nr, 1.0)) + 1.0),
            "c_r_mean": r_mean,
            "c_r_min": r_min,
            "c_r_max": r_max,
            "c_fail_share": k / nf,
            "c_adjacent_other": adj,
            "c_adjacent_1": adj1,
            "c_far_from_other": far,
            "c_far_fails": far_fails,
            "c_overlap_other": ovl,
            "c_same_family": float(len(scores[d.family]) - 1),
            "c_rank_in_family": float(sum(s > d.score for s in scores[d.family])),
            "c_other_max_score": other_max,
            "c_alt": float(bool(d.source)),
        }
        x.update(_S_FLAGS.get(d.source) or _S_FLAGS[""])
        x.update(o_flags)
        fs = d.features
        x.update(zip(map(f_keys.__getitem__, fs), map(float, fs.values()), strict=True))
        out.append(x)
    return out


def _verify(c: _Ctx) -> None:
    if not c.dets or not verifier.models()["families"]:
        return
    feats = candidate_features(c)
    ps = verifier.probs([d.family for d in c.dets], feats)
    kept = []
    for d, p in zip(c.dets, ps, strict=True):
        if p is None:
            kept.append(d)
            continue
        d.features["rule_score"] = d.score
        d.score = round(p, 6)
        if p >= c.th.accept or d.family == "random":
            kept.append(d)
        else:
            c.fallback.append(d)
    c.dets = kept
