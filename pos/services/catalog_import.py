"""Loading a catalogue (a CSV or JSON Lines file, or the demo generator) into the till.

Bad rows are reported with their line number and skipped; good rows load. Into an empty
catalogue (or when replacing it whole) the rows go through the bulk path: one transaction,
indexes and the name index built once at the end. Into a catalogue that has products they are
upserted row by row (an existing SKU is updated). The file format and the row checks:
sync.protocol.catalog_file (shared with HQ's import).

Big loads read and check the rows in a second process while this one writes them to SQLite:
on a 2-core till that is what takes a 2-million-row load past 100,000 rows a second (the
parsing and the inserts each take about as long as the other; threads would not help, as both
halves need the interpreter)."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from pos.services.catalog_parse import (
    FORMAT_HELP,
    Chunk,
    DemoSource,
    FileSource,
    ImportReport,
    RowProblem,
    Source,
    Validator,
    bulk_chunks,
    chunk_rows,
    open_records,
    read_frame,
    source_spec,
)
from pos.services.errors import ImportFileError
from pos.store import Store, catalog, stock
from pos.store.catalog import BulkLoad, CatalogItem

__all__ = [
    "FORMAT_HELP",
    "DemoSource",
    "FileSource",
    "ImportReport",
    "RowProblem",
    "import_catalog",
    "load_source",
]

# progress(done, total): bytes of a file, or rows of a generated catalogue
Progress = Callable[[int, int], None]

# below this many bytes of input a second process costs more than it saves
PARALLEL_MIN_BYTES = 8_000_000
PIPE_BYTES = 1 << 20  # the default most a user may ask for (/proc/sys/fs/pipe-max-size)


def import_catalog(
    store: Store,
    path: Path,
    *,
    progress: Progress | None = None,
    replace: bool = False,
    now: datetime | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    """Load a catalogue file into the till (format: FORMAT_HELP).

    Raises ImportFileError when the file as a whole cannot be read (missing, not UTF-8, no
    usable header); nothing is loaded then. Bad rows never raise: they are in the report."""
    return load_source(
        store, FileSource(Path(path)), progress=progress, replace=replace, now=now,
        parallel=parallel,
    )  # fmt: skip


def load_source(
    store: Store,
    source: Source,
    *,
    progress: Progress | None = None,
    replace: bool = False,
    now: datetime | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    started = time.perf_counter()
    occurred_at = (now or datetime.now().astimezone()).isoformat(timespec="milliseconds")
    report = ImportReport()
    bulk = replace or not catalog.has_products(store.conn)
    report.mode = "bulk" if bulk else "upsert"
    if not bulk:
        _upsert(store, source, report, progress, occurred_at)
    else:
        if parallel is None:
            parallel = (
                source.size_hint() >= PARALLEL_MIN_BYTES
                and os.environ.get("POS_IMPORT_PARALLEL", "1") != "0"
            )
        _bulk(store, source, report, progress, replace, occurred_at, parallel)
    report.seconds = time.perf_counter() - started
    return report


def _bulk(
    store: Store,
    source: Source,
    report: ImportReport,
    progress: Progress | None,
    replace: bool,
    occurred_at: str,
    parallel: bool,
) -> None:
    prefix = str(uuid.uuid4())[:24]
    # Millions of small tuples and no reference cycles: the cyclic collector would only walk
    # them over and over (a third of the parse time at 2M rows).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        cpu_started = time.process_time()
        with BulkLoad(store, replace=replace, one_movement_per_sku=True) as load:
            chunks = (
                _chunks_from_process(source, report) if parallel else _chunks_here(source, report)
            )
            movements = 0
            for chunk, done, total in chunks:
                products, barcodes, ledger, stocked = chunk_rows(
                    chunk, prefix, movements, occurred_at
                )
                movements += stocked
                load.add(products, barcodes, ledger)
                if progress is not None:
                    progress(done, total)
        report.loaded = load.rows
        report.stock_ignored = load.stock_ignored
        report.timings.update(load.timings)
        # CPU seconds of this process for the whole load (inserts, indexes...); with
        # reader_cpu_s they show where the time goes when the machine is shared
        report.timings["writer_cpu_s"] = time.process_time() - cpu_started
        report.timings["parallel"] = float(parallel)
    finally:
        if gc_was_enabled:
            gc.enable()
    if progress is not None:
        size = source.size_hint() if isinstance(source, FileSource) else source.skus
        progress(size, size)


def _chunks_here(source: Source, report: ImportReport) -> Iterator[tuple[Chunk, int, int]]:
    with open_records(source, report) as (records, position):
        for chunk in bulk_chunks(records, Validator(report)):
            done, total = position()
            yield chunk, done, total


def _chunks_from_process(source: Source, report: ImportReport) -> Iterator[tuple[Chunk, int, int]]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pos.services.catalog_parse",
            source_spec(source),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    with contextlib.suppress(ImportError, OSError, AttributeError):
        # a bigger pipe: a chunk moves in a few writes instead of one per 64 KiB (Linux only)
        import fcntl

        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        while True:
            frame = read_frame(process.stdout)
            if frame is None:
                process.wait(10)
                detail = process.stderr.read().decode("utf-8", "replace").strip()
                last = detail.splitlines()[-1] if detail else f"exit code {process.returncode}"
                raise ImportFileError(
                    f"The catalogue reader stopped unexpectedly ({last}). Nothing was loaded."
                )
            kind, payload = frame
            if kind == "rows":
                chunk, done, total = payload
                yield chunk, done, total
            elif kind == "end":
                skipped, problems, unknown, reader_cpu = payload
                report.timings["reader_cpu_s"] = reader_cpu
                report.skipped = skipped
                report.problems = [RowProblem(line, message) for line, message in problems]
                report.unknown_columns = list(unknown)
                return
            else:
                name, message = payload
                if name == "ImportFileError":
                    raise ImportFileError(message)
                raise RuntimeError(f"catalogue reader failed: {name}: {message}")
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.terminate()
        process.wait(10)
        process.stderr.close()


def _upsert(
    store: Store,
    source: Source,
    report: ImportReport,
    progress: Progress | None,
    occurred_at: str,
) -> None:
    validator = Validator(report, lambda key: catalog.barcode_owner(store.conn, key))
    with open_records(source, report) as (records, position), store.transaction() as conn:
        for n, rec in enumerate(records, start=1):
            row = validator.row(rec)
            if row is not None:
                _line, sku, name, price, rate, keyed, units = row
                existed = catalog.find_by_sku(conn, sku, active_only=False) is not None
                catalog.upsert_products(
                    conn, [CatalogItem(sku, name, price, rate, tuple(raw for _, raw in keyed))]
                )
                if units and not existed:
                    stock.record(conn, [stock.Movement(sku, units, "initial", occurred_at)])
                elif units:
                    report.stock_ignored += 1
                report.loaded += 1
            if progress is not None and n % 1000 == 0:
                progress(*position())
