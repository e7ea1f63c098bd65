"""Wafer maps of real files look like the wafer: round (die aspect from the WCR, else inferred), oriented and
annotated from the file's WCR, pass/fail from the PRR part flags when the bin records leave it blank."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from stratum.render.diemap import render_die_map
from stratum.render.palette import PASS_COLORS
from tests.conftest import CORPUS
from tests.fixtures.runtime import make_runtime

pytestmark = pytest.mark.corpus

FILES = {
    "ltx_diamond_d10_ws_4site_95mb.std.gz": ("840138.000", "Q4RA40-18"),  # WCR: 2.21 x 3.13 mm dies, POS_Y 'D'
    "advantest_93k_ws_6904dies.std.gz": ("301199.002", "301199-01"),  # no die size, 129 x 269 index grid
    "teradyne_catalyst_a595_3wafers_be.stdf.gz": ("TEST", "02"),  # HBR without pass/fail
}


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    runtime = make_runtime(tmp_path_factory.mktemp("maps") / "data")
    for name in FILES:
        assert runtime.ingest.ingest_path("default", CORPUS / name).status == "succeeded"
    yield runtime
    runtime.close()


def _die_area_aspect(png: bytes) -> float:
    """Width / height of the bounding box of the drawn dies (saturated pixels left of the legend)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    a = a[:, : int(a.shape[1] * 0.62)]
    ys, xs = np.nonzero(a.max(axis=2) - a.min(axis=2) > 60)
    return (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)


@pytest.mark.parametrize("name", list(FILES)[:2])
def test_wafer_disk_is_round(rt, name):
    lot, wafer = FILES[name]
    png = render_die_map(rt.analytics.wafer_map("default", lot, wafer), fmt="png")
    assert _die_area_aspect(png) == pytest.approx(1.0, abs=0.04)  # was 1.38 (D-10) and 0.48 (93k)


def _texts(svg: bytes) -> list[str]:
    return re.findall(r">([^<]+)</text>", svg.decode())


def test_orientation_note_comes_from_the_wcr(rt):
    d10 = rt.analytics.wafer_map("default", *FILES["ltx_diamond_d10_ws_4site_95mb.std.gz"])
    assert (d10.orientation["pos_x"], d10.orientation["pos_y"]) == ("R", "D")
    texts = _texts(render_die_map(d10, fmt="svg"))
    assert any(t.endswith("X right, Y down (X assumed: not in the file's WCR)") for t in texts), texts
    a595 = rt.analytics.wafer_map("default", *FILES["teradyne_catalyst_a595_3wafers_be.stdf.gz"])
    assert any(t.endswith("X right, Y down (from the file's WCR)") for t in _texts(render_die_map(a595, fmt="svg")))


def test_pass_fail_from_prr_flags_when_bins_do_not_say(rt):
    d = rt.analytics.wafer_map("default", *FILES["teradyne_catalyst_a595_3wafers_be.stdf.gz"])
    assert {n: (b["pass_fail"], b["pass_fail_source"]) for n, b in d.bins["H"].items()} == {
        1: ("P", "prr"),
        2: ("F", "prr"),
        3: ("F", "prr"),
        4: ("F", "prr"),
    }
    svg = render_die_map(d, fmt="svg")
    texts = _texts(svg)
    assert "112 dies, 88 good, yield 78.6% (final view)" in texts
    assert "pass/fail of bins 1, 2, 3, 4 from the PRR part flags (the bin records do not state it)" in texts
    i = texts.index("Total dies")
    assert texts[i : i + 8] == ["Total dies", "112", "Pass", "88", "78.6%", "Fail", "24", "21.4%"]
    assert f'fill="{PASS_COLORS[0]}"' in svg.decode()  # bin 1 in the pass colour
