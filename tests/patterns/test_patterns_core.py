"""Taxonomy, generator, geometry, classifier and calibration of the pattern classifier."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stratum.devtools.wafergen import generate
from stratum.errors import BadRequest, PayloadTooLarge
from stratum.patterns import calibration, examples, features
from stratum.patterns import taxonomy as tx
from stratum.patterns.classifier import Detection, Thresholds, _Ctx, _curve, _rim_arcs, analyse, candidates, report
from stratum.patterns.features import box_sum, components
from stratum.patterns.geometry import DieMap, geometry
from stratum.patterns.service import (
    MapDataError,
    classifier_version,
    classify_diemap,
    dies_from_grid,
    dies_from_list,
    parse_body,
)
from stratum.settings import PatternSettings

LIMITS = PatternSettings()


# --- taxonomy --------------------------------------------------------------------------------------
def test_taxonomy_size_ids_and_fields() -> None:
    cls = tx.classes()
    assert len(cls) == 194
    assert len({c.class_id for c in cls}) == 194
    assert {c.family for c in cls} == set(tx.FAMILIES) and len(tx.FAMILIES) == 15
    for c in cls:
        parts = c.class_id.split("/")
        assert parts[:3] == [c.family, c.location, c.severity]
        assert (parts[3] if len(parts) == 4 else None) == c.refinement
        assert c.description and c.likely_causes
        assert c.parent in {"/".join(parts[:3]), "/".join(parts[:2])}
    ids = {c.class_id for c in cls}
    assert "edge_loc/edge/high/ne" in ids and "near_full/global/high" in ids
    assert "edge_ring/center/high" not in ids and "near_full/global/low" not in ids
    assert "gross_region/global/high/ne" not in ids and "gross_region/global/high/n" in ids


def test_location_and_severity_rules() -> None:
    assert tx.location_of((0.15, 0.5, 0.35)) == "global"
    assert tx.location_of((0.14, 0.5, 0.36)) == "mid"
    assert tx.location_of((0.0, 0.2, 0.8)) == "edge"
    assert [tx.severity_of(v) for v in (0.0, 0.1999, 0.2, 0.4999, 0.5, 1.0)] == [
        "low",
        "low",
        "med",
        "med",
        "high",
        "high",
    ]
    assert [tx.octant_of(math.radians(a)) for a in (0, 44, 46, 90, 180, 270, 315, 359)] == [
        "e",
        "ne",
        "ne",
        "n",
        "w",
        "s",
        "se",
        "e",
    ]


def test_every_class_has_an_example_map() -> None:
    for c in tx.classes():
        dm = examples.example(c.class_id)
        assert len(dm.x) >= 500, c.class_id


# --- generator ---------------------------------------------------------------------------------------
def test_generator_is_seeded_and_covers_the_spec() -> None:
    a, b = generate(42), generate(42)
    assert np.array_equal(a.dies.x, b.dies.x) and np.array_equal(a.dies.fail, b.dies.fail)
    assert [lab.class_id for lab in a.labels] == [lab.class_id for lab in b.labels]
    assert not np.array_equal(generate(43).dies.fail[:50], a.dies.fail[:50]) or len(generate(43).dies.x) != len(
        a.dies.x
    )
    big = generate(7, diameter=300, family="center")
    assert big.dies.x.max() - big.dies.x.min() + 1 == pytest.approx(300, abs=4)
    small = generate(7, diameter=20, family="loc")
    assert small.dies.x.max() - small.dies.x.min() + 1 == pytest.approx(20, abs=3)
    site = generate(3, family="site_pattern", n_sites=16)
    assert set(np.unique(site.dies.site)) == set(range(1, 17))
    mixed = [generate(s, mixed_rate=1.0) for s in range(20)]
    assert all(2 <= len(m.labels) <= 3 for m in mixed)


# --- geometry ----------------------------------------------------------------------------------------
def _disk(d: int, aspect: float = 1.0, flat: float = 0.0, x0: int = 0, y0: int = 0) -> DieMap:
    ii, jj = np.meshgrid(np.arange(-d, d + 1), np.arange(-d * 3, d * 3 + 1))
    X, Y = (ii + 0.5) / d, (jj + 0.5) * aspect / d
    keep = (np.hypot(X, Y) <= 1) & (Y > -1 + flat)
    return DieMap(x=ii[keep].ravel() + x0, y=jj[keep].ravel() + y0, fail=np.zeros(keep.sum(), bool))


def test_geometry_non_square_pitch_flat_and_origin() -> None:
    g = geometry(_disk(20, aspect=0.5, flat=0.1, x0=-300, y0=777))
    # centre recovered despite the flat (median of row / column midpoints), radius normalised to 1
    assert g.cx == pytest.approx(19.5, abs=0.01)
    assert g.r.max() == pytest.approx(1 - 0.5 / (g.rx), abs=0.03)
    # equal-area thirds: a uniform disk (no flat) puts a third of its dies in each
    g = geometry(_disk(20, aspect=0.5))
    share = np.bincount(g.third, minlength=3) / g.n
    assert share == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=0.06)  # the rim beyond the last die centre
    assert np.array_equal(g.third, np.digitize(g.r, [3**-0.5, (2 / 3) ** 0.5]))


def test_geometry_is_memoised_per_layout_and_read_only() -> None:
    from stratum.patterns import geometry as geo

    dm = generate(4242, mixed_rate=0.5).dies
    geo._CACHE.clear()
    cold = json.dumps(classify_diemap(dm, wafer_id="W"), sort_keys=True)
    g = geometry(dm)
    assert geometry(DieMap(dm.x.copy(), dm.y.copy(), ~dm.fail)) is g  # same layout, other fails
    assert not g.r.flags.writeable and not g.valid.flags.writeable
    with pytest.raises(ValueError):
        g.r[0] = 0.0
    assert json.dumps(classify_diemap(dm, wafer_id="W"), sort_keys=True) == cold
    assert geometry(DieMap(dm.y, dm.x, dm.fail)) is not g  # transposed layout: its own entry


def test_components_and_box_sum() -> None:
    m = np.zeros((5, 6), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal: one 8-connected component
    m[4, 3:6] = True
    m[0, 5] = True
    lab, n = components(m)
    assert n == 3
    assert lab[0, 0] == lab[2, 2] == 1 and lab[0, 5] == 2 and set(lab[4, 3:6]) == {3}
    assert box_sum(np.ones((4, 4)), 3)[0, 0] == 4 and box_sum(np.ones((4, 4)), 3)[1, 1] == 9


def _bfs_components(m: np.ndarray) -> np.ndarray:
    """Reference labelling: breadth-first flood fill from each unlabelled cell in raster order."""
    h, w = m.shape
    lab = np.zeros((h, w), np.int32)
    n = 0
    for y0 in range(h):
        for x0 in range(w):
            if not m[y0, x0] or lab[y0, x0]:
                continue
            n += 1
            lab[y0, x0] = n
            todo = [(y0, x0)]
            while todo:
                y, x = todo.pop()
                for yy in range(max(y - 1, 0), min(y + 2, h)):
                    for xx in range(max(x - 1, 0), min(x + 2, w)):
                        if m[yy, xx] and not lab[yy, xx]:
                            lab[yy, xx] = n
                            todo.append((yy, xx))
    return lab


def test_components_match_a_flood_fill_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for i in range(150):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.random((h, w)) < rng.uniform(0.05, 0.8)
        if i % 2:
            m = box_sum(m, 3) >= 4  # blobby, with long snakes
        lab, n = components(m)
        ref = _bfs_components(m)
        assert lab.dtype == np.int32 and n == int(ref.max())
        assert np.array_equal(lab, ref), (i, h, w)


@pytest.mark.parametrize("uf_max_edges", [0, 10**9])
def test_components_both_join_paths_match_a_flood_fill(monkeypatch: pytest.MonkeyPatch, uf_max_edges: int) -> None:
    monkeypatch.setattr(features, "_UF_MAX_EDGES", uf_max_edges)
    rng = np.random.default_rng(11)
    masks = [np.eye(9, dtype=bool)[::-1], np.ones((1, 1), bool), np.zeros((3, 4), bool), np.ones((6, 1), bool)]
    masks += [box_sum(rng.random((70, 90)) < p, 3) >= 4 for p in (0.2, 0.35, 0.5)]  # long snakes, spirals
    masks += [rng.random((int(h), int(w))) < rng.uniform(0.05, 0.8) for h, w in rng.integers(1, 30, (40, 2))]
    for i, m in enumerate(masks):
        lab, n = features.components(m)
        ref = _bfs_components(m)
        assert lab.dtype == np.int32 and n == int(ref.max())
        assert np.array_equal(lab, ref), i


def test_stacked_verifier_equals_each_family_tree_walk() -> None:
    from stratum.patterns import verifier

    m = verifier.models()
    assert m["stack"] is not None and m["stack"].lut is not None
    seen = 0
    for s in range(25):
        dets, feats = candidates(generate(700 + s, mixed_rate=0.5, diameter=(20, 120)).dies)
        fams = [d.family for d in dets]
        want = [m["families"][f].prob(x) if f in m["families"] else None for f, x in zip(fams, feats, strict=True)]
        assert m["stack"].probs(fams, feats) == want
        seen += sum(p is not None for p in want)
    assert seen >= 100


def test_stacked_verifier_walk_equals_each_tree_walk_at_any_depth() -> None:
    from stratum.patterns import verifier

    rng = np.random.default_rng(29)
    keys = [f"k{i}" for i in range(12)]
    for depth in (1, 2, 4):
        nint, trees = 2**depth - 1, 9
        fams = {
            fam: verifier.Trees(
                {
                    "keys": [keys[j] for j in rng.permutation(12)[: 5 + i]],
                    "base": float(rng.normal()),
                    "depth": depth,
                    "feat": rng.integers(0, 5 + i, (trees, nint)).tolist(),
                    "thr": np.round(rng.normal(size=(trees, nint)), 3).tolist(),
                    "leaf": np.round(rng.normal(size=(trees, nint + 1)), 8).tolist(),
                }
            )
            for i, fam in enumerate(("a", "b", "c"))
        }
        st = verifier.Stack(fams)
        assert st._fast
        names = ["a", "c", "x", "b", "a"]  # "x": no model
        feats = [
            {k: (float(v) if v < 1.5 else math.inf) for k, v in zip(keys, rng.normal(size=12), strict=True) if v > -1.2}
            for _ in names
        ]
        want = [fams[f].prob(x) if f in fams else None for f, x in zip(names, feats, strict=True)]
        assert st.probs(names, feats) == want


def test_stacked_box_sums_equal_one_raster_at_a_time() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((3, 17, 23)) < 0.3
    for k in (3, 5):
        both = box_sum(a, k)
        assert both.shape == (3, 17, 23)
        for i in range(3):
            assert np.array_equal(both[i], box_sum(a[i], k))
        assert both[0, 8, 11] == a[0, 8 - k // 2 : 9 + k // 2, 11 - k // 2 : 12 + k // 2].sum()


def test_dilate_equals_a_positive_box_sum() -> None:
    rng = np.random.default_rng(13)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        a = rng.random((2, h, w)) < rng.uniform(0.01, 0.3)
        for r in (1, 2, 3):
            assert np.array_equal(features.dilate(a, r), box_sum(a, 2 * r + 1) > 0), (i, h, w, r)
            assert np.array_equal(features.dilate(a[0], r), box_sum(a[0], 2 * r + 1) > 0)


def test_dilated_at_equals_dilate_read_at_the_cells() -> None:
    rng = np.random.default_rng(17)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        a = rng.random((3, h, w)) < rng.uniform(0.01, 0.3)
        iy, ix = (v.ravel() for v in np.indices((h, w)))
        keep = rng.random(h * w) < 0.7
        iy, ix = iy[keep], ix[keep]
        radii = (1, 2, 3) if i % 2 else (2, 5)
        got = features.dilated_at(a, radii, iy, ix)
        for r, g in zip(radii, got, strict=True):
            assert np.array_equal(g, features.dilate(a, r)[:, iy, ix]), (i, h, w, r)


def test_dilated_at_grows_each_bit_of_an_integer_raster_as_its_own_raster() -> None:
    from stratum.patterns.classifier import _bits

    rng = np.random.default_rng(23)
    for nb in (1, 3, 8, 9, 40, 70):  # uint8, uint16, uint64 and Python-integer packings
        h, w = 13, 17
        regs = [rng.random(h * w) < 0.08 for _ in range(nb)]
        bits = _bits(regs)
        assert bits.dtype == (object if nb > 64 else np.dtype(f"uint{max(8, 1 << (nb - 1).bit_length())}"))
        iy, ix = (v.ravel() for v in np.indices((h, w)))
        got = features.dilated_at(bits.reshape(h, w), (1, 3), iy, ix)
        want = features.dilated_at(np.array(regs).reshape(nb, h, w), (1, 3), iy, ix)
        for g, wnt in zip(got, want, strict=True):
            for i in range(nb):
                assert np.array_equal((g & (1 << i)) != 0, wnt[i]), (nb, i)


def test_site_codes_equal_np_unique() -> None:
    from stratum.patterns.classifier import _codes

    rng = np.random.default_rng(11)
    for lo, hi in ((0, 2), (1, 17), (-5, 4), (200, 256), (-40000, 40000)):
        s = rng.integers(lo, hi, 500).astype(np.int64)
        codes, inv = _codes(s)
        ref_codes, ref_inv = np.unique(s, return_inverse=True)
        assert codes.tolist() == ref_codes.tolist() and inv.tolist() == ref_inv.tolist()
    codes, inv = _codes(np.zeros(0, dtype=np.int64))
    assert len(codes) == 0 and len(inv) == 0


def test_eigen_helpers_give_numpys_bits(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    mats = [np.cov(rng.normal(size=(2, int(n))) * rng.uniform(0.1, 30, (2, 1))) for n in rng.integers(3, 400, 200)]
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(features, "_lapack", None)
        for m in mats:
            w, v = features.eigh(m)
            ref = np.linalg.eigh(m)
            assert w.tobytes() == ref[0].tobytes() and v.tobytes() == ref[1].tobytes()
            assert features.eigvalsh(m).tobytes() == np.linalg.eigvalsh(m).tobytes()


def test_solve_gives_numpys_bits_and_error(monkeypatch) -> None:
    rng = np.random.default_rng(6)
    systems = [(rng.normal(size=(3, 3)) * rng.uniform(0.1, 50), rng.normal(size=3)) for _ in range(200)]
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    for fallback in (False, True):
        if fallback:
            monkeypatch.setattr(features, "_lapack", None)
        for a, b in systems:
            assert features.solve(a, b).tobytes() == np.linalg.solve(a, b).tobytes()
        with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
            features.solve(singular, np.ones(3))


def _runs_longest_reference(t, hit, gap):
    th = np.sort(t[hit])
    if len(th) == 0:
        return 0.0, 0.0, 0
    cut = np.flatnonzero(np.diff(th) > gap)
    starts, ends = np.r_[0, cut + 1], np.r_[cut, len(th) - 1]
    best = int(np.argmax(th[ends] - th[starts] + 1e-6 * (ends - starts + 1)))
    return float(th[starts[best]]), float(th[ends[best]]), int(ends[best] - starts[best] + 1)


def test_runs_longest_short_and_long_lists_agree_with_numpy() -> None:
    rng = np.random.default_rng(7)
    for k in range(3000):
        n = int(rng.integers(0, 400))
        t = np.round(rng.uniform(-40, 40, n) * 2) / 2 if k % 2 else rng.normal(0, 20, n)  # halves: tied spans
        hit = rng.random(n) < rng.random()
        gap = float(rng.choice([0.5, 1.0, 3.2, 5.0]))
        got = features.runs_longest(t, hit, gap)
        assert got == _runs_longest_reference(t, hit, gap)
        assert [type(v) for v in got] == [float, float, int]
    assert features.runs_longest(np.array([0.0, 1.0, 9.0, 10.0]), np.ones(4, bool), 3.2) == (0.0, 1.0, 2)


# --- classifier --------------------------------------------------------------------------------------
def _ring(d: int = 50) -> DieMap:
    dm = _disk(d // 2)
    g = geometry(dm)
    rng = np.random.default_rng(1)
    fail = (g.r > 0.88) & (rng.random(g.n) < 0.8) | (rng.random(g.n) < 0.02)
    return DieMap(dm.x, dm.y, fail)


def test_edge_ring_is_found_with_explanation() -> None:
    out = classify_diemap(_ring())
    top = out["pattern_classes"][0]
    assert top["class_id"] == "edge_ring/edge/high"
    assert top["confidence"] >= 0.8
    ex = top["explanation"]
    assert ex["summary"].startswith("ring of fails at 0.8")
    assert ex["region"]["r_min"] >= 0.8 and ex["region"]["die_count"] == len(ex["region"]["dies"])
    assert ex["features"]["sector_coverage"] >= 0.9


def test_clean_map_reports_nothing_and_near_full() -> None:
    dm = _disk(25)
    assert classify_diemap(dm)["pattern_classes"] == []
    full = DieMap(dm.x, dm.y, np.ones(len(dm.x), bool))
    assert [p["class_id"] for p in classify_diemap(full)["pattern_classes"]] == ["near_full/global/high"]


def test_site_pattern_needs_site_numbers() -> None:
    smp = generate(11, family="site_pattern", n_sites=4)
    with_site = {p["family"] for p in classify_diemap(smp.dies)["pattern_classes"]}
    assert with_site == {"site_pattern"}
    no_site = DieMap(smp.dies.x, smp.dies.y, smp.dies.fail)
    assert "site_pattern" not in {p["family"] for p in classify_diemap(no_site)["pattern_classes"]}


def test_deterministic_byte_identical_output() -> None:
    for s in range(5):
        dm = generate(100 + s, mixed_rate=0.5).dies
        a = json.dumps(classify_diemap(dm, wafer_id="W"), sort_keys=True)
        b = json.dumps(classify_diemap(dm, wafer_id="W"), sort_keys=True)
        assert a == b
    assert classifier_version().startswith("stratum-patterns-14+ver.")


def test_origin_shift_does_not_change_the_answer() -> None:
    dm = generate(5, family="edge_loc").dies
    moved = DieMap(dm.x + 1234, dm.y - 999, dm.fail, dm.site)
    strip = lambda out: [(p["class_id"], p["confidence"]) for p in out["pattern_classes"]]  # noqa: E731
    assert strip(classify_diemap(dm)) == strip(classify_diemap(moved))


@pytest.mark.parametrize(
    "family",
    [
        "center",
        "donut",
        "edge_ring",
        "edge_loc",
        "loc",
        "scratch",
        "near_full",
        "gross_region",
        "radial_gradient",
        "row_stripe",
        "column_stripe",
        "reticle_repeat",
        "site_pattern",
        "random",
    ],
)
def test_family_recall_on_clear_maps(family: str) -> None:
    """Most clear (high-intensity) single-pattern maps are found (a floor, not the eval's figure)."""
    hits = 0
    for s in range(10):
        smp = generate(600 + s, family=family, q_range=(0.7, 1.0), diameter=50)
        dets, _ = analyse(smp.dies)
        hits += family in {d.family for d in dets}
    assert hits >= 7, hits


# --- calibration -------------------------------------------------------------------------------------
def test_pav_is_monotone_and_exact() -> None:
    x = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    kx, ky = calibration.pav(x, y)
    assert ky == [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0][: len(ky)] or ky == sorted(ky)
    assert np.all(np.diff(ky) >= 0)
    t = calibration.tables()
    assert set(t["families"]) >= {"center", "edge_ring", "loc", "scratch"}
    for fam in t["families"].values():
        assert np.all(np.diff(fam["y"]) >= 0) and np.all(np.diff(fam["x"]) >= 0)


# --- inputs ------------------------------------------------------------------------------------------
def test_grid_form_wm811k_encoding() -> None:
    dm = dies_from_grid([[0, 1, 1, 0], [1, 2, 2, 1], [0, 1, 1, 0]], LIMITS)
    assert len(dm.x) == 8 and int(dm.fail.sum()) == 2
    assert set(zip(dm.x[dm.fail].tolist(), dm.y[dm.fail].tolist(), strict=True)) == {(1, 1), (2, 1)}
    with pytest.raises(BadRequest, match=r"grid\[1\]\[2\] = 3"):
        dies_from_grid([[0, 1, 1], [1, 1, 3]], LIMITS)
    with pytest.raises(BadRequest, match="same length"):
        dies_from_grid([[0, 1], [1]], LIMITS)


def test_dies_form_errors_and_retests() -> None:
    dies = [{"x": i % 4, "y": i // 4, "pass": True} for i in range(12)] + [{"x": 0, "y": 0, "pass": False}]
    dm = dies_from_list(dies, LIMITS)
    assert len(dm.x) == 12 and bool(dm.fail[(dm.x == 0) & (dm.y == 0)][0])  # last record wins
    with pytest.raises(BadRequest, match=r"dies\[0\] lacks 'y'"):
        dies_from_list([{"x": 1, "pass": True}], LIMITS)
    with pytest.raises(BadRequest, match=r"dies\[0\].pass must be true or false"):
        dies_from_list([{"x": 1, "y": 1, "pass": "yes"}], LIMITS)
    with pytest.raises(MapDataError, match="at least 5"):
        dies_from_list([{"x": 1, "y": 1, "pass": True}], LIMITS)
    with pytest.raises(PayloadTooLarge):
        dies_from_list([{"x": 1, "y": 1, "pass": True}] * 11, PatternSettings(max_dies=10))


def test_body_forms() -> None:
    with pytest.raises(BadRequest, match="no map in the body"):
        parse_body({"wafer_id": "W"}, LIMITS)
    with pytest.raises(BadRequest, match="give one map form"):
        parse_body({"dies": [], "grid": []}, LIMITS)
    with pytest.raises(BadRequest, match="unsupported format 'klarf'"):
        parse_body({"map_data": "AAAA", "format": "klarf"}, LIMITS)
    with pytest.raises(BadRequest, match="not valid base64"):
        parse_body({"map_data": "%%%"}, LIMITS)
    with pytest.raises(MapDataError, match="not an STDF file"):
        parse_body({"map_data": "AAAAAAAAAAAA"}, LIMITS)
    req = parse_body({"lot_id": "L", "wafer_id": "W1", "snapshot_job_id": "j"}, LIMITS)
    assert req.lake == ("L", "W1", "j") and req.dies is None


def test_every_reported_class_is_in_the_taxonomy() -> None:
    ids = set(tx.by_id())
    for s in range(150):
        for p in classify_diemap(generate(40_000 + s, mixed_rate=0.4).dies)["pattern_classes"]:
            assert p["class_id"] in ids, p["class_id"]


def test_batch_problem_type_matches_the_api() -> None:
    from stratum.api.problems import TYPE_BASE
    from stratum.patterns.service import PROBLEM_TYPE_BASE

    assert PROBLEM_TYPE_BASE == TYPE_BASE


# --- local-shape detectors (candidates before verification) -------------------------------------------
def _cands(fail: np.ndarray, dm: DieMap) -> list[Detection]:
    dets, _ = candidates(DieMap(dm.x, dm.y, fail))
    return [d for d in dets if not d.source]


def test_curve_thickness_of_lines_arcs_and_blobs() -> None:
    t = np.arange(20.0)
    length, thick = _curve(t, 0.5 * t, math.atan2(0.5, 1.0))
    assert (round(length, 6), round(thick, 6)) == (19.118381, 0.0)  # 5-95 % of 19 steps of 1.118
    arc = np.linspace(-1.0, 1.0, 41)
    length, thick = _curve(10 * np.sin(arc), 10 * np.cos(arc), 0.0)  # a circular arc: a quadratic fits it
    assert (round(length, 4), round(thick, 4)) == (15.6665, 0.1342)
    yy, xx = np.mgrid[-3:4, -3:4]
    length, thick = _curve(xx.ravel().astype(float), yy.ravel().astype(float), 0.0)
    assert (length, thick) == (6.0, 3.0)


def test_thin_edge_arc_on_a_noisy_map_is_a_candidate() -> None:
    """A 1-die-deep arc at 60 % on 6 % noise: edge_loc candidates on the arc only (the blob search keeps the
    two strongest clusters of a family; the weaker is a fragment of the same arc)."""
    dm = _disk(20)
    g = geometry(dm)
    rng = np.random.default_rng(3)
    rim = ((1 - g.r) * g.rx < 1.5) & (np.abs(np.angle(np.exp(1j * (g.theta - math.pi / 2)))) < 0.5)
    fail = (rng.random(g.n) < 0.06) | (rim & (rng.random(g.n) < 0.6))
    arcs = [d for d in _cands(fail, dm) if d.family == "edge_loc"]
    assert [d.class_id for d in arcs] == ["edge_loc/edge/med/n", "edge_loc/edge/med/n"]
    assert (arcs[0].region & rim).sum() == 14 and rim.sum() == 22 and arcs[0].features["edge_share"] == 1.0
    assert arcs[0].score > arcs[1].score
    assert (arcs[1].region & rim).sum() == 6 and arcs[1].region.sum() == 11 and arcs[1].features["edge_share"] == 1.0


def test_loc_inside_a_donut_is_a_candidate() -> None:
    dm = _disk(25)
    g = geometry(dm)
    rng = np.random.default_rng(4)
    ring = (g.r > 0.35) & (g.r < 0.65)
    blob = np.hypot(g.u - 0.5, g.v) < 0.14
    fail = (ring & (rng.random(g.n) < 0.3)) | (blob & (rng.random(g.n) < 0.95)) | (rng.random(g.n) < 0.02)
    cands = _cands(fail, dm)
    fams = {d.family: d for d in sorted(cands, key=lambda d: d.score)}  # the strongest of each family
    assert {"donut", "loc"} <= set(fams)
    assert fams["loc"].refinement == "e" and (fams["loc"].region & blob).sum() >= 0.8 * fams["loc"].region.sum()


def test_short_two_die_wide_diagonal_scratch_is_found_by_the_line_search() -> None:
    dm = _disk(20)
    g = geometry(dm)
    rng = np.random.default_rng(5)
    x, y = dm.x - dm.x.min(), dm.y - dm.y.min()
    cx, cy = int(np.median(x)), int(np.median(y))
    d = (x - cx) - (y - cy)
    line = ((d == 0) | (d == 1)) & (np.abs((x - cx) + (y - cy) - 6) <= 8)  # a staircase, 4-connected
    fail = line | (rng.random(g.n) < 0.03)
    lines = [d for d in _cands(fail, dm) if d.family == "scratch"]
    assert [d.class_id.rsplit("/", 1)[1] for d in lines] == ["d45"]
    assert (lines[0].region & line).sum() == line.sum() == 17 and lines[0].features["fill"] == 17 / 18


def test_rim_scan_finds_a_thin_arc_the_window_search_misses() -> None:
    dm = _disk(20)
    g = geometry(dm)
    rng = np.random.default_rng(8)
    rim = ((1 - g.r) * g.rx < 1.5) & (np.abs(np.angle(np.exp(1j * (g.theta + math.pi / 2)))) < 0.6)
    fail = (rng.random(g.n) < 0.06) | (rim & (rng.random(g.n) < 0.8))
    c = _Ctx(DieMap(dm.x, dm.y, fail), Thresholds())
    _rim_arcs(c)
    assert [d.class_id for d in c.dets] == ["edge_loc/edge/high/s"]
    d = c.dets[0]
    assert d.features["rim_depth"] == 1.5 and d.features["arc_fraction"] == 8 / 43
    assert (d.region & rim).sum() == 25 and rim.sum() == 26 and d.region.sum() == 25


def test_scratch_on_a_noisy_wafer_is_a_line_not_a_blob() -> None:
    """The blob-vs-line test counts the fails above the background: a clear diagonal scratch on a wafer with 8 % or
    12 % background fails was taken for a blob (the background's fails beside the line outnumbered the line's)."""
    rng = np.random.Generator(np.random.PCG64(7))
    g = np.arange(-30, 31)
    xx, yy = np.meshgrid(g, g)
    keep = np.hypot(xx, yy) <= 30
    x, y = xx[keep], yy[keep]
    line = (x == y) & (np.abs(x) <= 12)  # 25 dies
    noise = rng.random(len(x))
    found = {}
    for p0 in (0.03, 0.08, 0.12):
        dets, _ = candidates(DieMap(x=x, y=y, fail=(noise < p0) | line, site=None))
        found[p0] = sorted(
            (int((d.region & line).sum()), int(d.region.sum()))
            for d in dets
            if d.family == "scratch" and not d.source and "fill" in d.features
        )
    assert found == {0.03: [(25, 49)], 0.08: [(25, 50)], 0.12: [(0, 10), (0, 10), (25, 55)]}


def _det(family: str, score: float, verified: bool = True) -> Detection:
    feats = {"rule_score": 0.5} if verified else {}
    return Detection(family, "global", "low", None, score, np.zeros(4, bool), 0.0, feats)


def _never(loc: Detection, cen: Detection) -> bool:
    return False


def test_report_falls_back_to_a_rejected_candidate_only_from_its_threshold() -> None:
    th = Thresholds()
    assert th.accept == 0.5 and th.fallback == 0.15
    rnd = _det("random", 0.2)
    # the verifier kept nothing: the likeliest rejected candidate from 0.15, else none (clean: < 10.5 % fails)
    assert [d.family for d in report([rnd], [_det("loc", 0.14), _det("scratch", 0.149)], 0.05, th, _never)] == []
    got = report([rnd], [_det("loc", 0.14), _det("edge_loc", 0.15)], 0.05, th, _never)
    assert [(d.family, d.score) for d in got] == [("edge_loc", 0.15)]
    # nothing likely enough on a map with >= 10.5 % fails: random
    assert [d.family for d in report([rnd], [_det("loc", 0.1)], 0.2, th, _never)] == ["random"]
    # random at the accept threshold wins over any rejected candidate
    assert [d.family for d in report([_det("random", 0.5)], [_det("loc", 0.4)], 0.05, th, _never)] == ["random"]
    # a kept candidate is reported (the random reading dropped), one per family: the strongest
    kept = [rnd, _det("loc", 0.6), _det("loc", 0.9), _det("scratch", 0.55)]
    assert [(d.family, d.score) for d in report(kept, [_det("center", 0.45)], 0.05, th, _never)] == [
        ("loc", 0.9),
        ("scratch", 0.55),
    ]
    # an unverified random reading (no verifier weights): no fallback
    assert report([_det("random", 0.0, verified=False)], [_det("loc", 0.4)], 0.05, th, _never) == []


def test_ctx_rasters_and_thirds_equal_the_scatter_and_bincount_in_any_die_order() -> None:
    from stratum.patterns.geometry import raster_mask

    dm = generate(4242, diameter=40).dies
    rng = np.random.default_rng(5)
    perm = rng.permutation(len(dm.x))
    shuffled = DieMap(dm.x[perm], dm.y[perm], dm.fail[perm])
    for m, order_known in ((dm, True), (shuffled, False)):
        c = _Ctx(m, Thresholds())
        assert (raster_mask(c.g) is not None) is order_known
        vals = rng.random(c.n)
        want = np.zeros(c.g.shape[0] * c.g.shape[1])
        want[c.g.flat] = vals
        assert np.array_equal(c.raster(vals), want.reshape(c.g.shape))
        region = rng.random(c.n) < 0.3
        dens, counts = c.region_stats(region)
        assert counts is not None and counts.dtype == np.float64
        assert counts.tolist() == (np.bincount(c.g.third[region], minlength=3) / int(region.sum())).tolist()
        assert dens == int((c.f & region).sum()) / int(region.sum())


def _join_ratio_among(c: _Ctx, among: np.ndarray) -> float:
    """The join ratio over the dies of ``among``, counted plainly on two rasters."""
    V, F = c.raster(among), c.raster(c.f & among)
    p = float(int((c.f & among).sum()) / int(among.sum()))
    pairs = float(np.count_nonzero(V[:, 1:] & V[:, :-1]) + np.count_nonzero(V[1:] & V[:-1]))
    ff = float(np.count_nonzero(F[:, 1:] & F[:, :-1]) + np.count_nonzero(F[1:] & F[:-1]))
    return ff / max(pairs * p * p, 1e-9)


def test_resid_join_equals_the_join_ratio_over_the_same_dies() -> None:
    from stratum.patterns.classifier import _resid_join

    rng = np.random.default_rng(31)
    for s in range(12):
        c = _Ctx(generate(900 + s, mixed_rate=0.5, diameter=(20, 80)).dies, Thresholds())
        rest = rng.random(c.n) < rng.uniform(0.2, 0.95)
        fails = c.f & rest
        p = float(int(fails.sum()) / int(rest.sum()))
        assert _resid_join(c, rest, fails, p) == _join_ratio_among(c, rest)
