"""The HTTP API (FastAPI): one app for uvicorn locally and Mangum on Lambda."""

from stratum.coldstart import loading

with loading():  # FastAPI, Starlette and pydantic load without GC passes (stratum.coldstart)
    from ._fastapi import install as _install_fastapi_compat

    _install_fastapi_compat()  # before any route is declared
