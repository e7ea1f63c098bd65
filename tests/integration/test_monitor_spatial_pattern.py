"""The ``spatial_pattern`` monitor rule: a wafer-map pattern family on at least n wafers of a lot, read
from the lot's ``wafer_patterns`` (classified at ingest)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stratum.devtools.stdf.lots import LotSpec, TestDef, write_lot
from stratum.monitors.model import MonitorIn
from stratum.monitors.rules import SpatialPattern
from stratum.query.engine import Scope
from tests.fixtures.runtime import make_runtime

WS = "default"
TESTS = (TestDef(1000, "VDD", lo=0.0, hi=1.0, mean=0.5, sigma=0.05, fail_bin=2),)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("spatial")
    rt = make_runtime(d / "data")
    # every wafer: one dense off-centre cluster, nothing else
    spec = LotSpec(
        lot_id="CLU",
        wafers=("W01", "W02", "W03", "W04"),
        die_diameter=30,
        tests=TESTS,
        random_fail_rate=0.0,
        edge_fail_rate=0.0,
        cluster=(7.0, 5.0, 3.5),
        cluster_fail_rate=1.0,
        seed=7,
    )
    for p in write_lot(spec, d / "CLU").paths:
        rt.ingest.ingest_path(WS, p)
    yield rt
    rt.close()


def run(rt, params: dict):
    body = {"label": "pattern", "rule": {"kind": "spatial_pattern", "params": params}, "trigger": {"on_ingest": True}}
    m = rt.monitors.create(WS, MonitorIn.model_validate(body))
    lot = rt.catalog.get_lot(WS, "CLU")
    return rt.monitors.evaluate(m, lot, lot.active_job_id, rt.monitors._scope_lots(m))[0]


def stored(rt) -> list[tuple]:
    lot = rt.catalog.get_lot(WS, "CLU")
    with rt.engine.session(WS, Scope(lot_id="CLU", snapshot_job_id=lot.active_job_id)) as s:
        return s.rows("SELECT wafer_id, family, confidence FROM wafer_patterns ORDER BY wafer_id, rank")


def test_cluster_on_every_wafer_fires_at_four_not_five(lake) -> None:
    rows = stored(lake)
    assert [(w, f) for w, f, _ in rows] == [("W01", "loc"), ("W02", "loc"), ("W03", "loc"), ("W04", "loc")]
    out = run(lake, {"min_wafers": 4, "families": ["loc"]})
    assert [(o.subject, o.fired, o.values["wafers"], o.values["wafer_ids"]) for o in out] == [
        ({"lot_id": "CLU", "family": "loc"}, True, 4, ["W01", "W02", "W03", "W04"])
    ]
    out = run(lake, {"min_wafers": 5})
    assert [(o.subject["family"], o.fired, o.values["wafers"]) for o in out] == [("loc", False, 4)]


def test_watched_family_absent_is_fine_and_confidence_filters(lake) -> None:
    out = run(lake, {"min_wafers": 1, "families": ["scratch", "loc"]})
    assert [(o.subject["family"], o.fired, o.values["wafers"]) for o in out] == [
        ("loc", True, 4),
        ("scratch", False, 0),
    ]
    above = max(c for _, _, c in stored(lake))
    out = run(lake, {"min_wafers": 1, "min_confidence": min(above + 1e-4, 1.0)})
    assert out == []


@pytest.mark.parametrize("families", [["blob"], ["none"], []])
def test_unknown_families_rejected(families) -> None:
    with pytest.raises(ValidationError):
        SpatialPattern.model_validate({"families": families})


def test_wafer_map_caption_names_the_stored_patterns(lake) -> None:
    """The wafer map image carries the wafer's wafer_patterns rows as a caption (class and confidence)."""
    from stratum.render.diemap import render_die_map

    lot = lake.catalog.get_lot(WS, "CLU")
    with lake.engine.session(WS, Scope(lot_id="CLU", snapshot_job_id=lot.active_job_id)) as s:
        rows = s.rows("SELECT class_id, confidence FROM wafer_patterns WHERE wafer_id = 'W02' ORDER BY rank")
    assert rows and rows[0][0].startswith("loc/")
    data = lake.analytics.wafer_map(WS, "CLU", "W02")
    assert [(p["class_id"], p["confidence"]) for p in data.patterns] == rows
    svg = render_die_map(data, fmt="svg").decode()
    caption = "patterns: " + ", ".join(f"{c} ({p:.2f})" for c, p in rows)
    assert caption in svg
