"""Charts beside the wafer maps, in their visual language (title block, palette, fonts, PNG and SVG
backends of this package): Pareto bars with a cumulative line, histograms with limit and ±3σ lines, box
plots, trend charts with control limits, and a gallery of wafer thumbnails.

A chart is planned once into primitives (:class:`Chart`) and drawn by Pillow (PNG) or as SVG."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from stratum.render.layout import font_sizes, plan_frame
from stratum.render.legend import nice_step
from stratum.render.palette import BELOW_LO, CANVAS, FAIL_COLORS, MUTED, PASS_COLORS, RULE, TEXT, bin_color
from stratum.render.png import draw_primitives
from stratum.render.primitives import Line, Primitive, Rect, Text
from stratum.render.svg import write_chart_svg
from stratum.render.text import clean_text, fit_text

Fmt = Literal["png", "svg"]
BAR = "#31688e"  # viridis blue: histogram and box fills
LIMIT = "#e31a1c"  # test limits
SIGMA = "#ff7f00"  # mean ± 3σ and control limits
CENTER = "#1f2933"
GROUP_COLORS = ("#31688e", "#35b779", "#e41a1c", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf")


@dataclass
class Chart:
    width: int
    height: int
    title: str
    description: str
    primitives: list[Primitive]

    def render(self, fmt: Fmt) -> bytes:
        if fmt == "svg":
            return write_chart_svg(self.width, self.height, self.title, self.description, self.primitives)
        img = Image.new("RGB", (self.width, self.height), CANVAS)
        draw_primitives(img, self.primitives)
        buf = io.BytesIO()
        img.save(buf, "PNG", optimize=False, compress_level=6)
        return buf.getvalue()


@dataclass
class _Axes:
    x0: float
    y0: float
    x1: float
    y1: float
    lo: float
    hi: float
    sz: dict[str, int]

    def y(self, v: float) -> float:
        return self.y1 - (v - self.lo) / (self.hi - self.lo) * (self.y1 - self.y0)


def _bar(x0: float, top: float, x1: float, bottom: float, fill: str, outline: str | None = None) -> Rect:
    """A bar at least one pixel wide and tall (a small count still shows, and Pillow needs y0 <= y1)."""
    return Rect(x0, min(top, bottom - 1), max(x1, x0 + 1), bottom, fill, outline)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.3g}"
    return f"{v:.4g}"


def _frame(width: int, height: int, title: str, subtitle: Sequence[str], prims: list[Primitive], right: int = 0):
    fr = plan_frame(width, height, clean_text(title), [clean_text(s) for s in subtitle], 0.0, prims)
    sz = font_sizes(fr.scale)
    left = fr.margin + int(round(62 * fr.scale))
    bottom = height - fr.margin - int(round(58 * fr.scale))
    top = fr.header_bottom + int(round(26 * fr.scale))
    return left, top, width - fr.margin - right - int(round(10 * fr.scale)), bottom, sz, fr.scale


def _value_axis(x0, y0, x1, y1, lo, hi, sz, prims, label: str = "", at_right: bool = False) -> _Axes:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = (lo - 1, lo + 1) if math.isfinite(lo) else (0.0, 1.0)
    step = nice_step(hi - lo, 5)
    lo2, hi2 = math.floor(lo / step) * step, math.ceil(hi / step) * step
    ax = _Axes(x0, y0, x1, y1, lo2, hi2, sz)
    v = lo2
    while v <= hi2 + step * 1e-9:
        yy = ax.y(v)
        if not at_right:
            prims.append(Line(((x0, yy), (x1, yy)), "#eef1f4"))
            prims.append(Text(x0 - 6, yy, _fmt(v), sz["tick"], MUTED, "rm"))
        else:
            prims.append(Text(x1 + 6, yy, _fmt(v), sz["tick"], MUTED, "lm"))
        v += step
    if label:
        xl = x0 - 6 if not at_right else x1 + 6
        prims.append(Text(xl, y0 - sz["tick"] - 6, label, sz["tick"], MUTED, "rs" if not at_right else "ls"))
    return ax


def _box(ax: _Axes, prims: list[Primitive]) -> None:
    prims.append(Line(((ax.x0, ax.y1), (ax.x1, ax.y1)), TEXT))
    prims.append(Line(((ax.x0, ax.y0), (ax.x0, ax.y1)), RULE))


def _category_labels(labels: Sequence[str], centers: Sequence[float], y: float, slot: float, sz, prims) -> None:
    fs = sz["tick"]
    every = max(1, math.ceil((fs * 3.2) / max(slot, 1)))
    for i, (lab, cx) in enumerate(zip(labels, centers, strict=True)):
        if i % every == 0:
            prims.append(Text(cx, y + 4, fit_text(clean_text(lab), fs, max(slot * every - 2, 12)), fs, TEXT, "ma"))


def _legend(items: Sequence[tuple[str, str]], x: float, y: float, sz, prims) -> None:
    fs = sz["small"]
    for label, color in items:
        prims.append(Line(((x, y), (x + 18, y)), color, 2))
        prims.append(Text(x + 24, y, label, fs, TEXT, "lm"))
        y += fs + 6


def pareto(
    rows: Sequence[dict[str, Any]],
    *,
    title: str,
    subtitle: Sequence[str] = (),
    width: int = 900,
    height: int = 560,
) -> Chart:
    """Bars of ``count`` per bin (descending), coloured like the wafer maps, with the cumulative % line."""
    prims: list[Primitive] = []
    x0, y0, x1, y1, sz, s = _frame(width, height, title, subtitle, prims, right=int(40 * max(0.55, width / 900)))
    total = sum(r["count"] for r in rows) or 1
    ax = _value_axis(x0, y0, x1, y1, 0, max([r["count"] for r in rows] or [1]), sz, prims, "parts")
    pct = _Axes(x0, y0, x1, y1, 0, 100, sz)
    for v in (0, 25, 50, 75, 100):
        prims.append(Text(x1 + 6, pct.y(v), f"{v}%", sz["tick"], MUTED, "lm"))
    n = max(len(rows), 1)
    slot = (x1 - x0) / n
    centers, pts = [], []
    for i, r in enumerate(rows):
        cx = x0 + slot * (i + 0.5)
        centers.append(cx)
        color = bin_color(int(r["bin_num"]), r.get("pass_fail") == "P" if r.get("pass_fail") else None)
        prims.append(_bar(cx - slot * 0.38, ax.y(r["count"]), cx + slot * 0.38, ax.y1, color))
        pts.append((cx, pct.y(r["cumulative_percent"])))
    _box(ax, prims)
    if pts:
        prims.append(Line(tuple(pts), CENTER, 2))
        for px, py in pts:
            prims.append(Rect(px - 2.5, py - 2.5, px + 2.5, py + 2.5, CENTER))
    _category_labels([str(r["bin_num"]) for r in rows], centers, y1, slot, sz, prims)
    prims.append(Text((x0 + x1) / 2, height - 10 * s, "bin (cumulative % line, right axis)", sz["small"], MUTED, "ms"))
    del total
    return Chart(width, height, title, "; ".join(subtitle), prims)


def histogram(
    edges: Sequence[float],
    groups: Sequence[tuple[str, Sequence[int]]],
    *,
    lines: Sequence[tuple[str, float, str]],
    title: str,
    subtitle: Sequence[str] = (),
    units: str = "",
    width: int = 900,
    height: int = 560,
) -> Chart:
    """Counts per bin (one outline per group when grouped) with vertical marker lines (label, x, colour)."""
    prims: list[Primitive] = []
    x0, y0, x1, y1, sz, s = _frame(width, height, title, subtitle, prims)
    xs = [e for e in edges] + [v for _, v, _ in lines if v is not None and math.isfinite(v)]
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.04 or 1.0
    lo, hi = lo - pad, hi + pad
    top = max([max(c) if len(c) else 0 for _, c in groups] or [1])
    ax = _value_axis(x0, y0, x1, y1, 0, max(top, 1), sz, prims, "parts")

    def X(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    step = nice_step(hi - lo, 6)
    v = math.ceil(lo / step) * step
    while v <= hi:
        prims.append(Line(((X(v), y1), (X(v), y1 + 4)), TEXT))
        prims.append(Text(X(v), y1 + 6, _fmt(v), sz["tick"], TEXT, "ma"))
        v += step
    single = len(groups) == 1
    for gi, (_, counts) in enumerate(groups):
        color = BAR if single else GROUP_COLORS[gi % len(GROUP_COLORS)]
        for i, c in enumerate(counts):
            if not c:
                continue
            a, b = X(edges[i]), X(edges[i + 1])
            if single:
                prims.append(_bar(a, ax.y(c), b - 1, y1, color))
            else:
                prims.append(Line(((a, ax.y(c)), (b, ax.y(c))), color, 2))
    _box(ax, prims)
    items = []
    for label, v, color in lines:
        if v is None or not math.isfinite(v):
            continue
        prims.append(Line(((X(v), y0), (X(v), y1)), color, 2))
        items.append((f"{label} {_fmt(v)}", color))
    if not single:
        items += [(name, GROUP_COLORS[i % len(GROUP_COLORS)]) for i, (name, _) in enumerate(groups)]
    _legend(items, x1 - 170 * s, y0 + 8, sz, prims)
    prims.append(Text((x0 + x1) / 2, height - 10 * s, units or "value", sz["small"], MUTED, "ms"))
    return Chart(width, height, title, "; ".join(subtitle), prims)


def boxplot(
    groups: Sequence[dict[str, Any]],
    *,
    lo_limit: float | None,
    hi_limit: float | None,
    title: str,
    subtitle: Sequence[str] = (),
    units: str = "",
    width: int = 900,
    height: int = 560,
) -> Chart:
    """One box (q1–q3, median, whiskers to min/max, mean as a dot) per group; limits as red lines."""
    prims: list[Primitive] = []
    x0, y0, x1, y1, sz, s = _frame(width, height, title, subtitle, prims)
    vals = [g[k] for g in groups for k in ("min", "max") if g.get(k) is not None]
    vals += [v for v in (lo_limit, hi_limit) if v is not None and math.isfinite(v)]
    ax = _value_axis(x0, y0, x1, y1, min(vals or [0]), max(vals or [1]), sz, prims, units)
    slot = (x1 - x0) / max(len(groups), 1)
    centers = []
    for i, g in enumerate(groups):
        cx = x0 + slot * (i + 0.5)
        centers.append(cx)
        if g.get("n", 0) == 0 or g.get("median") is None:
            continue
        w = min(slot * 0.3, 40 * s)
        prims.append(Line(((cx, ax.y(g["min"])), (cx, ax.y(g["q1"]))), TEXT))
        prims.append(Line(((cx, ax.y(g["q3"])), (cx, ax.y(g["max"]))), TEXT))
        prims.append(_bar(cx - w, ax.y(g["q3"]), cx + w, ax.y(g["q1"]) + 1, "#c6dbef", BAR))
        prims.append(Line(((cx - w, ax.y(g["median"])), (cx + w, ax.y(g["median"]))), CENTER, 2))
        for k in ("min", "max"):
            prims.append(Line(((cx - w / 2, ax.y(g[k])), (cx + w / 2, ax.y(g[k]))), TEXT))
        m = ax.y(g["mean"])
        prims.append(Rect(cx - 3, m - 3, cx + 3, m + 3, SIGMA))
    for label, v in (("LL", lo_limit), ("HL", hi_limit)):
        if v is not None and math.isfinite(v):
            prims.append(Line(((x0, ax.y(v)), (x1, ax.y(v))), LIMIT, 1))
            prims.append(Text(x1 - 4, ax.y(v) - 3, f"{label} {_fmt(v)}", sz["small"], LIMIT, "rs"))
    _box(ax, prims)
    _category_labels([str(g["group"]) for g in groups], centers, y1, slot, sz, prims)
    return Chart(width, height, title, "; ".join(subtitle), prims)


def trend(
    points: Sequence[dict[str, Any]],
    *,
    center: float | None,
    ucl: float | None,
    lcl: float | None,
    title: str,
    subtitle: Sequence[str] = (),
    units: str = "",
    width: int = 900,
    height: int = 560,
) -> Chart:
    """Wafer means in order, a line per lot boundary, the centre line and ±3σ control limits."""
    prims: list[Primitive] = []
    x0, y0, x1, y1, sz, s = _frame(width, height, title, subtitle, prims)
    vals = [p["mean"] for p in points if p.get("mean") is not None]
    vals += [v for v in (ucl, lcl) if v is not None]
    ax = _value_axis(x0, y0, x1, y1, min(vals or [0]), max(vals or [1]), sz, prims, units)
    n = max(len(points), 1)
    slot = (x1 - x0) / n
    pts = []
    lot_starts: list[tuple[float, str]] = []
    for i, p in enumerate(points):
        cx = x0 + slot * (i + 0.5)
        if i == 0 or p["lot_id"] != points[i - 1]["lot_id"]:
            lot_starts.append((x0 + slot * i, p["lot_id"]))
        if p.get("mean") is not None:
            pts.append((cx, ax.y(p["mean"]), p))
    for lx, lot in lot_starts:
        prims.append(Line(((lx, y0), (lx, y1)), RULE))
        prims.append(
            Text(lx + 3, y1 + 6, fit_text(clean_text(lot), sz["tick"], max(slot * 4, 40)), sz["tick"], TEXT, "la")
        )
    for label, v, color in (("UCL", ucl, SIGMA), ("CL", center, CENTER), ("LCL", lcl, SIGMA)):
        if v is not None:
            prims.append(Line(((x0, ax.y(v)), (x1, ax.y(v))), color, 1))
            prims.append(Text(x1 - 4, ax.y(v) - 3, f"{label} {_fmt(v)}", sz["small"], color, "rs"))
    if len(pts) > 1:
        prims.append(Line(tuple((a, b) for a, b, _ in pts), BAR, 1))
    for a, b, p in pts:
        out = (ucl is not None and p["mean"] > ucl) or (lcl is not None and p["mean"] < lcl)
        color = BELOW_LO if out else BAR
        prims.append(Rect(a - 3, b - 3, a + 3, b + 3, color))
    _box(ax, prims)
    prims.append(Text((x0 + x1) / 2, height - 10 * s, "wafers in lot order", sz["small"], MUTED, "ms"))
    return Chart(width, height, title, "; ".join(subtitle), prims)


def gallery(
    thumbs: Sequence[bytes],
    *,
    fmt: Fmt,
    title: str,
    subtitle: Sequence[str],
    thumb_size: tuple[int, int],
    columns: int,
) -> bytes:
    """Wafer map thumbnails (already rendered, PNG or SVG) on one sheet under a title block."""
    tw, th = thumb_size
    cols = max(1, min(columns, len(thumbs) or 1))
    rows = max(1, math.ceil(len(thumbs) / cols))
    width = max(cols * tw, 400)
    prims: list[Primitive] = []
    fr = plan_frame(width, 400, clean_text(title), [clean_text(x) for x in subtitle], 0.0, prims)
    prims = [p for p in prims if not (isinstance(p, Line) and p.fill == RULE)]
    top = fr.header_bottom
    height = top + rows * th
    if fmt == "png":
        img = Image.new("RGB", (width, height), CANVAS)
        draw_primitives(img, prims)
        for i, t in enumerate(thumbs):
            img.paste(Image.open(io.BytesIO(t)).convert("RGB"), ((i % cols) * tw, top + (i // cols) * th))
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=6)
        return buf.getvalue()
    head = write_chart_svg(width, height, title, "; ".join(subtitle), prims).decode()
    inner = []
    for i, t in enumerate(thumbs):
        body = t.decode().split("?>", 1)[-1].strip()
        body = body.replace("<svg ", f'<svg x="{(i % cols) * tw}" y="{top + (i // cols) * th}" ', 1)
        inner.append(body + "\n")
    return (head.replace("</svg>\n", "") + "".join(inner) + "</svg>\n").encode()


__all__ = ["Chart", "boxplot", "gallery", "histogram", "pareto", "trend", "PASS_COLORS", "FAIL_COLORS", "LIMIT"]
