"""Float32 presentation: values stored as FLOAT (STDF R*4) are shown at float32 precision."""

from __future__ import annotations

import math
import struct
from typing import Any


def float32_value(v: Any) -> Any:
    """A float read from a FLOAT (float32) column as the shortest decimal that is the same float32
    (``1e-05``, not ``9.999999747378752e-06``); lists element-wise; anything else unchanged."""
    if isinstance(v, list):
        return [float32_value(x) for x in v]
    if not isinstance(v, float) or not math.isfinite(v):
        return v
    try:
        bits = struct.pack("<f", v)
    except OverflowError:
        return v
    for digits in range(6, 10):  # %g drops trailing zeros: 6 digits covers every shorter form
        text = f"{v:.{digits}g}"
        if struct.pack("<f", float(text)) == bits:
            return float(text)
    return v


def float32_columns(description: Any) -> list[int]:
    """Positions of the FLOAT and FLOAT[] columns of a DuckDB result description."""
    return [i for i, d in enumerate(description or []) if str(d[1]) in ("FLOAT", "FLOAT[]")]
