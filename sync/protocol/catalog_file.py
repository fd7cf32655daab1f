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
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
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
    start = 2  # the line the next record starts on (a quoted field may span lines)
    while True:
        try:
            for row in reader:
                line = start
                start = reader.line_num + 1
                if len(row) != width:
                    if not row:
                        continue
                    if len(row) > width:
                        report.problem(line, f"{len(row)} fields where the header has {width}")
                        continue
                    row += [""] * (width - len(row))
                yield (
                    line,
                    row[i_sku],
                    row[i_name],
                    row[i_price],
                    row[i_rate],
                    row[i_codes] if i_codes is not None else None,
                    row[i_qty] if i_qty is not None else None,
                )
            return
        except csv.Error as exc:  # the reader goes on after a bad record
            line = start
            start = reader.line_num + 1
            report.problem(line, f"unreadable CSV row ({exc})")


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

# line, sku, name, price (minor units), tax rate (basis points), [(barcode key, code as given)],
# initial stock units
CheckedRow = tuple[int, str, str, int, int, list[tuple[str, str]], int]


@dataclass(slots=True)
class CheckedRows:
    """Checked rows by column: flat lists are what a bulk loader inserts from and what moves
    cheaply between processes. Per product: line, sku, name, price, tax rate, initial stock
    units; per barcode (in product order): key, sku, code as given."""

    lines: list[int] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    prices: list[int] = field(default_factory=list)
    rates: list[int] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    code_keys: list[str] = field(default_factory=list)
    code_skus: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.skus)

    def add(self, row: CheckedRow) -> None:
        line, sku, name, price, rate, keyed, units = row
        self.lines.append(line)
        self.skus.append(sku)
        self.names.append(name)
        self.prices.append(price)
        self.rates.append(rate)
        self.units.append(units)
        for key, code in keyed:
            self.code_keys.append(key)
            self.code_skus.append(sku)
            self.codes.append(code)

    def rows(self) -> Iterator[CheckedRow]:
        """Row by row again (a product's barcodes follow each other in the barcode columns)."""
        code_keys, code_skus, codes = self.code_keys, self.code_skus, self.codes
        j, n = 0, len(code_skus)
        for line, sku, name, price, rate, units in zip(
            self.lines, self.skus, self.names, self.prices, self.rates, self.units, strict=True
        ):
            start = j
            while j < n and code_skus[j] == sku:
                j += 1
            keyed = list(zip(code_keys[start:j], codes[start:j], strict=True))
            yield line, sku, name, price, rate, keyed, units


def _plain_ean13s(codes: str) -> list[str] | None:
    """The codes of a barcodes field made only of valid EAN-13 codes joined by "|" (the usual
    shapes of a big file, checked quickly), else None: the caller checks it in full."""
    found = codes.split("|")
    for code in found:
        if not (len(code) == 13 and code.isdigit() and code.isascii()):
            return None
        digits = code.encode()
        # weights 1,3,1,...,1 with the check digit; each '0' adds 48 * 25 = 1200, so the ASCII
        # sum ends in 0 exactly when the digits' does
        if (sum(digits) + 2 * sum(digits[1:12:2])) % 10:
            return None
    return found


class Validator:
    """Turns raw records into rows to load, remembering SKUs and barcodes already taken.

    `row` checks one record by the full rules. `check` checks many: the shapes nearly every
    row of a big catalogue has (clean text, a price point seen before, no barcode or plain
    EAN-13 ones) take a short path, and every record it is not sure about goes through the
    rules of `row`, so both accept and refuse exactly the same records.

    What is taken is kept in sets (half the cost of dicts at millions of rows); where each was
    given is kept as append-only logs, indexed only when a duplicate needs its earlier line."""

    def __init__(
        self, report: ReadReport, barcode_owner: Callable[[str], str | None] | None = None
    ) -> None:
        self.report = report
        # for upserts into a catalogue that has products: who owns a barcode key already
        self.barcode_owner = barcode_owner
        self.skus: set[str] = set()
        self.codes: set[str] = set()  # barcode keys
        # parsed price and rate texts (catalogues use a few hundred price points)
        self.prices: dict[str, int] = {}
        self.rates: dict[str, int] = {}
        # accepted rows not yet in the logs, and the logs: SKUs with their lines, barcode keys
        # with their SKUs; the two dicts index the logs up to where they have been looked at
        self._pending = CheckedRows()
        self._logged = self._logged_codes = 0
        self._sku_log: list[str] = []
        self._line_log = array("q")
        self._key_log: list[str] = []
        self._key_sku_log: list[str] = []
        self._line_of_sku: dict[str, int] = {}
        self._sku_of_key: dict[str, str] = {}

    def rows(self, records: Iterable[RawRecord], batch: int = 10_000) -> Iterator[CheckedRow]:
        """The rows to load, in order; the others are reported and skipped."""
        records = iter(records)
        while some := list(islice(records, batch)):
            yield from self.check(some).rows()

    def row(self, rec: RawRecord) -> CheckedRow | None:
        """The row to load, or None after reporting why it is skipped."""
        self._pending = CheckedRows()
        self._logged = self._logged_codes = 0
        checked = self._row(rec)
        if checked is not None:
            self._pending.add(checked)
        self._log()
        return checked

    def check(self, records: Iterable[RawRecord]) -> CheckedRows:
        """The rows to load of these records, by column; the others are reported and skipped."""
        self._pending = out = CheckedRows()
        self._logged = self._logged_codes = 0
        lines, skus, names, prices, rates = out.lines, out.skus, out.names, out.prices, out.rates
        units, code_keys, code_skus, codes_out = out.units, out.code_keys, out.code_skus, out.codes
        taken_skus, taken, price_of, rate_of = self.skus, self.codes, self.prices, self.rates
        take_sku, take = taken_skus.add, taken.add
        short = self.barcode_owner is None
        for rec in records:
            line, sku, name, price, rate, codes, qty = rec
            # the short path: each test is one of _row()'s, for the usual shapes only
            if (
                short
                and sku.__class__ is str
                and name.__class__ is str
                and price.__class__ is str
                and rate.__class__ is str
                and codes.__class__ is str
                and qty.__class__ is str
                and (price_minor := price_of.get(price)) is not None
                and (rate_bp := rate_of.get(rate)) is not None
                and 0 < len(sku := sku.strip()) <= MAX_SKU
                and 0 < len(name := name.strip()) <= MAX_NAME
                and (not qty or (qty.isdigit() and qty.isascii()))
                and sku not in taken_skus
            ):
                # no barcode, one EAN-13 or several (else the full rules decide)
                one: str | None = None
                several: list[str] | None = None
                if not codes:
                    ok = True
                elif (
                    len(codes) == 13
                    and codes.isdigit()
                    and codes.isascii()
                    and not (sum(e := codes.encode()) + 2 * sum(e[1:12:2])) % 10
                ):  # see _plain_ean13s
                    one = "0" + codes
                    ok = one not in taken
                elif (several := _plain_ean13s(codes)) is not None:
                    keys = ["0" + code for code in several]
                    ok = len(set(keys)) == len(keys) and taken.isdisjoint(keys)
                else:
                    ok = False
                if ok:
                    take_sku(sku)
                    lines.append(line)
                    skus.append(sku)
                    names.append(name)
                    prices.append(price_minor)
                    rates.append(rate_bp)
                    units.append(int(qty) if qty else 0)
                    if one is not None:
                        take(one)
                        code_keys.append(one)
                        code_skus.append(sku)
                        codes_out.append(codes)
                    elif several is not None:
                        taken.update(keys)
                        code_keys += keys
                        code_skus += [sku] * len(keys)
                        codes_out += several
                    continue
            checked = self._row(rec)
            if checked is not None:
                out.add(checked)
        self._log()
        return out

    def _row(self, rec: RawRecord) -> CheckedRow | None:
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
        try:
            price_minor = price_field(price)
        except (AmountError, TypeError) as exc:
            report.problem(line, f"sku {sku}: bad price {price!r} ({exc})")
            return None
        if price.__class__ is str:
            self.prices[price] = price_minor
        try:
            rate_bp = rate_field(rate)
        except (AmountError, TypeError) as exc:
            report.problem(line, f"sku {sku}: bad tax_rate {rate!r} ({exc})")
            return None
        if rate.__class__ is str:
            self.rates[rate] = rate_bp
        if not qty:
            units = 0
        elif qty.__class__ is int and qty >= 0:
            units = qty
        elif qty.__class__ is str and qty.strip().isdecimal():  # what int() reads
            units = int(qty)
        else:
            report.problem(line, f"sku {sku}: initial_stock must be a whole number >= 0: {qty!r}")
            return None
        if sku in self.skus:
            report.problem(line, f"sku {sku} already given on line {self._sku_line(sku)}")
            return None
        keyed = self._codes(line, sku, codes)
        if keyed is None:
            return None
        self.skus.add(sku)
        self.codes.update(key for key, _raw in keyed)
        return line, sku, name, price_minor, rate_bp, keyed, units

    def _codes(self, line: int, sku: str, codes: Any) -> list[tuple[str, str]] | None:
        if codes is None or codes == "":
            return []
        if isinstance(codes, str):
            raws = [c.strip() for c in codes.replace(";", "|").split("|")]
            raws = [c for c in raws if c]
        elif isinstance(codes, list) and all(isinstance(c, str) for c in codes):
            raws = [c.strip() for c in codes if c.strip()]
        else:
            self.report.problem(line, f"sku {sku}: barcodes must be a list of text codes")
            return None
        keyed: list[tuple[str, str]] = []
        for raw in raws:
            problem = barcode_problem(raw)
            if problem is not None:
                self.report.problem(line, f"sku {sku}: {problem}")
                return None
            key = lookup_key(raw)
            if key in self.codes:
                earlier = self._sku_line(self._key_sku(key))
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

    # -- where a taken SKU or barcode was given (for the messages about duplicates) --

    def _log(self) -> None:
        """Move the accepted rows not logged yet into the logs."""
        pending = self._pending
        self._sku_log += pending.skus[self._logged :]
        self._line_log.extend(pending.lines[self._logged :])
        self._key_log += pending.code_keys[self._logged_codes :]
        self._key_sku_log += pending.code_skus[self._logged_codes :]
        self._logged = len(pending.skus)
        self._logged_codes = len(pending.code_keys)

    def _sku_line(self, sku: str) -> int:
        """The line a taken SKU was given on."""
        self._log()
        index = self._line_of_sku
        if sku not in index:  # index the rest of the log (its SKUs are distinct)
            done = len(index)
            index.update(zip(self._sku_log[done:], self._line_log[done:], strict=True))
        return index[sku]

    def _key_sku(self, key: str) -> str:
        """The SKU that took a barcode key."""
        self._log()
        index = self._sku_of_key
        if key not in index:
            done = len(index)
            index.update(zip(self._key_log[done:], self._key_sku_log[done:], strict=True))
        return index[key]
