"""The map-level clustering evidence every candidate carries (``g_join_z``): how far the map's fail-fail
neighbour pairs stand above what a clean binomial map of the same layout and fail rate gives, in standard
deviations (the taxonomy's "no spatial structure" for ``none`` / ``random``, by its join-count statistic)."""

from __future__ import annotations

import math

import numpy as np

from stratum.patterns.classifier import candidates
from stratum.patterns.geometry import DieMap

_II, _JJ = np.meshgrid(np.arange(40), np.arange(40))  # a 40 x 40 block of dies: 3,120 neighbour pairs


def _join_z(fail: np.ndarray) -> tuple[float, float, list[float]]:
    dets, feats = candidates(DieMap(x=_II.ravel(), y=_JJ.ravel(), fail=fail.ravel()))
    rnd = next(d for d in dets if d.family == "random")
    return rnd.features["join_z"], rnd.features["join_ratio"], [f["g_join_z"] for f in feats]


def test_a_solid_block_of_fails_is_far_above_a_clean_map() -> None:
    # 36 fails in a 6 x 6 block: 60 fail-fail pairs where chance gives 3,120 * p^2 = 1.58 (p = 36 / 1600); variance
    # 3,120 (p^2 - p^4) + 2 * 9,048 (p^3 - p^4) with 9,048 die-sharing pair pairs at the mean degree 3.9
    z, jr, every = _join_z((_II >= 20) & (_II < 26) & (_JJ >= 20) & (_JJ < 26))
    p = 36 / 1600
    var = 3120 * (p**2 - p**4) + 2 * (1600 * 3.9 * 2.9 / 2) * (p**3 - p**4)
    assert jr == 60 / (3120 * p * p)
    assert math.isclose(z, (60 - 3120 * p * p) / math.sqrt(var), rel_tol=1e-12)
    assert round(z, 6) == 43.785712
    assert every == [z] * len(every)  # the same map-level figure on every candidate


def test_fails_that_never_touch_score_below_chance() -> None:
    z, jr, every = _join_z(((_II + _JJ) % 2 == 0) & (_II < 10) & (_JJ < 10))  # a 10 x 10 checkerboard: 50 fails
    assert jr == 0.0
    assert round(z, 6) == -1.610574
    assert every == [z] * len(every)


def test_a_clean_binomial_map_stays_within_chance() -> None:
    fail = np.random.default_rng(7).random((40, 40)) < 0.05
    z, _, _ = _join_z(fail)
    assert round(z, 6) == -0.578677  # well inside +-2
