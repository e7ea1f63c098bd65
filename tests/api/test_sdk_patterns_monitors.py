"""The SDK's classification and monitor methods (installed from the wheel) against the real app in process;
every answer is compared with the raw API's JSON for the same request."""

from __future__ import annotations

import asyncio
import base64
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from PIL import Image

from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot

from .conftest import WS_LOT, strict_json
from .test_monitors import YIELD
from .test_patterns_api import RING


@pytest.fixture(scope="module")
def sc(sdk_module):
    return sdk_module


def _client(seeded, sc, scope: str):
    return sc.Client(api_key=seeded.tokens[scope], base_url="http://testserver", http_client=seeded.client)


@pytest.fixture(scope="module")
def wafer_stdf(tmp_path_factory):
    spec = LotSpec(
        lot_id="LOT42",
        wafers=("W02", "W03"),
        die_diameter=40,
        sites=1,
        edge_ring=0.12,
        edge_fail_rate=0.95,
        random_fail_rate=0.01,
        tests=tuple(default_tests(2, n_mpr=0, n_ftr=0)),
        seed=5,
    )
    return write_lot(spec, tmp_path_factory.mktemp("sdk-pat")).paths[0]


def _no_latency(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "latency_ms"}


def test_classify_wafertune_parity(seeded, sc, wafer_stdf):
    """``client.classify(wafer_id="LOT42_W03", file_path=...)``: pattern_classes with class_id and confidence."""
    client = _client(seeded, sc, "classify")
    res = client.classify(wafer_id="LOT42_W03", file_path=str(wafer_stdf))
    raw = seeded.client.post(
        "/v1/classify",
        json={"wafer_id": "LOT42_W03", "map_data": base64.b64encode(wafer_stdf.read_bytes()).decode()},
        headers=seeded.headers("classify"),
    )
    assert raw.status_code == 200, raw.text
    want = strict_json(raw.text)
    assert _no_latency(res.model_dump(mode="json", exclude_unset=True)) == _no_latency(want)
    assert res.wafer_id == "LOT42_W03" and res.pattern_classes
    top = res.pattern_classes[0]
    assert top.class_id == want["pattern_classes"][0]["class_id"]
    assert top.class_id.startswith("edge_ring/")
    assert 0.0 < top.confidence <= 1.0
    # the same map as bytes, and the other forms
    same = client.classify(wafer_id="W03", map_data=wafer_stdf.read_bytes())
    assert [c.class_id for c in same.pattern_classes] == [c.class_id for c in res.pattern_classes]
    lake = client.classify(lot_id=WS_LOT, wafer_id="W01")
    assert (lake.lot_id, lake.wafer_id) == (WS_LOT, "W01") and lake.snapshot_job_id
    with pytest.raises(ValueError, match="one map form"):
        client.classify(wafer_id="x", dies=RING, grid=[[1]])
    with pytest.raises(sc.UnprocessableError) as e:
        client.classify(wafer_id="W09", file_path=str(wafer_stdf))
    assert e.value.detail == "wafer_id 'W09' is not in the STDF (it holds W02, W03)"
    assert e.value.request_id


def test_batch_and_patterns(seeded, sc):
    client = _client(seeded, sc, "full")
    out = client.batch([{"wafer_id": "a", "dies": RING}, {"wafer_id": "b", "grid": "x"}])
    assert [r.wafer_id for r in out.results] == ["a", "b"]
    assert out.results[0].pattern_classes[0].class_id.startswith("edge_ring/")
    assert out.results[1].error["status"] == 400
    lot = client.batch(lot_id=WS_LOT)
    assert [r.wafer_id for r in lot.results] == ["W01", "W02", "W03"]
    with pytest.raises(ValueError):
        client.batch()
    every = list(client.patterns(page_size=7))
    raw = [strict_json(seeded.get("/v1/patterns?limit=500", "full").text)][0]
    assert [p.class_id for p in every] == [i["class_id"] for i in raw["items"]] and len(every) > 7
    one = client.pattern(every[-1].class_id)
    assert one.model_dump(mode="json", exclude_unset=True) == raw["items"][-1]
    png = client.pattern_example(every[0].class_id)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    with pytest.raises(sc.NotFoundError):
        client.pattern("nope/none/low")


def test_monitors_lifecycle(seeded, sc):
    client = _client(seeded, sc, "admin")
    created = client.create_monitor(YIELD)
    mid = created.monitor_id
    assert created.label == "API-LOT yield" and created.state == "active"
    raw = strict_json(seeded.get(f"/v1/monitors/{mid}", "admin").text)
    assert client.monitor(mid).model_dump(mode="json", exclude_unset=True) == raw
    assert mid in [m.monitor_id for m in client.monitors(page_size=1)]
    assert client.update_monitor(mid, {"label": "renamed"}).label == "renamed"
    assert client.pause_monitor(mid).state == "paused"
    assert client.resume_monitor(mid).state == "active"
    run = client.run_monitor(mid)
    runs = list(client.monitor_runs(mid))
    assert [r.run_id for r in runs] == [run.run_id]
    raw_run = strict_json(seeded.get(f"/v1/monitors/runs/{run.run_id}", "admin").text)
    assert client.monitor_run(run.run_id).model_dump(mode="json", exclude_unset=True) == raw_run
    assert (run.status, run.findings) == (raw_run["status"], raw_run["findings"])
    findings = list(client.monitor_findings(mid))
    raw_f = strict_json(seeded.get(f"/v1/monitors/{mid}/findings", "admin").text)["items"]
    assert len(findings) == len(raw_f) == run.findings
    prev = client.cron_preview("cron(0 6 ? * MON-FRI *)", timezone="UTC", count=3, after="2026-01-05T00:00:00Z")
    params = {"expression": "cron(0 6 ? * MON-FRI *)", "timezone": "UTC", "count": 3, "after": "2026-01-05T00:00:00Z"}
    raw_prev = strict_json(
        seeded.client.get("/v1/monitors/cron-preview", params=params, headers=seeded.headers("admin")).text
    )
    assert prev.model_dump(mode="json") == raw_prev and prev.valid and len(prev.next) == 3
    assert prev.next[0].startswith("2026-01-05T06:00:00")
    now = datetime.now(UTC)
    bt = client.backtest(mid, start=(now - timedelta(days=1)).isoformat(), end=now.isoformat())
    raw_bt = seeded.client.post(
        f"/v1/monitors/{mid}/backtest",
        params={"from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()},
        headers=seeded.headers("admin"),
    )
    assert set(bt) == set(strict_json(raw_bt.text))
    client.delete_monitor(mid)
    with pytest.raises(sc.NotFoundError):
        client.monitor(mid)
    with pytest.raises(sc.PermissionDeniedError):
        _client(seeded, sc, "read").create_monitor(YIELD)


def test_async_classify_and_monitors(seeded, sc, wafer_stdf):
    async def go():
        async with sc.AsyncClient(
            api_key=seeded.tokens["full"], base_url="http://asgi", transport=httpx.ASGITransport(seeded.app)
        ) as c:
            res = await c.classify(wafer_id="LOT42_W03", file_path=str(wafer_stdf))
            pats = [p async for p in c.patterns(page_size=50)]
            mons = [m async for m in c.monitors()]
            prev = await c.cron_preview("rate(1 hour)", count=2, after="2026-01-05T00:00:00Z")
            return res, pats, mons, prev

    res, pats, mons, prev = asyncio.run(go())
    assert res.pattern_classes[0].class_id.startswith("edge_ring/")
    assert len(pats) == len(strict_json(seeded.get("/v1/patterns?limit=500", "full").text)["items"])
    assert [m.monitor_id for m in mons] == [
        i["monitor_id"] for i in strict_json(seeded.get("/v1/monitors?limit=500", "full").text)["items"]
    ]
    assert len(prev.next) == 2
