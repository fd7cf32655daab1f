"""The scan-line second opinion on EAN-13/UPC-A reads: it confirms a right number and never
lets a wrong one through."""

from __future__ import annotations

import cv2

from scanner.verify import checked, ean13_modules, verify_ean13
from tests.scanner.conftest import linear_image


def label():
    image = cv2.cvtColor(linear_image("ean13", "690123456789"), cv2.COLOR_BGR2GRAY)
    cols = (image < 128).any(axis=0).nonzero()[0]
    rows = (image < 128).any(axis=1).nonzero()[0]
    box = (float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1]) * 0.7)
    return image, box


def test_modules_of_an_ean13() -> None:
    modules = ean13_modules("6901234567892")
    assert len(modules) == 95
    assert modules.startswith("101") and modules.endswith("101")
    assert modules[45:50] == "01010"


def test_a_right_number_is_confirmed() -> None:
    image, box = label()
    verdict = verify_ean13(image, [box], "6901234567892")
    assert verdict.outcome == "confirmed"
    assert verdict.agree >= verdict.lines - 1


def test_a_wrong_number_is_never_confirmed() -> None:
    image, box = label()
    # Another checksum-valid number of the same shape, as a misread would give.
    verdict = verify_ean13(image, [box], "6901234567748")
    assert verdict.outcome in ("replaced", "contradicted")
    assert verdict.text in (None, "6901234567892")
    assert checked(image, "EAN-13", "6901234567748", box) in (None, ("EAN-13", "6901234567892"))


def test_other_symbologies_pass_unchanged() -> None:
    image, box = label()
    assert checked(image, "QR Code", "GUIDE:G1", box) == ("QR Code", "GUIDE:G1")
