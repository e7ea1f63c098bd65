"""``stratum keys`` end to end on a temporary data directory (local backend, SQLite)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stratum.auth.keys import AuthError, KeyService, parse_token
from stratum.cli import main
from stratum.settings import get_settings
from stratum.storage.sqlite import SqliteMetadataStore

TOKEN_RE = re.compile(r"stm_(?:live|test)_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch):
    """The local backend whatever the developer's environment says (settings are cached per process)."""
    monkeypatch.setenv("STRATUM_BACKEND", "local")
    monkeypatch.setenv("STRATUM_ENVIRONMENT", "dev")
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def service(data_dir: Path) -> KeyService:
    return KeyService(SqliteMetadataStore(data_dir / "stratum.db"))


def test_create_list_revoke_rotate(capsys, data_dir: Path) -> None:
    d = str(data_dir)
    rc, out, err = run(
        capsys,
        "keys",
        "create",
        "--data-dir",
        d,
        "--workspace",
        "fab7",
        "--scope",
        "read",
        "--scope",
        "full",
        "--name",
        "dashboard",
        "--expires",
        "90d",
    )
    assert rc == 0, err
    tokens = TOKEN_RE.findall(out)
    assert len(tokens) == 1
    token = tokens[0]
    assert "will not be shown again" in out
    key_id = parse_token(token)[1]
    assert key_id in out and "fab7" in out and "read, full" in out

    svc = service(data_dir)
    rec = svc.verify(token)
    assert (rec.workspace, rec.scopes, rec.name) == ("fab7", ("read", "full"), "dashboard")
    assert rec.expires_at is not None and (rec.expires_at - rec.created_at).days == 90
    assert svc.meta.get("WS", "fab7") is not None  # the workspace was created

    # --json
    rc, out, err = run(
        capsys,
        "keys",
        "create",
        "--data-dir",
        d,
        "--workspace",
        "fab7",
        "--scope",
        "ingest",
        "--name",
        "tester 12",
        "--json",
    )
    assert rc == 0, err
    obj = json.loads(out)
    assert {"token", "key_id", "workspace", "scopes", "name", "expires_at"} <= set(obj)
    assert obj["workspace"] == "fab7" and obj["scopes"] == ["ingest"] and obj["name"] == "tester 12"
    assert obj["expires_at"] is None and obj["status"] == "active" and "secret_hash" not in obj
    assert parse_token(obj["token"])[1] == obj["key_id"]
    assert "will not be shown again" in err  # the warning stays off stdout in JSON mode
    token2 = obj["token"]
    assert svc.verify(token2).key_id == obj["key_id"]

    # list: human and JSON, never the token nor the hash
    hashes = [svc.meta.get("KEY", k).data["secret_hash"] for k in (key_id, obj["key_id"])]
    secrets_ = [parse_token(t)[2] for t in (token, token2)]
    rc, out, _ = run(capsys, "keys", "list", "--data-dir", d)
    assert rc == 0 and key_id in out and obj["key_id"] in out and "dashboard" in out
    rc, jout, _ = run(capsys, "keys", "list", "--data-dir", d, "--workspace", "fab7", "--json")
    rows = json.loads(jout)
    assert sorted(r["key_id"] for r in rows) == sorted([key_id, obj["key_id"]])
    assert all(r["status"] == "active" and "token" not in r and "secret_hash" not in r for r in rows)
    for text in (out, jout):
        for s in (token, token2, *hashes, *secrets_):
            assert s not in text
        assert not TOKEN_RE.search(text)
    rc, out, _ = run(capsys, "keys", "list", "--data-dir", d, "--workspace", "other")
    assert rc == 0 and "no API keys" in out

    # revoke: takes effect at once
    rc, out, err = run(capsys, "keys", "revoke", "--data-dir", d, key_id)
    assert rc == 0, err
    assert "revoked" in out and key_id in out
    with pytest.raises(AuthError) as ei:
        svc.verify(token)
    assert ei.value.reason == "revoked"
    rc, jout, _ = run(capsys, "keys", "list", "--data-dir", d, "--json")
    assert {r["key_id"]: r["status"] for r in json.loads(jout)}[key_id] == "revoked"

    # rotate --json: new token, old one revoked
    rc, out, err = run(capsys, "keys", "rotate", "--data-dir", d, obj["key_id"], "--json")
    assert rc == 0, err
    rot = json.loads(out)
    assert rot["rotated_from"] == obj["key_id"] and rot["key_id"] != obj["key_id"]
    assert (rot["workspace"], rot["scopes"], rot["name"]) == ("fab7", ["ingest"], "tester 12")
    assert svc.verify(rot["token"]).key_id == rot["key_id"]
    with pytest.raises(AuthError):
        svc.verify(token2)

    # rotate, human output: the new token once, with the warning
    rc, out, err = run(capsys, "keys", "rotate", "--data-dir", d, rot["key_id"])
    assert rc == 0, err
    assert len(TOKEN_RE.findall(out)) == 1 and "will not be shown again" in out and rot["key_id"] in out
    svc.meta.close()


def test_errors(capsys, data_dir: Path) -> None:
    d = str(data_dir)
    rc, _, err = run(capsys, "keys", "revoke", "--data-dir", d, "aaaaaaaaaaaa")
    assert rc == 1 and "not found" in err
    rc, _, err = run(capsys, "keys", "rotate", "--data-dir", d, "nope")
    assert rc == 1 and "not found" in err
    rc, out, err = run(
        capsys, "keys", "create", "--data-dir", d, "--workspace", "Bad Name", "--scope", "read", "--name", "x"
    )
    assert rc == 1 and "invalid workspace" in err and not TOKEN_RE.search(out)
    rc, out, err = run(
        capsys,
        "keys",
        "create",
        "--data-dir",
        d,
        "--workspace",
        "w",
        "--scope",
        "read",
        "--name",
        "x",
        "--expires",
        "soon",
    )
    assert rc == 1 and "invalid expiry" in err and not TOKEN_RE.search(out)
    with pytest.raises(SystemExit) as ei:  # argparse: unknown scope
        main(["keys", "create", "--data-dir", d, "--workspace", "w", "--scope", "root", "--name", "x"])
    assert ei.value.code == 2
    with pytest.raises(SystemExit) as ei:  # a scope is required
        main(["keys", "create", "--data-dir", d, "--workspace", "w", "--name", "x"])
    assert ei.value.code == 2
    capsys.readouterr()
    rc, out, _ = run(capsys, "keys", "list", "--data-dir", d, "--json")
    assert rc == 0 and json.loads(out) == []  # nothing was created by the failed commands


def test_production_environment_issues_live_keys(capsys, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("STRATUM_ENVIRONMENT", "production")
    get_settings.cache_clear()
    rc, out, err = run(
        capsys,
        "keys",
        "create",
        "--data-dir",
        str(data_dir),
        "--workspace",
        "w",
        "--scope",
        "admin",
        "--name",
        "ops",
        "--json",
    )
    assert rc == 0, err
    assert json.loads(out)["token"].startswith("stm_live_")


@pytest.mark.aws
def test_keys_on_dynamodb(capsys, tmp_path: Path, monkeypatch, moto_server: str, dynamo_table: str) -> None:
    """backend=aws: the same commands on the DynamoDB metadata table (no bucket settings needed)."""
    for k, v in {
        "STRATUM_BACKEND": "aws",
        "STRATUM_ENVIRONMENT": "production",
        "STRATUM_AWS__REGION": "us-east-1",
        "STRATUM_AWS__METADATA_TABLE": dynamo_table,
        "STRATUM_AWS__ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        d = str(tmp_path / "unused")
        rc, out, err = run(
            capsys,
            "keys",
            "create",
            "--data-dir",
            d,
            "--workspace",
            "fab9",
            "--scope",
            "read",
            "--name",
            "grafana",
            "--expires",
            "12h",
            "--json",
        )
        assert rc == 0, err
        obj = json.loads(out)
        assert obj["token"].startswith("stm_live_") and obj["workspace"] == "fab9"
        rc, out, _ = run(capsys, "keys", "list", "--data-dir", d, "--workspace", "fab9", "--json")
        assert [r["key_id"] for r in json.loads(out)] == [obj["key_id"]] and obj["token"] not in out
        rc, out, err = run(capsys, "keys", "rotate", "--data-dir", d, obj["key_id"], "--json")
        assert rc == 0, err
        new = json.loads(out)
        rc, out, err = run(capsys, "keys", "revoke", "--data-dir", d, new["key_id"])
        assert rc == 0, err
        from tests.fixtures.aws import make_dynamo_store

        svc = KeyService(make_dynamo_store(moto_server, dynamo_table))
        for t in (obj["token"], new["token"]):
            with pytest.raises(AuthError) as ei:
                svc.verify(t)
            assert ei.value.reason == "revoked"
        assert svc.meta.get("WS", "fab9") is not None
        assert not (tmp_path / "unused").exists()  # nothing local was touched
    finally:
        get_settings.cache_clear()


def test_create_with_tier_limits_and_quota(capsys, data_dir: Path) -> None:
    d = str(data_dir)
    rc, out, _ = run(
        capsys,
        "keys",
        "create",
        "--data-dir",
        d,
        "--workspace",
        "acme",
        "--scope",
        "classify",
        "--name",
        "p1",
        "--tier",
        "pilot",
        "--limit",
        "analytics=600/min",
        "--limit",
        "classify=2/s",
        "--quota",
        "classifications=2000/month",
        "--json",
    )
    assert rc == 0
    obj = json.loads(out)
    assert (obj["tier"], obj["rate_limits"], obj["quotas"]) == (
        "pilot",
        {"analytics": 600.0, "classify": 120.0},
        {"classifications": 2000},
    )
    rec = service(data_dir).list("acme")[0]
    assert rec.limits.rate_per_min("classify") == 120.0 and rec.limits.rate_per_min("sql") is None
    assert rec.limits.batch_max(100) == 10 and rec.limits.quota("classifications") == 2000
    for bad, msg in (
        (["--tier", "gold"], "invalid choice: 'gold'"),
        (["--limit", "analytics=600"], "bad --limit 'analytics=600'"),
        (["--quota", "maps=3/month"], "unknown quota 'maps'"),
    ):
        with pytest.raises(SystemExit) if bad[0] == "--tier" else _nothing():
            rc, _, err = run(
                capsys,
                "keys",
                "create",
                "--data-dir",
                d,
                "--workspace",
                "acme",
                "--scope",
                "classify",
                "--name",
                "bad",
                *bad,
            )
            assert rc == 1 and msg in err
        if bad[0] == "--tier":
            assert msg in capsys.readouterr().err
    assert len(service(data_dir).list("acme")) == 1  # nothing created by a bad command


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_tier_flags_as_a_subprocess(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "STRATUM_BACKEND": "local", "STRATUM_ENVIRONMENT": "dev"}
    base = [
        sys.executable,
        "-m",
        "stratum.cli",
        "keys",
        "create",
        "--data-dir",
        str(tmp_path),
        "--workspace",
        "w",
        "--scope",
        "batch",
        "--name",
        "n",
    ]
    ok = subprocess.run(
        [*base, "--tier", "production", "--quota", "classifications=7/month", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["quotas"] == {"classifications": 7}
    bad = subprocess.run([*base, "--limit", "bogus=1/min"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert "unknown bucket 'bogus'" in bad.stderr
