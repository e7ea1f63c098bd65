"""A bound on the request body of some routes, checked while the body is read (a declared Content-Length
past the bound is refused before anything is read; a chunked body is counted as it arrives)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException


class BodyLimit:
    """ASGI middleware: requests to ``paths`` whose body exceeds ``limit()`` bytes fail while the route reads
    the body, with an HTTP 413 (FastAPI passes HTTPExceptions through its body parsing; any other exception
    there becomes a 400), which the app's problem handler answers as 413 problem+json."""

    def __init__(self, app, paths: tuple[str, ...], limit: Callable[[], int]) -> None:
        self.app = app
        self.paths = paths
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(self.paths):
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        seen = 0

        def too_large(n: int) -> HTTPException:
            return HTTPException(413, f"the request body has {n} bytes; at most {limit} on {scope['path']}")

        async def counted():
            nonlocal seen
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise too_large(int(declared))
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise too_large(seen)
            return msg

        await self.app(scope, counted, send)
