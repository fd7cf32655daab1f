"""Barcode keys at HQ: the till's rule, written once in sync.protocol.catalog_file, so UPC-A,
EAN-13, GTIN-14 (and UPC-E) spellings of one code collide at HQ exactly as they do at the till.
HQ calls the key ``barcode_key``."""

from __future__ import annotations

from sync.protocol.catalog_file import barcode_problem, check_digit
from sync.protocol.catalog_file import lookup_key as barcode_key

__all__ = ["barcode_key", "barcode_problem", "check_digit"]
