"""The SVG writer (hand-written XML): dies grouped by colour into one ``<path>`` per colour, merging horizontal
runs when dies have no gap between them."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

import numpy as np
from numpy.typing import NDArray

from stratum.render.geometry import Dies, Placement
from stratum.render.palette import CANVAS, OUTLINE, VIRIDIS_ANCHORS, WAFER_FILL, rgb_to_hex
from stratum.render.primitives import Line, Polygon, Primitive, Rect, Text
from stratum.render.text import font_metrics


def write_svg(
    width: int,
    height: int,
    title: str,
    description: str,
    dies: Dies,
    placement: Placement,
    die_color: NDArray[np.intp],
    lut: NDArray[np.uint8],
    primitives: list[Primitive],
    colors: Mapping[int, str],
) -> bytes:
    """The figure as an SVG document (UTF-8)."""
    w, h = width, height
    pl = placement
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="Aileron, Helvetica, Arial, sans-serif">\n',
        f"<title>{escape(title)}</title>\n",
    ]
    if description:
        out.append(f"<desc>{escape(description)}</desc>\n")
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
    out.extend(_svg_die_paths(dies, pl, die_color, lut, colors))
    out.append("</g>\n")
    for p in primitives:
        out.append(_svg_primitive(p))
    out.append("</svg>\n")
    return "".join(out).encode("utf-8")


def write_chart_svg(width: int, height: int, title: str, description: str, primitives: list[Primitive]) -> bytes:
    """A figure without a wafer (charts) as an SVG document (UTF-8)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Aileron, Helvetica, Arial, sans-serif">\n',
        f"<title>{escape(title)}</title>\n",
    ]
    if description:
        out.append(f"<desc>{escape(description)}</desc>\n")
    out.append(f'<rect width="{width}" height="{height}" fill="{CANVAS}"/>\n')
    out.extend(_svg_primitive(p) for p in primitives)
    out.append("</svg>\n")
    return "".join(out).encode("utf-8")


def _svg_die_paths(
    dies: Dies, pl: Placement, die_color: NDArray[np.intp], lut: NDArray[np.uint8], colors: Mapping[int, str]
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
    bin_of_color: dict[str, int] = {}
    for b, hx in colors.items():
        bin_of_color.setdefault(hx, b)
    out = []
    for k in np.unique(run_color):
        sel = run_color == k
        d = "".join(
            f"M{x:g} {y:g}h{w_:g}v{h_:g}h{-w_:g}z"
            for x, y, w_, h_ in zip(xs[sel].tolist(), ys[sel].tolist(), ws[sel].tolist(), hs[sel].tolist(), strict=True)
        )
        hx = rgb_to_hex(lut[k])
        attrs = f' data-bin="{bin_of_color[hx]}"' if hx in bin_of_color else ""
        out.append(f'<path fill="{hx}"{attrs} d="{d}"/>\n')
    return out


def _svg_primitive(p: Primitive) -> str:
    if isinstance(p, Text):
        h = {"l": "start", "m": "middle", "r": "end"}[p.anchor[0]]
        asc, desc = font_metrics(p.size)
        v = p.anchor[1]
        base = p.y + (asc if v in "at" else (asc - desc) / 2 if v == "m" else -desc if v in "bd" else 0)
        weight = ' font-weight="bold"' if p.bold else ""
        return (
            f'<text x="{p.x:.1f}" y="{base:.1f}" font-size="{p.size}" fill="{p.fill}" text-anchor="{h}"{weight}>'
            f"{escape(p.text)}</text>\n"
        )
    if isinstance(p, Rect):
        fill = p.fill or "none"
        stroke = f' stroke="{p.outline}"' if p.outline else ""
        return (
            f'<rect x="{p.x0:.1f}" y="{p.y0:.1f}" width="{p.x1 - p.x0:.1f}" height="{p.y1 - p.y0:.1f}" '
            f'fill="{fill}"{stroke}/>\n'
        )
    if isinstance(p, Line):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in p.points)
        return f'<polyline points="{pts}" fill="none" stroke="{p.fill}" stroke-width="{p.width}"/>\n'
    if isinstance(p, Polygon):
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in p.points)
        return f'<polygon points="{pts}" fill="{p.fill}"/>\n'
    stops = "".join(
        f'<stop offset="{i / (len(VIRIDIS_ANCHORS) - 1):.4f}" stop-color="{c}"/>' for i, c in enumerate(VIRIDIS_ANCHORS)
    )
    return (
        f'<defs><linearGradient id="colorbar" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient></defs>\n'
        f'<rect class="colorbar" x="{p.x0}" y="{p.y0}" width="{p.x1 - p.x0}" height="{p.y1 - p.y0}" '
        'fill="url(#colorbar)"/>\n'
    )
