"""Process capability (docs/capability.md): the §4 worked example, the §3 rules and the batch path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stratum.analytics.capability import (
    D2_TABLE,
    D3_TABLE,
    ESTIMATORS,
    CapabilityResult,
    SampleStats,
    SubgroupStats,
    c4,
    c4_array,
    compute_capability,
    compute_many,
    d2,
    d2_table,
    d3,
    d3_table,
    from_values,
)

REL = 1e-6
LSL, USL = 0.90, 1.10
WAFERS = {
    "W1": [1.00, 1.02, 0.98, 1.01, 0.99],
    "W2": [1.05, 1.07, 1.03, 1.06],
    "W3": [0.96, 0.95, 0.97, 0.94, 0.98, 0.96],
}
INDEX_FIELDS = ("cp", "cpl", "cpu", "cpk", "pp", "ppl", "ppu", "ppk")


def approx(v: float) -> object:
    return pytest.approx(v, rel=REL)


@pytest.fixture(scope="module")
def example() -> SampleStats:
    values = [v for w in WAFERS.values() for v in w]
    groups = [k for k, w in WAFERS.items() for _ in w]
    return from_values(values, groups)


# ---------------------------------------------------------------------------------------------------
# §4 worked example
# ---------------------------------------------------------------------------------------------------


def test_example_sufficient_statistics(example: SampleStats) -> None:
    assert example.n == 15
    assert example.mean == approx(0.998)
    assert math.sqrt(example.var) == approx(0.0409180365)
    sub = example.subgroups
    assert sub is not None
    assert sub.n.tolist() == [5, 4, 6]
    assert sub.mean.tolist() == pytest.approx([1.0, 1.0525, 0.96], rel=REL)
    assert np.sqrt(sub.var).tolist() == pytest.approx([0.0158113883, 0.0170782513, 0.0141421356], rel=REL)
    assert (sub.max - sub.min).tolist() == pytest.approx([0.04, 0.04, 0.04], rel=REL)


def test_example_default_rows(example: SampleStats) -> None:
    r = compute_capability(example, LSL, USL)
    assert r.n == 15
    assert r.mean == approx(0.998)
    assert r.sigma_overall == approx(0.0409180365)
    assert (r.pp, r.ppl, r.ppu, r.ppk) == (approx(0.814637), approx(0.798344), approx(0.830929), approx(0.798344))
    assert r.sigma_within == approx(0.0154784797)
    assert (r.cp, r.cpl, r.cpu, r.cpk) == (approx(2.153528), approx(2.110457), approx(2.196598), approx(2.110457))
    assert r.sigma_within_source == "pooled"
    assert r.estimator == "pooled"
    assert r.unbias is False
    assert r.subgroups == 3
    assert r.lsl == LSL and r.usl == USL
    assert r.cpk > r.ppk  # wafers shifted against each other: within ≫ overall


def test_example_to_dict_is_json_ready(example: SampleStats) -> None:
    d = compute_capability(example, LSL, USL).to_dict()
    assert list(d) == list(CapabilityResult.__dataclass_fields__)
    assert d["cpk"] == approx(2.110457)
    assert d["sigma_within_source"] == "pooled"


def test_example_one_sided_lsl_only(example: SampleStats) -> None:
    r = compute_capability(example, LSL, None)
    assert r.cp is None and r.pp is None
    assert r.cpu is None and r.ppu is None
    assert r.cpl == approx(2.110457)
    assert r.cpk == approx(2.110457)
    assert r.ppk == approx(0.798344) and r.ppk == r.ppl
    assert r.usl is None


def test_example_one_sided_usl_only(example: SampleStats) -> None:
    r = compute_capability(example, math.nan, USL)  # NaN means absent, like None
    assert r.cp is None and r.pp is None and r.cpl is None and r.lsl is None
    assert r.cpk == r.cpu == approx(2.196598)
    assert r.ppk == r.ppu == approx(0.830929)


def test_example_single_wafer_w1() -> None:
    stats = from_values(WAFERS["W1"], ["W1"] * 5)
    r = compute_capability(stats, LSL, USL)
    assert r.sigma_within == r.sigma_overall == approx(0.0158113883)
    assert r.cp == r.pp
    assert r.cpk == r.ppk
    for v in (r.cp, r.pp, r.cpk, r.ppk):
        assert v == approx(2.108185)
    assert r.sigma_within_source == "pooled"
    assert r.subgroups == 1

    u = compute_capability(stats, LSL, USL, unbias=True)
    assert u.sigma_within == u.sigma_overall == approx(0.0168208835)
    assert u.cp == u.pp
    assert u.cpk == u.ppk
    assert u.cp == approx(0.2 / (6 * 0.0168208835))


def test_example_minitab_default(example: SampleStats) -> None:
    assert c4(13) == approx(0.9794056043)
    r = compute_capability(example, LSL, USL, estimator="minitab_default")
    assert r.sigma_within == approx(0.0158039525)
    assert r.cp == approx(2.109177)
    assert r.cpk == approx(2.066993)
    assert r.sigma_overall == approx(0.0409180365)  # plain s overall
    assert r.sigma_within_source == "minitab_default"


def test_pooled_with_unbias_matches_minitab_within(example: SampleStats) -> None:
    r = compute_capability(example, LSL, USL, unbias=True)
    assert r.sigma_within == approx(0.0158039525)
    assert r.cp == approx(2.109177)
    assert r.sigma_overall == approx(0.0409180365 / c4(15))


@pytest.mark.parametrize(
    ("estimator", "sigma", "cp", "cpk"),
    [
        ("jmp_ranges", 0.0174697102, 1.908064, 1.869903),
        ("jmp_sbar", 0.0167400423, 1.991234, 1.951409),
        ("minitab_rbar", 0.0171785983, 1.940399, 1.901591),
        ("minitab_sbar", 0.0164208093, 2.029945, 1.989346),
        ("minitab_default", 0.0158039525, 2.109177, 2.066993),
    ],
)
def test_example_compatibility_rows(example: SampleStats, estimator: str, sigma: float, cp: float, cpk: float) -> None:
    r = compute_capability(example, LSL, USL, estimator=estimator)
    assert r.sigma_within == approx(sigma)
    assert r.cp == approx(cp)
    assert r.cpk == approx(cpk)
    assert r.estimator == estimator
    assert r.sigma_within_source == estimator
    # σ_o and the P indices are the platform's whatever the within estimator.
    assert r.sigma_overall == approx(0.0409180365)
    assert r.ppk == approx(0.798344)


@pytest.mark.parametrize(("estimator", "sigma"), [("jmp_ranges", 0.0174698124), ("minitab_rbar", 0.0171782838)])
def test_example_exact_constants(example: SampleStats, estimator: str, sigma: float) -> None:
    r = compute_capability(example, LSL, USL, estimator=estimator, exact_constants=True)
    assert r.sigma_within == approx(sigma)
    assert r.exact_constants is True
    assert r.cp == approx(0.2 / (6 * sigma))


# ---------------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------------


def test_d2_d3_exact_values() -> None:
    assert [d2(4), d2(5), d2(6)] == [approx(2.058751), approx(2.325929), approx(2.534413)]
    assert [d3(4), d3(5), d3(6)] == [approx(0.879808), approx(0.864082), approx(0.848040)]
    # n = 2 has a closed form: R = √2·|Z|.
    assert d2(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-12)
    assert d3(2) == pytest.approx(math.sqrt(2 - 4 / math.pi), rel=1e-10)


def test_d2_d3_tables_are_exact_values_rounded() -> None:
    assert len(D2_TABLE) == len(D3_TABLE) == 49
    for n in range(2, 51):
        assert d2_table(n) == round(d2(n), 3), n
        assert d3_table(n) == round(d3(n), 3), n
    assert [d2_table(4), d2_table(5), d2_table(6)] == [2.059, 2.326, 2.534]
    assert [d3_table(4), d3_table(5), d3_table(6)] == [0.880, 0.864, 0.848]
    # Above 50 the table keeps the n = 50 values (JMP); the exact values keep growing.
    assert d2_table(400) == d2_table(50) == 4.498
    assert d3_table(400) == d3_table(50)
    assert d2(400) > d2(50)


def test_d2_d3_reject_bad_n() -> None:
    for bad in (0, 1, 2.5):
        with pytest.raises(ValueError):
            d2(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            d3_table(bad)  # type: ignore[arg-type]


def test_c4_values_and_stability() -> None:
    assert c4(2) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-14)
    assert c4(5) == pytest.approx(0.9399856029866, rel=1e-12)
    # Large n: c4 = 1 − 1/(4n) − 7/(32n²) − 19/(128n³) + O(n⁻⁴); lgamma alone loses ~1e-9 here.
    for n in (1e4, 1e6, 5e6, 1e8):
        expected = 1 - 1 / (4 * n) - 7 / (32 * n**2) - 19 / (128 * n**3)
        assert c4(n) == pytest.approx(expected, rel=1e-15, abs=0)
        assert c4(n) < 1.0
    # Continuous and monotonic across the switch from lgamma to the asymptotic series.
    ns = np.arange(2, 400)
    vals = c4_array(ns)
    assert np.all(np.diff(vals) > 0)
    assert vals.tolist() == pytest.approx([c4(int(k)) for k in ns], rel=1e-15)
    assert np.isnan(c4_array([0, 1])).all()
    with pytest.raises(ValueError):
        c4(1)


# ---------------------------------------------------------------------------------------------------
# §3 rules
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unbias", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_single_subgroup_cp_equals_pp_exactly(seed: int, unbias: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5000))
    values = rng.normal(rng.uniform(-1e3, 1e3), rng.uniform(1e-3, 10), n)
    stats = from_values(values, np.full(n, 7))
    r = compute_capability(stats, float(values.min()), float(values.max()), unbias=unbias)
    assert r.sigma_within_source == "pooled"
    assert r.sigma_within == r.sigma_overall
    assert (r.cp, r.cpl, r.cpu, r.cpk) == (r.pp, r.ppl, r.ppu, r.ppk)


def test_single_subgroup_with_sql_style_stats_is_exact() -> None:
    # Overall and subgroup variance computed independently (as two SQL aggregates would) may differ in
    # the last bit; one subgroup holding everything still gives Cp == Pp.
    stats = SampleStats(n=4, mean=1.0, var=0.1 / 3, subgroups=SubgroupStats(n=[4], var=[0.1 / 3 * (1 + 1e-15)]))
    r = compute_capability(stats, 0.5, 1.5)
    assert r.cp == r.pp and r.cpk == r.ppk


def test_fallback_without_subgroup_information(example: SampleStats) -> None:
    stats = SampleStats(example.n, example.mean, example.var, None)
    r = compute_capability(stats, LSL, USL)
    assert r.sigma_within_source == "overall_fallback"
    assert r.subgroups == 0
    assert r.sigma_within == r.sigma_overall
    assert (r.cp, r.cpk) == (r.pp, r.ppk) == (approx(0.814637), approx(0.798344))
    for est in ESTIMATORS:
        assert compute_capability(stats, LSL, USL, estimator=est).sigma_within_source == "overall_fallback"


def test_fallback_when_d_is_zero() -> None:
    values = [1.0, 1.1, 0.9, 1.05]
    stats = from_values(values, ["a", "b", "c", "d"])  # every wafer has one value: d = 0
    r = compute_capability(stats, 0.5, 1.5)
    assert r.sigma_within_source == "overall_fallback"
    assert r.subgroups == 0
    assert r.sigma_within == r.sigma_overall == pytest.approx(float(np.std(values, ddof=1)), rel=1e-12)
    u = compute_capability(stats, 0.5, 1.5, unbias=True)
    assert u.sigma_within == u.sigma_overall == pytest.approx(float(np.std(values, ddof=1)) / c4(4), rel=1e-12)
    # d == 0 alone does not null the result.
    assert r.cp is not None and r.cpk is not None


def test_singleton_subgroups_are_ignored() -> None:
    values = [1.0, 1.2, 0.8, 5.0]
    r = compute_capability(from_values(values, [1, 1, 1, 2]), 0.0, 10.0)
    assert r.subgroups == 1
    assert r.sigma_within == pytest.approx(0.2, rel=1e-12)


def _assert_clean(r: CapabilityResult) -> None:
    for k, v in r.to_dict().items():
        if isinstance(v, float):
            assert math.isfinite(v), k


def test_zero_sigma_gives_none() -> None:
    r = compute_capability(from_values([0.1] * 10, [1] * 5 + [2] * 5), 0.0, 1.0)
    assert r.sigma_overall == 0.0 and r.sigma_within == 0.0
    assert all(getattr(r, f) is None for f in INDEX_FIELDS)
    _assert_clean(r)


def test_sigma_at_rounding_noise_level_gives_none() -> None:
    # A SQL engine may return 1e-34 instead of 0 for the variance of a constant column.
    stats = SampleStats(10, 0.1, 1e-34, SubgroupStats(n=[5, 5], var=[1e-34, 0.0]))
    r = compute_capability(stats, 0.0, 1.0)
    assert all(getattr(r, f) is None for f in INDEX_FIELDS)
    _assert_clean(r)


def test_within_zero_but_overall_positive() -> None:
    # Each wafer constant, wafers different: σ_w = 0 → C indices null, P indices defined.
    r = compute_capability(from_values([1.0] * 5 + [2.0] * 5, [1] * 5 + [2] * 5), 0.0, 3.0)
    assert r.sigma_within == 0.0
    assert r.cp is None and r.cpk is None
    assert r.pp is not None and r.ppk is not None


@pytest.mark.parametrize("values", [[], [1.0]])
def test_too_few_values_gives_none(values: list[float]) -> None:
    r = compute_capability(from_values(values, ["w"] * len(values)), 0.0, 2.0)
    assert r.n == len(values)
    assert r.sigma_overall is None and r.sigma_within is None
    assert all(getattr(r, f) is None for f in INDEX_FIELDS)
    assert r.mean == (1.0 if values else None)
    _assert_clean(r)


@pytest.mark.parametrize(("lsl", "usl"), [(None, None), (math.nan, math.nan), (-math.inf, math.inf)])
def test_no_limits_gives_no_indices(example: SampleStats, lsl: float | None, usl: float | None) -> None:
    r = compute_capability(example, lsl, usl)
    assert all(getattr(r, f) is None for f in INDEX_FIELDS)
    assert r.lsl is None and r.usl is None
    assert r.sigma_within == approx(0.0154784797)  # sigmas are still reported
    _assert_clean(r)


def test_tiny_sigma_never_overflows_to_inf() -> None:
    stats = SampleStats(3, 0.0, 1e-320, None)  # σ ≈ 1e-160: huge but finite, or null
    r = compute_capability(stats, -1e300, 1e300)
    _assert_clean(r)


def test_non_finite_values_are_dropped() -> None:
    s = from_values([1.0, math.nan, 2.0, math.inf, 3.0], [1, 1, 1, 2, 2])
    assert s.n == 3
    assert s.subgroups is not None and s.subgroups.n.tolist() == [2, 1]


def test_unknown_estimator_and_missing_ranges(example: SampleStats) -> None:
    with pytest.raises(ValueError, match="unknown estimator"):
        compute_capability(example, LSL, USL, estimator="ppk_magic")
    assert example.subgroups is not None
    no_ranges = SampleStats(
        example.n, example.mean, example.var, SubgroupStats(example.subgroups.n, example.subgroups.var)
    )
    with pytest.raises(ValueError, match="min and max"):
        compute_capability(no_ranges, LSL, USL, estimator="jmp_ranges")
    assert compute_capability(no_ranges, LSL, USL).cpk == approx(2.110457)


# ---------------------------------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------------------------------


def test_large_offset_small_spread() -> None:
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(20), 500)
    noise = rng.normal(0, 1e-3, groups.size) + 2e-4 * groups
    offset = 1e6
    big = from_values(offset + noise, groups)
    small = from_values(noise, groups)
    r_big = compute_capability(big, offset - 5e-3, offset + 5e-3)
    r_small = compute_capability(small, -5e-3, 5e-3)
    # Adding 1e6 rounds each value to ~1.2e-10, so a few 1e-7 relative is the data's own resolution.
    for f in ("sigma_within", "sigma_overall", *INDEX_FIELDS):
        assert getattr(r_big, f) == pytest.approx(getattr(r_small, f), rel=1e-6), f
    assert r_big.sigma_within == pytest.approx(1e-3, rel=0.05)


def test_from_subgroups_matches_direct_statistics(example: SampleStats) -> None:
    assert example.subgroups is not None
    combined = SampleStats.from_subgroups(example.subgroups)
    assert combined.n == example.n
    assert combined.mean == pytest.approx(example.mean, rel=1e-14)
    assert combined.var == pytest.approx(example.var, rel=1e-12)


# ---------------------------------------------------------------------------------------------------
# Batch path
# ---------------------------------------------------------------------------------------------------


def _random_tests(seed: int) -> list[tuple[SampleStats, float | None, float | None]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[SampleStats, float | None, float | None]] = []
    for i in range(60):
        kind = i % 10
        n_groups = int(rng.integers(1, 8))
        sizes = rng.integers(0 if kind == 1 else 1, 80, n_groups)
        if kind == 2:
            sizes[:] = 1  # d = 0
        groups = np.repeat(np.arange(n_groups), sizes)
        values = rng.normal(rng.uniform(-5, 5), rng.uniform(0.01, 2), groups.size) + 0.3 * groups
        if kind == 3:
            values[:] = 2.5  # σ = 0
        lsl: float | None = float(rng.uniform(-10, 0))
        usl: float | None = float(rng.uniform(0, 10))
        if kind == 4:
            lsl = None
        if kind == 5:
            usl = None
        if kind == 6:
            lsl = usl = None
        if kind == 7:
            values = values[:1]
            groups = groups[:1]
        stats = from_values(values, None if kind == 8 else groups)
        out.append((stats, lsl, usl))
    return out


def _to_batch(tests: list[tuple[SampleStats, float | None, float | None]]) -> dict[str, object]:
    rows, n, var, mean, mn, mx = [], [], [], [], [], []
    for i, (s, _, _) in enumerate(tests):
        if s.subgroups is None:
            continue
        g = s.subgroups
        rows += [i] * g.count
        n += g.n.tolist()
        var += g.var.tolist()
        mean += g.mean.tolist()
        mn += g.min.tolist()
        mx += g.max.tolist()
    sub = SubgroupStats.from_long(rows, n, var, mean, mn, mx, n_rows=len(tests))
    return {
        "n": [s.n for s, _, _ in tests],
        "mean": [s.mean for s, _, _ in tests],
        "var": [s.var for s, _, _ in tests],
        "lsl": [lo for _, lo, _ in tests],
        "usl": [hi for _, _, hi in tests],
        "subgroups": sub,
    }


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("unbias", [False, True])
def test_batch_equals_scalar(estimator: str, unbias: bool) -> None:
    tests = _random_tests(3)
    args = _to_batch(tests)
    batch = compute_many(**args, unbias=unbias, estimator=estimator)  # type: ignore[arg-type]
    rows = batch.to_dicts()
    assert len(batch) == len(rows) == len(tests)
    sources = set()
    for i, (stats, lsl, usl) in enumerate(tests):
        scalar = compute_capability(stats, lsl, usl, unbias=unbias, estimator=estimator)
        assert rows[i] == scalar.to_dict(), i
        assert batch[i] == scalar
        sources.add(scalar.sigma_within_source)
    assert sources == {estimator, "overall_fallback"}
    assert batch.results()[5] == batch[5]


def test_batch_scalar_limits_and_no_subgroups() -> None:
    batch = compute_many([15, 1, 0], [0.998, 1.0, math.nan], [0.0409180365**2, math.nan, math.nan], LSL, USL)
    rows = batch.to_dicts()
    assert rows[0]["ppk"] == approx(0.798344)
    assert rows[0]["sigma_within_source"] == "overall_fallback"
    assert rows[1]["cpk"] is None and rows[2]["mean"] is None
    assert batch.lsl.tolist() == [LSL] * 3


def test_from_long_pivots_any_order() -> None:
    sub = SubgroupStats.from_long([2, 0, 2, 0, 2], [3, 4, 5, 6, 7], [0.1, 0.2, 0.3, 0.4, 0.5], n_rows=4)
    assert sub.n.shape == (4, 3)
    assert sub.n.tolist() == [[4, 6, 0], [0, 0, 0], [3, 5, 7], [0, 0, 0]]
    assert np.isnan(sub.var[1]).all()
    assert sub.var[2].tolist() == [0.1, 0.3, 0.5]
