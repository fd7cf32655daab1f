"""`pos sync` (one full sync with HQ) and `pos eod` (end of day: sync, then check with HQ).

Both exit 0 only when everything is done: `pos sync` when nothing is left to send, `pos eod`
when the till and HQ agree on the day's sales and on stock ("verified"). Exit 1 means something
is pending or different (the output says what); exit 2 means the till's database or settings
cannot be used. The till's HQ address and token are saved on the till the first time they are
given (`--hq`, `--token`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from pos.services.eod import EodReport
    from pos.services.sync import HQSettings
    from pos.store import Store
    from sync.engine import EngineStatus, SyncReport

EXIT_PENDING = 1
EXIT_UNUSABLE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"pos: {message}", err=True)
    sys.exit(EXIT_UNUSABLE)


def _open(ctx: click.Context) -> Store:
    from pos.store import StoreError, open_store

    try:
        return open_store(Path(ctx.obj["db_path"]), create=False)
    except StoreError as exc:
        _fail(str(exc))


def _settings(store: Store, url: str | None, token: str | None, ca: str | None) -> HQSettings:
    from pos.services.sync import hq_settings, save_hq_settings

    save_hq_settings(store, url, token, ca)
    settings = hq_settings(store)
    if settings is None:
        store.close()
        _fail(
            "This till does not know its HQ yet. Run `pos sync --hq URL --token TOKEN` with the "
            "token `hq store add` (or `hq device add`) printed for this till."
        )
    return settings


def hq_options(function: Any) -> Any:
    function = click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate file to check HQ's TLS certificate with (saved on the till).",
    )(function)
    function = click.option(
        "--token", help="This till's HQ token, as `hq store add` printed it (saved on the till)."
    )(function)
    function = click.option(
        "--hq", "hq_url", metavar="URL", help="HQ's address, e.g. https://hq:8700 (saved)."
    )(function)
    return function


class SnapshotMeter:
    """Progress of a catalogue download and load on standard error: a row counter while
    downloading (HQ does not say how many rows are coming), then a bar while loading."""

    def __init__(self, stream: Any = None, every_s: float = 0.25) -> None:
        self.out = stream or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.every_s = every_s
        self.downloaded: dict[str, int] = {}
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, stream: str, phase: str, rows: int) -> None:
        now = time.monotonic()
        if phase == "download":
            self.downloaded[stream] = rows
        if now - self._last < self.every_s and not (
            phase == "load" and rows >= self.downloaded.get(stream, 1)
        ):
            return
        self._last = now
        if phase == "download":
            done = ", ".join(f"{s} {n:,}" for s, n in sorted(self.downloaded.items()))
            line = f"Downloading from HQ: {done} rows ({now - self._started:.0f} s)"
        else:
            total = max(1, self.downloaded.get(stream, rows))
            share = min(1.0, rows / total)
            bar = "#" * int(share * 30)
            line = f"Loading {stream:8} [{bar:<30}] {share:4.0%} {rows:,}/{total:,} rows"
        if self.tty:
            self.out.write("\r" + line.ljust(78))
            self.out.flush()
        else:
            self.out.write(line + "\n")

    def done(self) -> None:
        if self.tty and self._last:
            self.out.write("\n")
            self.out.flush()


def _run_sync(
    store: Store, settings: HQSettings, meter: SnapshotMeter
) -> tuple[SyncReport, EngineStatus]:
    from pos.services.sync import make_engine, sync_until_drained

    async def go() -> tuple[SyncReport, EngineStatus]:
        engine = make_engine(store, store.path, settings, on_snapshot_progress=meter)
        try:
            return await sync_until_drained(engine), engine.status()
        finally:
            await engine.client.aclose()

    return asyncio.run(go())


def _minutes(seconds: float) -> str:
    return f"{abs(seconds) / 60:.0f} min" if abs(seconds) >= 90 else f"{abs(seconds):.0f} s"


@click.command()
@hq_options
@click.pass_context
def sync(ctx: click.Context, hq_url: str | None, token: str | None, ca_file: str | None) -> None:
    """Sync with HQ once: get HQ's changes, send this till's sales. Exits 1 if anything is
    left to send."""
    from sync.protocol import CLOCK_SKEW_LIMIT_S

    store = _open(ctx)
    try:
        settings = _settings(store, hq_url, token, ca_file)
        meter = SnapshotMeter()
        report, status = _run_sync(store, settings, meter)
        meter.done()
    finally:
        store.close()
    for stream, rows in sorted(report.snapshots.items()):
        click.echo(f"Loaded HQ's {stream}: {rows:,} rows.")
    if report.pulled:
        click.echo(f"Applied {report.pulled:,} change(s) from HQ.")
    if report.pushed or report.acked or report.rejected:
        click.echo(
            f"Sent {report.acked + report.rejected + report.superseded:,} event(s) to HQ"
            f" ({report.rejected} refused)."
        )
    if status.rejected:
        click.echo(
            f"HQ has refused {status.rejected} event(s) of this till: see the sync screen "
            "(F6 in the till) and call support."
        )
    offset = status.clock_offset_s
    if offset is not None and abs(offset) > CLOCK_SKEW_LIMIT_S:
        way = "ahead of" if offset > 0 else "behind"
        click.echo(f"This till's clock is {_minutes(offset)} {way} HQ's: set the clock right.")
    if not report.ok:
        click.echo(f"Sync did not finish: {report.error}", err=True)
    if report.pending:
        click.echo(f"{report.pending:,} event(s) still waiting to be sent.", err=True)
        sys.exit(EXIT_PENDING)
    if not report.ok:
        sys.exit(EXIT_PENDING)
    click.echo("Up to date with HQ: nothing left to send.")


@click.command()
@hq_options
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Business day to check (default: today in the store's time zone).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def eod(
    ctx: click.Context,
    hq_url: str | None,
    token: str | None,
    ca_file: str | None,
    day: datetime | None,
    as_json: bool,
) -> None:
    """End of day: sync until nothing is left to send, then check this till's sales of the day
    and its stock movements against HQ's figures for this till. Exits 0 only when verified."""
    from pos.services.eod import end_of_day, report_lines
    from pos.services.sync import make_engine

    store = _open(ctx)
    try:
        settings = _settings(store, hq_url, token, ca_file)
        business_day = day.date() if day else datetime.now(store.identity.zone).date()

        async def go() -> EodReport:
            engine = make_engine(store, store.path, settings)
            try:
                return await end_of_day(engine, store, business_day)
            finally:
                await engine.client.aclose()

        report = asyncio.run(go())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(eod_json(report), ensure_ascii=False))
    else:
        for line in report_lines(report):
            click.echo(line)
    if not report.verified:
        sys.exit(EXIT_PENDING)


def eod_json(report: EodReport) -> dict[str, Any]:
    def figures(f: Any) -> Any:
        if f is None:
            return None
        return {
            "count": f.count,
            "total": f.total,
            "tax_total": f.tax_total,
            "by_method": {
                m: {"count": v.count, "amount": v.amount} for m, v in f.by_method.items()
            },
        }

    return {
        "business_day": report.business_day.isoformat(),
        "verified": report.verified,
        "sync_ok": report.sync_ok,
        "pending": report.pending,
        "rejected": [{"seq": r.seq, "type": r.type, "reason": r.reason} for r in report.rejected],
        "store": figures(report.store),
        "hq": figures(report.hq),
        "last_seq": report.last_seq,
        "hq_last_applied_seq": report.hq_last_applied_seq,
        "stock_checked": report.stock_checked,
        "stock_differences": [
            {"sku": d.sku, "store": d.store, "hq": d.hq} for d in report.stock_differences
        ],
        "problems": list(report.problems),
        "scope": report.scope,
        "store_id": report.store_id,
        "device_id": report.device_id,
        "hq_store": figures(report.hq_store),
        "store_stock_checked": report.store_stock_checked,
        "store_stock_differences": [
            {"sku": d.sku, "store": d.store, "hq": d.hq} for d in report.store_stock_differences
        ],
        "other_tills": [
            {
                "device_id": o.device_id,
                "last_applied_seq": o.last_applied_seq,
                "last_push_at": o.last_push_at.isoformat() if o.last_push_at else None,
                "pending_reported": o.pending_reported,
                "quarantined": o.quarantined,
            }
            for o in report.other_tills
        ],
    }


@click.command("selftest-sell", hidden=True)
@click.option("--count", type=int, default=100, show_default=True)
@click.option("--sku", "skus", multiple=True, required=True, help="SKUs to sell, in turn.")
@click.option("--sync-every", type=int, default=5, show_default=True)
@click.pass_context
def selftest_sell(ctx: click.Context, count: int, skus: tuple[str, ...], sync_every: int) -> None:
    """Ring up COUNT sales through the real sale service with the sync engine running in the
    same process, printing one receipt line per sale only after it has committed (crash
    tests kill this process at random moments)."""
    from pos.domain.cart import Cart, Payment
    from pos.services.sale import SaleService
    from pos.services.sync import SyncWorker

    store = _open(ctx)
    worker = SyncWorker(store.path, interval_s=0.5, min_gap_s=0.05)
    worker.start()
    service = SaleService(store)
    products = []
    for sku in skus:
        product = service.lookup(sku)
        if product is None:
            _fail(f"no product {sku} on this till")
        products.append(product)
    try:
        for i in range(count):
            product = products[i % len(products)]
            cart = Cart().add(product, 1 + i % 3)
            receipt = service.complete(cart, [Payment.cash(cart.total)])
            os.write(1, f"receipt {receipt.sale_id} {receipt.seq}\n".encode())
            if sync_every and i % sync_every == 0:
                worker.sync_now()
    finally:
        worker.stop()
        store.close()
