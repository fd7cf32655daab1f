"""A second opinion on EAN-13 / UPC-A reads, from the image itself.

ZBar measures bar widths by thresholding each scan line. On an aliased (moire) photo the widths
it measures are consistently wrong, every variant of the cascade agrees, and the result can be a
checksum-valid wrong number. This check reads the same label differently: it fits the claimed
code's 95-module pattern to several scan lines (finding the code's start and module width), then
reads every digit by matching the 7-module patterns at those positions, sampling the grey level
at module *centres* instead of thresholding edges. Lines that do not give a complete,
checksum-valid number abstain.

Verdict, per sighting: when at least a third of the lines read one other valid number, and more
lines read it than read the claim, ZBar's claim is contradicted. If at least two thirds of the lines agree on
that other number, it replaces the claim (its own lines are the confirmation); otherwise the
claim is dropped. When the lines agree with ZBar or abstain, the claim stands."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

_L = ("0001101", "0011001", "0010011", "0111101", "0100011",
      "0110001", "0101111", "0111011", "0110111", "0001011")  # fmt: skip
_G = ("0100111", "0110011", "0011011", "0100001", "0011101",
      "0111001", "0000101", "0010001", "0001001", "0010111")  # fmt: skip
_R = ("1110010", "1100110", "1101100", "1000010", "1011100",
      "1001110", "1010000", "1000100", "1001000", "1110100")  # fmt: skip
_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
           "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")  # fmt: skip


def _signs(pattern: str) -> np.ndarray:
    """+1 for a space module, -1 for a bar module (grey level is high on spaces)."""
    return np.array([-1.0 if c == "1" else 1.0 for c in pattern])


_LEFT = np.stack([_signs(p) for p in (*_L, *_G)])  # 20 x 7: L0..L9, G0..G9
_RIGHT = np.stack([_signs(p) for p in _R])  # 10 x 7


def ean13_modules(code13: str) -> str:
    parity = _PARITY[int(code13[0])]
    left = "".join(
        (_L if side == "L" else _G)[int(d)] for side, d in zip(parity, code13[1:7], strict=True)
    )
    right = "".join(_R[int(d)] for d in code13[7:13])
    return "101" + left + "01010" + right + "101"


def _check_ok(code13: str) -> bool:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(code13[:12]))
    return (10 - total % 10) % 10 == int(code13[12])


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["confirmed", "unsure", "contradicted", "replaced"]
    text: str | None  # the number to use (None when the claim is dropped)
    lines: int = 0
    agree: int = 0
    other: int = 0


def _fit(
    profile: np.ndarray, signs: np.ndarray, start: float, module: float
) -> tuple[float, float, float]:
    """Best (score, x0, module width) for the pattern on one line, near the expected place:
    a coarse grid, then a fine one around its best point."""
    _score, x0, width = _grid(
        profile, signs, start, 4 * module, 1.0, module * 0.85, module * 1.15, 13
    )
    return _grid(profile, signs, x0, 1.5, 0.25, width * 0.975, width * 1.025, 11)


def _grid(
    profile: np.ndarray,
    signs: np.ndarray,
    centre: float,
    reach: float,
    step: float,
    w_lo: float,
    w_hi: float,
    n_w: int,
) -> tuple[float, float, float]:
    n = len(signs)
    widths = np.linspace(w_lo, w_hi, n_w)
    starts = np.arange(centre - reach, centre + reach + 1e-9, step)
    pos = starts[None, :, None] + (np.arange(n)[None, None, :] + 0.5) * widths[:, None, None]
    inside = (pos[..., 0] >= 0) & (pos[..., -1] <= len(profile) - 1)
    values = np.interp(pos, np.arange(len(profile)), profile)
    scores = np.where(inside, (values * signs).mean(axis=-1), -np.inf)
    wi, si = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[wi, si]), float(starts[si]), float(widths[wi])


def _read_line(
    profile: np.ndarray, signs: np.ndarray, x0: float, width: float
) -> tuple[str | None, float]:
    """(number read, fit score) on one line, given the claimed pattern's fit there.

    Each half of the label is refitted on its own (start and module width), so a label seen at
    a slant, whose modules grow along the line, still has every module centre in place."""
    positions = np.arange(len(profile))
    _, xl, wl = _grid(profile, signs[:50], x0, 1.5 * width, 0.25, width * 0.97, width * 1.03, 7)
    xr_guess = x0 + 45 * width
    _, xr, wr = _grid(
        profile, signs[45:], xr_guess, 1.5 * width, 0.25, width * 0.97, width * 1.03, 7
    )
    left = np.interp(xl + (np.arange(50) + 0.5) * wl, positions, profile)
    right = np.interp(xr + (np.arange(50) + 0.5) * wr, positions, profile)
    v = np.concatenate([left[:50], right[5:]])
    score = float((v * signs).mean())
    digits = []
    parity = ""
    for j in range(6):
        k = int(np.argmax(_LEFT @ v[3 + 7 * j : 10 + 7 * j]))
        digits.append(str(k % 10))
        parity += "L" if k < 10 else "G"
    if parity not in _PARITY:
        return None, score
    for j in range(6):
        digits.append(str(int(np.argmax(_RIGHT @ v[50 + 7 * j : 57 + 7 * j]))))
    code = str(_PARITY.index(parity)) + "".join(digits)
    return (code if _check_ok(code) else None), score


def _lines(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    count: int,
    *,
    own_extent: bool = False,
    slope: float = 0.0,
) -> list[tuple[np.ndarray, float, float]]:
    """Scan lines across the box: (profile, expected start, expected module width).

    When ZBar's box is only the spot where its decode ended (a few pixels wide), the label's
    extent on each line is found from the line itself (see `_extent`). `slope` tilts the lines
    (dy/dx) for a label that is not level."""
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = box
    ya, yb = max(0, int(y0)), min(h - 1, int(y1))
    if yb < ya:
        return []
    if count == 1:
        rows = [(ya + yb) // 2]
    else:
        rows = sorted(
            set(np.linspace(ya + (yb - ya) * 0.1, yb - (yb - ya) * 0.1, count).astype(int))
        )
    span = x1 - x0
    xs = np.arange(w, dtype=np.float32)
    centre = (x0 + x1) / 2.0
    out = []
    for y in rows:
        if slope == 0.0:
            line = gray[y].astype(np.float64)
        else:
            ys = (y + slope * (xs - centre)).astype(np.float32)
            line = cv2.remap(
                gray, xs[None, :], ys[None, :], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )[0].astype(np.float64)
        if span >= 40 and not own_extent:
            extents = [(x0, x1)]
        else:
            found = _extent(line, centre)
            extents = [found] if found is not None else []
        for start, end in extents:
            length = end - start
            xa, xb = max(0, int(start - length * 0.2)), min(w, int(end + length * 0.2) + 1)
            p = line[xa:xb]
            sd = p.std()
            if sd < 1e-6:
                continue
            out.append(((p - p.mean()) / sd, start - xa, length / 95.0))
    return out


def _extent(line: np.ndarray, hint: float) -> tuple[float, float] | None:
    """The stretch of bars around `hint` on a line, bounded by quiet zones (light runs several
    times longer than the typical run); None when it is too short to be an EAN-13."""
    lo, hi = np.percentile(line, 5), np.percentile(line, 95)
    if hi - lo < 20:
        return None
    dark = line < (lo + hi) / 2
    edges = np.flatnonzero(dark[1:] != dark[:-1]) + 1
    bounds = np.concatenate(([0], edges, [len(dark)]))
    lengths = np.diff(bounds)
    colours = dark[bounds[:-1]]
    if len(lengths) < 30:
        return None
    i = int(np.clip(np.searchsorted(bounds, hint, side="right") - 1, 0, len(lengths) - 1))
    window = lengths[max(0, i - 15) : i + 16]
    quiet = 3.5 * float(np.median(window))
    if not colours[i] and lengths[i] >= quiet:  # the hint sits in a quiet zone: step onto bars
        i = i + 1 if i + 1 < len(lengths) else i - 1
    left = i
    while left > 0 and not (not colours[left - 1] and lengths[left - 1] >= quiet):
        left -= 1
    right = i
    while right + 1 < len(lengths) and not (not colours[right + 1] and lengths[right + 1] >= quiet):
        right += 1
    start, end = float(bounds[left]), float(bounds[right + 1])
    if right - left < 30:  # an EAN-13 has 59 bars and spaces; a soft photo merges some
        return None
    return start, end


def verify_ean13(
    gray: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    code13: str,
    *,
    lines: int = 9,
) -> Verdict:
    """Check a claimed 13-digit EAN/UPC number against the label in `gray`.

    `boxes`: where ZBar saw it, one box per sighting (up to three are used). Each is judged on
    its own lines; any sighting whose lines contradict the claim outweighs the others, since a
    right claim is never contradicted by a well-placed set of lines."""
    verdicts = []
    seen: set[tuple[int, ...]] = set()
    for one in boxes:
        key = tuple(int(v) for v in one)
        if key in seen:
            continue
        seen.add(key)
        verdict = _verify_box(gray, one, code13, lines)
        verdicts.append(verdict)
        clear = verdict.outcome == "confirmed" and 2 * verdict.agree >= verdict.lines
        if one[2] - one[0] >= 40 and not clear:  # also where the line itself shows the label
            verdicts.append(_verify_box(gray, one, code13, lines, own_extent=True))
        if len(seen) == 3:
            break
    against = [v for v in verdicts if v.outcome in ("replaced", "contradicted")]
    if against:
        replaced = [v for v in against if v.outcome == "replaced"]
        confirmed = any(v.outcome == "confirmed" for v in verdicts)
        if replaced and len({v.text for v in replaced}) == 1 and not confirmed:
            return max(replaced, key=lambda v: v.other)
        worst = max(against, key=lambda v: v.other)
        return Verdict("contradicted", None, worst.lines, worst.agree, worst.other)
    if not verdicts:
        return Verdict("unsure", code13)
    return max(verdicts, key=lambda v: (v.outcome == "confirmed", v.agree))


_SLOPES = (0.0, 0.04, -0.04, 0.08, -0.08, 0.12, -0.12)


def _level_score(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    signs: np.ndarray,
    slope: float,
    own_extent: bool,
) -> float:
    """How well the claimed pattern fits the middle line tilted by `slope`."""
    found = _lines(gray, box, 1, own_extent=own_extent, slope=slope)
    if not found:
        return -np.inf
    profile, start, module = found[0]
    forward = _fit(profile, signs, start, module)[0]
    backward = _fit(profile[::-1], signs, len(profile) - 1 - (start + 95 * module), module)[0]
    return max(forward, backward)


def _verify_box(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    code13: str,
    lines: int,
    *,
    own_extent: bool = False,
) -> Verdict:
    signs = _signs(ean13_modules(code13))
    slope = max(_SLOPES, key=lambda k: _level_score(gray, box, signs, k, own_extent))
    reads: list[str | None] = []
    for profile, start, module in _lines(gray, box, lines, own_extent=own_extent, slope=slope):
        forward = _fit(profile, signs, start, module)
        backward = _fit(profile[::-1], signs, len(profile) - 1 - (start + 95 * module), module)
        if backward[0] > forward[0]:
            _, x0, width = backward
            read, _ = _read_line(profile[::-1].copy(), signs, x0, width)
        else:
            _, x0, width = forward
            read, _ = _read_line(profile, signs, x0, width)
        reads.append(read)
    n = len(reads)
    if n == 0:
        return Verdict("unsure", code13)
    agree = sum(1 for r in reads if r == code13)
    others = Counter(r for r in reads if r is not None and r != code13)
    if others:
        alt, count = others.most_common(1)[0]
        if count > agree and 3 * count >= 2 * n and count >= 3:
            return Verdict("replaced", alt, n, agree, count)
        if count > agree and 3 * count >= n:
            return Verdict("contradicted", None, n, agree, count)
    return Verdict(
        "confirmed" if agree else "unsure", code13, n, agree, max(others.values(), default=0)
    )


def checked(
    gray: np.ndarray, symbology: str, text: str, box: tuple[float, float, float, float]
) -> tuple[str, str] | None:
    """(symbology, text) to report for an EAN-13/UPC-A read after the second opinion, or None
    when the read must be dropped. Other symbologies pass unchanged."""
    if symbology not in ("EAN-13", "UPC-A") or not text.isdigit() or len(text) not in (12, 13):
        return symbology, text
    patch, local = _around(gray, box)
    verdict = verify_ean13(patch, [local], text.zfill(13))
    if verdict.text is None:
        return None
    if verdict.outcome != "replaced":
        return symbology, text
    if verdict.text.startswith("0"):
        return "UPC-A", verdict.text[1:]
    return "EAN-13", verdict.text


def _around(
    gray: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The part of a (video) frame around a read, and the box in its pixels: lines across a
    whole 720p frame cost more than the label needs."""
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = box
    reach_x = max(x1 - x0, 0.3 * w) + 40
    reach_y = max(y1 - y0, 40) * 0.5 + 20
    xa, xb = max(0, int(x0 - reach_x)), min(w, int(x1 + reach_x) + 1)
    ya, yb = max(0, int(y0 - reach_y)), min(h, int(y1 + reach_y) + 1)
    return gray[ya:yb, xa:xb], (x0 - xa, y0 - ya, x1 - xa, y1 - ya)
