"""The centre-blob rules: a centre pattern stands above the rest of the wafer, and a local cluster that is the
centre blob's own fringe is not a second pattern."""

from __future__ import annotations

import numpy as np

from stratum.devtools.patterns_data import sample
from stratum.patterns.classifier import Detection, Thresholds, _Ctx, _in_centre, candidates
from stratum.patterns.geometry import DieMap, geometry


def _disk(rad: int) -> DieMap:
    ii, jj = np.meshgrid(np.arange(-rad, rad + 1), np.arange(-rad, rad + 1), indexing="ij")
    keep = ii**2 + jj**2 <= rad * rad
    return DieMap(x=ii[keep].ravel(), y=jj[keep].ravel(), fail=np.zeros(keep.sum(), bool))


def _centres(dm: DieMap) -> list[str]:
    dets, _ = candidates(dm)
    return [d.summary for d in dets if d.family == "center" and not d.source]


def test_random_fails_are_not_a_centre_blob() -> None:
    # generator D, a random map (22 % iid fails, 19 dies across) that read as a "blob at r < 0.92 R, 23 % failing"
    smp = sample("D", 21_001_672)
    assert [lab.family for lab in smp.labels] == ["random"]
    assert _centres(smp.dies) == []


def test_a_centre_blob_on_the_same_small_map_is_still_found() -> None:
    dm = _disk(9)
    g = geometry(dm)
    rng = np.random.Generator(np.random.PCG64(5))
    u = rng.random(g.n)
    fail = (u < 0.1) | ((g.r < 0.4) & (u < 0.8))
    assert _centres(DieMap(dm.x, dm.y, fail)) == ["blob of fails at r < 0.40 R, 80% failing, on 100% of sectors"]


def _det(family: str, region: np.ndarray, dens: float) -> Detection:
    return Detection(family, "center", "med", None, 0.9, region, dens, {}, "")


def test_a_cluster_in_the_centre_blobs_fringe_is_the_blob() -> None:
    dm = _disk(40)
    c = _Ctx(dm, Thresholds())
    g = c.g
    cen = _det("center", g.r < 0.3, 0.4)
    sw = (g.u < 0) & (g.v < 0)
    fringe = sw & (g.r >= 0.2) & (g.r < 0.42)  # 42 % of the blob's dies, beside it
    assert 0.35 * cen.region.sum() <= fringe.sum() <= 0.5 * cen.region.sum()
    assert _in_centre(c, _det("loc", fringe, 0.45), cen)
    assert _in_centre(c, _det("loc", cen.region, 0.4), cen)  # the blob itself read as a cluster
    # a separate cluster: denser than the blob, smaller than a third of it, or beyond its soft extent
    assert not _in_centre(c, _det("loc", fringe, 0.8), cen)
    small = fringe & (g.u < -0.3)
    assert small.sum() < 0.35 * cen.region.sum()
    assert not _in_centre(c, _det("loc", small, 0.45), cen)
    far = sw & (g.r >= 0.5) & (g.r < 0.8)
    assert not _in_centre(c, _det("loc", far, 0.45), cen)


def test_the_centre_test_compares_with_the_dies_the_scan_counted() -> None:
    # generator A, 2,598 dies: the radial scan counts 2,023 of them (an earlier detection took the rest), and a ring
    # explained earlier in the scan shrinks the active dies before the centre test; reading them again there
    # raised a shape mismatch
    smp = sample("A", 2_001_055)
    assert len(smp.dies.x) == 2598
    dets, feats = candidates(smp.dies)
    assert dets and len(feats) == len(dets)
