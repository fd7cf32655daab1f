"""`pos catalog import FILE` and `pos catalog demo --skus N`: fill the till's catalogue."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from pos.cli.store import opened_store
from pos.services.catalog_import import FORMAT_HELP, ImportReport
from pos.services.errors import ServiceError

SHOWN_PROBLEMS = 50


@click.group()
def catalog() -> None:
    """Load the product catalogue into this till."""


@catalog.command(
    "import",
    help="Load products from a CSV or JSON Lines file (by extension; .jsonl/.ndjson = JSON "
    "Lines).\n\n" + FORMAT_HELP,
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the whole catalogue with the file (stock and sales are kept).",
)
@click.pass_context
def import_(ctx: click.Context, file: Path, replace: bool) -> None:
    from pos.services.catalog_import import import_catalog

    with opened_store(ctx.obj["db_path"], create=True) as store, _service_errors():
        size = file.stat().st_size
        with _progress(size, "Importing", bytes_=True) as tick:
            report = import_catalog(store, file, progress=tick, replace=replace)
    _print_report(report, str(file))


@catalog.command()
@click.option(
    "--skus",
    type=click.IntRange(0, 2_057_280),
    default=20_000,
    show_default=True,
    help="Number of items to generate (up to 2,057,280).",
)
@click.option("--seed", type=int, default=2024, show_default=True, help="Same seed, same items.")
@click.option("--replace", is_flag=True, help="Replace a catalogue that already has items.")
@click.pass_context
def demo(ctx: click.Context, skus: int, seed: int, replace: bool) -> None:
    """Generate a realistic demo catalogue (Chinese and English names, valid EAN-13 codes,
    several price points, some items without barcodes) and load it."""
    from pos.services.demo import load_demo
    from pos.store.catalog import has_products

    with opened_store(ctx.obj["db_path"], create=True) as store, _service_errors():
        if has_products(store.conn) and not replace:
            raise click.ClickException(
                "This till already has a catalogue. Add --replace to swap it for the demo "
                "catalogue (stock and sales are kept)."
            )
        with _progress(skus, "Generating and loading") as tick:
            report = load_demo(store, skus, seed, progress=tick, replace=replace)
    _print_report(report, f"demo catalogue (seed {seed})")


@contextmanager
def _service_errors() -> Iterator[None]:
    from pos.store import StoreError

    try:
        yield
    except (ServiceError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _progress(total: int, label: str, bytes_: bool = False) -> Iterator[Callable[[int, int], None]]:
    with click.progressbar(
        length=max(total, 1), label=label, file=sys.stderr, show_pos=not bytes_
    ) as bar:
        done = 0

        def tick(now: int, _total: int) -> None:
            nonlocal done
            if now > done:
                bar.update(now - done)
                done = now

        yield tick


def _print_report(report: ImportReport, source: str) -> None:
    for problem in report.problems[:SHOWN_PROBLEMS]:
        click.echo(f"  {problem}", err=True)
    hidden = (
        report.skipped + len(report.unknown_columns) - min(len(report.problems), SHOWN_PROBLEMS)
    )
    if hidden > 0:
        click.echo(f"  ... and {hidden:,} more", err=True)
    rate = f", {report.rows_per_s:,.0f} rows/s" if report.seconds else ""
    click.echo(
        f"Loaded {report.loaded:,} products from {source} "
        f"({report.skipped:,} rows skipped) in {report.seconds:.1f} s{rate}."
    )
    if report.stock_ignored:
        click.echo(
            f"initial_stock ignored for {report.stock_ignored:,} SKUs the till already had.",
            err=True,
        )
