"""Authentication and authorisation for the HTTP API: bearer API keys (``keys``), scopes and the
permission table (``scopes``), per-key rate limits (``ratelimit``)."""

from stratum.auth.keys import AuthError, KeyRecord, KeyService, bearer_token, parse_expires, parse_token
from stratum.auth.ratelimit import BUCKETS, Decision, RateLimiter
from stratum.auth.scopes import ACTIONS, PERMISSIONS, SCOPES, PermissionDenied, allows, require

__all__ = [
    "ACTIONS",
    "BUCKETS",
    "PERMISSIONS",
    "SCOPES",
    "AuthError",
    "Decision",
    "KeyRecord",
    "KeyService",
    "PermissionDenied",
    "RateLimiter",
    "allows",
    "bearer_token",
    "parse_expires",
    "parse_token",
    "require",
]
