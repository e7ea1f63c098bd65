"""API keys: issue, verify, list, revoke, rotate.

Token format
------------
``stm_<mode>_<key_id>_<secret>``, e.g. ``stm_live_k7q2m4xz9abc_Wq3...`` (80 characters):

- ``mode`` is ``live`` for keys issued where ``Settings.environment == "production"`` and ``test``
  everywhere else (dev, test). It lets humans and secret scanners tell a production credential from a
  throw-away one. Both parse; the mode is bound to the key at creation (stored in ``token_prefix``), so a
  ``test`` token whose key id exists as a ``live`` key is rejected like a wrong secret;
- ``key_id``: 12 characters of lower-case RFC 4648 base32 (``a-z2-7``, 60 random bits from
  ``secrets``). Public: safe to print in logs, CLI output and error reports; it is the record's key;
- ``secret``: ``secrets.token_urlsafe(32)``, 43 characters of URL-safe base64 = 256 random bits.
  ``_`` may occur in it, so a token is split with at most three ``_`` splits.

Storage
-------
One item per key, ``pk="KEY"``, ``sk=<key_id>``, ``gsi1=("WS#<ws>#KEYS", <key_id>)`` (listing per
workspace), no TTL (revoked and expired keys stay listed for audit)::

    {key_id, workspace, scopes, name, token_prefix ("stm_<mode>_<key_id>"), secret_hash (SHA-256 hex
     of the secret), created_at, expires_at, revoked_at, last_used_at, rotated_from}

Timestamps are ISO 8601 UTC strings (or null). The token is returned once by ``create``/``rotate`` and
is never stored nor logged; nothing this module returns (``KeyRecord``) carries the hash either.

Why a fast hash (SHA-256) and no pepper
---------------------------------------
Slow password hashes (bcrypt, scrypt, Argon2) exist because passwords have little entropy: they make
each guess of an offline dictionary attack expensive. Our secret is 256 uniformly random bits chosen by
``secrets``: with a stolen table, an attacker still has to search 2**255 candidates on average, which
no hash speed makes feasible. A slow hash would only add tens of milliseconds of CPU to *every* API
request on Lambda (cost, latency, and a cheap denial-of-service lever for anyone sending bogus keys)
for no security gain. A single unsalted SHA-256 is enough; a salt is pointless too (no two secrets are
equal, and precomputation over 2**256 inputs is impossible).

A pepper (server-side secret mixed into the hash) would only help if the secrets were guessable, which
they are not. Kept in environment variables it would also be the wrong place: Lambda environment
variables are readable by anyone with ``lambda:GetFunctionConfiguration`` and end up in CloudFormation
templates and deployment logs, and rotating it would silently invalidate every key. If keyed hashing is
ever wanted, the key belongs in KMS (HMAC key) or Secrets Manager, not in ``Settings``.

Verification and what callers learn
-----------------------------------
``verify`` parses the token, loads the record by key id (strongly consistent read; there is no cache,
so ``revoke`` takes effect on the very next request), hashes the presented secret and compares with
``hmac.compare_digest``, also when the key id does not exist (against a dummy hash), so neither the
comparison nor its absence reveals whether a key id exists. All failures raise ``AuthError``; the API
answers 401 for every one of them. ``AuthError.reason`` (for logs and metrics, never sent to clients)
is one of ``missing``, ``malformed``, ``unknown`` (no such key id), ``mismatch`` (wrong secret or mode),
``revoked``, ``expired``. The message shown to clients (``AuthError.detail``) is:

- ``missing``: "missing API key"; ``malformed``: "malformed API key" (the format is public);
- ``unknown`` and ``mismatch``: the same "invalid API key", so a guesser learns nothing about ids;
- ``revoked`` / ``expired``: "API key revoked" / "API key expired", said only when the secret matched,
  i.e. only to the key's holder, to whom it is useful (rotate rather than retry).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stratum.catalog import Catalog
from stratum.errors import Conflict, NotFound, StratumError
from stratum.lake.layout import check_workspace
from stratum.storage.metadata import ABSENT, ConditionFailed, Item, MetadataStore, Put

from .scopes import allows, normalize_scopes
from .tiers import BUCKETS, QUOTAS, TIERS, KeyLimits

log = logging.getLogger(__name__)

KEY_PK = "KEY"
KEY_ID_LENGTH = 12
SECRET_BYTES = 32  # 256 bits
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_NAME_CHARS = 100
MAX_TOKEN_CHARS = 200  # longer input is malformed before any parsing
MAX_EXPIRES = timedelta(days=3650)

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_KEY_ID_RE = re.compile(rf"[a-z2-7]{{{KEY_ID_LENGTH}}}")  # use fullmatch ($ would accept a trailing newline)
_SECRET_CHARS = len(secrets.token_urlsafe(SECRET_BYTES))  # 43
_TOKEN_RE = re.compile(rf"stm_(live|test)_([a-z2-7]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{{_SECRET_CHARS}}})")
# compared against when the key id is unknown, so that path costs one compare_digest as well
_DUMMY_HASH = hashlib.sha256(secrets.token_bytes(32)).hexdigest()

REASONS = ("missing", "malformed", "unknown", "mismatch", "revoked", "expired")
_MESSAGES = {
    "missing": "missing API key",
    "malformed": "malformed API key",
    "unknown": "invalid API key",
    "mismatch": "invalid API key",
    "revoked": "API key revoked",
    "expired": "API key expired",
}


class AuthError(StratumError):
    """Authentication failed (HTTP 401). ``reason`` is for logs/metrics only; ``detail`` is what the
    client may see. ``reason`` is deliberately not in ``extra`` (which error responses may echo)."""

    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, reason: str) -> None:
        if reason not in _MESSAGES:
            raise ValueError(f"unknown AuthError reason {reason!r}")
        super().__init__(_MESSAGES[reason])
        self.reason = reason

    def __repr__(self) -> str:
        return f"AuthError(reason={self.reason!r})"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as callers see it: everything stored except the secret hash."""

    key_id: str
    workspace: str
    scopes: tuple[str, ...]
    name: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_from: str | None = None
    tier: str | None = None
    rate_limits: dict[str, float] | None = None  # bucket -> requests per minute (per-key override)
    quotas: dict[str, int] | None = None  # quota -> per calendar month (per-key override)

    @property
    def limits(self) -> KeyLimits:
        return KeyLimits(self.tier, dict(self.rate_limits or {}), dict(self.quotas or {}))

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired`` (revoked wins)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or _utcnow()) >= self.expires_at:
            return "expired"
        return "active"

    def allows(self, action: str) -> bool:
        return allows(self.scopes, action)

    def public(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready; no secret, no hash."""

        def iso(d: datetime | None) -> str | None:
            return None if d is None else _iso(d)

        return {
            "key_id": self.key_id,
            "workspace": self.workspace,
            "scopes": list(self.scopes),
            "name": self.name,
            "token_prefix": self.token_prefix,
            "status": self.status(now),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
            "rotated_from": self.rotated_from,
            "tier": self.tier,
            "rate_limits": dict(self.rate_limits or {}),
            "quotas": dict(self.quotas or {}),
        }


# --- helpers ---------------------------------------------------------------------------------------
def _check_limits(tier: str | None, rate_limits: dict | None, quotas: dict | None) -> dict[str, Any]:
    if tier is not None and tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; known: {', '.join(TIERS)}")
    rates = {}
    for b, v in (rate_limits or {}).items():
        if b not in BUCKETS or not isinstance(v, (int, float)) or not 0 < v <= 1e6:
            raise ValueError(f"bad rate limit {b}={v}: buckets {', '.join(BUCKETS)}, 0 < requests/min <= 1e6")
        rates[b] = float(v)
    qs = {}
    for q, v in (quotas or {}).items():
        if q not in QUOTAS or not isinstance(v, int) or v < 0:
            raise ValueError(f"bad quota {q}={v}: quotas {', '.join(QUOTAS)}, a count >= 0 per month")
        qs[q] = v
    return {"tier": tier, "rate_limits": rates, "quotas": qs}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_dt(v: Any) -> datetime | None:
    if v is None:
        return None
    d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_id() -> str:
    return "".join(secrets.choice(_B32) for _ in range(KEY_ID_LENGTH))


def token_mode(environment: str) -> str:
    """``live`` in production, ``test`` elsewhere."""
    return "live" if environment == "production" else "test"


def parse_token(token: Any) -> tuple[str, str, str]:
    """``(mode, key_id, secret)`` or ``AuthError('missing' | 'malformed')``. Never echoes the input."""
    if token is None or (isinstance(token, str) and not token.strip()):
        raise AuthError("missing")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("malformed")
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        raise AuthError("malformed")
    return m.group(1), m.group(2), m.group(3)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme case-insensitive), or
    ``AuthError('missing' | 'malformed')``."""
    if authorization is None or not authorization.strip():
        raise AuthError("missing")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("malformed")
    return value.strip()


_DURATION_RE = re.compile(r"([1-9][0-9]{0,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_expires(text: str) -> timedelta | None:
    """``"90d"``, ``"12h"``, ``"30m"`` -> timedelta; ``"never"`` -> None. Raises ``ValueError``."""
    s = text.strip().lower()
    if s == "never":
        return None
    m = _DURATION_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"invalid expiry {text!r}: use e.g. 90d, 12h, 30m or never")
    delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if delta > MAX_EXPIRES:
        raise ValueError(f"expiry {text!r} is too far away (at most {MAX_EXPIRES.days}d)")
    return delta


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("an API key needs a name (what it is for, e.g. 'dashboard')")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"key name is longer than {MAX_NAME_CHARS} characters")
    if any(not c.isprintable() for c in name):  # names are printed in tables and logs
        raise ValueError("key name must not contain control characters")
    return name


def _ws_index(workspace: str) -> str:
    return f"WS#{workspace}#KEYS"


# --- service ---------------------------------------------------------------------------------------
class KeyService:
    """API keys on a ``MetadataStore``. ``environment`` (``Settings.environment``) picks the token
    mode of new keys; ``clock`` (aware UTC datetimes) is injectable for tests."""

    def __init__(
        self,
        meta: MetadataStore,
        *,
        environment: str = "dev",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.meta = meta
        self.mode = token_mode(environment)
        self._clock = clock or _utcnow

    def now(self) -> datetime:
        return self._clock()

    # -- storage mapping ------------------------------------------------------------------------
    @staticmethod
    def _record(data: dict[str, Any]) -> KeyRecord:
        return KeyRecord(
            key_id=data["key_id"],
            workspace=data["workspace"],
            scopes=tuple(data["scopes"]),
            name=data["name"],
            token_prefix=data["token_prefix"],
            created_at=_parse_dt(data["created_at"]),  # type: ignore[arg-type]
            expires_at=_parse_dt(data.get("expires_at")),
            revoked_at=_parse_dt(data.get("revoked_at")),
            last_used_at=_parse_dt(data.get("last_used_at")),
            rotated_from=data.get("rotated_from"),
            tier=data.get("tier"),
            rate_limits=data.get("rate_limits") or None,
            quotas=data.get("quotas") or None,
        )

    def _new(
        self, workspace: str, scopes: tuple[str, ...], name: str, expires_in: timedelta | None, rotated_from: str | None
    ) -> tuple[str, dict[str, Any]]:
        key_id = new_key_id()
        secret = secrets.token_urlsafe(SECRET_BYTES)
        prefix = f"stm_{self.mode}_{key_id}"
        now = self.now()
        data = {
            "key_id": key_id,
            "workspace": workspace,
            "scopes": list(scopes),
            "name": name,
            "token_prefix": prefix,
            "secret_hash": _hash(secret),
            "created_at": _iso(now),
            "expires_at": _iso(now + expires_in) if expires_in is not None else None,
            "revoked_at": None,
            "last_used_at": None,
            "rotated_from": rotated_from,
        }
        return f"{prefix}_{secret}", data

    @staticmethod
    def _put(data: dict[str, Any], expect: Any) -> Put:
        return Put(KEY_PK, data["key_id"], data, expect=expect, gsi1=(_ws_index(data["workspace"]), data["key_id"]))

    def _load(self, key_id: str) -> Item:
        item = self.meta.get(KEY_PK, key_id) if isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id) else None
        if item is None:
            raise NotFound(f"API key {key_id!r} not found")
        return item

    # -- API ------------------------------------------------------------------------------------
    def create(
        self,
        workspace: str,
        scopes: Iterable[str],
        name: str,
        expires_in: timedelta | None = None,
        *,
        tier: str | None = None,
        rate_limits: dict[str, float] | None = None,
        quotas: dict[str, int] | None = None,
    ) -> tuple[str, KeyRecord]:
        """Issue a key; returns ``(token, record)``. The token is shown once: it is not stored.
        Creates the workspace if it is new. ``tier`` (pilot|production) and the per-key ``rate_limits``
        (bucket -> requests/min) and ``quotas`` (name -> per month) are fixed at creation (see
        ``stratum.auth.tiers``). Raises ``ValueError`` for bad arguments."""
        check_workspace(workspace)
        canon = normalize_scopes(scopes)
        name = _check_name(name)
        extra = _check_limits(tier, rate_limits, quotas)
        if expires_in is not None and (expires_in <= timedelta(0) or expires_in > MAX_EXPIRES):
            raise ValueError(f"expires_in must be positive and at most {MAX_EXPIRES.days} days")
        Catalog(self.meta).ensure_workspace(workspace)
        for _ in range(5):  # a key id collision (60 random bits) is astronomically unlikely; be correct anyway
            token, data = self._new(workspace, canon, name, expires_in, None)
            data.update(extra)
            try:
                p = self._put(data, ABSENT)
                self.meta.put(p.pk, p.sk, p.data, expect=p.expect, gsi1=p.gsi1)
            except ConditionFailed:
                continue
            log.info("created API key %s for workspace %s (scopes %s)", data["key_id"], workspace, ",".join(canon))
            return token, self._record(data)
        raise RuntimeError("could not allocate a unique API key id")

    def verify(self, token: Any) -> KeyRecord:
        """The record of a valid, unrevoked, unexpired key, or ``AuthError`` (see the module doc)."""
        mode, key_id, secret = parse_token(token)
        presented = _hash(secret)
        item = self.meta.get(KEY_PK, key_id)
        stored = item.data.get("secret_hash") if item is not None else None
        if not isinstance(stored, str):
            stored = _DUMMY_HASH
        secret_ok = hmac.compare_digest(presented.encode(), stored.encode())  # always exactly one comparison
        if item is None:
            raise AuthError("unknown")
        if not secret_ok or item.data.get("token_prefix") != f"stm_{mode}_{key_id}":
            raise AuthError("mismatch")
        record = self._record(item.data)
        if record.revoked_at is not None:
            raise AuthError("revoked")
        if record.expires_at is not None and self.now() >= record.expires_at:
            raise AuthError("expired")
        return record

    def get(self, key_id: str) -> KeyRecord:
        """Raises ``NotFound``."""
        return self._record(self._load(key_id).data)

    def list(self, workspace: str | None = None) -> list[KeyRecord]:
        """Keys of ``workspace`` (all workspaces when None), oldest first; never hashes. On DynamoDB the
        per-workspace listing reads a GSI, hence is eventually consistent (a key created a moment ago may
        be missing for a moment)."""
        if workspace is not None:
            check_workspace(workspace)
            pk, index = _ws_index(workspace), "gsi1"
        else:
            pk, index = KEY_PK, "table"
        out: list[KeyRecord] = []
        cursor = None
        while True:
            page = self.meta.query(pk, index=index, limit=200, cursor=cursor)  # type: ignore[arg-type]
            out += [self._record(it.data) for it in page.items if it.pk == KEY_PK]
            cursor = page.cursor
            if cursor is None:
                break
        out.sort(key=lambda r: (r.created_at, r.key_id))
        return out

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke at once (the next ``verify`` fails). Idempotent: revoking a revoked key keeps its
        original ``revoked_at``. Raises ``NotFound``."""
        for _ in range(20):
            item = self._load(key_id)
            if item.data.get("revoked_at") is not None:
                return self._record(item.data)
            data = {**item.data, "revoked_at": _iso(self.now())}
            p = self._put(data, item.version)
            try:
                self.meta.put(p.pk, p.sk, p.data, expect=p.expect, gsi1=p.gsi1)
            except ConditionFailed:  # changed meanwhile (touch, concurrent revoke/rotate): read again
                continue
            log.info("revoked API key %s", key_id)
            return self._record(data)
        raise ConditionFailed(f"could not revoke API key {key_id}: it kept changing")

    def rotate(self, key_id: str) -> tuple[str, KeyRecord]:
        """Issue a new key with the same workspace, scopes, name and lifetime (``expires_at -
        created_at``, counted from now) and revoke the old one, in one transaction. The old key stops
        working at once (no overlap: to switch without downtime, create a second key, deploy it, then
        revoke the first). A revoked key cannot be rotated (``Conflict``); an expired one can (renewal).
        Returns ``(token, new record)``."""
        for _ in range(20):
            item = self._load(key_id)
            old = self._record(item.data)
            if old.revoked_at is not None:
                raise Conflict(f"API key {key_id!r} is revoked; create a new key instead")
            lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
            token, data = self._new(old.workspace, old.scopes, old.name, lifetime, key_id)
            data.update(_check_limits(old.tier, old.rate_limits, old.quotas))
            revoked = {**item.data, "revoked_at": _iso(self.now())}
            try:
                self.meta.transact([self._put(data, ABSENT), self._put(revoked, item.version)])
            except ConditionFailed:
                continue
            log.info("rotated API key %s -> %s", key_id, data["key_id"])
            return token, self._record(data)
        raise ConditionFailed(f"could not rotate API key {key_id}: it kept changing")

    def touch(self, record: KeyRecord) -> bool:
        """Record that ``record`` was just used, at most once per ``TOUCH_INTERVAL`` per key: no I/O at
        all when the record (as verified) was used less than a minute ago; otherwise one read and one
        conditional write that loses quietly to any concurrent change (another touch, a revoke).
        Best effort: a store error is logged, not raised (bookkeeping must not fail the request).
        Returns whether it wrote."""
        now = self.now()
        if record.last_used_at is not None and now - record.last_used_at < TOUCH_INTERVAL:
            return False
        try:
            return self._touch(record.key_id, now)
        except Exception:  # noqa: BLE001 - best effort by design
            log.warning("could not record last use of API key %s", record.key_id, exc_info=True)
            return False

    def _touch(self, key_id: str, now: datetime) -> bool:
        item = self.meta.get(KEY_PK, key_id)
        if item is None or item.data.get("revoked_at") is not None:
            return False
        last = _parse_dt(item.data.get("last_used_at"))
        if last is not None and now - last < TOUCH_INTERVAL:
            return False  # another container touched it meanwhile
        p = self._put({**item.data, "last_used_at": _iso(now)}, item.version)
        try:
            self.meta.put(p.pk, p.sk, p.data, expect=p.expect, gsi1=p.gsi1)
        except ConditionFailed:
            return False
        return True
