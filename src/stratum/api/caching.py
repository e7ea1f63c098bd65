"""HTTP caching at the edge of the app (pure ASGI, no service calls).

- Every GET route answers HEAD: the request runs as GET and the body is dropped (headers, including
  ``content-length``, are the GET's).
- A successful GET/HEAD that pins a snapshot (``snapshot_job_id`` in the query) reads immutable data: the
  response carries an ``ETag`` and ``Cache-Control: private, max-age=31536000,
  immutable``, and a request whose ``If-None-Match`` names that ETag gets ``304 Not Modified`` (after
  authentication and the route ran: a 304 never answers a request that would not get the 200).
  The ETag hashes the request (path and sorted query, so the snapshot and every parameter) with the API
  version, not the body: aggregates summed on several threads may differ in their last bits between runs.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode

from stratum import __version__

IMMUTABLE = "private, max-age=31536000, immutable"


def _query(scope) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _pinned(scope) -> bool:
    return any(k == "snapshot_job_id" and v for k, v in _query(scope))


def _etag(scope) -> str:
    key = f"{__version__}\n{scope.get('root_path', '')}{scope['path']}?{urlencode(sorted(_query(scope)))}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class CachingMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        if not _pinned(scope):
            if not head:
                await self.app(scope, receive, send)
                return

            async def send_headers_only(message) -> None:
                if message["type"] == "http.response.body":
                    if not message.get("more_body", False):
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                await send(message)

            await self.app(scope, receive, send_headers_only)
            return

        start: dict = {}
        chunks: list[bytes] = []

        async def buffer(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            else:
                await send(message)

        await self.app(scope, receive, buffer)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"etag", b"cache-control")]
        status = start.get("status", 500)
        if status == 200:
            etag = _etag(scope)
            headers += [(b"etag", etag.encode()), (b"cache-control", IMMUTABLE.encode())]
            req = {k.lower(): v for k, v in scope.get("headers", [])}
            inm = req.get(b"if-none-match", b"").decode("latin-1")
            if inm and _matches(inm, etag):
                status, body = 304, b""
                headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})
