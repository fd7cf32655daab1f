"""Code 128 read from the label's scan lines, for the one thing ZBar gets wrong: FNC4.

FNC4 shifts a character into ISO-8859-1's upper half (`ó`, `é`, `ü` on European labels); ZBar
ignores it and reports the character with its high bit dropped (`ó` comes back as `s`), a text
that is wrong yet passes the symbol check. This module reads the symbol values itself (edge
widths of each 6-element character, normalised to its 11 modules), checks the mod-103 check
character, and rebuilds the text with code sets, shifts and FNC4 handled.

Use: `rebuild(gray, box, zbar_text)` returns the corrected text when several scan lines agree on
a checksum-valid reading whose text, with high bits dropped, is ZBar's text; otherwise None (ZBar's
text stands)."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

# Element widths (bar, space, bar, space, bar, space) of values 0..105, from the symbology's
# specification table; the stop character is 2331112.
_WIDTHS = (  # noqa: SIM905
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 "
    "122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 311222 321122 "
    "321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 112313 132113 132311 "
    "211313 231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 231131 213113 "
    "213311 213131 311123 311321 331121 312113 312311 332111 314111 221411 431111 111224 111422 "
    "121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 241211 221114 413111 "
    "241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 214121 "
    "412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131 211412 "
    "211214 211232"
).split()
_VALUE = {w: v for v, w in enumerate(_WIDTHS)}
_STOP = "233111"  # the stop's first six elements (its last bar is a 2-module bar)
_START = {103: "A", 104: "B", 105: "C"}
_SLOPES = (0.0, 0.06, -0.06, 0.12, -0.12, 0.2, -0.2)
SHIFT, CODE_C, CODE_B, CODE_A, FNC1 = 98, 99, 100, 101, 102
FNC3, FNC2 = 96, 97


def _normalise(widths: list[int] | np.ndarray) -> str:
    total = float(sum(widths))
    return "".join(str(min(4, max(1, round(11 * w / total)))) for w in widths)


def _runs(line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths and colours (True = bar) of a thresholded scan line."""
    lo, hi = np.percentile(line, 5), np.percentile(line, 95)
    dark = line < (lo + hi) / 2
    edges = np.flatnonzero(dark[1:] != dark[:-1]) + 1
    bounds = np.concatenate(([0], edges, [len(dark)]))
    return np.diff(bounds), dark[bounds[:-1]]


def symbol_values(line: np.ndarray) -> list[int] | None:
    """The checksum-valid symbol values (start .. check, without stop) on one line, or None."""
    lengths, bars = _runs(line)
    for i in range(len(lengths) - 6):
        if not bars[i]:
            continue
        start = _VALUE.get(_normalise(lengths[i : i + 6]))
        if start not in _START:
            continue
        values = [start]
        j = i + 6
        while j + 6 <= len(lengths):
            key = _normalise(lengths[j : j + 6])
            if key == _STOP or (
                j + 7 <= len(lengths) and _normalise(lengths[j : j + 7]) == "2331112"
            ):
                break
            value = _VALUE.get(key)
            if value is None or value >= 103:
                values = []
                break
            values.append(value)
            j += 6
        else:
            continue
        if len(values) >= 3:
            check = values[-1]
            total = values[0] + sum(k * v for k, v in enumerate(values[1:-1], start=1))
            if total % 103 == check:
                return values
    return None


def values_text(values: list[int]) -> tuple[str, bool]:
    """(text, gs1) of start .. check values: code sets, SHIFT, FNC1 and FNC4 applied.

    FNC4 (100 in code set B, 101 in code set A) adds 128 to the next data character; two FNC4 in
    a row switch that on (or off again) for all following characters."""
    code = _START[values[0]]
    data = values[1:-1]
    out: list[str] = []
    gs1 = False
    latched = False
    single = False
    shift = False
    i = 0
    while i < len(data):
        value = data[i]
        current = ("B" if code == "A" else "A") if shift else code
        shift = False
        fnc4 = (current == "B" and value == CODE_B) or (current == "A" and value == CODE_A)
        if current == "C" and value < 100:
            out.append(f"{value:02d}")
        elif current in "AB" and value < 96:
            char = value + 32 if current == "B" or value < 64 else value - 64
            if latched != single:
                char += 128
            single = False
            out.append(chr(char))
        elif value == FNC1:
            if i == 0:
                gs1 = True
            else:
                out.append("\x1d")
        elif fnc4:
            if i + 1 < len(data) and data[i + 1] == value:
                latched = not latched
                i += 1
            else:
                single = True
        elif value == SHIFT and current in "AB":
            shift = True
        elif value == CODE_C:
            code = "C"
        elif value == CODE_B:
            code = "B"
        elif value == CODE_A:
            code = "A"
        i += 1
    return "".join(out), gs1


def rebuild(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    zbar_text: str,
    *,
    lines: int = 7,
    orientation: int = 0,
) -> str | None:
    """The full text of a Code 128 label when ZBar's text lost FNC4 characters (see module
    docstring); None when ZBar's text stands. `orientation` 1 or 3: ZBar read it top to
    bottom, so scan lines run down the image's columns."""
    x0, y0, x1, y1 = box
    if orientation in (1, 3):
        gray = gray.T
        x0, y0, x1, y1 = y0, x0, y1, x1
    h, w = gray.shape[:2]
    # ZBar's box often spans only where its decode ended, so whole scan lines are read (the
    # start pattern and the check character find the code on them), at a few slants so a
    # tilted label is crossed end to end.
    ya, yb = max(0, int(y0)), min(h - 1, int(y1))
    if yb < ya:
        return None
    texts: Counter[str] = Counter()
    tried = 0
    xs = np.arange(w, dtype=np.float32)
    centre = w / 2.0
    for y in sorted(set(np.linspace(ya, yb, lines).astype(int))):
        tried += 1
        for slope in _SLOPES:
            ys = (y + slope * (xs - centre)).astype(np.float32)
            if slope == 0.0:
                row = gray[y].astype(np.float64)
            else:
                row = cv2.remap(
                    gray,
                    xs[None, :],
                    ys[None, :],
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )[0].astype(np.float64)
            values = symbol_values(row) or symbol_values(row[::-1])
            if values is not None:
                texts[values_text(values)[0]] += 1
                break
    if not texts:
        return None
    text, count = texts.most_common(1)[0]
    if 2 * count < tried or text == zbar_text:
        return None
    if "".join(chr(ord(c) & 0x7F) for c in text) != zbar_text:
        return None  # a different reading altogether: not ours to overrule
    return text
