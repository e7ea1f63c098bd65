"""Die grid and placement: dies to grid cells (orientation, duplicates, missing coordinates), the wafer circle,
its flat or notch, and the pixel edges of every grid column and row."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

_MISSING_COORD = -32768
MAX_GRID_CELLS = 8_000_000
_FLAT_RATIO = 0.957  # flat chord at 0.957·R: chord ≈ 0.58·R, like a 200 mm wafer's primary flat
_NOTCH_RATIO = 0.035  # notch radius as a fraction of R


@dataclass(frozen=True)
class Dies:
    """Deduplicated dies: raw coordinates, screen column/row, source index into the inputs."""

    x: NDArray[np.int64]
    y: NDArray[np.int64]
    col: NDArray[np.int64]
    row: NDArray[np.int64]
    src: NDArray[np.intp]
    nc: int
    nr: int
    xmin: int
    xmax: int
    ymin: int
    ymax: int
    flip_x: bool
    flip_y: bool


def _orientation(pos_x: str | None, pos_y: str | None) -> tuple[bool, bool]:
    px = (pos_x or "R").strip().upper() or "R"
    py = (pos_y or "U").strip().upper() or "U"
    if px not in ("L", "R"):
        raise ValueError(f"pos_x must be 'L' or 'R', got {pos_x!r}")
    if py not in ("U", "D"):
        raise ValueError(f"pos_y must be 'U' or 'D', got {pos_y!r}")
    return px == "L", py == "U"


def prepare_dies(x: ArrayLike, y: ArrayLike, pos_x: str | None, pos_y: str | None) -> Dies:
    flip_x, flip_y = _orientation(pos_x, pos_y)
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size})")
    ok = np.isfinite(xa) & np.isfinite(ya) & (xa != _MISSING_COORD) & (ya != _MISSING_COORD)
    src = np.nonzero(ok)[0]
    xi = np.rint(xa[ok]).astype(np.int64)
    yi = np.rint(ya[ok]).astype(np.int64)
    if xi.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return Dies(e, e, e, e, src, 0, 0, 0, -1, 0, -1, flip_x, flip_y)
    xmin, xmax, ymin, ymax = int(xi.min()), int(xi.max()), int(yi.min()), int(yi.max())
    nc, nr = xmax - xmin + 1, ymax - ymin + 1
    col = (xmax - xi) if flip_x else (xi - xmin)
    row = (ymax - yi) if flip_y else (yi - ymin)
    lin = row * nc + col
    _, first_from_end = np.unique(lin[::-1], return_index=True)
    keep = lin.size - 1 - first_from_end  # last occurrence of each position, in row-major order
    return Dies(xi[keep], yi[keep], col[keep], row[keep], src[keep], nc, nr, xmin, xmax, ymin, ymax, flip_x, flip_y)


@dataclass(frozen=True)
class Placement:
    col_edges: NDArray[np.float64]  # (nc + 1,) pixel x of column boundaries
    row_edges: NDArray[np.float64]  # (nr + 1,)
    gap: int  # pixels left blank at the right/bottom of each die
    cx: float
    cy: float
    radius: float
    outline: tuple[tuple[float, float], ...]  # wafer outline polygon (px); empty for a plain circle
    box: tuple[int, int, int, int]  # square plot area (x0, y0, x1, y1)

    @property
    def die_px(self) -> float:
        if self.col_edges.size < 2:
            return 0.0
        return float(min(self.col_edges[1] - self.col_edges[0], self.row_edges[1] - self.row_edges[0]))


_DIRECTIONS = {"U": (0.0, -1.0), "D": (0.0, 1.0), "L": (-1.0, 0.0), "R": (1.0, 0.0)}


def place_dies(
    dies: Dies, box: tuple[int, int, int, int], aspect: float, flat: str | None, flat_kind: str
) -> Placement:
    """Fit the wafer circle (enclosing every die, plus flat/notch clearance) into the square box."""
    nc, nr = max(dies.nc, 1), max(dies.nr, 1)
    aw = float(aspect)
    cxu, cyu = nc * aw / 2.0, nr / 2.0  # centre of the die extent, in die-height units
    if dies.col.size:
        dcx = (dies.col + 0.5) * aw - cxu
        dcy = (dies.row + 0.5) - cyu
        r0 = float(np.sqrt((np.abs(dcx) + aw / 2) ** 2 + (np.abs(dcy) + 0.5) ** 2).max())
    else:
        dcx = dcy = np.zeros(0)
        r0 = 1.0
    radius = r0 * 1.012 + 0.15
    direction = None
    if flat is not None:
        key = str(flat).strip().upper()
        if key not in _DIRECTIONS:
            raise ValueError(f"flat must be one of U, D, L, R or None, got {flat!r}")
        direction = _DIRECTIONS[key]
        if flat_kind not in ("flat", "notch"):
            raise ValueError(f"flat_kind must be 'flat' or 'notch', got {flat_kind!r}")
        ratio = _FLAT_RATIO if flat_kind == "flat" else 1.0 - _NOTCH_RATIO
        if dies.col.size:
            # How far dies reach towards the flat side (die corner), plus a small clearance.
            ux, uy = direction
            reach = float(((dcx + np.sign(ux) * aw / 2) * ux + (dcy + np.sign(uy) * 0.5) * uy).max())
            radius = max(radius, (reach + 0.2) / ratio)

    x0, y0, x1, y1 = box
    side = min(x1 - x0, y1 - y0)
    scale = (side - 6.0) / (2.0 * radius)  # pixels per die-height unit; 3 px room for the outline stroke
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    ox, oy = cx - cxu * scale, cy - cyu * scale
    col_edges = ox + np.arange(nc + 1) * aw * scale
    row_edges = oy + np.arange(nr + 1) * scale
    die_px = min(aw, 1.0) * scale
    gap = 0 if die_px < 4 else (1 if die_px < 40 else 2)
    rpx = radius * scale
    outline: tuple[tuple[float, float], ...] = ()
    if direction is not None:
        outline = _outline_polygon(cx, cy, rpx, direction, flat_kind)
    return Placement(col_edges.astype(np.float64), row_edges.astype(np.float64), gap, cx, cy, rpx, outline, box)


def _outline_polygon(
    cx: float, cy: float, r: float, direction: tuple[float, float], kind: str
) -> tuple[tuple[float, float], ...]:
    """Wafer outline with a flat (chord) or a notch (small half-circle) on the given side."""
    theta_u = math.atan2(direction[1], direction[0])
    n = 720
    theta = theta_u + np.linspace(-math.pi, math.pi, n, endpoint=False)
    rad = np.full(n, r)
    d = theta - theta_u
    if kind == "flat":
        h = _FLAT_RATIO * r
        alpha = math.acos(_FLAT_RATIO)
        theta = np.concatenate([theta, [theta_u - alpha, theta_u + alpha]])
        d = theta - theta_u
        rad = np.full(theta.size, r)
        inside = np.cos(d) > _FLAT_RATIO
        rad[inside] = h / np.cos(d[inside])
    else:
        rn = _NOTCH_RATIO * r
        beta = math.asin(rn * math.sqrt(1 - (rn / (2 * r)) ** 2) / r)  # angle of the circles' intersection
        theta = np.concatenate([theta, [theta_u - beta, theta_u + beta]])
        d = theta - theta_u
        rad = np.full(theta.size, r)
        b = r * np.cos(d)
        disc = b * b - (r * r - rn * rn)
        hit = (disc >= 0) & (np.abs(np.sin(d)) <= math.sin(beta) + 1e-12) & (np.cos(d) > 0)
        rad[hit] = np.minimum(r, b[hit] - np.sqrt(np.maximum(disc[hit], 0.0)))
    order = np.argsort(theta)
    px = cx + rad[order] * np.cos(theta[order])
    py = cy + rad[order] * np.sin(theta[order])
    return tuple((float(a), float(b)) for a, b in zip(px, py, strict=True))


def pixel_edges(pl: Placement) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    return np.rint(pl.col_edges).astype(np.int64), np.rint(pl.row_edges).astype(np.int64)
