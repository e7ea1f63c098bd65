"""The whole-map model (a dev tool, not run by the classifier): its features, the committed weights and the
script that fits them."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np

from stratum.devtools import patterns_data, patterns_globaltrain
from stratum.devtools import patterns_global as globalmodel
from stratum.devtools.wafergen import generate
from stratum.patterns.classifier import candidates
from stratum.patterns.geometry import DieMap, geometry
from stratum.patterns.service import classifier_version


def _disk(radius: int, fail=lambda r: False) -> DieMap:
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    keep = xs**2 + ys**2 <= radius**2
    x, y = xs[keep].ravel(), ys[keep].ravel()
    r = np.sqrt(x**2 + y**2) / radius
    return DieMap(x.astype(np.int64), y.astype(np.int64), np.array([fail(v) for v in r], dtype=bool))


def _features(dm: DieMap) -> dict[str, float]:
    return globalmodel.features(geometry(dm), np.asarray(dm.fail, dtype=bool))


def test_features_are_deterministic_finite_and_fixed_in_shape() -> None:
    keys = None
    for s in range(6):
        dm = generate(500 + s, diameter=[20, 50, 140][s % 3], mixed_rate=0.5).dies
        a, b = _features(dm), _features(dm)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        assert all(isinstance(v, float) and math.isfinite(v) for v in a.values())
        assert keys is None or sorted(a) == keys
        keys = sorted(a)
    assert keys is not None and len(keys) == 57


def test_features_read_the_pattern_at_any_resolution() -> None:
    for radius in (12, 40):
        ring = _features(_disk(radius, lambda r: r > 0.85))
        assert ring["m_band5"] > 0.5 and ring["m_band5_low2"] > 0.5 and ring["m_band0"] < 0
        assert ring["m_band_corr"] > 0.6 and ring["m_band_mono"] == 1.0
        clean = _features(_disk(radius))
        assert clean["m_fail"] == 0.0 and clean["m_s2_zmax"] < 0 and clean["m_nb3"] == 0.0
        assert ring["m_rim"] > 0.5 and ring["m_rim_cover"] == 1.0 and ring["m_s2_hot_spread"] > 0.85
    assert _features(_disk(25))["m_log_n"] == math.log(len(_disk(25).x))


def test_committed_weights_load_and_match_the_features() -> None:
    spec = json.loads(resources.files("stratum.devtools").joinpath(globalmodel.FILE).read_text())
    m = globalmodel.models()
    assert m["version"] == spec["version"] and len(m["version"]) == 10
    assert tuple(m["families"]) == tuple(sorted(globalmodel.FAMILIES))
    assert m["stack"] is not None
    keys = sorted(_features(_disk(20)))
    assert all(t.keys == keys for t in m["families"].values())
    # fitted on exactly the FIT_GENERATORS' ranges (the held-out eval generators D and E have ranges too)
    gens = patterns_data.FIT_GENERATORS
    assert spec["fitted_on"]["generators"] == list(gens)
    assert spec["fitted_on"]["seed0"] == {g: patterns_data.SEED0["global"][g] for g in gens}


def test_probabilities_separate_clear_maps() -> None:
    ring = _disk(30, lambda r: r > 0.85)
    g, f = geometry(ring), np.asarray(ring.fail, dtype=bool)
    p = globalmodel.probs(g, f)
    assert sorted(p) == sorted(globalmodel.FAMILIES) and p == globalmodel.probs(g, f)
    assert p["edge_ring"] > 0.9 and p["center"] < 0.1 and p["none"] < 0.1
    sparse = np.random.default_rng(3).random(len(ring.x)) < 0.03  # a clean wafer: a few scattered fails
    q = globalmodel.probs(geometry(ring), sparse)
    assert max(q, key=q.__getitem__) == "none" and q["none"] > 0.6 and q["edge_ring"] < 0.01


def test_stacked_inference_equals_each_familys_trees() -> None:
    m = globalmodel.models()
    for s in range(8):
        dm = generate(700 + s, diameter=[24, 60][s % 2], mixed_rate=0.5).dies
        g, f = geometry(dm), np.asarray(dm.fail, dtype=bool)
        x = globalmodel.features(g, f)
        assert globalmodel.probs(g, f) == {fam: round(t.prob(x), 6) for fam, t in m["families"].items()}


def test_training_script_fits_on_a_tiny_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(globalmodel, "models", globalmodel.models)  # use_models replaces it: restored after
    assert patterns_globaltrain.main(["-n", "45", "--rounds", "2", "--gens", "A,C", "--out", str(tmp_path)]) == 0
    spec = json.loads((tmp_path / globalmodel.FILE).read_text())
    assert spec["fitted_on"] == {
        "generators": ["A", "C"],
        "seed0": {"A": 6_000_000, "C": 14_000_000},
        "maps": 45,
        "rounds": 2,
    }
    assert all(len(t["feat"]) == 2 for t in spec["families"].values())
    again = tmp_path / "again"
    assert patterns_globaltrain.main(["-n", "45", "--rounds", "2", "--gens", "A,C", "--out", str(again)]) == 0
    assert (again / globalmodel.FILE).read_bytes() == (tmp_path / globalmodel.FILE).read_bytes()
    patterns_data.use_models(tmp_path)
    assert globalmodel.models()["version"] == spec["version"]


def test_the_classifier_does_not_run_the_whole_map_model() -> None:
    dm = generate(900, diameter=40, mixed_rate=0.5).dies
    _, feats = candidates(dm)
    assert feats and not any(k.startswith("gm_") for x in feats for k in x)
    assert "+glb." not in classifier_version()
