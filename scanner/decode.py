"""Reading codes in an image: ZBar on grayscale frames plus a pre-processing cascade.

ZBar alone misses most small or soft photos and sometimes returns a checksum-valid wrong number
for a 1D code. The cascade runs ZBar on transformed copies of the image (enlarged, contrast
equalised, smoothed, thresholded, inverted, rotated, slanted QR codes warped flat) and *votes*:
every reading is mapped back to the original image's coordinates, readings at the same place
form a cluster, and a cluster gives a text only when the evidence agrees on it.

- QR codes carry Reed-Solomon error correction: one clean read is trusted; two texts at one
  place are two codes (a QR printed inside another).
- 1D codes have only a mod-10 (or no) check digit, so a misread can still pass it. A 1D text is
  accepted when two variants read the same text at the same place and no other text there comes
  close in votes. A lone read (`lone_1d`) is accepted only for symbologies with a mandatory
  check character, and an EAN-13/UPC-A lone read only when its scan lines confirm it.
- Every EAN-13/UPC-A winner is checked against the label's own scan lines (`scanner.verify`):
  contradicted claims are dropped or corrected, and when variants disagree the lines decide.
- A short EAN/UPC read (UPC-E, EAN-8) inside a full-length EAN-13/UPC-A read is dropped, and
  UPC-E, EAN-8 and ITF reads must show clear quiet zones (`scanner.quiet`): ZBar finds them
  inside longer codes. A text contained in a longer one of the same symbology is a partial scan.
- Code 128 FNC4 characters, which ZBar drops, are put back (`scanner.code128`).

Video frames take a cheap path first: one ZBar pass on the frame (every second line); the
cascade runs only when that pass found nothing *and* the frame shows evidence of a code (a patch
of dense, strong edges), and then only on that patch and within the frame's time budget. An empty
frame costs one ZBar pass and one edge map of a thumbnail. The scan-line check of a video read
runs once per scan, when the pipeline is about to count it (`Decoder.second_opinion`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from scanner.code128 import rebuild as code128_rebuild
from scanner.quiet import is_fragment
from scanner.text import code39_full_ascii, decode_qr_bytes
from scanner.verify import Verdict, checked, verify_ean13
from scanner.zbar import RawSymbol, ZBarScanner

__all__ = ["STILL_CASCADE", "Decoder", "Reading"]

Box = tuple[float, float, float, float]

LONG_EAN = frozenset({"EAN-13", "UPC-A"})
SHORT_EAN = frozenset({"EAN-8", "UPC-E"})
EAN_FAMILY = LONG_EAN | SHORT_EAN
TWO_D = frozenset({"QR Code"})
# 1D symbologies whose check character is mandatory: a single clean read may stand alone.
CHECKED_1D = EAN_FAMILY | {"Code 128"}
QUIET_CHECKED = SHORT_EAN | {"ITF"}


@dataclass(frozen=True)
class Reading:
    """One code found in an image: its symbology, its text and where it is."""

    symbology: str
    text: str
    box: Box  # x0, y0, x1, y1 in the pixels of the image given to the decoder
    votes: int = 1  # how many cascade variants read this text here
    gs1: bool = False  # GS1-128 / GS1 QR (FNC1 in first position)
    data: bytes = b""  # the payload bytes as the symbol holds them


def _with_fnc4(
    image: np.ndarray, symbol: RawSymbol, tries: dict[bytes, list[bytes | None]] | None = None
) -> RawSymbol:
    """A Code 128 symbol with the FNC4 characters ZBar dropped put back, read from the image
    ZBar read it in (see `scanner.code128`). `tries` remembers the outcome per ZBar text within
    one image, so the scan lines are read at most twice per code."""
    if symbol.symbology != "Code 128":
        return symbol
    past = tries.setdefault(symbol.data, []) if tries is not None else []
    found = next((p for p in past if p is not None), None)
    if found is None and len(past) < 2:
        raw = symbol.data.decode("latin-1")
        fuller = code128_rebuild(image, symbol.box, raw, orientation=symbol.orientation)
        found = fuller.encode("latin-1") if fuller is not None else None
        past.append(found)
    return symbol if found is None else replace(symbol, data=found)


def symbol_text(symbol: RawSymbol) -> str:
    if symbol.symbology == "QR Code":
        return decode_qr_bytes(symbol.data)
    text = symbol.data.decode("latin-1")
    if symbol.symbology == "Code 39":
        return code39_full_ascii(text)
    return text


# ---------------------------------------------------------------------------------------------
# Variants: each makes an image from the grayscale original and says how its pixels map back.


@dataclass
class _Work:
    gray: np.ndarray
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.cache:
            self.cache[name] = _RECIPES[name](self)
        return self.cache[name]


def _scale_matrix(fx: float, fy: float) -> np.ndarray:
    return np.array([[fx, 0.0, 0.0], [0.0, fy, 0.0]])


def _native(w: _Work) -> tuple[np.ndarray, np.ndarray]:
    return w.gray, _scale_matrix(1, 1)


MAX_SIDE = 1600  # enlarging past this costs more time than it rescues codes


def _enlarged(factor: float) -> Callable[[_Work], tuple[np.ndarray, np.ndarray]]:
    def make(w: _Work) -> tuple[np.ndarray, np.ndarray]:
        f = min(factor, MAX_SIDE / max(w.gray.shape[:2]))
        if f <= 1.05:
            return w.gray, _scale_matrix(1, 1)
        img = cv2.resize(w.gray, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        return img, _scale_matrix(f, f)

    return make


def _on(
    base: str, op: Callable[[np.ndarray], np.ndarray]
) -> Callable[[_Work], tuple[np.ndarray, np.ndarray]]:
    def make(w: _Work) -> tuple[np.ndarray, np.ndarray]:
        img, m = w.get(base)
        return op(img), m

    return make


# OpenCV objects keep working buffers: one per thread (the camera worker decodes in its own).
_LOCAL = threading.local()


def _tools() -> threading.local:
    if not hasattr(_LOCAL, "clahe"):
        _LOCAL.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        _LOCAL.qr_finder = cv2.QRCodeDetectorAruco()
    return _LOCAL


def _clahe(img: np.ndarray) -> np.ndarray:
    clahe: cv2.CLAHE = _tools().clahe
    return clahe.apply(img)


def _otsu(img: np.ndarray) -> np.ndarray:
    return cv2.threshold(img, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]


def _adaptive(img: np.ndarray) -> np.ndarray:
    block = max(15, (min(img.shape[:2]) // 8) | 1)
    return cv2.adaptiveThreshold(
        img, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 5
    )


def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, (5, 5), 0)


def _sharpen(img: np.ndarray) -> np.ndarray:
    return cv2.addWeighted(img, 1.8, cv2.GaussianBlur(img, (0, 0), 3), -0.8, 0)


def _invert(img: np.ndarray) -> np.ndarray:
    return cv2.bitwise_not(img)


MIN_SIDE_TO_ROTATE = 48  # a strip thinner than this turned on its corner is a hatch, not a code


def _rotated(base: str, angle: float) -> Callable[[_Work], tuple[np.ndarray, np.ndarray]]:
    def make(w: _Work) -> tuple[np.ndarray, np.ndarray]:
        img, m = w.get(base)
        if min(w.gray.shape[:2]) < MIN_SIDE_TO_ROTATE:
            return _EMPTY, m
        h, wd = img.shape[:2]
        r = cv2.getRotationMatrix2D((wd / 2, h / 2), angle, 1.0)
        cos, sin = abs(r[0, 0]), abs(r[0, 1])
        nw, nh = int(h * sin + wd * cos), int(h * cos + wd * sin)
        r[0, 2] += nw / 2 - wd / 2
        r[1, 2] += nh / 2 - h / 2
        rotated = cv2.warpAffine(
            img, r, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return rotated, _compose(r, m)

    return make


_EMPTY = np.full((8, 8), 255, np.uint8)  # a step that does not apply scans a blank


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    a = np.vstack([outer, [0, 0, 1]])
    b = np.vstack([inner, [0, 0, 1]])
    out: np.ndarray = (a @ b)[:2]
    return out


_RECIPES: dict[str, Callable[[_Work], tuple[np.ndarray, np.ndarray]]] = {
    "native": _native,
    "blur": _on("native", _blur),
    "inverted": _on("native", _invert),
    "half": lambda w: (
        cv2.resize(w.gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        _scale_matrix(0.5, 0.5),
    ),
    "x2": _enlarged(2),
    "x3": _enlarged(3),
    "x2-clahe": _on("x2", _clahe),
    "x2-blur": _on("x2", _blur),
    "x2-otsu": _on("x2", _otsu),
    "x2-adaptive": _on("x2", _adaptive),
    "x2-sharp": _on("x2", _sharpen),
    "x2-inverted": _on("x2", _invert),
    "x3-blur": _on("x3", _blur),
    "x3-clahe": _on("x3", _clahe),
    "x2-rot30": _rotated("x2", 30),
    "x2-rot-30": _rotated("x2", -30),
    "x2-rot45": _rotated("x2", 45),
    "x2-rot-45": _rotated("x2", -45),
}


def _rectified_qr(w: _Work) -> list[tuple[np.ndarray, np.ndarray]]:
    """QR codes seen at a slant: OpenCV locates their corners, each is warped flat (perspective
    undone, enlarged to a comfortable module size) for ZBar to read."""
    finder: cv2.QRCodeDetectorAruco = _tools().qr_finder
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for base in ("native", "x2"):
        img, m = w.get(base)
        scale = float(m[0, 0])
        try:
            found, quads = finder.detectMulti(img)
        except cv2.error:
            continue
        if not found or quads is None:
            continue
        for quad in np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2) / scale:
            side = max(float(np.linalg.norm(quad[i] - quad[(i + 1) % 4])) for i in range(4))
            size = int(min(1200, max(240, side * 1.5)))
            lo, hi = size * 0.12, size * 0.88
            target = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]], dtype=np.float32)
            h = np.asarray(cv2.getPerspectiveTransform(quad, target), dtype=np.float64)
            flat = cv2.warpPerspective(
                w.gray, h, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
            )
            out.append((flat, h))
        if out:
            break
    return out


# Steps that make several images (one per code found), run only when no QR code was read yet.
_MULTI: dict[str, Callable[[_Work], list[tuple[np.ndarray, np.ndarray]]]] = {
    "qr-rectified": _rectified_qr,
}

# The order matters: the first variants are the cheap ones that read most codes; later ones
# rescue hard photos. Names only, so a caller can pass a shorter or different cascade.
STILL_CASCADE: tuple[str, ...] = (
    "native",
    "x2",
    "x2-clahe",
    "x2-blur",
    "x2-otsu",
    "qr-rectified",
    "blur",
    "x2-sharp",
    "x3",
    "x2-adaptive",
    "x3-blur",
    "x3-clahe",
    "inverted",
    "x2-inverted",
    "x2-rot30",
    "x2-rot-30",
    "x2-rot45",
    "x2-rot-45",
    "half",
)

# What a video frame patch with evidence of a code gets, in the time left of its frame budget.
FRAME_CASCADE: tuple[str, ...] = ("x2", "x2-clahe", "x2-blur", "x2-otsu", "inverted", "blur")


# ---------------------------------------------------------------------------------------------
# Voting


def _map_box(box: tuple[int, int, int, int], m: np.ndarray) -> Box:
    """A box in a variant's pixels back into the original's pixels (`m`: the 2x3 affine or 3x3
    homography that made the variant)."""
    full = m if m.shape == (3, 3) else np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=float)
    pts = corners @ inv.T
    pts = pts[:, :2] / pts[:, 2:3]
    return (
        float(pts[:, 0].min()),
        float(pts[:, 1].min()),
        float(pts[:, 0].max()),
        float(pts[:, 1].max()),
    )


def _near(a: Box, b: Box) -> bool:
    """Two boxes that overlap once each is grown by a quarter of its longer side.

    (ZBar locates a 1D code by the scan lines that crossed it, so its box can be a few pixels
    thin; growing by the longer side keeps two reads of one label together.)"""
    ga = max(a[2] - a[0], a[3] - a[1]) * 0.25 + 2
    gb = max(b[2] - b[0], b[3] - b[1]) * 0.25 + 2
    return not (
        a[2] + ga < b[0] - gb
        or b[2] + gb < a[0] - ga
        or a[3] + ga < b[1] - gb
        or b[3] + gb < a[1] - ga
    )


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


@dataclass
class _Candidate:
    symbology: str
    text: str
    box: Box
    gs1: bool
    data: bytes
    variants: set[str] = field(default_factory=set)
    boxes: list[Box] = field(default_factory=list)  # one per sighting
    vetted: int = 0  # sightings whose quiet zones were checked and found clear
    fragments: int = 0  # sightings found to be a piece of a longer code

    @property
    def votes(self) -> int:
        return len(self.variants)


@dataclass
class _Cluster:
    family: str  # "2d" or "1d": 2D codes and 1D codes never compete with each other
    box: Box
    candidates: dict[tuple[str, str], _Candidate] = field(default_factory=dict)

    def add(self, reading: _Candidate, variant: str) -> None:
        key = (reading.symbology, reading.text)
        found = self.candidates.get(key)
        if found is None:
            found = self.candidates[key] = reading
        else:
            found.vetted += reading.vetted
            found.fragments += reading.fragments
        found.boxes.append(reading.box)
        found.variants.add(variant)
        found.box = _union(found.box, reading.box)
        self.box = _union(self.box, reading.box)


class _Ballot:
    def __init__(self) -> None:
        self.clusters: list[_Cluster] = []

    def add(self, symbol: RawSymbol, box: Box, variant: str, fragment: bool | None = False) -> None:
        """One sighting. `fragment`: the quiet-zone check's verdict (True: a piece of a longer
        code, None: could not be judged), see `scanner.quiet`."""
        family = "2d" if symbol.symbology in TWO_D else "1d"
        cand = _Candidate(symbol.symbology, symbol_text(symbol), box, symbol.gs1, symbol.data)
        cand.vetted = 1 if fragment is False else 0
        cand.fragments = 1 if fragment else 0
        for cluster in self.clusters:
            if cluster.family == family and (
                (cand.symbology, cand.text) in cluster.candidates or _near(cluster.box, box)
            ):
                cluster.add(cand, variant)
                return
        cluster = _Cluster(family, box)
        cluster.add(cand, variant)
        self.clusters.append(cluster)

    def decide(self, *, lone_1d: bool, check: Check | None = None) -> list[tuple[Reading, bool]]:
        """The readings to report, each with whether the scan-line check already vouched for it."""
        out: list[tuple[Reading, bool]] = []
        for cluster in self.clusters:
            settled = _settle_by_scan_lines(cluster, check) if check is not None else None
            if settled is not None:
                out.extend((r, True) for r in settled)
                continue
            for winner in _winners(cluster, lone_1d=lone_1d):
                reading = Reading(
                    winner.symbology, winner.text, winner.box, winner.votes, winner.gs1, winner.data
                )
                if winner.symbology in LONG_EAN and winner.text.isdigit() and check is not None:
                    checked_reading = _checked_ean(winner, reading, check)
                    if checked_reading is not None:
                        out.append((checked_reading, True))
                    continue
                out.append((reading, False))
        return out

    def settled(self) -> bool:
        """Every cluster already has a confirmed winner: more variants would change nothing."""
        return bool(self.clusters) and all(
            sum(c.votes for c in cluster.candidates.values()) >= 2
            and _winners(cluster, lone_1d=False)
            for cluster in self.clusters
        )


Check = Callable[[Sequence[Box], str], Verdict]


def _checked_ean(winner: _Candidate, reading: Reading, check: Check) -> Reading | None:
    """An EAN-13/UPC-A winner after its scan-line check: kept, corrected or dropped. A single
    sighting stands only when its lines confirm it."""
    verdict = check(winner.boxes or [winner.box], winner.text.zfill(13))
    if verdict.outcome == "contradicted" or verdict.text is None:
        return None
    if verdict.outcome == "replaced":
        number = verdict.text
        symbology, text = ("UPC-A", number[1:]) if number.startswith("0") else ("EAN-13", number)
        return Reading(symbology, text, reading.box, reading.votes, False, text.encode())
    if winner.votes == 1 and not (verdict.outcome == "confirmed" and verdict.agree >= 2):
        return None
    return reading


def _settle_by_scan_lines(cluster: _Cluster, check: Check) -> list[Reading] | None:
    """When variants disagree about an EAN-13/UPC-A, let the scan-line check decide.

    Each candidate is checked against the label; a candidate the lines confirm (three lines or
    more read exactly it) or a number the lines read instead of it counts for that number. One
    number with such support wins, whatever the votes; two different ones drop the code; none
    leaves the decision to the votes (None)."""
    if cluster.family != "1d":
        return None
    ean = [c for c in cluster.candidates.values() if c.symbology in LONG_EAN and c.text.isdigit()]
    if len({c.text.zfill(13) for c in ean}) < 2:
        return None
    support: Counter[str] = Counter()
    for cand in sorted(ean, key=lambda c: c.votes, reverse=True)[:5]:
        verdict = check(cand.boxes or [cand.box], cand.text.zfill(13))
        if verdict.outcome == "confirmed" and verdict.agree >= 3 and verdict.text:
            support[verdict.text] += verdict.agree
        elif verdict.outcome == "replaced" and verdict.text:
            support[verdict.text] += verdict.other
    if not support:
        return None
    if len(support) > 1:
        return []
    number = next(iter(support))
    symbology, text = ("UPC-A", number[1:]) if number.startswith("0") else ("EAN-13", number)
    votes = sum(c.votes for c in ean if c.text.zfill(13) == number)
    return [Reading(symbology, text, cluster.box, votes, False, text.encode())]


def _winners(cluster: _Cluster, *, lone_1d: bool) -> list[_Candidate]:
    cands = list(cluster.candidates.values())
    if cluster.family == "2d":
        # Error-corrected: a QR text is never a misread, and two texts at one place are two
        # codes (a QR printed inside another).
        return sorted(cands, key=lambda c: c.votes, reverse=True)
    if any(c.symbology in LONG_EAN for c in cands):
        cands = [c for c in cands if c.symbology not in SHORT_EAN]
    # Short codes that ZBar also finds inside longer ones must show clear quiet zones.
    cands = [
        c
        for c in cands
        if c.symbology not in QUIET_CHECKED or (c.vetted > 0 and c.fragments < c.vetted)
    ]
    if not cands:
        return []
    # A text that is part of a longer one of the same symbology is a partial scan of it.
    cands = [
        c
        for c in cands
        if not any(
            o is not c
            and o.symbology == c.symbology
            and len(o.text) > len(c.text)
            and c.text in o.text
            for o in cands
        )
    ]
    cands.sort(key=lambda c: c.votes, reverse=True)
    best = cands[0]
    rival = cands[1].votes if len(cands) > 1 else 0
    if rival and best.votes < 2 * rival + 1:
        return []  # variants disagree about this code: better no read than a wrong item
    if best.votes >= 2:
        return [best]
    if lone_1d and not rival and best.symbology in CHECKED_1D:
        return [best]
    return []


# ---------------------------------------------------------------------------------------------


class Decoder:
    """Finds codes in still images and video frames.

    `budget_ms` bounds the cascade on a still image; `frame_budget_ms` bounds the whole work on
    one video frame. Both count this thread's CPU time, so a busy machine does not change what
    is read. Use one Decoder per thread (ZBar scanners are not thread-safe)."""

    def __init__(
        self,
        *,
        cascade: Sequence[str] = STILL_CASCADE,
        frame_cascade: Sequence[str] = FRAME_CASCADE,
        budget_ms: float = 400.0,
        frame_budget_ms: float = 25.0,
        lone_1d: bool = True,
        verify_ean: bool = True,
        frame_density: int = 2,
        clock: Callable[[], float] = time.thread_time,
    ) -> None:
        unknown = [n for n in (*cascade, *frame_cascade) if n not in _RECIPES and n not in _MULTI]
        if unknown:
            raise ValueError(f"unknown cascade steps: {unknown}")
        self.cascade = tuple(cascade)
        self.frame_cascade = tuple(frame_cascade)
        self.budget_ms = budget_ms
        self.frame_budget_ms = frame_budget_ms
        self.lone_1d = lone_1d
        self.verify_ean = verify_ean
        self._clock = clock
        self._zbar = ZBarScanner()
        self._zbar_video = ZBarScanner(density=frame_density)

    def close(self) -> None:
        self._zbar.close()
        self._zbar_video.close()

    # -- still images ---------------------------------------------------------------------------

    def decode_image(self, image: np.ndarray) -> list[Reading]:
        """Every code the cascade can confirm in a still image (BGR or grayscale)."""
        gray = _prepare(to_gray(image))
        return self._run(gray, self.cascade, self.budget_ms, lone_1d=self.lone_1d)

    # -- video ------------------------------------------------------------------------------------

    def decode_frame(self, frame: np.ndarray) -> list[Reading]:
        """Codes in one video frame: one plain pass, the cascade only on evidence of a code."""
        start = self._clock()
        gray = to_gray(frame)
        found = [
            Reading(s.symbology, symbol_text(s), tuple(map(float, s.box)), 1, s.gs1, s.data)  # type: ignore[arg-type]
            for s in self._zbar_video.scan(gray)
            if is_fragment(gray, s) is not True
        ]
        if found:
            return found
        roi = code_evidence(gray)
        if roi is None:
            return []
        left = self.frame_budget_ms - (self._clock() - start) * 1000.0
        if left <= 0:
            return []
        x0, y0, x1, y1 = roi
        patch = gray[y0:y1, x0:x1]
        steps = self.frame_cascade
        if patch.size > 0.25 * gray.size:
            # A code that big would have been read by the plain pass; rescue only contrast.
            steps = tuple(n for n in steps if not n.startswith(("x2", "x3")))
        readings = self._run(patch, steps, left, lone_1d=True)
        return [
            Reading(
                r.symbology,
                r.text,
                (r.box[0] + x0, r.box[1] + y0, r.box[2] + x0, r.box[3] + y0),
                r.votes,
                r.gs1,
                r.data,
            )
            for r in readings
        ]

    # -- the cascade -----------------------------------------------------------------------------

    def _run(
        self, gray: np.ndarray, steps: Iterable[str], budget_ms: float, *, lone_1d: bool
    ) -> list[Reading]:
        start = self._clock()
        work = _Work(gray)
        ballot = _Ballot()
        fnc4_tries: dict[bytes, list[bytes | None]] = {}
        for name in steps:
            if name in _MULTI:
                if any(c.family == "2d" for c in ballot.clusters):
                    continue
                images = _MULTI[name](work)
            else:
                images = [work.get(name)]
            for img, m in images:
                for symbol in self._zbar.scan(img):
                    ballot.add(
                        _with_fnc4(img, symbol, fnc4_tries),
                        _map_box(symbol.box, m),
                        name,
                        is_fragment(img, symbol),
                    )
            if ballot.settled():
                break
            if (self._clock() - start) * 1000.0 > budget_ms:
                break
        check = None
        if self.verify_ean:

            def check(boxes: Sequence[Box], code13: str) -> Verdict:
                return verify_ean13(gray, boxes, code13)

        # EAN-13/UPC-A winners were checked by `check`, Code 128 got its FNC4 back as it was
        # read: nothing more to do here.
        return [reading for reading, _ in ballot.decide(lone_1d=lone_1d, check=check)]

    def second_opinion(self, gray: np.ndarray, reading: Reading) -> Reading | None:
        """A read checked against the label's own scan lines: an EAN-13/UPC-A is kept, corrected
        or dropped (None) by `scanner.verify`; a Code 128 gets back the FNC4 characters ZBar
        loses (`scanner.code128`). Others pass unchanged. `gray` is the image the reading's box
        refers to."""
        if reading.symbology == "Code 128":
            fuller = code128_rebuild(to_gray(gray), reading.box, reading.text)
            if fuller is None:
                return reading
            return Reading(
                reading.symbology,
                fuller,
                reading.box,
                reading.votes,
                reading.gs1,
                fuller.encode("latin-1"),
            )
        if not self.verify_ean:
            return reading
        result = checked(to_gray(gray), reading.symbology, reading.text, reading.box)
        if result is None:
            return None
        symbology, text = result
        if (symbology, text) == (reading.symbology, reading.text):
            return reading
        return Reading(symbology, text, reading.box, reading.votes, reading.gs1, text.encode())


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit grayscale. ZBar reads one channel only; in an OpenCV (BGR) frame that would be blue."""
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # type: ignore[call-overload]
    return image


def _prepare(gray: np.ndarray) -> np.ndarray:
    """A scan line (an image only a few pixels high or wide) is stretched so ZBar sees bars."""
    h, w = gray.shape[:2]
    if h < 16:
        gray = cv2.resize(gray, (w, 32), interpolation=cv2.INTER_NEAREST)
    if w < 16:
        gray = cv2.resize(gray, (32, gray.shape[0]), interpolation=cv2.INTER_NEAREST)
    return gray


def code_evidence(
    gray: np.ndarray, *, thumb_width: int = 480, edge: float = 300.0
) -> tuple[int, int, int, int] | None:
    """The region of a frame that looks like a code (a patch of dense, strong edges), or None.

    Works on a thumbnail: Scharr gradient magnitude above a fixed contrast (a printed code is
    black on white, camera noise and soft textures stay far below it), closed into blobs; the
    largest blob that is big enough is the candidate. Well under a millisecond on a 720p frame."""
    h, w = gray.shape[:2]
    scale = min(1.0, thumb_width / float(w))
    small = (
        cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if scale < 1
        else gray
    )
    gx = cv2.Scharr(small, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(small, cv2.CV_32F, 0, 1)
    strong = ((np.abs(gx) + np.abs(gy)) > edge).astype(np.uint8) * 255
    if cv2.countNonZero(strong) < 0.002 * strong.size:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))
    blobs = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, kernel)
    blobs = cv2.erode(blobs, kernel[:3, :3], iterations=1)
    contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    biggest = max(contours, key=cv2.contourArea)
    bx, by, bw, bh = cv2.boundingRect(biggest)
    if cv2.contourArea(biggest) < 0.0008 * small.shape[0] * small.shape[1] or min(bw, bh) < 6:
        return None
    pad = 4 + max(bw, bh) // 5  # keep the code's quiet zone in the patch
    x0 = max(0, int((bx - pad) / scale))
    y0 = max(0, int((by - pad) / scale))
    x1 = min(w, int((bx + bw + pad) / scale))
    y1 = min(h, int((by + bh + pad) / scale))
    return x0, y0, x1, y1
