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
    assert sorted(p.name for p in cache.parent.iterdir()) == ["cands.A.npz", "cands.C.npz"]

    def no_collect(*_a, **_k):
        raise AssertionError("collected again although the cache matches")

    monkeypatch.setattr(patterns_train, "collect_gen", no_collect)
    assert patterns_train.main([*args, "--out", str(tmp_path / "again"), "--cache", str(cache)]) == 0
    plain = (tmp_path / "plain" / verifier.FILE).read_bytes()
    assert (tmp_path / "first" / verifier.FILE).read_bytes() == plain
    assert (tmp_path / "again" / verifier.FILE).read_bytes() == plain
    assert json.loads(plain)["fitted_on"]["maps"] == 40
    # more maps than cached: the cache does not hold them, so they are collected (here: refused)
    with pytest.raises(AssertionError, match="collected again"):
        patterns_train.main(
            ["-n", "41", "--rounds", "2", "--gens", "A,C", "--out", str(tmp_path / "x"), "--cache", str(cache)]
        )


def test_a_cache_of_more_maps_is_sliced_to_the_same_weights_as_a_plain_fit(tmp_path, monkeypatch) -> None:
    """The first maps of each generator are the same in any run: a cache of 30 A and 30 C maps refits the
    first 20 of the A, C round-robin (10 each) and the first 21 of C, A (11 C, 10 A) byte for byte."""
    monkeypatch.setattr(verifier, "models", verifier.models)
    monkeypatch.setattr(calibration, "tables", calibration.tables)
    cache = tmp_path / "cands.npz"
    assert (
        patterns_train.main(
            ["-n", "60", "--rounds", "1", "--gens", "A,C", "--out", str(tmp_path / "big"), "--cache", str(cache)]
        )
        == 0
    )
    for n, gens in (("20", "A,C"), ("21", "C,A"), ("10", "C")):
        args = ["-n", n, "--rounds", "2", "--gens", gens]
        assert patterns_train.main([*args, "--out", str(tmp_path / "plain")]) == 0
        assert patterns_train.main([*args, "--out", str(tmp_path / "sliced"), "--cache", str(cache)]) == 0
        plain = (tmp_path / "plain" / verifier.FILE).read_bytes()
        assert (tmp_path / "sliced" / verifier.FILE).read_bytes() == plain


def test_upweight_repeats_the_candidates_of_small_maps(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(verifier, "models", verifier.models)
    monkeypatch.setattr(calibration, "tables", calibration.tables)
    cache = tmp_path / "cands.npz"
    tables = patterns_train.cached(cache, 20, ("A", "C"))
    up = patterns_train.cached(cache, 20, ("A", "C"), (("small", 3),))
    for fam, (_, X, y, _, info) in tables.items():
        small = int((info[:, 1] < 40).sum())
        assert len(up[fam][2]) == len(y) + 2 * small
        assert up[fam][1].shape[1] == X.shape[1]
    assert any((info[:, 1] < 40).any() for *_, info in tables.values())
    assert (
        patterns_train.main(
            [
                "-n",
                "20",
                "--gens",
                "A,C",
                "--rounds",
                "1",
                "--upweight",
                "small:3",
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(cache),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "o" / verifier.FILE).read_text())["fitted_on"]["upweight"] == {"small": 3}
    with pytest.raises(SystemExit):
        patterns_train.main(["-n", "20", "--upweight", "tiny:2", "--out", str(tmp_path / "o")])
