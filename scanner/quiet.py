"""Is a short 1D read a whole label, or a piece of a longer one?

ZBar finds UPC-E, EAN-8 and ITF patterns inside the bars of longer codes (a UPC-E's guards match
part of a UPC-A; an ITF reads on from any pair of digits). A real label has quiet zones: several
modules of plain background on both sides. A read with bars right next to it on either side is a
fragment. The check runs in the image ZBar read, along ZBar's own scan direction."""

from __future__ import annotations

import numpy as np

from scanner.zbar import RawSymbol


def _modules(symbol: RawSymbol) -> float | None:
    if symbol.symbology == "UPC-E":
        return 51.0
    if symbol.symbology == "EAN-8":
        return 67.0
    if symbol.symbology == "ITF":
        digits = len(symbol.data)
        return 8.0 * digits + 8.5  # wide elements at 2.5 narrow
    return None


def is_fragment(image: np.ndarray, symbol: RawSymbol, *, rows: int = 7) -> bool | None:
    """True when most scan lines through the read find the bars going on past it; None when
    the read cannot be judged (ZBar gives no usable extent for some reads, e.g. upside down).

    ZBar's box stops a few modules inside the label (at its data, not its guards). From each
    edge we walk outwards to the first light gap of five modules (the start of a quiet zone);
    a real label has at most its guard bars on the way, a fragment has many more modules of
    someone else's bars."""
    modules = _modules(symbol)
    if modules is None:
        return False
    x0, y0, x1, y1 = symbol.box
    extent = y1 - y0 if symbol.orientation in (1, 3) else x1 - x0
    if extent < modules:  # less than a pixel per module: not a usable extent
        return None
    img = image
    if symbol.orientation in (1, 3):  # read top to bottom: bars lie across the image rows
        img = image.T
        x0, y0, x1, y1 = y0, x0, y1, x1
    h, w = img.shape[:2]
    module = (x1 - x0) / modules
    ys = np.unique(np.linspace(max(0, y0), min(h - 1, y1), rows).astype(int))
    flagged = 0
    checked = 0
    for y in ys:
        line = img[y].astype(np.float64)
        code = line[max(0, x0) : min(w, x1 + 1)]
        if code.size < 8:
            continue
        lo, hi = np.percentile(code, 5), np.percentile(code, 95)
        if hi - lo < 20:
            continue
        dark = line < (lo + hi) / 2
        checked += 1
        left = _bars_beyond(dark[: max(0, x0)][::-1], module)
        right = _bars_beyond(dark[x1 + 1 :], module)
        if max(left, right) > 10 * module:
            flagged += 1
    if checked == 0:
        return None
    return 2 * flagged > checked


def _bars_beyond(dark: np.ndarray, module: float) -> float:
    """How far (pixels) bars go on from the edge before a quiet gap of five modules; 0 when the
    image ends first (nothing to say)."""
    gap = 0
    last_bar = 0
    quiet = 5 * module
    for i, d in enumerate(dark):
        if d:
            gap = 0
            last_bar = i + 1
        else:
            gap += 1
            if gap >= quiet:
                return float(last_bar)
    return 0.0
