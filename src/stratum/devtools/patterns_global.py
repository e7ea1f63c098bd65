"""The whole-map model: per-family presence probabilities from resolution-normalised features of the whole
map, fitted offline (the dev tool ``patterns_globaltrain``) and stored as data in ``globalmodel.json``; the
candidate verifier reads them as features of every candidate (``gm_<family>``).

The rule detectors and the verifier look at one candidate region at a time; this model looks at the whole map
at once, as the hand-feature WM-811K classifiers do. Fail density on a polar grid (6 equal-area radial bands x
the classifier's 8 sectors), hot halves and quadrants, the rim (dies within 1.5 dies of the edge, per
sector), rows and columns of cells, local density on cells of 1/32, 1/16 and 1/8 of the map (peak z, share of
hot and cold cells, the hot cells' distance from the centre, spread and elongation), and how fails neighbour
each other (isolated, clustered, on a line). The map is read on a G x G grid of cells (a cell is one die on a
20-die map, 10 x 10 dies on a 300-die one) and every feature is a rate, a z or a share, so a 20-die and a
300-die map of one pattern look alike. One boosted tree set per family (one-vs-rest, the verifier's trees and
fitting), so a map can hold several families. Leaves are multiples of 2**-24, so a margin is an exact sum in
any order.

Cost: every die's group in every grouping (line and cell at three scales, polar cell, rim sector) is a row of
``ids`` computed once per layout (the wafers of a lot share it), so a map's fails per group are one
``bincount``; the rest works on a few hundred numbers.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from stratum.patterns import verifier
from stratum.patterns.features import count_nonzero
from stratum.patterns.geometry import Geometry, edge_depth, sec8

FILE = "patterns_global.json"
#: the families modelled: the ones whose candidates the verifier weighs against each other (near-full maps
#: never reach it; stripes, reticle and site patterns have sharp detectors of their own)
FAMILIES = (
    "none",
    "random",
    "center",
    "donut",
    "edge_ring",
    "edge_loc",
    "loc",
    "scratch",
    "gross_region",
    "radial_gradient",
)
QUANT = 24
G = 32  # cells: the map is read on a G x G grid (each `size` x `size` dies; a 20-die map: one die a cell)
NB = 6  # equal-area radial bands
NS = 8  # sectors
SCALES = (1, 2, 4)  # cell groupings for local density: 1/32, 1/16 and 1/8 of the map
_LINES = ("row", "col")
_CELL_KEYS = ("zmax", "rate_max", "hot", "cold", "hot_r", "hot_spread", "hot_elong")
_BAND_KEYS = [f"m_band{i}{t}" for t in ("", "_low2", "_hot") for i in range(NB)]
_SCALE_KEYS = [f"m_s{k}_{key}" for k in SCALES for key in _CELL_KEYS[:4]]
_HOT_KEYS = [tuple(f"m_s{k}_{key}" for key in _CELL_KEYS[4:]) for k in SCALES[1:]]
# a die's 8 neighbours as the bits of a byte (raster order: neighbour j is opposite neighbour 7 - j): how many
# fail, and whether it is a line die (two opposite neighbours fail, at most three in all)
_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
_LINE_DIE = np.array(
    [any((b >> j) & (b >> (7 - j)) & 1 for j in range(4)) and bin(b).count("1") <= 3 for b in range(256)], dtype=bool
)
_BIT = (1 << np.arange(8)).astype(np.uint8)
#: per neighbour byte: a line die, >= 3 failing neighbours, failing neighbours (a map's sums: its histogram @ this)
_CODE_STATS = np.stack((_LINE_DIE, _POPCOUNT >= 3, _POPCOUNT), axis=1).astype(np.int64)
_add = np.add.reduce
_amax = np.maximum.reduce
_PR = NB * NS * (NS + 1)  # a die's polar cell and rim sector (NS: off the rim) as one code


# each cell's block at the next scale: 2 x 2 blocks of the cells of the scale before
_UP = []
for _k in SCALES[1:]:
    _m = G // _k
    _c = np.arange((2 * _m) ** 2)
    _UP.append((_c // (2 * _m) // 2) * _m + (_c % (2 * _m)) // 2)


def _cells(grid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Every scale's cells (sums over k x k cells of the G x G grid), one scale after the other."""
    out: list[NDArray] = [grid.ravel()]
    for up in _UP:
        out.append(np.bincount(up, weights=out[-1], minlength=len(up) // 4))
    return np.concatenate(out)


@lru_cache(maxsize=32)
def _blocks(size: int) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """Per cell of every scale (``_cells``' order) for cells of ``size`` dies: the dies that make it full
    (half its area), its scale's index, and its centre's raster column and row."""
    need, scale, px, py = [], [], [], []
    for j, k in enumerate(SCALES):
        m = G // k
        cy, cx = np.divmod(np.arange(m * m), m)
        half = (k * size - 1) / 2  # a block's centre, in dies from its first row or column
        need.append(np.full(m * m, 0.5 * (k * size) ** 2))
        scale.append(np.full(m * m, j))
        px.append(cx * (k * size) + half)
        py.append(cy * (k * size) + half)
    return np.concatenate(need), np.concatenate(scale), np.concatenate(px), np.concatenate(py)


@lru_cache(maxsize=64)
def _padded_of(h: int, w: int) -> NDArray[np.intp]:
    """Each raster position's place in the raster with an empty border (h + 2 rows of w + 2)."""
    iy, ix = np.divmod(np.arange(h * w), w)
    out = (iy + 1) * (w + 2) + ix + 1
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _cell_of(h: int, w: int) -> NDArray[np.intp]:
    """Each raster position's cell of the G x G grid (cells of ``size`` x ``size`` dies) for an h x w raster."""
    size = max(1, math.ceil(max(h, w) / G))
    iy, ix = np.divmod(np.arange(h * w), w)
    out = (iy // size) * G + ix // size
    out.setflags(write=False)
    return out


class _Layout:
    """What the features need of a die layout alone (computed once per layout: lots share one): each die's cell
    of the G x G grid and its polar cell and rim sector, the dies in each, the cells full enough to rate and
    their centres, and each die's place in a raster with an empty border."""

    def __init__(self, g: Geometry):
        h, w = g.shape
        self.size = size = max(1, math.ceil(max(h, w) / G))
        r = g.r
        self.cell = cell = _cell_of(h, w)[g.flat]
        band = np.minimum((r * r * NB).astype(np.intp), NB - 1)
        sec = sec8(g)
        # the rim: dies within 1.5 dies of the edge, per sector
        rim = np.where(edge_depth(g) < 1.5, sec, NS)
        self.pr = (band * NS + sec) * (NS + 1) + rim
        prn = np.bincount(self.pr, minlength=_PR).astype(np.float64).reshape(NB * NS, NS + 1)
        self.pn = pn = _add(prn, 1).reshape(NB, NS)
        self.pn_on, self.pn1 = pn > 0, np.maximum(pn, 1)
        self.bn1 = np.maximum(_add(pn, 1), 1)  # dies per band (at least 1)
        self.sn1 = np.maximum(_add(pn, 0), 1)  # dies per sector (at least 1)
        self.rn = _add(prn, 0)[:NS].tolist()
        self.rim_ok = sum(self.rn) >= 16
        grid = np.bincount(cell, minlength=G * G).astype(np.float64).reshape(G, G)
        ln = np.concatenate((_add(grid, 1), _add(grid, 0))).reshape(2, G)  # dies per row, then column of cells
        on = ln >= 4 * size
        self.line_ok = min(_add(on, 1).tolist()) >= 5
        ln1 = np.maximum(ln, 1)
        self.line_inv = on / ln1  # a line's rate: its fails x this (0: off the lines)
        self.line_exp = ln * on
        self.line_sd = np.sqrt(ln1)
        self.line_off = (on - 1.0) * 1e9  # 0 on the lines, -1e9 off them
        # each scale's cells with at least half their area in dies, and their centres (wafer radius 1)
        cn = _cells(grid)
        blocks = _blocks(size)
        self.full_at = full = (cn >= blocks[0]).nonzero()[0]
        lens = np.bincount(blocks[1][full], minlength=len(SCALES)).tolist()
        self.scales_ok = min(lens) >= 8
        if self.scales_ok:
            self.kn_all = cn[full]
            self.sq_all = np.sqrt(self.kn_all)
            self.starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
            self.nfull = np.array(lens, dtype=np.float64)
            coarse = full[lens[0] :]  # the cells of every scale but the finest
            cu = (blocks[2][coarse] - g.cx) / g.rx
            cv = (blocks[3][coarse] - g.cy) / g.ry
            self.moments = np.stack((np.ones(len(cu)), cu, cv, cu * cu, cv * cv, cu * cv))
        # each die's cell in a raster with an empty border (1: a die) and its 8 neighbours' offsets there
        self.pflat = _padded_of(h, w)[g.flat]  # (iy + 1) * (w + 2) + ix + 1
        self.nb_off = np.array([-w - 3, -w - 2, -w - 1, -1, 1, w + 1, w + 2, w + 3])
        vp = np.zeros((h + 2, w + 2), dtype=np.uint8)
        vp[1:-1, 1:-1] = g.valid
        self.vp = vp.ravel()


def _layout(g: Geometry) -> _Layout:
    lay = g.extra.get("globalmodel")
    if lay is None:
        lay = g.extra["globalmodel"] = _Layout(g)
    return lay


def features(g: Geometry, f: NDArray[np.bool_]) -> dict[str, float]:
    """The whole-map features of a map (geometry ``g``, fails ``f``); every value finite."""
    lay = _layout(g)
    n = g.n
    fi = f.nonzero()[0]
    nf = len(fi)
    p = nf / n
    pp = min(max(p, 0.01), 0.99)
    sd = math.sqrt(pp * (1 - pp))
    # fails per polar cell and rim sector, and per cell of the grid
    prk = np.bincount(lay.pr[fi], minlength=_PR).astype(np.float64).reshape(NB * NS, NS + 1)
    grid = np.bincount(lay.cell[fi], minlength=G * G).astype(np.float64).reshape(G, G)
    out: dict[str, float] = {"m_fail": p, "m_log_n": math.log(n)}
    # polar grid: equal-area bands x sectors
    ck = _add(prk, 1).reshape(NB, NS)
    brate = _add(ck, 1) / lay.bn1
    cr = np.where(lay.pn_on, ck / lay.pn1, brate[:, None])
    cr.sort(axis=1)
    vals = np.concatenate((brate - p, cr[:, 1] - p, cr[:, -1] - brate)).tolist()
    # per band: its rate, its second-coldest sector's (a ring: even that one fails), its hottest sector's (a
    # local pattern)
    out.update(zip(_BAND_KEYS, vals, strict=True))
    bl = [v + p for v in vals[:NB]]
    span = max(bl) - min(bl)
    out["m_band_span"] = span
    mb = sum(bl) / NB
    db = [b - mb for b in bl]
    di = [i - (NB - 1) / 2 for i in range(NB)]
    den = math.sqrt(sum(d * d for d in di) * sum(d * d for d in db))
    out["m_band_corr"] = sum(a * b for a, b in zip(di, db, strict=True)) / den if span > 1e-9 and den > 0 else 0.0
    steps = [b - a for a, b in zip(bl, bl[1:], strict=False)]
    out["m_band_mono"] = abs(sum(steps)) / max(sum(abs(s) for s in steps), 1e-9)
    # sectors over the whole wafer: one hot sector, a hot half or quadrant
    sl = (_add(ck, 0) / lay.sn1).tolist()
    ext = sl + sl
    half = [sum(ext[j : j + NS // 2]) / (NS // 2) for j in range(NS)]
    out["m_sec_max"] = max(sl) - p
    out["m_sec_min"] = min(sl) - p
    out["m_half"] = max(half) - min(half)
    out["m_quad"] = max(ext[j] + ext[j + 1] for j in range(NS)) / 2 - p
    # the rim: dies within 1.5 dies of the edge, in the 8 sectors
    if lay.rim_ok:
        rn, rk = lay.rn, _add(prk, 0)[:NS].tolist()
        rr = [k / max(m, 1.0) for k, m in zip(rk, rn, strict=True)]
        out["m_rim"] = sum(rk) / sum(rn) - p
        out["m_rim_max"] = max(rr) - p
        out["m_rim_cover"] = sum(v >= p + 0.2 for v in rr) / NS
        out["m_rim_z"] = max((k - m * pp) / (math.sqrt(max(m, 1.0)) * sd) for k, m in zip(rk, rn, strict=True))
    else:
        out["m_rim"] = out["m_rim_max"] = out["m_rim_cover"] = out["m_rim_z"] = 0.0
    # lines of cells: rows and columns (a stripe, a straight scratch): the best line over the map's rate
    if lay.line_ok:
        lk = np.concatenate((_add(grid, 1), _add(grid, 0))).reshape(2, G)
        top = (_amax(lk * lay.line_inv, 1) - p).tolist()
        zt = _amax((lk - lay.line_exp * pp) / (lay.line_sd * sd) + lay.line_off, 1).tolist()
        for i, name in enumerate(_LINES):
            out[f"m_{name}_top"], out[f"m_{name}_z"] = top[i], zt[i]
    else:
        for name in _LINES:
            out[f"m_{name}_top"] = out[f"m_{name}_z"] = 0.0
    # die scale: each fail's failing 8-neighbours, and line dies: a fail between two failing neighbours on
    # opposite sides, with few other failing neighbours
    if nf:
        P = lay.vp.copy()  # 1: a die, 2: a failing die
        pf = lay.pflat[fi]
        P[pf] = 2
        nb = P[pf[:, None] + lay.nb_off]
        code = np.packbits(nb > 1, axis=1, bitorder="little")[:, 0]  # which neighbours fail, as a byte
        hist = np.bincount(code, minlength=256)
        line_dies, nb3, nb_fails = (hist @ _CODE_STATS).tolist()
        out["m_linepx"] = line_dies / nf
        out["m_nb0"] = int(hist[0]) / nf
        out["m_nb3"] = nb3 / nf
        out["m_nb_excess"] = nb_fails / max(float(count_nonzero(nb)), 1.0) - p
    else:
        out["m_nb0"] = out["m_nb3"] = out["m_nb_excess"] = out["m_linepx"] = 0.0
    # local density at three scales: hot cells (binomial z >= 3), their spread and shape
    if not lay.scales_ok:
        for k in SCALES:
            for key in _CELL_KEYS[: 4 if k == 1 else None]:
                out[f"m_s{k}_{key}"] = 0.0
        return out
    kk = _cells(grid)[lay.full_at]
    z = (kk - lay.kn_all * pp) / (lay.sq_all * sd)
    crate = kk / lay.kn_all
    st = lay.starts
    ishot = z >= 3.0
    stats = np.stack(
        (
            np.maximum.reduceat(z, st),
            np.maximum.reduceat(crate, st) - p,
            np.add.reduceat(ishot.astype(np.float64), st),
            np.add.reduceat((crate <= 0.5 * p).astype(np.float64), st),
        )
    )
    nh = stats[2].tolist()  # hot cells per scale
    stats[2:] /= lay.nfull  # the hot and cold cells' shares
    out.update(zip(_SCALE_KEYS, stats.T.ravel().tolist(), strict=True))
    # the hot cells of the coarser scales (all but the finest), weighted by z: their mean position and covariance
    # per scale, from the sums of weight, u, v, u^2, v^2 and u v (the last five per cell: the layout's)
    first = int(st[1])
    m = np.add.reduceat(lay.moments * (z[first:] * ishot[first:]), st[1:] - first, axis=1).T.tolist()
    for j, (k_r, k_spread, k_elong) in enumerate(_HOT_KEYS, start=1):
        if nh[j] >= 2:
            w, su, sv, suu, svv, suv = m[j - 1]
            mu, mv = su / w, sv / w
            a, bb, c = suu / w - mu * mu, svv / w - mv * mv, suv / w - mu * mv
            disc = math.sqrt(max((a - bb) ** 2 / 4 + c * c, 0.0))
            l1, l2 = max((a + bb) / 2 + disc, 0.0), max((a + bb) / 2 - disc, 0.0)
            out[k_r] = math.hypot(mu, mv)
            out[k_spread] = math.sqrt(l1 + l2)
            out[k_elong] = math.sqrt(l1 / max(l2, 1e-4))
        else:
            out[k_r] = out[k_spread] = out[k_elong] = 0.0
    return out


@lru_cache(maxsize=1)
def models() -> dict:
    try:
        spec = json.loads(resources.files("stratum.devtools").joinpath(FILE).read_text())
    except FileNotFoundError:
        return {"version": "none", "families": {}, "stack": None}
    return load(spec)


def load(spec: dict) -> dict:
    fams = {f: verifier.Trees(t) for f, t in spec["families"].items()}
    stack = verifier.Stack(fams) if verifier.Stack.fits(fams) else None
    m = {"version": spec["version"], "families": fams, "stack": stack}
    if stack is not None and stack.lut is not None:
        _, t, nleaf = stack.leaf.shape
        m["row"] = itemgetter(*stack.keys)  # the features in the stack's key order
        m["leaf_at"] = (np.arange(len(fams))[:, None] * t + np.arange(t)) * nleaf  # each tree's first leaf
        m["leaves"] = stack.leaf.ravel()
        m["base"] = np.array(stack.base)
        m["bits"] = _BIT[: stack.feat.shape[-1]]  # node i's test -> bit i
    return m


def probs(g: Geometry, f: NDArray[np.bool_]) -> dict[str, float]:
    """P(family on the map) for every family the model was fitted for (empty when none is)."""
    m = models()
    if not m["families"]:
        return {}
    x = features(g, f)
    st = m["stack"]
    if st is None or st.lut is None:  # pragma: no cover - families fitted with different tree shapes
        return {fam: round(t.prob(x), 6) for fam, t in m["families"].items()}
    # the verifier's stacked trees, on the one row every family reads: all node tests at once, leaves by table;
    # the leaves are multiples of 2**-QUANT (fitting rounds them), so their sum is exact in any order
    row = np.array(m["row"](x), dtype=np.float64)
    leaf = st.lut[(row[st.feat] >= st.thr).view(np.uint8) @ m["bits"]]  # np.packbits(little) of the node tests
    margins = (_add(m["leaves"][m["leaf_at"] + leaf], 1) + m["base"]).tolist()
    return {
        fam: round(1.0 / (1.0 + math.exp(-mg)) if mg > -700 else 0.0, 6)
        for fam, mg in zip(m["families"], margins, strict=True)
    }
