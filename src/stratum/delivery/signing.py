"""Webhook secrets and signatures (Standard Webhooks, plus a plain body HMAC).

- A secret is ``whsec_`` + base64 of 32 random bytes; the bytes are the HMAC key.
- ``webhook-signature`` is ``v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>``;
  several keys (a rotation's old and new secret) give several space-separated signatures.
- ``X-Stratum-Signature`` is ``sha256=<hex HMAC-SHA256(key, body)>`` with the newest key, for receivers
  that verify with a plain ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :])


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers of one delivery; ``secrets_`` newest first (all of them sign)."""
    keys = [secret_key(s) for s in secrets_]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
        "X-Stratum-Signature": "sha256=" + hmac.new(keys[0], body, hashlib.sha256).hexdigest(),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """Standard Webhooks verification (inbound hooks): any listed v1 signature matches, the timestamp
    is within ``tolerance`` seconds. Constant-time comparisons."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (msg_id and ts and sigs):
        return False
    try:
        t = int(ts)
    except ValueError:
        return False
    if abs(now - t) > tolerance:
        return False
    want = signature(secret_key(secret), msg_id, t, body).encode()
    ok = False
    for s in sigs.split(" "):
        ok |= hmac.compare_digest(want, s.encode())
    return ok
