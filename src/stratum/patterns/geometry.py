"""A die map and its wafer geometry, recovered from die coordinates alone.

The wafer centre is the median of the row midpoints (x) and of the column midpoints (y): a flat or a
notch moves only the rows or columns it cuts, fewer than half of them. Non-square die pitch shows as
different extents in x and y (the wafer is round in physical units), so the y axis is scaled by
``rx / ry``. The normalised radius divides by the radius covered by dies (outermost die centre plus half
a die pitch), as the labelling rules define it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DieMap:
    x: NDArray[np.int64]
    y: NDArray[np.int64]
    fail: NDArray[np.bool_]
    site: NDArray[np.int64] | None = None
    hard_bin: NDArray[np.int64] | None = None


@dataclass
class Geometry:
    n: int
    ix: NDArray[np.intp]  # raster column of each die
    iy: NDArray[np.intp]  # raster row of each die
    shape: tuple[int, int]  # (rows, cols)
    flat: NDArray[np.intp]  # iy * cols + ix: each die's cell in a raveled raster (one index: cheaper than two)
    valid: NDArray[np.bool_]  # raster: a die exists here
    u: NDArray[np.float64]  # normalised x (wafer radius 1)
    v: NDArray[np.float64]  # normalised y, pitch-corrected
    r: NDArray[np.float64]
    theta: NDArray[np.float64]  # radians, counter-clockwise from +x
    third: NDArray[np.int8]  # 0 inner, 1 middle, 2 outer equal-area third
    cx: float
    cy: float
    rx: float
    ry: float
    extra: dict = field(default_factory=dict)


def _midpoint_median(valid: NDArray[np.bool_]) -> float:
    """Median over the raster rows holding dies of (first + last column) / 2."""
    rows = np.logical_or.reduce(valid, 1)  # valid.any(1), without its wrapper
    # first - (cols - 1 - last): the midpoint doubled, less cols - 1 (exact integers; halved at the end)
    m = valid.argmax(1)[rows] - valid[:, ::-1].argmax(1)[rows]
    m.sort()
    n = len(m)
    return float((m[(n - 1) // 2] + m[n // 2] + 2 * (valid.shape[1] - 1)) / 4)  # np.median's bits


#: the wafers of a lot share one die layout: their geometry is computed once (arrays made read-only)
_CACHE: OrderedDict[bytes, Geometry] = OrderedDict()
_CACHE_SIZE = 16
_LOCK = threading.Lock()  # the API classifies batches on worker threads


def geometry(dm: DieMap) -> Geometry:
    """The geometry of ``dm``'s die layout (memoised on the coordinates relative to their minimum, in their
    order: the geometry does not depend on where the coordinates start)."""
    x = np.asarray(dm.x, dtype=np.int64)
    y = np.asarray(dm.y, dtype=np.int64)
    ix = (x - np.minimum.reduce(x)).astype(np.intp, copy=False)  # x.min(), without its wrapper
    iy = (y - np.minimum.reduce(y)).astype(np.intp, copy=False)
    shape = (int(np.maximum.reduce(iy)) + 1, int(np.maximum.reduce(ix)) + 1)
    if max(shape) <= 1 << 16:  # two bytes a coordinate hash 4x faster than eight
        raw = b"16" + ix.astype(np.uint16).tobytes() + iy.astype(np.uint16).tobytes()
    else:
        raw = b"64" + ix.astype(np.int64).tobytes() + iy.astype(np.int64).tobytes()
    key = raw  # the coordinates themselves: hashed by the dict several times faster than a digest, never colliding
    with _LOCK:
        g = _CACHE.get(key)
        if g is not None:
            _CACHE.move_to_end(key)
            return g
    g = _geometry(ix, iy, shape)
    for a in (g.ix, g.iy, g.flat, g.valid, g.u, g.v, g.r, g.theta, g.third):
        a.setflags(write=False)
    with _LOCK:
        _CACHE[key] = g
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return g


def sin_cos(g: Geometry, idx: NDArray[np.intp] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``np.sin(g.theta)`` and ``np.cos(g.theta)`` (at the dies ``idx`` when given). Elementwise, so a subset's values
    are the same bits as the whole layout's: a subset is computed on its own until the layout's subsets have
    cost one whole pass, then the whole layout once (the wafers of a lot share it)."""
    sc = g.extra.get("sin_cos")
    if sc is None and idx is not None:
        done = g.extra.get("sin_cos_dies", 0) + len(idx)
        if done < g.n:
            g.extra["sin_cos_dies"] = done
            th = g.theta[idx]
            return np.sin(th), np.cos(th)
    if sc is None:
        sc = (np.sin(g.theta), np.cos(g.theta))
        for a in sc:
            a.setflags(write=False)
        g.extra["sin_cos"] = sc
    return sc if idx is None else (sc[0][idx], sc[1][idx])


def sec8(g: Geometry) -> NDArray[np.intp]:
    """Each die's polar sector of eight (0 from -pi), computed once per layout."""
    sec = g.extra.get("sec8")
    if sec is None:
        # & 7 is % 8 on these ints (0..8), several times cheaper than numpy's int64 remainder
        sec = ((g.theta + math.pi) / (2 * math.pi) * 8).astype(np.intp) & 7
        sec.setflags(write=False)
        g.extra["sec8"] = sec
    return sec


def raster_mask(g: Geometry) -> NDArray[np.bool_] | None:
    """The raveled ``g.valid`` when the dies are listed in raster order (``g.flat`` increasing, as most maps are),
    else None: then ``a[mask] = vals`` fills a raveled raster as ``a[g.flat] = vals`` does, faster. Once per layout."""
    m = g.extra.get("raster_mask", False)
    if m is False:
        flat = g.flat
        m = g.extra["raster_mask"] = g.valid.reshape(-1) if bool((flat[1:] > flat[:-1]).all()) else None
    return m


def thirds_masks(g: Geometry) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The dies in the middle and in the outer equal-area third (``g.third`` 1 and 2), once per layout."""
    m = g.extra.get("thirds")
    if m is None:
        m = g.extra["thirds"] = (g.third == 1, g.third == 2)
        for a in m:
            a.setflags(write=False)
    return m


def edge_depth(g: Geometry) -> NDArray[np.float64]:
    """Each die's distance from the wafer edge in dies (``(1 - r) * rx``), computed once per layout."""
    d = g.extra.get("edge_depth")
    if d is None:
        d = (1.0 - g.r) * g.rx
        d.setflags(write=False)
        g.extra["edge_depth"] = d
    return d


def _geometry(ix: NDArray[np.intp], iy: NDArray[np.intp], shape: tuple[int, int]) -> Geometry:
    """Geometry of a layout given as raster columns and rows (each starting at 0)."""
    flat = iy * shape[1] + ix
    valid = np.zeros(shape[0] * shape[1], dtype=bool)
    valid[flat] = True
    valid = valid.reshape(shape)
    cx = _midpoint_median(valid)
    cy = _midpoint_median(valid.T)
    dx = cast("NDArray[np.float64]", ix - cx)  # float64: cx is a float (a string type: nothing built per call)
    dy = cast("NDArray[np.float64]", iy - cy)
    # half-extents in dies; the larger side of each axis (a flat shortens one side only): the largest |ix - cx|
    # is at the first or last column (0 and cols - 1), so max |dx| without a pass over the dies
    ex = max(max(shape[1] - 1 - cx, cx), 0.5)
    ey = max(max(shape[0] - 1 - cy, cy), 0.5)
    aspect = ex / ey  # physical pitch_y / pitch_x
    big_r = math.sqrt(float(np.maximum.reduce(dx * dx + (dy * aspect) ** 2))) + 0.5  # sqrt is monotone: the max's root
    u = dx / big_r
    v = dy * aspect / big_r
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    third = (r >= 3**-0.5).view(np.int8) + (r >= (2 / 3) ** 0.5).view(np.int8)
    return Geometry(
        n=len(ix),
        ix=ix,
        iy=iy,
        shape=shape,
        flat=flat,
        valid=valid,
        u=u,
        v=v,
        r=r,
        theta=theta,
        third=third,
        cx=cx,
        cy=cy,
        rx=big_r,
        ry=big_r / aspect,
    )
