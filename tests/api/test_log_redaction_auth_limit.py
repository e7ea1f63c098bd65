"""Keys never logged (URL paths, uvicorn access lines, exceptions); failed authentications limited per address."""

from __future__ import annotations

import logging

from .conftest import strict_json

LEAK = "stm_live_abcdefghijkl_" + "S" * 43


def test_key_in_the_url_path_is_redacted_in_the_access_log(make_app, caplog):
    app, client, tokens = make_app()
    caplog.set_level(logging.INFO)
    r = client.get(f"/v1/lots/{tokens['full']}", headers={"Authorization": f"Bearer {tokens['full']}"})
    assert r.status_code == 404
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1", "GET", f"/v1/{LEAK}", 404)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert tokens["full"] not in text and LEAK not in text
    assert f"GET /v1/lots/stm_{tokens['full'].split('_')[1]}_[redacted] -> 404" in text
    assert '"GET /v1/stm_live_[redacted] HTTP/1.1" 404' in text


def test_key_in_an_exception_is_redacted(make_app, caplog):
    make_app()  # installs the redaction
    caplog.set_level(logging.INFO)
    try:
        raise ValueError(f"bad token {LEAK}")
    except ValueError:
        logging.getLogger("stratum.test").exception("failed with %s", LEAK)
    [rec] = [r for r in caplog.records if r.name == "stratum.test"]
    assert rec.getMessage() == "failed with stm_live_[redacted]"
    assert "ValueError: bad token stm_live_[redacted]" in caplog.text
    assert LEAK not in caplog.text


def test_failed_authentications_are_limited_per_address(make_app):
    app, client, tokens = make_app(
        rate_limits={"auth_failures_per_window": 3, "window_seconds": 3600, "analytics_per_window": 100}
    )
    bad = {"Authorization": "Bearer stm_live_aaaaaaaaaaaa_" + "x" * 43}
    codes = [client.get("/v1/lots", headers=bad).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    r = client.get("/v1/lots", headers=bad)
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    body = strict_json(r.text)
    assert body["code"] == "rate_limited"
    assert body["detail"].startswith("too many failed authentications from this address (3 per window)")
    # requests without a key are 401 (nothing to guess), and a valid key still works
    assert client.get("/v1/lots").status_code == 401
    assert client.get("/v1/lots", headers={"Authorization": f"Bearer {tokens['full']}"}).status_code == 200
