"""Barcode keys: one stored form per product code, so the many spellings of a GTIN meet.

A scanner may send the same item as UPC-A (12 digits), EAN-13 with a leading zero, or GTIN-14;
all of them are stored and looked up as the 14-digit GTIN. Anything that is not a numeric GTIN with
a valid check digit (shop-internal codes, QR payloads) is kept as typed, minus surrounding spaces."""

from __future__ import annotations

GTIN_LENGTHS = frozenset({8, 12, 13, 14})


def check_digit(body: str) -> int:
    """GS1 check digit of the digits before it (weights 3,1,3,... from the right).

    Sums byte values in C (a catalogue load checks millions of codes); `body` must be ASCII
    digits."""
    raw = body.encode("ascii")
    tripled = raw[::-2]  # rightmost digit first: weight 3
    single = raw[-2::-2]
    total = 3 * (sum(tripled) - 48 * len(tripled)) + sum(single) - 48 * len(single)
    return -total % 10


def _is_digits(code: str) -> bool:
    return code.isascii() and code.isdigit()


def looks_like_gtin(code: str) -> bool:
    """Numeric with a GTIN length: such a code must carry a valid check digit."""
    return _is_digits(code) and len(code) in GTIN_LENGTHS


def is_valid_gtin(code: str) -> bool:
    return looks_like_gtin(code) and check_digit(code[:-1]) == ord(code[-1]) - 48


def upc_e_as_upc_a(code: str) -> str | None:
    """The UPC-A a valid 8-digit UPC-E code stands for, or None."""
    if len(code) != 8 or code[0] not in "01" or not _is_digits(code):
        return None
    # imported here: biip takes a tenth of a second to import, and only UPC-E codes need it
    from biip import ParseError
    from biip.upc import Upc

    try:
        return str(Upc.parse(code).as_upc_a())
    except (ParseError, ValueError):
        return None


def lookup_key(code: str) -> str:
    """The key a barcode is stored and looked up under (see module docstring).

    An 8-digit code starting with 0 or 1 that is a valid UPC-E is expanded to its UPC-A first
    (EAN-8 codes with those prefixes are shop-internal, so the UPC-E reading wins)."""
    stripped = code.strip()
    upc_a = upc_e_as_upc_a(stripped)
    if upc_a is not None:
        return upc_a.zfill(14)
    if is_valid_gtin(stripped):
        return stripped.zfill(14)
    return stripped


def barcode_problem(code: str) -> str | None:
    """Why a barcode cannot be loaded into the catalogue, or None when it can."""
    stripped = code.strip()
    if not stripped:
        return "empty barcode"
    if (
        looks_like_gtin(stripped)
        and not is_valid_gtin(stripped)
        and upc_e_as_upc_a(stripped) is None
    ):
        if len(stripped) == 8 and stripped[0] in "01":
            return f"barcode {stripped}: check digit {stripped[-1]} fits neither EAN-8 nor UPC-E"
        want = check_digit(stripped[:-1])
        return f"barcode {stripped}: EAN/UPC check digit is {stripped[-1]}, expected {want}"
    if len(stripped) > 128:
        return "barcode longer than 128 characters"
    return None


def ean13(body12: str) -> str:
    """Complete a 12-digit body into an EAN-13 code."""
    if len(body12) != 12 or not _is_digits(body12):
        raise ValueError(f"an EAN-13 body is 12 digits, got {body12!r}")
    return body12 + str(check_digit(body12))
