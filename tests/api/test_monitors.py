"""Monitor routes: scopes, validation errors as problem+json naming the field, run now, runs, cron preview,
backtest, pagination, workspace isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .conftest import WS_LOT, final_mask, strict_json

YIELD = {
    "label": "API-LOT yield",
    "rule": {"kind": "yield_below", "params": {"limit": 0.99, "level": "lot"}},
    "scope": {"lot_id": WS_LOT},
    "trigger": {"schedule": {"expression": "cron(0 6 ? * MON-FRI *)", "timezone": "Europe/Berlin"}},
    "notify": ["inbox:default"],
}


def post(seeded, path, scope="admin", **kw):
    return seeded.client.post(path, headers=seeded.headers(scope), **kw)


def test_scopes(seeded) -> None:
    for scope in ("read", "full", "ingest", "classify"):
        r = post(seeded, "/v1/monitors", scope, json=YIELD)
        assert r.status_code == 403, scope
        assert r.headers["content-type"] == "application/problem+json"
    r = post(seeded, "/v1/monitors", "admin", json=YIELD)
    assert r.status_code == 201, r.text
    mid = r.json()["monitor_id"]
    for scope, code in (("read", 200), ("full", 200), ("admin", 200), ("ingest", 403), ("classify", 403)):
        assert seeded.get("/v1/monitors", scope).status_code == code, scope
        assert seeded.get(f"/v1/monitors/{mid}/runs", scope).status_code == code, scope
    for scope, code in (("read", 403), ("ingest", 403), ("full", 200), ("admin", 200)):
        assert post(seeded, f"/v1/monitors/{mid}/run", scope).status_code == code, scope
    assert post(seeded, f"/v1/monitors/{mid}/pause", "full").status_code == 403
    assert seeded.client.delete(f"/v1/monitors/{mid}", headers=seeded.headers("full")).status_code == 403
    assert seeded.client.delete(f"/v1/monitors/{mid}", headers=seeded.headers("admin")).status_code == 204
    assert seeded.get(f"/v1/monitors/{mid}", "read").status_code == 404


def test_validation_names_the_field(seeded) -> None:
    cases = [
        ({**YIELD, "rule": {"kind": "yield_below", "params": {"limit": 1.5}}}, "rule.params.limit"),
        ({**YIELD, "rule": {"kind": "nope", "params": {}}}, "rule.kind"),
        ({**YIELD, "trigger": {"schedule": {"expression": "cron(0 6 * * * *)"}}}, "day-of-week must be '?'"),
        ({**YIELD, "trigger": {"schedule": {"expression": "rate(1 hour)", "timezone": "Mars/X"}}}, "Mars/X"),
        ({**YIELD, "trigger": {}}, "on_ingest"),
        ({**YIELD, "notify": ["not a ref"]}, "notify"),
        ({**YIELD, "label": ""}, "label"),
        ({**YIELD, "rule": {"kind": "sql", "params": {"query": "DROP TABLE lots"}}}, "SELECT"),
    ]
    for body, needle in cases:
        r = post(seeded, "/v1/monitors", json=body)
        assert r.status_code == 400, (needle, r.text)
        p = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert needle in p["detail"], (needle, p["detail"])


def test_create_run_runs_and_pagination(seeded) -> None:
    created = [post(seeded, "/v1/monitors", json={**YIELD, "label": f"m{i}"}).json() for i in range(3)]
    mid = created[0]["monitor_id"]
    assert created[0]["rule"]["params"] == {"limit": 0.99, "view": "final", "level": "lot"}
    assert created[0]["state"] == "active" and created[0]["rule_version"] == 1
    r = post(seeded, f"/v1/monitors/{mid}/run", "full")
    assert r.status_code == 200, r.text
    run = strict_json(r.text)
    truth = seeded.wafer_lot
    fin = final_mask(truth)
    lot_yield = float(truth.parts.passed[fin].mean())
    assert run["status"] == "fired" and run["findings"] == 1
    assert run["findings_preview"][0]["subject"] == {"lot_id": WS_LOT}
    assert run["findings_preview"][0]["values"]["yield"] == lot_yield
    again = post(seeded, f"/v1/monitors/{mid}/run", "full").json()
    assert again["findings"] == 0
    runs = seeded.json(f"/v1/monitors/{mid}/runs", "read")
    assert [x["run_id"] for x in runs["items"]] == [again["run_id"], run["run_id"]]
    one = seeded.json(f"/v1/monitors/runs/{run['run_id']}", "read")
    assert one["snapshot_job_ids"] == [seeded.wafer_jobs[-1].job_id] and one["rule"] == "yield_below"
    assert seeded.json(f"/v1/monitors/{mid}/runs?status=failed", "read")["items"] == []
    page1 = seeded.json("/v1/monitors?limit=2", "read")
    page2 = seeded.json(f"/v1/monitors?limit=2&cursor={page1['next_cursor']}", "read")
    ids = [m["monitor_id"] for m in page1["items"] + page2["items"]]
    assert len(ids) == len(set(ids)) and {c["monitor_id"] for c in created} <= set(ids)
    # pause / resume / patch
    assert post(seeded, f"/v1/monitors/{mid}/pause").json()["state"] == "paused"
    assert post(seeded, f"/v1/monitors/{mid}/resume").json()["state"] == "active"
    r = seeded.client.patch(
        f"/v1/monitors/{mid}",
        headers=seeded.headers("admin"),
        json={"rule": {"kind": "yield_below", "params": {"limit": 0.1}}},
    )
    assert r.status_code == 200 and r.json()["rule_version"] == 2
    # backtest: every snapshot of API-LOT published in the window, nothing recorded
    now = datetime.now(UTC)
    q = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
    bt = post(seeded, f"/v1/monitors/{created[1]['monitor_id']}/backtest", "full", params=q)
    assert bt.status_code == 200, bt.text
    assert bt.json()["snapshots_evaluated"] == len(seeded.wafer_jobs)
    assert seeded.json(f"/v1/monitors/{created[1]['monitor_id']}/runs", "read")["items"] == []


def test_cron_preview(seeded) -> None:
    r = seeded.get(
        "/v1/monitors/cron-preview",
        "read",
        params={
            "expression": "cron(30 2 * * ? *)",
            "timezone": "Europe/Berlin",
            "count": 2,
            "after": "2026-03-28T12:00:00Z",
        },
    )
    assert r.json() == {"valid": True, "next": ["2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]}
    bad = seeded.get("/v1/monitors/cron-preview", "read", params={"expression": "cron(0 0 * * * *)"})
    assert bad.status_code == 400 and "'?'" in bad.json()["detail"]
    assert bad.headers["content-type"] == "application/problem+json"
    assert (
        seeded.get("/v1/monitors/cron-preview", "read", params={"expression": "rate(1 hour)", "count": 500}).status_code
        == 400
    )


def test_workspace_isolation(seeded) -> None:
    mid = post(seeded, "/v1/monitors", json=YIELD).json()["monitor_id"]
    other = seeded.app.state.keys.create("other-ws", ["admin", "full"], "other")[0]
    h = {"Authorization": f"Bearer {other}"}
    assert seeded.client.get(f"/v1/monitors/{mid}", headers=h).status_code == 404
    assert seeded.client.post(f"/v1/monitors/{mid}/run", headers=h).status_code == 404
    assert seeded.client.get("/v1/monitors", headers=h).json()["items"] == []
    # a monitor in the other workspace sees none of this workspace's lots
    r = seeded.client.post("/v1/monitors", headers=h, json={**YIELD, "scope": {}})
    run = seeded.client.post(f"/v1/monitors/{r.json()['monitor_id']}/run", headers=h).json()
    assert (run["status"], run["findings"]) == ("ok", 0)
