"""Cold start: loading the API (or a Lambda's init phase) without the cyclic garbage collector's passes.

Importing FastAPI, pydantic, the route modules and then numpy and DuckDB allocates a few hundred thousand
objects that live as long as the process. The collector keeps scanning them while they are being created
(on CPython 3.11 about 150 young and one full collection for ``import stratum.api.app``, 40-100 ms of a cold
start) and finds almost nothing to free. :func:`loading` pauses it for such a block and then moves
everything that exists to the permanent generation (``gc.freeze``), so later collections skip these objects
too. Reference counting still frees every object that becomes unreferenced; only garbage *cycles* among
the frozen objects would stay in memory (a handful, from the imports).

:func:`models_built_on_first_use` makes the pydantic models that libraries define while it is open (FastAPI's
~40 OpenAPI document models, a sixth of ``import fastapi``) build their validators and serializers on first
use, as ``ConfigDict(defer_build=True)`` would: a process that never writes an OpenAPI document never builds
them.

:func:`pydantic_plugins_off` spares a process that has switched pydantic's plugins off (``PYDANTIC_DISABLE_PLUGINS``,
which ``stratum ingest`` sets unless the user did) pydantic's plugin loader: importing it imports
``importlib.metadata`` (with ``email``, ``zipfile``, ``csv``), ~15 ms of the first model build, only to answer
"no plugins".
"""

from __future__ import annotations

import gc
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

# the values of PYDANTIC_DISABLE_PLUGINS with which pydantic's get_plugins() answers "none" without looking
PLUGINS_OFF = ("__all__", "1", "true")
_PLUGIN_LOADER = "pydantic.plugin._loader"


@contextmanager
def loading() -> Iterator[None]:
    """Pause the cyclic GC for the block, then freeze what was loaded. Nested blocks and a GC already
    disabled by the caller are left alone (the outer owner decides)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@contextmanager
def models_built_on_first_use() -> Iterator[None]:
    """pydantic's ``defer_build`` default is true while the block runs (models that set it keep their own
    choice). A pydantic release without that default is left alone: its models build at import, as before."""
    try:
        from pydantic._internal._config import config_defaults
    except ImportError:  # pragma: no cover - a pydantic without the private module
        config_defaults = {}
    if config_defaults.get("defer_build", True) is not False:
        yield
        return
    config_defaults["defer_build"] = True
    try:
        yield
    finally:
        config_defaults["defer_build"] = False


def pydantic_plugins_off() -> bool:
    """With every pydantic plugin switched off in the environment (``PYDANTIC_DISABLE_PLUGINS`` one of
    ``PLUGINS_OFF``), stand in for pydantic's plugin loader before pydantic imports it: a module whose
    ``get_plugins()`` answers what the loader answers then, no plugins, without importing ``importlib.metadata``.
    Returns whether it did; the real loader, once imported, is left alone."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in PLUGINS_OFF or _PLUGIN_LOADER in sys.modules:
        return False
    loader = types.ModuleType(_PLUGIN_LOADER, "pydantic's plugin loader with every plugin switched off (stratum)")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[_PLUGIN_LOADER] = loader
    return True
