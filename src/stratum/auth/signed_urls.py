"""Signed URLs of the local runtime (what presigned S3 URLs are on AWS): an HMAC-SHA256 over the URL's
purpose (``upload`` | ``export``), workspace, object id and expiry, with a key kept in the data directory
(created once, 0600). Upload and export URLs both sign here, with their purpose first, so neither opens the
other."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = ".upload-signing-key"  # one key for every local signed URL (uploads and downloads)


def local_secret(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        # first writer wins (link fails if the key exists): processes racing here all end up with one key
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def sign(secret: bytes, *parts: object) -> str:
    return hmac.new(secret, ":".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, signature: str, *parts: object) -> bool:
    # compare bytes: compare_digest raises TypeError on non-ASCII str (a forged URL must fail, not crash)
    return hmac.compare_digest(sign(secret, *parts).encode(), signature.encode("utf-8", "replace"))
