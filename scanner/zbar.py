"""ZBar through pyzbar's ctypes bindings, set up the way a till needs it.

pyzbar's own `decode()` builds a new scanner per call, enables every symbology (EAN add-ons glue
stray digits onto EAN-13 as "composite" reads, ISBN relabels books) and hands back ZBar's text
conversion of QR payloads, which guesses the encoding wrongly for Shift_JIS and UTF-8 Chinese.
Here one scanner per `ZBarScanner` is configured once: only the symbologies a store meets, QR in
binary mode (we get the payload bytes and choose the encoding ourselves), and the GS1 modifier
that tells a GS1-128 from a plain Code 128.

A ZBar scanner is not thread-safe: use one `ZBarScanner` per thread."""

from __future__ import annotations

from ctypes import POINTER, byref, c_int, c_uint, c_void_p, cast, string_at
from dataclasses import dataclass

import numpy as np
from pyzbar import wrapper as zw

from scanner.errors import DecoderUnavailable

# ZBar symbol type -> the symbology names of this package.
SYMBOLOGY_NAMES: dict[int, str] = {
    int(zw.ZBarSymbol.EAN13): "EAN-13",
    int(zw.ZBarSymbol.EAN8): "EAN-8",
    int(zw.ZBarSymbol.UPCA): "UPC-A",
    int(zw.ZBarSymbol.UPCE): "UPC-E",
    int(zw.ZBarSymbol.CODE128): "Code 128",
    int(zw.ZBarSymbol.CODE39): "Code 39",
    int(zw.ZBarSymbol.I25): "ITF",
    int(zw.ZBarSymbol.QRCODE): "QR Code",
}

_CONFIG = (
    "disable",  # everything off first, then only what a store meets
    "ean13.enable",
    "ean8.enable",
    "upca.enable",
    "upce.enable",
    "code128.enable",
    "code39.enable",
    "i25.enable",
    "i25.min-length=4",
    "qrcode.enable",
    "qrcode.binary",
)

_Y800 = 0x30303859  # fourcc "Y800": 8-bit grayscale

try:
    _get_modifiers = zw.zbar_function("zbar_symbol_get_modifiers", c_uint, POINTER(zw.zbar_symbol))
except AttributeError:  # a ZBar older than 0.11
    _get_modifiers = None
_MOD_GS1 = 1 << 0


@dataclass(frozen=True)
class RawSymbol:
    """One symbol as ZBar saw it: payload bytes, never text-converted for QR."""

    symbology: str
    data: bytes
    quality: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the scanned image's pixels
    gs1: bool = False
    orientation: int = -1  # 0 read left to right, 1 top to bottom, 2 right to left, 3 bottom up


class ZBarScanner:
    """`density` > 1 scans every n-th row and column only: about n times faster, for video
    frames where a code spans many lines."""

    def __init__(self, density: int = 1) -> None:
        try:
            self._scanner = zw.zbar_image_scanner_create()
        except Exception as exc:  # the shared library is missing or broken
            raise DecoderUnavailable(f"ZBar could not be loaded: {exc}") from exc
        if not self._scanner:
            raise DecoderUnavailable("ZBar could not create an image scanner")
        for setting in (*_CONFIG, f"x-density={density}", f"y-density={density}"):
            sym, cfg, val = c_int(), c_int(), c_int()
            if zw.zbar_parse_config(setting.encode(), byref(sym), byref(cfg), byref(val)):
                raise DecoderUnavailable(f"this ZBar does not understand {setting!r}")
            zw.zbar_image_scanner_set_config(self._scanner, sym.value, cfg.value, val.value)

    def close(self) -> None:
        if self._scanner:
            zw.zbar_image_scanner_destroy(self._scanner)
            self._scanner = None

    def __del__(self) -> None:
        self.close()

    def scan(self, gray: np.ndarray) -> list[RawSymbol]:
        """Symbols in an 8-bit single-channel image."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError("ZBar needs an 8-bit grayscale image")
        height, width = gray.shape
        buf = np.ascontiguousarray(gray).tobytes()
        image = zw.zbar_image_create()
        try:
            zw.zbar_image_set_format(image, _Y800)
            zw.zbar_image_set_size(image, width, height)
            zw.zbar_image_set_data(image, cast(buf, c_void_p), len(buf), None)  # type: ignore[arg-type]
            if zw.zbar_scan_image(self._scanner, image) < 0:
                raise ValueError("ZBar refused the image")
            found = []
            symbol = zw.zbar_image_first_symbol(image)
            while symbol:
                name = SYMBOLOGY_NAMES.get(symbol.contents.type)
                if name is not None:
                    data = string_at(
                        zw.zbar_symbol_get_data(symbol), zw.zbar_symbol_get_data_length(symbol)
                    )
                    n = zw.zbar_symbol_get_loc_size(symbol)
                    xs = [zw.zbar_symbol_get_loc_x(symbol, i) for i in range(n)] or [0, width]
                    ys = [zw.zbar_symbol_get_loc_y(symbol, i) for i in range(n)] or [0, height]
                    box = (min(xs), min(ys), max(xs), max(ys))
                    gs1 = bool(_get_modifiers(symbol) & _MOD_GS1) if _get_modifiers else False
                    orientation = (
                        zw.zbar_symbol_get_orientation(symbol)
                        if zw.zbar_symbol_get_orientation is not None
                        else -1
                    )
                    found.append(
                        RawSymbol(
                            name, data, zw.zbar_symbol_get_quality(symbol), box, gs1, orientation
                        )
                    )
                symbol = zw.zbar_symbol_next(symbol)
            return found
        finally:
            zw.zbar_image_destroy(image)
