"""``Idempotency-Key`` for requests that create jobs: a retried request gets the first one's job, never a
second job.

The first request with a key claims it (a conditional put, so two concurrent retries cannot both win) with
the job id it is about to create and a fingerprint of what it asks for; a later request with the same key
(same API key, same operation) is answered with that job. The same key with a different request is a 422;
a retry that arrives while the first is still being processed is a 409. A request that fails before its job
exists releases its claim, so the retry can run. Claims expire after ``idempotency_ttl_seconds``.
"""

from __future__ import annotations

import hashlib
import re
import time

from stratum.errors import BadRequest, Conflict, StratumError
from stratum.storage.metadata import ABSENT, ConditionFailed, MetadataStore

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyMismatch(StratumError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused"


def fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


class Idempotency:
    def __init__(self, meta: MetadataStore, ttl_seconds: int) -> None:
        self.meta, self.ttl = meta, ttl_seconds

    @staticmethod
    def _where(ws: str, api_key_id: str, operation: str, key: str) -> tuple[str, str]:
        if not _KEY.match(key):
            raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
        return f"WS#{ws}#IDEMPOTENCY", f"{api_key_id}#{operation}#{key}"

    def claim(self, ws: str, api_key_id: str, operation: str, key: str, fp: str, job_id: str) -> str | None:
        """Claim ``key`` for ``job_id``; returns None when this request is the first, else the job id of
        the request that claimed it (raises on a different request with the same key)."""
        pk, sk = self._where(ws, api_key_id, operation, key)
        try:
            self.meta.put(pk, sk, {"job_id": job_id, "fp": fp}, expect=ABSENT, ttl=int(time.time()) + self.ttl)
            return None
        except ConditionFailed:
            pass
        item = self.meta.get(pk, sk)
        if item is None:  # expired between the put and the get: claim again
            return self.claim(ws, api_key_id, operation, key, fp, job_id)
        if item.data.get("fp") != fp:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used for a different request; use a new key for a new request"
            )
        return item.data["job_id"]

    def release(self, ws: str, api_key_id: str, operation: str, key: str) -> None:
        pk, sk = self._where(ws, api_key_id, operation, key)
        self.meta.delete(pk, sk)


def in_progress(key: str) -> Conflict:
    return Conflict(f"a request with Idempotency-Key {key!r} is still being processed; retry in a moment")
