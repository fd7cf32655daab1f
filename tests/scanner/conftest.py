"""Codes made at test time (segno, python-barcode) and video files that play them to the
camera source."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import barcode
import cv2
import numpy as np
import pytest
import segno
from barcode.writer import ImageWriter


def _decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def qr_image(text: str, *, scale: int = 6, encoding: str | None = None) -> np.ndarray:
    buf = io.BytesIO()
    segno.make(text, error="m", encoding=encoding, micro=False).save(
        buf, kind="png", scale=scale, border=4
    )
    return _decode_png(buf.getvalue())


def linear_image(kind: str, text: str, *, module_width: float = 0.33, dpi: int = 200) -> np.ndarray:
    """A 1D code rendered by python-barcode (`ean13`, `ean8`, `upca`, `code128`, `code39`, `itf`)."""
    buf = io.BytesIO()
    options = {"module_width": module_width, "module_height": 12, "dpi": dpi, "quiet_zone": 4}
    if kind == "code39":
        code = barcode.get(kind, text, writer=ImageWriter(), options={"add_checksum": False})
    else:
        code = barcode.get(kind, text, writer=ImageWriter())
    code.write(buf, options=options)
    return _decode_png(buf.getvalue())


def on_canvas(
    images: Sequence[np.ndarray], size: tuple[int, int] = (640, 480), gap: int = 30
) -> np.ndarray:
    """Codes side by side on a light grey frame of `size` (width, height)."""
    width, height = size
    canvas = np.full((height, width, 3), 215, np.uint8)
    x = gap
    for image in images:
        h, w = image.shape[:2]
        y = max(0, (height - h) // 2)
        canvas[y : y + h, x : x + w] = image[: height - y, : width - x]
        x += w + gap
    return canvas


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


@pytest.fixture
def blank() -> np.ndarray:
    return np.full((480, 640, 3), 215, np.uint8)
