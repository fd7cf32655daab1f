"""How well and how fast the scanner reads: photos with known texts, and a 720p video frame.

    benchmarks/decode.py --data ../shared/data/barcodes [--json] [--quick] [--backend zbar|zxing]

DIR holds images and a `manifest.csv` with columns `file,symbology,expected_text`. An image
passes when the expected text is among the texts the scanner returns; EAN/UPC texts are compared
as 14-digit GTINs (so UPC-A "036000291452", EAN-13 "0036000291452" and a UPC-E expanded to
UPC-A are the same code); other texts are compared with control characters escaped as `<CR>`,
`<LF>`, `<GS>`, `<U+XX>`. `wrong` counts images where the scanner returned something, but not
the expected text. `fps_720p` is decode_frame() on a 1280x720 frame holding one EAN-13 and one
QR code, on one core; `fps_720p_empty` the same on a frame with no code. With `--json` the last
line printed is one JSON object."""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.decode import Decoder, Reading  # noqa: E402
from scanner.errors import ScanRejected  # noqa: E402
from scanner.parse import parse_text  # noqa: E402
from scanner.text import escape_non_graphical  # noqa: E402

EAN_FAMILY = {"EAN-13", "EAN-8", "UPC-A", "UPC-E"}


def reading_key(reading: Reading) -> str | None:
    if reading.symbology in EAN_FAMILY:
        try:
            return parse_text(reading.text, symbology=reading.symbology, source="image").gtin
        except ScanRejected:
            return None
    return escape_non_graphical(reading.text)


def expected_key(symbology: str, text: str) -> str:
    return text.zfill(14) if symbology in EAN_FAMILY else text


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    times = [float(r["ms"]) for r in rows]  # type: ignore[arg-type]
    passed = sum(1 for r in rows if r["passed"])
    return {
        "passed": passed,
        "total": len(rows),
        "pass_rate": round(passed / len(rows), 4) if rows else 0.0,
        "wrong": sum(1 for r in rows if r["wrong"]),
        "median_ms": round(statistics.median(times), 2) if times else 0.0,
        "p95_ms": round(percentile(times, 0.95), 2),
    }


def make_decoder(backend: str) -> Decoder:
    if backend == "zxing":
        from scanner.zxing_backend import ZxingDecoder

        return ZxingDecoder()  # type: ignore[return-value]
    return Decoder()


def run_photos(data: Path, backend: str, quick: bool, verbose: bool) -> list[dict[str, object]]:
    with (data / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    if quick:
        manifest = manifest[::6]
    decoder = make_decoder(backend)
    rows: list[dict[str, object]] = []
    for item in manifest:
        image = cv2.imread(str(data / item["file"]), cv2.IMREAD_COLOR)
        start = time.perf_counter()
        readings = decoder.decode_image(image) if image is not None else []
        ms = (time.perf_counter() - start) * 1000.0
        keys = {k for k in (reading_key(r) for r in readings) if k is not None}
        want = expected_key(item["symbology"], item["expected_text"])
        passed = want in keys
        row = {
            "file": item["file"],
            "symbology": item["symbology"],
            "passed": passed,
            "wrong": bool(keys) and not passed,
            "ms": ms,
        }
        rows.append(row)
        if verbose and not passed:
            status = "WRONG" if row["wrong"] else "miss"
            print(f"{status:5} {item['file']}: want {want!r}, got {sorted(keys)!r}")
    return rows


def frame_720p(with_codes: bool) -> np.ndarray:
    """A 1280x720 BGR frame: a textured counter, with an EAN-13 label and a QR code on it."""
    rng = np.random.default_rng(7)
    frame = np.full((720, 1280, 3), 170, np.uint8)
    frame = cv2.add(frame, rng.integers(0, 25, frame.shape, dtype=np.uint8))
    frame = cv2.GaussianBlur(frame, (5, 5), 0)
    if not with_codes:
        return frame
    import barcode
    import segno
    from barcode.writer import ImageWriter

    buf = io.BytesIO()
    segno.make("https://shop.example.com/p/A-1002", error="m").save(
        buf, kind="png", scale=5, border=4
    )
    qr = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    buf = io.BytesIO()
    barcode.get("ean13", "400781732709", writer=ImageWriter()).write(
        buf, options={"module_width": 0.25, "module_height": 10, "dpi": 200, "quiet_zone": 3}
    )
    ean = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    frame[120 : 120 + qr.shape[0], 160 : 160 + qr.shape[1]] = qr
    frame[300 : 300 + ean.shape[0], 700 : 700 + ean.shape[1]] = ean
    return frame


def fps(decoder: Decoder, frame: np.ndarray, seconds: float) -> tuple[float, list[Reading]]:
    readings = decoder.decode_frame(frame)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        decoder.decode_frame(frame)
        n += 1
    return n / (time.perf_counter() - start), readings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with manifest.csv")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--quick", action="store_true", help="every 6th image, short fps run")
    parser.add_argument("--backend", choices=["zbar", "zxing"], default="zbar")
    parser.add_argument("--verbose", action="store_true", help="list every image not passed")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    rows = run_photos(args.data, args.backend, args.quick, args.verbose)
    per_symbology = {
        name: summarise([r for r in rows if r["symbology"] == name])
        for name in sorted({str(r["symbology"]) for r in rows})
    }
    overall = summarise(rows)
    decoder = make_decoder(args.backend)
    seconds = 0.5 if args.quick else 3.0
    fps_codes, readings = fps(decoder, frame_720p(True), seconds)
    fps_empty, _ = fps(decoder, frame_720p(False), seconds)
    wrong_files = sorted(str(r["file"]) for r in rows if r["wrong"])
    result = {
        **overall,
        "fps_720p": round(fps_codes, 1),
        "fps_720p_empty": round(fps_empty, 1),
        "fps_720p_read": sorted(r.symbology for r in readings),
        "backend": args.backend,
        "wrong_files": wrong_files,
        "per_symbology": per_symbology,
    }
    if not args.json:
        for name, s in per_symbology.items():
            print(
                f"{name:9} {s['passed']:>3}/{s['total']:<3} pass {s['pass_rate']:.3f} "
                f"wrong {s['wrong']}  median {s['median_ms']} ms  p95 {s['p95_ms']} ms"
            )
        print(
            f"overall   {overall['passed']}/{overall['total']} pass {overall['pass_rate']:.3f} "
            f"wrong {overall['wrong']} {wrong_files}  median {overall['median_ms']} ms  "
            f"p95 {overall['p95_ms']} ms"
        )
        print(f"fps_720p {fps_codes:.1f} (read {result['fps_720p_read']}), empty {fps_empty:.1f}")
    else:
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
