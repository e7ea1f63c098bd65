"""Outbound and inbound webhooks of the key's workspace (``admin``), and the inbound hook endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from stratum.delivery.inbound import InboundCall, InboundHook, InboundIn, InboundPatch
from stratum.delivery.webhooks import Delivery, Webhook, WebhookIn, WebhookPatch

from ..schemas import ApiModel, Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["webhooks"])
ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
ADMIN = require("webhooks", "analytics")


class WebhookCreated(Webhook):
    secret: str  # shown once


class InboundCreated(InboundHook):
    token: str  # shown once


def _hooks(request: Request):
    return request.app.state.runtime.delivery.webhooks


def _inbound(request: Request):
    return request.app.state.runtime.delivery.inbound


@router.get("/v1/webhooks/outbound", response_model=Page[Webhook], responses=ERRORS, summary="Outbound webhooks")
def list_outbound(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ADMIN),
) -> Page[Webhook]:
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
    hook, secret = _hooks(request).create(principal.workspace, body)
    return WebhookCreated(**hook.model_dump(), secret=secret)


@router.get("/v1/webhooks/outbound/{webhook_id}", response_model=Webhook, responses=ERRORS, summary="One webhook")
def get_outbound(request: Request, webhook_id: str, principal: Principal = Depends(ADMIN)) -> Webhook:
    return _hooks(request).get(principal.workspace, webhook_id)


@router.patch("/v1/webhooks/outbound/{webhook_id}", response_model=Webhook, responses=ERRORS, summary="Change")
def patch_outbound(
    request: Request, webhook_id: str, body: WebhookPatch, principal: Principal = Depends(ADMIN)
) -> Webhook:
    return _hooks(request).update(principal.workspace, webhook_id, body)


@router.delete("/v1/webhooks/outbound/{webhook_id}", status_code=204, responses=ERRORS, summary="Delete")
def delete_outbound(request: Request, webhook_id: str, principal: Principal = Depends(ADMIN)) -> Response:
    _hooks(request).delete(principal.workspace, webhook_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/outbound/{webhook_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=ERRORS,
    summary="New secret (shown once); the previous one keeps signing for 24 h",
)
def rotate_outbound(request: Request, webhook_id: str, principal: Principal = Depends(ADMIN)) -> WebhookCreated:
    hook, secret = _hooks(request).rotate_secret(principal.workspace, webhook_id)
    return WebhookCreated(**hook.model_dump(), secret=secret)


@router.post(
    "/v1/webhooks/outbound/{webhook_id}/test", response_model=Delivery, responses=ERRORS, summary="Send a ping now"
)
def test_outbound(request: Request, webhook_id: str, principal: Principal = Depends(ADMIN)) -> Delivery:
    return _hooks(request).test(principal.workspace, webhook_id)


@router.get(
    "/v1/webhooks/deliveries",
    response_model=Page[Delivery],
    responses=ERRORS,
    summary="Delivery audit log, newest first",
)
def list_deliveries(
    request: Request,
    webhook_id: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ADMIN),
) -> Page[Delivery]:
    items, nxt = _hooks(request).list_deliveries(principal.workspace, webhook_id=webhook_id, limit=limit, cursor=cursor)
    return Page[Delivery](items=items, next_cursor=nxt)


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/redeliver",
    response_model=Delivery,
    status_code=202,
    responses=ERRORS,
    summary="Deliver again (same webhook-id)",
)
def redeliver(request: Request, delivery_id: str, principal: Principal = Depends(ADMIN)) -> Delivery:
    return _hooks(request).redeliver(principal.workspace, delivery_id)


# -- inbound ---------------------------------------------------------------------------------------
@router.get("/v1/webhooks/inbound", response_model=Page[InboundHook], responses=ERRORS, summary="Inbound webhooks")
def list_inbound(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ADMIN),
) -> Page[InboundHook]:
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
    hook, token = _inbound(request).create(principal.workspace, body)
    return InboundCreated(**hook.model_dump(), token=token)


@router.patch("/v1/webhooks/inbound/{hook_id}", response_model=InboundHook, responses=ERRORS, summary="Change")
def patch_inbound(
    request: Request, hook_id: str, body: InboundPatch, principal: Principal = Depends(ADMIN)
) -> InboundHook:
    return _inbound(request).update(principal.workspace, hook_id, body)


@router.delete("/v1/webhooks/inbound/{hook_id}", status_code=204, responses=ERRORS, summary="Delete")
def delete_inbound(request: Request, hook_id: str, principal: Principal = Depends(ADMIN)) -> Response:
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
    hook_id: str,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(ADMIN),
) -> Page[InboundCall]:
    items, nxt = _inbound(request).calls(principal.workspace, hook_id, limit=limit, cursor=cursor)
    return Page[InboundCall](items=items, next_cursor=nxt)


class CallOut(ApiModel):
    id: str
    status: str
    result: dict


@router.post(
    "/v1/hooks/in/{slug}",
    response_model=CallOut,
    responses=problem_responses(400, 401, 413, 429, 501),
    summary="Call an inbound webhook (bearer token or Standard Webhooks signature)",
)
async def call_inbound(request: Request, slug: str) -> CallOut:
    limit = request.app.state.runtime.settings.delivery.inbound_max_payload_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break  # the service refuses it with 413 without reading the rest
    c = await run_in_threadpool(_inbound(request).call, slug, dict(request.headers), body)
    return CallOut(id=c.id, status=c.status, result=c.result)
