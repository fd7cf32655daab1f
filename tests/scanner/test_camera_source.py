"""Codes made at test time, played as a video through the camera source (cv2.VideoCapture, the
same code path as a real camera), and a camera that disappears and comes back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner import (
    CameraSource,
    Debouncer,
    Decoder,
    ImageFileSource,
    ScanPipeline,
    SourceError,
)
from scanner.decode import code_evidence
from tests.scanner.conftest import linear_image, on_canvas, qr_image, write_video


def scans(source, **kwargs) -> list[tuple[str, str | None, str]]:
    return [(e.kind, e.symbology, e.text) for e in ScanPipeline(source, **kwargs)]


def test_generated_codes_in_a_video_file_are_read_through_the_camera_source(
    tmp_path: Path, blank: np.ndarray
) -> None:
    qr = on_canvas([qr_image("https://shop.example.com/p/A-1002")])
    ean = on_canvas([linear_image("ean13", "400781732709")])
    code128 = on_canvas([linear_image("code128", "SKU:B-77")])
    both = on_canvas([qr_image("MEMBER:88001234", scale=4), linear_image("ean8", "5512345")])
    video = write_video(
        tmp_path / "counter.avi",
        [blank] * 2
        + [qr] * 4
        + [blank] * 6
        + [ean] * 4
        + [blank] * 6
        + [code128] * 4
        + [blank] * 6
        + [both] * 4
        + [blank] * 2,
    )
    found = scans(CameraSource(str(video)))
    assert found == [
        ("product", "QR Code", "https://shop.example.com/p/A-1002"),
        ("product", "EAN-13", "4007817327098"),
        ("product", "Code 128", "SKU:B-77"),
        ("member", "QR Code", "MEMBER:88001234"),
        ("product", "EAN-8", "55123457"),
    ] or sorted(found[-2:]) == sorted(
        [("member", "QR Code", "MEMBER:88001234"), ("product", "EAN-8", "55123457")]
    )
    assert len(found) == 5


def test_one_label_held_in_view_is_one_scan_and_shown_again_is_two(
    tmp_path: Path, blank: np.ndarray
) -> None:
    ean = on_canvas([linear_image("ean13", "400781732709")])
    video = write_video(tmp_path / "twice.avi", [ean] * 8 + [blank] * 8 + [ean] * 8, fps=10)

    clock = iter(i * 0.1 for i in range(1000))  # frames 0.1 s apart, whatever the machine
    debouncer = Debouncer(clock=lambda: next(clock), gone_after=0.5, repeat_after=None)
    found = scans(CameraSource(str(video)), debouncer=debouncer)
    assert [t for _, _, t in found] == ["4007817327098", "4007817327098"]


def test_an_image_sequence_is_read_like_a_video(tmp_path: Path, blank: np.ndarray) -> None:
    frames = [blank, on_canvas([qr_image("GUIDE:G7")]), on_canvas([qr_image("GUIDE:G7")]), blank]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"shot_{i:03d}.png"), frame)
    assert scans(CameraSource(str(tmp_path / "shot_%03d.png"))) == [
        ("guide", "QR Code", "GUIDE:G7")
    ]


def test_every_generated_symbology_reads_from_a_still_image(tmp_path: Path) -> None:
    images = {
        "EAN-13": linear_image("ean13", "690123456789"),
        "EAN-8": linear_image("ean8", "9638507"),
        "UPC-A": linear_image("upca", "03600029145"),
        "Code 128": linear_image("code128", "PICKUP:ORD-9:4821"),
        "Code 39": linear_image("code39", "ABC-123"),
        "ITF": linear_image("itf", "30712345000010"),
        "QR Code": qr_image("PICKUP:ORD-9:4821"),
    }
    paths = []
    for name, image in images.items():
        path = tmp_path / f"{name.replace(' ', '_')}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    found = {sym: (kind, text) for kind, sym, text in scans(ImageFileSource(paths))}
    assert found == {
        "EAN-13": ("product", "6901234567892"),
        "EAN-8": ("product", "96385074"),
        "UPC-A": ("product", "036000291452"),
        "Code 128": ("pickup", "PICKUP:ORD-9:4821"),
        "Code 39": ("unknown", "ABC-123"),
        "ITF": ("product", "30712345000010"),
        "QR Code": ("pickup", "PICKUP:ORD-9:4821"),
    }


def test_shift_jis_qr_made_at_test_time(tmp_path: Path) -> None:
    path = tmp_path / "sjis.png"
    cv2.imwrite(str(path), qr_image("商品コード：ラベル", encoding="shift_jis"))
    assert scans(ImageFileSource([path])) == [("unknown", "QR Code", "商品コード：ラベル")]


def test_a_code_with_a_bad_check_digit_is_counted_never_passed_on(tmp_path: Path) -> None:
    # A wallet-style QR holding a GTIN with a wrong check digit: read fine, refused by validation.
    path = tmp_path / "bad.png"
    cv2.imwrite(str(path), qr_image("SKU:"))
    pipeline = ScanPipeline(ImageFileSource([path]))
    assert list(pipeline) == []
    assert pipeline.rejected == 1
    assert pipeline.last_rejection is not None


def test_an_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(SourceError, match="not an image"):
        list(ImageFileSource([bad]))
    with pytest.raises(SourceError, match="cannot open"):
        list(CameraSource(str(tmp_path / "missing.avi")))


def test_a_camera_that_disappears_is_retried_with_backoff_and_reported(
    tmp_path: Path, blank: np.ndarray
) -> None:
    device = tmp_path / "cam.avi"  # a "device" that is not there yet
    statuses = []
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the camera is plugged back in
            write_video(device, [blank] * 2 + [on_canvas([qr_image("GUIDE:G9")])] * 3)
        if len(sleeps) == 4:  # ...and pulled out again for good
            device.unlink()

    source = CameraSource(
        str(device),
        live=True,
        on_status=statuses.append,
        backoff=(0.5, 1, 2),
        sleep=sleep,
        max_attempts=6,
    )
    events = []
    for event in ScanPipeline(source):
        events.append(event.value)
    assert events == ["G9"]
    assert sleeps[:3] == [0.5, 1, 2]
    states = [s.state for s in statuses]
    assert states[:3] == ["lost", "lost", "lost"]
    assert "reading" in states[3:]
    assert states[-1] == "lost"
    assert "giving up" in statuses[-1].detail


def test_cascade_stays_off_an_empty_frame() -> None:
    empty = np.full((720, 1280), 170, np.uint8)
    rng = np.random.default_rng(1)
    textured = cv2.GaussianBlur(empty + rng.integers(0, 25, empty.shape, dtype=np.uint8), (5, 5), 0)
    assert code_evidence(empty) is None
    assert code_evidence(textured) is None

    calls = []
    decoder = Decoder(lone_1d=False)
    original = decoder._run
    decoder._run = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    assert decoder.decode_frame(textured) == []
    assert calls == []


def test_a_hard_frame_with_evidence_gets_the_cascade() -> None:
    # A small QR code far from the camera: the plain pass misses it, the cascade on its patch
    # (enlarged) reads it.
    qr = qr_image("GUIDE:G0042", scale=2)
    small = cv2.resize(qr, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 200, np.uint8)
    frame[300 : 300 + small.shape[0], 600 : 600 + small.shape[1]] = small
    decoder = Decoder(lone_1d=False, frame_budget_ms=1000)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert decoder._zbar_video.scan(gray) == []
    assert code_evidence(gray) is not None
    assert [r.text for r in decoder.decode_frame(frame)] == ["GUIDE:G0042"]
