"""Reading a catalogue file for ``hq catalog import``: the till's CSV / JSON Lines format, read
by the same code (sync.protocol.catalog_file: the columns, the row checks, the barcode keys), so
a file gives the same good rows and the same bad lines at HQ as at a till.

HQ's part is the file itself (read whole, UTF-8) and what it keeps of a row: a CatalogItem.
``initial_stock`` is checked like every column but not kept: stock is the store's fact, and HQ
learns it from the store's movements."""

from __future__ import annotations

import io
from pathlib import Path

from hq.admin import CatalogItem
from sync.protocol.catalog_file import (
    FileFormatError,
    ReadReport,
    RowProblem,
    Validator,
    csv_records,
    guess_format,
    jsonl_records,
)
from sync.protocol.catalog_file import price_field as parse_price

__all__ = ["CatalogFileError", "RowProblem", "parse_price", "read_catalog"]


class CatalogFileError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, no header)."""


def read_catalog(path: Path) -> tuple[list[tuple[int, CatalogItem]], list[RowProblem]]:
    """All good rows (with their line numbers) and the problems of the bad ones."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CatalogFileError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CatalogFileError(
            f"{path} is not UTF-8 text; save it as UTF-8 and import again"
        ) from error
    report = ReadReport(max_listed=None)
    lines = io.StringIO(text, newline="")
    if guess_format(path.suffix, lambda: text[:64]) == "jsonl":
        records = jsonl_records(lines, report)
    else:
        records = csv_records(lines, report)
    validator = Validator(report)
    items: list[tuple[int, CatalogItem]] = []
    try:
        for line, sku, name, price, rate, keyed, _units in validator.rows(records):
            item = CatalogItem(
                sku=sku,
                name=name,
                tax_rate_bp=rate,
                barcodes=tuple(code for _key, code in keyed),
                price=price,
            )
            items.append((line, item))
    except FileFormatError as error:
        raise CatalogFileError(str(error)) from error
    return items, report.problems
