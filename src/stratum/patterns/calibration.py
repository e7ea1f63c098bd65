"""Calibrated confidences: per-family isotonic maps from the raw detector score to P(family is right),
fitted offline on synthetic maps (the dev tool ``patterns_calibrate`` in the devtools wing) and stored with the
classifier version in ``calibration.json``. Location and severity confidences are the measured accuracy
of that level for the family on the calibration set."""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from functools import lru_cache
from importlib import resources

import numpy as np

FILE = "calibration.json"


@lru_cache(maxsize=1)
def tables() -> dict:
    try:
        text = resources.files("stratum.patterns").joinpath(FILE).read_text()
    except FileNotFoundError:
        return {"version": "uncalibrated", "families": {}, "levels": {}}
    return json.loads(text)


#: a family table's knots as float lists, by table identity
_KNOTS: dict[int, tuple[dict, list[float], list[float]]] = {}


def _interp(x: float, xp: list[float], fp: list[float]) -> float:
    """``np.interp(x, xp, fp)`` of one finite ``x`` (ascending ``xp``, at least two knots): numpy's own steps and
    float operations, without its per-call conversions."""
    j = bisect_right(xp, x) - 1  # numpy's search: xp[j] <= x < xp[j + 1]
    if j < 0:
        return fp[0]
    if j >= len(xp) - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    y = slope * (x - xp[j]) + fp[j]
    if math.isnan(y):
        y = slope * (x - xp[j + 1]) + fp[j + 1]
        if math.isnan(y) and fp[j] == fp[j + 1]:
            y = fp[j]
    return y


def confidence(family: str, score: float) -> float:
    t = tables()["families"].get(family)
    if not t:
        return round(float(score), 4)
    k = _KNOTS.get(id(t))
    if k is None or k[0] is not t:
        k = _KNOTS[id(t)] = (t, [float(v) for v in t["x"]], [float(v) for v in t["y"]])
    x = float(score)
    if len(k[1]) < 2 or not math.isfinite(x):
        return round(float(np.interp(x, k[1], k[2])), 4)
    return round(_interp(x, k[1], k[2]), 4)


def level_confidence(family: str, level: str, value: str) -> float:
    t = tables()["levels"].get(family, {}).get(level, {})
    return round(float(t.get(value, t.get("*", 0.5))), 4)


def pav(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators isotonic regression of y on x; returns knots for ``np.interp``."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(float)
    ws = np.ones_like(ys) if w is None else w[order].astype(float)
    blocks: list[list[float]] = []  # [sum_wy, sum_w, x_lo, x_hi]
    for xi, yi, wi in zip(xs, ys, ws, strict=True):
        blocks.append([yi * wi, wi, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            a = blocks.pop()
            b = blocks[-1]
            b[0] += a[0]
            b[1] += a[1]
            b[3] = a[3]
    kx: list[float] = []
    ky: list[float] = []
    for s, wt, lo, hi in blocks:
        v = s / wt
        kx += [float(lo), float(hi)]
        ky += [v, v]
    return kx, ky
