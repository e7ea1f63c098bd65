"""API keys: token format, hash at rest, verification failures, revoke/expiry/rotate, last-used
throttling, constant-time comparison, and the scope permission table."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stratum.auth import keys as keys_mod
from stratum.auth.keys import AuthError, KeyService, bearer_token, parse_expires, parse_token
from stratum.auth.scopes import ACTIONS, PERMISSIONS, SCOPES, PermissionDenied, allows, require
from stratum.errors import Conflict, NotFound
from stratum.storage.sqlite import SqliteMetadataStore

TOKEN_RE = re.compile(r"^stm_(live|test)_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$")


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


@pytest.fixture
def meta(tmp_path: Path):
    store = SqliteMetadataStore(tmp_path / "meta" / "stratum.db")
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(meta, clock) -> KeyService:
    return KeyService(meta, clock=clock)


def all_items(meta) -> list:
    out, cursor = [], None
    for pk in ("KEY", "WS"):
        while True:
            page = meta.query(pk, cursor=cursor)
            out += page.items
            cursor = page.cursor
            if cursor is None:
                break
    return out


def reason(svc: KeyService, token) -> str:
    with pytest.raises(AuthError) as ei:
        svc.verify(token)
    return ei.value.reason


# --- token format ------------------------------------------------------------------------------
def test_token_format_and_record(svc: KeyService, meta) -> None:
    token, rec = svc.create("acme", ["read", "full", "read"], "dashboard", timedelta(days=90))
    m = TOKEN_RE.match(token)
    assert m, token
    mode, key_id, secret = m.groups()
    assert mode == "test"  # dev/test environments issue test keys
    assert rec.key_id == key_id and rec.token_prefix == f"stm_test_{key_id}"
    assert rec.workspace == "acme" and rec.scopes == ("read", "full") and rec.name == "dashboard"
    assert rec.expires_at == rec.created_at + timedelta(days=90)
    assert rec.revoked_at is None and rec.last_used_at is None and rec.rotated_from is None
    assert parse_token(token) == (mode, key_id, secret)
    # the workspace was created
    assert meta.get("WS", "acme") is not None
    # key ids and secrets are random
    t2, r2 = svc.create("acme", ["read"], "other")
    assert r2.key_id != rec.key_id and t2.rsplit("_", 1)[-1] != secret


def test_live_tokens_in_production(meta) -> None:
    prod = KeyService(meta, environment="production")
    token, rec = prod.create("acme", ["read"], "prod")
    assert token.startswith(f"stm_live_{rec.key_id}_") and rec.token_prefix == f"stm_live_{rec.key_id}"
    # both modes parse and verify, whatever the verifying service's environment
    assert KeyService(meta, environment="dev").verify(token).key_id == rec.key_id
    t2, r2 = KeyService(meta, environment="test").create("acme", ["read"], "test")
    assert t2.startswith("stm_test_") and prod.verify(t2).key_id == r2.key_id
    # the mode is bound to the key: the same id and secret under the other mode is rejected
    assert reason(prod, token.replace("stm_live_", "stm_test_", 1)) == "mismatch"


def test_secret_with_underscores_parses(svc: KeyService, monkeypatch) -> None:
    monkeypatch.setattr(keys_mod.secrets, "token_urlsafe", lambda n: "_a_b-" + "x" * 38)
    token, rec = svc.create("acme", ["read"], "u")
    assert parse_token(token)[2] == "_a_b-" + "x" * 38
    assert svc.verify(token).key_id == rec.key_id


# --- hash at rest ------------------------------------------------------------------------------
def test_only_a_hash_is_stored(svc: KeyService, meta, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token, rec = svc.create("acme", ["full"], "etl")
    secret = parse_token(token)[2]
    t2, rec2 = svc.rotate(rec.key_id)
    secret2 = parse_token(t2)[2]
    svc.verify(t2)
    item = meta.get("KEY", rec.key_id)
    assert item is not None
    assert item.data["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert set(item.data) == {
        "key_id",
        "workspace",
        "scopes",
        "name",
        "token_prefix",
        "secret_hash",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "rotated_from",
        "tier",
        "rate_limits",
        "quotas",
    }
    assert item.gsi1 == ("WS#acme#KEYS", rec.key_id) and item.ttl is None
    dump = json.dumps([[i.pk, i.sk, i.data, i.gsi1, i.gsi2] for i in all_items(meta)])
    for tok, sec in ((token, secret), (t2, secret2)):
        assert tok not in dump
        for i in range(len(sec) - 7):  # no 8-character substring of either secret anywhere
            assert sec[i : i + 8] not in dump, sec[i : i + 8]
    # nor in the database files themselves (WAL included), nor in the logs
    meta.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "meta").iterdir())
    assert secret.encode() not in raw and secret2.encode() not in raw
    assert secret not in caplog.text and secret2 not in caplog.text and rec.key_id in caplog.text
    # records returned to callers never carry the hash
    h = item.data["secret_hash"]
    for r in (rec, rec2, svc.get(rec.key_id), *svc.list("acme"), *svc.list()):
        assert h not in repr(r) and h not in json.dumps(r.public())
        assert not hasattr(r, "secret_hash")


# --- verify ------------------------------------------------------------------------------------
def test_verify_ok(svc: KeyService) -> None:
    token, rec = svc.create("acme", ["read"], "dash", timedelta(hours=1))
    got = svc.verify(token)
    assert got == rec and got.status() == "active" and got.allows("analytics") and not got.allows("sql_run")


def test_every_failure_reason(svc: KeyService, clock: Clock) -> None:
    token, rec = svc.create("acme", ["read"], "dash", timedelta(minutes=30))
    mode, key_id, secret = parse_token(token)
    # missing
    for t in (None, "", "   "):
        assert reason(svc, t) == "missing"
    # malformed variants
    other = "b" * 43
    malformed = [
        f"xyz_{mode}_{key_id}_{secret}",  # wrong product prefix
        f"stm_prod_{key_id}_{secret}",  # unknown mode
        f"stm_{mode}_{key_id.upper()}_{secret}",  # key id case
        f"stm_{mode}_{key_id[:-1]}_{secret}",  # short key id
        f"stm_{mode}_{key_id}1_{secret}",  # key id with a digit outside base32
        f"stm_{mode}_{key_id}_{secret[:-1]}",  # short secret
        f"stm_{mode}_{key_id}_{secret}A",  # long secret
        f"stm_{mode}_{key_id}_{secret[:-1]}=",  # padding / bad alphabet
        f"stm_{mode}_{key_id}{secret}",  # missing separator
        f" {token}",  # surrounding whitespace is not silently stripped
        f"{token}\n",  # ($ in a regex would accept this one)
        f"Bearer {token}",
        token + "x" * 5000,  # huge input
        f"stm_{mode}_{key_id}_{secret[:-1]}é",  # non-ASCII
        b"stm_test_aaaaaaaaaaaa_" + other.encode(),  # not a str
        12345,
    ]
    for t in malformed:
        assert reason(svc, t) == "malformed", t
    # unknown id (well-formed)
    unknown_id = "a" * 12 if key_id != "a" * 12 else "b" * 12
    assert reason(svc, f"stm_{mode}_{unknown_id}_{secret}") == "unknown"
    # wrong secret
    assert reason(svc, f"stm_{mode}_{key_id}_{other}") == "mismatch"
    # expired (exactly at expiry)
    clock.advance(minutes=30)
    assert reason(svc, token) == "expired"
    # revoked wins over expired
    svc.revoke(key_id)
    assert reason(svc, token) == "revoked"


def test_messages_do_not_reveal_existence(svc: KeyService, clock: Clock) -> None:
    token, rec = svc.create("acme", ["read"], "dash", timedelta(minutes=1))
    mode, key_id, secret = parse_token(token)
    msgs = {}
    for name, t in {
        "unknown": f"stm_{mode}_{'c' * 12}_{secret}",
        "mismatch": f"stm_{mode}_{key_id}_{'z' * 43}",
    }.items():
        with pytest.raises(AuthError) as ei:
            svc.verify(t)
        msgs[name] = ei.value
    assert msgs["unknown"].detail == msgs["mismatch"].detail == "invalid API key"
    assert msgs["unknown"].status == 401 and msgs["unknown"].extra == {}  # the reason never goes into extra
    svc.revoke(key_id)
    with pytest.raises(AuthError) as ei:
        svc.verify(token)
    assert ei.value.detail == "API key revoked"  # the holder of the right secret may know
    # ... but a wrong secret on a revoked key still only says "invalid"
    with pytest.raises(AuthError) as ei:
        svc.verify(f"stm_{mode}_{key_id}_{'z' * 43}")
    assert ei.value.reason == "mismatch" and ei.value.detail == "invalid API key"
    with pytest.raises(AuthError) as ei:
        svc.verify(None)
    assert ei.value.detail == "missing API key"
    for r in ("unknown", "mismatch", "revoked", "expired", "missing", "malformed"):
        assert token not in str(AuthError(r)) and secret not in repr(AuthError(r))


def test_bearer_header() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    for h, r in (
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer   ", "malformed"),
        ("Token abc", "malformed"),
    ):
        with pytest.raises(AuthError) as ei:
            bearer_token(h)
        assert ei.value.reason == r, h


# --- revoke, expiry, rotate ---------------------------------------------------------------------
def test_revoke_takes_effect_at_once(svc: KeyService, tmp_path: Path) -> None:
    token, rec = svc.create("acme", ["ingest"], "tester-7")
    assert svc.verify(token)
    # a second service on another connection (another container) sees it too: no cache anywhere
    other = KeyService(SqliteMetadataStore(tmp_path / "meta" / "stratum.db"))
    assert other.verify(token)
    revoked = svc.revoke(rec.key_id)
    assert revoked.revoked_at is not None and revoked.status() == "revoked"
    assert reason(svc, token) == "revoked" and reason(other, token) == "revoked"
    assert svc.revoke(rec.key_id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(NotFound):
        svc.revoke("zzzzzzzzzzzz")
    with pytest.raises(NotFound):
        svc.revoke("not a key id")
    other.meta.close()


def test_revoke_retries_after_a_concurrent_change(svc: KeyService, meta, monkeypatch) -> None:
    token, rec = svc.create("acme", ["read"], "dash")
    real_put = meta.put
    calls = {"n": 0}

    def racing_put(pk, sk, data, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # someone (a touch) writes between our read and our write
            item = meta.get(pk, sk)
            real_put(pk, sk, {**item.data, "last_used_at": "2026-01-01T00:00:00Z"}, expect=item.version, gsi1=item.gsi1)
        return real_put(pk, sk, data, **kw)

    monkeypatch.setattr(meta, "put", racing_put)
    assert svc.revoke(rec.key_id).revoked_at is not None
    assert calls["n"] == 2
    assert reason(svc, token) == "revoked"


def test_expiry_takes_effect_at_once(svc: KeyService, clock: Clock) -> None:
    token, rec = svc.create("acme", ["read"], "short", parse_expires("30m"))
    clock.advance(minutes=29, seconds=59)
    assert svc.verify(token).key_id == rec.key_id
    clock.advance(seconds=1)
    assert reason(svc, token) == "expired"
    assert svc.get(rec.key_id).status(clock()) == "expired"
    never, _ = svc.create("acme", ["read"], "forever", parse_expires("never"))
    clock.advance(days=5000)
    assert svc.verify(never)


def test_rotate(svc: KeyService, meta, clock: Clock) -> None:
    token, rec = svc.create("acme", ["read", "classify"], "dash", timedelta(days=30))
    clock.advance(days=10)
    t2, new = svc.rotate(rec.key_id)
    assert t2 != token and new.key_id != rec.key_id and new.rotated_from == rec.key_id
    assert (new.workspace, new.scopes, new.name) == (rec.workspace, rec.scopes, rec.name)
    assert new.expires_at == clock() + timedelta(days=30)  # same lifetime, from now
    assert svc.verify(t2).key_id == new.key_id
    assert reason(svc, token) == "revoked"
    assert svc.get(rec.key_id).revoked_at == clock()
    assert [r.key_id for r in svc.list("acme")] == [rec.key_id, new.key_id]
    with pytest.raises(Conflict):
        svc.rotate(rec.key_id)  # a revoked key cannot be brought back
    # an expired key can be renewed
    clock.advance(days=31)
    assert reason(svc, t2) == "expired"
    t3, newer = svc.rotate(new.key_id)
    assert svc.verify(t3).rotated_from == new.key_id
    # never-expiring keys stay never-expiring
    t4, r4 = svc.create("acme", ["admin"], "ops")
    assert svc.rotate(r4.key_id)[1].expires_at is None
    with pytest.raises(NotFound):
        svc.rotate("aaaaaaaaaaaa")


def test_list_and_get(svc: KeyService, clock: Clock) -> None:
    _, a = svc.create("acme", ["read"], "a")
    clock.advance(seconds=1)
    _, b = svc.create("beta", ["ingest"], "b")
    clock.advance(seconds=1)
    _, c = svc.create("acme", ["full"], "c")
    assert [r.key_id for r in svc.list("acme")] == [a.key_id, c.key_id]
    assert [r.key_id for r in svc.list("beta")] == [b.key_id]
    assert svc.list("gamma") == []
    assert {r.key_id for r in svc.list()} == {a.key_id, b.key_id, c.key_id}
    assert svc.get(b.key_id) == b
    with pytest.raises(NotFound):
        svc.get("aaaaaaaaaaaa")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workspace": "Bad WS"},
        {"scopes": []},
        {"scopes": ["root"]},
        {"scopes": "reader"},
        {"name": "  "},
        {"name": "x" * 101},
        {"name": "evil\nline"},
        {"expires_in": timedelta(0)},
        {"expires_in": timedelta(days=-1)},
    ],
)
def test_create_rejects_bad_arguments(svc: KeyService, meta, kwargs) -> None:
    args = {"workspace": "acme", "scopes": ["read"], "name": "ok", "expires_in": None, **kwargs}
    with pytest.raises(ValueError):
        svc.create(**args)
    assert svc.list() == []


def test_parse_expires() -> None:
    assert parse_expires("90d") == timedelta(days=90)
    assert parse_expires("12h") == timedelta(hours=12)
    assert parse_expires("30m") == timedelta(minutes=30)
    assert parse_expires("never") is None and parse_expires(" NEVER ") is None
    for bad in ("", "0d", "-1d", "90", "d", "1w", "1.5h", "90 d", "99999d", "forever"):
        with pytest.raises(ValueError):
            parse_expires(bad)


# --- last used ---------------------------------------------------------------------------------
def test_touch_records_last_use_at_most_once_a_minute(svc: KeyService, meta, clock: Clock, monkeypatch) -> None:
    token, rec = svc.create("acme", ["read"], "dash")
    writes = []
    real_put = meta.put
    monkeypatch.setattr(meta, "put", lambda *a, **kw: writes.append(a[:2]) or real_put(*a, **kw))
    reads = []
    real_get = meta.get
    monkeypatch.setattr(meta, "get", lambda *a, **kw: reads.append(a[:2]) or real_get(*a, **kw))

    r = svc.verify(token)
    assert svc.touch(r) is True and len(writes) == 1
    assert svc.get(rec.key_id).last_used_at == clock()
    first = clock()
    clock.advance(seconds=59)
    reads.clear()
    r = svc.verify(token)
    assert svc.touch(r) is False and len(writes) == 1
    assert len(reads) == 1  # the verify; the throttled touch did no I/O at all
    assert svc.get(rec.key_id).last_used_at == first
    # a stale record (another container touched meanwhile) does not write either
    stale = r
    clock.advance(seconds=1)
    assert svc.touch(svc.verify(token)) is True and len(writes) == 2
    assert svc.touch(stale) is False and len(writes) == 2
    clock.advance(seconds=61)
    assert svc.touch(svc.verify(token)) is True and len(writes) == 3
    assert svc.get(rec.key_id).last_used_at == clock()
    # touching never un-revokes, nor writes to a revoked key
    r = svc.verify(token)
    svc.revoke(rec.key_id)
    clock.advance(minutes=5)
    n = len(writes)
    assert svc.touch(r) is False and len(writes) == n
    assert reason(svc, token) == "revoked"


def test_touch_loses_quietly_to_a_concurrent_write(svc: KeyService, meta, clock: Clock, monkeypatch) -> None:
    token, rec = svc.create("acme", ["read"], "dash")
    r = svc.verify(token)
    real_get = meta.get

    def get_then_revoke(pk, sk, **kw):
        item = real_get(pk, sk, **kw)
        monkeypatch.setattr(meta, "get", real_get)
        KeyService(meta, clock=clock).revoke(sk)  # between touch's read and its conditional write
        return item

    monkeypatch.setattr(meta, "get", get_then_revoke)
    assert svc.touch(r) is False
    assert reason(svc, token) == "revoked"  # the touch did not overwrite the revocation


# --- constant-time comparison ------------------------------------------------------------------
def test_compare_digest_is_used_on_every_path(svc: KeyService, monkeypatch, clock: Clock) -> None:
    token, rec = svc.create("acme", ["read"], "dash", timedelta(minutes=5))
    mode, key_id, secret = parse_token(token)
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    svc.verify(token)
    assert len(calls) == 1
    presented = hashlib.sha256(secret.encode()).hexdigest().encode()
    assert calls[0] == (presented, presented)

    calls.clear()
    reason(svc, f"stm_{mode}_{'d' * 12}_{secret}")  # unknown id: compared against a dummy hash
    assert len(calls) == 1 and calls[0][0] == presented and calls[0][1] != presented
    assert len(calls[0][1]) == len(presented)  # same length: compare_digest does the full work

    calls.clear()
    reason(svc, f"stm_{mode}_{key_id}_{'q' * 43}")  # wrong secret
    assert len(calls) == 1
    calls.clear()
    clock.advance(minutes=5)
    reason(svc, token)  # expired: the secret was compared first
    svc.revoke(key_id)
    reason(svc, token)
    assert len(calls) == 2


# --- permission table ---------------------------------------------------------------------------
EXPECTED = {
    "upload": {"ingest", "full"},
    "job_status": {"ingest", "read", "full"},
    "analytics": {"read", "full"},
    "sql_schema": {"read", "full"},
    "sql_run": {"full"},
    "classify": {"classify", "full"},
    "batch": {"batch", "full"},
    "read_patterns": {"read:patterns", "read", "full"},
    "manage": {"manage"},
    "admin": {"admin"},
    "monitor_read": {"read", "full", "admin"},
    "monitor_run": {"full", "admin"},
    "notifications": {"read", "full", "admin"},
    "webhooks": {"manage", "admin"},
}
ALL_SCOPES = ["ingest", "read", "classify", "batch", "read:patterns", "manage", "full", "admin"]


def test_permission_table_is_exactly_the_spec() -> None:
    assert set(SCOPES) == set(ALL_SCOPES)
    assert set(ACTIONS) == set(PERMISSIONS) == set(EXPECTED)
    assert {a: set(s) for a, s in PERMISSIONS.items()} == EXPECTED
    with pytest.raises(TypeError):
        PERMISSIONS["sql_run"] = frozenset({"read"})  # type: ignore[index]


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_permission_row(action: str, scope: str) -> None:
    want = scope in EXPECTED[action]
    assert allows([scope], action) is want
    assert allows(scope, action) is want  # a lone string is one scope, not its letters
    if want:
        require([scope], action)
    else:
        with pytest.raises(PermissionDenied) as ei:
            require([scope], action)
        assert ei.value.status == 403


def test_permission_edge_cases() -> None:
    assert not allows([], "analytics")
    assert not allows(["superuser", "READ", "*"], "analytics")
    assert allows(["ingest", "read"], "analytics") and allows(["ingest", "read"], "upload")
    assert not allows(["admin"], "sql_run") and not allows(["full"], "admin")
    with pytest.raises(ValueError):
        allows(["full"], "delete_everything")


def test_touch_is_best_effort(svc: KeyService, meta, monkeypatch, caplog) -> None:
    token, rec = svc.create("acme", ["read"], "dash")
    r = svc.verify(token)

    def broken(*a, **kw):
        raise OSError("table throttled")

    monkeypatch.setattr(meta, "put", broken)
    assert svc.touch(r) is False  # does not raise into the request
    assert "could not record last use" in caplog.text and rec.key_id in caplog.text


def test_every_action_has_a_403_wording() -> None:
    from stratum.auth.scopes import DOES

    assert set(DOES) == set(ACTIONS), f"add the 403 wording of {sorted(set(ACTIONS) - set(DOES))} to DOES"
