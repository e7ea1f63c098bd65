"""``patterns_train --cache``: the collected candidates are kept and refitted from, with the same bytes out."""

from __future__ import annotations

import json

import pytest

from stratum.devtools import patterns_train
from stratum.patterns import calibration, verifier


def test_a_refit_from_the_cache_writes_the_same_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(verifier, "models", verifier.models)  # use_models replaces them: restored after
    monkeypatch.setattr(calibration, "tables", calibration.tables)
    args = ["-n", "40", "--rounds", "2", "--gens", "A,C"]
    assert patterns_train.main([*args, "--out", str(tmp_path / "plain")]) == 0
    cache = tmp_path / "c" / "cands.npz"
    assert patterns_train.main([*args, "--out", str(tmp_path / "first"), "--cache", str(cache)]) == 0
    assert cache.exists()

    def no_collect(*_a, **_k):
        raise AssertionError("collected again although the cache matches")

    monkeypatch.setattr(patterns_train, "collect", no_collect)
    assert patterns_train.main([*args, "--out", str(tmp_path / "again"), "--cache", str(cache)]) == 0
    plain = (tmp_path / "plain" / verifier.FILE).read_bytes()
    assert (tmp_path / "first" / verifier.FILE).read_bytes() == plain
    assert (tmp_path / "again" / verifier.FILE).read_bytes() == plain
    assert json.loads(plain)["fitted_on"]["maps"] == 40
    # other maps: the cache does not match, so the candidates are collected again (here: refused)
    with pytest.raises(AssertionError, match="collected again"):
        patterns_train.main(
            ["-n", "41", "--rounds", "2", "--gens", "A,C", "--out", str(tmp_path / "x"), "--cache", str(cache)]
        )
