"""Reading catalogue rows on the till: files and the demo generator as sources of raw records,
chunks of checked rows for the bulk loader, and the reader process.

The format itself and the row checks are sync.protocol.catalog_file, shared with HQ. No database
here, so a separate process can read and check a big file while the till's process writes the
rows (see catalog_import)."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import marshal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat
from pathlib import Path
from typing import IO, Any

from pos.services.errors import ImportFileError
from sync.protocol.catalog_file import (
    FORMAT_HELP,
    FileFormatError,
    RawRecord,
    ReadReport,
    RowProblem,
    Validator,
    csv_records,
    guess_format,
    jsonl_records,
)

__all__ = [
    "FORMAT_HELP",
    "Chunk",
    "DemoSource",
    "FileSource",
    "ImportReport",
    "RawRecord",
    "RowProblem",
    "Source",
    "Validator",
    "bulk_chunks",
    "open_records",
    "read_frame",
    "source_spec",
]

CHUNK = 50_000
# the first chunks are smaller, so the writer starts inserting early instead of waiting for a
# whole chunk to be read and checked
FIRST_CHUNKS = (2_000, 10_000)

# progress(done, total): bytes of the file (imports) or rows (generated catalogues)
Progress = Callable[[int, int], None]


@dataclass
class ImportReport(ReadReport):
    """What an import did: ReadReport's skipped rows and problems, plus what was loaded."""

    loaded: int = 0
    stock_ignored: int = 0  # rows whose initial_stock was ignored (SKU already on the till)
    mode: str = "bulk"
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.loaded / self.seconds if self.seconds else 0.0


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


def file_format(path: Path) -> str:
    def head() -> str:
        with open(path, "rb") as f:
            return f.read(64).decode("utf-8", "replace")

    return guess_format(path.suffix, head)


# -- sources ------------------------------------------------------------------------------------

ProductRow = tuple[str, str, int, int]  # sku, name, price, tax_rate_bp
BarcodeRow = tuple[str, str, str]  # lookup key, sku, raw
LedgerRow = tuple[str, str, int, str, str]  # movement_id, sku, delta, reason, occurred_at
# Checked rows by column, as sent between processes (flat lists cost a third of what lists of
# tuples do): products' skus, names, prices, tax rates, initial stock units; barcodes' keys,
# skus, codes as given.
Chunk = tuple[
    list[str], list[str], list[int], list[int], list[int], list[str], list[str], list[str]
]


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
        except FileFormatError as exc:
            raise ImportFileError(str(exc)) from exc
    finally:
        text.close()


def bulk_chunks(records: Iterator[RawRecord], validator: Validator) -> Iterator[Chunk]:
    """Checked rows, CHUNK records at a time (FIRST_CHUNKS first), by column (see Chunk)."""
    sizes = chain(FIRST_CHUNKS, repeat(CHUNK))
    while some := list(islice(records, next(sizes))):
        c = validator.check(some)
        # drop the raw records first: marshal keeps a table of every object that is referenced
        # more than once (a quarter of its time here)
        del some
        if c:
            yield c.skus, c.names, c.prices, c.rates, c.units, c.code_keys, c.code_skus, c.codes


def chunk_rows(
    chunk: Chunk, movement_prefix: str, first_movement: int, occurred_at: str
) -> tuple[Iterator[ProductRow], Iterator[BarcodeRow], Iterator[LedgerRow], int]:
    """A chunk as BulkLoad.add takes it: rows zipped from the columns (in C, and without a
    tuple per row), and the number of stock movements. Initial stock gets movement ids made of
    one random prefix per load and a counter: unique, and cheap at millions of rows."""
    skus, names, prices, rates, units, code_keys, code_skus, codes = chunk
    stocked = list(compress(units, units))
    movement_ids = map(
        "{}{:012x}".format,
        repeat(movement_prefix),
        range(first_movement, first_movement + len(stocked)),
    )
    ledger = zip(
        movement_ids,
        compress(skus, units),
        stocked,
        repeat("initial"),
        repeat(occurred_at),
        strict=False,  # the repeats are endless
    )
    return (
        zip(skus, names, prices, rates, strict=True),
        zip(code_keys, code_skus, codes, strict=True),
        ledger,
        len(stocked),
    )


# -- the reader process -------------------------------------------------------------------------
# `python -m pos.services.catalog_parse SPEC` reads and checks a source and writes frames to its
# standard output: an 8-byte length, then a marshal-encoded (kind, payload) tuple. marshal is the
# cheapest way to move millions of small str/int values between processes (flat lists of them:
# see Chunk). A plain subprocess rather than multiprocessing: nothing of the caller's main module
# is re-imported.

FRAME_HEADER = 8


def source_spec(source: Source) -> str:
    if isinstance(source, DemoSource):
        return json.dumps({"kind": "demo", "skus": source.skus, "seed": source.seed})
    return json.dumps({"kind": "file", "path": str(source.path)})


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
    gc.disable()  # millions of small objects, no cycles (see catalog_import)
    spec = json.loads(spec_text)
    source = _source_from_spec(spec)
    report = ImportReport()
    try:
        with open_records(source, report) as (records, position):
            validator = Validator(report)
            for chunk in bulk_chunks(records, validator):
                write_frame(out, "rows", (chunk, *position()))
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
