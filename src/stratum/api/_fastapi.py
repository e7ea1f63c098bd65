"""FastAPI start-up cost we can avoid without changing behaviour.

FastAPI rejects pydantic.v1 models: for every annotation of every route (and every unknown object it
encodes) it runs ``from pydantic import v1`` and an ``issubclass`` check. The import costs ~0.1 s of a
cold start and we define no v1 models. A class can only be a pydantic.v1 model once ``pydantic.v1`` has
been imported, so the checks below ask ``sys.modules`` first and defer to FastAPI's own check otherwise:
the same answers, without the import.
"""

from __future__ import annotations

import sys
from typing import Any

_V1 = "pydantic.v1"


def install() -> None:
    """Idempotent. A FastAPI release without these functions is left as it is (a test notices the import)."""
    from fastapi import encoders
    from fastapi._compat import shared

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
