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
"""

from __future__ import annotations

import sys
from typing import Any

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
