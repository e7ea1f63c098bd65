"""The local detectors beside other patterns: a scratch across a radial pattern is searched with that pattern's
dies (against its level), and clusters the smoothing joined into one component are also read one by one."""

from __future__ import annotations

import numpy as np

from stratum.devtools.patterns_data import sample
from stratum.patterns.classifier import candidates


def _own(gen: str, seed: int, family: str):
    smp = sample(gen, seed)
    (lab,) = [lab for lab in smp.labels if lab.family == family]
    dets, _ = candidates(smp.dies)
    return lab, [d for d in dets if d.family == family and not d.source]


def test_a_scratch_across_a_centre_blob_is_found_with_the_blobs_dies() -> None:
    # generator B, 64 dies across: a centre blob (869 dies, 15 % failing) explained first took 93 % of the
    # scratch's fails out of the line search; no scratch candidate was produced
    lab, found = _own("B", 7_500_461, "scratch")
    assert [d.summary for d in found] == ["line of fails 33 dies long at 4 deg, 61% filled, 15% beside it"]
    (d,) = found
    assert int(np.count_nonzero(d.region)) == 41
    assert int(np.count_nonzero(d.region & lab.region)) == 30
    assert round(d.features["in_radial"], 4) == 0.9512


def test_a_cluster_joined_to_an_arc_and_a_line_is_found_on_its_own() -> None:
    # generator A, 27 dies across, clean wafer: the loc, the edge arc and the scratch were one smoothed component,
    # read as a gross region; the loc had no candidate of its own
    lab, found = _own("A", 5_500_257, "loc")
    assert [d.summary for d in found] == [
        "cluster of 14 dies towards E at r = 0.48 R, 79% failing",
        "cluster of 21 dies towards NW at r = 0.80 R, 48% failing",
    ]
    assert int(np.count_nonzero(found[0].region & lab.region)) == 12
    assert round(found[0].features["piece_share"], 4) == 0.2333
