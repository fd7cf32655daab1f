"""An optional second decoder: zxing-cpp, when it is installed (`pip install .[zxing]`).

Not the default: pyzbar + OpenCV (`scanner.decode.Decoder`) is what the till uses. This one is
offered for comparison (`benchmarks/decode.py --backend zxing`) and for stores that want it. It
returns the same `Reading`s, so the rest of the pipeline does not change."""

from __future__ import annotations

from typing import Any

import numpy as np

from scanner.decode import Reading, to_gray
from scanner.errors import DecoderUnavailable
from scanner.events import SYMBOLOGIES


class ZxingDecoder:
    def __init__(self) -> None:
        try:
            import zxingcpp
        except ImportError as exc:
            raise DecoderUnavailable("zxing-cpp is not installed") from exc
        self._zx: Any = zxingcpp

    def close(self) -> None:
        return None

    def _read(self, image: np.ndarray, *, hard: bool) -> list[Reading]:
        found = []
        for symbol in self._zx.read_barcodes(to_gray(image), try_rotate=hard, try_invert=hard):
            name = str(symbol.format)
            if name not in SYMBOLOGIES or not symbol.valid:
                continue
            pos = symbol.position
            xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
            ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
            gs1 = symbol.symbology_identifier in ("]C1", "]Q3")
            box = (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))
            found.append(Reading(name, symbol.text, box, 1, gs1, bytes(symbol.bytes)))
        return found

    def decode_image(self, image: np.ndarray) -> list[Reading]:
        return self._read(image, hard=True)

    def decode_frame(self, frame: np.ndarray) -> list[Reading]:
        return self._read(frame, hard=False)
