"""The candidate verifier: a small gradient-boosted tree set per family, fitted offline on the dev
generator (the dev tool ``patterns_train``) and stored as data in ``verifier.json``.

The rule detectors propose candidates generously; the verifier reads each candidate's rule features plus
context (what else was found, how much of the map it explains, the residual background) and gives the
probability that the candidate's family is really on the map. Inference is numpy comparisons and an exact
sum (``math.fsum``), so the same input and version give the same bits on every platform.
"""

from __future__ import annotations

import json
import math
from array import array
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

FILE = "verifier.json"
MISSING = -1e9  # a feature the candidate's detector does not report (always takes the left branch)


class Trees:
    def __init__(self, spec: dict):
        self.keys: list[str] = spec["keys"]
        self.base = float(spec["base"])
        self.feat = np.asarray(spec["feat"], dtype=np.intp)  # (trees, 2**depth - 1)
        self.thr = np.asarray(spec["thr"], dtype=np.float64)
        self.leaf = np.asarray(spec["leaf"], dtype=np.float64)  # (trees, 2**depth)
        self.depth = int(spec["depth"])
        self._rows = np.arange(self.feat.shape[0])

    def margin(self, x: NDArray[np.float64]) -> float:
        return self.margins(x[None, :])[0]

    def margins(self, X: NDArray[np.float64]) -> list[float]:
        """Margins of several candidates (rows of ``X``): every tree of every row stepped at once."""
        t = self.feat.shape[0]
        nint = 2**self.depth - 1
        feat, thr = self.feat.ravel(), self.thr.ravel()
        tree0 = self._rows * nint  # flat offset of each tree's first internal node
        rows = np.arange(X.shape[0])[:, None]
        node = np.zeros((X.shape[0], t), dtype=np.intp)
        for _ in range(self.depth):
            at = tree0 + node
            node = 2 * node + 1 + (X[rows, feat[at]] >= thr[at])
        vals = self.leaf[self._rows, node - nint]
        return [self.base + math.fsum(v) for v in vals.tolist()]

    def row(self, feats: dict[str, float]) -> list[float]:
        return [feats.get(k, MISSING) for k in self.keys]

    def probs(self, rows: list[list[float]]) -> list[float]:
        X = np.array(rows, dtype=np.float64)
        X[~np.isfinite(X)] = MISSING
        return [1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0 for m in self.margins(X)]

    def prob(self, feats: dict[str, float]) -> float:
        return self.probs([self.row(feats)])[0]


class Stack:
    """Every family's trees in one array (they share count and depth), so all the candidates of a map, of
    whatever family, are scored in one pass: feature indices point into the union of the families' keys."""

    def __init__(self, fams: dict[str, Trees]):
        self.keys = sorted({k for t in fams.values() for k in t.keys})
        # a candidate's row: each key's feature, MISSING where it has none (in key order)
        self._miss = [MISSING] * len(self.keys)  # the default of each key (dict.get's second argument)
        col = {k: i for i, k in enumerate(self.keys)}
        self.index = {f: i for i, f in enumerate(fams)}
        ts = list(fams.values())
        self.depth = ts[0].depth
        self.feat = np.stack([np.asarray([col[k] for k in t.keys], dtype=np.intp)[t.feat] for t in ts])
        self.thr = np.stack([t.thr for t in ts])
        self.leaf = np.stack([t.leaf for t in ts])
        self.base = [t.base for t in ts]
        self._trees = np.arange(self.feat.shape[1])[None, :]
        # up to depth 3 every internal node's test is taken at once; the tests' bits (node i -> bit i) give
        # the leaf through a table that follows the path
        nint = 2**self.depth - 1
        self.lut: NDArray[np.intp] | None = None
        if self.depth <= 3:
            lut = np.zeros(2**nint, dtype=np.intp)
            for bits in range(2**nint):
                node = 0
                for _ in range(self.depth):
                    node = 2 * node + 1 + ((bits >> node) & 1)
                lut[bits] = node - nint
            self.lut = lut
            self._bit = (1 << np.arange(nint)).astype(np.uint8)  # node i's test -> bit i (nint <= 7: one byte)
        self._limbs, self._scale = _exact_limbs(self.leaf)
        self._fast = self._limbs is not None
        if self._fast:
            self._compact(len(fams), nint)

    def _compact(self, nfam: int, nint: int) -> None:
        """The arrays of ``probs``' fast path. A candidate's row holds only the columns its family's trees test
        (padded to the longest such list). Nodes are numbered over all trees (family, tree, node); ``_child``
        gives a node's left child (its right child is the next number) and, below the last level, the leaf's
        flat index into ``self.leaf``: a walk of all trees of all candidates is ``depth`` gathers."""
        used = [sorted(set(self.feat[i].ravel().tolist())) for i in range(nfam)]
        width = max(len(u) for u in used)
        self._cols = [[self.keys[j] for j in u] for u in used]
        self._pad = [[MISSING] * (width - len(u)) for u in used]
        self._col_miss = [[MISSING] * len(u) for u in used]  # dict.get's defaults, key by key
        f, t, _ = self.feat.shape
        cfeat = np.zeros((f, t, nint), dtype=np.intp)
        for i, u in enumerate(used):
            pos = np.zeros(len(self.keys), dtype=np.intp)
            pos[u] = np.arange(len(u))
            cfeat[i] = pos[self.feat[i]]
        self._width = width
        self._nfeat = cfeat.ravel()
        self._nthr = np.ascontiguousarray(self.thr).ravel()
        tree = np.arange(f * t)[:, None]  # flat tree number (family * t + tree)
        k = np.arange(nint)[None, :]
        left = 2 * k + 1
        # internal children stay in the tree's nodes; past the last internal node, the leaf (left - nint)
        self._child = np.where(left < nint, tree * nint + left, tree * (nint + 1) + (left - nint)).ravel()
        # each tree's node 0 as (family, tree) tables: the first level's reads are rows of them, not gathers
        root = (np.arange(f)[:, None] * t + np.arange(t)[None, :]) * nint
        self._root_feat, self._root_thr, self._root_child = (
            cfeat[:, :, 0].copy(),
            self.thr[:, :, 0].copy(),
            self._child[root],
        )

    def _exact_probs(
        self, families: list[str], sel: list[int], fl: list[int], at: NDArray[np.intp], out: list[float | None]
    ) -> list[float | None]:
        """The probabilities from the leaves at flat indices ``at`` (a row per candidate): each row's leaf sum
        exact in integer limbs, rounded once by Python's correctly rounded int division (``math.fsum``'s value)."""
        assert self._limbs is not None
        sums = [limb[at].sum(axis=1).tolist() for limb in self._limbs]  # int64: no overflow (see _exact_limbs)
        scale = self._scale
        for j, i in enumerate(sel):
            total = 0
            for q in range(len(sums) - 1, -1, -1):
                total = (total << _LIMB_BITS) + sums[q][j]
            m = self.base[fl[j]] + total / scale
            out[i] = 1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0
        return out

    def _probs_fast(
        self, families: list[str], feats: list[dict[str, float]], sel: list[int], out: list[float | None]
    ) -> list[float | None]:
        """``probs`` with the same tests, leaves and exact sums, in fewer and smaller numpy steps."""
        index, cols, miss, pad = self.index, self._cols, self._col_miss, self._pad
        fl = [index[families[i]] for i in sel]
        flat: list[float] = []
        for i, q in zip(sel, fl, strict=True):
            flat.extend(map(feats[i].get, cols[q], miss[q]))
            flat.extend(pad[q])
        m, width = len(sel), self._width
        X = np.frombuffer(array("d", flat), dtype=np.float64)  # np.array(flat)'s values, converted in C
        X[~np.isfinite(X)] = MISSING
        fi = np.array(fl, dtype=np.intp)
        row = (np.arange(m) * width)[:, None]  # each candidate's first column in X
        go = X.take(self._root_feat.take(fi, axis=0) + row) >= self._root_thr.take(fi, axis=0)
        at = self._root_child.take(fi, axis=0) + go  # node test: right when the feature >= the threshold
        nfeat, nthr, child = self._nfeat, self._nthr, self._child
        for _ in range(self.depth - 1):
            go = X.take(nfeat.take(at) + row) >= nthr.take(at)
            at = child.take(at) + go
        assert self._limbs is not None
        sums = [limb.take(at).sum(axis=1).tolist() for limb in self._limbs]  # int64: no overflow (_exact_limbs)
        scale, base = self._scale, self.base
        for j, i in enumerate(sel):
            total = 0
            for q in range(len(sums) - 1, -1, -1):
                total = (total << _LIMB_BITS) + sums[q][j]
            mg = base[fl[j]] + total / scale
            out[i] = 1.0 / (1.0 + math.exp(-mg)) if mg > -700 else 0.0
        return out

    @staticmethod
    def fits(fams: dict[str, Trees]) -> bool:
        ts = list(fams.values())
        return bool(ts) and all(t.feat.shape == ts[0].feat.shape and t.depth == ts[0].depth for t in ts)

    def probs(self, families: list[str], feats: list[dict[str, float]]) -> list[float | None]:
        sel = [i for i, f in enumerate(families) if f in self.index]
        out: list[float | None] = [None] * len(families)
        if not sel:
            return out
        if self._fast:
            return self._probs_fast(families, feats, sel, out)
        keys, miss = self.keys, self._miss
        X = np.array([list(map(feats[i].get, keys, miss)) for i in sel], dtype=np.float64)
        X[~np.isfinite(X)] = MISSING
        fl = [self.index[families[i]] for i in sel]
        fi = np.array(fl, dtype=np.intp)
        if self.lut is not None:
            k = X.shape[1]
            tests = X.ravel()[self.feat[fi] + (np.arange(len(sel)) * k)[:, None, None]] >= self.thr[fi]
            leaf = self.lut[tests.view(np.uint8) @ self._bit]  # np.packbits(little) of the 7 tests, faster
            _, t, nleaf = self.leaf.shape
            at = (fi[:, None] * t + self._trees) * nleaf + leaf
            if self._limbs is not None:
                return self._exact_probs(families, sel, fl, at, out)
            vals = self.leaf.reshape(-1)[at].tolist()
        else:
            rows = np.arange(len(sel))[:, None]
            node = np.zeros((len(sel), self.feat.shape[1]), dtype=np.intp)
            for _ in range(self.depth):
                f = self.feat[fi[:, None], self._trees, node]
                node = 2 * node + 1 + (X[rows, f] >= self.thr[fi[:, None], self._trees, node])
            vals = self.leaf[fi[:, None], self._trees, node - (2**self.depth - 1)].tolist()
        for j, i in enumerate(sel):
            m = self.base[fl[j]] + math.fsum(vals[j])
            out[i] = 1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0
        return out


_LIMB_BITS = 48  # a tree set's sum of up to 2**15 limbs stays below 2**63
_MAX_LIMBS = 4


def _exact_limbs(leaf: NDArray[np.float64]) -> tuple[list[NDArray[np.int64]] | None, int]:
    """The leaf values as exact integers (``leaf * scale``, ``scale`` a power of two) split into int64 limbs of
    ``_LIMB_BITS`` bits, lowest first; (None, 1) when they do not fit a few limbs (sums then use ``math.fsum``)."""
    vals = leaf.ravel().tolist()
    if len(vals) == 0 or leaf.shape[-2] >= 1 << 15 or not all(math.isfinite(v) for v in vals):
        return None, 1
    shift = max(v.as_integer_ratio()[1].bit_length() - 1 for v in vals)  # denominators are powers of two
    scale = 1 << shift
    ints = [n * (scale // d) for n, d in (v.as_integer_ratio() for v in vals)]
    bits = max(abs(n) for n in ints).bit_length() + 1
    k = max(1, -(-bits // _LIMB_BITS))
    if k > _MAX_LIMBS:
        return None, 1
    mask = (1 << _LIMB_BITS) - 1
    limbs = []
    for q in range(k):
        # floor shifts: every limb but the top one in [0, 2**_LIMB_BITS), the top one signed
        part = [(n >> (q * _LIMB_BITS)) if q == k - 1 else (n >> (q * _LIMB_BITS)) & mask for n in ints]
        limbs.append(np.array(part, dtype=np.int64))  # flat, as the leaves are indexed
    return limbs, scale


@lru_cache(maxsize=1)
def models() -> dict:
    try:
        spec = json.loads(resources.files("stratum.patterns").joinpath(FILE).read_text())
    except FileNotFoundError:
        return {"version": "none", "families": {}, "stack": None}
    fams = {f: Trees(t) for f, t in spec["families"].items()}
    return {"version": spec["version"], "families": fams, "stack": Stack(fams) if Stack.fits(fams) else None}


def prob(family: str, feats: dict[str, float]) -> float | None:
    """P(the candidate's family is on the map); None when no model is fitted for the family."""
    m = models()["families"].get(family)
    return None if m is None else m.prob(feats)


def probs(families: list[str], feats: list[dict[str, float]]) -> list[float | None]:
    """``prob`` of each candidate (family, features), all evaluated at once."""
    st = models()["stack"]
    if st is not None:
        return st.probs(families, feats)
    out: list[float | None] = [None] * len(families)
    by_family: dict[str, list[int]] = {}
    for i, f in enumerate(families):
        by_family.setdefault(f, []).append(i)
    for f, idx in by_family.items():
        m = models()["families"].get(f)
        if m is not None:
            for i, p in zip(idx, m.probs([m.row(feats[i]) for i in idx]), strict=True):
                out[i] = p
    return out


# --- offline fitting (numpy; used by the dev tool, not at run time) -----------------------------------


def fit(
    X: NDArray[np.float64],
    y: NDArray[np.float64],
    keys: list[str],
    *,
    rounds: int = 150,
    depth: int = 3,
    lr: float = 0.1,
    nbins: int = 32,
    l2: float = 1.0,
    min_hess: float = 1.0,
) -> dict:
    """Logistic-loss gradient boosting of complete depth-``depth`` trees on quantile-binned features."""
    n, nf = X.shape
    edges = []
    B = np.zeros((n, nf), dtype=np.int64)
    for j in range(nf):
        e = np.unique(np.quantile(X[:, j], np.linspace(0, 1, nbins + 1)[1:-1]))
        edges.append(e)
        B[:, j] = np.searchsorted(e, X[:, j], side="right")  # bin b: e[b-1] <= x < e[b]
    nb = nbins + 1
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    base = math.log(prior / (1 - prior))
    F = np.full(n, base)
    n_int = 2**depth - 1
    feats, thrs, leaves = [], [], []
    flat = B + np.arange(nf)[None, :] * nb
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-F))
        g, h = p - y, p * (1 - p)
        node = np.zeros(n, dtype=np.int64)
        tf = np.zeros(n_int, dtype=np.int64)
        tt = np.full(n_int, np.inf)
        for lvl in range(depth):
            for k in range(2**lvl - 1, 2 ** (lvl + 1) - 1):
                m = node == k
                if m.sum() < 2:
                    continue
                G = np.bincount(flat[m].ravel(), weights=np.repeat(g[m], nf), minlength=nf * nb).reshape(nf, nb)
                H = np.bincount(flat[m].ravel(), weights=np.repeat(h[m], nf), minlength=nf * nb).reshape(nf, nb)
                GL, HL = np.cumsum(G, 1)[:, :-1], np.cumsum(H, 1)[:, :-1]
                Gt, Ht = G.sum(1, keepdims=True), H.sum(1, keepdims=True)
                GR, HR = Gt - GL, Ht - HL
                gain = GL**2 / (HL + l2) + GR**2 / (HR + l2) - Gt**2 / (Ht + l2)
                gain[(HL < min_hess) | (HR < min_hess)] = -1
                bj, bs = (int(v) for v in np.unravel_index(int(np.argmax(gain)), gain.shape))
                if gain[bj, bs] <= 1e-9 or bs >= len(edges[bj]):
                    continue
                tf[k], tt[k] = bj, float(edges[bj][bs])  # right when x >= edges[s] (bin > s)
            f_ = tf[node]
            go = X[np.arange(n), f_] >= tt[node]
            node = 2 * node + 1 + go
        leaf_idx = node - n_int
        Gl = np.bincount(leaf_idx, weights=g, minlength=n_int + 1)
        Hl = np.bincount(leaf_idx, weights=h, minlength=n_int + 1)
        lv = -lr * Gl / (Hl + l2)
        F = F + lv[leaf_idx]
        feats.append(tf.tolist())
        thrs.append([t if math.isfinite(t) else 1e300 for t in tt.tolist()])
        leaves.append([round(float(v), 8) for v in lv])
    return {"keys": keys, "base": base, "depth": depth, "feat": feats, "thr": thrs, "leaf": leaves}
