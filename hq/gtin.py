"""Barcode keys at HQ: the till's ``lookup_key`` rule, kept here because ``hq`` may not import
``pos`` (a candidate for a module both sides import). A numeric GTIN-8/12/13/14 with a valid
check digit is keyed as the 14-digit GTIN, so UPC-A, EAN-13 and GTIN-14 spellings of one code
collide as they do at the till; anything else is keyed as its stripped text."""

from __future__ import annotations

GTIN_LENGTHS = frozenset({8, 12, 13, 14})


def check_digit(body: str) -> int:
    """GS1 check digit of the digits before it (weights 3, 1, 3, ... from the right)."""
    total = sum((3 if i % 2 == 0 else 1) * int(d) for i, d in enumerate(reversed(body)))
    return -total % 10


def _gtin_shaped(s: str) -> bool:
    return s.isascii() and s.isdigit() and len(s) in GTIN_LENGTHS


def barcode_key(code: str) -> str:
    s = code.strip()
    if _gtin_shaped(s) and check_digit(s[:-1]) == int(s[-1]):
        return s.zfill(14)
    return s


def barcode_problem(code: str) -> str | None:
    """Why a barcode cannot go into the catalogue, or None."""
    s = code.strip()
    if not s:
        return "empty barcode"
    if _gtin_shaped(s):
        want = check_digit(s[:-1])
        if want != int(s[-1]):
            return f"barcode {s}: EAN/UPC check digit is {s[-1]}, expected {want}"
    if len(s) > 128:
        return "barcode longer than 128 characters"
    return None
