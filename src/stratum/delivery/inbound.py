"""Inbound webhooks: a tester cell or MES calls ``POST /v1/hooks/in/{slug}`` to trigger one action.

Keys (owned here)::

    WS#<ws>#INHOOK        / <inh_id>   the hook: name, action, target, rate limit, token hash, sealed secret
    INHOOK#SLUG           / <slug>     slug -> (workspace, hook id); the slug is 128 random bits
    WS#<ws>#INCALL#<inh>  / <call_id>  each call: payload, result (kept 30 days)
    INHOOK#RL#<inh>       / <minute>   per-hook rate-limit counter (expires)

The token (``whsec_`` + base64 of 32 random bytes) is shown once. It authenticates as a bearer token
(its SHA-256 is stored and compared in constant time) or as the key of a Standard Webhooks signature;
verifying a signature needs the key itself, so a sealed copy is kept too (``sealing``; never returned).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stratum.catalog import keyset_page
from stratum.errors import BadRequest, NotFound, PayloadTooLarge, StratumError
from stratum.ids import ulid
from stratum.storage.metadata import ABSENT, Delete, MetadataStore, Put

from .inbox import Inbox
from .sealing import SecretBox
from .signing import new_secret, verify

Action = Literal["notify", "run_monitor", "ingest", "annotate_lot"]
CALL_TTL_SECONDS = 30 * 86400
_DUMMY = hashlib.sha256(b"stratum-no-such-hook").hexdigest()


class HookUnauthorized(StratumError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class HookRateLimited(StratumError):
    status, code, title = 429, "rate_limited", "Too many requests"


class NotImplementedAction(StratumError):
    status, code, title = 501, "not_implemented", "Not implemented"


D_ACTION = (
    "What a call does: `notify` posts its title/body to the inbox, `annotate_lot` attaches the JSON to its "
    "lot_id, `ingest` ingests the drop-folder file at its `key`, `run_monitor` runs the monitor action_target"
)
D_RATE = "Calls accepted per minute (1-6000); more answer 429"


class InboundIn(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={"examples": [{"name": "MES lot notes", "action": "annotate_lot", "rate_limit_per_min": 60}]},
    )
    name: str = Field(min_length=1, max_length=100, description="Short name of the inbound webhook")
    action: Action = Field(description=D_ACTION)
    action_target: str | None = Field(default=None, max_length=255, description="monitor id for run_monitor")
    rate_limit_per_min: int = Field(default=60, ge=1, le=6000, description=D_RATE)


class InboundPatch(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str | None = Field(
        default=None, min_length=1, max_length=100, description="Short name of the inbound webhook"
    )
    action: Action | None = Field(default=None, description=D_ACTION)
    action_target: str | None = Field(default=None, max_length=255, description="monitor id for run_monitor")
    rate_limit_per_min: int | None = Field(default=None, ge=1, le=6000, description=D_RATE)


INBOUND_EXAMPLE: dict[str, Any] = {
    "id": "inh_01JD90A1B2C3D4E5F6G7H8J9KM",
    "workspace": "default",
    "name": "MES lot notes",
    "action": "annotate_lot",
    "action_target": None,
    "rate_limit_per_min": 60,
    "url": "/v1/hooks/in/Xq3v9L2mK8pT1wZ4rB7nYg",
    "created_at": "2026-12-01T09:00:00Z",
}


class InboundHook(BaseModel):
    model_config = ConfigDict(defer_build=True, json_schema_extra={"examples": [INBOUND_EXAMPLE]})
    id: str = Field(description="Inbound webhook id")
    workspace: str = Field(description="Workspace it belongs to")
    name: str = Field(description="Short name of the inbound webhook")
    action: Action = Field(description=D_ACTION)
    action_target: str | None = Field(default=None, description="monitor id for run_monitor; null otherwise")
    rate_limit_per_min: int = Field(description=D_RATE)
    url: str = Field(description="Path external systems POST to (with the token as bearer, or a signature)")
    created_at: datetime = Field(description="When it was created (ISO 8601, UTC)")


class InboundCall(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "inc_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "hook_id": "inh_01JD90A1B2C3D4E5F6G7H8J9KM",
                    "at": "2026-12-04T18:05:00Z",
                    "payload": {"lot_id": "LOT42", "note": "probe card changed"},
                    "status": "ok",
                    "result": {"lot_id": "LOT42", "annotations": 1},
                }
            ]
        },
    )
    id: str = Field(description="Call id")
    hook_id: str = Field(description="The inbound webhook called")
    at: datetime = Field(description="When the call came (ISO 8601, UTC)")
    payload: Any = Field(description="The JSON body received ({} when empty)")
    status: Literal["ok", "error"] = Field(description="`ok` the action ran; `error` it was refused (see result)")
    result: dict[str, Any] = Field(description="What the action returned, or {error: code, detail} when it was refused")


class InboundService:
    def __init__(
        self,
        meta: MetadataStore,
        box: SecretBox,
        inbox: Inbox,
        *,
        max_payload_bytes: int,
        ingest_key: Callable[[str, str], dict[str, Any]] | None = None,
        annotate_lot: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
        run_monitor: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.meta, self.box, self.inbox = meta, box, inbox
        self.max_payload_bytes = max_payload_bytes
        self.ingest_key, self.annotate_lot, self.run_monitor = ingest_key, annotate_lot, run_monitor
        self.clock = clock

    @staticmethod
    def _public(data: dict[str, Any]) -> InboundHook:
        return InboundHook.model_validate({**data, "url": f"/v1/hooks/in/{data['slug']}"})

    def _check(self, action: str | None, target: str | None) -> None:
        if action == "run_monitor" and not target:
            raise BadRequest("action run_monitor needs action_target (the monitor id)")

    def create(self, ws: str, body: InboundIn) -> tuple[InboundHook, str]:
        self._check(body.action, body.action_target)
        inh_id, slug, token = f"inh_{ulid()}", secrets.token_urlsafe(16), new_secret()
        now = self.clock()
        data = {
            "id": inh_id,
            "workspace": ws,
            **body.model_dump(),
            "slug": slug,
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "sealed": self.box.seal(token, {"workspace": ws, "hook_id": inh_id}),
            "created_at": now.isoformat(),
        }
        self.meta.transact(
            [
                Put(f"WS#{ws}#INHOOK", inh_id, data, expect=ABSENT),
                Put("INHOOK#SLUG", slug, {"workspace": ws, "hook_id": inh_id}, expect=ABSENT),
            ]
        )
        return self._public(data), token

    def _load(self, ws: str, inh_id: str):
        item = self.meta.get(f"WS#{ws}#INHOOK", inh_id)
        if item is None:
            raise NotFound(f"inbound webhook {inh_id!r} not found")
        return item

    def get(self, ws: str, inh_id: str) -> InboundHook:
        return self._public(self._load(ws, inh_id).data)

    def list(self, ws: str, *, limit: int = 50, cursor: str | None = None) -> tuple[list[InboundHook], str | None]:
        return keyset_page(self.meta, f"WS#{ws}#INHOOK", limit=limit, cursor=cursor, build=self._public)

    def update(self, ws: str, inh_id: str, patch: InboundPatch) -> InboundHook:
        item = self._load(ws, inh_id)
        data = {**item.data, **patch.model_dump(exclude_unset=True, exclude_none=True)}
        self._check(data["action"], data.get("action_target"))
        self.meta.put(f"WS#{ws}#INHOOK", inh_id, data, expect=item.version)
        return self._public(data)

    def delete(self, ws: str, inh_id: str) -> None:
        item = self._load(ws, inh_id)
        self.meta.transact(
            [Delete(f"WS#{ws}#INHOOK", inh_id, expect=item.version), Delete("INHOOK#SLUG", item.data["slug"])]
        )

    def calls(self, ws: str, inh_id: str, *, limit: int = 50, cursor: str | None = None):
        self._load(ws, inh_id)
        return keyset_page(
            self.meta, f"WS#{ws}#INCALL#{inh_id}", limit=limit, cursor=cursor, build=InboundCall.model_validate
        )

    # -- calls -----------------------------------------------------------------------------------
    def authenticate(self, slug: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        ref = self.meta.get("INHOOK#SLUG", slug) if slug and len(slug) <= 64 else None
        hook = self.meta.get(f"WS#{ref.data['workspace']}#INHOOK", ref.data["hook_id"]) if ref else None
        h = {k.lower(): v for k, v in headers.items()}
        auth = h.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            presented = hashlib.sha256(token.strip().encode()).hexdigest()
            stored = hook.data["token_hash"] if hook else _DUMMY
            if hmac.compare_digest(presented, stored) and hook is not None:
                return hook.data
        elif "webhook-signature" in h and hook is not None:
            secret = self.box.open(
                hook.data["sealed"], {"workspace": hook.data["workspace"], "hook_id": hook.data["id"]}
            )
            if verify(secret, h, body, now=int(self.clock().timestamp())):
                return hook.data
        raise HookUnauthorized(
            "unknown hook or bad credentials: send 'Authorization: Bearer <token>' or a Standard Webhooks signature"
        )

    def call(self, slug: str, headers: dict[str, str], body: bytes) -> InboundCall:
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLarge(f"payload is {len(body)} bytes; the limit is {self.max_payload_bytes}")
        hook = self.authenticate(slug, headers, body)
        ws, inh_id = hook["workspace"], hook["id"]
        now = self.clock()
        minute = int(now.timestamp()) // 60
        if (
            self.meta.increment(
                f"INHOOK#RL#{inh_id}", str(minute), ceiling=hook["rate_limit_per_min"], ttl=(minute + 2) * 60
            )
            is None
        ):
            exc = HookRateLimited(f"rate limit of {hook['rate_limit_per_min']} calls per minute reached for this hook")
            exc.headers = {"Retry-After": str(60 - int(now.timestamp()) % 60)}  # type: ignore[attr-defined]
            raise exc
        try:
            payload = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the payload must be JSON") from None
        try:
            result = self._act(ws, hook, payload)
        except StratumError as exc:
            self._store(ws, inh_id, now, payload, "error", {"error": exc.code, "detail": exc.detail})
            raise
        return self._store(ws, inh_id, now, payload, "ok", result)

    def _store(
        self, ws: str, inh_id: str, now: datetime, payload: Any, status: Literal["ok", "error"], result: dict
    ) -> InboundCall:
        c = InboundCall(id=f"inc_{ulid()}", hook_id=inh_id, at=now, payload=payload, status=status, result=result)
        ttl = int(now.timestamp()) + CALL_TTL_SECONDS
        self.meta.put(f"WS#{ws}#INCALL#{inh_id}", c.id, c.model_dump(mode="json"), ttl=ttl)
        return c

    def _act(self, ws: str, hook: dict[str, Any], payload: Any) -> dict[str, Any]:
        action = hook["action"]
        obj = payload if isinstance(payload, dict) else {}
        if action == "notify":
            title = str(obj.get("title") or obj.get("message") or f"Inbound webhook {hook['name']}")
            body = str(obj.get("body") or obj.get("message") or "")
            n = self.inbox.post(ws, "inbound", title, body, subject={"hook_id": hook["id"]})
            return {"notification_id": n.id if n else None}
        if action == "annotate_lot":
            lot_id = obj.get("lot_id")
            if not isinstance(lot_id, str) or not lot_id:
                raise BadRequest("annotate_lot needs a JSON object with lot_id")
            assert self.annotate_lot is not None
            return self.annotate_lot(ws, lot_id, {"hook_id": hook["id"], "source": hook["name"], "payload": obj})
        if action == "ingest":
            key = obj.get("key")
            if not isinstance(key, str) or not key or key.startswith("/") or ".." in key.split("/"):
                raise BadRequest("ingest needs key: a path inside the workspace's drop folder (no '..')")
            if self.ingest_key is None:
                raise NotImplementedAction("ingest is not wired in this runtime")
            return self.ingest_key(ws, key)
        if action == "run_monitor":
            if self.run_monitor is None:
                raise NotImplementedAction(
                    "run_monitor: the monitors service is not part of this build yet; the hook is stored and "
                    "will work once monitors are available"
                )
            return self.run_monitor(ws, hook["action_target"], obj)
        raise BadRequest(f"unknown action {action!r}")  # pragma: no cover - Literal-checked
