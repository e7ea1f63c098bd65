"""The independent map generator C, the dev tools' seed ranges, fitting on a generator mix and held-out
models in ``make eval``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from stratum.devtools import patterns_calibrate, patterns_data, patterns_eval, patterns_train, wafergen_c
from stratum.patterns import calibration, verifier
from stratum.patterns.service import classifier_version


def test_generator_c_is_seeded_and_covers_the_spec() -> None:
    a, b = wafergen_c.generate(1), wafergen_c.generate(1)
    assert np.array_equal(a.dies.x, b.dies.x) and np.array_equal(a.dies.fail, b.dies.fail)
    assert [(lab.class_id, round(lab.density, 4)) for lab in a.labels] == [("loc/center/high/w", 0.5263)]
    assert (len(a.dies.x), int(a.dies.fail.sum()), a.diameter) == (323, 17, 22)
    fams: Counter[str] = Counter()
    across, sites, mixed = [], set(), 0
    for s in range(300):
        smp = wafergen_c.generate(s)
        fams.update(lab.family for lab in smp.labels)
        across.append(smp.diameter)
        if smp.dies.site is not None:
            sites.add(len(np.unique(smp.dies.site)))
        mixed += len(smp.labels) > 1
    assert len(fams) == 15
    assert (min(across), max(across)) == (20, 300)
    assert sorted(sites) == [1, 2, 3, 4, 6, 8, 12, 16]
    assert mixed == 89


def test_generator_c_labels_follow_the_labelling_rules() -> None:
    third = np.array([0] * 20 + [1] * 3 + [2] * 77, dtype=np.int8)
    w = SimpleNamespace(third=third)
    assert wafergen_c._location(w, np.ones(100, bool)) == "edge"  # the middle third holds 3 % < 15 %
    w.third = np.array([0] * 15 + [1] * 25 + [2] * 60, dtype=np.int8)
    assert wafergen_c._location(w, np.ones(100, bool)) == "global"  # a ring's centroid would say centre
    assert [wafergen_c._severity(d) for d in (0.199, 0.2, 0.499, 0.5)] == ["low", "med", "med", "high"]
    for s in range(60):
        smp = wafergen_c.generate(s)
        for lab in smp.labels:
            assert lab.density == pytest.approx(float(smp.dies.fail[lab.region].mean()))
            assert lab.severity == wafergen_c._severity(lab.density)
            if lab.family in wafergen_c.WHOLE:
                assert lab.location == "global"
            if lab.family not in ("none", "random"):
                assert lab.visibility >= wafergen_c.MIN_VISIBILITY
    for s in range(40):
        assert wafergen_c.generate(s, family="none").dies.fail.mean() <= wafergen_c.NONE_MAX
        assert wafergen_c.generate(s, family="random").dies.fail.mean() >= wafergen_c.RANDOM_MIN


def test_a_reticle_that_follows_site_num_is_a_site_pattern() -> None:
    site = np.array([1, 2, 3, 4] * 25)
    assert wafergen_c._follows_site(site == 3, site)
    every_other = (site == 3) & (np.arange(100) % 8 < 4)
    assert not wafergen_c._follows_site(every_other, site)


def test_seed_ranges_are_disjoint() -> None:
    spans = sorted((s0, s0 + 1_000_000) for by_gen in patterns_data.SEED0.values() for s0 in by_gen.values())
    assert len(spans) == 20
    assert all(a1 <= b0 for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False))


def test_held_out_models_fit_on_a_generator_mix(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(verifier, "models", verifier.models)  # use_models replaces them: restored after
    monkeypatch.setattr(calibration, "tables", calibration.tables)
    packaged = classifier_version()
    assert patterns_train.main(["-n", "60", "--rounds", "3", "--gens", "A,B", "--out", str(tmp_path)]) == 0
    assert patterns_calibrate.main(["-n", "12", "--gens", "A,B", "--out", str(tmp_path)]) == 0
    fitted = json.loads((tmp_path / "verifier.json").read_text())
    assert fitted["fitted_on"]["generators"] == ["A", "B"]
    assert fitted["fitted_on"]["seed0"] == {"A": 2_000_000, "B": 3_000_000}
    cal = json.loads((tmp_path / "calibration.json").read_text())
    assert cal["fitted_on"] == {"generators": ["A", "B"], "seed0": {"A": 1_000_000, "B": 4_000_000}, "maps": 12}
    patterns_data.use_models(tmp_path)
    assert classifier_version() != packaged
    assert fitted["version"] in classifier_version() and cal["version"] in classifier_version()
    r = patterns_eval.evaluate("C", 4)
    assert r["n"] == 4 and len(r["confusion"]) == 15


def test_make_eval_reports_the_independent_set() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stratum.devtools.patterns_eval", "-n", "3", "--sets", "C", "--speed-maps", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "== independent generator C: 3 maps ==" in out.stdout
    assert "family macro-F1:" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "stratum.devtools.patterns_eval", "--sets", "Z", "--speed-maps", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "Z" in bad.stderr


def test_decision_replay_equals_the_evaluation(tmp_path) -> None:
    """The reporting-decision replay over cached candidates gives ``make eval``'s own figures."""
    from stratum.devtools import patterns_decide
    from stratum.patterns.classifier import Thresholds

    for gen in ("A", "E"):
        s0 = patterns_data.SEED0["test"][gen] + 500_000
        recs = [patterns_decide.collect_one(patterns_data.sample(gen, s0 + i)) for i in range(40)]
        got = patterns_decide.score(recs, Thresholds())
        want = patterns_eval.evaluate(gen, 40, s0)
        assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-12)
        assert (got["loc"], got["sev"]) == (want["loc_acc"], want["sev_acc"])
        assert got["ece"] == pytest.approx(want["ece"], abs=1e-12)
        assert got["none"][2] == pytest.approx(want["per"]["none"][2], abs=1e-12)
    cache = tmp_path / "d.pkl"
    run = [sys.executable, "-m", "stratum.devtools.patterns_decide"]
    out = subprocess.run(
        [*run, "collect", "--set", "D", "-n", "6", "--cache", str(cache)], capture_output=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*run, "replay", str(cache)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].startswith("packaged") and any(line.startswith("fallback off") for line in lines)
