"""Cold start: loading the API (or a Lambda's init phase) without the cyclic garbage collector's passes.

Importing FastAPI, pydantic, the route modules and then numpy and DuckDB allocates a few hundred thousand
objects that live as long as the process. The collector keeps scanning them while they are being created
(on CPython 3.11 about 150 young and one full collection for ``import stratum.api.app``, 40-100 ms of a cold
start) and finds almost nothing to free. :func:`loading` pauses it for such a block and then moves
everything that exists to the permanent generation (``gc.freeze``), so later collections skip these objects
too. Reference counting still frees every object that becomes unreferenced; only garbage *cycles* among
the frozen objects would stay in memory (a handful, from the imports).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
