"""Reading catalogue rows: the file format, the readers, and the row checks.

No database here, so a separate process can read and check a big file while the till's process
writes the rows (see catalog_import). FORMAT_HELP is the format as `pos catalog import --help`
shows it."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import marshal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from pos.domain.errors import MoneyError
from pos.domain.gtin import barcode_problem, check_digit, lookup_key
from pos.domain.money import parse_amount, parse_tax_rate
from pos.services.errors import ImportFileError

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
CHUNK = 50_000
MAX_LISTED_PROBLEMS = 1_000  # the rest are counted, not kept

# progress(done, total): bytes of the file (imports) or rows (generated catalogues)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    loaded: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    stock_ignored: int = 0  # rows whose initial_stock was ignored (SKU already on the till)
    mode: str = "bulk"
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.loaded / self.seconds if self.seconds else 0.0

    def problem(self, line: int, message: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(RowProblem(line, message))


# A raw record: line number and the six fields as read (text in CSV; JSON values in JSONL).
RawRecord = tuple[int, Any, Any, Any, Any, Any, Any]


class Validator:
    """Turns raw records into rows to load, remembering SKUs and barcodes already taken.

    The hot path of a 2-million-row load: parsed prices and rates are memoised (catalogues
    use a few hundred price points), and plain 13-digit codes skip the generic checks."""

    def __init__(
        self, report: ImportReport, barcode_owner: Callable[[str], str | None] | None = None
    ) -> None:
        self.report = report
        # for upserts into a catalogue that has products: who owns a barcode key already
        self.barcode_owner = barcode_owner
        self.skus: dict[str, int] = {}
        self.codes: dict[str, int] = {}
        self.prices: dict[object, int] = {}
        self.rates: dict[object, int] = {}

    def row(self, rec: RawRecord) -> tuple[str, str, int, int, list[tuple[str, str]], int] | None:
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
                price_minor = _parse_price(price)
            except (MoneyError, TypeError) as exc:
                report.problem(line, f"sku {sku}: bad price {price!r} ({exc})")
                return None
            if price.__class__ is str:
                self.prices[price] = price_minor
        rate_bp = self.rates.get(rate) if rate.__class__ is str else None
        if rate_bp is None:
            try:
                rate_bp = _parse_rate(rate)
            except (MoneyError, TypeError) as exc:
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


def _parse_price(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, int):
        value = str(value)
    if value is None:
        raise MoneyError("missing")
    return parse_amount(value)


def _parse_rate(value: Any) -> int:
    if value is None or value == "":
        raise MoneyError("missing")
    return parse_tax_rate(value)


# -- reading files ------------------------------------------------------------------------------


class CountingReader(io.RawIOBase):
    """Counts the bytes read from a binary file, for a progress bar over a text reader."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.done += n or 0
        return n or 0


def csv_records(text: IO[str], report: ImportReport) -> Iterator[RawRecord]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("The file is empty: expected a header row.") from None
    except csv.Error as exc:
        raise ImportFileError(f"Cannot read the header row: {exc}") from exc
    names = [h.strip().lower() for h in header]
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


def jsonl_records(text: IO[str], report: ImportReport) -> Iterator[RawRecord]:
    known = set(COLUMNS)
    unknown_seen: set[str] = set()
    for line, raw in enumerate(text, start=1):
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
                report.unknown_columns.append(key)
                report.problems.append(
                    RowProblem(line, f"unknown column {key!r} ignored (reported once)")
                )
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


def _check_columns(names: list[str], report: ImportReport, line: int) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportFileError(
            f"The header has no {', '.join(missing)} column(s). "
            f"Expected columns: {', '.join(COLUMNS)}."
        )
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise ImportFileError(f"The header repeats column(s): {', '.join(duplicated)}.")
    for name in names:
        if name not in COLUMNS:
            report.unknown_columns.append(name)
            report.problems.append(
                RowProblem(line, f"unknown column {name!r} ignored (reported once)")
            )


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


# -- sources ------------------------------------------------------------------------------------

ProductRow = tuple[str, str, int, int]  # sku, name, price, tax_rate_bp
BarcodeRow = tuple[str, str, str]  # lookup key, sku, raw
LedgerRow = tuple[str, str, int, str, str]  # movement_id, sku, delta, reason, occurred_at
Chunk = tuple[list[ProductRow], list[BarcodeRow], list[LedgerRow]]


@dataclass(frozen=True, slots=True)
class FileSource:
    path: Path

    def size_hint(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0  # reported by open_records


@dataclass(frozen=True, slots=True)
class DemoSource:
    skus: int
    seed: int

    def size_hint(self) -> int:
        return self.skus * 70  # about the bytes of its CSV


Source = FileSource | DemoSource


@contextlib.contextmanager
def open_records(
    source: Source, report: ImportReport
) -> Iterator[tuple[Iterator[RawRecord], Callable[[], tuple[int, int]]]]:
    """The raw records of a source and a function telling how far reading has got."""
    if isinstance(source, DemoSource):
        from pos.services.demo import demo_records

        done = [0]

        def counted() -> Iterator[RawRecord]:
            for rec in demo_records(source.skus, source.seed):
                done[0] += 1
                yield rec

        yield counted(), lambda: (done[0], source.skus)
        return
    path = source.path
    try:
        size = path.stat().st_size
        binary = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ImportFileError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    counter = CountingReader(binary)
    text = io.TextIOWrapper(
        io.BufferedReader(counter, 1 << 20), encoding="utf-8-sig", errors="strict", newline=""
    )
    try:
        if file_format(path) == "jsonl":
            records = jsonl_records(text, report)
        else:
            records = csv_records(text, report)
        try:
            yield records, lambda: (counter.done, size)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{path} is not UTF-8 text (byte {exc.start} of a block): save it as UTF-8 "
                "and import again. Nothing was loaded."
            ) from exc
    finally:
        text.close()


def bulk_chunks(
    records: Iterator[RawRecord], validator: Validator, movement_prefix: str, occurred_at: str
) -> Iterator[Chunk]:
    """Checked rows in chunks ready for BulkLoad.add. Initial stock gets movement ids made of
    one random prefix per load and a counter: unique, and cheap at millions of rows."""
    counter = 0
    products: list[ProductRow] = []
    barcodes: list[BarcodeRow] = []
    ledger: list[LedgerRow] = []
    check = validator.row
    for rec in records:
        row = check(rec)
        if row is None:
            continue
        sku, name, price, rate, keyed, units = row
        products.append((sku, name, price, rate))
        for key, raw in keyed:
            barcodes.append((key, sku, raw))
        if units:
            ledger.append((f"{movement_prefix}{counter:012x}", sku, units, "initial", occurred_at))
            counter += 1
        if len(products) >= CHUNK:
            yield products, barcodes, ledger
            products, barcodes, ledger = [], [], []
    if products or barcodes or ledger:
        yield products, barcodes, ledger


# -- the reader process -------------------------------------------------------------------------
# `python -m pos.services.catalog_parse SPEC` reads and checks a source and writes frames to its
# standard output: an 8-byte length, then a marshal-encoded (kind, payload) tuple. marshal is the
# cheapest way to move millions of small tuples of str/int between processes. A plain
# subprocess rather than multiprocessing: nothing of the caller's main module is re-imported.

FRAME_HEADER = 8


def source_spec(source: Source, movement_prefix: str, occurred_at: str) -> str:
    if isinstance(source, DemoSource):
        what: dict[str, Any] = {"kind": "demo", "skus": source.skus, "seed": source.seed}
    else:
        what = {"kind": "file", "path": str(source.path)}
    return json.dumps({**what, "prefix": movement_prefix, "occurred_at": occurred_at})


def _source_from_spec(spec: dict[str, Any]) -> Source:
    if spec["kind"] == "demo":
        return DemoSource(int(spec["skus"]), int(spec["seed"]))
    return FileSource(Path(spec["path"]))


def write_frame(out: IO[bytes], kind: str, payload: Any) -> None:
    data = marshal.dumps((kind, payload))
    out.write(len(data).to_bytes(FRAME_HEADER, "little"))
    out.write(data)


def read_frame(stream: IO[bytes]) -> tuple[str, Any] | None:
    header = stream.read(FRAME_HEADER)
    if len(header) < FRAME_HEADER:
        return None
    size = int.from_bytes(header, "little")
    data = stream.read(size)
    if len(data) < size:
        return None
    kind, payload = marshal.loads(data)
    return kind, payload


def reader_main(spec_text: str, out: IO[bytes]) -> int:
    """Read, check, send chunks, then the report (or the error)."""
    gc.disable()  # millions of small tuples, no cycles (see catalog_import)
    spec = json.loads(spec_text)
    source = _source_from_spec(spec)
    report = ImportReport()
    try:
        with open_records(source, report) as (records, position):
            validator = Validator(report)
            for chunk in bulk_chunks(records, validator, spec["prefix"], spec["occurred_at"]):
                write_frame(out, "rows", (*chunk, *position()))
        problems = [(p.line, p.message) for p in report.problems]
        write_frame(
            out,
            "end",
            (report.skipped, problems, report.unknown_columns, time.process_time()),
        )
    except ImportFileError as exc:
        write_frame(out, "error", ("ImportFileError", str(exc)))
        return 1
    except BrokenPipeError:
        return 1  # the writer gave up (its own error is what the user sees)
    except Exception as exc:
        write_frame(out, "error", (type(exc).__name__, str(exc)))
        return 1
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(reader_main(sys.argv[1], sys.stdout.buffer))
