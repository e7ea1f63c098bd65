"""The SDK's notification, webhook and usage methods (installed from the wheel) against the real app: in
process (``Client`` over Starlette's TestClient, ``AsyncClient`` over httpx's ASGI transport) and over real
HTTP (``stratum serve``, both clients). One scenario runs on each; answers are checked against the raw API
and against what a loopback receiver got."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks

from stratum.devtools.webhook_receiver import Receiver

from .conftest import new_app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


async def _v(x: Any) -> Any:
    """A sync client's value or an async client's awaited one."""
    return await x if inspect.isawaitable(x) else x


async def _all(it: Any) -> list:
    return [i async for i in it] if hasattr(it, "__aiter__") else list(it)


async def scenario(
    sc,
    admin,
    manage,
    receiver: Receiver,
    raw: Callable[..., httpx.Response],
    run_due: Callable[[], Any] = lambda: None,
) -> None:
    """``admin`` / ``manage``: SDK clients with those keys; ``raw(method, path, token_scope, **kw)``: the
    same server without the SDK; ``run_due`` sends due deliveries where no loop does (in process)."""
    # -- outbound webhooks: create (secret once), read, change, rotate, ping, audit log, redeliver --------
    created = await _v(
        admin.create_webhook(sc.models.WebhookIn(name="cell", target_url=receiver.url, events=["monitor.fired"]))
    )
    secret, wid = created.secret, created.id
    assert secret.startswith("whsec_") and created.events == ["monitor.fired"] and created.enabled
    listed = await _all(admin.webhooks(page_size=1))
    assert [w.id for w in listed] == [wid] and not hasattr(listed[0], "secret")
    got = await _v(admin.webhook(wid))
    assert got.model_dump(mode="json", exclude_unset=True) == raw("GET", f"/v1/webhooks/outbound/{wid}").json()
    changed = await _v(admin.update_webhook(wid, {"name": "cell 7", "events": ["monitor.fired", "job.failed"]}))
    assert (changed.name, changed.events) == ("cell 7", ["job.failed", "monitor.fired"])
    rotated = await _v(admin.rotate_webhook_secret(wid))
    assert rotated.secret.startswith("whsec_") and rotated.secret != secret and rotated.secret_rotated_at
    ping = await _v(admin.ping_webhook(wid))
    assert ping.status == "succeeded" and ping.kind == "ping" and ping.attempts[0].status_code == 200
    (first,) = receiver.wait_for(1)
    standardwebhooks.Webhook(rotated.secret).verify(first.body, first.headers)
    standardwebhooks.Webhook(secret).verify(first.body, first.headers)  # the old secret signs for 24 h
    log = await _all(admin.webhook_deliveries(webhook_id=wid))
    assert [(d.id, d.kind, d.status) for d in log] == [(ping.id, "ping", "succeeded")]
    assert [d.model_dump(mode="json", exclude_unset=True) for d in log] == raw(
        "GET", "/v1/webhooks/deliveries", params={"webhook_id": wid}
    ).json()["items"]
    again = await _v(admin.redeliver(ping.id))
    assert (again.id, again.event_id, again.status) == (ping.id, ping.event_id, "pending")
    run_due()
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]  # same id: receivers de-duplicate
    with pytest.raises(sc.UnprocessableError) as ei:
        await _v(admin.create_webhook({"name": "x", "target_url": "http://10.0.0.1/x", "events": ["monitor.fired"]}))
    assert ei.value.code == "target_refused" and "10.0.0.1 is a private" in ei.value.detail
    await _v(admin.delete_webhook(wid))
    with pytest.raises(sc.NotFoundError):
        await _v(admin.webhook(wid))
    assert await _all(admin.webhooks()) == []

    # -- inbound hooks: create (token once), a third party calls it, its calls, change, delete ------------
    hook = await _v(admin.create_inbound_hook({"name": "mes", "action": "notify"}))
    assert hook.url.startswith("/v1/hooks/in/") and hook.token
    for title in ("Lot L9 complete", "Lot L10 complete", "Lot L11 complete"):
        r = raw("POST", hook.url, bearer=hook.token, json={"title": title, "body": "MES says done"})
        assert r.status_code == 200, r.text
    assert [h.id for h in await _all(admin.inbound_hooks())] == [hook.id]
    calls = await _all(admin.inbound_hook_calls(hook.id, page_size=2))
    assert [c.payload["title"] for c in calls] == ["Lot L11 complete", "Lot L10 complete", "Lot L9 complete"]
    assert {c.status for c in calls} == {"ok"}
    renamed = await _v(admin.update_inbound_hook(hook.id, sc.models.InboundPatch(name="mes 2")))
    assert renamed.name == "mes 2" and renamed.action == "notify"

    # -- the inbox those calls filled: pages, unread, read, read-all, dismiss; preferences ---------------
    inbox = await _all(admin.notifications(page_size=2))
    assert [n.title for n in inbox] == ["Lot L11 complete", "Lot L10 complete", "Lot L9 complete"]
    assert [n.model_dump(mode="json", exclude_unset=True) for n in inbox] == raw(
        "GET", "/v1/notifications", params={"limit": 500}
    ).json()["items"]
    assert [n.kind for n in await _all(admin.notifications(kind="inbound", since=inbox[-1].created_at))] == [
        "inbound"
    ] * 3
    read = await _v(admin.mark_notification_read(inbox[0].id))
    assert read.id == inbox[0].id and read.read_at is not None
    assert [n.id for n in await _all(admin.notifications(unread=True))] == [inbox[1].id, inbox[2].id]
    assert await _v(admin.mark_all_notifications_read()) == 2
    assert await _all(admin.notifications(unread=True)) == []
    await _v(admin.dismiss_notification(inbox[1].id))
    assert [n.id for n in await _all(admin.notifications())] == [inbox[0].id, inbox[2].id]
    with pytest.raises(sc.NotFoundError):
        await _v(admin.mark_notification_read("ntf_nope"))
    prefs = await _v(admin.notification_prefs())
    assert prefs.digest == "off"
    new = await _v(admin.set_notification_prefs({"digest": "immediate", "email_to": ["qa@example.com"]}))
    assert (new.digest, new.email_to) == ("immediate", ["qa@example.com"])
    assert raw("GET", "/v1/notifications/prefs").json()["email_to"] == ["qa@example.com"]
    with pytest.raises(sc.BadRequestError) as ei:
        await _v(admin.set_notification_prefs(sc.models.Prefs(digest="daily")))
    assert "needs at least one address" in ei.value.detail
    await _v(admin.delete_inbound_hook(hook.id))
    assert raw("POST", hook.url, bearer=hook.token, json={"title": "gone"}).status_code == 401

    # -- usage (the ``manage`` key) ------------------------------------------------------------------------
    def no_usage_routes(rows: list[dict]) -> list[dict]:
        return [r for r in rows if not str(r.get("route", "")).startswith("/v1/usage")]

    usage = await _v(manage.usage(group_by="route"))
    want = raw("GET", "/v1/usage", scope="manage", params={"group_by": "route"}).json()
    assert usage.group_by == "route" and no_usage_routes(usage.items) == no_usage_routes(want["items"])
    routes = {r["route"] for r in usage.items}
    assert {"/v1/webhooks/outbound", "/v1/notifications"} <= routes, routes
    csv_text = await _v(manage.usage_csv())
    lines = csv_text.splitlines()
    assert lines[0] == "day,key_id,route,requests,classifications"
    want_csv = raw("GET", "/v1/usage/export.csv", scope="manage").text.splitlines()
    assert [x for x in lines if "/v1/usage" not in x] == [x for x in want_csv if "/v1/usage" not in x]
    with pytest.raises(sc.PermissionDeniedError):
        await _v(admin.usage())


# -- in process ------------------------------------------------------------------------------------------
@pytest.fixture
def app_tokens(tmp_path):
    app, tc, tokens = new_app(tmp_path / "data", webhook_allow_cidrs="127.0.0.1/32")
    yield app, tc, tokens
    app.state.runtime.close()


def _raw_in_process(tc, tokens):
    def raw(method: str, path: str, scope: str = "admin", bearer: str | None = None, **kw) -> httpx.Response:
        return tc.request(method, path, headers={"Authorization": f"Bearer {bearer or tokens[scope]}"}, **kw)

    return raw


def test_sync_client_in_process(app_tokens, receiver, sdk_module) -> None:
    app, tc, tokens = app_tokens
    sc = sdk_module

    def client(scope: str):
        return sc.Client(api_key=tokens[scope], base_url="http://testserver", http_client=tc)

    raw, run_due = _raw_in_process(tc, tokens), app.state.runtime.delivery.run_due
    asyncio.run(scenario(sc, client("admin"), client("manage"), receiver, raw, run_due))


def test_async_client_in_process(app_tokens, receiver, sdk_module) -> None:
    app, tc, tokens = app_tokens
    sc = sdk_module

    async def go() -> None:
        transport = httpx.ASGITransport(app)
        async with (
            sc.AsyncClient(api_key=tokens["admin"], base_url="http://asgi", transport=transport) as admin,
            sc.AsyncClient(api_key=tokens["manage"], base_url="http://asgi", transport=transport) as manage,
        ):
            await scenario(sc, admin, manage, receiver, _raw_in_process(tc, tokens), app.state.runtime.delivery.run_due)

    asyncio.run(go())


# -- over real HTTP (stratum serve) ------------------------------------------------------------------------
def _raw_live(live):
    def raw(method: str, path: str, scope: str = "admin", bearer: str | None = None, **kw) -> httpx.Response:
        token = bearer or live.tokens[scope]
        return httpx.request(method, live.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)

    return raw


def _reset(live) -> None:
    """Clear what an earlier scenario left on the shared server: the inbox and the preferences."""
    raw = _raw_live(live)
    for n in raw("GET", "/v1/notifications", params={"limit": 500}).json()["items"]:
        assert raw("DELETE", f"/v1/notifications/{n['id']}").status_code == 204
    assert raw("PUT", "/v1/notifications/prefs", json={"digest": "off"}).status_code == 200


def test_sync_client_live_server(live_server, receiver, sdk_module) -> None:
    sc = sdk_module
    _reset(live_server)
    with (
        sc.Client(api_key=live_server.tokens["admin"], base_url=live_server.url) as admin,
        sc.Client(api_key=live_server.tokens["manage"], base_url=live_server.url) as manage,
    ):
        asyncio.run(scenario(sc, admin, manage, receiver, _raw_live(live_server)))


def test_async_client_live_server(live_server, receiver, sdk_module) -> None:
    sc = sdk_module
    _reset(live_server)

    async def go() -> None:
        async with (
            sc.AsyncClient(api_key=live_server.tokens["admin"], base_url=live_server.url) as admin,
            sc.AsyncClient(api_key=live_server.tokens["manage"], base_url=live_server.url) as manage,
        ):
            await scenario(sc, admin, manage, receiver, _raw_live(live_server))

    asyncio.run(go())
