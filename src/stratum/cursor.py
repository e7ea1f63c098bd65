"""The one codec for opaque page cursors: URL-safe base64 (unpadded) of compact JSON.

Every paged listing (metadata queries, catalog listings, SQL results, lot test results) encodes its
position with :func:`encode_cursor` and reads it back with :func:`decode_cursor`; what the payload holds and
how it is checked stays with its owner.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class InvalidCursor(ValueError):
    """Not a cursor this codec made (bad base64, bad JSON, or not a JSON object)."""


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    if not isinstance(payload, dict):
        raise InvalidCursor("invalid cursor")
    return payload
