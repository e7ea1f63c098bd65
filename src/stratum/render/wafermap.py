"""Wafer maps as PNG (Pillow) or SVG (hand-written XML): categorical bin maps and parametric heat maps.

Both formats come from one layout: the figure is planned once (:func:`bin_map` / :func:`value_map`
return a :class:`WaferMap`), then drawn by the PNG or the SVG backend.

* Dies sit on a grid in a circular wafer outline sized to the die extent (circle centred on the die
  bounding box, touching no die), with an optional flat or notch.
* Orientation follows STDF WCR: ``pos_x`` 'R' (default) draws positive X to the right, 'L' to the left;
  ``pos_y`` 'U' (default) draws positive Y up, 'D' down. It is applied only when drawing: axis labels
  show the raw coordinates.
* Duplicate coordinates (retests): the last record wins. Coordinates of -32768 (STDF "missing") and
  non-finite ones are dropped.
* The PNG path fills dies with numpy (one vectorised lookup from pixel to die, not one draw call per
  die) and uses Pillow only for the anti-aliased outline and the text. SVG groups dies by colour into
  one ``<path>`` per colour, merging horizontal runs when dies have no gap between them.
* Text uses Pillow's built-in font (``ImageFont.load_default(size=...)``); no system font is read.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from xml.sax.saxutils import escape

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "FAIL_COLORS",
    "PASS_COLORS",
    "BinDef",
    "WaferMap",
    "bin_color",
    "bin_map",
    "colormap",
    "render_bin_map",
    "render_value_map",
    "value_map",
]

Fmt = Literal["png", "svg"]

# ---------------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------------

CANVAS = "#ffffff"
WAFER_FILL = "#eef1f4"  # inside the wafer, no die: left blank
OUTLINE = "#4b5563"
TEXT = "#1f2933"
MUTED = "#5f6b7a"
RULE = "#c9ced6"
NO_VALUE = "#a2a7ad"  # heat map: die without a value
BELOW_LO = "#e7298a"  # heat map: die below the low limit
ABOVE_HI = "#e31a1c"  # heat map: die above the high limit

# Pass bins: greens. Bin 1 (the usual good bin) gets the first one.
PASS_COLORS: tuple[str, ...] = (
    "#2ca02c",
    "#98df8a",
    "#1b6b34",
    "#b8e186",
    "#0f9f7a",
    "#5a8c1e",
    "#d2efc9",
    "#004d25",
)
# Fail bins: clearly distinct, non-green, not too light against the wafer fill. Bin 2 gets the first.
FAIL_COLORS: tuple[str, ...] = (
    "#e41a1c",
    "#377eb8",
    "#ff7f00",
    "#984ea3",
    "#f2c200",
    "#a65628",
    "#f781bf",
    "#17becf",
    "#1f2f86",
    "#e7298a",
    "#7f0000",
    "#6b7280",
    "#b39ddb",
    "#fb9a99",
    "#222222",
    "#c8a165",
)

# Perceptually uniform sequential map: viridis sampled at ten evenly spaced points, interpolated.
_VIRIDIS_ANCHORS = (
    "#440154",
    "#482878",
    "#3e4a89",
    "#31688e",
    "#26828e",
    "#1f9e89",
    "#35b779",
    "#6dcd59",
    "#b4de2c",
    "#fde725",
)
_LUT_SIZE = 256


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


@lru_cache(maxsize=4)
def _colormap_lut(n: int = _LUT_SIZE) -> NDArray[np.uint8]:
    anchors = np.array([_rgb(c) for c in _VIRIDIS_ANCHORS], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    lut = np.stack([np.interp(t, pos, anchors[:, k]) for k in range(3)], axis=1)
    return np.rint(lut).astype(np.uint8)


def colormap(t: ArrayLike) -> NDArray[np.uint8]:
    """Viridis-like RGB (uint8, shape (..., 3)) for t in [0, 1] (clipped; NaN maps to 0)."""
    a = np.nan_to_num(np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0))
    return _colormap_lut()[np.rint(a * (_LUT_SIZE - 1)).astype(np.intp)]


def bin_color(bin_number: int, passed: bool | None) -> str:
    """Base colour of a bin: a green for pass bins, a distinct non-green for fail (or unknown) bins.

    Depends only on the bin number and its pass flag, so a bin looks the same on every map.
    """
    if passed:
        return PASS_COLORS[(int(bin_number) - 1) % len(PASS_COLORS)]
    return FAIL_COLORS[(int(bin_number) - 2) % len(FAIL_COLORS)]


# ---------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# Glyphs the built-in font lacks, with ASCII stand-ins (others fall back to "?").
_PNG_SUBSTITUTES = str.maketrans(
    {"µ": "u", "μ": "u", "–": "-", "—": "-", "×": "x", "σ": "s", "±": "+/-", "≤": "<=", "≥": ">="}
)


def _clean(text: Any) -> str:
    """Text from STDF can hold anything: drop characters XML cannot carry, collapse whitespace."""
    return " ".join(_XML_INVALID.sub("", str(text)).split())


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _notdef_mask() -> bytes:
    return bytes(_font(20).getmask("\uffff"))


@lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    return bytes(_font(20).getmask(ch)) != _notdef_mask()


def _png_text(text: str) -> str:
    text = text.translate(_PNG_SUBSTITUTES)
    if text.isascii():
        return text
    return "".join(c if c.isascii() or _has_glyph(c) else "?" for c in text)


def _word_gap(size: int) -> int:
    """Extra pixels per space: the built-in font's space is only 0.2 em, which runs words together."""
    return max(1, round(size * 0.1))


def _text_width(text: str, size: int) -> float:
    t = _png_text(text)
    return float(_font(size).getlength(t)) + t.count(" ") * _word_gap(size)


def _draw_text(draw: ImageDraw.ImageDraw, p: _Text) -> None:
    font = _font(p.size)
    t = _png_text(p.text)
    kw: dict[str, Any] = {"fill": p.fill, "font": font}
    if p.bold:
        kw.update(stroke_width=round(p.size / 50, 2), stroke_fill=p.fill)
    if " " not in t:
        draw.text((p.x, p.y), t, anchor=p.anchor, **kw)
        return
    total = _text_width(t, p.size)
    x = p.x - {"l": 0.0, "m": total / 2, "r": total}[p.anchor[0]]
    advance = float(font.getlength(" ")) + _word_gap(p.size)
    for word in t.split(" "):
        if word:
            draw.text((x, p.y), word, anchor="l" + p.anchor[1], **kw)
        x += float(font.getlength(word)) + advance


def _metrics(size: int) -> tuple[int, int]:
    """(ascent, descent) in pixels, descent positive."""
    asc, desc = _font(size).getmetrics()
    return int(asc), int(desc)


def _fit(text: str, size: int, width: float) -> str:
    """Truncate with an ellipsis so the text fits the width."""
    if _text_width(text, size) <= width:
        return text
    ell = "…"
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width(text[:mid].rstrip() + ell, size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return (text[:lo].rstrip() + ell) if lo else ""


def _fmt_count(n: int) -> str:
    return f"{int(n):,}"


def _fmt_pct(p: float) -> str:
    if p <= 0:
        return "0%"
    if p < 0.1:
        return "<0.1%"
    if 99.95 <= p < 100:
        return ">99.9%"
    return f"{p:.1f}%"


# ---------------------------------------------------------------------------------------------------
# Drawing primitives shared by the PNG and SVG backends
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    x: float
    y: float
    text: str
    size: int
    fill: str = TEXT
    anchor: str = "la"  # Pillow anchors: l/m/r horizontally, a (top)/m (middle)/s (baseline) vertically
    bold: bool = False  # PNG: faux bold via a thin stroke (the built-in font has no bold face)


@dataclass(frozen=True)
class _Rect:
    x0: float
    y0: float
    x1: float
    y1: float
    fill: str | None
    outline: str | None = None


@dataclass(frozen=True)
class _Line:
    points: tuple[tuple[float, float], ...]
    fill: str
    width: int = 1


@dataclass(frozen=True)
class _Polygon:
    points: tuple[tuple[float, float], ...]
    fill: str


@dataclass(frozen=True)
class _ColorBar:
    """Vertical colour ramp: top = 1, bottom = 0."""

    x0: int
    y0: int
    x1: int
    y1: int


_Primitive = _Text | _Rect | _Line | _Polygon | _ColorBar


# ---------------------------------------------------------------------------------------------------
# Die grid and placement
# ---------------------------------------------------------------------------------------------------

_MISSING_COORD = -32768
_MAX_GRID_CELLS = 8_000_000
_FLAT_RATIO = 0.957  # flat chord at 0.957·R: chord ≈ 0.58·R, like a 200 mm wafer's primary flat
_NOTCH_RATIO = 0.035  # notch radius as a fraction of R


@dataclass(frozen=True)
class _Dies:
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


def _prepare_dies(x: ArrayLike, y: ArrayLike, pos_x: str | None, pos_y: str | None) -> _Dies:
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
        return _Dies(e, e, e, e, src, 0, 0, 0, -1, 0, -1, flip_x, flip_y)
    xmin, xmax, ymin, ymax = int(xi.min()), int(xi.max()), int(yi.min()), int(yi.max())
    nc, nr = xmax - xmin + 1, ymax - ymin + 1
    col = (xmax - xi) if flip_x else (xi - xmin)
    row = (ymax - yi) if flip_y else (yi - ymin)
    lin = row * nc + col
    _, first_from_end = np.unique(lin[::-1], return_index=True)
    keep = lin.size - 1 - first_from_end  # last occurrence of each position, in row-major order
    return _Dies(xi[keep], yi[keep], col[keep], row[keep], src[keep], nc, nr, xmin, xmax, ymin, ymax, flip_x, flip_y)


@dataclass(frozen=True)
class _Placement:
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


def _place(dies: _Dies, box: tuple[int, int, int, int], aspect: float, flat: str | None, flat_kind: str) -> _Placement:
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
    return _Placement(col_edges, row_edges, gap, cx, cy, rpx, outline, box)


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


# ---------------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class WaferMap:
    """A planned wafer map figure; draw it with :meth:`to_png` / :meth:`to_svg`.

    ``colors`` maps each bin number to its colour (bin maps); ``legend`` lists the legend rows.
    """

    width: int
    height: int
    title: str
    description: str
    dies: _Dies
    placement: _Placement
    die_color: NDArray[np.intp]  # per die, index into lut
    lut: NDArray[np.uint8]  # (K, 3)
    primitives: list[_Primitive] = field(default_factory=list)
    colors: dict[int, str] = field(default_factory=dict)
    legend: list[dict[str, Any]] = field(default_factory=list)

    # -- geometry ---------------------------------------------------------------------------------

    @property
    def colorbar_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the colour bar ramp (heat maps), top = maximum."""
        for p in self.primitives:
            if isinstance(p, _ColorBar):
                return p.x0, p.y0, p.x1, p.y1
        return None

    def die_center(self, x: int, y: int) -> tuple[float, float]:
        """Pixel centre of the die at raw coordinates (x, y) in the PNG (the SVG is within half a pixel)."""
        d = self.dies
        c = (d.xmax - x) if d.flip_x else (x - d.xmin)
        r = (d.ymax - y) if d.flip_y else (y - d.ymin)
        if not (0 <= c < d.nc and 0 <= r < d.nr):
            raise KeyError(f"die ({x}, {y}) is outside the map")
        ce, re_ = _pixel_edges(self.placement)
        g = self.placement.gap
        return (ce[c] + ce[c + 1] - g) / 2.0, (re_[r] + re_[r + 1] - g) / 2.0

    def render(self, fmt: Fmt = "png") -> bytes:
        if fmt == "png":
            return self.to_png()
        if fmt == "svg":
            return self.to_svg()
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")

    # -- PNG --------------------------------------------------------------------------------------

    def to_image(self) -> Image.Image:
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[:] = _rgb(CANVAS)
        pl = self.placement
        fill_alpha, ring_alpha, (bx0, by0) = _outline_masks(pl, self.width, self.height)
        h, w = fill_alpha.shape
        region = img[by0 : by0 + h, bx0 : bx0 + w]
        _blend(region, fill_alpha, WAFER_FILL)
        _fill_dies(img, self.dies, pl, self.die_color, self.lut)
        _blend(region, ring_alpha, OUTLINE)
        for p in self.primitives:
            if isinstance(p, _ColorBar):
                ramp = _colormap_lut()[np.rint(np.linspace(1.0, 0.0, p.y1 - p.y0) * (_LUT_SIZE - 1)).astype(np.intp)]
                img[p.y0 : p.y1, p.x0 : p.x1] = ramp[:, None, :]
        image = Image.fromarray(img, "RGB")
        draw = ImageDraw.Draw(image)
        for p in self.primitives:
            if isinstance(p, _Text):
                _draw_text(draw, p)
            elif isinstance(p, _Rect):
                draw.rectangle(
                    (round(p.x0), round(p.y0), round(p.x1) - 1, round(p.y1) - 1), fill=p.fill, outline=p.outline
                )
            elif isinstance(p, _Line):
                draw.line([(round(a), round(b)) for a, b in p.points], fill=p.fill, width=p.width)
            elif isinstance(p, _Polygon):
                draw.polygon(list(p.points), fill=p.fill)
        return image

    def to_png(self) -> bytes:
        buf = io.BytesIO()
        self.to_image().save(buf, format="PNG", compress_level=6)
        return buf.getvalue()

    # -- SVG --------------------------------------------------------------------------------------

    def to_svg(self) -> bytes:
        w, h = self.width, self.height
        pl = self.placement
        out: list[str] = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            'font-family="Aileron, Helvetica, Arial, sans-serif">\n',
            f"<title>{escape(self.title)}</title>\n",
        ]
        if self.description:
            out.append(f"<desc>{escape(self.description)}</desc>\n")
        out.append(f'<rect width="{w}" height="{h}" fill="{CANVAS}"/>\n')
        stroke = f'stroke="{OUTLINE}" stroke-width="1.5"'
        if pl.outline:
            pts = " ".join(f"{a:.2f},{b:.2f}" for a, b in pl.outline)
            out.append(f'<polygon class="wafer" points="{pts}" fill="{WAFER_FILL}" {stroke}/>\n')
        else:
            out.append(
                f'<circle class="wafer" cx="{pl.cx:.2f}" cy="{pl.cy:.2f}" r="{pl.radius:.2f}" '
                f'fill="{WAFER_FILL}" {stroke}/>\n'
            )
        out.append('<g class="dies" shape-rendering="crispEdges">\n')
        out.extend(_svg_die_paths(self.dies, pl, self.die_color, self.lut, self.colors))
        out.append("</g>\n")
        for p in self.primitives:
            out.append(_svg_primitive(p))
        out.append("</svg>\n")
        return "".join(out).encode("utf-8")


def _blend(region: NDArray[np.uint8], alpha: NDArray[np.float32], color: str) -> None:
    """In place: region = region·(1 − alpha) + color·alpha, touching only pixels with alpha > 0."""
    rgb = np.array(_rgb(color), dtype=np.float32)
    full = alpha >= 1.0
    region[full] = rgb.astype(np.uint8)
    part = (alpha > 0.0) & ~full
    if part.any():
        src = region[part].astype(np.float32)
        a = alpha[part][:, None]
        region[part] = np.rint(src + (rgb - src) * a).astype(np.uint8)


def _pixel_edges(pl: _Placement) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    return np.rint(pl.col_edges).astype(np.int64), np.rint(pl.row_edges).astype(np.int64)


def _fill_dies(
    img: NDArray[np.uint8], dies: _Dies, pl: _Placement, die_color: NDArray[np.intp], lut: NDArray[np.uint8]
) -> None:
    """Vectorised die fill: map every pixel of the die extent to its (column, row), then look up."""
    if dies.col.size == 0:
        return
    ce, re_ = _pixel_edges(pl)
    height, width = img.shape[:2]
    if dies.nc * dies.nr > _MAX_GRID_CELLS:
        # Dies are far below a pixel here: scatter each die to the pixel at its corner.
        px = np.clip(ce[dies.col], 0, width - 1)
        py = np.clip(re_[dies.row], 0, height - 1)
        img[py, px] = lut[die_color]
        return
    grid = np.full((dies.nr, dies.nc), -1, dtype=np.intp)
    grid[dies.row, dies.col] = die_color
    x0, x1 = max(int(ce[0]), 0), min(int(ce[-1]), width)
    y0, y1 = max(int(re_[0]), 0), min(int(re_[-1]), height)
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1)
    ys = np.arange(y0, y1)
    c_of = np.clip(np.searchsorted(ce, xs, side="right") - 1, 0, dies.nc - 1)
    r_of = np.clip(np.searchsorted(re_, ys, side="right") - 1, 0, dies.nr - 1)
    in_x = xs < ce[c_of + 1] - pl.gap
    in_y = ys < re_[r_of + 1] - pl.gap
    cell = grid[r_of[:, None], c_of[None, :]]
    mask = (cell >= 0) & in_y[:, None] & in_x[None, :]
    region = img[y0:y1, x0:x1]
    region[mask] = lut[cell[mask]]


_SUPERSAMPLE = 4


def _outline_masks(
    pl: _Placement, width: int, height: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
    """Anti-aliased coverage of the wafer interior and of its outline stroke, from 4× supersampling."""
    pad = 3
    bx0 = max(int(math.floor(pl.cx - pl.radius)) - pad, 0)
    by0 = max(int(math.floor(pl.cy - pl.radius)) - pad, 0)
    bx1 = min(int(math.ceil(pl.cx + pl.radius)) + pad + 1, width)
    by1 = min(int(math.ceil(pl.cy + pl.radius)) + pad + 1, height)
    w, h = bx1 - bx0, by1 - by0
    ss = _SUPERSAMPLE
    if pl.outline:
        pts = [((a - bx0) * ss, (b - by0) * ss) for a, b in pl.outline]
    else:
        n = max(180, int(pl.radius * 2))  # polygon fine enough to be a circle at 4× scale
        t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        pts = list(
            zip(
                ((pl.cx - bx0 + pl.radius * np.cos(t)) * ss).tolist(),
                ((pl.cy - by0 + pl.radius * np.sin(t)) * ss).tolist(),
                strict=True,
            )
        )
    fill = Image.new("L", (w * ss, h * ss), 0)
    ImageDraw.Draw(fill).polygon(pts, fill=255)
    ring = Image.new("L", (w * ss, h * ss), 0)
    ImageDraw.Draw(ring).line([*pts, pts[0]], fill=255, width=int(1.5 * ss), joint="curve")
    fa = np.asarray(fill.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
    ra = np.asarray(ring.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return fa, ra, (bx0, by0)


def _svg_die_paths(
    dies: _Dies, pl: _Placement, die_color: NDArray[np.intp], lut: NDArray[np.uint8], colors: Mapping[int, str]
) -> list[str]:
    """One <path> per colour; horizontal runs of same-colour dies merge when there is no gap."""
    if dies.col.size == 0:
        return []
    ce, re_ = pl.col_edges, pl.row_edges
    order = np.lexsort((dies.col, dies.row))
    col, row, colr = dies.col[order], dies.row[order], die_color[order]
    if pl.gap == 0:
        brk = np.ones(col.size, dtype=bool)
        brk[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1] + 1) | (colr[1:] != colr[:-1])
        starts = np.nonzero(brk)[0]
        ends = np.append(starts[1:], col.size) - 1
    else:
        starts = ends = np.arange(col.size)
    g = pl.gap
    xs = np.round(ce[col[starts]], 2)
    ws = np.round(ce[col[ends] + 1] - ce[col[starts]] - g, 2)
    ys = np.round(re_[row[starts]], 2)
    hs = np.round(re_[row[starts] + 1] - re_[row[starts]] - g, 2)
    run_color = colr[starts]
    bin_of_color = {}
    for b, hx in colors.items():
        bin_of_color.setdefault(hx, b)
    out = []
    for k in np.unique(run_color):
        sel = run_color == k
        d = "".join(
            f"M{x:g} {y:g}h{w_:g}v{h_:g}h{-w_:g}z"
            for x, y, w_, h_ in zip(xs[sel].tolist(), ys[sel].tolist(), ws[sel].tolist(), hs[sel].tolist(), strict=True)
        )
        hx = _hex(lut[k])
        attrs = f' data-bin="{bin_of_color[hx]}"' if hx in bin_of_color else ""
        out.append(f'<path fill="{hx}"{attrs} d="{d}"/>\n')
    return out


def _svg_primitive(p: _Primitive) -> str:
    if isinstance(p, _Text):
        h = {"l": "start", "m": "middle", "r": "end"}[p.anchor[0]]
        asc, desc = _metrics(p.size)
        v = p.anchor[1]
        base = p.y + (asc if v in "at" else (asc - desc) / 2 if v == "m" else -desc if v in "bd" else 0)
        weight = ' font-weight="bold"' if p.bold else ""
        return (
            f'<text x="{p.x:.1f}" y="{base:.1f}" font-size="{p.size}" fill="{p.fill}" text-anchor="{h}"{weight}>'
            f"{escape(p.text)}</text>\n"
        )
    if isinstance(p, _Rect):
        fill = p.fill or "none"
        stroke = f' stroke="{p.outline}"' if p.outline else ""
        return (
            f'<rect x="{p.x0:.1f}" y="{p.y0:.1f}" width="{p.x1 - p.x0:.1f}" height="{p.y1 - p.y0:.1f}" '
            f'fill="{fill}"{stroke}/>\n'
        )
    if isinstance(p, _Line):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in p.points)
        return f'<polyline points="{pts}" fill="none" stroke="{p.fill}" stroke-width="{p.width}"/>\n'
    if isinstance(p, _Polygon):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in p.points)
        return f'<polygon points="{pts}" fill="{p.fill}"/>\n'
    stops = "".join(
        f'<stop offset="{i / (len(_VIRIDIS_ANCHORS) - 1):.4f}" stop-color="{c}"/>'
        for i, c in enumerate(_VIRIDIS_ANCHORS)
    )
    return (
        f'<defs><linearGradient id="colorbar" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient></defs>\n'
        f'<rect class="colorbar" x="{p.x0}" y="{p.y0}" width="{p.x1 - p.x0}" height="{p.y1 - p.y0}" '
        'fill="url(#colorbar)"/>\n'
    )


# ---------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    scale: float
    margin: int
    header_bottom: int
    plot_box: tuple[int, int, int, int]
    panel: tuple[int, int, int, int]


def _sizes(scale: float) -> dict[str, int]:
    def s(v: float, floor: int) -> int:
        return max(floor, int(round(v * scale)))

    # Floors keep small images readable; the built-in font is legible from about 10 px.
    return {"title": s(20, 15), "subtitle": s(14, 12), "legend": s(13, 12), "small": s(12, 11), "tick": s(11, 10)}


def _frame(
    width: int, height: int, title: str, subtitle: Sequence[str], panel_frac: float, prims: list[_Primitive]
) -> _Frame:
    if width < 200 or height < 150:
        raise ValueError(f"image too small: {width}x{height} (minimum 200x150)")
    scale = max(0.55, min(width / 900.0, height / 700.0))
    sz = _sizes(scale)
    m = int(round(16 * scale))
    y = m
    prims.append(_Text(m, y, _fit(title, sz["title"], width - 2 * m - 4), sz["title"], TEXT, "la", bold=True))
    asc, desc = _metrics(sz["title"])
    y += asc + desc + int(round(4 * scale))
    for line in subtitle:
        prims.append(_Text(m, y, _fit(line, sz["subtitle"], width - 2 * m), sz["subtitle"], MUTED, "la"))
        a, d = _metrics(sz["subtitle"])
        y += a + d + int(round(3 * scale))
    header_bottom = y + int(round(10 * scale))
    rule_y = header_bottom - int(round(5 * scale))
    prims.append(_Line(((m, rule_y), (width - m, rule_y)), RULE))
    panel_w = int(round(width * panel_frac))
    panel = (width - m - panel_w, header_bottom + int(round(4 * scale)), width - m, height - m)
    axis_left = int(round(40 * scale))
    axis_bottom = int(round(34 * scale))
    rx0, ry0 = m + axis_left, header_bottom + int(round(6 * scale))
    rx1, ry1 = panel[0] - int(round(18 * scale)), height - m - axis_bottom
    side = max(min(rx1 - rx0, ry1 - ry0), 40)
    bx0 = rx0 + (rx1 - rx0 - side) // 2
    by0 = ry0 + (ry1 - ry0 - side) // 2
    return _Frame(scale, m, header_bottom, (bx0, by0, bx0 + side, by0 + side), panel)


def _tick_step(pixels_per_unit: float, min_pixels: float) -> int:
    """Smallest 1/2/5·10^k (or 25·10^k) integer step whose spacing is at least min_pixels."""
    if pixels_per_unit <= 0:
        return 1
    k = 0
    while True:
        for m in (1, 2, 2.5, 5):
            step = m * 10**k
            if step == int(step) and step * pixels_per_unit >= min_pixels:
                return int(step)
        k += 1


def _axes(dies: _Dies, pl: _Placement, frame: _Frame, prims: list[_Primitive]) -> None:
    """Die-coordinate ticks below and left of the wafer, and +X/+Y direction arrows."""
    if dies.col.size == 0:
        return
    sz = _sizes(frame.scale)["tick"]
    ce, re_ = _pixel_edges(pl)
    g = pl.gap
    bx0, by0, bx1, by1 = pl.box
    s = frame.scale
    tick_len = max(3, int(round(4 * s)))
    # X ticks
    wlab = max(_text_width(str(v), sz) for v in (dies.xmin, dies.xmax, -abs(dies.xmax)))
    step = _tick_step(float(pl.col_edges[1] - pl.col_edges[0]), wlab + 10 * s)
    first = math.ceil(dies.xmin / step) * step
    y_axis = by1 + int(round(3 * s))
    for v in range(first, dies.xmax + 1, step):
        c = (dies.xmax - v) if dies.flip_x else (v - dies.xmin)
        xc = (ce[c] + ce[c + 1] - g) / 2.0
        prims.append(_Line(((xc, y_axis), (xc, y_axis + tick_len)), MUTED))
        prims.append(_Text(xc, y_axis + tick_len + 2, str(v), sz, MUTED, "ma"))
    # Y ticks
    asc, desc = _metrics(sz)
    step = _tick_step(float(pl.row_edges[1] - pl.row_edges[0]), asc + desc + 8 * s)
    first = math.ceil(dies.ymin / step) * step
    x_axis = bx0 - int(round(3 * s))
    for v in range(first, dies.ymax + 1, step):
        r = (dies.ymax - v) if dies.flip_y else (v - dies.ymin)
        yc = (re_[r] + re_[r + 1] - g) / 2.0
        prims.append(_Line(((x_axis - tick_len, yc), (x_axis, yc)), MUTED))
        prims.append(_Text(x_axis - tick_len - 3, yc, str(v), sz, MUTED, "rm"))
    # Direction arrows in the free corner below-left of the wafer: +X and +Y as drawn.
    length = int(round(22 * s))
    head = max(3, int(round(5 * s)))
    x_dir = -1 if dies.flip_x else 1
    y_dir = -1 if dies.flip_y else 1  # screen y grows downwards
    label_room = _text_width("X", sz) + head + 4
    ox = frame.margin + (length + label_room if x_dir < 0 else 0)
    oy = by1 + int(round(8 * s)) + (length + head if y_dir < 0 else 0)
    ex, ey = ox + x_dir * length, oy + y_dir * length
    prims.append(_Line(((ox, oy), (ex, oy)), MUTED))
    prims.append(_Polygon(((ex + x_dir * head, oy), (ex, oy - head * 0.6), (ex, oy + head * 0.6)), MUTED))
    prims.append(_Line(((ox, oy), (ox, ey)), MUTED))
    prims.append(_Polygon(((ox, ey + y_dir * head), (ox - head * 0.6, ey), (ox + head * 0.6, ey)), MUTED))
    prims.append(_Text(ex + x_dir * (head + 3), oy, "X", sz, MUTED, "lm" if x_dir > 0 else "rm"))
    prims.append(_Text(ox, ey + y_dir * (head + 2), "Y", sz, MUTED, "ma" if y_dir > 0 else "ms"))


def _as_lines(subtitle: str | Sequence[str] | None) -> list[str]:
    if subtitle is None:
        return []
    if isinstance(subtitle, str):
        return [_clean(s) for s in subtitle.splitlines() if _clean(s)]
    return [_clean(s) for s in subtitle if _clean(s)]


# ---------------------------------------------------------------------------------------------------
# Bin map
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinDef:
    """A bin table entry (HBR/SBR): name and pass/fail (None = unknown)."""

    name: str = ""
    passed: bool | None = None


def _bin_def(v: Any) -> BinDef:
    if isinstance(v, BinDef):
        return v
    if isinstance(v, str):
        return BinDef(v, None)
    if isinstance(v, Mapping):
        return BinDef(str(v.get("name") or ""), _pf(v.get("passed", v.get("pf"))))
    if isinstance(v, Sequence) and len(v) == 2:
        return BinDef("" if v[0] is None else str(v[0]), _pf(v[1]))
    raise TypeError(f"bin table entries are BinDef, (name, pass) tuples, dicts or names; got {v!r}")


def _pf(v: Any) -> bool | None:
    """Pass flag from a bool or an STDF HBIN_PF/SBIN_PF character ('P', 'F', ' ' = unknown)."""
    if v is None or isinstance(v, bool):
        return v
    s = str(v).strip().upper()
    return True if s == "P" else False if s == "F" else None


def _shade(hex_color: str, f: float) -> str:
    """Darker (f < 1) or lighter (f > 1: mix towards white) variant of a colour."""
    rgb = np.array(_rgb(hex_color), dtype=np.float64)
    out = rgb * f if f < 1 else rgb + (255.0 - rgb) * (f - 1.0)
    return _hex(np.clip(np.rint(out), 0, 255))


# Extra colours used only when one map has more bins of a kind than its base palette holds.
_PASS_EXTENDED = PASS_COLORS + tuple(_shade(c, 0.65) for c in PASS_COLORS)
_FAIL_EXTENDED = FAIL_COLORS + tuple(_shade(c, 0.6) for c in FAIL_COLORS) + tuple(_shade(c, 1.45) for c in FAIL_COLORS)


def _assign_colors(bins: Sequence[int], defs: Mapping[int, BinDef]) -> dict[int, str]:
    """Base colour per bin; when two bins of one map share a base colour, the less frequent one moves
    to the next free colour of its (extended) palette. Bins come most frequent first, so the result
    depends only on the bins present and their counts."""
    used: set[str] = set()
    out: dict[int, str] = {}
    for b in bins:
        passed = defs[b].passed
        palette = _PASS_EXTENDED if passed else _FAIL_EXTENDED
        base = bin_color(b, passed)
        color = base
        if color in used:
            start = palette.index(base)
            for k in range(1, len(palette)):
                cand = palette[(start + k) % len(palette)]
                if cand not in used:
                    color = cand
                    break
        used.add(color)
        out[b] = color
    return out


def bin_map(
    x: ArrayLike,
    y: ArrayLike,
    bins: ArrayLike,
    bin_table: Mapping[int, Any] | None = None,
    *,
    title: str = "Wafer map",
    subtitle: str | Sequence[str] | None = None,
    legend_title: str = "Bins",
    pos_x: str | None = "R",
    pos_y: str | None = "U",
    flat: str | None = None,
    flat_kind: Literal["flat", "notch"] = "flat",
    die_aspect: float = 1.0,
    width: int = 900,
    height: int = 700,
) -> WaferMap:
    """Plan a categorical bin map. ``bin_table`` maps bin number → :class:`BinDef`, ``(name, pass)``
    (pass as bool or 'P'/'F') or a name."""
    b_all = np.asarray(bins).ravel()
    if b_all.shape != np.shape(np.asarray(x).ravel()):
        raise ValueError("bins must have one entry per die")
    if not (die_aspect > 0 and math.isfinite(die_aspect)):
        raise ValueError("die_aspect must be positive")
    dies = _prepare_dies(x, y, pos_x, pos_y)
    b = b_all[dies.src].astype(np.int64)
    uniq, inv, counts = np.unique(b, return_inverse=True, return_counts=True)
    defs: dict[int, BinDef] = {int(k): _bin_def(v) for k, v in (bin_table or {}).items()}
    for k in uniq.tolist():
        defs.setdefault(int(k), BinDef("", None))
    by_count = sorted(zip(uniq.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    colors = _assign_colors([k for k, _ in by_count], defs)
    lut = np.array([_rgb(colors[int(k)]) for k in uniq.tolist()], dtype=np.uint8).reshape(-1, 3)

    prims: list[_Primitive] = []
    title_c = _clean(title) or "Wafer map"
    lines = _as_lines(subtitle)
    frame = _frame(width, height, title_c, lines, 0.33, prims)
    pl = _place(dies, frame.plot_box, die_aspect, flat, flat_kind)
    _axes(dies, pl, frame, prims)
    total = int(b.size)
    legend = [
        {
            "bin": k,
            "name": _clean(defs[k].name),
            "passed": defs[k].passed,
            "count": n,
            "percent": 100.0 * n / total,
            "color": colors[k],
        }
        for k, n in by_count
    ]
    _bin_legend(legend, _clean(legend_title), total, frame, prims)
    if total == 0:
        prims.append(_Text(pl.cx, pl.cy, "No dies", _sizes(frame.scale)["subtitle"], MUTED, "mm"))
    return WaferMap(
        width=width,
        height=height,
        title=title_c,
        description=" | ".join(lines),
        dies=dies,
        placement=pl,
        die_color=inv.ravel().astype(np.intp),
        lut=lut,
        primitives=prims,
        colors=colors,
        legend=legend,
    )


def _bin_legend(rows: list[dict[str, Any]], title: str, total: int, frame: _Frame, prims: list[_Primitive]) -> None:
    px0, py0, px1, py1 = frame.panel
    s = frame.scale
    sz = _sizes(s)
    fs = sz["legend"]
    small = sz["small"]
    asc, desc = _metrics(fs)
    row_h = max(asc + desc + int(round(6 * s)), int(round(19 * s)))
    y = py0
    prims.append(_Text(px0, y, title, sz["subtitle"], TEXT, "la"))
    a, d = _metrics(sz["subtitle"])
    y += a + d + int(round(8 * s))

    # Columns: swatch | bin | P/F | name | count | %
    sw = max(8, int(round(12 * s)))
    pad = max(4, int(round(7 * s)))
    bin_w = max([_text_width("Bin", small)] + [_text_width(str(r["bin"]), fs) for r in rows])
    pf_w = max(_text_width("P/F", small), _text_width("F", fs))
    count_w = max([_text_width("Count", small)] + [_text_width(_fmt_count(r["count"]), fs) for r in rows])
    pct_w = max(_text_width("100.0%", fs), _text_width("%", small))
    x_sw = px0
    x_bin_r = x_sw + sw + pad + bin_w
    x_pf = x_bin_r + pad + pf_w / 2
    x_name = x_bin_r + 2 * pad + pf_w
    x_pct_r = px1
    x_count_r = x_pct_r - pct_w - pad
    name_w = x_count_r - count_w - pad - x_name

    header_y = y + row_h / 2
    prims.append(_Text(x_bin_r, header_y, "Bin", small, MUTED, "rm"))
    prims.append(_Text(x_pf, header_y, "P/F", small, MUTED, "mm"))
    if name_w > 20:
        prims.append(_Text(x_name, header_y, "Name", small, MUTED, "lm"))
    prims.append(_Text(x_count_r, header_y, "Count", small, MUTED, "rm"))
    prims.append(_Text(x_pct_r, header_y, "%", small, MUTED, "rm"))
    y += row_h
    prims.append(_Line(((px0, y), (px1, y)), RULE))
    y += int(round(3 * s))

    footer_rows = 3
    avail = py1 - y - footer_rows * row_h - int(round(10 * s))
    max_rows = max(1, avail // row_h)
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    for r in shown:
        yc = y + row_h / 2
        prims.append(_Rect(x_sw, yc - sw / 2, x_sw + sw, yc + sw / 2, r["color"], "#6b7280"))
        prims.append(_Text(x_bin_r, yc, str(r["bin"]), fs, TEXT, "rm"))
        pf = "P" if r["passed"] else "F" if r["passed"] is False else "-"
        pf_color = "#1a7f37" if r["passed"] else "#b42318" if r["passed"] is False else MUTED
        prims.append(_Text(x_pf, yc, pf, fs, pf_color, "mm"))
        if name_w > 20 and r["name"]:
            prims.append(_Text(x_name, yc, _fit(r["name"], fs, name_w), fs, TEXT, "lm"))
        prims.append(_Text(x_count_r, yc, _fmt_count(r["count"]), fs, TEXT, "rm"))
        prims.append(_Text(x_pct_r, yc, _fmt_pct(r["percent"]), fs, TEXT, "rm"))
        y += row_h
    if len(shown) < len(rows):
        rest = rows[len(shown) :]
        n_rest = sum(r["count"] for r in rest)
        yc = y + row_h / 2
        prims.append(_Text(x_name, yc, f"+{len(rest)} more bins", fs, MUTED, "lm"))
        prims.append(_Text(x_count_r, yc, _fmt_count(n_rest), fs, MUTED, "rm"))
        prims.append(_Text(x_pct_r, yc, _fmt_pct(100.0 * n_rest / max(total, 1)), fs, MUTED, "rm"))
        y += row_h

    y += int(round(4 * s))
    prims.append(_Line(((px0, y), (px1, y)), RULE))
    y += int(round(3 * s))
    known = all(r["passed"] is not None for r in rows)
    n_pass = sum(r["count"] for r in rows if r["passed"])
    footer = [("Total dies", _fmt_count(total), "")]
    if known and total:
        footer.append(("Pass", _fmt_count(n_pass), _fmt_pct(100.0 * n_pass / total)))
        footer.append(("Fail", _fmt_count(total - n_pass), _fmt_pct(100.0 * (total - n_pass) / total)))
    elif total:
        footer.append(("Yield", "n/a", ""))
    for label, count, pct in footer:
        yc = y + row_h / 2
        prims.append(_Text(x_sw, yc, label, fs, TEXT, "lm"))
        prims.append(_Text(x_count_r, yc, count, fs, TEXT, "rm"))
        if pct:
            prims.append(_Text(x_pct_r, yc, pct, fs, TEXT, "rm"))
        y += row_h


def render_bin_map(
    x: ArrayLike,
    y: ArrayLike,
    bins: ArrayLike,
    bin_table: Mapping[int, Any] | None = None,
    *,
    fmt: Fmt = "png",
    **options: Any,
) -> bytes:
    """Render a bin map to PNG or SVG bytes. Options as for :func:`bin_map`."""
    return bin_map(x, y, bins, bin_table, **options).render(fmt)


# ---------------------------------------------------------------------------------------------------
# Value (parametric) map
# ---------------------------------------------------------------------------------------------------

_SI_PREFIXES = {-15: "f", -12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}


@dataclass(frozen=True)
class _ValueFormat:
    factor: float
    unit: str
    decimals: int

    def __call__(self, v: float, extra: int = 0) -> str:
        if not math.isfinite(v):
            return "n/a"
        s = f"{v / self.factor:.{self.decimals + extra}f}"
        if s.startswith("-") and float(s) == 0.0:
            s = s[1:]
        return f"{s} {self.unit}".rstrip()


def _value_format(vmin: float, vmax: float, step: float, units: str) -> _ValueFormat:
    mag = max(abs(vmin), abs(vmax))
    units = units.strip()
    factor, unit = 1.0, units
    if units and mag > 0 and not (1e-2 <= mag < 1e4) and len(units) <= 4:
        e3 = int(math.floor(math.log10(mag) / 3.0) * 3)
        e3 = min(max(e3, -15), 12)
        factor, unit = 10.0**e3, _SI_PREFIXES[e3] + units
    elif not units and mag > 0 and not (1e-3 <= mag < 1e6):
        e = int(math.floor(math.log10(mag)))
        factor, unit = 10.0**e, f"x1e{e}"
    scaled_step = step / factor if step > 0 else 1.0
    decimals = 0
    while decimals < 9 and abs(scaled_step * 10**decimals - round(scaled_step * 10**decimals)) > 1e-6:
        decimals += 1  # enough digits to print every tick exactly (0.25 needs 2)
    return _ValueFormat(factor, unit, decimals)


def _nice_step(span: float, target: int = 5) -> float:
    if not (span > 0 and math.isfinite(span)):
        return 0.0
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw:
            return m * mag
    return 10.0 * mag


def value_map(
    x: ArrayLike,
    y: ArrayLike,
    values: ArrayLike,
    *,
    title: str = "Wafer map",
    subtitle: str | Sequence[str] | None = None,
    label: str = "Value",
    units: str = "",
    lo: float | None = None,
    hi: float | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool | tuple[float, float] = False,
    pos_x: str | None = "R",
    pos_y: str | None = "U",
    flat: str | None = None,
    flat_kind: Literal["flat", "notch"] = "flat",
    die_aspect: float = 1.0,
    width: int = 900,
    height: int = 700,
) -> WaferMap:
    """Plan a parametric heat map.

    NaN values are drawn grey. The colour range is [vmin, vmax] when given, else the data range, or
    the 1st–99th percentile with ``robust=True`` (or the ``(lo_pct, hi_pct)`` given); values outside it
    take the end colours. With ``lo``/``hi`` limits, dies below/above them get their own colours and
    the colour bar marks the limits.
    """
    v_all = np.asarray(values, dtype=np.float64).ravel()
    if v_all.shape != np.shape(np.asarray(x).ravel()):
        raise ValueError("values must have one entry per die")
    dies = _prepare_dies(x, y, pos_x, pos_y)
    v = v_all[dies.src]
    finite = np.isfinite(v)
    vals = v[finite]
    lo_f = float(lo) if lo is not None and math.isfinite(float(lo)) else None
    hi_f = float(hi) if hi is not None and math.isfinite(float(hi)) else None

    if robust:
        pct = (1.0, 99.0) if robust is True else (float(robust[0]), float(robust[1]))
        dmin, dmax = np.percentile(vals, pct).tolist() if vals.size else (math.nan, math.nan)
    else:
        dmin, dmax = (float(vals.min()), float(vals.max())) if vals.size else (math.nan, math.nan)
    cmin = float(vmin) if vmin is not None else dmin
    cmax = float(vmax) if vmax is not None else dmax
    if not (math.isfinite(cmin) and math.isfinite(cmax)):
        cmin, cmax = 0.0, 1.0
    if cmax < cmin:
        cmin, cmax = cmax, cmin
    if cmax == cmin:
        half = abs(cmin) * 0.01 or 0.5
        cmin, cmax = cmin - half, cmax + half

    # Colour index per die: 0..255 ramp, 256 = no value, 257 = below LO, 258 = above HI.
    lut = np.vstack([_colormap_lut(), [_rgb(NO_VALUE), _rgb(BELOW_LO), _rgb(ABOVE_HI)]]).astype(np.uint8)
    t = np.clip((np.where(finite, v, cmin) - cmin) / (cmax - cmin), 0.0, 1.0)
    idx = np.rint(t * (_LUT_SIZE - 1)).astype(np.intp)
    idx[~finite] = _LUT_SIZE
    n_below = n_above = 0
    if lo_f is not None:
        below = finite & (v < lo_f)
        idx[below] = _LUT_SIZE + 1
        n_below = int(below.sum())
    if hi_f is not None:
        above = finite & (v > hi_f)
        idx[above] = _LUT_SIZE + 2
        n_above = int(above.sum())

    prims: list[_Primitive] = []
    title_c = _clean(title) or "Wafer map"
    lines = _as_lines(subtitle)
    frame = _frame(width, height, title_c, lines, 0.24, prims)
    pl = _place(dies, frame.plot_box, die_aspect, flat, flat_kind)
    _axes(dies, pl, frame, prims)
    step = _nice_step(cmax - cmin)
    fmt_v = _value_format(cmin, cmax, step, _clean(units))
    stats = {
        "dies": int(v.size),
        "no_value": int((~finite).sum()),
        "min": float(vals.min()) if vals.size else math.nan,
        "max": float(vals.max()) if vals.size else math.nan,
        "mean": float(vals.mean()) if vals.size else math.nan,
        "sd": float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
        "below": n_below,
        "above": n_above,
    }
    _color_bar(_clean(label), fmt_v, cmin, cmax, step, lo_f, hi_f, stats, bool(robust), robust, frame, prims)
    if v.size == 0:
        prims.append(_Text(pl.cx, pl.cy, "No dies", _sizes(frame.scale)["subtitle"], MUTED, "mm"))
    legend = [{"vmin": cmin, "vmax": cmax, **stats}]
    return WaferMap(
        width=width,
        height=height,
        title=title_c,
        description=" | ".join(lines),
        dies=dies,
        placement=pl,
        die_color=idx,
        lut=lut,
        primitives=prims,
        legend=legend,
    )


def _color_bar(
    label: str,
    fmt_v: _ValueFormat,
    cmin: float,
    cmax: float,
    step: float,
    lo: float | None,
    hi: float | None,
    stats: dict[str, Any],
    robust_on: bool,
    robust: bool | tuple[float, float],
    frame: _Frame,
    prims: list[_Primitive],
) -> None:
    px0, py0, px1, py1 = frame.panel
    s = frame.scale
    sz = _sizes(s)
    fs, small = sz["legend"], sz["small"]
    asc, desc = _metrics(fs)
    line_h = asc + desc + int(round(6 * s))
    y = py0
    caption = label + (f" [{fmt_v.unit}]" if fmt_v.unit else "")
    prims.append(_Text(px0, y, _fit(caption, sz["subtitle"], px1 - px0), sz["subtitle"], TEXT, "la"))
    a, d = _metrics(sz["subtitle"])
    y += a + d + int(round(12 * s))

    bar_w = max(10, int(round(22 * s)))
    bar_x0 = px0 + int(round(4 * s))
    bar_y0 = int(y)
    bar_h = max(60, int(round((py1 - py0) * 0.46)))
    bar_y1 = bar_y0 + bar_h
    prims.append(_ColorBar(bar_x0, bar_y0, bar_x0 + bar_w, bar_y1))
    prims.append(_Rect(bar_x0 - 1, bar_y0 - 1, bar_x0 + bar_w + 1, bar_y1 + 1, None, OUTLINE))

    def ypos(v: float) -> float:
        return bar_y1 - (v - cmin) / (cmax - cmin) * bar_h

    tick_x = bar_x0 + bar_w + 1
    tl = max(3, int(round(5 * s)))
    min_gap = asc + desc + 2
    ends = [(cmax, bar_y0), (cmin, bar_y1)]
    for v, yy in ends:
        prims.append(_Line(((tick_x, yy), (tick_x + tl, yy)), OUTLINE))
        prims.append(_Text(tick_x + tl + 4, yy, fmt_v(v, 1), fs, TEXT, "lm"))
    if step > 0:
        k0 = math.ceil(cmin / step - 1e-9)
        k1 = math.floor(cmax / step + 1e-9)
        for k in range(k0, k1 + 1):
            v = k * step
            yy = ypos(v)
            if abs(yy - bar_y0) < min_gap or abs(yy - bar_y1) < min_gap:
                continue
            prims.append(_Line(((tick_x, yy), (tick_x + tl, yy)), OUTLINE))
            prims.append(_Text(tick_x + tl + 4, yy, fmt_v(v), small, MUTED, "lm"))
    # Limits inside the colour range: a line across the bar in the limit's colour.
    for lim, color in ((lo, BELOW_LO), (hi, ABOVE_HI)):
        if lim is not None and cmin <= lim <= cmax:
            yy = ypos(lim)
            prims.append(_Line(((bar_x0 - tl, yy), (bar_x0 + bar_w, yy)), color, 2))
    y = bar_y1 + int(round(16 * s))

    def row(label: str, value: str, swatch: str | None = None) -> None:
        nonlocal y
        yc = y + line_h / 2
        x_text = px0
        if swatch:
            sw = max(8, int(round(12 * s)))
            prims.append(_Rect(px0, yc - sw / 2, px0 + sw, yc + sw / 2, swatch, OUTLINE))
            x_text = px0 + sw + int(round(6 * s))
        prims.append(_Text(x_text, yc, label, fs, TEXT, "lm"))
        prims.append(_Text(px1, yc, value, fs, TEXT, "rm"))
        y += line_h

    n = stats["dies"]
    row("Dies", _fmt_count(n))
    row("No value", _fmt_count(stats["no_value"]), NO_VALUE)
    if lo is not None:
        row(f"< LO {fmt_v(lo, 1)}", _fmt_count(stats["below"]), BELOW_LO)
    if hi is not None:
        row(f"> HI {fmt_v(hi, 1)}", _fmt_count(stats["above"]), ABOVE_HI)
    y += int(round(4 * s))
    prims.append(_Line(((px0, y), (px1, y)), RULE))
    y += int(round(4 * s))
    row("Min", fmt_v(stats["min"], 1))
    row("Max", fmt_v(stats["max"], 1))
    row("Mean", fmt_v(stats["mean"], 1))
    row("SD", fmt_v(stats["sd"], 1))
    if robust_on:
        lo_p, hi_p = (1.0, 99.0) if robust is True else robust  # type: ignore[misc]
        y += int(round(4 * s))
        prims.append(_Text(px0, y, f"Colour range: P{lo_p:g} to P{hi_p:g}", small, MUTED, "la"))


def render_value_map(
    x: ArrayLike,
    y: ArrayLike,
    values: ArrayLike,
    *,
    fmt: Fmt = "png",
    **options: Any,
) -> bytes:
    """Render a parametric heat map to PNG or SVG bytes. Options as for :func:`value_map`."""
    return value_map(x, y, values, **options).render(fmt)
