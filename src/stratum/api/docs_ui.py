"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their JavaScript/CSS served by this app, so both
work with no network: the assets come from the ``fastapi-offline`` package's static folder (only its files
are used, not its app class)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from ._fastapi import DeclaredRoute

router = APIRouter(include_in_schema=False, route_class=DeclaredRoute)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
PREFIX = "/docs/assets/"


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    r = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{r}/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{r}{PREFIX}swagger-ui-bundle.js",
        swagger_css_url=f"{r}{PREFIX}swagger-ui.css",
        swagger_favicon_url=f"{r}{PREFIX}favicon.png",
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_redoc_html

    r = _root(request)
    return get_redoc_html(
        openapi_url=f"{r}/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{r}{PREFIX}redoc.standalone.js",
        redoc_favicon_url=f"{r}{PREFIX}favicon.png",
        with_google_fonts=False,
    )


@router.get(PREFIX + "{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no documentation asset {name!r}")
    from importlib.resources import files

    path = files("fastapi_offline").joinpath("static", name)
    return FileResponse(str(path), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
