"""Rule detectors for the periodic families: stripes, reticle repeats and site patterns, and how they tell
each other apart (the taxonomy's labelling rules)."""

from __future__ import annotations

import numpy as np

from stratum.devtools.patterns_data import sample
from stratum.patterns.classifier import candidates
from stratum.patterns.geometry import DieMap


def _disk(d: int) -> tuple[np.ndarray, np.ndarray]:
    ii, jj = np.meshgrid(np.arange(-d, d + 1), np.arange(-d, d + 1))
    keep = np.hypot((ii + 0.5) / d, (jj + 0.5) / d) <= 1
    return ii[keep].ravel(), jj[keep].ravel()


def _rule_families(dm: DieMap) -> dict[str, list]:
    dets, _ = candidates(dm)
    out: dict[str, list] = {}
    for d in dets:
        if not d.source:
            out.setdefault(d.family, []).append(d)
    return out


def test_two_stripes_four_lines_apart_are_both_found() -> None:
    # each column is the other's flank 4 lines away: neither may hide the other
    x, y = _disk(25)
    rng = np.random.default_rng(3)
    fail = (rng.random(len(x)) < 0.03) | (((x == -6) | (x == -2)) & (rng.random(len(x)) < 0.9))
    fams = _rule_families(DieMap(x, y, fail))
    (col,) = fams["column_stripe"]
    assert sorted(set(x[col.region].tolist())) == [-6, -2]
    assert col.features["lines"] == 2


def test_a_line_beside_a_stripe_joins_it_despite_an_empty_quarter() -> None:
    # two adjacent columns: one fails throughout, the other at 40 % with its first quarter (3-4 dies) empty by
    # chance (p ~ 0.2 at that fill): one stripe two columns wide
    x, y = _disk(12)
    fail = x == 2
    on = _nz_sorted(x == 3, y)
    q = len(on) // 4
    fail[[i for k, i in enumerate(on) if k >= q and k % 2 == 0]] = True
    assert 0.35 <= fail[x == 3].mean() <= 0.45 and not fail[on[:q]].any()
    fams = _rule_families(DieMap(x, y, fail))
    assert [sorted(set(x[d.region].tolist())) for d in fams["column_stripe"]] == [[2, 3]]


def _nz_sorted(mask: np.ndarray, along: np.ndarray) -> list[int]:
    idx = np.nonzero(mask)[0]
    return idx[np.argsort(along[idx], kind="stable")].tolist()


def test_a_reticle_with_half_its_offsets_hot_is_found() -> None:
    # 3 of 6 offsets of a 2x3 reticle: the median offset rate sits between hot and cold
    x, y = _disk(30)
    rng = np.random.default_rng(5)
    hot = (y % 3) * 2 + (x % 2)
    fail = (rng.random(len(x)) < 0.03) | (np.isin(hot, [0, 3, 4]) & (rng.random(len(x)) < 0.35))
    (ret,) = _rule_families(DieMap(x, y, fail))["reticle_repeat"]
    assert (ret.features["pitch_x"], ret.features["pitch_y"], ret.features["hot_offsets"]) == (2, 3, 3)


def test_a_reticle_offset_that_is_half_of_a_site_is_a_reticle() -> None:
    # sites alternate by row (1x2 footprint); the hot offset (odd x, odd y) is half of site 2's dies, whose
    # other half fails no more than site 1: the elevated rate does not follow SITE_NUM
    x, y = _disk(30)
    rng = np.random.default_rng(7)
    site = (y % 2) + 1
    fail = (rng.random(len(x)) < 0.04) | ((x % 2 == 1) & (y % 2 == 1) & (rng.random(len(x)) < 0.8))
    fams = _rule_families(DieMap(x, y, fail, site))
    assert "site_pattern" not in fams
    (ret,) = fams["reticle_repeat"]
    assert (ret.features["pitch_x"], ret.features["pitch_y"], ret.features["hot_offsets"]) == (2, 2, 1)
    # the whole of site 2 failing is a site pattern
    fail2 = (rng.random(len(x)) < 0.04) | ((y % 2 == 1) & (rng.random(len(x)) < 0.5))
    fams2 = _rule_families(DieMap(x, y, fail2, site))
    assert "reticle_repeat" not in fams2
    (sp,) = fams2["site_pattern"]
    assert sp.features["site"] == 2.0


def test_one_failing_column_of_a_site_is_a_stripe_not_a_site_pattern() -> None:
    # a 16x1 probe footprint: site 11 holds every 16th column (3 here); one of them fails at 50 %
    x, y = _disk(24)
    rng = np.random.default_rng(11)
    site = (x % 16) + 1
    fail = (rng.random(len(x)) < 0.04) | ((x == 10) & (rng.random(len(x)) < 0.5))
    assert set(site[x == 10].tolist()) == {11}
    fams = _rule_families(DieMap(x, y, fail, site))
    assert "site_pattern" not in fams
    assert [sorted(set(x[d.region].tolist())) for d in fams["column_stripe"]] == [[10]]
    # every column of site 11 failing follows SITE_NUM
    fail2 = (rng.random(len(x)) < 0.04) | ((site == 11) & (rng.random(len(x)) < 0.5))
    (sp,) = _rule_families(DieMap(x, y, fail2, site))["site_pattern"]
    assert sp.features["site"] == 11.0


def test_a_row_three_lines_from_the_rim_is_a_stripe_not_an_edge_arc() -> None:
    # no row lies 4 beyond it: the row 3 beyond (at the rim) is its flank there; before, the row was no stripe and
    # the edge arc search reported its fails as an arc along the N edge
    x, y = _disk(25)
    rng = np.random.default_rng(5)
    top = int(y.max())
    fail = (rng.random(len(x)) < 0.03) | ((y == top - 3) & (rng.random(len(x)) < 0.8))
    fams = _rule_families(DieMap(x, y, fail))
    (row,) = fams["row_stripe"]
    assert sorted(set(y[row.region].tolist())) == [top - 3]
    assert "edge_loc" not in fams


def test_an_edge_rings_rim_rows_are_no_stripes() -> None:
    # a ring at 0.86-0.96 R: the rows 2-3 inside the clean outermost rows cross it along most of their chord and
    # fail far above that clean flank, but no more than the ring's other dies as far out: no stripe
    x, y = _disk(25)
    rng = np.random.default_rng(4)
    r = np.hypot((x + 0.5) / 25, (y + 0.5) / 25)
    fail = (rng.random(len(x)) < 0.03) | ((r > 0.86) & (r < 0.96) & (rng.random(len(x)) < 0.55))
    fams = _rule_families(DieMap(x, y, fail))
    assert "row_stripe" not in fams and "column_stripe" not in fams
    assert "edge_ring" in fams


def test_two_whole_rows_a_reticle_pitch_apart_are_stripes_not_a_reticle() -> None:
    # generator D: rows 12 apart fail ~97 %; a 2x6 reticle with the two offsets of one row residue holds both, but
    # its other rows of that residue fail at the background rate: the rows hold its excess, so no reticle repeat
    smp = sample("D", 21_500_148)
    fams = _rule_families(smp.dies)
    assert "reticle_repeat" not in fams
    (row,) = fams["row_stripe"]
    y = np.asarray(smp.dies.y)
    assert sorted(set(y[row.region].tolist())) == sorted(set(y[smp.labels[0].region].tolist())) == [-443, -431]
