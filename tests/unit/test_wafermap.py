"""Wafer map rendering: PNG pixels at die centres, orientation, SVG structure, heat map details."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from stratum.render.palette import ABOVE_HI, BELOW_LO, CANVAS, FAIL_COLORS, NO_VALUE, PASS_COLORS, WAFER_FILL
from stratum.render.wafermap import (
    BinDef,
    WaferMap,
    bin_color,
    bin_map,
    colormap,
    render_bin_map,
    render_value_map,
    value_map,
)

SVG = "{http://www.w3.org/2000/svg}"


def rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def wafer(radius: int = 8) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1))
    xs, ys = xs.ravel(), ys.ravel()
    keep = np.hypot(xs, ys) < radius - 0.3
    return xs[keep] + 20, ys[keep] + 10  # raw coordinates need not start at 0


@pytest.fixture(scope="module")
def dies() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = wafer()
    rng = np.random.default_rng(5)
    bins = np.ones(x.size, dtype=int)
    bins[rng.random(x.size) < 0.15] = 2
    bins[rng.random(x.size) < 0.05] = 7
    bins[x == 20] = 3
    bins[:3] = 4
    return x, y, bins


TABLE = {
    1: BinDef("GOOD", True),
    4: ("GOOD_B", "P"),
    2: ("OPENS", "F"),
    3: ('SCAN <&> "chain"\x01', False),
    7: "UNKNOWN_PF",
}


def png_pixels(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


def pixel(arr: np.ndarray, xy: tuple[float, float]) -> tuple[int, int, int]:
    return tuple(int(c) for c in arr[int(xy[1]), int(xy[0])])  # type: ignore[return-value]


def assert_die_colors(wm: WaferMap, arr: np.ndarray, x: np.ndarray, y: np.ndarray, expected: list[str]) -> None:
    for xi, yi, color in zip(x.tolist(), y.tolist(), expected, strict=True):
        assert pixel(arr, wm.die_center(xi, yi)) == rgb(color), (xi, yi)


# ---------------------------------------------------------------------------------------------------
# Bin map: PNG
# ---------------------------------------------------------------------------------------------------


def test_bin_map_png_is_valid_with_default_size(dies) -> None:
    x, y, bins = dies
    data = render_bin_map(x, y, bins, TABLE, title="Lot L1 wafer 3", subtitle=["Yield 80%"])
    arr = png_pixels(data)
    assert arr.shape == (700, 900, 3)


def test_bin_map_die_centres_have_bin_colour(dies) -> None:
    x, y, bins = dies
    wm = bin_map(x, y, bins, TABLE)
    arr = png_pixels(wm.to_png())
    assert_die_colors(wm, arr, x, y, [wm.colors[int(b)] for b in bins])
    # Stable base colours: no collisions among these bins, so each is its bin_color.
    assert wm.colors[1] == bin_color(1, True) == PASS_COLORS[0]
    assert wm.colors[4] == bin_color(4, True)
    assert wm.colors[2] == bin_color(2, False) == FAIL_COLORS[0]
    assert wm.colors[7] == bin_color(7, None)


def test_empty_positions_are_blank_and_outside_is_canvas(dies) -> None:
    x, y, bins = dies
    keep = ~((x == 21) & (y == 11))  # a hole in the middle of the wafer
    wm = bin_map(x[keep], y[keep], bins[keep], TABLE)
    arr = png_pixels(wm.to_png())
    assert pixel(arr, wm.die_center(21, 11)) == rgb(WAFER_FILL)
    pl = wm.placement
    assert pixel(arr, (pl.cx, pl.cy - pl.radius * 0.97)) == rgb(WAFER_FILL)  # inside, beyond the dies
    assert pixel(arr, (pl.cx + pl.radius * 0.75, pl.cy + pl.radius * 0.75)) == rgb(CANVAS)  # outside the circle
    assert pixel(arr, (5, wm.height - 5)) == rgb(CANVAS)


def test_orientation_pos_x_left_flips_x(dies) -> None:
    x, y, bins = dies
    right = bin_map(x, y, bins, TABLE, pos_x="R")
    left = bin_map(x, y, bins, TABLE, pos_x="L")
    # Default: positive X to the right, positive Y up.
    assert right.die_center(25, 10)[0] > right.die_center(15, 10)[0]
    assert right.die_center(20, 15)[1] < right.die_center(20, 5)[1]
    # pos_x='L': positive X to the left; Y unchanged.
    assert left.die_center(25, 10)[0] < left.die_center(15, 10)[0]
    assert left.die_center(20, 15)[1] == right.die_center(20, 15)[1]
    # Mirrored around the wafer centre.
    cx = left.placement.cx
    assert left.die_center(25, 10)[0] - cx == pytest.approx(cx - right.die_center(25, 10)[0], abs=1.5)
    arr = png_pixels(left.to_png())
    assert_die_colors(left, arr, x, y, [left.colors[int(b)] for b in bins])
    # The pixel where the right-pointing map shows die (25, 10) shows die (15, 10) when flipped.
    assert pixel(arr, right.die_center(25, 10)) == rgb(left.colors[int(bins[(x == 15) & (y == 10)][0])])


def test_orientation_pos_y_down_flips_y(dies) -> None:
    x, y, bins = dies
    down = bin_map(x, y, bins, TABLE, pos_y="D")
    assert down.die_center(20, 15)[1] > down.die_center(20, 5)[1]
    arr = png_pixels(down.to_png())
    assert_die_colors(down, arr, x, y, [down.colors[int(b)] for b in bins])


def test_last_record_wins_and_missing_coordinates_are_dropped() -> None:
    x = np.array([0, 1, 0, -32768, 1])
    y = np.array([0, 0, 0, 5, 1])
    bins = np.array([1, 1, 2, 3, 1])
    wm = bin_map(x, y, bins, {1: ("P", True), 2: ("F", False), 3: ("X", False)})
    assert {r["bin"]: r["count"] for r in wm.legend} == {1: 2, 2: 1}
    arr = png_pixels(wm.to_png())
    assert pixel(arr, wm.die_center(0, 0)) == rgb(wm.colors[2])


def test_bin_palettes_pass_green_fail_not_green() -> None:
    def greenish(c: str) -> bool:
        r, g, b = rgb(c)
        return g > r + 25 and g > b + 10

    for b in range(1, 40):
        assert greenish(bin_color(b, True)), b
        assert not greenish(bin_color(b, False)), b
        assert bin_color(b, False) == bin_color(b, False)  # deterministic
    assert len(set(FAIL_COLORS)) == len(FAIL_COLORS)
    assert len(set(PASS_COLORS)) == len(PASS_COLORS)


def test_colliding_bins_get_distinct_colours() -> None:
    x = np.arange(40)
    bins = np.array([2, 18] * 20)  # bins 2 and 18 share a base colour (16 fail colours)
    bins[0] = 2
    wm = bin_map(x, np.zeros(40), bins, {2: ("A", False), 18: ("B", False)})
    assert bin_color(2, False) == bin_color(18, False)
    assert wm.colors[2] != wm.colors[18]


def test_legend_sorted_by_count_with_percentages(dies) -> None:
    x, y, bins = dies
    wm = bin_map(x, y, bins, TABLE)
    counts = [r["count"] for r in wm.legend]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == x.size
    assert sum(r["percent"] for r in wm.legend) == pytest.approx(100.0)
    by_bin = {r["bin"]: r for r in wm.legend}
    assert by_bin[3]["name"] == 'SCAN <&> "chain"'  # control character dropped
    assert by_bin[4]["passed"] is True and by_bin[2]["passed"] is False and by_bin[7]["passed"] is None


def test_many_bins_legend_overflow_and_big_map() -> None:
    x, y = wafer(180)  # ~100k dies
    rng = np.random.default_rng(1)
    bins = np.where(rng.random(x.size) < 0.1, rng.integers(2, 60, x.size), 1)
    table = {int(b): (f"BIN_{b}", b == 1) for b in np.unique(bins)}
    wm = bin_map(x, y, bins, table)
    assert x.size > 95_000
    texts = [p.text for p in wm.primitives if hasattr(p, "text")]
    assert any(t.endswith("more bins") for t in texts)
    arr = png_pixels(wm.to_png())
    sample = rng.choice(x.size, 200, replace=False)
    # Dies are ~1.5 px here: check the pixel at each die's top-left corner of its pixel span.
    ce, re_ = np.rint(wm.placement.col_edges).astype(int), np.rint(wm.placement.row_edges).astype(int)
    for i in sample:
        c, r = int(x[i] - x.min()), int(y.max() - y[i])
        if ce[c + 1] > ce[c] and re_[r + 1] > re_[r]:
            assert tuple(arr[re_[r], ce[c]]) == rgb(wm.colors[int(bins[i])])
    root = ET.fromstring(wm.to_svg())
    assert root.tag == f"{SVG}svg"


# ---------------------------------------------------------------------------------------------------
# Bin map: SVG
# ---------------------------------------------------------------------------------------------------


def test_bin_map_svg_structure(dies) -> None:
    x, y, bins = dies
    data = render_bin_map(x, y, bins, TABLE, fmt="svg", title="Lot <L1> & wafer 3", subtitle="Yield 80%")
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "900" and root.get("height") == "700"
    assert root.find(f"{SVG}title").text == "Lot <L1> & wafer 3"
    group = root.find(f"{SVG}g[@class='dies']")
    paths = group.findall(f"{SVG}path")
    wm = bin_map(x, y, bins, TABLE)
    # One path per bin colour, one rectangle (subpath) per die when dies have a gap between them.
    assert wm.placement.gap > 0
    assert {p.get("fill") for p in paths} == set(wm.colors.values())
    per_bin = {int(p.get("data-bin")): p.get("d").count("M") for p in paths}
    assert per_bin == {r["bin"]: r["count"] for r in wm.legend}
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for name in ("GOOD", "GOOD_B", "OPENS", 'SCAN <&> "chain"'):
        assert name in text
    assert root.find(f"{SVG}circle[@class='wafer']") is not None


def test_svg_merges_runs_when_dies_touch() -> None:
    x, y = wafer(150)
    data = render_bin_map(x, y, np.ones(x.size, dtype=int), {1: ("GOOD", True)}, fmt="svg")
    root = ET.fromstring(data)
    paths = root.find(f"{SVG}g[@class='dies']").findall(f"{SVG}path")
    assert len(paths) == 1
    assert paths[0].get("d").count("M") == np.unique(y).size  # one run per row


def test_flat_and_notch_cut_the_outline(dies) -> None:
    x, y, bins = dies
    plain = bin_map(x, y, bins, TABLE)
    flat = bin_map(x, y, bins, TABLE, flat="D")
    notch = bin_map(x, y, bins, TABLE, flat="L", flat_kind="notch")
    a_plain, a_flat, a_notch = (png_pixels(m.to_png()) for m in (plain, flat, notch))
    pl = flat.placement
    below = (pl.cx, pl.cy + pl.radius * 0.985)
    assert pixel(a_flat, below) == rgb(CANVAS)  # beyond the flat
    assert pixel(a_plain, (plain.placement.cx, plain.placement.cy + plain.placement.radius * 0.97)) == rgb(WAFER_FILL)
    pn = notch.placement
    assert pixel(a_notch, (pn.cx - pn.radius * 0.99, pn.cy)) == rgb(CANVAS)  # inside the notch
    assert_die_colors(flat, a_flat, x, y, [flat.colors[int(b)] for b in bins])
    # Every die lies inside the outline polygon's reach (no die is cut by the flat).
    ys = np.array([flat.die_center(int(a), int(b))[1] for a, b in zip(x, y, strict=True)])
    assert ys.max() < pl.cy + pl.radius * 0.957
    root = ET.fromstring(flat.to_svg())
    assert root.find(f"{SVG}polygon[@class='wafer']") is not None


# ---------------------------------------------------------------------------------------------------
# Heat map
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def values(dies) -> np.ndarray:
    x, y, _ = dies
    v = 1.0 + 0.01 * (x - 20) + 0.002 * (y - 10)
    v = v.astype(float)
    v[(x == 22) & (y == 12)] = np.nan
    return v


def test_value_map_png_colours_nan_grey_and_colorbar(dies, values) -> None:
    x, y, _ = dies
    wm = value_map(x, y, values, title="VREF", units="V")
    arr = png_pixels(wm.to_png())
    assert arr.shape == (700, 900, 3)
    assert pixel(arr, wm.die_center(22, 12)) == rgb(NO_VALUE)
    finite = np.isfinite(values)
    i_min = int(np.nanargmin(values))
    i_max = int(np.nanargmax(values))
    assert pixel(arr, wm.die_center(int(x[i_min]), int(y[i_min]))) == tuple(colormap(0.0).tolist())
    assert pixel(arr, wm.die_center(int(x[i_max]), int(y[i_max]))) == tuple(colormap(1.0).tolist())
    # Every die with a value has exactly its colormap colour.
    t = (values - np.nanmin(values)) / (np.nanmax(values) - np.nanmin(values))
    for xi, yi, ti in zip(x[finite], y[finite], t[finite], strict=True):
        assert pixel(arr, wm.die_center(int(xi), int(yi))) == tuple(colormap(ti).tolist())
    # Colour bar: present, maximum at the top, minimum at the bottom.
    box = wm.colorbar_box
    assert box is not None
    x0, y0, x1, y1 = box
    assert tuple(arr[y0, (x0 + x1) // 2]) == tuple(colormap(1.0).tolist())
    assert tuple(arr[y1 - 1, (x0 + x1) // 2]) == tuple(colormap(0.0).tolist())
    texts = [p.text for p in wm.primitives if hasattr(p, "text")]
    assert any(t.endswith(" V") for t in texts)  # tick labels carry units
    assert "Value [V]" in texts


def test_value_map_limits_mark_out_of_limit_dies(dies, values) -> None:
    x, y, _ = dies
    wm = value_map(x, y, values, lo=0.95, hi=1.05)
    arr = png_pixels(wm.to_png())
    for xi, yi, v in zip(x.tolist(), y.tolist(), values.tolist(), strict=True):
        got = pixel(arr, wm.die_center(xi, yi))
        if v != v:
            assert got == rgb(NO_VALUE)
        elif v < 0.95:
            assert got == rgb(BELOW_LO)
        elif v > 1.05:
            assert got == rgb(ABOVE_HI)
        else:
            assert got not in (rgb(BELOW_LO), rgb(ABOVE_HI), rgb(NO_VALUE))
    stats = wm.legend[0]
    assert stats["below"] == int((values < 0.95).sum())
    assert stats["above"] == int((values > 1.05).sum())
    assert stats["no_value"] == 1


def test_value_map_robust_and_explicit_range(dies, values) -> None:
    x, y, _ = dies
    v = values.copy()
    v[0] = 1e6  # one wild outlier
    full = value_map(x, y, v)
    robust = value_map(x, y, v, robust=True)
    fixed = value_map(x, y, v, vmin=0.9, vmax=1.1)
    assert full.legend[0]["vmax"] == 1e6
    assert robust.legend[0]["vmax"] < 2.0
    assert robust.legend[0]["vmax"] == pytest.approx(np.nanpercentile(v, 99))
    assert (fixed.legend[0]["vmin"], fixed.legend[0]["vmax"]) == (0.9, 1.1)
    arr = png_pixels(robust.to_png())
    assert pixel(arr, robust.die_center(int(x[0]), int(y[0]))) == tuple(colormap(1.0).tolist())  # clipped


def test_value_map_svg(dies, values) -> None:
    x, y, _ = dies
    data = render_value_map(x, y, values, fmt="svg", title="VREF & <IDD>", units="mV", lo=0.95)
    root = ET.fromstring(data)
    assert root.find(f"{SVG}title").text == "VREF & <IDD>"
    assert root.find(f".//{SVG}linearGradient") is not None
    assert root.find(f"{SVG}rect[@class='colorbar']") is not None
    paths = root.find(f"{SVG}g[@class='dies']").findall(f"{SVG}path")
    assert sum(p.get("d").count("M") for p in paths) == x.size
    assert NO_VALUE in {p.get("fill") for p in paths}


def test_value_map_all_nan_and_constant() -> None:
    x, y = wafer(4)
    for v in (np.full(x.size, np.nan), np.full(x.size, 3.3)):
        wm = value_map(x, y, v, units="V")
        png_pixels(wm.to_png())
        ET.fromstring(wm.to_svg())


# ---------------------------------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------------------------------


def test_sizes_scale_from_tiny_to_large() -> None:
    x = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 1])
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3])
    bins = np.array([1, 1, 2, 1, 3, 1, 1, 1, 2, 1])
    for w, h in ((400, 300), (900, 700), (1800, 1400)):
        wm = bin_map(x, y, bins, width=w, height=h, flat="U")
        arr = png_pixels(wm.to_png())
        assert arr.shape == (h, w, 3)
        assert_die_colors(wm, arr, x, y, [wm.colors[int(b)] for b in bins])
    with pytest.raises(ValueError):
        bin_map(x, y, bins, width=100, height=80)


def test_no_dies_renders_an_empty_wafer() -> None:
    for fmt in ("png", "svg"):
        data = render_bin_map([], [], [], fmt=fmt)
        assert data
    data = render_value_map([], [], [], fmt="png")
    png_pixels(data)


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        bin_map([0, 1], [0], [1, 1])
    with pytest.raises(ValueError):
        bin_map([0], [0], [1, 2])
    with pytest.raises(ValueError):
        bin_map([0], [0], [1], pos_x="X")
    with pytest.raises(ValueError):
        bin_map([0], [0], [1], flat="Q")
    with pytest.raises(ValueError):
        render_bin_map([0], [0], [1], fmt="jpg")  # type: ignore[arg-type]


def test_text_that_the_font_or_xml_cannot_carry() -> None:
    table = {1: ("Ωhm µA – \x00\x1b end " + "X" * 200, True)}
    wm = bin_map([0, 1], [0, 0], [1, 1], table, title="wafer\x07 «1»", subtitle=["a\nb"])
    png_pixels(wm.to_png())
    root = ET.fromstring(wm.to_svg())
    assert root.find(f"{SVG}title").text == "wafer «1»"


def test_units_known_si_normalised_case_insensitively_and_non_si_never_prefixed():
    from stratum.render.legend import value_format

    amps = value_format(0.0500, 0.0520, 0.0005, "a")  # Teradyne writes amperes as 'a'
    assert (amps.unit, amps(0.05104, 1)) == ("mA", "51.04 mA")
    assert value_format(0, 2.5e3, 500, "v")(2500) == "2.5 kV"
    assert value_format(0, 12000, 2000, "LSB")(12000) == "12000 LSB"  # a count: no 'k'
    assert value_format(0, 0.004, 0.001, "LSB")(0.002) == "0.002 LSB"  # no "m"


def test_die_aspect_from_wcr_else_inferred_round():
    from stratum.render.diemap import MapData, die_aspect

    xs, ys = np.meshgrid(np.arange(10), np.arange(20))
    dies = {"x": xs.ravel().tolist(), "y": ys.ravel().tolist()}
    o = {"die_width": 2.21, "die_height": 3.13}
    data = MapData("L", "W", dies, {"H": {}, "S": {}}, o, None, {}, "job")
    assert die_aspect(data) == (2.21 / 3.13, "wcr")
    data.orientation = {"die_width": 0.0, "die_height": 0.0}  # WCR without a die size
    assert die_aspect(data) == (2.0, "inferred")  # 10 columns x 20 rows: dies twice as wide as tall
