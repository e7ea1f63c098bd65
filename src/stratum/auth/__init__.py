"""Authentication and authorisation for the HTTP API: bearer API keys (``keys``), scopes and the
permission table (``scopes``), per-key rate limits (``ratelimit``).

The names below are loaded on first access: ``stratum.auth.redact`` (which the CLI installs before parsing
its arguments) must not pull in the key service, the catalog and the settings.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM = {
    "AuthError": "keys",
    "KeyRecord": "keys",
    "KeyService": "keys",
    "bearer_token": "keys",
    "parse_expires": "keys",
    "parse_token": "keys",
    "BUCKETS": "ratelimit",
    "Decision": "ratelimit",
    "RateLimiter": "ratelimit",
    "ACTIONS": "scopes",
    "PERMISSIONS": "scopes",
    "SCOPES": "scopes",
    "PermissionDenied": "scopes",
    "allows": "scopes",
    "require": "scopes",
}
__all__ = sorted(_FROM)


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
