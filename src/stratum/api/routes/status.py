"""GET /v1/status: health and versions (no key needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from stratum import PARSER_VERSION, __version__
from stratum.lake.schema import SCHEMA_VERSION

from .._fastapi import DeclaredRoute
from ..schemas import Status

router = APIRouter(tags=["status"], route_class=DeclaredRoute)


@router.get("/v1/status", response_model=Status, summary="Health and versions")
def status(request: Request) -> Status:
    """Whether the server and its metadata store answer, with the versions of the server, STDF parser, lake
    schema and DuckDB and the adapters in use. Needs no API key; use it for health checks."""
    import duckdb  # only for its version: not on the import path of the app

    rt = request.app.state.runtime
    ok = rt.catalog.reachable()
    return Status(
        status="ok" if ok else "degraded",
        version=__version__,
        parser_version=PARSER_VERSION,
        schema_version=SCHEMA_VERSION,
        backend=rt.settings.backend,
        duckdb=duckdb.__version__,
        metadata_store="ok" if ok else "unavailable",
        time=datetime.now(UTC).isoformat(),
    )
