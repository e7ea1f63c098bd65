"""Generator E (the never-fitted held-out generator): seeded, labelled by the taxonomy's rules, varied."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np

from stratum.devtools import patterns_data, wafergen_e
from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import geometry

SEEDS = range(31_500_000, 31_500_300)  # dev seeds (test range + 500,000)


@lru_cache(maxsize=1)
def _pool() -> list:
    return [wafergen_e.generate_with_layout(s) for s in SEEDS]


def _radius(w: wafergen_e.Wafer) -> np.ndarray:
    """Normalised radius recomputed from the die indices and pitch: physical distance over (outermost die
    centre's distance + half an x pitch)."""
    d = np.hypot((w.i + w.sx) * w.px, (w.j + w.sy) * w.py)
    return d / (d.max() + 0.5 * w.px)


def _expected_location(r: np.ndarray) -> str:
    n = len(r)
    shares = [np.count_nonzero(r < 3**-0.5) / n, 0.0, np.count_nonzero(r >= (2 / 3) ** 0.5) / n]
    shares[1] = 1 - shares[0] - shares[2]
    if min(shares) >= 0.15:
        return "global"
    return ["center", "mid", "edge"][int(np.argmax(shares))]  # argmax: the first (innermost) on a tie


def test_same_seed_same_map_and_labels() -> None:
    a, b = wafergen_e.generate(31_500_007), wafergen_e.generate(31_500_007)
    for f in ("x", "y", "fail", "hard_bin"):
        assert np.array_equal(getattr(a.dies, f), getattr(b.dies, f))
    assert (a.dies.site is None) == (b.dies.site is None)
    assert [lab.class_id for lab in a.labels] == [lab.class_id for lab in b.labels]
    assert [lab.density for lab in a.labels] == [lab.density for lab in b.labels]
    c = wafergen_e.generate(31_500_008)
    assert len(c.dies.x) != len(a.dies.x) or not np.array_equal(c.dies.fail, a.dies.fail)
    assert patterns_data.sample("E", 31_500_007).labels[0].class_id == a.labels[0].class_id


def test_location_and_severity_rules() -> None:
    # a ring's dies sit in every third: global although its centroid is the wafer centre
    assert wafergen_e.location_of(np.array([0] * 20 + [1] * 20 + [2] * 60), 100) == "global"
    assert wafergen_e.location_of(np.array([0] * 14 + [1] * 20 + [2] * 66), 100) == "edge"
    assert wafergen_e.location_of(np.array([0] * 45 + [1] * 45 + [2] * 10), 100) == "center"  # tie: inner
    assert [wafergen_e.severity_of(d) for d in (0.0, 0.199, 0.2, 0.499, 0.5, 1.0)] == [
        "low",
        "low",
        "med",
        "med",
        "high",
        "high",
    ]


def test_labels_recomputed_from_the_drawn_map() -> None:
    checked = non_square = 0
    for smp, w in _pool():
        r = _radius(w)
        fail = np.asarray(smp.dies.fail)
        for lab in smp.labels:
            assert lab.class_id in tx.by_id(), lab.class_id  # only reachable classes
            assert lab.density == float(fail[lab.region].mean())
            assert lab.severity == wafergen_e.severity_of(lab.density)
            if lab.family in tx.WHOLE_WAFER:
                assert lab.location == "global"
                if lab.family not in tx.OWN_REGION:
                    assert lab.region.all()
            else:
                assert lab.location == _expected_location(r[lab.region])
                checked += 1
                non_square += int(w.py != w.px)
    assert checked > 200 and non_square > 50
    # the thirds agree with the project's geometry (coordinates only, pitch recovered from the extents)
    for smp, w in _pool()[:60]:
        g = geometry(smp.dies)
        mine = (_radius(w) >= 3**-0.5).astype(int) + (_radius(w) >= (2 / 3) ** 0.5).astype(int)
        assert np.mean(mine == g.third) > 0.95, smp.seed


def test_none_and_random_bounds() -> None:
    for s in range(31_500_000, 31_500_040):
        none = wafergen_e.generate(s, family="none")
        assert [lab.family for lab in none.labels] == ["none"] and none.dies.fail.mean() <= 0.09
        rnd = wafergen_e.generate(s, family="random")
        assert [lab.family for lab in rnd.labels] == ["random"] and rnd.dies.fail.mean() >= 0.12


def test_every_family_produced_forced_and_in_the_mix() -> None:
    for f in tx.FAMILIES:
        smp = wafergen_e.generate(31_500_000, family=f)
        assert [lab.family for lab in smp.labels] == [f]
        if f == "site_pattern":
            assert smp.dies.site is not None and len(set(smp.dies.site.tolist())) >= 2
    seen = Counter(lab.family for smp, _ in _pool() for lab in smp.labels)
    assert set(seen) == set(tx.FAMILIES)
    # WM-811K-like: edge patterns lead, donut and near_full are rare
    assert seen["edge_ring"] > seen["donut"] and seen["edge_loc"] > seen["near_full"]


def test_mixtures_present_and_mixedwm38_shaped() -> None:
    sizes = Counter(len(smp.labels) for smp, _ in _pool())
    assert sizes[1] > 150 and sizes[2] > 30 and sizes[3] > 5
    assert sum(v for k, v in sizes.items() if k > 1) > 0.15 * len(SEEDS)
    for smp, _ in _pool():
        fams = smp.families
        assert len(fams) == len(smp.labels)  # one label per family
        assert not {"center", "donut"} <= fams and not {"edge_ring", "edge_loc"} <= fams


def test_sizes_pitch_sites_origins_vary() -> None:
    pool = _pool()
    across = [smp.diameter for smp, _ in pool]
    assert min(across) <= 25 and max(across) >= 150 and sum(50 <= a <= 54 for a in across) > 40
    assert {w.py != 1.0 for _, w in pool} == {True, False}
    sites = Counter(w.n_sites for _, w in pool)
    assert sites[1] > 0 and sites[2] + sites[4] > 0 and sites[8] + sites[16] > 0
    assert any(smp.dies.site is None for smp, _ in pool)
    x0 = [int(smp.dies.x.min()) for smp, _ in pool]
    assert min(x0) < 0 < max(x0) and len(set(x0)) > 100


def test_e_is_an_eval_set_never_fitted() -> None:
    assert "E" in patterns_data.GENERATORS and "E" not in patterns_data.FIT_GENERATORS
