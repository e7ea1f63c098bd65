"""Outbound and inbound webhooks of the key's workspace (``admin``), and the inbound hook endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ConfigDict, Field

from stratum.delivery.inbound import INBOUND_EXAMPLE, InboundCall, InboundHook, InboundIn, InboundPatch
from stratum.delivery.webhooks import WEBHOOK_EXAMPLE, Delivery, Webhook, WebhookIn, WebhookPatch

from .._fastapi import DeclaredRoute
from ..params import Cursor, DeliveryId, HookId, Limit, WebhookId
from ..schemas import ApiModel, Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["webhooks"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
ADMIN = require("webhooks", "analytics")


class WebhookCreated(Webhook):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **WEBHOOK_EXAMPLE,
                    "secret": "whsec_MfKQ9r8GKYqrTjYtMzY1NDEzZjMyOTg3",
                }
            ]
        }
    )
    secret: str = Field(
        description="Signing secret (Standard Webhooks `whsec_...`): verify the webhook-signature header with it. "
        "Shown once; store it now"
    )


class InboundCreated(InboundHook):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **INBOUND_EXAMPLE,
                    "token": "whsec_Zp1yQ3n6RkT0bLwV8sXcM2dF5gHjK7eA",
                }
            ]
        }
    )
    token: str = Field(
        description="Secret for callers: send it as `Authorization: Bearer <token>`, or sign calls with it "
        "(Standard Webhooks). Shown once; store it now"
    )


def _hooks(request: Request):
    return request.app.state.runtime.delivery.webhooks


def _inbound(request: Request):
    return request.app.state.runtime.delivery.inbound


@router.get("/v1/webhooks/outbound", response_model=Page[Webhook], responses=ERRORS, summary="Outbound webhooks")
def list_outbound(
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(ADMIN),
) -> Page[Webhook]:
    """The workspace's outbound webhooks (never their secrets)."""
    items, nxt = _hooks(request).list(principal.workspace, limit=limit, cursor=cursor)
    return Page[Webhook](items=items, next_cursor=nxt)


@router.post(
    "/v1/webhooks/outbound",
    response_model=WebhookCreated,
    status_code=201,
    responses=ERRORS,
    summary="Create an outbound webhook (the secret is shown once)",
)
def create_outbound(request: Request, body: WebhookIn, principal: Principal = Depends(ADMIN)) -> WebhookCreated:
    """Subscribe a URL to event kinds. Each event is POSTed as JSON signed with the Standard Webhooks headers
    (webhook-id, webhook-timestamp, webhook-signature), retried with backoff on failure; an endpoint failing for
    days is disabled and the inbox says so. The answer carries the signing secret, once."""
    hook, secret = _hooks(request).create(principal.workspace, body)
    return WebhookCreated(**hook.model_dump(), secret=secret)


@router.get(
    "/v1/webhooks/outbound/{webhook_id}", response_model=Webhook, responses=ERRORS, summary="One outbound webhook"
)
def get_outbound(request: Request, webhook_id: WebhookId, principal: Principal = Depends(ADMIN)) -> Webhook:
    """One outbound webhook."""
    return _hooks(request).get(principal.workspace, webhook_id)


@router.patch(
    "/v1/webhooks/outbound/{webhook_id}", response_model=Webhook, responses=ERRORS, summary="Change an outbound webhook"
)
def patch_outbound(
    request: Request, webhook_id: WebhookId, body: WebhookPatch, principal: Principal = Depends(ADMIN)
) -> Webhook:
    """Change the fields given; `enabled: true` re-enables a webhook the platform disabled."""
    return _hooks(request).update(principal.workspace, webhook_id, body)


@router.delete(
    "/v1/webhooks/outbound/{webhook_id}", status_code=204, responses=ERRORS, summary="Delete an outbound webhook"
)
def delete_outbound(request: Request, webhook_id: WebhookId, principal: Principal = Depends(ADMIN)) -> Response:
    """Delete the webhook (204); its pending deliveries are cancelled."""
    _hooks(request).delete(principal.workspace, webhook_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/outbound/{webhook_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=ERRORS,
    summary="New secret (shown once); the previous one keeps signing for 24 h",
)
def rotate_outbound(request: Request, webhook_id: WebhookId, principal: Principal = Depends(ADMIN)) -> WebhookCreated:
    """A new signing secret, shown once. For 24 h deliveries carry signatures of both the old and the new
    secret, so receivers can switch without losing events."""
    hook, secret = _hooks(request).rotate_secret(principal.workspace, webhook_id)
    return WebhookCreated(**hook.model_dump(), secret=secret)


@router.post(
    "/v1/webhooks/outbound/{webhook_id}/test", response_model=Delivery, responses=ERRORS, summary="Send a ping now"
)
def test_outbound(request: Request, webhook_id: WebhookId, principal: Principal = Depends(ADMIN)) -> Delivery:
    """Send a `ping` event to the webhook now (one attempt, no retries) and answer its delivery record."""
    return _hooks(request).test(principal.workspace, webhook_id)


@router.get(
    "/v1/webhooks/deliveries",
    response_model=Page[Delivery],
    responses=ERRORS,
    summary="Delivery audit log, newest first",
)
def list_deliveries(
    request: Request,
    webhook_id: str | None = Query(None, max_length=64, description="Only deliveries to this webhook"),
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(ADMIN),
) -> Page[Delivery]:
    """Every delivery of an event to a webhook, with its attempts (status code, latency, error)."""
    items, nxt = _hooks(request).list_deliveries(principal.workspace, webhook_id=webhook_id, limit=limit, cursor=cursor)
    return Page[Delivery](items=items, next_cursor=nxt)


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/redeliver",
    response_model=Delivery,
    status_code=202,
    responses=ERRORS,
    summary="Deliver again (same webhook-id)",
)
def redeliver(request: Request, delivery_id: DeliveryId, principal: Principal = Depends(ADMIN)) -> Delivery:
    """Deliver the same event again now, with a fresh retry schedule (202). The webhook-id header stays the
    event's id, so receivers that deduplicate see it as the same event."""
    return _hooks(request).redeliver(principal.workspace, delivery_id)


# -- inbound ---------------------------------------------------------------------------------------
@router.get("/v1/webhooks/inbound", response_model=Page[InboundHook], responses=ERRORS, summary="Inbound webhooks")
def list_inbound(
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(ADMIN),
) -> Page[InboundHook]:
    """The workspace's inbound webhooks (never their tokens)."""
    items, nxt = _inbound(request).list(principal.workspace, limit=limit, cursor=cursor)
    return Page[InboundHook](items=items, next_cursor=nxt)


@router.post(
    "/v1/webhooks/inbound",
    response_model=InboundCreated,
    status_code=201,
    responses=ERRORS,
    summary="Create an inbound webhook (URL and token; the token is shown once)",
)
def create_inbound(request: Request, body: InboundIn, principal: Principal = Depends(ADMIN)) -> InboundCreated:
    """A URL (`/v1/hooks/in/{slug}`) that an external system (MES, tester cell) calls to do one action in this
    workspace: notify, annotate a lot, ingest a drop-folder file or run a monitor. The answer carries the
    caller's token, once."""
    hook, token = _inbound(request).create(principal.workspace, body)
    return InboundCreated(**hook.model_dump(), token=token)


@router.patch(
    "/v1/webhooks/inbound/{hook_id}", response_model=InboundHook, responses=ERRORS, summary="Change an inbound webhook"
)
def patch_inbound(
    request: Request, hook_id: HookId, body: InboundPatch, principal: Principal = Depends(ADMIN)
) -> InboundHook:
    """Change the fields given; the URL and token stay."""
    return _inbound(request).update(principal.workspace, hook_id, body)


@router.delete("/v1/webhooks/inbound/{hook_id}", status_code=204, responses=ERRORS, summary="Delete an inbound webhook")
def delete_inbound(request: Request, hook_id: HookId, principal: Principal = Depends(ADMIN)) -> Response:
    """Delete the inbound webhook (204); its URL stops working."""
    _inbound(request).delete(principal.workspace, hook_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/inbound/{hook_id}/calls",
    response_model=Page[InboundCall],
    responses=ERRORS,
    summary="Calls of an inbound webhook with their payloads and results",
)
def list_calls(
    request: Request,
    hook_id: HookId,
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(ADMIN),
) -> Page[InboundCall]:
    """Recent calls of the inbound webhook (kept 30 days), newest first, with payloads and results."""
    items, nxt = _inbound(request).calls(principal.workspace, hook_id, limit=limit, cursor=cursor)
    return Page[InboundCall](items=items, next_cursor=nxt)


class CallOut(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "inc_01JD90A1B2C3D4E5F6G7H8J9KM", "status": "ok", "result": {"notification_id": "ntf_01JD90B"}}
            ]
        }
    )
    id: str = Field(description="Id of the call (in the hook's call log)")
    status: str = Field(description="`ok`: the action ran")
    result: dict = Field(description="What the action returned, e.g. {notification_id} or the ingest job")


@router.post(
    "/v1/hooks/in/{slug}",
    response_model=CallOut,
    responses=problem_responses(400, 401, 413, 429, 501),
    summary="Call an inbound webhook (bearer token or Standard Webhooks signature)",
)
async def call_inbound(request: Request, slug: str = Path(description="The hook's slug, from its `url`")) -> CallOut:
    """Called by external systems, not with an API key: authorise with the hook's token as
    `Authorization: Bearer <token>`, or sign the body with it (Standard Webhooks headers). The body is a JSON
    object for the hook's action: notify {title, body}, annotate_lot {lot_id, ...}, ingest {key} or run_monitor
    (any JSON). Each hook has its own rate limit (429) and payload bound (413)."""
    limit = request.app.state.runtime.settings.delivery.inbound_max_payload_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break  # the service refuses it with 413 without reading the rest
    c = await run_in_threadpool(_inbound(request).call, slug, dict(request.headers), body)
    return CallOut(id=c.id, status=c.status, result=c.result)
