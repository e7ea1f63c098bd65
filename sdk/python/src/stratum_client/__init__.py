"""Python client for the Stratum API.

from stratum_client import Client
client = Client(api_key="stm_live_...", base_url="https://api.example.com")
job = client.upload("lot1.stdf", wait=True)
client.sql("SELECT wafer_id, yield FROM wafers").to_pandas()
"""

__version__ = "0.1.0"

from . import models  # noqa: E402
from .client import AsyncClient, Client  # noqa: E402
from .errors import (  # noqa: E402
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobFailed,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StratumError,
    UnprocessableError,
    WaitTimeout,
)
from .results import Export, SqlResult, WaferMap  # noqa: E402

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Export",
    "JobFailed",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SqlResult",
    "StratumError",
    "UnprocessableError",
    "WaferMap",
    "WaitTimeout",
    "models",
]
