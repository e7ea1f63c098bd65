"""The side panels: the bin legend of a bin map and the colour bar (with value formatting) of a heat map."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stratum.render.layout import Frame, font_sizes
from stratum.render.palette import ABOVE_HI, BELOW_LO, MUTED, NO_VALUE, OUTLINE, RULE, TEXT
from stratum.render.primitives import ColorBar, Line, Primitive, Rect, Text
from stratum.render.text import fit_text, fmt_count, fmt_pct, font_metrics, text_width

_SI_PREFIXES = {-15: "f", -12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}


@dataclass(frozen=True)
class ValueFormat:
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


# SI units a value may carry (lower-case spelling -> canonical): only these get a prefix (k, m, µ ...);
# anything else (LSB, counts, dB, %) is printed as it is, with the number unscaled.
_SI_UNITS = {u.lower(): u for u in ("A", "V", "W", "Hz", "s", "Ohm", "Ω", "F", "J", "K", "m", "g")}


def si_unit(units: str) -> str:
    """A known SI unit in its canonical case (tester files write ``a``, ``v``, ``hz``, ``ohm``), else the text
    unchanged."""
    return _SI_UNITS.get(units.lower(), units)


def value_format(vmin: float, vmax: float, step: float, units: str) -> ValueFormat:
    mag = max(abs(vmin), abs(vmax))
    units = si_unit(units.strip())
    factor, unit = 1.0, units
    if units.lower() in _SI_UNITS and mag > 0 and not (1 <= mag < 1e3):  # engineering notation: 0.051 A -> 51 mA
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
    return ValueFormat(factor, unit, decimals)


def nice_step(span: float, target: int = 5) -> float:
    if not (span > 0 and math.isfinite(span)):
        return 0.0
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw:
            return m * mag
    return 10.0 * mag


def add_bin_legend(rows: list[dict[str, Any]], title: str, total: int, frame: Frame, prims: list[Primitive]) -> None:
    px0, py0, px1, py1 = frame.panel
    s = frame.scale
    sz = font_sizes(s)
    fs = sz["legend"]
    small = sz["small"]
    asc, desc = font_metrics(fs)
    row_h = max(asc + desc + int(round(6 * s)), int(round(19 * s)))
    y = py0
    prims.append(Text(px0, y, title, sz["subtitle"], TEXT, "la"))
    a, d = font_metrics(sz["subtitle"])
    y += a + d + int(round(8 * s))

    # Columns: swatch | bin | P/F | name | count | %
    sw = max(8, int(round(12 * s)))
    pad = max(4, int(round(7 * s)))
    bin_w = max([text_width("Bin", small)] + [text_width(str(r["bin"]), fs) for r in rows])
    pf_w = max(text_width("P/F", small), text_width("F", fs))
    count_w = max([text_width("Count", small)] + [text_width(fmt_count(r["count"]), fs) for r in rows])
    pct_w = max(text_width("100.0%", fs), text_width("%", small))
    x_sw = px0
    x_bin_r = x_sw + sw + pad + bin_w
    x_pf = x_bin_r + pad + pf_w / 2
    x_name = x_bin_r + 2 * pad + pf_w
    x_pct_r = px1
    x_count_r = x_pct_r - pct_w - pad
    name_w = x_count_r - count_w - pad - x_name

    header_y = y + row_h / 2
    prims.append(Text(x_bin_r, header_y, "Bin", small, MUTED, "rm"))
    prims.append(Text(x_pf, header_y, "P/F", small, MUTED, "mm"))
    if name_w > 20:
        prims.append(Text(x_name, header_y, "Name", small, MUTED, "lm"))
    prims.append(Text(x_count_r, header_y, "Count", small, MUTED, "rm"))
    prims.append(Text(x_pct_r, header_y, "%", small, MUTED, "rm"))
    y += row_h
    prims.append(Line(((px0, y), (px1, y)), RULE))
    y += int(round(3 * s))

    footer_rows = 3
    avail = py1 - y - footer_rows * row_h - int(round(10 * s))
    max_rows = max(1, avail // row_h)
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    for r in shown:
        yc = y + row_h / 2
        prims.append(Rect(x_sw, yc - sw / 2, x_sw + sw, yc + sw / 2, r["color"], "#6b7280"))
        prims.append(Text(x_bin_r, yc, str(r["bin"]), fs, TEXT, "rm"))
        pf = "P" if r["passed"] else "F" if r["passed"] is False else "-"
        pf_color = "#1a7f37" if r["passed"] else "#b42318" if r["passed"] is False else MUTED
        prims.append(Text(x_pf, yc, pf, fs, pf_color, "mm"))
        if name_w > 20 and r["name"]:
            prims.append(Text(x_name, yc, fit_text(r["name"], fs, name_w), fs, TEXT, "lm"))
        prims.append(Text(x_count_r, yc, fmt_count(r["count"]), fs, TEXT, "rm"))
        prims.append(Text(x_pct_r, yc, fmt_pct(r["percent"]), fs, TEXT, "rm"))
        y += row_h
    if len(shown) < len(rows):
        rest = rows[len(shown) :]
        n_rest = sum(r["count"] for r in rest)
        yc = y + row_h / 2
        prims.append(Text(x_name, yc, f"+{len(rest)} more bins", fs, MUTED, "lm"))
        prims.append(Text(x_count_r, yc, fmt_count(n_rest), fs, MUTED, "rm"))
        prims.append(Text(x_pct_r, yc, fmt_pct(100.0 * n_rest / max(total, 1)), fs, MUTED, "rm"))
        y += row_h

    y += int(round(4 * s))
    prims.append(Line(((px0, y), (px1, y)), RULE))
    y += int(round(3 * s))
    known = all(r["passed"] is not None for r in rows)
    n_pass = sum(r["count"] for r in rows if r["passed"])
    footer = [("Total dies", fmt_count(total), "")]
    if known and total:
        footer.append(("Pass", fmt_count(n_pass), fmt_pct(100.0 * n_pass / total)))
        footer.append(("Fail", fmt_count(total - n_pass), fmt_pct(100.0 * (total - n_pass) / total)))
    elif total:
        footer.append(("Yield", "n/a", ""))
    for label, count, pct in footer:
        yc = y + row_h / 2
        prims.append(Text(x_sw, yc, label, fs, TEXT, "lm"))
        prims.append(Text(x_count_r, yc, count, fs, TEXT, "rm"))
        if pct:
            prims.append(Text(x_pct_r, yc, pct, fs, TEXT, "rm"))
        y += row_h


def add_color_bar(
    label: str,
    fmt_v: ValueFormat,
    cmin: float,
    cmax: float,
    step: float,
    lo: float | None,
    hi: float | None,
    stats: dict[str, Any],
    robust_on: bool,
    robust: bool | tuple[float, float],
    frame: Frame,
    prims: list[Primitive],
) -> None:
    px0, py0, px1, py1 = frame.panel
    s = frame.scale
    sz = font_sizes(s)
    fs, small = sz["legend"], sz["small"]
    asc, desc = font_metrics(fs)
    line_h = asc + desc + int(round(6 * s))
    y = py0
    caption = label + (f" [{fmt_v.unit}]" if fmt_v.unit else "")
    prims.append(Text(px0, y, fit_text(caption, sz["subtitle"], px1 - px0), sz["subtitle"], TEXT, "la"))
    a, d = font_metrics(sz["subtitle"])
    y += a + d + int(round(12 * s))

    bar_w = max(10, int(round(22 * s)))
    bar_x0 = px0 + int(round(4 * s))
    bar_y0 = int(y)
    bar_h = max(60, int(round((py1 - py0) * 0.46)))
    bar_y1 = bar_y0 + bar_h
    prims.append(ColorBar(bar_x0, bar_y0, bar_x0 + bar_w, bar_y1))
    prims.append(Rect(bar_x0 - 1, bar_y0 - 1, bar_x0 + bar_w + 1, bar_y1 + 1, None, OUTLINE))

    def ypos(v: float) -> float:
        return bar_y1 - (v - cmin) / (cmax - cmin) * bar_h

    tick_x = bar_x0 + bar_w + 1
    tl = max(3, int(round(5 * s)))
    min_gap = asc + desc + 2
    ends: list[tuple[float, float]] = [(cmax, bar_y0), (cmin, bar_y1)]
    for v, yy in ends:
        prims.append(Line(((tick_x, yy), (tick_x + tl, yy)), OUTLINE))
        prims.append(Text(tick_x + tl + 4, yy, fmt_v(v, 1), fs, TEXT, "lm"))
    if step > 0:
        k0 = math.ceil(cmin / step - 1e-9)
        k1 = math.floor(cmax / step + 1e-9)
        for k in range(k0, k1 + 1):
            v = k * step
            yy = ypos(v)
            if abs(yy - bar_y0) < min_gap or abs(yy - bar_y1) < min_gap:
                continue
            prims.append(Line(((tick_x, yy), (tick_x + tl, yy)), OUTLINE))
            prims.append(Text(tick_x + tl + 4, yy, fmt_v(v), small, MUTED, "lm"))
    # Limits inside the colour range: a line across the bar in the limit's colour.
    for lim, color in ((lo, BELOW_LO), (hi, ABOVE_HI)):
        if lim is not None and cmin <= lim <= cmax:
            yy = ypos(lim)
            prims.append(Line(((bar_x0 - tl, yy), (bar_x0 + bar_w, yy)), color, 2))
    y = bar_y1 + int(round(16 * s))

    def row(label: str, value: str, swatch: str | None = None) -> None:
        nonlocal y
        yc = y + line_h / 2
        x_text = px0
        if swatch:
            sw = max(8, int(round(12 * s)))
            prims.append(Rect(px0, yc - sw / 2, px0 + sw, yc + sw / 2, swatch, OUTLINE))
            x_text = px0 + sw + int(round(6 * s))
        prims.append(Text(x_text, yc, label, fs, TEXT, "lm"))
        prims.append(Text(px1, yc, value, fs, TEXT, "rm"))
        y += line_h

    n = stats["dies"]
    row("Dies", fmt_count(n))
    row("No value", fmt_count(stats["no_value"]), NO_VALUE)
    if lo is not None:
        row(f"< LO {fmt_v(lo, 1)}", fmt_count(stats["below"]), BELOW_LO)
    if hi is not None:
        row(f"> HI {fmt_v(hi, 1)}", fmt_count(stats["above"]), ABOVE_HI)
    y += int(round(4 * s))
    prims.append(Line(((px0, y), (px1, y)), RULE))
    y += int(round(4 * s))
    row("Min", fmt_v(stats["min"], 1))
    row("Max", fmt_v(stats["max"], 1))
    row("Mean", fmt_v(stats["mean"], 1))
    row("SD", fmt_v(stats["sd"], 1))
    if robust_on:
        lo_p, hi_p = (1.0, 99.0) if robust is True else robust  # type: ignore[misc]
        y += int(round(4 * s))
        prims.append(Text(px0, y, f"Colour range: P{lo_p:g} to P{hi_p:g}", small, MUTED, "la"))
