"""The PRR fields a wafer map needs, read from the STDF reader's ``parts`` columns (ingest and the API)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stratum.stdf.columns import Masked


def die_columns(cols: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """The PRR fields a wafer map needs, copied (x/y -32768 = missing)."""

    def arr(name: str, dtype, fill) -> np.ndarray:
        v = cols.get(name)
        if v is None:
            return np.full(n, fill, dtype)
        if isinstance(v, Masked):
            a = np.asarray(v.values).astype(dtype)
            a[~np.asarray(v.valid, bool)] = fill
            return a
        return np.asarray(v).astype(dtype)

    passed = cols.get("passed")
    if isinstance(passed, Masked):
        pv, known = np.asarray(passed.values, bool), np.asarray(passed.valid, bool)
    elif passed is not None:
        pv, known = np.asarray(passed, bool), np.ones(n, bool)
    else:
        pv, known = np.zeros(n, bool), np.zeros(n, bool)
    return {
        "passed_known": known.copy(),
        "x": arr("x", np.int64, -32768),
        "y": arr("y", np.int64, -32768),
        "wafer_seq": arr("wafer_seq", np.int64, -1),
        "site_num": arr("site_num", np.int64, -1),
        "hard_bin": arr("hard_bin", np.int64, -1),
        "passed": pv.copy(),
    }
