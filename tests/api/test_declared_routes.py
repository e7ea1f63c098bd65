"""stratum.api._fastapi: FastAPI's analysis of a route (signature, dependencies, body and response fields,
request handler) runs when the route is first used, once per app; the routes behave as FastAPI's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from stratum.api._fastapi import DeclaredRoute
from stratum.api.app import create_app
from stratum.api.routes import lots
from stratum.api.security import Principal
from stratum.settings import settings_for


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(settings=settings_for(tmp_path, backend="local"))
    yield app
    app.state.runtime.close()


def _declared(app: FastAPI) -> list[DeclaredRoute]:
    return [r for r in app.routes if isinstance(r, DeclaredRoute)]


def _analysed(app: FastAPI) -> list[tuple[str, list[str]]]:
    return [(r.path, sorted(r.methods)) for r in _declared(app) if r.analysed]


def test_a_request_analyses_only_the_route_that_answers_it(app: FastAPI) -> None:
    routes = _declared(app)
    assert [r.path for r in app.routes if r not in routes] == ["/openapi.json"]  # FastAPI's own
    assert _analysed(app) == []
    token, _ = app.state.keys.create("default", ["full"], "declared")
    c = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    r = c.get("/v1/lots")
    assert (r.status_code, r.json()) == (200, {"items": [], "next_cursor": None})
    assert _analysed(app) == [("/v1/lots", ["GET"])]
    assert c.delete("/v1/lots").status_code == 405  # matching and the method check need no analysis
    assert c.get("/v1/no-such-route").status_code == 404
    assert c.get("/v1/lots?limit=0").status_code == 400  # the analysed route still validates
    assert _analysed(app) == [("/v1/lots", ["GET"])]
    app.openapi()
    assert all(r.analysed for r in routes)


def test_each_app_analyses_its_own_routes(app: FastAPI, tmp_path: Path) -> None:
    other = create_app(settings=settings_for(tmp_path / "other", backend="local"))
    try:
        other.openapi()
        assert _analysed(app) == []
        assert all(not r.analysed for r in lots.router.routes if isinstance(r, DeclaredRoute))  # declarations only
    finally:
        other.state.runtime.close()


def test_the_apps_dependency_overrides_apply(app: FastAPI) -> None:
    """Routes are added to the app as routes declared on it, so ``app.dependency_overrides`` reaches them."""
    app.dependency_overrides[lots.ANALYTICS] = lambda: Principal("default", "key_override", frozenset({"full"}))
    r = TestClient(app).get("/v1/lots")  # no key: the override answers for the key check
    assert (r.status_code, r.json()) == (200, {"items": [], "next_cursor": None})


def _item(n: int) -> dict[str, int]:
    return {"n": n}


def test_concurrent_first_uses_analyse_once(monkeypatch: pytest.MonkeyPatch) -> None:
    analyses: list[int] = []
    analyse = APIRoute.__init__

    def slow(self: APIRoute, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        analyses.append(1)
        time.sleep(0.05)  # long enough for every thread to ask while the analysis runs
        analyse(self, *args, **kwargs)

    monkeypatch.setattr(APIRoute, "__init__", slow)
    route = DeclaredRoute("/items/{n}", _item, methods=["GET"])
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(route.dependant)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(analyses) == 1
    assert len(got) == 8 and all(d is got[0] for d in got)
    assert [p.name for p in route.dependant.path_params] == ["n"]


def test_a_bad_declaration_fails_on_every_use() -> None:
    """What FastAPI refuses when a route is declared is refused when the route is first used, and again on
    later uses (the route stays unanalysed rather than half-built)."""
    route = DeclaredRoute("/gone", _item, methods=["DELETE"], status_code=204, response_model=dict)
    for _ in range(2):
        with pytest.raises(AssertionError, match="Status code 204 must not have a response body"):
            route.dependant  # noqa: B018
    assert not route.analysed
