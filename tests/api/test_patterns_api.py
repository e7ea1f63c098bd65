"""POST /v1/classify (four input forms), POST /v1/batch, GET /v1/patterns[/{class_id}[/example.png]]."""

from __future__ import annotations

import base64
import gzip

import numpy as np
import pytest

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.patterns.geometry import DieMap, geometry

from .conftest import WS_LOT, strict_json


def _ring_dies() -> list[dict]:
    ii, jj = np.meshgrid(np.arange(-25, 26), np.arange(-25, 26))
    keep = np.hypot(ii + 0.5, jj + 0.5) <= 25
    x, y = ii[keep].ravel() - 7, jj[keep].ravel() + 100
    g = geometry(DieMap(x, y, np.zeros(len(x), bool)))
    rng = np.random.default_rng(3)
    fail = ((g.r > 0.88) & (rng.random(g.n) < 0.85)) | (rng.random(g.n) < 0.02)
    return [
        {"x": int(a), "y": int(b), "pass": not bool(f), "hard_bin": 2 if f else 1}
        for a, b, f in zip(x, y, fail, strict=True)
    ]


RING = _ring_dies()


@pytest.fixture(scope="module")
def ring_stdf(tmp_path_factory) -> bytes:
    spec = LotSpec(
        lot_id="PAT42",
        wafers=("W01", "W02"),
        die_diameter=40,
        sites=1,
        edge_ring=0.12,
        edge_fail_rate=0.95,
        random_fail_rate=0.01,
        tests=tuple(default_tests(2, n_mpr=0, n_ftr=0)),
        seed=5,
    )
    lot = write_lot(spec, tmp_path_factory.mktemp("pat-stdf"))
    return lot.paths[0].read_bytes()


def post(seeded, path, body, scope="full"):
    return seeded.client.post(path, json=body, headers=seeded.headers(scope))


def test_classify_dies_form(seeded):
    r = post(seeded, "/v1/classify", {"wafer_id": "W1", "dies": RING})
    assert r.status_code == 200, r.text
    body = strict_json(r.text)
    assert set(body) == {"wafer_id", "lot_id", "snapshot_job_id", "pattern_classes", "classifier_version", "latency_ms"}
    assert body["wafer_id"] == "W1" and body["latency_ms"] > 0
    top = body["pattern_classes"][0]
    assert (top["class_id"], top["family"], top["location"], top["severity"]) == (
        "edge_ring/edge/high",
        "edge_ring",
        "edge",
        "high",
    )
    assert 0.8 <= top["confidence"] <= 1.0
    assert top["explanation"]["summary"].startswith("ring of fails at ")
    confs = [p["confidence"] for p in body["pattern_classes"]]
    assert confs == sorted(confs, reverse=True)


def test_classify_grid_form(seeded):
    grid = [[0] * 40 for _ in range(40)]
    for i in range(40):
        for j in range(40):
            if (i - 19.5) ** 2 + (j - 19.5) ** 2 <= 400:
                grid[i][j] = 2 if (i - 19.5) ** 2 + (j - 19.5) ** 2 <= 36 else 1
    r = post(seeded, "/v1/classify", {"wafer_id": "G", "grid": grid})
    assert r.status_code == 200, r.text
    assert [p["class_id"] for p in strict_json(r.text)["pattern_classes"]] == ["center/center/high"]


def test_classify_stdf_form_gzip_and_wafer_choice(seeded, ring_stdf):
    data = base64.b64encode(gzip.compress(ring_stdf)).decode()
    for wid in ("W02", "PAT42_W02"):
        r = post(seeded, "/v1/classify", {"wafer_id": wid, "map_data": data, "format": "stdf"})
        assert r.status_code == 200, r.text
        body = strict_json(r.text)
        assert body["wafer_id"] == wid
        assert body["pattern_classes"][0]["family"] == "edge_ring"
    r = post(seeded, "/v1/classify", {"map_data": data})
    assert r.status_code == 400
    assert "holds 2 wafers (W01, W02)" in strict_json(r.text)["detail"]
    r = post(seeded, "/v1/classify", {"wafer_id": "W09", "map_data": data})
    assert r.status_code == 422
    assert strict_json(r.text)["detail"] == "wafer_id 'W09' is not in the STDF (it holds W01, W02)"
    r = post(seeded, "/v1/classify", {"wafer_id": "W01", "map_data": base64.b64encode(ring_stdf[:-7]).decode()})
    assert r.status_code == 422
    assert "byte offset" in strict_json(r.text)["detail"]
    r = post(seeded, "/v1/classify", {"wafer_id": "W01", "map_data": data, "format": "klarf"})
    assert r.status_code == 400 and "unsupported format" in strict_json(r.text)["detail"]


def test_classify_lake_form(seeded):
    r = post(seeded, "/v1/classify", {"lot_id": WS_LOT, "wafer_id": "W01"})
    assert r.status_code == 200, r.text
    body = strict_json(r.text)
    assert body["lot_id"] == WS_LOT and body["wafer_id"] == "W01"
    assert body["snapshot_job_id"] == seeded.wafer_jobs[-1].job_id
    r = post(seeded, "/v1/classify", {"lot_id": "NOPE", "wafer_id": "W01"})
    assert r.status_code == 404


def test_batch_keeps_order_and_isolates_errors(seeded):
    maps = [{"wafer_id": "a", "dies": RING}, {"wafer_id": "b", "grid": "x"}, {"wafer_id": "c", "dies": RING[:3]}]
    r = post(seeded, "/v1/batch", {"maps": maps})
    assert r.status_code == 200, r.text
    res = strict_json(r.text)["results"]
    assert [x["wafer_id"] for x in res] == ["a", "b", "c"]
    assert res[0]["pattern_classes"][0]["class_id"] == "edge_ring/edge/high"
    assert res[1]["error"]["status"] == 400 and res[1]["error"]["instance"] == "/v1/batch#/maps/1"
    assert res[2]["error"]["status"] == 422 and "at least 5" in res[2]["error"]["detail"]
    r = post(seeded, "/v1/batch", {"maps": [{"wafer_id": "x", "dies": RING[:5]}] * 101})
    assert r.status_code == 413
    r = post(seeded, "/v1/batch", {"lot_id": WS_LOT})
    assert r.status_code == 200, r.text
    assert [x["wafer_id"] for x in strict_json(r.text)["results"]] == ["W01", "W02", "W03"]


def test_patterns_listing(seeded):
    body = seeded.json("/v1/patterns?family=edge_loc&limit=5")
    assert [i["class_id"] for i in body["items"]] == [
        "edge_loc/edge/low/e",
        "edge_loc/edge/low/ne",
        "edge_loc/edge/low/n",
        "edge_loc/edge/low/nw",
        "edge_loc/edge/low/w",
    ]
    seen = [i["class_id"] for i in body["items"]]
    while body["next_cursor"]:
        body = seeded.json(f"/v1/patterns?family=edge_loc&limit=5&cursor={body['next_cursor']}")
        seen += [i["class_id"] for i in body["items"]]
    assert len(seen) == 24 == len(set(seen))
    total = seeded.json("/v1/patterns?limit=500")
    assert len(total["items"]) == 194 and total["next_cursor"] is None
    one = seeded.json("/v1/patterns/edge_loc/edge/high/ne", scope="read:patterns")
    assert (
        one["parent"] == "edge_loc/edge/high" and one["example_url"] == "/v1/patterns/edge_loc/edge/high/ne/example.png"
    )
    assert seeded.get("/v1/patterns/nope/x/y").status_code == 404
    assert seeded.get("/v1/patterns?family=blob").status_code == 400
    png = seeded.get("/v1/patterns/edge_loc/edge/high/ne/example.png", scope="read")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiers_batch_size_rate_and_quota(seeded):
    keys = seeded.app.state.keys
    pilot, _ = keys.create("default", ["classify", "batch"], "pilot", tier="pilot")
    h = {"Authorization": f"Bearer {pilot}"}
    small = {"wafer_id": "s", "dies": RING}
    r = seeded.client.post("/v1/batch", json={"maps": [small] * 11}, headers=h)
    assert r.status_code == 413 and "at most 10 for this key" in strict_json(r.text)["detail"]
    r = seeded.client.post("/v1/batch", json={"maps": [small] * 3}, headers=h)
    assert r.status_code == 200
    codes = [seeded.client.post("/v1/classify", json=small, headers=h).status_code for _ in range(10)]
    # 10 requests per minute on the classify bucket: 2 batch calls + 8 classify calls fit, then 429
    assert codes == [200] * 8 + [429] * 2
    # quota: a production key with a per-key quota of 4 classifications this month
    prod, rec = keys.create("default", ["classify", "batch"], "prod", tier="production", quotas={"classifications": 4})
    hp = {"Authorization": f"Bearer {prod}"}
    assert seeded.client.post("/v1/batch", json={"maps": [small] * 3}, headers=hp).status_code == 200
    assert seeded.client.post("/v1/classify", json=small, headers=hp).status_code == 200
    r = seeded.client.post("/v1/classify", json=small, headers=hp)
    assert r.status_code == 429
    body = strict_json(r.text)
    assert body["code"] == "quota_exceeded" and body["quota"] == "classifications"
    assert body["detail"].startswith("monthly quota 'classifications' of 4 reached (4 used, 1 more asked")
    assert body["resets_at"].endswith("-01T00:00:00Z") and int(r.headers["retry-after"]) >= 1
    # usage (manage scope): this key's requests and classifications, with its quota
    mg, _ = keys.create("default", ["manage"], "ops")
    u = seeded.client.get("/v1/usage?group_by=key", headers={"Authorization": f"Bearer {mg}"})
    assert u.status_code == 200, u.text
    rows = {x["key_id"]: x for x in strict_json(u.text)["items"]}
    assert (rows[rec.key_id]["requests"], rows[rec.key_id]["classifications"]) == (3, 4)
    q = {x["key_id"]: x for x in strict_json(u.text)["quotas"]}[rec.key_id]
    assert (q["limit"], q["used"], q["remaining"]) == (4, 4, 0)
    csv = seeded.client.get("/v1/usage/export.csv", headers={"Authorization": f"Bearer {mg}"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "day,key_id,route,requests,classifications"
    assert any(line.endswith(f",{rec.key_id},/v1/batch,1,3") for line in csv.text.splitlines())
    assert seeded.client.get("/v1/usage", headers=hp).status_code == 403
