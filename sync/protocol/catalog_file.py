"""The catalogue file format that HQ (``hq catalog import``) and the till (``pos catalog import``)
both read, and the rules its values follow: one implementation, so a file gives the same rows,
the same bad lines and the same barcode keys on either side.

Pure: no files are opened here. The callers open a file and hand over its text lines (an open
text file, a ``StringIO``), and turn :class:`FileFormatError` into their own error family.

* the barcode key (:func:`lookup_key`): the 14-digit GTIN for a numeric EAN/UPC/GTIN code with a
  valid check digit (UPC-E expanded to its UPC-A first), anything else as typed minus
  surrounding spaces, so the spellings a scanner may send for one item meet;
* amounts (:func:`parse_amount`, :func:`parse_tax_rate`): exact decimal text to integer minor
  units and basis points, never through a float;
* rows (:func:`csv_records`, :func:`jsonl_records`, :class:`Validator`): line-numbered raw
  records, then checked rows; a bad row is reported with its line and skipped.

Standard library only (biip is loaded for UPC-E codes alone), so the till's domain may import it
without paying for pydantic."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

FORMAT_HELP = """\
One product per row, these columns (CSV needs a header row; a UTF-8 byte-order mark is fine):

\b
  sku            required, text (up to 64 characters)
  name           required, text (UTF-8; Chinese is fine)
  price          required: the tax-inclusive price in yuan as decimal text with at most
                 2 decimals ("12.50", "3"). In JSON Lines a number (12.5) is read the same
                 way, exactly, never through a float. There is no minor-units column.
  tax_rate       required: percent, at most 2 decimals ("13" = 13 %, "6.5" = 6.5 %)
  barcodes       optional: in CSV several codes separated by "|" or ";"; in JSON Lines a
                 list of strings. Numeric EAN/UPC/GTIN codes need a valid check digit.
  initial_stock  optional: whole units >= 0, recorded as an 'initial' stock movement for
                 SKUs new to this till (ignored for SKUs the till already has)

Bad rows (bad price or rate, missing sku or name, a SKU or barcode already given on an earlier
line or owned by another product, a wrong check digit) are reported with their line number and
skipped; the good rows load. An unknown column is reported once and ignored."""

COLUMNS = ("sku", "name", "price", "tax_rate", "barcodes", "initial_stock")
REQUIRED = ("sku", "name", "price", "tax_rate")
MAX_SKU = 64
MAX_NAME = 500
MAX_BARCODE = 128
MAX_RATE_BP = 10_000  # 100 %
MAX_LISTED_PROBLEMS = 1_000  # the rest are counted, not kept
GTIN_LENGTHS = frozenset({8, 12, 13, 14})


class CatalogFormatError(ValueError):
    """Base of this module's errors; messages are fit to show as they are."""


class FileFormatError(CatalogFormatError):
    """The file as a whole cannot be read (empty, no usable header): nothing should load."""


class AmountError(CatalogFormatError):
    """An amount or a tax rate that cannot be read or is out of range."""


# -- barcode keys -------------------------------------------------------------------------------


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
    """The key a barcode is stored and looked up under: the 14-digit GTIN of a numeric GTIN with
    a valid check digit, else the code as typed minus surrounding spaces.

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
    if len(stripped) > MAX_BARCODE:
        return f"barcode longer than {MAX_BARCODE} characters"
    return None


def ean13(body12: str) -> str:
    """Complete a 12-digit body into an EAN-13 code."""
    if len(body12) != 12 or not _is_digits(body12):
        raise ValueError(f"an EAN-13 body is 12 digits, got {body12!r}")
    return body12 + str(check_digit(body12))


# -- amounts ------------------------------------------------------------------------------------

# digits, optionally a point and at most two decimals: "12", "12.5", "12.50", ".5" is refused
_AMOUNT = re.compile(r"(\d{1,12})(?:\.(\d{0,2}))?")
_RATE = re.compile(r"(\d{1,3})(?:\.(\d{0,2}))?")


def parse_amount(text: str | Decimal) -> int:
    """Read an amount in major units ("12.5" -> 1250 fen).

    Accepts plain decimal text (or a Decimal, as JSON read with parse_float=Decimal gives), with
    at most two decimals; refuses negatives, exponents, separators and anything else with
    AmountError, and a float with TypeError."""
    if isinstance(text, float):
        raise TypeError(f"amount must not be a float (got {text!r}); pass text like '12.50'")
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise AmountError(f"not an amount: {text}")
        text = format(text, "f")
    if not isinstance(text, str):
        raise TypeError(f"amount must be text, got {type(text).__name__}")
    cleaned = text.strip()
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        if cleaned.startswith("-"):
            raise AmountError(f"amount must not be negative: {text!r}")
        raise AmountError(f"not an amount with at most 2 decimals: {text!r}")
    return int(Decimal(cleaned) * 100)


def parse_tax_rate(text: str | int | Decimal) -> int:
    """Read a tax rate given in percent ("13" -> 1300 basis points, "6.5" -> 650).

    One rule everywhere: the number is a percentage between 0 and 100, at most two decimals."""
    if isinstance(text, float):
        raise TypeError(f"tax rate must not be a float (got {text!r})")
    if isinstance(text, bool):
        raise TypeError("tax rate must not be a bool")
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, Decimal):
        if not text.is_finite():
            raise AmountError(f"not a tax rate: {text}")
        text = format(text, "f")
    if not isinstance(text, str):
        raise TypeError(f"tax rate must be text, got {type(text).__name__}")
    cleaned = text.strip().removesuffix("%").strip()
    if _RATE.fullmatch(cleaned) is None:
        raise AmountError(f"not a tax rate in percent (e.g. 13 or 6.5): {text!r}")
    bp = int(Decimal(cleaned) * 100)
    if bp > MAX_RATE_BP:
        raise AmountError(f"tax rate above 100%: {text!r}")
    return bp


def price_field(value: Any) -> int:
    """A price column as read from a file (CSV text, or a JSON string, integer or Decimal) in
    minor units."""
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, int):
        value = str(value)
    if value is None:
        raise AmountError("missing")
    return parse_amount(value)


def rate_field(value: Any) -> int:
    """A tax_rate column as read from a file, in basis points."""
    if value is None or value == "":
        raise AmountError("missing")
    return parse_tax_rate(value)


# -- problems -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ReadReport:
    """What reading found besides the good rows: skipped rows and why, unknown columns.

    `max_listed` problems are kept (None: all of them); the rest are only counted."""

    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    max_listed: int | None = field(default=MAX_LISTED_PROBLEMS, repr=False)

    def problem(self, line: int, message: str) -> None:
        """A row skipped for `message`."""
        self.skipped += 1
        if self.max_listed is None or len(self.problems) < self.max_listed:
            self.problems.append(RowProblem(line, message))

    def unknown_column(self, line: int, name: str) -> None:
        """A column this format does not have: reported once, ignored, no row skipped."""
        self.unknown_columns.append(name)
        self.problems.append(RowProblem(line, f"unknown column {name!r} ignored (reported once)"))


# -- reading rows -------------------------------------------------------------------------------

# A raw record: line number and the six fields as read (text in CSV; JSON values in JSONL), in
# the order sku, name, price, tax_rate, barcodes, initial_stock.
RawRecord = tuple[int, Any, Any, Any, Any, Any, Any]
FileKind = Literal["csv", "jsonl"]


def guess_format(suffix: str, head: Callable[[], str]) -> FileKind:
    """CSV or JSON Lines, from the file name's suffix, else from the file's first characters
    (`head()` is called only then)."""
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    return "jsonl" if head().lstrip("\ufeff \t\r\n").startswith("{") else "csv"


def csv_records(lines: Iterable[str], report: ReadReport) -> Iterator[RawRecord]:
    """Raw records of CSV text (opened with newline=""), numbered by the line each starts on.

    Raises FileFormatError when there is no usable header row."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise FileFormatError("The file is empty: expected a header row.") from None
    except csv.Error as exc:
        raise FileFormatError(f"Cannot read the header row: {exc}") from exc
    names = [h.strip().lower() for h in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]
    _check_columns(names, report, 1)
    index = {name: names.index(name) for name in COLUMNS if name in names}
    width = len(names)
    i_sku, i_name, i_price, i_rate = (index[c] for c in REQUIRED)
    i_codes = index.get("barcodes")
    i_qty = index.get("initial_stock")
    start = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = start
            start = reader.line_num + 1
            report.problem(line, f"unreadable CSV row ({exc})")
            continue
        line = start
        start = reader.line_num + 1
        if not row:
            continue
        if len(row) != width:
            if len(row) < width:
                row = row + [""] * (width - len(row))
            else:
                report.problem(line, f"{len(row)} fields where the header has {width}")
                continue
        yield (
            line,
            row[i_sku],
            row[i_name],
            row[i_price],
            row[i_rate],
            row[i_codes] if i_codes is not None else None,
            row[i_qty] if i_qty is not None else None,
        )


def jsonl_records(lines: Iterable[str], report: ReadReport) -> Iterator[RawRecord]:
    """Raw records of JSON Lines text, one object per line; numbers are read as Decimal."""
    known = set(COLUMNS)
    unknown_seen: set[str] = set()
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            report.problem(line, f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            report.problem(line, "expected one JSON object per line")
            continue
        extra = obj.keys() - known
        if extra - unknown_seen:
            for key in sorted(extra - unknown_seen):
                report.unknown_column(line, key)
            unknown_seen |= extra
        missing = [c for c in REQUIRED if c not in obj]
        if missing:
            report.problem(line, f"missing {', '.join(missing)}")
            continue
        yield (
            line,
            obj["sku"],
            obj["name"],
            obj["price"],
            obj["tax_rate"],
            obj.get("barcodes"),
            obj.get("initial_stock"),
        )


def _check_columns(names: list[str], report: ReadReport, line: int) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise FileFormatError(
            f"The header has no {', '.join(missing)} column(s). "
            f"Expected columns: {', '.join(COLUMNS)}."
        )
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise FileFormatError(f"The header repeats column(s): {', '.join(duplicated)}.")
    for name in names:
        if name not in COLUMNS:
            report.unknown_column(line, name)


# -- checking rows ------------------------------------------------------------------------------

# sku, name, price (minor units), tax rate (basis points), [(barcode key, code as given)], units
CheckedRow = tuple[str, str, int, int, list[tuple[str, str]], int]


class Validator:
    """Turns raw records into rows to load, remembering SKUs and barcodes already taken.

    The hot path of a 2-million-row load: parsed prices and rates are memoised (catalogues
    use a few hundred price points), and plain 13-digit codes skip the generic checks."""

    def __init__(
        self, report: ReadReport, barcode_owner: Callable[[str], str | None] | None = None
    ) -> None:
        self.report = report
        # for upserts into a catalogue that has products: who owns a barcode key already
        self.barcode_owner = barcode_owner
        self.skus: dict[str, int] = {}
        self.codes: dict[str, int] = {}
        self.prices: dict[object, int] = {}
        self.rates: dict[object, int] = {}

    def row(self, rec: RawRecord) -> CheckedRow | None:
        """The row to load, or None after reporting why it is skipped."""
        line, sku, name, price, rate, codes, qty = rec
        report = self.report
        if sku.__class__ is not str or not (sku := sku.strip()):
            report.problem(line, "missing sku")
            return None
        if len(sku) > MAX_SKU:
            report.problem(line, f"sku longer than {MAX_SKU} characters")
            return None
        if name.__class__ is not str or not (name := name.strip()):
            report.problem(line, f"sku {sku}: missing name")
            return None
        if len(name) > MAX_NAME:
            report.problem(line, f"sku {sku}: name longer than {MAX_NAME} characters")
            return None
        price_minor = self.prices.get(price) if price.__class__ is str else None
        if price_minor is None:
            try:
                price_minor = price_field(price)
            except (AmountError, TypeError) as exc:
                report.problem(line, f"sku {sku}: bad price {price!r} ({exc})")
                return None
            if price.__class__ is str:
                self.prices[price] = price_minor
        rate_bp = self.rates.get(rate) if rate.__class__ is str else None
        if rate_bp is None:
            try:
                rate_bp = rate_field(rate)
            except (AmountError, TypeError) as exc:
                report.problem(line, f"sku {sku}: bad tax_rate {rate!r} ({exc})")
                return None
            if rate.__class__ is str:
                self.rates[rate] = rate_bp
        if not qty:
            units = 0
        elif qty.__class__ is str and qty.isdigit() and qty.isascii():
            units = int(qty)
        elif qty.__class__ is int and qty >= 0:
            units = qty
        elif qty.__class__ is str and qty.strip().isdigit():
            units = int(qty)
        else:
            report.problem(line, f"sku {sku}: initial_stock must be a whole number >= 0: {qty!r}")
            return None
        if sku in self.skus:
            report.problem(line, f"sku {sku} already given on line {self.skus[sku]}")
            return None
        if (
            codes.__class__ is str
            and len(codes) == 13
            and codes.isdigit()
            and codes.isascii()
            and self.barcode_owner is None
        ):
            # the common case (one EAN-13), checked without the generic path
            key = "0" + codes
            if check_digit(codes[:12]) != ord(codes[12]) - 48:
                report.problem(line, f"sku {sku}: {barcode_problem(codes)}")
                return None
            if key in self.codes:
                report.problem(
                    line, f"sku {sku}: barcode {codes} already used on line {self.codes[key]}"
                )
                return None
            keyed = [(key, codes)]
        else:
            found = self._codes(line, sku, codes)
            if found is None:
                return None
            keyed = found
        self.skus[sku] = line
        for key, _raw in keyed:
            self.codes[key] = line
        return sku, name, price_minor, rate_bp, keyed, units

    def _codes(self, line: int, sku: str, codes: Any) -> list[tuple[str, str]] | None:
        if codes is None or codes == "":
            return []
        if isinstance(codes, str):
            if "|" in codes or ";" in codes:
                raws = [c.strip() for c in codes.replace(";", "|").split("|")]
                raws = [c for c in raws if c]
            else:
                raws = [codes.strip()] if codes.strip() else []
        elif isinstance(codes, list) and all(isinstance(c, str) for c in codes):
            raws = [c.strip() for c in codes if c.strip()]
        else:
            self.report.problem(line, f"sku {sku}: barcodes must be a list of text codes")
            return None
        keyed: list[tuple[str, str]] = []
        for raw in raws:
            if len(raw) == 13 and raw.isdigit() and raw.isascii():
                # the common case, checked without the generic path
                if check_digit(raw[:12]) != ord(raw[12]) - 48:
                    self.report.problem(line, f"sku {sku}: {barcode_problem(raw)}")
                    return None
                key = "0" + raw
            else:
                problem = barcode_problem(raw)
                if problem is not None:
                    self.report.problem(line, f"sku {sku}: {problem}")
                    return None
                key = lookup_key(raw)
            earlier = self.codes.get(key)
            if earlier is not None:
                self.report.problem(
                    line, f"sku {sku}: barcode {raw} already used on line {earlier}"
                )
                return None
            if any(key == k for k, _ in keyed):
                self.report.problem(line, f"sku {sku}: barcode {raw} given twice")
                return None
            if self.barcode_owner is not None:
                owner = self.barcode_owner(key)
                if owner is not None and owner != sku:
                    self.report.problem(
                        line, f"sku {sku}: barcode {raw} already belongs to sku {owner}"
                    )
                    return None
            keyed.append((key, raw))
        return keyed
