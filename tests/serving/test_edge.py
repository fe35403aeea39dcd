"""The pieces of the service skeleton that need no server: error shape, JSON bounds, .npy header, batching."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest
from bentoml.exceptions import BadInput

from serving.asgi import ErrorShape, error_message
from serving.batching import MicroBatcher
from serving.common import Budget, read_npy
from serving.edge import loads


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'[{"error": "level must be positive"}]', "level must be positive"),  # BentoML's BadInput list
        (429, json.dumps(json.dumps({"error": "Too many requests"})).encode(), "Too many requests"),  # double-encoded
        (400, b'{"error": "1 validation error", "detail": []}', "1 validation error"),
        (503, b'{"error": "An unexpected error has occurred, please check the server log."}', "overloaded"),
        (404, b"Not Found", "no such endpoint"),
        (413, b"", "Too Large"),
    ],
)
def test_error_message_reduces_every_shape(status: int, body: bytes, message: str) -> None:
    assert message in error_message(status, body)


def test_error_shape_rewrites_only_errors() -> None:
    async def app(scope, receive, send) -> None:
        status = 200 if scope["path"] == "/ok" else 404
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Not", "more_body": True})
        await send({"type": "http.response.body", "body": b" Found"})

    def call(path: str) -> tuple[int, dict, bytes]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        asyncio.run(ErrorShape(app)({"type": "http", "path": path, "method": "GET"}, None, send))
        return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])

    status, headers, body = call("/ok")
    assert status == 200 and body == b"Not Found"
    status, headers, body = call("/nope")
    assert status == 404 and headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": "no such endpoint; the endpoints are listed at /docs"}
    assert int(headers[b"content-length"]) == len(body)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"x": ' + "9" * 5000 + "}", "digits"),
        ('{"x": 1e400}', "out of the floating-point range"),
        ('{"x": NaN}', "not a JSON number"),
        ('{"x": ', "not valid JSON"),
    ],
)
def test_json_bounds(text: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        loads(text.encode())


def test_json_within_bounds() -> None:
    assert loads(b'{"x": [1, 2.5, -123456789012345678]}') == {"x": [1, 2.5, -123456789012345678]}


def _npy_with_header(shape: tuple[int, ...], payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def test_npy_header_is_checked_before_allocation(tmp_path) -> None:
    huge = tmp_path / "huge.npy"
    huge.write_bytes(_npy_with_header((10**6, 10**6)))  # 8 TB declared, 128 bytes sent
    with pytest.raises(ValueError, match="at most 1000 are accepted"):
        read_npy(huge, 1 << 20, 1000, "kspace")
    short = tmp_path / "short.npy"
    short.write_bytes(_npy_with_header((10, 10), b"\0" * 80))
    with pytest.raises(ValueError, match="truncated"):
        read_npy(short, 1 << 20, 1000, "kspace")
    ok = tmp_path / "ok.npy"
    np.save(ok, np.arange(6.0).reshape(2, 3))
    assert read_npy(ok, 1 << 20, 1000, "kspace").shape == (2, 3)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="numbers"):
        read_npy(obj, 1 << 20, 1000, "kspace")


def test_budget() -> None:
    budget = Budget(0.05)
    assert not budget()
    time.sleep(0.06)
    assert budget()
    with pytest.raises(TimeoutError):
        budget.check()


def test_micro_batcher_joins_concurrent_calls_and_splits_results() -> None:
    calls: list[int] = []

    def double(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        time.sleep(0.02)
        return x * 2

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(double, max_batch=8)
        return await asyncio.gather(*(batcher(np.full((3, 2), i, float)) for i in range(6)))

    outs = asyncio.run(main())
    assert all(np.array_equal(o, np.full((3, 2), 2 * i)) for i, o in enumerate(outs))
    assert sum(calls) == 18 and max(calls) <= 8 and len(calls) < 6  # batched, never over max_batch


def test_micro_batcher_hands_errors_to_every_caller() -> None:
    def fail(x: np.ndarray) -> np.ndarray:
        raise ValueError("bad batch")

    async def main() -> list:
        batcher = MicroBatcher(fail, max_batch=8)
        return await asyncio.gather(*(batcher(np.zeros((1, 1))) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, ValueError) for r in asyncio.run(main()))
