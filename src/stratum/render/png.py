"""The PNG rasteriser: dies filled with one vectorised pixel-to-die lookup, an anti-aliased wafer outline from
supersampling, Pillow for the text."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from stratum.render.geometry import MAX_GRID_CELLS, Dies, Placement, pixel_edges
from stratum.render.palette import CANVAS, LUT_SIZE, OUTLINE, WAFER_FILL, colormap_lut, hex_to_rgb
from stratum.render.primitives import ColorBar, Line, Polygon, Primitive, Rect, Text
from stratum.render.text import load_font, png_text, text_width, word_gap


def rasterise(
    width: int,
    height: int,
    dies: Dies,
    placement: Placement,
    die_color: NDArray[np.intp],
    lut: NDArray[np.uint8],
    primitives: list[Primitive],
) -> Image.Image:
    """Draw a planned figure: numpy for the wafer, the dies and the colour bar; Pillow for lines and text."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = hex_to_rgb(CANVAS)
    pl = placement
    fill_alpha, ring_alpha, (bx0, by0) = _outline_masks(pl, width, height)
    h, w = fill_alpha.shape
    region = img[by0 : by0 + h, bx0 : bx0 + w]
    _blend(region, fill_alpha, WAFER_FILL)
    _fill_dies(img, dies, pl, die_color, lut)
    _blend(region, ring_alpha, OUTLINE)
    for p in primitives:
        if isinstance(p, ColorBar):
            ramp = colormap_lut()[np.rint(np.linspace(1.0, 0.0, p.y1 - p.y0) * (LUT_SIZE - 1)).astype(np.intp)]
            img[p.y0 : p.y1, p.x0 : p.x1] = ramp[:, None, :]
    image = Image.fromarray(img, "RGB")
    draw_primitives(image, primitives)
    return image


def draw_primitives(image: Image.Image, primitives: list[Primitive]) -> None:
    """Text, rectangles, lines and polygons onto ``image`` with Pillow (colour bars are drawn by the caller)."""
    draw = ImageDraw.Draw(image)
    for p in primitives:
        if isinstance(p, Text):
            draw_text(draw, p)
        elif isinstance(p, Rect):
            draw.rectangle((round(p.x0), round(p.y0), round(p.x1) - 1, round(p.y1) - 1), fill=p.fill, outline=p.outline)
        elif isinstance(p, Line):
            draw.line([(round(a), round(b)) for a, b in p.points], fill=p.fill, width=p.width)
        elif isinstance(p, Polygon):
            draw.polygon(list(p.points), fill=p.fill)


def draw_text(draw: ImageDraw.ImageDraw, p: Text) -> None:
    font = load_font(p.size)
    t = png_text(p.text)
    kw: dict[str, Any] = {"fill": p.fill, "font": font}
    if p.bold:
        kw.update(stroke_width=round(p.size / 50, 2), stroke_fill=p.fill)
    if " " not in t:
        draw.text((p.x, p.y), t, anchor=p.anchor, **kw)
        return
    total = text_width(t, p.size)
    x = p.x - {"l": 0.0, "m": total / 2, "r": total}[p.anchor[0]]
    advance = float(font.getlength(" ")) + word_gap(p.size)
    for word in t.split(" "):
        if word:
            draw.text((x, p.y), word, anchor="l" + p.anchor[1], **kw)
        x += float(font.getlength(word)) + advance


def _blend(region: NDArray[np.uint8], alpha: NDArray[np.float32], color: str) -> None:
    """In place: region = region·(1 − alpha) + color·alpha, touching only pixels with alpha > 0."""
    rgb = np.array(hex_to_rgb(color), dtype=np.float32)
    full = alpha >= 1.0
    region[full] = rgb.astype(np.uint8)
    part = (alpha > 0.0) & ~full
    if part.any():
        src = region[part].astype(np.float32)
        a = alpha[part][:, None]
        region[part] = np.rint(src + (rgb - src) * a).astype(np.uint8)


def _fill_dies(
    img: NDArray[np.uint8], dies: Dies, pl: Placement, die_color: NDArray[np.intp], lut: NDArray[np.uint8]
) -> None:
    """Vectorised die fill: map every pixel of the die extent to its (column, row), then look up."""
    if dies.col.size == 0:
        return
    ce, re_ = pixel_edges(pl)
    height, width = img.shape[:2]
    if dies.nc * dies.nr > MAX_GRID_CELLS:
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
    pl: Placement, width: int, height: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
    """Anti-aliased coverage of the wafer interior and of its outline stroke, from 4× supersampling; the same
    geometry (every map of a lot, every call) is drawn once (read-only arrays)."""
    return _outline_masks_of(pl.cx, pl.cy, pl.radius, pl.outline, width, height)


@lru_cache(maxsize=64)
def _outline_masks_of(
    cx: float, cy: float, radius: float, outline: tuple[tuple[float, float], ...], width: int, height: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
    fa, ra, origin = _draw_outline_masks(cx, cy, radius, outline, width, height)
    fa.flags.writeable = False
    ra.flags.writeable = False
    return fa, ra, origin


def _draw_outline_masks(
    cx: float, cy: float, radius: float, outline: tuple[tuple[float, float], ...], width: int, height: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
    pl = _Circle(cx, cy, radius, outline)
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


class _Circle:
    """The few Placement fields the outline depends on."""

    def __init__(self, cx: float, cy: float, radius: float, outline: tuple[tuple[float, float], ...]) -> None:
        self.cx, self.cy, self.radius, self.outline = cx, cy, radius, outline
