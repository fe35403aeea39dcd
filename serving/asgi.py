"""Plain ASGI middlewares the HTTP services add (no BentoML import here).

``MaxBodySize``: the request-body bound. ``DocsAlias``: ``/docs`` serves the Swagger UI.


BentoML 1.4 has no request-size setting (``api_server.max_request_size`` of 1.x was removed), and
Starlette spools file parts of a multipart form to disk without a limit. This middleware answers
before the body is read: 413 when ``Content-Length`` is over the bound, 411 when a request that
carries a body gives no ``Content-Length`` (chunked uploads), so an oversized upload never reaches
the disk or the model. The per-image bound is checked again after parsing (serving/images.py).
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class MaxBodySize:
    """Refuse HTTP requests whose body is (or may be) larger than ``max_bytes``."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length = headers.get(b"content-length")
        if length is None:
            if b"transfer-encoding" in headers:
                await _refuse(send, 411, "send the request with a Content-Length header (chunked uploads are refused)")
                return
        else:
            try:
                size = int(length)
            except ValueError:
                await _refuse(send, 400, f"bad Content-Length header {length.decode(errors='replace')!r}")
                return
            if size > self.max_bytes:
                await _refuse(send, 413, f"the request body is {size} bytes; the limit is {self.max_bytes} bytes")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


class DocsAlias:
    """Serve BentoML's Swagger UI (at ``/``) under ``/docs`` too, the address users expect.

    BentoML 1.4 serves the UI at ``/`` and the OpenAPI spec at ``/docs.json``; ``/docs`` was a 404.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/docs" and scope.get("method") in ("GET", "HEAD"):
            scope = {**scope, "path": "/", "raw_path": b"/"}
        await self.app(scope, receive, send)
