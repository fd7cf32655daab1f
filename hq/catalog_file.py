"""Reading a catalogue file for ``hq catalog import``: the same CSV / JSON Lines format as the
till's ``pos catalog import`` (columns sku, name, price, tax_rate, barcodes, initial_stock).

  sku, name      required text
  price          tax-inclusive, in yuan, decimal text with at most 2 decimals ("12.50"); in JSON
                 Lines a number is read exactly (as a Decimal, never through a float)
  tax_rate       percent, at most 2 decimals ("13", "6.5")
  barcodes       CSV: codes separated by "|" or ";"; JSON Lines: a list of strings. Numeric
                 EAN/UPC/GTIN codes must carry a valid check digit.
  initial_stock  accepted and ignored: stock is the store's fact, HQ learns it from the
                 store's movements

Bad rows are reported with their line number and skipped. HQ may not import ``pos``, so this is a
small second reader of that format (and of the GTIN check digit); moving the till's pure row
reader into a module both sides import would remove the duplicate."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from hq.admin import CatalogItem
from hq.gtin import barcode_key, barcode_problem

COLUMNS = ("sku", "name", "price", "tax_rate", "barcodes", "initial_stock")
REQUIRED = ("sku", "name", "price", "tax_rate")
_AMOUNT = re.compile(r"\d{1,12}(\.\d{0,2})?")
_RATE = re.compile(r"\d{1,3}(\.\d{0,2})?")


class CatalogFileError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, no header)."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def parse_price(value: Any) -> int:
    """Yuan as exact decimal text (or int/Decimal from JSON) -> fen."""
    if isinstance(value, bool | float):
        raise ValueError("not an amount")
    text = format(value, "f") if isinstance(value, Decimal) else str(value).strip()
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"not an amount with at most 2 decimals: {value!r}")
    return int(Decimal(text) * 100)


def parse_rate(value: Any) -> int:
    """Percent -> basis points (13 -> 1300)."""
    if isinstance(value, bool | float):
        raise ValueError("not a rate")
    text = (
        format(value, "f") if isinstance(value, Decimal) else str(value).strip().removesuffix("%")
    )
    if not _RATE.fullmatch(text.strip()):
        raise ValueError(f"not a tax rate in percent: {value!r}")
    bp = int(Decimal(text) * 100)
    if bp > 10_000:
        raise ValueError(f"tax rate above 100%: {value!r}")
    return bp


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
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{")
    problems: list[RowProblem] = []
    records = _jsonl(text, problems) if jsonl else _csv(io.StringIO(text, newline=""), problems)
    items: list[tuple[int, CatalogItem]] = []
    skus: dict[str, int] = {}
    codes: dict[str, int] = {}
    for line, rec in records:
        item = _item(line, rec, problems)
        if item is None:
            continue
        if item.sku in skus:
            problems.append(
                RowProblem(line, f"sku {item.sku} already given on line {skus[item.sku]}")
            )
            continue
        clash = next((c for c in item.barcodes if barcode_key(c) in codes), None)
        if clash is not None:
            problems.append(
                RowProblem(
                    line,
                    f"sku {item.sku}: barcode {clash} already used on line {codes[barcode_key(clash)]}",
                )
            )
            continue
        skus[item.sku] = line
        for c in item.barcodes:
            codes[barcode_key(c)] = line
        items.append((line, item))
    return items, problems


def _item(line: int, rec: dict[str, Any], problems: list[RowProblem]) -> CatalogItem | None:
    sku, name = rec.get("sku"), rec.get("name")
    if not isinstance(sku, str) or not sku.strip():
        problems.append(RowProblem(line, "missing sku"))
        return None
    sku = sku.strip()
    if len(sku) > 64:
        problems.append(RowProblem(line, "sku longer than 64 characters"))
        return None
    if not isinstance(name, str) or not name.strip():
        problems.append(RowProblem(line, f"sku {sku}: missing name"))
        return None
    try:
        price = parse_price(rec.get("price"))
    except (ValueError, InvalidOperation) as error:
        problems.append(RowProblem(line, f"sku {sku}: bad price {rec.get('price')!r} ({error})"))
        return None
    try:
        rate = parse_rate(rec.get("tax_rate"))
    except (ValueError, InvalidOperation) as error:
        problems.append(
            RowProblem(line, f"sku {sku}: bad tax_rate {rec.get('tax_rate')!r} ({error})")
        )
        return None
    raw_codes = rec.get("barcodes")
    if raw_codes is None or raw_codes == "":
        codes: list[str] = []
    elif isinstance(raw_codes, str):
        codes = [c.strip() for c in raw_codes.replace(";", "|").split("|") if c.strip()]
    elif isinstance(raw_codes, list) and all(isinstance(c, str) for c in raw_codes):
        codes = [c.strip() for c in raw_codes if c.strip()]
    else:
        problems.append(RowProblem(line, f"sku {sku}: barcodes must be a list of text codes"))
        return None
    for c in codes:
        why = barcode_problem(c)
        if why:
            problems.append(RowProblem(line, f"sku {sku}: {why}"))
            return None
    if len({barcode_key(c) for c in codes}) != len(codes):
        problems.append(RowProblem(line, f"sku {sku}: a barcode is given twice"))
        return None
    return CatalogItem(
        sku=sku, name=name.strip(), tax_rate_bp=rate, barcodes=tuple(codes), price=price
    )


def _csv(text: IO[str], problems: list[RowProblem]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CatalogFileError("the file is empty: expected a header row") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CatalogFileError(
            f"the header has no {', '.join(missing)} column; expected {', '.join(COLUMNS)}"
        )
    for name in header:
        if name not in COLUMNS:
            problems.append(RowProblem(1, f"unknown column {name!r} ignored"))
    start = 2
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row:
            continue
        if len(row) > len(header):
            problems.append(
                RowProblem(line, f"{len(row)} fields where the header has {len(header)}")
            )
            continue
        yield line, dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))


def _jsonl(text: str, problems: list[RowProblem]) -> Iterator[tuple[int, dict[str, Any]]]:
    unknown: set[str] = set()
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as error:
            problems.append(RowProblem(line, f"not valid JSON ({error.msg})"))
            continue
        if not isinstance(obj, dict):
            problems.append(RowProblem(line, "expected one JSON object per line"))
            continue
        for key in sorted(obj.keys() - set(COLUMNS) - unknown):
            problems.append(RowProblem(line, f"unknown column {key!r} ignored"))
            unknown.add(key)
        missing = [c for c in REQUIRED if c not in obj]
        if missing:
            problems.append(RowProblem(line, f"missing {', '.join(missing)}"))
            continue
        yield line, obj
