"""Delivery routes over the app (in-process TestClient and real HTTP via uvicorn): scopes, workspace
isolation, secrets shown once, refused targets as problem+json, inbound hooks."""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks
from fastapi.testclient import TestClient

from stratum.api.app import create_app
from stratum.delivery.signing import secret_key as key_of
from stratum.delivery.signing import signature
from stratum.devtools.stdf.lots import LotSpec, default_tests, write_lot
from stratum.devtools.webhook_receiver import Receiver
from stratum.events import new_event
from stratum.settings import settings_for

LIMITS = {"analytics_per_window": 10**6, "sql_per_window": 10**6, "uploads_per_window": 10**6}


@pytest.fixture
def api(tmp_path):
    app = create_app(
        settings=settings_for(
            tmp_path / "data", backend="local", rate_limits=LIMITS, webhook_allow_cidrs="127.0.0.1/32"
        )
    )
    keys = app.state.keys
    tokens = {}
    for ws in ("alpha", "beta"):
        for scope in ("ingest", "read", "classify", "full", "admin"):
            tokens[(ws, scope)] = keys.create(ws, [scope], f"{ws}-{scope}")[0]
    client = TestClient(app)

    def h(ws: str = "alpha", scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[(ws, scope)]}"}

    yield app, client, h
    app.state.runtime.close()


def test_scopes(api, receiver: Receiver) -> None:
    app, c, h = api
    body = {"name": "cell", "target_url": receiver.url, "events": ["monitor.fired"]}
    for scope in ("ingest", "read", "classify", "full"):
        r = c.post("/v1/webhooks/outbound", json=body, headers=h(scope=scope))
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert c.get("/v1/webhooks/deliveries", headers=h(scope=scope)).status_code == 403
        assert c.get("/v1/webhooks/inbound", headers=h(scope=scope)).status_code == 403
    assert c.post("/v1/webhooks/outbound", json=body, headers=h()).status_code == 201
    for scope in ("read", "full", "admin"):
        assert c.get("/v1/notifications", headers=h(scope=scope)).status_code == 200
        assert c.get("/v1/notifications/prefs", headers=h(scope=scope)).status_code == 200
    for scope in ("ingest", "classify"):
        assert c.get("/v1/notifications", headers=h(scope=scope)).status_code == 403
    assert c.get("/v1/notifications").status_code == 401


def test_outbound_crud_secret_once_and_isolation(api, receiver: Receiver) -> None:
    app, c, h = api
    r = c.post(
        "/v1/webhooks/outbound",
        json={"name": "cell", "target_url": receiver.url, "events": ["monitor.fired", "job.failed"]},
        headers=h(),
    )
    assert r.status_code == 201
    created = r.json()
    secret, wid = created["secret"], created["id"]
    assert secret.startswith("whsec_") and created["events"] == ["job.failed", "monitor.fired"]
    for path in (f"/v1/webhooks/outbound/{wid}", "/v1/webhooks/outbound"):
        text = c.get(path, headers=h()).text
        assert secret not in text and '"secret":' not in text and "sealed" not in text
    stored = json.dumps(app.state.runtime.meta.get("WS#alpha#WHK", wid).data)
    assert secret not in stored and secret[6:] not in stored  # sealed at rest
    # beta sees nothing of alpha's
    assert c.get(f"/v1/webhooks/outbound/{wid}", headers=h("beta")).status_code == 404
    assert c.get("/v1/webhooks/outbound", headers=h("beta")).json() == {"items": [], "next_cursor": None}
    assert c.delete(f"/v1/webhooks/outbound/{wid}", headers=h("beta")).status_code == 404
    r = c.patch(f"/v1/webhooks/outbound/{wid}", json={"enabled": False, "name": "cell 7"}, headers=h())
    assert (r.json()["enabled"], r.json()["name"]) == (False, "cell 7")
    c.patch(f"/v1/webhooks/outbound/{wid}", json={"enabled": True}, headers=h())
    rot = c.post(f"/v1/webhooks/outbound/{wid}/rotate-secret", headers=h()).json()
    assert rot["secret"] != secret and rot["secret_rotated_at"] is not None
    ping = c.post(f"/v1/webhooks/outbound/{wid}/test", headers=h()).json()
    assert ping["status"] == "succeeded" and ping["attempts"][0]["status_code"] == 200
    (got,) = receiver.wait_for(1)
    standardwebhooks.Webhook(rot["secret"]).verify(got.body, got.headers)
    standardwebhooks.Webhook(secret).verify(got.body, got.headers)  # the old one signs for 24 h
    log = c.get(f"/v1/webhooks/deliveries?webhook_id={wid}", headers=h()).json()
    assert [d["kind"] for d in log["items"]] == ["ping"]
    assert c.get("/v1/webhooks/deliveries", headers=h("beta")).json()["items"] == []
    did = log["items"][0]["id"]
    assert c.post(f"/v1/webhooks/deliveries/{did}/redeliver", headers=h("beta")).status_code == 404
    assert c.post(f"/v1/webhooks/deliveries/{did}/redeliver", headers=h()).status_code == 202
    assert c.delete(f"/v1/webhooks/outbound/{wid}", headers=h()).status_code == 204
    assert c.get(f"/v1/webhooks/outbound/{wid}", headers=h()).status_code == 404


def test_refused_targets_are_problem_json(api) -> None:
    app, c, h = api
    for url, status, why in (
        ("http://10.0.0.1/x", 422, "10.0.0.1 is a private"),
        ("http://169.254.169.254/latest/meta-data", 422, "link-local"),
        ("http://[::ffff:127.0.0.1]/", 422, "IPv4-mapped"),
        ("gopher://example.com/", 422, "must be https"),
    ):
        r = c.post(
            "/v1/webhooks/outbound", json={"name": "x", "target_url": url, "events": ["monitor.fired"]}, headers=h()
        )
        assert r.status_code == status and r.headers["content-type"] == "application/problem+json", url
        assert r.json()["code"] == "target_refused" and why in r.json()["detail"], r.json()
    r = c.post(
        "/v1/webhooks/outbound", json={"name": "x", "target_url": "http://127.0.0.1/", "events": ["nope"]}, headers=h()
    )
    assert r.status_code == 400 and "unknown event kinds" in r.json()["detail"]
    assert c.get("/v1/webhooks/outbound", headers=h()).json()["items"] == []


def test_notifications_routes(api) -> None:
    app, c, h = api
    bus = app.state.runtime.events
    for i in range(3):
        bus.publish(new_event("monitor.fired", "alpha", subject={"monitor_id": f"m{i}"}))
    bus.publish(new_event("job.failed", "alpha", subject={"job_id": "j1"}, data={"error": "bad STDF"}))
    bus.publish(new_event("monitor.fired", "beta", subject={"monitor_id": "b"}))
    page = c.get("/v1/notifications?limit=2", headers=h(scope="read")).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = c.get(f"/v1/notifications?limit=2&cursor={page['next_cursor']}", headers=h(scope="read")).json()
    ids = [n["id"] for n in page["items"] + rest["items"]]
    assert len(ids) == 4 and rest["next_cursor"] is None
    assert [n["kind"] for n in c.get("/v1/notifications?kind=job.failed", headers=h()).json()["items"]] == [
        "job.failed"
    ]
    assert c.post(f"/v1/notifications/{ids[0]}/read", headers=h("beta")).status_code == 404
    assert c.post(f"/v1/notifications/{ids[0]}/read", headers=h()).json()["read_at"] is not None
    assert len(c.get("/v1/notifications?unread=true", headers=h()).json()["items"]) == 3
    assert c.post("/v1/notifications/read-all", headers=h()).json() == {"marked": 3}
    assert c.delete(f"/v1/notifications/{ids[1]}", headers=h()).status_code == 204
    assert len(c.get("/v1/notifications", headers=h()).json()["items"]) == 3
    assert len(c.get("/v1/notifications", headers=h("beta")).json()["items"]) == 1
    bad = c.get("/v1/notifications?since=yesterday", headers=h())
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    prefs = {
        "digest": "immediate",
        "email_to": ["qa@example.com"],
        "mute": {"start": "22:00", "end": "06:00", "timezone": "Asia/Taipei"},
        "kinds": ["monitor.fired"],
    }
    r = c.put("/v1/notifications/prefs", json=prefs, headers=h())
    assert r.status_code == 200 and r.json()["mute"]["timezone"] == "Asia/Taipei"
    assert c.get("/v1/notifications/prefs", headers=h("beta")).json()["digest"] == "off"
    r = c.put("/v1/notifications/prefs", json={"digest": "daily"}, headers=h())
    assert r.status_code == 400 and "needs at least one address" in r.json()["detail"]


def test_inbound_hooks(api, tmp_path) -> None:
    app, c, h = api
    rt = app.state.runtime
    if time.time() % 60 > 50:  # the per-hook limit counts per clock minute: stay inside one
        time.sleep(61 - time.time() % 60)
    r = c.post("/v1/webhooks/inbound", json={"name": "mes", "action": "notify", "rate_limit_per_min": 3}, headers=h())
    assert r.status_code == 201
    hook = r.json()
    token, url = hook["token"], hook["url"]
    assert url.startswith("/v1/hooks/in/") and len(url.rsplit("/", 1)[1]) >= 22
    assert token not in json.dumps(rt.meta.get("WS#alpha#INHOOK", hook["id"]).data)
    assert "token" not in c.get("/v1/webhooks/inbound", headers=h()).json()["items"][0]
    bearer = {"Authorization": f"Bearer {token}"}
    r = c.post(url, json={"title": "Lot L9 complete", "body": "MES says done"}, headers=bearer)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    (n,) = c.get("/v1/notifications", headers=h()).json()["items"]
    assert (n["kind"], n["title"], n["body"]) == ("inbound", "Lot L9 complete", "MES says done")
    # a Standard Webhooks signature with the same token works too
    body = json.dumps({"title": "signed"}).encode()
    ts = int(time.time())
    sig = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(key_of(token), "msg_1", ts, body),
    }
    assert c.post(url, content=body, headers=sig).status_code == 200
    bad = {**sig, "webhook-signature": signature(key_of(token), "msg_1", ts, body + b"x")}
    assert c.post(url, content=body, headers=bad).status_code == 401
    assert c.post(url, json={}, headers={"Authorization": "Bearer whsec_wrong"}).status_code == 401
    assert c.post("/v1/hooks/in/nosuchslug", json={}, headers=bearer).status_code == 401
    assert c.post(url, json={"title": "third"}, headers=bearer).status_code == 200  # 3rd authenticated call
    r = c.post(url, json={}, headers=bearer)  # the 4th in this minute (limit 3); failed auth does not count
    assert r.status_code == 429 and "Retry-After" in r.headers
    big = c.post(url, content=b"{" + b" " * 70_000 + b"}", headers=bearer)
    assert big.status_code == 413
    calls = c.get(f"/v1/webhooks/inbound/{hook['id']}/calls", headers=h()).json()["items"]
    assert [x["payload"] for x in calls][::-1] == [
        {"title": "Lot L9 complete", "body": "MES says done"},
        {"title": "signed"},
        {"title": "third"},
    ]
    assert c.get(f"/v1/webhooks/inbound/{hook['id']}/calls", headers=h("beta")).status_code == 404
    # run_monitor: runs the workspace's monitor through the monitors service
    r = c.post(
        "/v1/webhooks/inbound", json={"name": "m", "action": "run_monitor", "action_target": "mon_x"}, headers=h()
    )
    mon = r.json()
    r = c.post(mon["url"], json={}, headers={"Authorization": f"Bearer {mon['token']}"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert c.post("/v1/webhooks/inbound", json={"name": "m", "action": "run_monitor"}, headers=h()).status_code == 400
    assert c.delete(f"/v1/webhooks/inbound/{hook['id']}", headers=h()).status_code == 204
    assert c.post(url, json={}, headers=bearer).status_code == 401


def test_inbound_ingest_and_lot_annotation(api, tmp_path) -> None:
    app, c, h = api
    rt = app.state.runtime
    truth = write_lot(
        LotSpec(lot_id="MES-LOT", wafers=("W1",), die_diameter=6, seed=5, tests=tuple(default_tests(3))),
        tmp_path / "gen",
    )
    (src,) = truth.paths
    dest = rt.settings.data_dir / "incoming" / "alpha" / "mes" / src.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(src.read_bytes())
    ing = c.post("/v1/webhooks/inbound", json={"name": "mes", "action": "ingest"}, headers=h()).json()
    auth = {"Authorization": f"Bearer {ing['token']}"}
    r = c.post(ing["url"], json={"key": f"mes/{src.name}"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["status"] == "succeeded" and r.json()["result"]["lot_id"] == "MES-LOT"
    assert c.post(ing["url"], json={"key": "../beta/x.stdf"}, headers=auth).status_code == 400
    assert c.post(ing["url"], json={"key": "missing.stdf"}, headers=auth).status_code == 404
    ann = c.post("/v1/webhooks/inbound", json={"name": "notes", "action": "annotate_lot"}, headers=h()).json()
    auth2 = {"Authorization": f"Bearer {ann['token']}"}
    r = c.post(ann["url"], json={"lot_id": "MES-LOT", "note": "lot complete at MES", "operator": "op7"}, headers=auth2)
    assert r.status_code == 200 and r.json()["result"]["lot_id"] == "MES-LOT"
    assert c.post(ann["url"], json={"lot_id": "NOPE"}, headers=auth2).status_code == 404
    detail = c.get("/v1/lots/MES-LOT", headers=h(scope="read")).json()
    (note,) = detail["annotations"]
    assert note["payload"] == {"lot_id": "MES-LOT", "note": "lot complete at MES", "operator": "op7"}
    assert note["source"] == "notes"


def test_monitor_fires_end_to_end(api, receiver: Receiver, tmp_path) -> None:
    """Done-when with the real monitors service: a lot is ingested, a monitor runs through an inbound hook and
    fires -> an inbox notification, a webhook verified with standardwebhooks, an email file."""
    app, c, h = api
    rt = app.state.runtime
    truth = write_lot(
        LotSpec(lot_id="MON-LOT", wafers=("W1",), die_diameter=6, seed=5, tests=tuple(default_tests(3))),
        tmp_path / "gen",
    )
    (src,) = truth.paths
    dest = rt.settings.data_dir / "incoming" / "alpha" / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())
    ing = c.post("/v1/webhooks/inbound", json={"name": "mes", "action": "ingest"}, headers=h()).json()
    r = c.post(ing["url"], json={"key": src.name}, headers={"Authorization": f"Bearer {ing['token']}"})
    assert r.json()["result"]["status"] == "succeeded", r.text
    assert (
        c.put(
            "/v1/notifications/prefs", json={"digest": "immediate", "email_to": ["qa@example.com"]}, headers=h()
        ).status_code
        == 200
    )
    wh = c.post(
        "/v1/webhooks/outbound",
        json={"name": "r", "target_url": receiver.url, "events": ["monitor.fired"]},
        headers=h(),
    ).json()
    mon = c.post(
        "/v1/monitors",
        json={
            "label": "wafer yield below 100%",
            "rule": {"kind": "yield_below", "params": {"limit": 1.0, "level": "wafer"}},
            "trigger": {"on_ingest": True},
            "notify": ["inbox:default"],
        },
        headers=h(),
    )
    assert mon.status_code == 201, mon.text
    mid = mon.json()["monitor_id"]
    run_hook = c.post(
        "/v1/webhooks/inbound", json={"name": "run", "action": "run_monitor", "action_target": mid}, headers=h()
    ).json()
    r = c.post(run_hook["url"], json={"lot_id": "MON-LOT"}, headers={"Authorization": f"Bearer {run_hook['token']}"})
    assert r.status_code == 200 and r.json()["result"]["status"] == "fired", r.text
    notes = c.get("/v1/notifications?kind=monitor.fired", headers=h()).json()["items"]
    assert notes and notes[0]["title"].startswith("Monitor fired: wafer yield below 100% (monitor_id ")
    assert rt.delivery.webhooks.run_due() >= 1
    got = receiver.wait_for(1)[0]
    body = standardwebhooks.Webhook(wh["secret"]).verify(got.body, got.headers)
    assert body["type"] == "monitor.fired" and body["data"]["subject"]["monitor_id"] == mid
    rt.delivery.flush_email()
    emls = sorted((rt.settings.data_dir / "outbox").glob("*.eml"))
    assert emls and b"wafer yield below 100%" in emls[0].read_bytes()
