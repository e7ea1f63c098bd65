"""``/docs`` and ``/redoc`` work with no network: their pages reference only this server's assets, which
it serves."""

from __future__ import annotations

import re


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*[=:]\s*['"]([^'"]+)['"]""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]""", html
    )


def test_docs_and_redoc_reference_only_local_assets(make_app) -> None:
    _, client, _ = make_app()
    seen = set()
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = _asset_urls(r.text)
        assert urls, page
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            seen.add(url)
        assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text, page
    assert seen == {
        "/openapi.json",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/redoc.standalone.js",
        "/docs/assets/favicon.png",
    }
    for url in seen - {"/openapi.json"}:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 1000, url
    assert client.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs/assets/../app.py").status_code == 404
    assert client.get("/docs/assets/core.py").status_code == 404
