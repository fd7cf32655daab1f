"""Barcode keys: one stored form per product code, so the many spellings of a GTIN meet.

A scanner may send the same item as UPC-A (12 digits), EAN-13 with a leading zero, or GTIN-14;
all of them are stored and looked up as the 14-digit GTIN. Anything that is not a numeric GTIN with
a valid check digit (shop-internal codes, QR payloads) is kept as typed, minus surrounding spaces.

The rule is written once, in sync.protocol.catalog_file, because HQ keys its catalogue's barcodes
the same way (and may not import the till's code); this module is the till's name for it."""

from __future__ import annotations

from sync.protocol.catalog_file import (
    GTIN_LENGTHS,
    barcode_problem,
    check_digit,
    ean13,
    is_valid_gtin,
    looks_like_gtin,
    lookup_key,
    upc_e_as_upc_a,
)

__all__ = [
    "GTIN_LENGTHS",
    "barcode_problem",
    "check_digit",
    "ean13",
    "is_valid_gtin",
    "looks_like_gtin",
    "lookup_key",
    "upc_e_as_upc_a",
]
