"""The notifications inbox of the key's workspace and its preferences."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request, Response

from stratum.delivery.inbox import Notification, Prefs

from ..schemas import Page, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["notifications"])
ERRORS = problem_responses(400, 401, 403, 404, 429)
READ = require("notifications", "analytics")


def _inbox(request: Request):
    return request.app.state.runtime.delivery.inbox


@router.get(
    "/v1/notifications", response_model=Page[Notification], responses=ERRORS, summary="Notifications, newest first"
)
def list_notifications(
    request: Request,
    unread: bool = False,
    kind: str | None = Query(None, max_length=100),
    since: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=1024),
    principal: Principal = Depends(READ),
) -> Page[Notification]:
    items, nxt = _inbox(request).list(
        principal.workspace, unread=unread, kind=kind, since=since, limit=limit, cursor=cursor
    )
    return Page[Notification](items=items, next_cursor=nxt)


@router.get("/v1/notifications/prefs", response_model=Prefs, responses=ERRORS, summary="Inbox preferences")
def get_prefs(request: Request, principal: Principal = Depends(READ)) -> Prefs:
    return _inbox(request).prefs(principal.workspace)


@router.put("/v1/notifications/prefs", response_model=Prefs, responses=ERRORS, summary="Set inbox preferences")
def put_prefs(request: Request, body: Prefs, principal: Principal = Depends(READ)) -> Prefs:
    return _inbox(request).set_prefs(principal.workspace, body)


@router.post("/v1/notifications/read-all", responses=ERRORS, summary="Mark every notification read")
def read_all(request: Request, principal: Principal = Depends(READ)) -> dict[str, int]:
    return {"marked": _inbox(request).mark_all_read(principal.workspace)}


@router.post(
    "/v1/notifications/{notification_id}/read", response_model=Notification, responses=ERRORS, summary="Mark read"
)
def mark_read(request: Request, notification_id: str, principal: Principal = Depends(READ)) -> Notification:
    return _inbox(request).mark_read(principal.workspace, notification_id)


@router.delete(
    "/v1/notifications/{notification_id}", status_code=204, responses=ERRORS, summary="Dismiss a notification"
)
def dismiss(request: Request, notification_id: str, principal: Principal = Depends(READ)) -> Response:
    _inbox(request).dismiss(principal.workspace, notification_id)
    return Response(status_code=204)
