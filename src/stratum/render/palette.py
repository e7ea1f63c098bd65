"""Colours: the figure palette, bin colours (pass greens, fail reds) and the viridis ramp of heat maps."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
VIRIDIS_ANCHORS = (
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
LUT_SIZE = 256


def hex_to_rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


@lru_cache(maxsize=4)
def colormap_lut(n: int = LUT_SIZE) -> NDArray[np.uint8]:
    anchors = np.array([hex_to_rgb(c) for c in VIRIDIS_ANCHORS], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    lut = np.stack([np.interp(t, pos, anchors[:, k]) for k in range(3)], axis=1)
    return np.rint(lut).astype(np.uint8)


def colormap(t: ArrayLike) -> NDArray[np.uint8]:
    """Viridis-like RGB (uint8, shape (..., 3)) for t in [0, 1] (clipped; NaN maps to 0)."""
    a = np.nan_to_num(np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0))
    return colormap_lut()[np.rint(a * (LUT_SIZE - 1)).astype(np.intp)]


def bin_color(bin_number: int, passed: bool | None) -> str:
    """Base colour of a bin: a green for pass bins, a distinct non-green for fail (or unknown) bins.

    Depends only on the bin number and its pass flag, so a bin looks the same on every map.
    """
    if passed:
        return PASS_COLORS[(int(bin_number) - 1) % len(PASS_COLORS)]
    return FAIL_COLORS[(int(bin_number) - 2) % len(FAIL_COLORS)]


def shade(hex_color: str, f: float) -> str:
    """Darker (f < 1) or lighter (f > 1: mix towards white) variant of a colour."""
    rgb = np.array(hex_to_rgb(hex_color), dtype=np.float64)
    out = rgb * f if f < 1 else rgb + (255.0 - rgb) * (f - 1.0)
    return rgb_to_hex(np.clip(np.rint(out), 0, 255).astype(int).tolist())


# Extra colours used only when one map has more bins of a kind than its base palette holds.
PASS_EXTENDED = PASS_COLORS + tuple(shade(c, 0.65) for c in PASS_COLORS)
FAIL_EXTENDED = FAIL_COLORS + tuple(shade(c, 0.6) for c in FAIL_COLORS) + tuple(shade(c, 1.45) for c in FAIL_COLORS)
