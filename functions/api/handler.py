"""API Lambda: API Gateway (REST, proxy integration) → Mangum → the FastAPI app.

The same app ``stratum serve`` runs with uvicorn. The app and its runtime (metadata store, S3 lake,
one DuckDB database per workspace) are built once per container, on the first request; the REST API
stage prefix comes from ``STRATUM_API_ROOT_PATH`` (settings.api_root_path).
"""

from __future__ import annotations

from typing import Any

from stratum.coldstart import loading

with loading():  # the init phase's imports without GC passes (stratum.coldstart)
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from mangum import Mangum

    from stratum.api.app import create_app
    from stratum.runtime import keep_pandas_out
    from stratum.settings import get_settings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
_state: dict[str, Any] = {}


def asgi() -> Mangum:
    if "mangum" not in _state:
        settings = get_settings()
        _state["mangum"] = Mangum(
            create_app(settings=settings),
            lifespan="off",
            api_gateway_base_path=settings.api_root_path or "/",
            text_mime_types=["application/json", "application/problem+json", "image/svg+xml", "text/"],
        )
    return _state["mangum"]


def init() -> None:
    """Lambda's init phase (before the first event): build the app and warm it up (imports, DuckDB, one SQL
    worker), so the first request does not pay for them. Skipped outside Lambda and with STRATUM_WARM_UP=false."""
    settings = get_settings()
    if settings.warm_up and settings.lambda_initialization_type:
        keep_pandas_out()
        with loading():  # numpy, DuckDB and the app's services: loaded once, kept for the container's life
            asgi()
            _state["mangum"].app.state.runtime.warm_up()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: Any) -> dict:
    return asgi()(event, context)


init()
