"""What both synthetic generators share: the die map and the PTR/MPR OPT_FLAG of a default-data record."""

from __future__ import annotations

import numpy as np

from stratum.stdf.flags import OPT_NO_HI_LIMIT, OPT_NO_HI_SPEC, OPT_NO_LO_LIMIT, OPT_NO_LO_SPEC, OPT_NO_START_INCR

# FTR OPT_FLAG: bits 6/7 reserved (set); bit 0 CYCL_CNT, 1 REL_VADR, 2 REPT_CNT, 3 NUM_FAIL, 4 X/YFAIL_AD,
# 5 VECT_OFF invalid when set
FTR_OPT_PASS = 0xFE
FTR_OPT_FAIL = 0xF6


def ptr_opt_flag(lo: float | None, hi: float | None, lo_spec: float | None, hi_spec: float | None) -> int:
    """PTR/MPR OPT_FLAG of a record carrying default data (bit 1 is reserved and set)."""
    return (
        OPT_NO_START_INCR
        | (OPT_NO_LO_SPEC if lo_spec is None else 0)
        | (OPT_NO_HI_SPEC if hi_spec is None else 0)
        | (OPT_NO_LO_LIMIT if lo is None else 0)
        | (OPT_NO_HI_LIMIT if hi is None else 0)
    )


def die_map(diameter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dies of a circular wafer ``diameter`` dies across (die centres inside the circle), in serpentine
    probing order: the first row left to right, the next right to left, and so on.

    Returns ``(x, y, r)`` with ``r`` the distance from the centre normalised to the wafer radius.
    """
    c = (diameter - 1) / 2.0
    radius = diameter / 2.0
    yy, xx = np.mgrid[0:diameter, 0:diameter]
    d = np.hypot(xx - c, yy - c)
    keep = d <= radius
    x, y, r = xx[keep], yy[keep], d[keep] / radius
    row = y - y.min()
    order = np.lexsort((np.where(row % 2 == 0, x, -x), y))
    return x[order].astype(np.int16), y[order].astype(np.int16), r[order]
