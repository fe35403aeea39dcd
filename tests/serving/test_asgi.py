"""ASGI middlewares: the body bound answers before the body is read (413, 411); /docs aliases /; SlashAlias."""

from __future__ import annotations

import asyncio

import pytest

from serving.asgi import DocsPage, MaxBodySize, SlashAlias


async def _echo(scope, receive, send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(method: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/denoise", "headers": headers}
    asyncio.run(MaxBodySize(_echo, max_bytes=100)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_within_bound_passes_through() -> None:
    assert call("POST", [(b"content-length", b"10")], b"x" * 10) == (200, b"10")


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ([(b"content-length", b"101")], 413, b"limit is 100 bytes"),
        ([(b"transfer-encoding", b"chunked")], 411, b"Content-Length"),
        ([(b"content-length", b"lots")], 400, b"Content-Length"),
    ],
)
def test_refused(headers, status: int, fragment: bytes) -> None:
    code, body = call("POST", headers)
    assert code == status and fragment in body


def test_get_is_not_bounded() -> None:
    assert call("GET", [])[0] == 200


def test_docs_page_answers_only_get_of_the_ui_paths() -> None:
    seen: list[str] = []
    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["path"])

    async def send(message) -> None:
        sent.append(message)

    page = DocsPage(app, title="My <service>")
    for method, path in [("GET", "/docs"), ("GET", "/"), ("GET", "/docs.json"), ("POST", "/docs"), ("GET", "/denoise")]:
        asyncio.run(page({"type": "http", "method": method, "path": path, "headers": []}, None, send))
    assert seen == ["/docs.json", "/docs", "/denoise"]  # the rest reach the service
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) == 2 and all(b"<title>My &lt;service&gt;</title>" in b for b in bodies)
    assert all(b"googletagmanager" not in b and b"github.com" not in b for b in bodies)  # nothing from outside


def test_slash_alias_reaches_the_app_mounted_at_its_path() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    async def hello(request) -> JSONResponse:
        return JSONResponse({"path": request.url.path})

    inner = Starlette(routes=[Route("/", hello, methods=["GET"])])
    app = Starlette(routes=[Mount("/targets", app=inner)])
    plain = TestClient(app)
    assert plain.get("/targets", follow_redirects=False).status_code == 307  # what the alias is for
    client = TestClient(SlashAlias(app, path="/targets"))
    r = client.get("/targets", follow_redirects=False)
    assert r.status_code == 200 and r.json() == {"path": "/targets/"}
    assert client.post("/targets").status_code == 405  # the mounted app's answer to other methods
    assert client.get("/targetsx").status_code == 404  # only the exact path is rewritten
