"""`pos scan FILE...` as staff use it when a label will not scan."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from pos.cli import cli
from tests.scanner.conftest import linear_image, on_canvas, qr_image, write_video


def run(*args: str):
    return CliRunner().invoke(cli, ["scan", *args])


def test_prints_one_line_per_code_with_its_meaning(tmp_path: Path) -> None:
    image = tmp_path / "label.png"
    cv2.imwrite(str(image), on_canvas([linear_image("ean13", "201234501234")]))
    qr = tmp_path / "badge.png"
    cv2.imwrite(str(qr), qr_image("GUIDE:G0042"))
    result = run(str(image), str(qr))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert "EAN-13: 2012345012349" in lines[0]
    assert "variable_measure" in lines[0] and "price_minor=1234" in lines[0]
    assert "QR Code: GUIDE:G0042" in lines[1] and "guide value=G0042" in lines[1]


def test_reads_a_video_once_per_code(tmp_path: Path) -> None:
    blank = np.full((480, 640, 3), 215, np.uint8)
    video = write_video(
        tmp_path / "clip.avi", [blank] + [on_canvas([qr_image("MEMBER:88001234")])] * 6 + [blank]
    )
    result = run(str(video))
    assert result.exit_code == 0, result.output
    assert result.output.count("MEMBER:88001234") == 1
    assert "frame 1" in result.output


def test_nothing_read_or_unreadable_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((100, 100, 3), 255, np.uint8))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    result = run(str(empty), str(junk), str(tmp_path / "missing.png"))
    assert result.exit_code == 1
    assert "no code could be read" in result.output
    assert "cannot read this file" in result.output
    assert "no such file" in result.output
