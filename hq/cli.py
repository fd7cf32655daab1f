"""`hq`: HQ's admin command line and server.

The database is ``--db PATH`` (a SQLite file), ``--dsn postgresql://...`` or the environment
variable ``HQ_DB`` (either form); ``./hq.db`` when none is given. Tokens printed by ``store add``
and ``device add`` go to standard output alone (so a script can capture them); everything meant
for a person goes to standard error."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from hq.errors import HQError


def _db(ctx: click.Context) -> Any:
    from hq.db import Database

    obj = ctx.ensure_object(dict)
    if "database" not in obj:
        target = obj.get("dsn") or obj.get("db") or os.environ.get("HQ_DB") or "hq.db"
        obj["database"] = Database(target)
    return obj["database"]


def _say(message: str) -> None:
    click.echo(message, err=True)


class _Group(click.Group):
    """Turns HQ's own errors into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HQError as error:
            raise click.ClickException(error.message) from error


@click.group(cls=_Group)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="SQLite file of HQ.")
@click.option("--dsn", help="PostgreSQL DSN, e.g. postgresql://user@host/dbname.")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, dsn: str | None) -> None:
    """HQ service: stores and tills, catalogue and prices, event ingest, reports."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db_path
    ctx.obj["dsn"] = dsn


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create HQ's tables (safe to run again)."""
    db = _db(ctx)
    db.create_schema()
    _say(f"HQ database ready ({db.dialect}).")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Server processes.")
@click.option("--quiet", is_flag=True, help="No access log; warnings and errors only.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, quiet: bool) -> None:
    """Run the HQ HTTP service (the sync API under /sync/v1)."""
    import uvicorn

    from hq.app import create_app

    db = _db(ctx)
    db.create_schema()
    logging: dict[str, Any] = {"log_level": "warning" if quiet else "info", "access_log": not quiet}
    if workers > 1:
        # each worker process opens the database itself, from HQ_DB
        os.environ["HQ_DB"] = db.url
        db.dispose()
        uvicorn.run(
            "hq.app:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
        )
        return
    uvicorn.run(create_app(db), host=host, port=port, **logging)


# --- stores, devices, staff --------------------------------------------------------------------


@cli.group()
def store() -> None:
    """Stores."""


@store.command("add")
@click.argument("store_id")
@click.option("--name", required=True)
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--device", "device_id", default="till-1", show_default=True, help="First till.")
@click.pass_context
def store_add(
    ctx: click.Context,
    store_id: str,
    name: str,
    lat: float | None,
    lon: float | None,
    timezone: str,
    device_id: str,
) -> None:
    """Register a store and its first till; prints the till's token ONCE."""
    from hq import admin

    token = admin.add_store(
        _db(ctx), store_id, name=name, lat=lat, lon=lon, timezone=timezone, device_id=device_id
    )
    _say(
        f"Store {store_id} added. Token of {store_id}/{device_id} (shown once; HQ keeps only a hash):"
    )
    click.echo(token)


@cli.group()
def device() -> None:
    """Tills of a store."""


@device.command("add")
@click.argument("store_id")
@click.argument("device_id")
@click.pass_context
def device_add(ctx: click.Context, store_id: str, device_id: str) -> None:
    """Register another till of a store; prints its token ONCE."""
    from hq import admin

    token = admin.add_device(_db(ctx), store_id, device_id)
    _say(f"Token of {store_id}/{device_id} (shown once; HQ keeps only a hash):")
    click.echo(token)


@cli.group()
def staff() -> None:
    """Staff and shopping guides."""


@staff.command("add")
@click.argument("staff_id")
@click.option("--name", required=True)
@click.option("--store", "store_id", help="The store they work at (none: every store).")
@click.option("--role", default="guide", show_default=True)
@click.pass_context
def staff_add(
    ctx: click.Context, staff_id: str, name: str, store_id: str | None, role: str
) -> None:
    """Add (or change) a member of staff; stores receive them on the config stream."""
    from hq import admin

    admin.add_staff(_db(ctx), staff_id, name=name, store_id=store_id, role=role)
    _say(f"Staff {staff_id} ({name}) saved.")


# --- catalogue, prices, config -----------------------------------------------------------------


@cli.group()
def catalog() -> None:
    """HQ's catalogue."""


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chunk", default=5000, show_default=True, help="Products per transaction.")
@click.pass_context
def catalog_import(ctx: click.Context, file: Path, chunk: int) -> None:
    """Load a CSV or JSON Lines catalogue (the till's format). Bad rows are listed and skipped."""
    from hq import admin
    from hq.catalog_file import CatalogFileError, read_catalog

    db = _db(ctx)
    try:
        items, problems = read_catalog(file)
    except CatalogFileError as error:
        raise click.ClickException(str(error)) from error
    loaded = 0
    with click.progressbar(length=len(items), label="Importing", file=sys.stderr) as bar:
        for i in range(0, len(items), chunk):
            part = items[i : i + chunk]
            more = admin.upsert_catalog(db, [it for _, it in part], lines=[n for n, _ in part])
            problems.extend(more)  # type: ignore[arg-type]
            loaded += len(part) - len(more)
            bar.update(len(part))
    for problem in sorted(problems, key=lambda pr: pr.line)[:200]:
        _say(f"  line {problem.line}: {problem.message}")
    _say(f"{loaded} products loaded, {len(problems)} problem(s).")


@catalog.command("retire")
@click.argument("skus", nargs=-1, required=True)
@click.pass_context
def catalog_retire(ctx: click.Context, skus: tuple[str, ...]) -> None:
    """Take products out of the catalogue (stores receive a delete)."""
    from hq import admin

    n = admin.deactivate_products(_db(ctx), skus)
    _say(f"{n} product(s) retired.")


@cli.group()
def price() -> None:
    """Prices."""


@price.command("set")
@click.argument("sku")
@click.argument("amount")
@click.option("--currency", default="CNY", show_default=True)
@click.pass_context
def price_set(ctx: click.Context, sku: str, amount: str, currency: str) -> None:
    """Set a product's tax-inclusive price, in yuan ("12.50")."""
    from hq import admin
    from hq.catalog_file import parse_price

    try:
        minor = parse_price(amount)
    except ValueError as error:
        raise click.ClickException(f"{amount!r} is not a price: {error}") from error
    admin.set_price(_db(ctx), sku, minor, currency)
    _say(f"{sku}: {Decimal(minor) / 100:.2f} {currency}")


@cli.group("config")
def config_group() -> None:
    """Chain-wide settings sent to every store."""


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE (JSON if it parses as JSON, else the text)."""
    from hq import admin

    try:
        parsed: Any = json.loads(value, parse_float=str)
    except json.JSONDecodeError:
        parsed = value
    admin.set_config(_db(ctx), key, parsed)
    _say(f"{key} set.")


@cli.command()
@click.option("--days", default=90, show_default=True, help="Keep changes this many days.")
@click.pass_context
def compact(ctx: click.Context, days: int) -> None:
    """Drop changes older than the retention; stores behind it get a reset to a snapshot."""
    from hq.changelog import compact as run

    horizons = run(_db(ctx), older_than=timedelta(days=days))
    _say("Compacted through: " + ", ".join(f"{s} {h}" for s, h in horizons.items()))


# --- report -----------------------------------------------------------------------------------


@cli.command()
@click.option("--day", help="Business day (YYYY-MM-DD) for the sales columns; default all.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
@click.pass_context
def report(ctx: click.Context, day: str | None, as_json: bool) -> None:
    """Per store and till: last sync, outbox lag, clock offset, sales, quarantine."""
    from hq import admin
    from hq.order_cli import print_incidents

    lines = admin.report(_db(ctx), business_day=day)
    if as_json:
        for line in lines:
            click.echo(json.dumps(line.to_dict(), ensure_ascii=False))
        print_incidents(_db(ctx), as_json=True)
        return
    head = (
        "store",
        "till",
        "last sync",
        "applied",
        "pending",
        "clock",
        "sales",
        "total",
        "quarantined",
        "end of day",
    )
    rows = [head]
    for r in lines:
        clock = (
            "-"
            if r.clock_offset_s is None
            else f"{r.clock_offset_s:+.0f}s" + (" SKEW" if r.clock_flagged else "")
        )
        rows.append(
            (
                r.store_id,
                r.device_id,
                r.last_sync.strftime("%Y-%m-%d %H:%M:%S") if r.last_sync else "never",
                str(r.last_applied_seq),
                "-" if r.pending_reported is None else str(r.pending_reported),
                clock,
                str(r.sales_count),
                f"{Decimal(r.sales_total) / 100:.2f}",
                str(r.quarantined),
                _eod_cell(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print_incidents(_db(ctx), as_json=False)


def _eod_cell(r: Any) -> str:
    """The latest end of day this till sent: its day, and VERIFIED or what was off."""
    if r.eod_day is None:
        return "none yet"
    if r.eod_verified:
        return f"{r.eod_day} verified"
    off = [
        f"{n} {what}"
        for n, what in (
            (r.eod_pending, "pending"),
            (r.eod_sales_mismatches, "sales diff"),
            (r.stock_mismatches, "stock diff"),
        )
        if n
    ]
    return f"{r.eod_day} NOT verified" + (f" ({', '.join(off)})" if off else "")


def _add_order_commands() -> None:
    from hq.order_cli import order, platform

    cli.add_command(platform)
    cli.add_command(order)


_add_order_commands()


def main() -> None:
    cli(prog_name="hq")
