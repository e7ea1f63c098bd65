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
        node = np.zeros(len(self._rows), dtype=np.intp)
        for _ in range(self.depth):
            f = self.feat[self._rows, node]
            node = 2 * node + 1 + (x[f] >= self.thr[self._rows, node])
        vals = self.leaf[self._rows, node - (2**self.depth - 1)]
        return self.base + math.fsum(vals.tolist())

    def prob(self, feats: dict[str, float]) -> float:
        x = np.array([feats.get(k, MISSING) for k in self.keys], dtype=np.float64)
        x[~np.isfinite(x)] = MISSING
        m = self.margin(x)
        return 1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0


@lru_cache(maxsize=1)
def models() -> dict:
    try:
        spec = json.loads(resources.files("stratum.patterns").joinpath(FILE).read_text())
    except FileNotFoundError:
        return {"version": "none", "families": {}}
    return {"version": spec["version"], "families": {f: Trees(t) for f, t in spec["families"].items()}}


def prob(family: str, feats: dict[str, float]) -> float | None:
    """P(the candidate's family is on the map); None when no model is fitted for the family."""
    m = models()["families"].get(family)
    return None if m is None else m.prob(feats)


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
