"""Layout: the title block, the plot box and side panel of a figure, and the die-coordinate axes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from stratum.render.geometry import Dies, Placement, pixel_edges
from stratum.render.palette import MUTED, RULE, TEXT
from stratum.render.primitives import Line, Polygon, Primitive, Text
from stratum.render.text import clean_text, fit_text, font_metrics, text_width


@dataclass(frozen=True)
class Frame:
    scale: float
    margin: int
    header_bottom: int
    plot_box: tuple[int, int, int, int]
    panel: tuple[int, int, int, int]


def font_sizes(scale: float) -> dict[str, int]:
    def s(v: float, floor: int) -> int:
        return max(floor, int(round(v * scale)))

    # Floors keep small images readable; the built-in font is legible from about 10 px.
    return {"title": s(20, 15), "subtitle": s(14, 12), "legend": s(13, 12), "small": s(12, 11), "tick": s(11, 10)}


def plan_frame(
    width: int, height: int, title: str, subtitle: Sequence[str], panel_frac: float, prims: list[Primitive]
) -> Frame:
    if width < 200 or height < 150:
        raise ValueError(f"image too small: {width}x{height} (minimum 200x150)")
    scale = max(0.55, min(width / 900.0, height / 700.0))
    sz = font_sizes(scale)
    m = int(round(16 * scale))
    y = m
    prims.append(Text(m, y, fit_text(title, sz["title"], width - 2 * m - 4), sz["title"], TEXT, "la", bold=True))
    asc, desc = font_metrics(sz["title"])
    y += asc + desc + int(round(4 * scale))
    for line in subtitle:
        prims.append(Text(m, y, fit_text(line, sz["subtitle"], width - 2 * m), sz["subtitle"], MUTED, "la"))
        a, d = font_metrics(sz["subtitle"])
        y += a + d + int(round(3 * scale))
    header_bottom = y + int(round(10 * scale))
    rule_y = header_bottom - int(round(5 * scale))
    prims.append(Line(((m, rule_y), (width - m, rule_y)), RULE))
    panel_w = int(round(width * panel_frac))
    panel = (width - m - panel_w, header_bottom + int(round(4 * scale)), width - m, height - m)
    axis_left = int(round(40 * scale))
    axis_bottom = int(round(34 * scale))
    rx0, ry0 = m + axis_left, header_bottom + int(round(6 * scale))
    rx1, ry1 = panel[0] - int(round(18 * scale)), height - m - axis_bottom
    side = max(min(rx1 - rx0, ry1 - ry0), 40)
    bx0 = rx0 + (rx1 - rx0 - side) // 2
    by0 = ry0 + (ry1 - ry0 - side) // 2
    return Frame(scale, m, header_bottom, (bx0, by0, bx0 + side, by0 + side), panel)


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


def draw_axes(dies: Dies, pl: Placement, frame: Frame, prims: list[Primitive]) -> None:
    """Die-coordinate ticks below and left of the wafer, and +X/+Y direction arrows."""
    if dies.col.size == 0:
        return
    sz = font_sizes(frame.scale)["tick"]
    ce, re_ = pixel_edges(pl)
    g = pl.gap
    bx0, by0, bx1, by1 = pl.box
    s = frame.scale
    tick_len = max(3, int(round(4 * s)))
    # X ticks
    wlab = max(text_width(str(v), sz) for v in (dies.xmin, dies.xmax, -abs(dies.xmax)))
    step = _tick_step(float(pl.col_edges[1] - pl.col_edges[0]), wlab + 10 * s)
    first = math.ceil(dies.xmin / step) * step
    y_axis = by1 + int(round(3 * s))
    for v in range(first, dies.xmax + 1, step):
        c = (dies.xmax - v) if dies.flip_x else (v - dies.xmin)
        xc = (ce[c] + ce[c + 1] - g) / 2.0
        prims.append(Line(((xc, y_axis), (xc, y_axis + tick_len)), MUTED))
        prims.append(Text(xc, y_axis + tick_len + 2, str(v), sz, MUTED, "ma"))
    # Y ticks
    asc, desc = font_metrics(sz)
    step = _tick_step(float(pl.row_edges[1] - pl.row_edges[0]), asc + desc + 8 * s)
    first = math.ceil(dies.ymin / step) * step
    x_axis = bx0 - int(round(3 * s))
    for v in range(first, dies.ymax + 1, step):
        r = (dies.ymax - v) if dies.flip_y else (v - dies.ymin)
        yc = (re_[r] + re_[r + 1] - g) / 2.0
        prims.append(Line(((x_axis - tick_len, yc), (x_axis, yc)), MUTED))
        prims.append(Text(x_axis - tick_len - 3, yc, str(v), sz, MUTED, "rm"))
    # Direction arrows in the free corner below-left of the wafer: +X and +Y as drawn.
    length = int(round(22 * s))
    head = max(3, int(round(5 * s)))
    x_dir = -1 if dies.flip_x else 1
    y_dir = -1 if dies.flip_y else 1  # screen y grows downwards
    label_room = text_width("X", sz) + head + 4
    ox = frame.margin + (length + label_room if x_dir < 0 else 0)
    oy = by1 + int(round(8 * s)) + (length + head if y_dir < 0 else 0)
    ex, ey = ox + x_dir * length, oy + y_dir * length
    prims.append(Line(((ox, oy), (ex, oy)), MUTED))
    prims.append(Polygon(((ex + x_dir * head, oy), (ex, oy - head * 0.6), (ex, oy + head * 0.6)), MUTED))
    prims.append(Line(((ox, oy), (ox, ey)), MUTED))
    prims.append(Polygon(((ox, ey + y_dir * head), (ox - head * 0.6, ey), (ox + head * 0.6, ey)), MUTED))
    prims.append(Text(ex + x_dir * (head + 3), oy, "X", sz, MUTED, "lm" if x_dir > 0 else "rm"))
    prims.append(Text(ox, ey + y_dir * (head + 2), "Y", sz, MUTED, "ma" if y_dir > 0 else "ms"))


def as_lines(subtitle: str | Sequence[str] | None) -> list[str]:
    if subtitle is None:
        return []
    if isinstance(subtitle, str):
        return [clean_text(s) for s in subtitle.splitlines() if clean_text(s)]
    return [clean_text(s) for s in subtitle if clean_text(s)]
