"""Lot analytics through the API, against the generator's truth: wafers, wafer maps (JSON, PNG, SVG),
tests, results, capability and bins; and ``snapshot_job_id`` pinning on every route."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from stratum.analytics import capability as cap
from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.query.floats import float32_value

from .conftest import FT_LOT, PINNED_PATHS, WS_LOT, assert_same, final_mask, first_pass_mask, strict_json, valid_mask

PIN_FIRST_SNAPSHOT = True  # conftest records the first file's snapshot answers for this module

CAP_FIELDS = (
    "n",
    "mean",
    "sigma_within",
    "sigma_overall",
    "cp",
    "cpl",
    "cpu",
    "cpk",
    "pp",
    "ppl",
    "ppu",
    "ppk",
    "lsl",
    "usl",
)


def lot_path(suffix: str = "", lot: str = WS_LOT) -> str:
    return f"/v1/lots/{lot}{suffix}"


def _f32(v) -> float | None:
    """A float32 value as the API presents it: the shortest decimal of the same float32 (1e-05)."""
    return None if v is None else float32_value(float(np.float32(v)))


def _f32x(v) -> float | None:
    """The exact float32 value (what computations such as capability use)."""
    return None if v is None else float(np.float32(v))


def _first_file(truth) -> np.ndarray:
    return truth.parts.file == 0


# -- wafers -----------------------------------------------------------------------------------------


def _wafer_truth(truth, rows: np.ndarray | None = None) -> dict[str, tuple]:
    p = truth.parts
    rows = np.ones(len(p), bool) if rows is None else rows
    final, first = final_mask(truth, rows), first_pass_mask(truth, rows)
    out = {}
    for w in sorted(set(p.wafer_id[rows].tolist())):
        m = p.wafer_id == w
        out[w] = (
            int((m & final).sum()),
            int((m & final & p.passed).sum()),
            int((m & first).sum()),
            int((m & first & p.passed).sum()),
            int((m & rows & ~first).sum()),
        )
    return out


def _wafer_rows(body) -> dict[str, tuple]:
    return {
        w["wafer_id"]: (
            w["part_count"],
            w["good_count"],
            w["first_pass_count"],
            w["first_pass_good"],
            w["retest_count"],
        )
        for w in body["items"]
    }


def test_wafers(seeded):
    body = seeded.json(lot_path("/wafers"))
    assert body["lot_id"] == WS_LOT
    assert _wafer_rows(body) == _wafer_truth(seeded.wafer_lot)
    for w in body["items"]:
        assert w["yield"] == pytest.approx(w["good_count"] / w["part_count"], rel=1e-12)
        assert w["first_pass_yield"] == pytest.approx(w["first_pass_good"] / w["first_pass_count"], rel=1e-12)
    assert body["items"][2]["job_id"] == seeded.wafer_jobs[-1].job_id  # W03: newest file holding it


def test_wafers_pinned_on_the_first_file(seeded):
    first = seeded.wafer_jobs[0].job_id
    body = seeded.json(lot_path("/wafers"), params={"snapshot_job_id": first})
    assert _wafer_rows(body) == _wafer_truth(seeded.wafer_lot, _first_file(seeded.wafer_lot))
    assert [w["wafer_id"] for w in body["items"]] == ["W01", "W02"]
    assert _wafer_rows(body) != _wafer_rows(seeded.json(lot_path("/wafers")))


# -- wafer maps -------------------------------------------------------------------------------------


def _die_truth(truth, wafer: str, mask: np.ndarray) -> list[tuple]:
    p = truth.parts
    idx = np.flatnonzero(mask & (p.wafer_id == wafer))
    rows = [
        (int(p.x[i]), int(p.y[i]), int(p.hard_bin[i]), int(p.soft_bin[i]), bool(p.passed[i]), int(p.site[i]))
        for i in idx
    ]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def _dies(body) -> list[tuple]:
    d = body["dies"]
    return list(zip(d["x"], d["y"], d["hard_bin"], d["soft_bin"], d["passed"], d["site_num"], strict=True))


@pytest.mark.parametrize("wafer", ["W01", "W02", "W03"])
def test_wafer_map_json_final(seeded, wafer):
    truth = seeded.wafer_lot
    body = seeded.json(lot_path(f"/wafers/{wafer}/map"))
    exp = _die_truth(truth, wafer, final_mask(truth))
    assert _dies(body) == exp
    assert body["view"] == "final"
    assert body["snapshot_job_id"] == seeded.wafer_jobs[-1].job_id
    good = sum(1 for d in exp if d[4])
    assert body["counts"] == {"dies": len(exp), "good": good, "yield": pytest.approx(good / len(exp)), "view": "final"}
    assert body["orientation"] == {
        "pos_x": "R",
        "pos_y": "U",
        "orientation_assumed": False,
        "flat": "D",
        "center_x": body["orientation"]["center_x"],
        "center_y": body["orientation"]["center_y"],
        "die_width": 5.0,
        "die_height": 5.0,
        "units": 3,
    }
    assert isinstance(body["orientation"]["center_x"], int)
    assert body["bins"]["H"]["1"] == {"name": "PASS", "pass_fail": "P", "pass_fail_source": "bin_record"}
    for b, (name, pf) in truth.hard_bins.items():
        if str(b) in body["bins"]["H"]:
            assert body["bins"]["H"][str(b)] == {"name": name, "pass_fail": pf, "pass_fail_source": "bin_record"}
    assert {d[2] for d in exp} <= {int(b) for b in body["bins"]["H"]}
    assert body["test"] is None
    assert "value" not in body["dies"]


def test_wafer_map_first_pass_view(seeded):
    truth = seeded.wafer_lot
    body = seeded.json(lot_path("/wafers/W01/map"), params={"view": "first_pass"})
    assert _dies(body) == _die_truth(truth, "W01", first_pass_mask(truth))
    all_view = seeded.json(lot_path("/wafers/W01/map"), params={"view": "all"})
    assert len(all_view["dies"]["x"]) == int((truth.parts.wafer_id == "W01").sum())


def test_wafer_map_heat_map_values(seeded):
    truth = seeded.wafer_lot
    t = truth.test_index(1000)
    body = seeded.json(lot_path("/wafers/W02/map"), params={"test_num": 1000})
    assert (body["test"]["test_num"], body["test"]["test_name"]) == (1000, "CONT_VDD")
    final = final_mask(truth)
    valid = valid_mask(truth, t)
    p = truth.parts
    exp = {}
    for i in np.flatnonzero(final & (p.wafer_id == "W02")):
        exp[(int(p.x[i]), int(p.y[i]))] = float(truth.results[i, t]) if valid[i] else None
    got = dict(zip(zip(body["dies"]["x"], body["dies"]["y"], strict=True), body["dies"]["value"], strict=True))
    assert got == exp
    assert any(v is not None for v in got.values())


def test_wafer_map_of_an_unknown_test_is_404(seeded):
    r = seeded.get(lot_path("/wafers/W01/map"), params={"test_num": 4242})
    assert r.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/wafers/W%00X/map",
        "/tests?wafer_id=W%00X",
        "/tests/1000/results?wafer_id=W%00",
        "/capability?wafer_id=%00",
        "/bins?wafer_id=W01%00",
    ],
)
def test_nul_in_a_wafer_id_is_400(seeded, path):
    """Found by schemathesis: a NUL character used to end the SQL literal of the wafer filter (a 500)."""
    r = seeded.get(lot_path(path))
    assert r.status_code == 400, r.text
    assert strict_json(r.text)["detail"] == "wafer ids must not contain NUL characters"


def test_wafer_map_unknown_wafer_is_404(seeded):
    r = seeded.get(lot_path("/wafers/W99/map"))
    assert r.status_code == 404
    assert "W99" in strict_json(r.text)["detail"]


@pytest.mark.parametrize("params", [{}, {"bin_type": "S"}, {"test_num": 1000}, {"view": "first_pass"}])
def test_wafer_map_png(seeded, params):
    r = seeded.get(lot_path("/wafers/W01/map"), params={**params, "format": "png"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    img.load()
    assert img.format == "PNG"
    w, h = img.size
    assert 300 <= w <= 4000 and 300 <= h <= 4000, img.size
    colors = img.convert("RGB").getcolors(1 << 20)
    assert colors is None or len(colors) > 3  # not a blank picture


@pytest.mark.parametrize("params", [{}, {"bin_type": "S"}, {"test_num": 1000}])
def test_wafer_map_svg(seeded, params):
    r = seeded.get(lot_path("/wafers/W01/map"), params={**params, "format": "svg"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.content)
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")
    assert len(list(root.iter())) > 100  # dies are drawn
    assert b"W01" in r.content


def test_png_and_svg_differ_between_bin_types(seeded):
    hard = seeded.get(lot_path("/wafers/W01/map"), params={"format": "svg"}).content
    soft = seeded.get(lot_path("/wafers/W01/map"), params={"format": "svg", "bin_type": "S"}).content
    assert hard != soft
    assert b"Soft bins" in soft and b"Hard bins" in hard


@pytest.fixture(scope="module")
def oriented(seeded):
    """Two one-wafer lots with other orientations: (L, D) and unspecified (space)."""
    rt = seeded.app.state.runtime
    out = {}
    for lot_id, px, py in (("ORI-LD", "L", "D"), ("ORI-NONE", " ", " ")):
        spec = LotSpec(
            lot_id=lot_id,
            wafers=("W1",),
            die_diameter=5,
            pos_x=px,
            pos_y=py,
            seed=5,
            tests=tuple(default_tests(2, n_mpr=0, n_ftr=0)),
        )
        truth = write_lot(spec, seeded.data_dir.parent / lot_id)
        assert rt.ingest.ingest_path("default", truth.paths[0]).status == "succeeded"
        out[lot_id] = truth
    return out


def test_wafer_map_orientation(seeded, oriented):
    ld = seeded.json("/v1/lots/ORI-LD/wafers/W1/map")["orientation"]
    assert (ld["pos_x"], ld["pos_y"], ld["orientation_assumed"]) == ("L", "D", False)
    none = seeded.json("/v1/lots/ORI-NONE/wafers/W1/map")
    assert (none["orientation"]["pos_x"], none["orientation"]["pos_y"], none["orientation"]["orientation_assumed"]) == (
        "R",
        "U",
        True,
    )
    svg = seeded.get("/v1/lots/ORI-NONE/wafers/W1/map", params={"format": "svg"}).content
    assert b"X right, Y up (X and Y assumed: not in the file's WCR)" in svg
    ld_svg = seeded.get("/v1/lots/ORI-LD/wafers/W1/map", params={"format": "svg"}).content
    assert b"X left, Y down (from the file" in ld_svg


# -- tests ------------------------------------------------------------------------------------------


def _test_truth(truth, rows: np.ndarray) -> dict[tuple, dict]:
    out = {}
    for t, td in enumerate(truth.tests):
        ex = rows & truth.executed[:, t]
        if td.kind == "P":
            ok = ex & valid_mask(truth, t)
            x = truth.results[ok, t].astype(np.float64)
            out[(td.num, td.name)] = {
                "test_type": "P",
                "units": td.units,
                "n": int(ex.sum()),
                "n_valid": int(ok.sum()),
                "mean": float(x.mean()),
                "sigma": float(x.std(ddof=1)),
                "min": _f32(x.min()),
                "max": _f32(x.max()),
                "fails": int((ex & truth.failed[:, t]).sum()),
                "lo_limit": _f32(td.lo),
                "hi_limit": _f32(td.hi),
            }
        elif td.kind == "M":  # one row per pin; fails: see test_mpr_fails_count_failing_pins
            out[(td.num, td.name)] = {"test_type": "M", "n": int(ex.sum()) * td.pins}
        else:
            out[(td.num, td.name)] = {
                "test_type": "F",
                "n": int(ex.sum()),
                "fails": int((ex & truth.failed[:, t]).sum()),
            }
    return out


def _check_tests(items: list[dict], exp: dict[tuple, dict]) -> None:
    got = {(i["test_num"], i["test_name"]): i for i in items}
    assert set(got) == set(exp)
    for key, e in exp.items():
        g = got[key]
        for k, v in e.items():
            if isinstance(v, float) and k in ("mean", "sigma"):
                assert g[k] == pytest.approx(v, rel=1e-9), (key, k)
            else:
                assert g[k] == v, (key, k)
        assert g["fail_rate"] == pytest.approx(g["fails"] / g["n"])


@pytest.mark.parametrize("view", ["final", "first_pass", "all"])
def test_tests(seeded, view):
    truth = seeded.wafer_lot
    rows = {"final": final_mask(truth), "first_pass": first_pass_mask(truth), "all": np.ones(len(truth.parts), bool)}[
        view
    ]
    body = seeded.json(lot_path("/tests"), params={"view": view})
    assert (body["lot_id"], body["view"], body["wafer_id"]) == (WS_LOT, view, None)
    _check_tests(body["items"], _test_truth(truth, rows))
    assert [(i["test_num"], i["test_name"]) for i in body["items"]] == sorted(
        (i["test_num"], i["test_name"]) for i in body["items"]
    )


def test_mpr_fails_count_failing_pins(seeded):
    truth = seeded.wafer_lot
    t = truth.test_index(5000)
    ex = final_mask(truth) & truth.executed[:, t]
    failing_pins = int((truth.pin_stat[t][ex] != 1).sum())
    assert 0 < failing_pins < int(ex.sum())
    (mpr,) = [i for i in seeded.json(lot_path("/tests"))["items"] if i["test_type"] == "M"]
    assert mpr["fails"] == failing_pins


def test_tests_one_wafer(seeded):
    truth = seeded.wafer_lot
    body = seeded.json(lot_path("/tests"), params={"wafer_id": "W03"})
    assert body["wafer_id"] == "W03"
    _check_tests(body["items"], _test_truth(truth, final_mask(truth) & (truth.parts.wafer_id == "W03")))


def test_tests_final_test_lot(seeded):
    truth = seeded.ft_lot
    body = seeded.json(lot_path("/tests", FT_LOT))
    _check_tests(body["items"], _test_truth(truth, final_mask(truth)))


def test_tests_unknown_wafer_is_404(seeded):
    assert seeded.get(lot_path("/tests"), params={"wafer_id": "W99"}).status_code == 404


# -- results ----------------------------------------------------------------------------------------


def _results_truth(truth, t: int, mask: np.ndarray) -> list[tuple]:
    p = truth.parts
    valid = valid_mask(truth, t)
    return sorted(
        (
            str(p.wafer_id[i]),
            int(p.x[i]),
            int(p.y[i]),
            int(p.site[i]),
            _f32(truth.results[i, t]) if truth.executed[i, t] else None,
            bool(valid[i]),
            not bool(truth.failed[i, t]),
            int(p.hard_bin[i]),
        )
        for i in np.flatnonzero(mask)
    )


def _results_rows(items) -> list[tuple]:
    return sorted(
        (r["wafer_id"], r["x"], r["y"], r["site_num"], r["result"], r["valid"], r["passed"], r["hard_bin"])
        for r in items
    )


def _all_pages(seeded, path: str, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        body = seeded.json(path, params=q)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize(
    ("wafer", "site", "view"),
    [("W02", 3, "final"), ("W01", None, "all"), (None, 1, "first_pass"), (None, None, "final")],
)
def test_results_filtered_and_paginated(seeded, wafer, site, view):
    truth = seeded.wafer_lot
    t = truth.test_index(1030)
    p = truth.parts
    mask = {"final": final_mask(truth), "first_pass": first_pass_mask(truth), "all": np.ones(len(p), bool)}[view]
    if wafer:
        mask = mask & (p.wafer_id == wafer)
    if site:
        mask = mask & (p.site == site)
    params = {"view": view, **({"wafer_id": wafer} if wafer else {}), **({"site_num": site} if site else {})}
    items = _all_pages(seeded, lot_path("/tests/1030/results"), limit=25, **params)
    exp = _results_truth(truth, t, mask)
    assert len(exp) > 25
    assert _results_rows(items) == exp
    assert all(r["is_final"] for r in items) if view == "final" else True
    assert not any(r["is_retest"] for r in items) if view == "first_pass" else True
    assert {r["lo_limit"] for r in items} == {_f32(2.4)}
    one_page = seeded.json(lot_path("/tests/1030/results"), params={**params, "limit": 10000})
    assert_same(one_page["items"], items)
    assert one_page["test"]["test_name"] == "VOH_1MA"


def test_results_of_an_unknown_test_or_wafer_is_404(seeded):
    assert seeded.get(lot_path("/tests/4242/results")).status_code == 404
    assert seeded.get(lot_path("/tests/1000/results"), params={"wafer_id": "W99"}).status_code == 404


# -- capability -------------------------------------------------------------------------------------


def _cap_truth(truth, wafer: str | None = None, limits: str = "test") -> dict[tuple, cap.CapabilityResult]:
    final = final_mask(truth)
    if wafer:
        final = final & (truth.parts.wafer_id == wafer)
    out = {}
    for t, td in enumerate(truth.tests):
        if td.kind != "P":
            continue
        ok = final & valid_mask(truth, t)
        stats = cap.from_values(truth.results[ok, t].astype(np.float64), truth.parts.wafer_id[ok])
        lo, hi = (td.lo, td.hi) if limits == "test" else (td.lo_spec, td.hi_spec)
        out[(td.num, td.name)] = cap.compute_capability(stats, _f32x(lo), _f32x(hi))
    return out


def _check_cap(rows: list[dict], exp: dict[tuple, cap.CapabilityResult]) -> int:
    got = {(r["test_num"], r["test_name"]): r for r in rows}
    assert set(got) == set(exp)
    for key, e in exp.items():
        g = got[key]
        for k in CAP_FIELDS:
            ev = getattr(e, k)
            if k in ("lsl", "usl") and ev is not None:
                ev = float32_value(ev)  # the file's R*4 limits, shown at float32 precision
            if ev is None:
                assert g[k] is None, (key, k, g[k])
            else:
                assert g[k] == pytest.approx(ev, rel=1e-9, abs=1e-15), (key, k)
    return len(exp)


def test_capability_exact_matches_the_formula_on_the_truth(seeded):
    r = seeded.get(lot_path("/capability"))
    body = strict_json(r.text)
    assert (body["source"], body["limits"], body["estimator"], body["unbias"], body["wafer_id"]) == (
        "exact",
        "test",
        "pooled",
        False,
        None,
    )
    assert body["snapshot_job_id"] == seeded.wafer_jobs[-1].job_id
    assert _check_cap(body["tests"], _cap_truth(seeded.wafer_lot)) >= 8
    assert {t["source"] for t in body["tests"]} == {"exact"}
    assert {t["subgroups"] for t in body["tests"]} == {3}


def test_capability_spec_limits(seeded):
    body = seeded.json(lot_path("/capability"), params={"limits": "spec"})
    assert body["limits"] == "spec"
    _check_cap(body["tests"], _cap_truth(seeded.wafer_lot, limits="spec"))


@pytest.mark.parametrize("wafer", ["W01", "W03"])
def test_capability_one_wafer(seeded, wafer):
    body = seeded.json(lot_path("/capability"), params={"wafer_id": wafer})
    assert body["wafer_id"] == wafer
    _check_cap(body["tests"], _cap_truth(seeded.wafer_lot, wafer))
    for t in body["tests"]:
        assert t["sigma_within"] == pytest.approx(t["sigma_overall"], rel=1e-12)
        if t["cp"] is not None:
            assert t["cp"] == pytest.approx(t["pp"], rel=1e-12)
            assert t["cpk"] == pytest.approx(t["ppk"], rel=1e-12)


def test_capability_one_sided_limits(seeded):
    rows = {t["test_name"]: t for t in seeded.json(lot_path("/capability"))["tests"]}
    only_hi = rows["IDD_STATIC"]  # no low limit
    assert only_hi["lsl"] is None and only_hi["usl"] == _f32(50e-6)
    assert only_hi["cp"] is None and only_hi["cpl"] is None and only_hi["pp"] is None
    assert only_hi["cpk"] == only_hi["cpu"] is not None
    only_lo = rows["TEMP_SENSE"]  # no high limit
    assert only_lo["usl"] is None and only_lo["cp"] is None and only_lo["cpu"] is None
    assert only_lo["cpk"] == only_lo["cpl"] is not None


def test_capability_one_test(seeded):
    body = seeded.json(lot_path("/capability"), params={"test_num": 1050})
    assert [t["test_name"] for t in body["tests"]] == ["VREF_BG"]
    full = {t["test_num"]: t for t in seeded.json(lot_path("/capability"))["tests"]}
    assert_same(body["tests"][0], full[1050])
    assert seeded.get(lot_path("/capability"), params={"test_num": 4242}).status_code == 404


def test_capability_auto_uses_raw_results_even_when_every_file_has_tsr(seeded):
    """Issue 9: ``auto`` took the TSR summaries although raw results exist; raw results win whenever present."""
    body = seeded.json(lot_path("/capability"), params={"source": "auto"})
    assert body["source"] == "auto"
    exact = seeded.json(lot_path("/capability"))
    assert {t["source"] for t in body["tests"]} == {"exact"}
    assert_same(body["tests"], exact["tests"])
    one = seeded.json(lot_path("/capability"), params={"source": "auto", "wafer_id": "W01"})
    assert {t["source"] for t in one["tests"]} == {"exact"}
    assert_same(one["tests"], seeded.json(lot_path("/capability"), params={"wafer_id": "W01"})["tests"])


def test_capability_auto_falls_back_to_exact_without_tsr(seeded):
    auto = seeded.json(lot_path("/capability", FT_LOT), params={"source": "auto"})
    exact = seeded.json(lot_path("/capability", FT_LOT))
    assert {t["source"] for t in auto["tests"]} == {"exact"}
    assert_same(auto["tests"], exact["tests"])
    truth = seeded.ft_lot
    final = final_mask(truth)
    for t in exact["tests"]:
        i = truth.test_index(t["test_num"], t["test_name"])
        ok = final & valid_mask(truth, i)
        e = cap.compute_capability(
            cap.from_values(truth.results[ok, i].astype(np.float64)), _f32x(truth.tests[i].lo), _f32x(truth.tests[i].hi)
        )
        assert t["n"] == e.n
        assert t["ppk"] == pytest.approx(e.ppk, rel=1e-9) if e.ppk is not None else t["ppk"] is None


@pytest.mark.parametrize("params", [{"estimator": "bogus"}, {"source": "tsr"}, {"limits": "x"}, {"unbias": "maybe"}])
def test_capability_bad_params_are_400(seeded, params):
    r = seeded.get(lot_path("/capability"), params=params)
    assert r.status_code == 400
    assert strict_json(r.text)["code"] == "bad_request"


def test_capability_never_nan(seeded):
    """A test with fewer than two values has no sigma: nulls, never NaN or Infinity."""
    rt = seeded.app.state.runtime
    spec = LotSpec(
        lot_id="CAP-TINY",
        wafers=("W1", "W2"),
        dies=((0, 0), (1, 0), (0, 1)),
        sites=1,
        seed=2,
        tests=tuple(default_tests(3, n_mpr=0, n_ftr=0)),
        edge_ring=0.0,
        random_fail_rate=0.0,
    )
    truth = write_lot(spec, seeded.data_dir.parent / "cap-tiny")
    assert rt.ingest.ingest_path("default", truth.paths[0]).status == "succeeded"
    for params in ({}, {"wafer_id": "W1"}, {"source": "auto"}, {"unbias": "true"}):
        r = seeded.get("/v1/lots/CAP-TINY/capability", params=params)
        assert r.status_code == 200
        body = strict_json(r.text)  # raises on NaN / Infinity
        assert "NaN" not in r.text and "Infinity" not in r.text
        assert all(t["n"] >= 1 for t in body["tests"])


# -- bins -------------------------------------------------------------------------------------------


def _yield_truth(truth, mask: np.ndarray) -> dict:
    final, first = final_mask(truth) & mask, first_pass_mask(truth) & mask
    p = truth.parts
    return {
        "parts": int(final.sum()),
        "good": int((final & p.passed).sum()),
        "first_pass_parts": int(first.sum()),
        "first_pass_good": int((first & p.passed).sum()),
        "retests": int((mask & ~first_pass_mask(truth)).sum()),
        "yield": pytest.approx(p.passed[final].mean(), rel=1e-12),
        "first_pass_yield": pytest.approx(p.passed[first].mean(), rel=1e-12),
    }


def _bin_truth(truth, mask: np.ndarray, kind: str) -> dict[int, tuple[int, int]]:
    fin = truth.bin_counts(kind, final_mask(truth) & mask)
    fp = truth.bin_counts(kind, first_pass_mask(truth) & mask)
    return {b: (fin.get(b, 0), fp.get(b, 0)) for b in set(fin) | set(fp)}


def _group_key(row: dict, by: str):
    return {"lot": None, "wafer": row.get("wafer_id"), "site": (row.get("head_num"), row.get("site_num"))}[by]


@pytest.mark.parametrize("by", ["lot", "wafer", "site"])
def test_bins(seeded, by):
    truth = seeded.wafer_lot
    p = truth.parts
    body = seeded.json(lot_path("/bins"), params={"by": by})
    assert (body["by"], body["snapshot_job_id"]) == (by, seeded.wafer_jobs[-1].job_id)
    groups = {
        "lot": {None: np.ones(len(p), bool)},
        "wafer": {w: p.wafer_id == w for w in ("W01", "W02", "W03")},
        "site": {(1, s): p.site == s for s in (1, 2, 3, 4)},
    }[by]
    yields = {_group_key(r, by): r for r in body["yield"]}
    assert set(yields) == set(groups)
    for g, mask in groups.items():
        y = {k: v for k, v in yields[g].items() if k not in ("wafer_id", "head_num", "site_num")}
        assert y == _yield_truth(truth, mask), g
        for bt, kind in (("H", "hard"), ("S", "soft")):
            # a bin seen only on middle executions (neither first pass nor final) is listed with zeros
            got = {
                r["bin_num"]: (r["part_count"], r["first_pass_count"])
                for r in body["bins"]
                if r["bin_type"] == bt and _group_key(r, by) == g and (r["part_count"] or r["first_pass_count"])
            }
            assert got == _bin_truth(truth, mask, kind), (g, bt)
    for r in body["bins"]:
        names = truth.hard_bins if r["bin_type"] == "H" else truth.soft_bins
        assert (r["bin_name"], r["pass_fail"]) == names[r["bin_num"]]
        assert (r["summary_count"] is None) == (by != "lot")


def test_bins_percentages_and_filters(seeded):
    body = seeded.json(lot_path("/bins"), params={"bin_type": "H"})
    assert {r["bin_type"] for r in body["bins"]} == {"H"}
    total = body["yield"][0]["parts"]
    for r in body["bins"]:
        assert r["percent"] == pytest.approx(round(100 * r["part_count"] / total, 4))
    assert sum(r["part_count"] for r in body["bins"]) == total
    one = seeded.json(lot_path("/bins"), params={"wafer_id": "W02", "by": "wafer"})
    assert one["wafer_id"] == "W02"
    assert [y["wafer_id"] for y in one["yield"]] == ["W02"]
    assert seeded.get(lot_path("/bins"), params={"wafer_id": "W99"}).status_code == 404


def test_bins_final_test_lot(seeded):
    truth = seeded.ft_lot
    body = seeded.json(lot_path("/bins", FT_LOT))
    (y,) = body["yield"]
    assert {k: v for k, v in y.items()} == _yield_truth(truth, np.ones(len(truth.parts), bool))
    got = {r["bin_num"]: (r["part_count"], r["first_pass_count"]) for r in body["bins"] if r["bin_type"] == "H"}
    assert got == _bin_truth(truth, np.ones(len(truth.parts), bool), "hard")


# -- snapshot pinning -------------------------------------------------------------------------------


def _pinned(path: str, job_id: str) -> str:
    return f"{lot_path(path)}{'&' if '?' in path else '?'}snapshot_job_id={job_id}"


def _stable(body, path: str):
    """Lot detail also lists the lot's current jobs and active job: those move on by design."""
    if path == "":
        return {k: v for k, v in body.items() if k not in ("active_job_id", "jobs")}
    return body


@pytest.mark.parametrize("path", PINNED_PATHS)
def test_pinned_snapshot_is_stable_after_more_ingests(seeded, path):
    first = seeded.wafer_jobs[0].job_id
    now = seeded.json(_pinned(path, first))
    assert_same(_stable(now, path), _stable(seeded.first_snapshot[path], path))
    # pinning the first job reproduces what the lot showed when that job was the active one
    assert_same(_stable(now, path), _stable(seeded.first_active[path], path))
    # ... and differs from the lot's active snapshot today
    assert _stable(seeded.json(lot_path(path)), path) != _stable(now, path)


def test_pinned_snapshot_numbers_are_the_first_files(seeded):
    truth = seeded.wafer_lot
    rows = _first_file(truth)
    first = seeded.wafer_jobs[0].job_id
    detail = seeded.json(lot_path(), params={"snapshot_job_id": first})
    assert (detail["job_id"], detail["snapshot_job_id"], detail["file_count"]) == (first, first, 1)
    assert detail["active_job_id"] == seeded.wafer_jobs[-1].job_id
    assert detail["part_count"] == int(final_mask(truth, rows).sum())
    caps = seeded.json(lot_path("/capability"), params={"snapshot_job_id": first})
    assert caps["snapshot_job_id"] == first
    final = final_mask(truth, rows)
    for t in caps["tests"]:
        i = truth.test_index(t["test_num"], t["test_name"])
        ok = final & valid_mask(truth, i)
        e = cap.compute_capability(
            cap.from_values(truth.results[ok, i].astype(np.float64), truth.parts.wafer_id[ok]),
            _f32x(truth.tests[i].lo),
            _f32x(truth.tests[i].hi),
        )
        assert t["n"] == e.n
        for k in ("mean", "sigma_within", "cpk", "ppk"):
            ev = getattr(e, k)
            assert (t[k] is None) if ev is None else (t[k] == pytest.approx(ev, rel=1e-9)), (t["test_name"], k)
    mid = seeded.wafer_jobs[1].job_id
    assert [w["wafer_id"] for w in seeded.json(lot_path("/wafers"), params={"snapshot_job_id": mid})["items"]] == [
        "W01",
        "W02",
        "W03",
    ]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_rendered_maps_are_pinned_too(seeded, fmt):
    first, active = seeded.wafer_jobs[0].job_id, seeded.wafer_jobs[-1].job_id
    pinned = seeded.get(lot_path("/wafers/W01/map"), params={"format": fmt, "snapshot_job_id": first})
    now = seeded.get(lot_path("/wafers/W01/map"), params={"format": fmt})
    assert pinned.status_code == now.status_code == 200
    assert pinned.content != now.content
    if fmt == "svg":
        assert f"snapshot {first}".encode() in pinned.content
        assert f"snapshot {active}".encode() in now.content
    again = seeded.get(lot_path("/wafers/W01/map"), params={"format": fmt, "snapshot_job_id": first})
    assert again.content == pinned.content


@pytest.mark.parametrize(
    "path", ["", "/wafers", "/tests", "/capability", "/bins", "/wafers/W01/map", "/tests/1000/results"]
)
def test_snapshot_of_another_lot_or_unknown_is_404(seeded, path):
    for job_id in (seeded.ft_job.job_id, "job_01ZZZZZZZZZZZZZZZZZZZZZZZZ"):
        r = seeded.get(lot_path(path), params={"snapshot_job_id": job_id})
        assert r.status_code == 404, (path, r.text)
        body = strict_json(r.text)
        assert body["code"] == "not_found"
        assert job_id in body["detail"]


def test_functional_test_results_and_pass_fail_map(seeded):
    """FTR tests listed by /tests have results (one row per part, pass/fail) and a pass/fail map."""
    truth = seeded.wafer_lot
    t = truth.test_index(9000)
    ex = final_mask(truth) & truth.executed[:, t]
    body = seeded.json(lot_path("/tests/9000/results"), params={"limit": 10000})
    assert body["test"]["test_type"] == "F" and body["test"]["test_name"] == truth.tests[t].name
    rows = body["items"]
    assert len(rows) == int(ex.sum())
    assert sum(1 for r in rows if r["passed"] is False) == int((ex & truth.failed[:, t]).sum())
    assert all(r["result"] is None and r["is_final"] and r["valid"] for r in rows)
    w3 = ex & (truth.parts.wafer_id == "W03")
    m = seeded.json(lot_path("/wafers/W03/map"), params={"test_num": 9000})
    assert m["test"]["test_type"] == "F"
    failing = {
        (int(x), int(y))
        for x, y in zip(truth.parts.x[w3 & truth.failed[:, t]], truth.parts.y[w3 & truth.failed[:, t]], strict=True)
    }
    passing = {
        (int(x), int(y))
        for x, y in zip(truth.parts.x[w3 & ~truth.failed[:, t]], truth.parts.y[w3 & ~truth.failed[:, t]], strict=True)
    }
    got = {(x, y): v for x, y, v in zip(m["dies"]["x"], m["dies"]["y"], m["dies"]["value"], strict=True)}
    assert {k for k, v in got.items() if v == 0.0} == failing
    assert {k for k, v in got.items() if v == 1.0} == passing
    png = seeded.get(lot_path("/wafers/W03/map"), params={"test_num": 9000, "format": "png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_mpr_results_one_row_per_pin(seeded):
    truth = seeded.wafer_lot
    t = truth.test_index(5000)
    ex = final_mask(truth) & truth.executed[:, t]
    rows = seeded.json(lot_path("/tests/5000/results"), params={"limit": 10000})["items"]
    assert len(rows) == int(ex.sum()) * truth.tests[t].pins
    assert sum(1 for r in rows if r["passed"] is False) == int((truth.pin_stat[t][ex] != 1).sum())
    assert sorted({r["pin_seq"] for r in rows}) == list(range(truth.tests[t].pins))
    page = seeded.json(lot_path("/tests/5000/results"), params={"limit": 7})
    assert len(page["items"]) == 7 and page["items"] == rows[:7] and page["next_cursor"]


def test_float32_values_are_presented_at_float32_precision(seeded):
    """STDF R*4 values (results, limits) are shown as the shortest decimal of the float32, not its float64
    expansion: 1e-05, not 9.999999747378752e-06."""
    rows = seeded.json(lot_path("/tests/1030/results"), params={"limit": 50})["items"]
    for r in rows:
        for k in ("result", "lo_limit", "hi_limit"):
            v = r[k]
            if v is not None:
                assert repr(v) == repr(float32_value(v)) and len(repr(v).lstrip("-").replace(".", "")) <= 12, (k, v)
    assert any(len(repr(r["result"])) < 12 for r in rows if r["result"] is not None)
    r = seeded.client.post(
        "/v1/sql",
        json={"query": "SELECT 1e-5::FLOAT AS f, [1e-5::FLOAT] AS l, 0.1::DOUBLE AS d"},
        headers=seeded.headers(),
    )
    assert r.json()["rows"] == [[1e-05, [1e-05], 0.1]]


def test_snapshot_statistics_are_computed_once_and_equal_the_raw_computation(seeded, monkeypatch):
    """Issue 16: the per-snapshot sufficient statistics behind /tests and /capability are computed once (a
    second call reads no results; a new process reads the file in the lake) and give the same numbers as
    computing them from the raw results."""
    from stratum.lake import snapstats as snapstats_store
    from stratum.query.engine import QueryEngine, Session

    an = seeded.app.state.runtime.analytics
    cap_variants = [
        {},
        {"wafer_id": "W02"},
        {"limits": "spec"},
        {"source": "auto"},
        {"test_num": 1050},
        {"estimator": "jmp_ranges"},
        {"estimator": "minitab_sbar", "unbias": True},
    ]
    test_variants = [{}, {"view": "all"}, {"view": "first_pass", "wafer_id": "W01"}]

    def answers() -> list:
        return [an.capability("default", WS_LOT, **v) for v in cap_variants] + [
            an.tests("default", WS_LOT, **v) for v in test_variants
        ]

    first = answers()
    queries: list[str] = []
    for name in ("rows", "dicts"):
        orig = getattr(Session, name)

        def spy(self, sql, params=None, _orig=orig):
            queries.append(sql)
            return _orig(self, sql, params)

        monkeypatch.setattr(Session, name, spy)
    again = answers()
    assert again == first  # the same materialised statistics, not recomputed
    assert not [q for q in queries if "results" in q], queries
    monkeypatch.setattr(QueryEngine, "memo", lambda self, key, name, compute: compute())
    monkeypatch.setattr(snapstats_store, "read", lambda store, key, cur: None)  # not the file in the lake either
    raw = answers()
    assert [q for q in queries if "FROM results" in q]  # computed from the raw results this time
    assert_same(raw, first)
    assert [t["test_num"] for t in first[0]["tests"]] == sorted(t["test_num"] for t in first[0]["tests"])
    assert len(first[0]["tests"]) >= 8 and len(first[-3]) >= 10


@pytest.mark.parametrize("params", [{}, {"wafer_id": "W01", "estimator": "jmp_ranges"}, {"source": "auto"}])
def test_capability_response_is_the_models_serialisation(seeded, params):
    """Issue 16: /capability is serialised without validating each row; the body is exactly what the declared
    response model gives for the service's answer."""
    from stratum.api.schemas import CapabilityOut

    r = seeded.get(lot_path("/capability"), params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = seeded.app.state.analytics.capability("default", WS_LOT, **params)
    assert r.json() == CapabilityOut.model_validate(body).model_dump(mode="json")
    assert "x-ratelimit-limit" in {k.lower() for k in r.headers}


def test_capability_answer_is_kept_per_snapshot_and_rendered_once(seeded):
    """Issue 16: a repeated /capability request on the same snapshot gets the service's same (read-only) answer and
    the same bytes, rendered once; another request shape gets its own answer."""
    from stratum.api.routes import lots

    svc = seeded.app.state.analytics
    first = svc.capability("default", WS_LOT)
    assert svc.capability("default", WS_LOT) is first
    other = svc.capability("default", WS_LOT, estimator="jmp_ranges")
    assert other is not first and other["estimator"] == "jmp_ranges"
    r1 = seeded.get(lot_path("/capability"))
    assert id(first) in lots._RENDERED and lots._RENDERED[id(first)][0] is first
    r2 = seeded.get(lot_path("/capability"))
    assert r1.status_code == r2.status_code == 200 and r2.headers["content-type"] == "application/json"
    assert r1.content == r2.content == lots._RENDERED[id(first)][1]
    assert r2.json()["tests"] == r1.json()["tests"] and len(r2.json()["tests"]) >= 8
    r3 = seeded.get(lot_path("/capability"), params={"estimator": "jmp_ranges"})
    assert r3.json()["estimator"] == "jmp_ranges" and r3.content != r1.content
