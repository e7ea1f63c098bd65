"""The notifications inbox of the key's workspace and its preferences."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request, Response

from stratum.delivery.inbox import Notification, Prefs

from .._fastapi import DeclaredRoute
from ..params import Cursor, Limit, NotificationId
from ..schemas import Page, ok, problem_responses
from ..security import Principal, require

router = APIRouter(tags=["notifications"], route_class=DeclaredRoute)
ERRORS = problem_responses(400, 401, 403, 404, 429)
READ = require("notifications", "analytics")


def _inbox(request: Request):
    return request.app.state.runtime.delivery.inbox


@router.get(
    "/v1/notifications", response_model=Page[Notification], responses=ERRORS, summary="Notifications, newest first"
)
def list_notifications(
    request: Request,
    unread: bool = Query(False, description="Only notifications not yet marked read"),
    kind: str | None = Query(None, max_length=100, description="Only this kind (e.g. monitor.fired, job.failed)"),
    since: datetime | None = Query(
        None, description="Only notifications posted at or after this ISO 8601 date-time (with a time zone)"
    ),
    limit: Limit = 50,
    cursor: Cursor = None,
    principal: Principal = Depends(READ),
) -> Page[Notification]:
    """The workspace's inbox, newest first: what monitors found and how ingests ended (the kinds chosen in the
    preferences), plus platform notices such as a disabled webhook."""
    items, nxt = _inbox(request).list(
        principal.workspace, unread=unread, kind=kind, since=since, limit=limit, cursor=cursor
    )
    return Page[Notification](items=items, next_cursor=nxt)


@router.get("/v1/notifications/prefs", response_model=Prefs, responses=ERRORS, summary="Inbox preferences")
def get_prefs(request: Request, principal: Principal = Depends(READ)) -> Prefs:
    """Which event kinds make a notification, and the email digest (frequency, addresses, quiet hours)."""
    return _inbox(request).prefs(principal.workspace)


@router.put("/v1/notifications/prefs", response_model=Prefs, responses=ERRORS, summary="Set inbox preferences")
def put_prefs(request: Request, body: Prefs, principal: Principal = Depends(READ)) -> Prefs:
    """Replace the preferences with the body (fields left out take their defaults)."""
    return _inbox(request).set_prefs(principal.workspace, body)


@router.post(
    "/v1/notifications/read-all",
    responses={**ERRORS, **ok({"marked": 12}, "`marked`: how many unread notifications were marked read")},
    summary="Mark every notification read",
)
def read_all(request: Request, principal: Principal = Depends(READ)) -> dict[str, int]:
    """Mark every unread notification of the workspace read."""
    return {"marked": _inbox(request).mark_all_read(principal.workspace)}


@router.post(
    "/v1/notifications/{notification_id}/read",
    response_model=Notification,
    responses=ERRORS,
    summary="Mark a notification read",
)
def mark_read(request: Request, notification_id: NotificationId, principal: Principal = Depends(READ)) -> Notification:
    """Mark one notification read (again: no change) and answer it."""
    return _inbox(request).mark_read(principal.workspace, notification_id)


@router.delete(
    "/v1/notifications/{notification_id}", status_code=204, responses=ERRORS, summary="Dismiss a notification"
)
def dismiss(request: Request, notification_id: NotificationId, principal: Principal = Depends(READ)) -> Response:
    """Remove a notification from the inbox (204)."""
    _inbox(request).dismiss(principal.workspace, notification_id)
    return Response(status_code=204)
