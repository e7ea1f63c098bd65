"""Chart routes: the JSON numbers against SQL over the same snapshot, and the PNG/SVG pictures decoded."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from stratum.query.floats import float32_value

from .conftest import WS_LOT, strict_json

CHARTS = [
    (f"/v1/lots/{WS_LOT}/stacked-map", (900, 700)),
    (f"/v1/lots/{WS_LOT}/stacked-map?metric=median&test_num=1000", (900, 700)),
    (f"/v1/lots/{WS_LOT}/bins/pareto", (900, 560)),
    (f"/v1/lots/{WS_LOT}/tests/1000/histogram", (900, 560)),
    (f"/v1/lots/{WS_LOT}/tests/1000/histogram?by=site", (900, 560)),
    (f"/v1/lots/{WS_LOT}/tests/1000/boxplot?by=site", (900, 560)),
    ("/v1/tests/1000/trend", (900, 560)),
    (f"/v1/lots/{WS_LOT}/gallery", (1200, None)),
]


def q(seeded, sql: str, **ctx):
    body = {"query": sql, "limit": 100000, **({"context": ctx} if ctx else {})}
    r = seeded.client.post("/v1/sql", json=body, headers=seeded.headers())
    assert r.status_code == 200, r.text
    return strict_json(r.text)["rows"]


@pytest.mark.parametrize(("path", "size"), CHARTS, ids=[p for p, _ in CHARTS])
def test_images_decode(seeded, path, size):
    sep = "&" if "?" in path else "?"
    png = seeded.get(path + sep + "format=png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(png.content))
    img.load()
    assert img.format == "PNG" and img.size[0] == size[0] and (size[1] is None or img.size[1] == size[1])
    assert len(img.convert("RGB").getcolors(1 << 24)) > 8  # not a blank canvas
    svg = seeded.get(path + sep + "format=svg")
    assert svg.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(svg.content)
    assert root.tag.endswith("svg") and int(root.get("width")) == size[0]
    title = root.find("{http://www.w3.org/2000/svg}title").text
    assert title and (WS_LOT in title or "1000" in title)


def test_pareto_numbers(seeded):
    d = seeded.json(f"/v1/lots/{WS_LOT}/bins/pareto")
    rows = q(seeded, "SELECT hard_bin, count(*) FROM parts WHERE is_final GROUP BY 1 ORDER BY 2 DESC, 1", lot_id=WS_LOT)
    assert [(b["bin_num"], b["count"]) for b in d["bins"]] == [tuple(r) for r in rows]
    total = sum(r[1] for r in rows)
    assert d["total"] == total and d["scope"] == "lot"
    cum = 0
    for b, (_, n) in zip(d["bins"], rows, strict=True):
        cum += n
        assert b["percent"] == 100.0 * n / total and b["cumulative_percent"] == 100.0 * cum / total
    assert d["bins"][-1]["cumulative_percent"] == 100.0
    soft = seeded.json(f"/v1/lots/{WS_LOT}/bins/pareto?bin_type=S&wafer_id=W02&site_num=1")
    rows = q(
        seeded,
        "SELECT soft_bin, count(*) FROM parts WHERE is_final AND wafer_id = 'W02' AND site_num = 1 "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        lot_id=WS_LOT,
    )
    assert [(b["bin_num"], b["count"]) for b in soft["bins"]] == [tuple(r) for r in rows] and soft["scope"] == "site"


def test_stacked_map_numbers(seeded):
    d = seeded.json(f"/v1/lots/{WS_LOT}/stacked-map")
    rows = q(
        seeded,
        "SELECT x, y, count(*), count(*) FILTER (WHERE passed = false) FROM parts WHERE is_final AND x IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY y, x",
        lot_id=WS_LOT,
    )
    assert list(zip(d["x"], d["y"], d["n"], d["hits"], strict=True)) == [tuple(r) for r in rows]
    assert d["value"] == [h / n for n, h in zip(d["n"], d["hits"], strict=True)]
    assert max(d["n"]) == 3 and [w["wafer_id"] for w in d["wafers"]] == ["W01", "W02", "W03"]
    two = seeded.json(f"/v1/lots/{WS_LOT}/stacked-map?metric=bin&bin_num=1&wafer_ids=W01&wafer_ids=W03")
    rows = q(
        seeded,
        "SELECT x, y, count(*), count(*) FILTER (WHERE hard_bin = 1) FROM parts WHERE is_final AND x IS NOT NULL "
        "AND wafer_id IN ('W01', 'W03') GROUP BY 1, 2 ORDER BY y, x",
        lot_id=WS_LOT,
    )
    assert list(zip(two["x"], two["y"], two["n"], two["hits"], strict=True)) == [tuple(r) for r in rows]
    med = seeded.json(f"/v1/lots/{WS_LOT}/stacked-map?metric=median&test_num=1000")
    rows = q(
        seeded,
        "SELECT x, y, count(*), median(result) FROM results WHERE is_final AND valid AND test_num = 1000 "
        "AND x IS NOT NULL GROUP BY 1, 2 ORDER BY y, x",
        lot_id=WS_LOT,
    )
    assert list(zip(med["x"], med["y"], med["n"], strict=True)) == [tuple(r[:3]) for r in rows]
    assert med["value"] == pytest.approx([r[3] for r in rows], rel=1e-12)


def test_stacked_map_bad_requests(seeded):
    assert seeded.get(f"/v1/lots/{WS_LOT}/stacked-map?metric=bin").status_code == 400
    assert seeded.get(f"/v1/lots/{WS_LOT}/stacked-map?metric=median").status_code == 400
    assert seeded.get("/v1/lots/NOPE/stacked-map").status_code == 404
    assert seeded.get(f"/v1/lots/{WS_LOT}/stacked-map?lot_ids=NOPE").status_code == 404
    assert seeded.get(f"/v1/lots/{WS_LOT}/stacked-map?lot_ids=").status_code == 400


def test_histogram_numbers(seeded):
    d = seeded.json(f"/v1/lots/{WS_LOT}/tests/1000/histogram?bins=25")
    ((n, mean, sd, lo, hi),) = q(
        seeded,
        "SELECT count(*), avg(result), stddev_samp(result), min(result), max(result) FROM results "
        "WHERE test_num = 1000 AND valid AND is_final",
        lot_id=WS_LOT,
    )
    assert d["n"] == n and sum(d["groups"][0]["counts"]) == n and len(d["groups"][0]["counts"]) == 25
    assert d["mean"] == pytest.approx(mean, rel=1e-12) and d["sigma"] == pytest.approx(sd, rel=1e-12)
    # SQL presents FLOAT (R*4) values at float32 precision; the edges are float64 from the exact float32 ends
    assert float32_value(d["edges"][0]) == lo and float32_value(d["edges"][-1]) == hi and len(d["edges"]) == 26
    assert d["plus_3sigma"] == pytest.approx(mean + 3 * sd, rel=1e-12)
    cap = seeded.json(f"/v1/lots/{WS_LOT}/capability?test_num=1000")["tests"][0]
    assert d["cpk"] == cap["cpk"] and d["test"]["lo_limit"] == cap["lsl"]
    g = seeded.json(f"/v1/lots/{WS_LOT}/tests/1000/histogram?by=site")
    sites = q(
        seeded,
        "SELECT site_num, count(*) FROM results WHERE test_num = 1000 AND valid AND is_final GROUP BY 1 ORDER BY 1",
        lot_id=WS_LOT,
    )
    assert [(int(x["group"]), x["n"], sum(x["counts"])) for x in g["groups"]] == [(s, c, c) for s, c in sites]


def test_boxplot_numbers(seeded):
    d = seeded.json(f"/v1/lots/{WS_LOT}/tests/1000/boxplot")
    rows = q(
        seeded,
        "SELECT wafer_id, count(*), min(result), quantile_cont(result, 0.25), median(result), "
        "quantile_cont(result, 0.75), max(result), avg(result) FROM results WHERE test_num = 1000 AND valid "
        "AND is_final GROUP BY 1 ORDER BY 1",
        lot_id=WS_LOT,
    )
    keys = ("group", "n", "min", "q1", "median", "q3", "max", "mean")
    assert [[g[k] for k in keys[:2]] for g in d["groups"]] == [r[:2] for r in rows]
    for g, r in zip(d["groups"], rows, strict=True):
        assert [g[k] for k in keys[2:]] == pytest.approx(r[2:], rel=1e-12)


def test_trend_numbers(seeded):
    d = seeded.json("/v1/tests/1000/trend")
    rows = q(
        seeded,
        "SELECT lot_id, wafer_id, count(*), avg(result) FROM results WHERE test_num = 1000 AND valid AND is_final "
        "GROUP BY 1, 2",
    )
    got = sorted((p["lot_id"], p["wafer_id"], p["n"]) for p in d["points"])
    assert got == sorted((r[0], r[1], r[2]) for r in rows)
    means = [p["mean"] for p in d["points"]]
    assert d["center"] == pytest.approx(sum(means) / len(means), rel=1e-12)
    sd = math.sqrt(sum((m - d["center"]) ** 2 for m in means) / (len(means) - 1))
    assert d["sigma"] == pytest.approx(sd, rel=1e-9) and d["ucl"] == pytest.approx(d["center"] + 3 * sd, rel=1e-9)
    only = seeded.json("/v1/tests/1000/trend?part_type=FT-DEV")
    assert {p["lot_id"] for p in only["points"]} == {"FT-LOT"}
    assert seeded.get("/v1/tests/999999/trend").status_code == 404


def test_gallery_numbers(seeded):
    d = seeded.json(f"/v1/lots/{WS_LOT}/gallery")
    wafers = seeded.json(f"/v1/lots/{WS_LOT}/wafers")["items"]
    assert [(w["wafer_id"], w["dies"], w["good"]) for w in d["wafers"]] == [
        (w["wafer_id"], w["part_count"], w["good_count"]) for w in wafers
    ]
    assert [w["yield"] for w in d["wafers"]] == [w["yield"] for w in wafers]
    assert "_maps" not in d
    assert seeded.get("/v1/lots/FT-LOT/gallery").status_code == 404
