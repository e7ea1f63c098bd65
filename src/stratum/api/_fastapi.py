"""FastAPI start-up cost we can avoid without changing behaviour.

FastAPI rejects pydantic.v1 models: for every annotation of every route (and every unknown object it
encodes) it runs ``from pydantic import v1`` and an ``issubclass`` check. The import costs ~0.1 s of a
cold start and we define no v1 models. A class can only be a pydantic.v1 model once ``pydantic.v1`` has
been imported, so the checks below ask ``sys.modules`` first and defer to FastAPI's own check otherwise:
the same answers, without the import.

FastAPI also builds a pydantic ``TypeAdapter`` (a core schema and validator) for every parameter and response
model of every route when the route is declared: ~230 of them for our ~70 routes, a fifth of the API's
import. :func:`install` makes each field build its adapter on first use instead (validating a request of
that route, or the OpenAPI document), with FastAPI's own code: a cold start pays only for the routes it
serves. A field whose type pydantic cannot handle then fails when it is first used rather than when the
route is declared; the OpenAPI tests build every adapter.

Before building those fields, FastAPI analyses every route when it is declared (the endpoint's signature and
dependencies, its body and response fields, the request handler): another fifth of the import, and
``include_router`` analyses every route of an included router again, for each app, on the app's first
request. :class:`DeclaredRoute` keeps what a route is declared with and runs FastAPI's own analysis on first
use (a request it answers, or the OpenAPI document); :func:`include` adds a router's routes to an app as
FastAPI's ``add_api_route`` does, so each app's route is analysed once, when it is first used.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, compile_path, get_name

_V1 = "pydantic.v1"


class _AdapterOnFirstUse:
    """``ModelField._type_adapter``, built by FastAPI's ``__post_init__`` when first read (a non-data
    descriptor: the built adapter is stored on the instance and found there from then on)."""

    def __init__(self, build: Any) -> None:
        self.build = build

    def __get__(self, field: Any, owner: Any = None) -> Any:
        if field is None:
            return self
        self.build(field)  # sets field._type_adapter in the instance's __dict__
        return field.__dict__["_type_adapter"]


def _defer_field_adapters() -> None:
    from fastapi._compat import v2

    field = getattr(v2, "ModelField", None)
    post_init = getattr(field, "__post_init__", None)
    if field is None or post_init is None or isinstance(field.__dict__.get("_type_adapter"), _AdapterOnFirstUse):
        return
    field._type_adapter = _AdapterOnFirstUse(post_init)
    field.__post_init__ = _no_post_init


def _no_post_init(self: Any) -> None:
    return None


_ANALYSIS = threading.RLock()
_MATCHING = ("path_regex", "path_format", "param_convertors")


class DeclaredRoute(APIRoute):
    """An ``APIRoute`` analysed by ``APIRoute.__init__`` on the first read of an attribute the analysis sets
    (``dependant``, ``app``, ``response_field``...). Matching a request needs only the path, methods and path
    pattern, which are set (or compiled) without it. An error in the declaration surfaces on first use."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        self.path = path
        self.endpoint = endpoint
        name = kwargs.get("name")
        self.name = get_name(endpoint) if name is None else name
        self.methods = {m.upper() for m in kwargs.get("methods") or ("GET",)}
        self.include_in_schema = kwargs.get("include_in_schema", True)
        self.declaration = (path, endpoint, kwargs)
        self._pending = True
        self._analysing = False

    def __getattr__(self, name: str) -> Any:  # only for attributes not set yet
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        if name in _MATCHING and "path" in d:
            d.update(zip(_MATCHING, compile_path(d["path"]), strict=True))
            return d[name]
        if d.get("_pending"):
            with _ANALYSIS:  # one thread analyses, others wait for it; re-entrant for the analysis itself
                if d["_pending"] and not d["_analysing"]:
                    path, endpoint, kwargs = d["declaration"]
                    d["_analysing"] = True
                    before = set(d)
                    try:
                        APIRoute.__init__(self, path, endpoint, **kwargs)
                        d["_pending"] = False
                    except BaseException:
                        for key in set(d) - before:  # no half-analysed route: the next use fails the same way
                            del d[key]
                        raise
                    finally:
                        d["_analysing"] = False
        return object.__getattribute__(self, name)

    @property
    def analysed(self) -> bool:
        return not self.__dict__["_pending"]


def include(app: FastAPI, router: APIRouter) -> None:
    """``app.include_router(router)`` for a router whose routes are all :class:`DeclaredRoute` and that adds
    nothing at request time (no form limits, lifespan, start-up or shutdown handlers; its prefix, tags, dependencies and
    responses are already in each route's declaration): each route is added to the app with ``add_api_route``
    (the app's defaults and dependency overrides apply, as for a route declared on the app) and analysed on
    first use. Any other router is included by FastAPI."""
    routes = [r for r in router.routes if isinstance(r, DeclaredRoute)]
    own_lifespan = type(router.lifespan_context).__name__ != "_DefaultLifespan"
    if (
        len(routes) < len(router.routes)
        or router.form_limits
        or router.on_startup
        or router.on_shutdown
        or own_lifespan
    ):
        app.include_router(router)
        return
    for route in routes:
        path, endpoint, kwargs = route.declaration
        kwargs = {k: v for k, v in kwargs.items() if k != "dependency_overrides_provider"}
        app.router.add_api_route(path, endpoint, route_class_override=type(route), **kwargs)


def install() -> None:
    """Idempotent. A FastAPI release without these functions is left as it is (a test notices the import)."""
    from fastapi import encoders
    from fastapi._compat import shared

    _defer_field_adapters()

    cls_check = getattr(shared, "is_pydantic_v1_model_class", None)
    obj_check = getattr(encoders, "is_pydantic_v1_model_instance", None)
    if cls_check is None or obj_check is None or getattr(cls_check, "__stratum__", False):
        return

    def is_pydantic_v1_model_class(cls: Any) -> bool:
        return _V1 in sys.modules and cls_check(cls)

    def is_pydantic_v1_model_instance(obj: Any) -> bool:
        return _V1 in sys.modules and obj_check(obj)

    is_pydantic_v1_model_class.__stratum__ = True  # type: ignore[attr-defined]
    shared.is_pydantic_v1_model_class = is_pydantic_v1_model_class  # annotation_is_pydantic_v1 calls this global
    encoders.is_pydantic_v1_model_instance = is_pydantic_v1_model_instance
