"""Process capability: Cp, Cpl, Cpu, Cpk (within sigma) and Pp, Ppl, Ppu, Ppk (overall sigma).

The default (``estimator="pooled"``) is the platform's own convention:

* x̄ is the grand mean of all valid results (not the mean of the wafer means);
* σ_o is the overall sample SD (N−1), divided by c4(N) when ``unbias``;
* σ_w is the pooled within-subgroup SD, d = Σ(n_i − 1) over subgroups with n_i ≥ 2, divided by
  c4(d+1) when ``unbias``; with no subgroup information or d == 0, σ_w := σ_o ("overall_fallback");
* one-sided limits give Cp = Pp = None and Cpk/Ppk = the side that exists; no limits give no indices;
* σ = 0 or N < 2 give None. Results never contain ±inf or NaN (``None`` instead).

The inputs are sufficient statistics, because the lake computes them in SQL: per subgroup (wafer)
n_i, mean_i, var_i (sample variance, N−1), min_i and max_i, plus the overall N, mean and sample
variance, which the caller computes directly for numerical stability. ``from_values`` builds the same
statistics from raw values with numpy.

The core is vectorised over tests: ``compute_many`` takes arrays of shape ``(T,)`` for the overall
statistics and a :class:`SubgroupStats` of shape ``(T, G)`` (subgroups padded with n = 0), and
``compute_capability`` is the one-test wrapper around the same code, so both paths agree exactly.

Compatibility estimators (``jmp_ranges``, ``jmp_sbar``, ``minitab_rbar``, ``minitab_sbar``,
``minitab_default``) reproduce JMP's and Minitab's within-sigma estimators (ranges or standard deviations of
the subgroups, pooled or averaged, each with its bias constant). They use the classic 3-decimal d2/d3 table
(n = 2..50; n > 50 uses the n = 50 values, as JMP does) unless ``exact_constants=True``, which uses
d2/d3 from numerical integration of the normal range distribution for every n.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .estimators import ESTIMATORS

__all__ = [
    "ESTIMATORS",
    "CapabilityBatch",
    "CapabilityResult",
    "SampleStats",
    "SubgroupStats",
    "c4",
    "c4_array",
    "compute_capability",
    "compute_many",
    "d2",
    "d2_table",
    "d3",
    "d3_table",
    "from_values",
]

FloatArray = NDArray[np.float64]

_RANGE_ESTIMATORS = frozenset({"jmp_ranges", "minitab_rbar"})
_POOLED_ESTIMATORS = frozenset({"pooled", "minitab_default"})

OVERALL_FALLBACK = "overall_fallback"

# A sigma at or below this multiple of |x̄|·eps is floating-point noise (e.g. the variance of a
# constant column computed by a SQL engine), not process variation: it is treated as 0.
_SIGMA_NOISE_ULPS = 16.0

# ---------------------------------------------------------------------------------------------------
# c4
# ---------------------------------------------------------------------------------------------------

_C4_LGAMMA_MAX_N = 100  # lgamma below, the asymptotic series above (exact to double precision there)


def _log_c4_series(z: FloatArray | float) -> Any:
    """log c4 for z = (n−1)/2 ≥ 50: lnΓ(z+½) − lnΓ(z) − ½ln z, asymptotic in 1/z.

    lgamma itself loses absolute precision as its value grows (≈ 6e6 at n = 1e6, so ~1e-9 absolute in
    the difference); this series has no cancellation and its truncation error is below 1e-16 for z ≥ 50.
    """
    zi = 1.0 / z
    z2 = zi * zi
    return zi * (-1.0 / 8.0 + z2 * (1.0 / 192.0 + z2 * (-1.0 / 640.0 + z2 * (17.0 / 14336.0))))


def _log_c4_scalar(n: float) -> float:
    z = (n - 1.0) / 2.0
    if n <= _C4_LGAMMA_MAX_N:
        return math.lgamma(n / 2.0) - math.lgamma(z) - 0.5 * math.log(z)
    return float(_log_c4_series(z))


_LOG_C4_TABLE = np.array(
    [math.nan, math.nan] + [_log_c4_scalar(float(k)) for k in range(2, _C4_LGAMMA_MAX_N + 1)],
    dtype=np.float64,
)


def c4(n: float) -> float:
    """Unbiasing constant c4(n) = sqrt(2/(n−1))·Γ(n/2)/Γ((n−1)/2), with E[s] = c4·σ for normal data.

    Stable for n in the millions (c4(1e6) = 1 − 2.5e-7 to full precision). Raises for n < 2.
    """
    n = float(n)
    if not (n >= 2.0 and math.isfinite(n)):
        raise ValueError(f"c4(n) needs n >= 2, got {n}")
    return math.exp(_log_c4_scalar(n))


def _log_c4_array(n: ArrayLike) -> FloatArray:
    """Vectorised log c4 for integer-valued counts; NaN where n < 2."""
    a = np.asarray(n, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    small = (a >= 2.0) & (a <= _C4_LGAMMA_MAX_N)
    if small.any():
        out[small] = _LOG_C4_TABLE[np.rint(a[small]).astype(np.intp)]
    big = (a > _C4_LGAMMA_MAX_N) & np.isfinite(a)
    if big.any():
        out[big] = _log_c4_series((a[big] - 1.0) / 2.0)
    return out


def c4_array(n: ArrayLike) -> FloatArray:
    """Vectorised :func:`c4` for counts; NaN where n < 2."""
    return np.exp(_log_c4_array(n))


# ---------------------------------------------------------------------------------------------------
# d2, d3: exact (numerical integration of the normal range distribution) and the classic table
# ---------------------------------------------------------------------------------------------------

# Classic 3-decimal tables for n = 2..50 (index n − 2). They are the exact values below rounded to
# 3 decimals (tests check this), which is what the Harter-based tables used by JMP and Minitab print.
D2_TABLE: tuple[float, ...] = (
    1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078, 3.173,
    3.258, 3.336, 3.407, 3.472, 3.532, 3.588, 3.640, 3.689, 3.735, 3.778,
    3.819, 3.858, 3.895, 3.931, 3.964, 3.997, 4.027, 4.057, 4.086, 4.113,
    4.139, 4.165, 4.189, 4.213, 4.236, 4.259, 4.280, 4.301, 4.322, 4.341,
    4.361, 4.379, 4.398, 4.415, 4.433, 4.450, 4.466, 4.482, 4.498,
)  # fmt: skip
D3_TABLE: tuple[float, ...] = (
    0.853, 0.888, 0.880, 0.864, 0.848, 0.833, 0.820, 0.808, 0.797, 0.787,
    0.778, 0.770, 0.763, 0.756, 0.750, 0.744, 0.739, 0.733, 0.729, 0.724,
    0.720, 0.716, 0.712, 0.708, 0.705, 0.702, 0.699, 0.696, 0.693, 0.690,
    0.687, 0.685, 0.682, 0.680, 0.678, 0.675, 0.673, 0.671, 0.669, 0.667,
    0.665, 0.664, 0.662, 0.660, 0.658, 0.657, 0.655, 0.654, 0.652,
)  # fmt: skip
TABLE_MAX_N = 50

_D2_TAB = np.array([math.nan, math.nan, *D2_TABLE])
_D3_TAB = np.array([math.nan, math.nan, *D3_TABLE])

# Integration grid: step h over x ∈ [−L, L] (the normal density is < 1e-21 outside) and ranges
# w ∈ [0, 2L]. The integrands are smooth and decay at both ends, so the trapezoid rule converges
# spectrally; the one non-decaying end (w = 0 in E[R²]) gets its Euler–Maclaurin h²/12 term.
# h = 0.02 agrees with h = 0.005 to ~1e-13 for d2 and d3.
_GRID_H = 0.02
_GRID_L = 10.0


@lru_cache(maxsize=1)
def _range_grid() -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """x grid over [−L, 3L], Φ(x), Q(x) = 1 − Φ(x) (both accurate in their tails) and φ(x)."""
    m = int(round(4 * _GRID_L / _GRID_H))
    x = -_GRID_L + _GRID_H * np.arange(m + 1, dtype=np.float64)
    erfc = np.frompyfunc(math.erfc, 1, 1)
    phi_cdf = np.asarray(erfc(-x / math.sqrt(2.0))).astype(np.float64) / 2.0
    q = np.asarray(erfc(x / math.sqrt(2.0))).astype(np.float64) / 2.0
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x, phi_cdf, q, pdf


@lru_cache(maxsize=1)
def _range_diff_matrix() -> FloatArray:
    """D[k, i] = Φ(x_i + w_k) − Φ(x_i) for x_i ∈ [−L, L], w_k = k·h ∈ [0, 2L]."""
    x, phi_cdf, q, _ = _range_grid()
    nx = int(round(2 * _GRID_L / _GRID_H)) + 1
    idx = np.arange(nx)[None, :] + np.arange(nx)[:, None]
    lower = np.arange(nx)[None, :]
    # Difference of Φ below 0 and of Q above 0 so neither side cancels near 1.
    return np.where(x[:nx][None, :] < 0.0, phi_cdf[idx] - phi_cdf[lower], q[lower] - q[idx])


@lru_cache(maxsize=1)
def _range_log_diff_matrix() -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.log(_range_diff_matrix())  # −inf at w = 0; exp(−inf) = 0


def _check_n(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"subgroup size must be an integer >= 2, got {n!r}")
    return int(n)


@lru_cache(maxsize=4096)
def d2(n: int) -> float:
    """Exact d2(n) = E[range]/σ for n normal values: ∫ 1 − Φ(x)ⁿ − (1 − Φ(x))ⁿ dx."""
    n = _check_n(n)
    x, phi_cdf, q, _ = _range_grid()
    sel = x <= _GRID_L + _GRID_H / 2
    integrand = 1.0 - phi_cdf[sel] ** n - q[sel] ** n
    return float(_GRID_H * integrand.sum())


@lru_cache(maxsize=4096)
def d3(n: int) -> float:
    """Exact d3(n) = SD(range)/σ for n normal values.

    E[R²] = 2∫₀^∞ w·P(R > w) dw with P(R ≤ w) = n∫φ(x)(Φ(x + w) − Φ(x))ⁿ⁻¹ dx, and d3 = sqrt(E[R²] − d2²).
    """
    n = _check_n(n)
    _, _, _, pdf = _range_grid()
    dmat = _range_diff_matrix()
    nx = dmat.shape[1]
    # Small powers by multiplication, large ones as exp(k·log D) (≈10× faster than pow, same accuracy).
    powered = dmat ** (n - 1) if n <= 8 else np.exp((n - 1) * _range_log_diff_matrix())
    cdf_r = n * _GRID_H * (powered @ pdf[:nx])
    w = _GRID_H * np.arange(dmat.shape[0])
    g = w * (1.0 - cdf_r)
    trapezoid = _GRID_H * (g.sum() - 0.5 * (g[0] + g[-1]))
    second_moment = 2.0 * (trapezoid + _GRID_H * _GRID_H / 12.0)  # g'(0) = 1, g' ≈ 0 at the far end
    return math.sqrt(second_moment - d2(n) ** 2)


def d2_table(n: int) -> float:
    """Classic table d2(n) (3 decimals); n > 50 uses the n = 50 value, as JMP does."""
    return float(_D2_TAB[min(_check_n(n), TABLE_MAX_N)])


def d3_table(n: int) -> float:
    """Classic table d3(n) (3 decimals); n > 50 uses the n = 50 value."""
    return float(_D3_TAB[min(_check_n(n), TABLE_MAX_N)])


def _const_array(n: FloatArray, use: NDArray[np.bool_], which: str, exact: bool) -> FloatArray:
    """d2 or d3 for every element of n where ``use``; NaN elsewhere."""
    out = np.full(n.shape, np.nan)
    if not use.any():
        return out
    ni = np.rint(n[use]).astype(np.int64)
    if exact:
        fn = d2 if which == "d2" else d3
        uniq, inv = np.unique(ni, return_inverse=True)
        vals = np.array([fn(int(k)) for k in uniq])
        out[use] = vals[inv]
    else:
        tab = _D2_TAB if which == "d2" else _D3_TAB
        out[use] = tab[np.minimum(ni, TABLE_MAX_N)]
    return out


# ---------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------


def _as_float(a: ArrayLike | None) -> FloatArray | None:
    return None if a is None else np.asarray(a, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SubgroupStats:
    """Per-subgroup (wafer) sufficient statistics; the last axis indexes subgroups.

    1-D arrays ``(G,)`` describe one test; 2-D arrays ``(T, G)`` describe T tests for
    :func:`compute_many` (pad missing subgroups with n = 0; see :meth:`from_long`).

    ``var`` is the sample variance (N−1); it is ignored where n < 2 (NaN is fine there). ``mean``,
    ``min`` and ``max`` are optional; the range-based estimators need ``min`` and ``max``. Values are
    converted to float64 arrays; None inside a sequence becomes NaN (a count of NaN counts as 0).
    """

    n: FloatArray
    var: FloatArray
    mean: FloatArray | None = None
    min: FloatArray | None = None
    max: FloatArray | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.n)
        for name in ("n", "var", "mean", "min", "max"):
            arr = _as_float(getattr(self, name))
            if arr is not None and arr.shape != shape:
                raise ValueError(f"SubgroupStats.{name} has shape {arr.shape}, expected {shape}")
            object.__setattr__(self, name, arr)
        if len(shape) not in (1, 2):
            raise ValueError(f"SubgroupStats arrays must be 1-D (G,) or 2-D (T, G), got shape {shape}")

    @property
    def count(self) -> int:
        """Number of subgroup slots (including padding)."""
        return int(self.n.shape[-1])

    @classmethod
    def from_long(
        cls,
        row: ArrayLike,
        n: ArrayLike,
        var: ArrayLike,
        mean: ArrayLike | None = None,
        min: ArrayLike | None = None,
        max: ArrayLike | None = None,
        *,
        n_rows: int | None = None,
    ) -> SubgroupStats:
        """Pivot long-format rows (one per test × subgroup, as SQL returns them) to padded (T, G).

        ``row`` is the test index 0..T−1 of each record; records may come in any order.
        """
        r = np.asarray(row, dtype=np.intp).ravel()
        t = int(n_rows if n_rows is not None else (r.max() + 1 if r.size else 0))
        if r.size and (r.min() < 0 or r.max() >= t):
            raise ValueError("row indices must lie in [0, n_rows)")
        order = np.argsort(r, kind="stable")
        rs = r[order]
        counts = np.bincount(rs, minlength=t)
        g = int(counts.max()) if t and r.size else 0
        starts = np.cumsum(counts) - counts
        col = np.arange(rs.size) - starts[rs]

        def pad(a: ArrayLike | None, fill: float) -> FloatArray | None:
            if a is None:
                return None
            src = np.asarray(a, dtype=np.float64).ravel()
            if src.shape != r.shape:
                raise ValueError("every column must have one value per row index")
            out = np.full((t, g), fill)
            out[rs, col] = src[order]
            return out

        return cls(
            n=pad(n, 0.0),  # type: ignore[arg-type]
            var=pad(var, math.nan),  # type: ignore[arg-type]
            mean=pad(mean, math.nan),
            min=pad(min, math.nan),
            max=pad(max, math.nan),
        )


@dataclass(frozen=True, eq=False)
class SampleStats:
    """Sufficient statistics of one test in scope: overall N, mean, sample variance (N−1), subgroups.

    ``var`` is NaN (or anything) when n < 2. ``subgroups=None`` means no subgroup (wafer) information.
    """

    n: int
    mean: float
    var: float
    subgroups: SubgroupStats | None = None

    def __post_init__(self) -> None:
        if self.subgroups is not None and self.subgroups.n.ndim != 1:
            raise ValueError("SampleStats.subgroups must be 1-D (one test); use compute_many for batches")

    @classmethod
    def from_subgroups(cls, subgroups: SubgroupStats) -> SampleStats:
        """Combine per-subgroup statistics into the overall ones (needs ``mean``).

        Uses the exact decomposition Σ(n_i−1)var_i + Σ n_i(mean_i − x̄)². Prefer an overall variance
        computed directly from the data when one is available.
        """
        if subgroups.mean is None:
            raise ValueError("SubgroupStats.mean is required to combine subgroups")
        if subgroups.n.ndim != 1:
            raise ValueError("from_subgroups takes 1-D SubgroupStats")
        ni = np.where(np.isfinite(subgroups.n), subgroups.n, 0.0)
        has = ni > 0
        total = float(ni.sum())
        if total == 0:
            return cls(0, math.nan, math.nan, subgroups)
        mi = np.where(has, subgroups.mean, 0.0)
        ref = float(mi[has][0])
        grand = ref + float(np.sum(ni * (mi - ref)) / total)
        if total < 2:
            return cls(int(total), grand, math.nan, subgroups)
        within = np.where(ni >= 2, (ni - 1.0) * np.maximum(np.nan_to_num(subgroups.var), 0.0), 0.0)
        between = np.where(has, ni * (mi - grand) ** 2, 0.0)
        return cls(int(total), grand, float((within.sum() + between.sum()) / (total - 1.0)), subgroups)


def _mean_var(x: FloatArray) -> tuple[float, float]:
    if x.size == 0:
        return math.nan, math.nan
    ref = float(x[0])
    y = x - ref
    mean = ref + float(y.mean())
    if x.size < 2:
        return mean, math.nan
    if float(x.min()) == float(x.max()):
        return mean, 0.0
    return mean, float(y.var(ddof=1))


def from_values(values: ArrayLike, groups: ArrayLike | None = None) -> SampleStats:
    """Sufficient statistics from raw values; ``groups`` is the subgroup (wafer) key of each value.

    Non-finite values are dropped (validity masking proper is the caller's job). ``groups=None`` means
    no subgroup information (σ_w falls back to σ_o). Subgroups are ordered by sorted key.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(x)
    gk = None
    if groups is not None:
        gk = np.asarray(groups).ravel()
        if gk.shape != x.shape:
            raise ValueError(f"groups has {gk.size} entries for {x.size} values")
        gk = gk[keep]
    x = x[keep]
    mean, var = _mean_var(x)
    if gk is None:
        return SampleStats(int(x.size), mean, var, None)

    keys, inv = np.unique(gk, return_inverse=True)
    inv = inv.ravel()
    n_groups = keys.size
    order = np.argsort(inv, kind="stable")
    xs = x[order]
    gi = inv[order]
    counts = np.bincount(gi, minlength=n_groups).astype(np.float64)
    if n_groups == 0:
        empty = np.zeros(0)
        return SampleStats(0, mean, var, SubgroupStats(empty, empty, empty, empty, empty))
    starts = (np.cumsum(counts) - counts).astype(np.intp)
    ref = xs[starts]  # shift each subgroup by its first value: sums stay small, no cancellation
    y = xs - ref[gi]
    mu = np.bincount(gi, weights=y, minlength=n_groups) / counts
    dev = y - mu[gi]
    ss = np.bincount(gi, weights=dev * dev, minlength=n_groups)
    mn = np.minimum.reduceat(xs, starts)
    mx = np.maximum.reduceat(xs, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_i = np.where(counts >= 2, ss / (counts - 1.0), np.nan)
    var_i = np.where((counts >= 2) & (mn == mx), 0.0, var_i)
    sub = SubgroupStats(n=counts, var=var_i, mean=ref + mu, min=mn, max=mx)
    return SampleStats(int(x.size), mean, var, sub)


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


def _opt(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class CapabilityResult:
    """Capability of one test. Every float is finite or None (never NaN or ±inf)."""

    n: int
    mean: float | None
    sigma_within: float | None
    sigma_overall: float | None
    sigma_within_source: str  # "pooled" | "overall_fallback" | compatibility estimator name
    cp: float | None
    cpl: float | None
    cpu: float | None
    cpk: float | None
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float | None
    lsl: float | None
    usl: float | None
    estimator: str
    unbias: bool
    subgroups: int  # subgroups used for σ_w (n_i ≥ 2)
    exact_constants: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FLOAT_FIELDS = ("mean", "sigma_within", "sigma_overall", "cp", "cpl", "cpu", "cpk", "pp", "ppl", "ppu", "ppk")
_NULLABLE_FIELDS = frozenset({*_FLOAT_FIELDS, "lsl", "usl"})
_SCALAR_FIELDS = frozenset({"estimator", "unbias", "exact_constants"})


@dataclass(frozen=True, eq=False)
class CapabilityBatch:
    """Capability of T tests as arrays of shape (T,). In the float arrays NaN means null.

    Use :meth:`to_dicts` / :meth:`results` (or index it) for API output, where NaN becomes None.
    """

    n: NDArray[np.int64]
    mean: FloatArray
    sigma_within: FloatArray
    sigma_overall: FloatArray
    sigma_within_source: NDArray[np.str_]
    cp: FloatArray
    cpl: FloatArray
    cpu: FloatArray
    cpk: FloatArray
    pp: FloatArray
    ppl: FloatArray
    ppu: FloatArray
    ppk: FloatArray
    lsl: FloatArray
    usl: FloatArray
    estimator: str
    unbias: bool
    subgroups: NDArray[np.int64]
    exact_constants: bool = False

    def __len__(self) -> int:
        return int(self.n.shape[0])

    def __getitem__(self, i: int) -> CapabilityResult:
        return CapabilityResult(**self._row_dict(i))

    def _row_dict(self, i: int) -> dict[str, Any]:
        row: dict[str, Any] = {"n": int(self.n[i])}
        for name in _FLOAT_FIELDS:
            row[name] = _opt(float(getattr(self, name)[i]))
        row["sigma_within_source"] = str(self.sigma_within_source[i])
        row["lsl"] = _opt(float(self.lsl[i]))
        row["usl"] = _opt(float(self.usl[i]))
        row.update(estimator=self.estimator, unbias=self.unbias, subgroups=int(self.subgroups[i]))
        row["exact_constants"] = self.exact_constants
        return row

    def results(self) -> list[CapabilityResult]:
        return [CapabilityResult(**d) for d in self.to_dicts()]

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready rows (NaN → None), in the field order of :class:`CapabilityResult`."""
        t = len(self)
        columns: list[list[Any]] = []
        for name in CapabilityResult.__dataclass_fields__:
            value = getattr(self, name)
            if name in _SCALAR_FIELDS:
                columns.append([value] * t)
            elif name in _NULLABLE_FIELDS:
                columns.append([None if v != v else v for v in value.tolist()])  # v != v: NaN
            else:
                columns.append(value.tolist())
        keys = tuple(CapabilityResult.__dataclass_fields__)
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


# ---------------------------------------------------------------------------------------------------
# Core (vectorised over tests)
# ---------------------------------------------------------------------------------------------------


def _limit_array(v: ArrayLike | None, t: int) -> FloatArray:
    if v is None:
        return np.full(t, np.nan)
    a = np.broadcast_to(np.asarray(v, dtype=np.float64), (t,)).copy()
    a[~np.isfinite(a)] = np.nan  # ±inf limit = absent
    return a


def _indices(sigma: FloatArray, ok: NDArray[np.bool_], mean: FloatArray, lsl: FloatArray, usl: FloatArray):
    """(p, pl, pu, pk) for one sigma; NaN wherever undefined."""
    has_l = np.isfinite(lsl)
    has_u = np.isfinite(usl)
    s = np.where(ok, sigma, np.nan)
    p = np.where(has_l & has_u, (usl - lsl) / (6.0 * s), np.nan)
    pl = np.where(has_l, (mean - lsl) / (3.0 * s), np.nan)
    pu = np.where(has_u, (usl - mean) / (3.0 * s), np.nan)
    pk = np.fmin(pl, pu)  # fmin skips NaN: one-sided limits give the existing side
    return tuple(np.where(np.isfinite(a), a, np.nan) for a in (p, pl, pu, pk))


def compute_many(
    n: ArrayLike,
    mean: ArrayLike,
    var: ArrayLike,
    lsl: ArrayLike | None = None,
    usl: ArrayLike | None = None,
    *,
    subgroups: SubgroupStats | None = None,
    unbias: bool = False,
    estimator: str = "pooled",
    exact_constants: bool = False,
) -> CapabilityBatch:
    """Capability for T tests at once.

    ``n``, ``mean``, ``var``: overall count, grand mean and sample variance (N−1) per test, shape (T,).
    ``lsl``, ``usl``: scalars or (T,) arrays; None/NaN/±inf = absent. ``subgroups``: 2-D
    :class:`SubgroupStats` of shape (T, G), padded with n = 0, or None for no subgroup information.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    n_all = np.atleast_1d(np.asarray(n, dtype=np.float64))
    if n_all.ndim != 1:
        raise ValueError("n must be 1-D (one entry per test)")
    t = n_all.shape[0]
    n_all = np.where(np.isfinite(n_all), n_all, 0.0)
    mu = np.broadcast_to(np.asarray(mean, dtype=np.float64), (t,))
    v_all = np.broadcast_to(np.asarray(var, dtype=np.float64), (t,))
    lo = _limit_array(lsl, t)
    hi = _limit_array(usl, t)

    with np.errstate(all="ignore"):
        enough = n_all >= 2
        mu = np.where(n_all >= 1, mu, np.nan)
        s_o = np.where(enough, np.sqrt(np.maximum(v_all, 0.0)), np.nan)  # NaN var stays NaN
        sigma_o = s_o / c4_array(n_all) if unbias else s_o

        d, used, sigma_w_raw = _within(n_all, s_o, subgroups, t, estimator, unbias, exact_constants)
        fallback = d <= 0
        sigma_w = np.where(fallback, sigma_o, sigma_w_raw)
        source_name = "pooled" if estimator == "pooled" else estimator
        source = np.where(fallback, OVERALL_FALLBACK, source_name)

        noise = _SIGMA_NOISE_ULPS * np.finfo(np.float64).eps * np.abs(mu)
        sigma_o = np.where(np.isfinite(sigma_o) & (sigma_o <= noise), 0.0, sigma_o)
        sigma_w = np.where(np.isfinite(sigma_w) & (sigma_w <= noise), 0.0, sigma_w)
        sigma_o = np.where(enough & np.isfinite(sigma_o), sigma_o, np.nan)
        sigma_w = np.where(enough & np.isfinite(sigma_w), sigma_w, np.nan)

        cp, cpl, cpu, cpk = _indices(sigma_w, sigma_w > 0, mu, lo, hi)
        pp, ppl, ppu, ppk = _indices(sigma_o, sigma_o > 0, mu, lo, hi)

    return CapabilityBatch(
        n=n_all.astype(np.int64),
        mean=np.where(np.isfinite(mu), mu, np.nan),
        sigma_within=sigma_w,
        sigma_overall=sigma_o,
        sigma_within_source=source,
        cp=cp,
        cpl=cpl,
        cpu=cpu,
        cpk=cpk,
        pp=pp,
        ppl=ppl,
        ppu=ppu,
        ppk=ppk,
        lsl=lo,
        usl=hi,
        estimator=estimator,
        unbias=bool(unbias),
        subgroups=used.astype(np.int64),
        exact_constants=bool(exact_constants),
    )


def _within(
    n_all: FloatArray,
    s_o: FloatArray,
    sub: SubgroupStats | None,
    t: int,
    estimator: str,
    unbias: bool,
    exact: bool,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(d, subgroups used, σ_w before the fallback) per test."""
    if sub is None or sub.count == 0:
        zero = np.zeros(t)
        return zero, zero, np.full(t, np.nan)
    if sub.n.ndim != 2 or sub.n.shape[0] != t:
        raise ValueError(f"subgroups must have shape ({t}, G), got {sub.n.shape}")

    ni = np.where(np.isfinite(sub.n), sub.n, 0.0)
    use = ni >= 2
    if estimator in _RANGE_ESTIMATORS:
        if sub.min is None or sub.max is None:
            raise ValueError(f"estimator {estimator!r} needs subgroup min and max")
        rng = sub.max - sub.min
        use &= np.isfinite(rng)
        rng = np.where(use, np.maximum(rng, 0.0), 0.0)
        vi = None
    else:
        use &= np.isfinite(sub.var)
        vi = np.where(use, np.maximum(sub.var, 0.0), 0.0)
    d = np.where(use, ni - 1.0, 0.0).sum(axis=1)
    g = use.sum(axis=1).astype(np.float64)

    if estimator in _POOLED_ESTIMATORS:
        assert vi is not None
        s_p = np.sqrt(np.where(use, (ni - 1.0) * vi, 0.0).sum(axis=1) / d)
        # One subgroup holding every value: d = N − 1 and S_p is, mathematically, the overall s.
        # Use that very number so Cp = Pp holds exactly (not just to the last bit).
        s_p = np.where(d == n_all - 1.0, s_o, s_p)
        if estimator == "minitab_default" or unbias:
            return d, g, s_p / c4_array(d + 1.0)
        return d, g, s_p

    if estimator in _RANGE_ESTIMATORS:
        k2 = _const_array(ni, use, "d2", exact)
        per = np.where(use, rng / k2, 0.0)
        if estimator == "jmp_ranges":
            return d, g, per.sum(axis=1) / g
        k3 = _const_array(ni, use, "d3", exact)
        f = np.where(use, (k2 / k3) ** 2, 0.0)
        return d, g, (f * per).sum(axis=1) / f.sum(axis=1)

    assert vi is not None
    s_i = np.sqrt(vi)
    log_c = np.where(use, _log_c4_array(np.where(use, ni, 2.0)), 0.0)
    c = np.exp(log_c)
    if estimator == "jmp_sbar":
        return d, g, np.where(use, s_i / c, 0.0).sum(axis=1) / g
    # minitab_sbar: Σ c_i s_i/(1 − c_i²) / Σ c_i²/(1 − c_i²); 1 − c² = −expm1(2 log c), no cancellation.
    one_minus = np.where(use, -np.expm1(2.0 * log_c), 1.0)
    num = np.where(use, c * s_i / one_minus, 0.0).sum(axis=1)
    den = np.where(use, c * c / one_minus, 0.0).sum(axis=1)
    return d, g, num / den


def compute_capability(
    stats: SampleStats,
    lsl: float | None,
    usl: float | None,
    *,
    unbias: bool = False,
    estimator: str = "pooled",
    exact_constants: bool = False,
) -> CapabilityResult:
    """Capability of one test from its sufficient statistics (see the module docstring for the rules)."""
    sub = stats.subgroups
    batch_sub = None
    if sub is not None:
        batch_sub = SubgroupStats(
            n=sub.n[None, :],
            var=sub.var[None, :],
            mean=None if sub.mean is None else sub.mean[None, :],
            min=None if sub.min is None else sub.min[None, :],
            max=None if sub.max is None else sub.max[None, :],
        )
    batch = compute_many(
        [stats.n],
        [stats.mean],
        [stats.var],
        [math.nan if lsl is None else lsl],
        [math.nan if usl is None else usl],
        subgroups=batch_sub,
        unbias=unbias,
        estimator=estimator,
        exact_constants=exact_constants,
    )
    return batch[0]
