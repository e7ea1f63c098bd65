"""The HTTP API (FastAPI): one app for uvicorn locally and Mangum on Lambda."""

from stratum.coldstart import loading, models_built_on_first_use

# FastAPI, Starlette and pydantic load without GC passes; FastAPI's OpenAPI models are built by the first
# OpenAPI document (stratum.coldstart)
with loading(), models_built_on_first_use():
    from ._fastapi import install as _install_fastapi_compat

    _install_fastapi_compat()  # before any route is declared
