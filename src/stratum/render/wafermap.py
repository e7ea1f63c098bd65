"""Wafer maps as PNG (Pillow) or SVG (hand-written XML): categorical bin maps and parametric heat maps.

This module plans the figures; the pieces live beside it: :mod:`.palette` (colours), :mod:`.text` (font
metrics), :mod:`.geometry` (die grid, wafer outline), :mod:`.layout` (title block, axes), :mod:`.legend` (bin
legend, colour bar), :mod:`.png` (rasteriser) and :mod:`.svg` (writer).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from stratum.render.geometry import Dies, Placement, pixel_edges, place_dies, prepare_dies
from stratum.render.layout import as_lines, draw_axes, font_sizes, plan_frame
from stratum.render.legend import add_bin_legend, add_color_bar, nice_step, value_format
from stratum.render.palette import (
    ABOVE_HI,
    BELOW_LO,
    FAIL_COLORS,
    FAIL_EXTENDED,
    LUT_SIZE,
    MUTED,
    NO_VALUE,
    PASS_COLORS,
    PASS_EXTENDED,
    bin_color,
    colormap,
    colormap_lut,
    hex_to_rgb,
)
from stratum.render.png import rasterise
from stratum.render.primitives import ColorBar, Primitive, Text
from stratum.render.svg import write_svg
from stratum.render.text import clean_text

PNG_COMPRESS_LEVEL = 1  # zlib level of map PNGs

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


@dataclass(eq=False)
class WaferMap:
    """A planned wafer map figure; draw it with :meth:`to_png` / :meth:`to_svg`.

    ``colors`` maps each bin number to its colour (bin maps); ``legend`` lists the legend rows.
    """

    width: int
    height: int
    title: str
    description: str
    dies: Dies
    placement: Placement
    die_color: NDArray[np.intp]  # per die, index into lut
    lut: NDArray[np.uint8]  # (K, 3)
    primitives: list[Primitive] = field(default_factory=list)
    colors: dict[int, str] = field(default_factory=dict)
    legend: list[dict[str, Any]] = field(default_factory=list)

    # -- geometry ---------------------------------------------------------------------------------

    @property
    def colorbar_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the colour bar ramp (heat maps), top = maximum."""
        for p in self.primitives:
            if isinstance(p, ColorBar):
                return p.x0, p.y0, p.x1, p.y1
        return None

    def die_center(self, x: int, y: int) -> tuple[float, float]:
        """Pixel centre of the die at raw coordinates (x, y) in the PNG (the SVG is within half a pixel)."""
        d = self.dies
        c = (d.xmax - x) if d.flip_x else (x - d.xmin)
        r = (d.ymax - y) if d.flip_y else (y - d.ymin)
        if not (0 <= c < d.nc and 0 <= r < d.nr):
            raise KeyError(f"die ({x}, {y}) is outside the map")
        ce, re_ = pixel_edges(self.placement)
        g = self.placement.gap
        return (ce[c] + ce[c + 1] - g) / 2.0, (re_[r] + re_[r + 1] - g) / 2.0

    def render(self, fmt: Fmt = "png") -> bytes:
        if fmt == "png":
            return self.to_png()
        if fmt == "svg":
            return self.to_svg()
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")

    # -- drawing --------------------------------------------------------------------------------

    def to_image(self) -> Image.Image:
        return rasterise(self.width, self.height, self.dies, self.placement, self.die_color, self.lut, self.primitives)

    def to_png(self) -> bytes:
        buf = io.BytesIO()
        # level 1: a map encodes ~4x faster than at 6 for a few % more bytes (flat colours compress well anyway)
        self.to_image().save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return buf.getvalue()

    def to_svg(self) -> bytes:
        return write_svg(
            self.width,
            self.height,
            self.title,
            self.description,
            self.dies,
            self.placement,
            self.die_color,
            self.lut,
            self.primitives,
            self.colors,
        )


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


def _assign_colors(bins: Sequence[int], defs: Mapping[int, BinDef]) -> dict[int, str]:
    """Base colour per bin; when two bins of one map share a base colour, the less frequent one moves
    to the next free colour of its (extended) palette. Bins come most frequent first, so the result
    depends only on the bins present and their counts."""
    used: set[str] = set()
    out: dict[int, str] = {}
    for b in bins:
        passed = defs[b].passed
        palette = PASS_EXTENDED if passed else FAIL_EXTENDED
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
    dies = prepare_dies(x, y, pos_x, pos_y)
    b = b_all[dies.src].astype(np.int64)
    uniq, inv, counts = np.unique(b, return_inverse=True, return_counts=True)
    defs: dict[int, BinDef] = {int(k): _bin_def(v) for k, v in (bin_table or {}).items()}
    for k in uniq.tolist():
        defs.setdefault(int(k), BinDef("", None))
    by_count = sorted(zip(uniq.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    colors = _assign_colors([k for k, _ in by_count], defs)
    lut = np.array([hex_to_rgb(colors[int(k)]) for k in uniq.tolist()], dtype=np.uint8).reshape(-1, 3)

    prims: list[Primitive] = []
    title_c = clean_text(title) or "Wafer map"
    lines = as_lines(subtitle)
    frame = plan_frame(width, height, title_c, lines, 0.33, prims)
    pl = place_dies(dies, frame.plot_box, die_aspect, flat, flat_kind)
    draw_axes(dies, pl, frame, prims)
    total = int(b.size)
    legend = [
        {
            "bin": k,
            "name": clean_text(defs[k].name),
            "passed": defs[k].passed,
            "count": n,
            "percent": 100.0 * n / total,
            "color": colors[k],
        }
        for k, n in by_count
    ]
    add_bin_legend(legend, clean_text(legend_title), total, frame, prims)
    if total == 0:
        prims.append(Text(pl.cx, pl.cy, "No dies", font_sizes(frame.scale)["subtitle"], MUTED, "mm"))
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
    dies = prepare_dies(x, y, pos_x, pos_y)
    v = v_all[dies.src]
    finite = np.isfinite(v)
    vals = v[finite]
    lo_f = float(lo) if lo is not None and math.isfinite(float(lo)) else None
    hi_f = float(hi) if hi is not None and math.isfinite(float(hi)) else None

    if robust:
        pct = (1.0, 99.0) if robust is True else (float(robust[0]), float(robust[1]))  # type: ignore[index]
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
    lut = np.vstack([colormap_lut(), [hex_to_rgb(NO_VALUE), hex_to_rgb(BELOW_LO), hex_to_rgb(ABOVE_HI)]]).astype(
        np.uint8
    )
    t = np.clip((np.where(finite, v, cmin) - cmin) / (cmax - cmin), 0.0, 1.0)
    idx = np.rint(t * (LUT_SIZE - 1)).astype(np.intp)
    idx[~finite] = LUT_SIZE
    n_below = n_above = 0
    if lo_f is not None:
        below = finite & (v < lo_f)
        idx[below] = LUT_SIZE + 1
        n_below = int(below.sum())
    if hi_f is not None:
        above = finite & (v > hi_f)
        idx[above] = LUT_SIZE + 2
        n_above = int(above.sum())

    prims: list[Primitive] = []
    title_c = clean_text(title) or "Wafer map"
    lines = as_lines(subtitle)
    frame = plan_frame(width, height, title_c, lines, 0.24, prims)
    pl = place_dies(dies, frame.plot_box, die_aspect, flat, flat_kind)
    draw_axes(dies, pl, frame, prims)
    step = nice_step(cmax - cmin)
    fmt_v = value_format(cmin, cmax, step, clean_text(units))
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
    add_color_bar(clean_text(label), fmt_v, cmin, cmax, step, lo_f, hi_f, stats, bool(robust), robust, frame, prims)
    if v.size == 0:
        prims.append(Text(pl.cx, pl.cy, "No dies", font_sizes(frame.scale)["subtitle"], MUTED, "mm"))
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
