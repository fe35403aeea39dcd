"""Upload decoding and encoding: every bad upload is an ImageError with a message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.images import MAX_SIDE, MAX_UPLOAD_BYTES, ImageError, decode, encode_png


def png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def test_grey_roundtrip() -> None:
    arr = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    d = decode(png(arr))
    assert d.mode == "L" and d.pixels.shape == (48, 64) and d.pixels.dtype == np.float32
    back = np.asarray(Image.open(io.BytesIO(encode_png(d.pixels, d.mode))))
    assert np.array_equal(back, arr)


def test_rgb_rgba_and_16bit() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert decode(png(rgb)).pixels.shape == (20, 30, 3)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 128, np.uint8)], axis=2)
    d = decode(png(rgba))
    assert d.mode == "RGB" and np.allclose(d.pixels, rgb / 255.0)
    grey16 = (np.arange(400, dtype=np.uint16) * 100).reshape(20, 20)
    d16 = decode(png(grey16))
    assert d16.mode == "L" and d16.pixels.max() <= 1.0 and d16.pixels.max() > 0.5


def test_jpeg_accepted() -> None:
    rgb = np.full((16, 16, 3), 100, np.uint8)
    assert decode(png(rgb, fmt="JPEG")).pixels.shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"certainly not an image" * 10, "not a readable PNG or JPEG"),
        (png(np.zeros((64, 64), np.uint8))[:60], "not a readable PNG or JPEG"),
        # pixel stream complete but the IDAT checksum or the IEND chunk cut off: load() alone passes
        (png(np.zeros((64, 64), np.uint8))[:70], "not a readable PNG or JPEG"),
        (png(np.zeros((64, 64), np.uint8))[:76], "not a readable PNG or JPEG"),
        (png(np.zeros((64, 64, 3), np.uint8), fmt="JPEG")[:200], "not a readable PNG or JPEG"),
        (png(np.zeros((4, 4), np.uint8)), "at least"),
        (png(np.zeros((16, 16), np.uint8), fmt="BMP"), "not accepted"),
        (b"\x00" * (MAX_UPLOAD_BYTES + 1), "limit"),
    ],
)
def test_bad_uploads(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode(data)


def test_oversized_dimensions_refused_before_decoding() -> None:
    big = Image.new("L", (MAX_SIDE + 1, 8))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    with pytest.raises(ImageError, match=f"at most {MAX_SIDE}"):
        decode(buf.getvalue())


def test_encode_clips_and_handles_nan() -> None:
    arr = np.array([[-1.0, 2.0], [np.nan, 0.5]], np.float32)
    out = np.asarray(Image.open(io.BytesIO(encode_png(np.tile(arr, (4, 4)), "L"))))
    assert out[0, 0] == 0 and out[0, 1] == 255 and out[1, 0] == 0 and out[1, 1] == 128
