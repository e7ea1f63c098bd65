"""Sealing webhook secrets at rest: they must sign every delivery, so they are stored encrypted (not
hashed) and never returned by the API after creation or rotation.

- Local (embedded): AES-256-GCM (``cryptography``) with a key from ``STRATUM_DELIVERY__SECRET_KEY``
  (base64 of 32 bytes) or, when unset, a key generated once in ``<data-dir>/keys/delivery.key`` (mode
  0600). The webhook's workspace and id are the associated data: a sealed secret copied onto another
  webhook does not open.
- AWS: KMS ``Encrypt``/``Decrypt`` with the stack's key (``STRATUM_AWS__DELIVERY_KMS_KEY_ID``) and the
  same values as the encryption context; the plaintext never reaches DynamoDB, and no key material
  lives in settings or environment variables.
"""

from __future__ import annotations

import base64
import os
import secrets
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from stratum.errors import Unavailable


class SecretBox(ABC):
    @abstractmethod
    def seal(self, plaintext: str, context: dict[str, str]) -> str: ...

    @abstractmethod
    def open(self, sealed: str, context: dict[str, str]) -> str: ...


def _aad(context: dict[str, str]) -> bytes:
    return "&".join(f"{k}={context[k]}" for k in sorted(context)).encode()


class LocalSecretBox(SecretBox):
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the delivery secret key must be 32 bytes (base64 in STRATUM_DELIVERY__SECRET_KEY)")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, configured: str, data_dir: Path) -> LocalSecretBox:
        if configured:
            return cls(base64.b64decode(configured))
        path = data_dir / "keys" / "delivery.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # first writer wins; a concurrent process reads the winner's key
            except FileExistsError:
                pass
            tmp.unlink()
        return cls(path.read_bytes())

    def seal(self, plaintext: str, context: dict[str, str]) -> str:
        nonce = secrets.token_bytes(12)
        return (
            "aesgcm:" + base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), _aad(context))).decode()
        )

    def open(self, sealed: str, context: dict[str, str]) -> str:
        scheme, _, body = sealed.partition(":")
        if scheme != "aesgcm":
            raise ValueError(f"sealed with {scheme!r}, this box opens aesgcm")
        raw = base64.b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], _aad(context)).decode()


class KmsSecretBox(SecretBox):
    def __init__(self, key_id: str, region: str, *, endpoint_url: str | None = None, session: Any = None) -> None:
        import boto3

        self.key_id = key_id
        self._kms = (session or boto3).client("kms", region_name=region, endpoint_url=endpoint_url)

    def _key(self) -> str:
        if not self.key_id:  # checked on use: the rest of the API works without delivery configured
            raise Unavailable("webhook secrets cannot be sealed: STRATUM_AWS__DELIVERY_KMS_KEY_ID is not set")
        return self.key_id

    def seal(self, plaintext: str, context: dict[str, str]) -> str:
        self._key()
        out = self._kms.encrypt(KeyId=self.key_id, Plaintext=plaintext.encode(), EncryptionContext=context)
        return "kms:" + base64.b64encode(out["CiphertextBlob"]).decode()

    def open(self, sealed: str, context: dict[str, str]) -> str:
        scheme, _, body = sealed.partition(":")
        if scheme != "kms":
            raise ValueError(f"sealed with {scheme!r}, this box opens kms")
        self._key()
        out = self._kms.decrypt(CiphertextBlob=base64.b64decode(body), EncryptionContext=context)
        return out["Plaintext"].decode()
