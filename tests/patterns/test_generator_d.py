"""Generator D (an independent test-set generator): seeded, labels by the labelling rules recomputed here from
the physical layout, fail-rate bounds, coverage of families and of the input range, speed."""

from __future__ import annotations

import math
import time
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest

from stratum.devtools import patterns_data, wafergen_d
from stratum.devtools.wafergen import Sample
from stratum.patterns import taxonomy as tx
from stratum.patterns.geometry import geometry

SEED0 = patterns_data.SEED0["test"]["D"] + 500_000  # dev range: not an evaluation seed
N = 300


@lru_cache(maxsize=1)
def _maps() -> tuple[wafergen_d.SampleD, ...]:
    return tuple(wafergen_d.generate(SEED0 + i) for i in range(N))


def _rn(smp: wafergen_d.SampleD) -> np.ndarray:
    """Normalised radius by the rule: physical distance from the wafer centre over the outermost die centre's
    plus half a die pitch; physical positions rebuilt from the integer coordinates and the pitch."""
    px, py = smp.meta["px"], smp.meta["py"]
    X = smp.meta["X"][0] + (smp.dies.x - smp.dies.x[0]) * px
    Y = smp.meta["Y"][0] + (smp.dies.y - smp.dies.y[0]) * py
    assert np.allclose(X, smp.meta["X"]) and np.allclose(Y, smp.meta["Y"])
    d = np.hypot(X, Y)
    return d / (d.max() + (px + py) / 4)


def _location(rn: np.ndarray, region: np.ndarray) -> str:
    r = rn[region]
    shares = [float(np.mean(r < math.sqrt(1 / 3))), 0.0, float(np.mean(r >= math.sqrt(2 / 3)))]
    shares[1] = 1.0 - shares[0] - shares[2]
    if min(shares) >= 0.15:
        return "global"
    return ("center", "mid", "edge")[int(np.argmax(shares))]  # argmax: the first (innermost) on a tie


def _severity(density: float) -> str:
    return "low" if density < 0.2 else "med" if density < 0.5 else "high"


def test_same_seed_same_map_and_labels() -> None:
    for seed in (SEED0, SEED0 + 7, SEED0 + 123):
        a, b = wafergen_d.generate(seed), wafergen_d.generate(seed)
        assert isinstance(a, Sample) and a.seed == seed
        for f in ("x", "y", "fail", "site", "hard_bin"):
            va, vb = getattr(a.dies, f), getattr(b.dies, f)
            assert (va is None and vb is None) or np.array_equal(va, vb)
        assert [lab.class_id for lab in a.labels] == [lab.class_id for lab in b.labels]
        assert all(np.array_equal(la.region, lb.region) for la, lb in zip(a.labels, b.labels, strict=True))
    assert not np.array_equal(_maps()[0].dies.fail[:50], _maps()[1].dies.fail[:50]) or len(_maps()[0].dies.x) != len(
        _maps()[1].dies.x
    )


def test_pinned_maps() -> None:
    """The test set must not drift silently: a change to the generator changes these (update them on purpose)."""
    got = []
    for i in range(4):
        m = wafergen_d.generate(SEED0 + i)
        got.append((len(m.dies.x), int(m.dies.fail.sum()), [lab.class_id for lab in m.labels]))
    assert got == [
        (557, 34, ["loc/mid/high/nw"]),
        (37851, 4440, ["reticle_repeat/global/high"]),
        (7730, 216, ["edge_loc/edge/low/se"]),
        (4968, 672, ["loc/center/high/ne", "edge_loc/edge/high/e"]),
    ]


def test_labels_follow_the_labelling_rules() -> None:
    checked = Counter()
    for smp in _maps():
        rn = _rn(smp)
        fail = np.asarray(smp.dies.fail)
        for lab in smp.labels:
            assert lab.class_id in tx.by_id(), lab.class_id
            assert lab.density == pytest.approx(float(fail[lab.region].mean()))
            assert lab.severity == _severity(float(fail[lab.region].mean()))
            if lab.family in tx.WHOLE_WAFER:
                assert lab.location == "global"
                if lab.family not in ("site_pattern", "reticle_repeat"):
                    assert lab.region.all()
            else:
                assert lab.location == _location(rn, lab.region), (smp.seed, lab.class_id)
                checked[lab.location] += 1
            if lab.family == "scratch":
                assert lab.region.sum() >= 8 and np.mean(rn[lab.region] >= 0.85) < 0.5
            if lab.family.endswith("_stripe"):  # every line reaches inside r = 0.75 (else it is an edge arc)
                coord = smp.dies.y if lab.family == "row_stripe" else smp.dies.x
                for v in np.unique(coord[lab.region]):
                    assert rn[coord == v].min() < 0.75
                    assert np.array_equal(lab.region[coord == v], np.ones(int((coord == v).sum()), dtype=bool))
            if lab.family == "site_pattern":
                assert smp.dies.site is not None
                bad = np.unique(smp.dies.site[lab.region])
                assert len(bad) == 1 and np.array_equal(lab.region, smp.dies.site == bad[0])
    assert set(checked) == {"center", "mid", "edge", "global"}


def test_radius_normalisation_with_non_square_pitch() -> None:
    smp = next(s for s in _maps() if s.meta["py"] / s.meta["px"] > 1.3 and s.diameter > 40)
    rn = _rn(smp)
    rows = int(smp.dies.y.max() - smp.dies.y.min() + 1)
    assert rows < 0.8 * smp.diameter  # fewer rows than columns: taller dies
    # on the physical circle: the outermost die in x and in y are both near radius 1 although rows != columns
    on_x = np.abs(smp.meta["Y"]) < smp.meta["py"]
    on_y = np.abs(smp.meta["X"]) < smp.meta["px"]
    assert rn[on_x].max() > 0.93 and rn[on_y].max() > 0.9
    # the classifier's geometry, recovering the pitch from the coordinates alone, puts >= 95 % of dies in the
    # same third
    assert np.mean(geometry(smp.dies).third == (rn >= 3**-0.5).astype(int) + (rn >= (2 / 3) ** 0.5)) > 0.95


def test_none_and_random_fail_rates_and_visible_patterns() -> None:
    for f in ("none", "random"):
        for i in range(40):
            smp = wafergen_d.generate(SEED0 + i, family=f)
            rate = float(np.mean(smp.dies.fail))
            assert [lab.family for lab in smp.labels] == [f]
            assert (rate <= 0.09) if f == "none" else (0.12 <= rate <= 0.75)
    for smp in _maps():
        union = np.zeros(len(smp.dies.fail), dtype=bool)
        for lab in smp.labels:
            if not lab.region.all():
                union |= lab.region
        if not (~union).any() or union.sum() == 0:
            continue
        out = max(float(np.mean(smp.dies.fail[~union])), 0.005)
        for lab in smp.labels:
            if lab.family in ("center", "donut", "edge_ring", "edge_loc", "loc", "scratch"):
                assert lab.density >= 2 * out and lab.density >= out + 0.08, (smp.seed, lab.class_id)


def test_every_family_and_mixtures() -> None:
    fams = Counter(lab.family for smp in _maps() for lab in smp.labels)
    assert set(fams) == set(tx.FAMILIES)
    assert min(fams.values()) >= 8
    sizes = Counter(len(smp.labels) for smp in _maps())
    assert sizes[2] >= 25 and sizes[3] >= 10 and sizes[1] + sizes[2] + sizes[3] == N
    for smp in _maps():
        f = [lab.family for lab in smp.labels]
        assert len(set(f)) == len(f)
        assert not {"center", "donut"} <= set(f) and not {"edge_ring", "edge_loc"} <= set(f)
        assert "none" not in f or len(f) == 1
    for fam in tx.FAMILIES:
        smp = wafergen_d.generate(SEED0 + 1, family=fam)
        assert [lab.family for lab in smp.labels] == [fam]
    with pytest.raises(ValueError, match="unknown family 'blob'"):
        wafergen_d.generate(1, family="blob")


def test_input_range_varies() -> None:
    maps = _maps()
    diam = [s.diameter for s in maps]
    assert min(diam) < 25 and max(diam) > 200
    aspects = [s.meta["py"] / s.meta["px"] for s in maps]
    assert sum(a == 1.0 for a in aspects) > 50 and min(aspects) < 0.7 and max(aspects) > 1.5
    sites = Counter(0 if s.dies.site is None else len(np.unique(s.dies.site)) for s in maps)
    assert sites[0] > 20 and {2, 4, 8, 16} <= set(sites) and max(sites) <= 16
    assert len({int(s.dies.x.min()) for s in maps}) > 200 and min(int(s.dies.y.min()) for s in maps) < -300
    assert sum(s.dies.hard_bin is None for s in maps) > 40
    # missing inner dies: raster cells well inside the wafer that hold no die
    holes = edges = 0
    for s in maps:
        px, py = s.meta["px"], s.meta["py"]
        gx, gy = np.meshgrid(
            np.arange(s.dies.x.min(), s.dies.x.max() + 1), np.arange(s.dies.y.min(), s.dies.y.max() + 1)
        )
        X = s.meta["X"][0] + (gx - s.dies.x[0]) * px
        Y = s.meta["Y"][0] + (gy - s.dies.y[0]) * py
        present = np.zeros(gx.shape, dtype=bool)
        present[s.dies.y - s.dies.y.min(), s.dies.x - s.dies.x.min()] = True
        holes += int((~present[np.hypot(X, Y) < 0.8]).any())
        edges += s.meta["edge"] != "round"
    assert 40 < holes < N - 100 and edges > 100


def test_fast() -> None:
    c0 = time.process_time()
    for i in range(N):
        wafergen_d.generate(SEED0 + 10_000 + i)
    assert time.process_time() - c0 < 6.0
