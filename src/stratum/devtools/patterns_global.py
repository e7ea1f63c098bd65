"""The whole-map model: per-family presence probabilities from resolution-normalised features of the whole
map, fitted offline (the dev tool ``patterns_globaltrain``) and stored as data in ``patterns_global.json``
beside it. A development experiment: nothing at run time uses it, so it lives with the dev tools and does
not ship in Lambda assets.

The rule detectors and the candidate verifier look at one candidate region at a time; this model looks at the
whole map at once, as the hand-feature WM-811K classifiers do. The map is read on a 32 x 32 grid of cells (a
cell is one die on a 20-die map, 10 x 10 dies on a 300-die one): fail density on a polar grid (6 equal-area
radial bands x 8 sectors), hot halves and quadrants, the rim (cells within 1.5 dies of the edge, 16 bins),
row and column projections, local density at three scales (1/32, 1/16 and 1/8 of the map: peak z, share of
hot cells, their distance from the centre, spread and elongation), and at die level how fails neighbour each
other (isolated, clustered, on a line). Every feature is a rate, a z or a share, so a 20-die and a 300-die map
of one pattern look alike. One boosted tree set per family (one-vs-rest, the verifier's trees and fitting), so
a map can hold several families. Leaves are multiples of 2**-24, so a margin is an exact sum in any order.

Not wired into the classifier (docs/decisions.md, 2026-12-05): fed to the candidate verifier as features
(``gm_<family>``, every family's probability), it raised macro-F1 on the independent generator C held out of
all fitting by ~0.02, within noise with C fitted on, and took ~19 % of the throughput (below the 500 maps per
CPU-second bar at 50 dies across). ``globalmodel.probs(g, fails)`` is the whole interface.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from stratum.patterns import verifier
from stratum.patterns.geometry import Geometry

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
G = 32  # the map is read on a G x G grid of cells (each `size` x `size` dies; a 20-die map: one die a cell)
NB = 6  # equal-area radial bands
NS = 8  # sectors
SCALES = (1, 2, 4)  # cell groupings for local density: 1/32, 1/16 and 1/8 of the map
_LINES = ("row", "col")
_CELL_KEYS = ("zmax", "rate_max", "hot", "cold", "hot_r", "hot_spread", "hot_elong")
_GY, _GX = np.divmod(np.arange(G * G), G)
_POOL = {k: (_GY // k) * (G // k) + _GX // k for k in SCALES}  # each cell's group at each scale
# a die's 8 neighbours as the bits of a byte (raster order: neighbour j is opposite neighbour 7 - j): how many
# fail, and whether it is a line die (two opposite neighbours fail, at most three in all)
_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
_LINE_DIE = np.array(
    [any((b >> j) & (b >> (7 - j)) & 1 for j in range(4)) and bin(b).count("1") <= 3 for b in range(256)], dtype=bool
)


class _Layout:
    """What the features need of a die layout alone (computed once per layout: lots share one): each die's
    cell of the G x G grid; each cell's dies, centre, polar cell and lines; the rim's angular bins."""

    def __init__(self, g: Geometry):
        h, w = g.shape
        self.size = size = max(1, math.ceil(max(h, w) / G))
        self.cid = (g.iy // size) * G + g.ix // size
        cn = np.bincount(self.cid, minlength=G * G).astype(np.float64)
        self.cn = cn
        at = np.arange(G) * size + (size - 1) / 2  # the raster position of each cell's centre
        U = np.broadcast_to((at - g.cx) / g.rx, (G, G)).ravel()
        V = np.broadcast_to(((at - g.cy) / g.ry)[:, None], (G, G)).ravel()
        present = cn > 0
        rr2 = U * U + V * V
        r2 = np.minimum(rr2, 1.0)
        band = np.minimum((r2 * NB).astype(np.intp), NB - 1)
        turn = (np.arctan2(V, U) + math.pi) / (2 * math.pi)
        sec = (turn * NS).astype(np.intp) % NS
        # the rim: cells reaching within 1.5 dies of the edge, in 16 angular bins (bin 16: not on the rim)
        rim = present & (np.sqrt(rr2) + 0.5 * size / g.rx >= 1.0 - 1.5 / g.rx)
        self.rim = np.where(rim, (turn * 16).astype(np.intp) % 16, 16)
        self.rn = np.bincount(self.rim, weights=cn, minlength=17)[:16]
        self.rim_ok = float(self.rn.sum()) >= 16
        self.pid = np.where(present, band * NS + sec, NB * NS)  # bin NB * NS: no die
        pn = np.bincount(self.pid, weights=cn, minlength=NB * NS + 1)[: NB * NS].reshape(NB, NS)
        self.pn, self.bn, self.sn = pn, pn.sum(1), pn.sum(0)
        grid = cn.reshape(G, G)
        self.line_n = np.concatenate((grid.sum(1), grid.sum(0)))  # dies per row, then per column of cells
        self.line_on = (self.line_n >= 4 * size).reshape(2, G)
        self.line_ok = bool(self.line_on.sum(1).min() >= 5)
        self.scales = []
        ucn, vcn = U * cn, V * cn
        for k in SCALES:
            mm = (G // k) ** 2
            pool = _POOL[k]
            n_k = np.bincount(pool, weights=cn, minlength=mm) if k > 1 else cn
            full = (n_k >= 0.5 * (k * size) ** 2).nonzero()[0]
            nf_ = n_k[full]
            if k > 1:
                wu = np.bincount(pool, weights=ucn, minlength=mm)[full] / nf_
                wv = np.bincount(pool, weights=vcn, minlength=mm)[full] / nf_
            else:
                wu = wv = np.zeros(0)
            self.scales.append((pool, mm, full, nf_, wu, wv))
        # every scale's cells one after the other: their statistics in one pass (when each has >= 8 cells)
        self.scales_ok = all(len(sc[3]) >= 8 for sc in self.scales)
        if self.scales_ok:
            self.kn_all = np.concatenate([sc[3] for sc in self.scales])
            self.sq_all = np.sqrt(self.kn_all)
            lens = [len(sc[3]) for sc in self.scales]
            self.starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
            self.nfull = np.array(lens, dtype=np.float64)
        # each die's cell in a raster with an empty border, and its 8 neighbours' offsets there
        self.padded = (h + 2) * (w + 2)
        self.pflat = (g.iy + 1) * (w + 2) + g.ix + 1
        self.nb_off = np.array([-w - 3, -w - 2, -w - 1, -1, 1, w + 1, w + 2, w + 3])
        self.vp = np.zeros(self.padded)
        self.vp[self.pflat] = 1.0


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
    K = np.bincount(lay.cid[fi], minlength=G * G).astype(np.float64)  # fails per cell
    out: dict[str, float] = {"m_fail": p, "m_log_n": math.log(n)}
    # polar grid: equal-area bands x sectors
    ck = np.bincount(lay.pid, weights=K, minlength=NB * NS + 1)[: NB * NS].reshape(NB, NS)
    cn = lay.pn
    brate = ck.sum(1) / np.maximum(lay.bn, 1)
    cr = np.where(cn > 0, ck / np.maximum(cn, 1), brate[:, None])
    cr.sort(axis=1)
    vals = np.concatenate((brate - p, cr[:, 1] - p, cr[:, -1] - brate)).tolist()
    for i in range(NB):
        out[f"m_band{i}"] = vals[i]
        out[f"m_band{i}_low2"] = vals[NB + i]  # a ring: even its second-coldest sector fails
        out[f"m_band{i}_hot"] = vals[2 * NB + i]  # a local pattern: one hot sector
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
    sl = (ck.sum(0) / np.maximum(lay.sn, 1)).tolist()
    ext = sl + sl
    half = [sum(ext[j : j + NS // 2]) / (NS // 2) for j in range(NS)]
    out["m_sec_max"] = max(sl) - p
    out["m_sec_min"] = min(sl) - p
    out["m_half"] = max(half) - min(half)
    out["m_quad"] = max(ext[j] + ext[j + 1] for j in range(NS)) / 2 - p
    # the rim: cells within 1.5 dies of the edge, in 16 angular bins
    if lay.rim_ok:
        rn, rk = lay.rn, np.bincount(lay.rim, weights=K, minlength=17)[:16]
        rr = rk / np.maximum(rn, 1)
        out["m_rim"] = float(rk.sum()) / float(rn.sum()) - p
        out["m_rim_max"] = float(rr.max()) - p
        out["m_rim_cover"] = float(np.count_nonzero(rr >= p + 0.2)) / 16
        out["m_rim_z"] = float(((rk - rn * pp) / (np.sqrt(np.maximum(rn, 1.0)) * sd)).max())
    else:
        out["m_rim"] = out["m_rim_max"] = out["m_rim_cover"] = out["m_rim_z"] = 0.0
    # lines of cells: rows and columns (a stripe, a straight scratch): the best line over the map's rate
    if lay.line_ok:
        K2 = K.reshape(G, G)
        lk = np.concatenate((K2.sum(1), K2.sum(0))).reshape(2, G)
        ln = lay.line_n.reshape(2, G)
        on = lay.line_on
        rate = np.where(on, lk / np.maximum(ln, 1), 0.0)
        zl = np.where(on, (lk - ln * pp) / (np.sqrt(np.maximum(ln, 1)) * sd), -1e9)
        top, zt = (rate.max(1) - p).tolist(), zl.max(1).tolist()
        share = (np.count_nonzero(on & (rate >= p + 0.25), axis=1) / on.sum(1)).tolist()
        for i, name in enumerate(_LINES):
            out[f"m_{name}_top"], out[f"m_{name}_z"], out[f"m_{name}_share"] = top[i], zt[i], share[i]
    else:
        for name in _LINES:
            out[f"m_{name}_top"] = out[f"m_{name}_z"] = out[f"m_{name}_share"] = 0.0
    # die scale: each fail's failing 8-neighbours, and line dies: a fail between two failing neighbours on
    # opposite sides, with few other failing neighbours
    if nf:
        P = lay.vp.copy()  # 1: a die, 3: a failing die
        pf = lay.pflat[fi]
        P[pf] = 3.0
        nb = P[pf[:, None] + lay.nb_off]  # (fails, 8): neighbours in raster order, opposite at j and 7 - j
        code = np.packbits(nb > 2.0, axis=1, bitorder="little")[:, 0]  # which neighbours fail, as a byte
        fn = _POPCOUNT[code]
        nbv = _POPCOUNT[np.packbits(nb > 0.0, axis=1, bitorder="little")[:, 0]]  # neighbours present
        out["m_linepx"] = float(np.count_nonzero(_LINE_DIE[code])) / nf
        out["m_nb0"] = float(np.count_nonzero(code == 0)) / nf
        out["m_nb3"] = float(np.count_nonzero(fn >= 3)) / nf
        out["m_nb_excess"] = int(fn.sum()) / max(float(nbv.sum()), 1.0) - p
        # fails whose 3x3 window fails well above the map's rate
        out["m_d3_hot"] = float(np.count_nonzero(fn + 1.0 >= (nbv + 1.0) * (p + 0.5))) / n
    else:
        out["m_nb0"] = out["m_nb3"] = out["m_nb_excess"] = out["m_linepx"] = out["m_d3_hot"] = 0.0
    # local density at three scales: hot cells (binomial z >= 3), their spread and shape
    if not lay.scales_ok:
        for k in SCALES:
            for key in _CELL_KEYS[: 4 if k == 1 else None]:
                out[f"m_s{k}_{key}"] = 0.0
        return out
    kk = np.concatenate(
        [
            (np.bincount(pool, weights=K, minlength=mm) if k > 1 else K)[full]
            for k, (pool, mm, full, *_) in zip(SCALES, lay.scales, strict=True)
        ]
    )
    z = (kk - lay.kn_all * pp) / (lay.sq_all * sd)
    crate = kk / lay.kn_all
    st = lay.starts
    ishot = z >= 3.0
    stats = np.stack(
        (
            np.maximum.reduceat(z, st),
            np.maximum.reduceat(crate, st) - p,
            np.add.reduceat(ishot.astype(np.float64), st) / lay.nfull,
            np.add.reduceat((crate <= 0.5 * p).astype(np.float64), st) / lay.nfull,
        )
    ).T.tolist()
    ends = [*st[1:].tolist(), len(z)]
    for j, (k, sc) in enumerate(zip(SCALES, lay.scales, strict=True)):
        tag = f"m_s{k}"
        out[f"{tag}_zmax"], out[f"{tag}_rate_max"], out[f"{tag}_hot"], out[f"{tag}_cold"] = stats[j]
        if k == 1:
            continue  # the finest scale: peak and shares only
        zs = z[st[j] : ends[j]]
        hot = ishot[st[j] : ends[j]].nonzero()[0]
        if len(hot) >= 2:
            wz = zs[hot]
            wt = wz / float(wz.sum())
            hu, hv = sc[4][hot], sc[5][hot]
            mu, mv = float((wt * hu).sum()), float((wt * hv).sum())
            du, dv = hu - mu, hv - mv
            a, bb, c = float((wt * du * du).sum()), float((wt * dv * dv).sum()), float((wt * du * dv).sum())
            disc = math.sqrt(max((a - bb) ** 2 / 4 + c * c, 0.0))
            l1, l2 = (a + bb) / 2 + disc, max((a + bb) / 2 - disc, 0.0)
            out[f"{tag}_hot_r"] = math.hypot(mu, mv)
            out[f"{tag}_hot_spread"] = math.sqrt(l1 + l2)
            out[f"{tag}_hot_elong"] = math.sqrt(l1 / max(l2, 1e-4))
        else:
            out[f"{tag}_hot_r"] = out[f"{tag}_hot_spread"] = out[f"{tag}_hot_elong"] = 0.0
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
    return {"version": spec["version"], "families": fams, "stack": stack}


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
    row = np.array([x[k] for k in st.keys], dtype=np.float64)
    leaf = st.lut[np.packbits(row[st.feat] >= st.thr, axis=-1, bitorder="little")[..., 0]]
    margins = (np.take_along_axis(st.leaf, leaf[..., None], axis=2)[..., 0].sum(1) + np.array(st.base)).tolist()
    return {
        fam: round(1.0 / (1.0 + math.exp(-mg)) if mg > -700 else 0.0, 6)
        for fam, mg in zip(m["families"], margins, strict=True)
    }
