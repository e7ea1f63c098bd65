"""The names of the sigma estimators capability supports, importable without numpy (the API declares them
as a query parameter's choices at import time; `capability` computes them)."""

from __future__ import annotations

ESTIMATORS: tuple[str, ...] = (
    "pooled",
    "jmp_ranges",
    "jmp_sbar",
    "minitab_rbar",
    "minitab_sbar",
    "minitab_default",
)
