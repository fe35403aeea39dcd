"""Plain ASGI middlewares the HTTP services add (no BentoML import here).

``ErrorShape``: every 4xx/5xx body becomes ``{"error": "<message>"}``. ``MaxBodySize``: the
request-body bound. ``DocsPage``: the Swagger UI at ``/`` and ``/docs``. ``ModelHeaders``: every
response names the model that answered (``X-Model``, ``X-Model-Version``). ``SlashAlias``: a small
app mounted at ``/<name>`` answers ``/<name>`` itself (a service's extra GET route).


BentoML 1.4 has no request-size setting (``api_server.max_request_size`` of 1.x was removed), and
Starlette spools file parts of a multipart form to disk without a limit. This middleware answers
before the body is read: 413 when ``Content-Length`` is over the bound, 411 when a request that
carries a body gives no ``Content-Length`` (chunked uploads), so an oversized upload never reaches
the disk or the model. The per-image bound is checked again after parsing (serving/images.py).
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ModelHeaders:
    """Add ``X-Model: <paper>`` and ``X-Model-Version: <registry version>`` to every HTTP response.

    ``served`` returns ``(paper, version)`` once the model is loaded (None before); a model served
    from a bare folder has version ``unregistered``. Clients and tests see which version answered,
    e.g. that a Bento serves the version baked into it whatever the registry says now.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], served: Callable[[], tuple[str, str] | None]) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and (served := self.served()) is not None:
                paper, version = served
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _MODEL_HEADERS]
                headers += [(b"x-model", paper.encode()), (b"x-model-version", version.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_MODEL_HEADERS = (b"x-model", b"x-model-version")


class DocsPage:
    """The Swagger UI page at ``/`` and ``/docs``, titled after the service, without BentoML's extras.

    BentoML 1.4's page is titled "BentoML Prediction Service", loads Google Tag Manager from the
    internet (a tracker, and a failed request on an offline machine), draws a "Powered by BentoML"
    GitHub corner and hides the title behind CSS that left only the version badges showing. This
    page uses the same bundled Swagger UI files (``/static_content/``) and BentoML's own
    initializer (which loads ``./docs.json``), nothing from outside. ``/docs`` was a 404 before.
    """

    PATHS = ("/", "/docs", "/docs/")

    def __init__(self, app: Callable[..., Awaitable[None]], title: str) -> None:
        self.app = app
        self.body = _DOCS_PAGE.replace("{title}", html.escape(title)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in self.PATHS and scope.get("method") in ("GET", "HEAD"):
            length = str(len(self.body)).encode()
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", length)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self.body})
            return
        await self.app(scope, receive, send)


_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{title}</title>
    <base href="/">
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <style>body { margin: 0; background: #fafafa; } .swagger-ui .topbar { display: none; }</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""


# What BentoML says on a 5xx it does not explain ("An unexpected error has occurred, please check the
# server log.", also on its 503 "process is overloaded"), replaced by a message per status.
GENERIC = "An unexpected error has occurred"
STATUS_MESSAGES = {
    404: "no such endpoint; the endpoints are listed at /docs",
    405: "method not allowed on this endpoint; see /docs",
    500: "internal error; the server log has the traceback",
    503: "the service is overloaded or not ready yet; retry later",
}


def error_message(status: int, body: bytes) -> str:
    """The one message of an error body, whatever shape BentoML or Starlette gave it.

    BentoML 1.4 answers its own 4xx as a JSON list ``[{"error": m}]``, a self-proxied 429 as a JSON
    string holding JSON, a validation error as ``{"error", "detail"}`` and Starlette a plain-text
    ``Not Found``; all of them reduce to the message here.
    """
    try:
        obj: Any = json.loads(body)
    except ValueError:
        obj = body.decode("utf-8", "replace").strip()
    for _ in range(4):  # unwrap double-encoded JSON and one-element lists
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
                continue
            except ValueError:
                break
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]
            continue
        break
    if isinstance(obj, dict) and "error" in obj:
        message = str(obj["error"])
    elif isinstance(obj, str):
        message = obj
    else:
        message = json.dumps(obj)
    if not message or GENERIC in message or (status in STATUS_MESSAGES and message == _phrase(status)):
        message = STATUS_MESSAGES.get(status) or _phrase(status)
    return message


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class SlashAlias:
    """``path`` (e.g. ``/targets``) reaches the ASGI app mounted there: Starlette's ``Mount`` would
    answer a 307 to ``path + "/"``. A method the mounted app does not serve gets its 405.
    ``Service.add_asgi_middleware(SlashAlias, path="/targets")``."""

    def __init__(self, app: Callable[..., Awaitable[None]], path: str) -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == self.path:
            alias = self.path + "/"
            scope = {**scope, "path": alias, "raw_path": alias.encode()}
        await self.app(scope, receive, send)


class ErrorShape:
    """Rewrite every 4xx/5xx response body to ``{"error": "<message>"}`` (application/json).

    Bodies of 2xx/3xx pass through untouched and unbuffered; error bodies are small and buffered.
    Added first, so it wraps every other middleware of the service and the endpoints (BentoML's own
    timeout (504) and concurrency (429) middlewares sit outside it and already answer this shape).
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def shaped(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.dumps({"error": error_message(start["status"], b"".join(chunks))}).encode()
            replaced = (b"content-type", b"content-length")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in replaced]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, shaped)
