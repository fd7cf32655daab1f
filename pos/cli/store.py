"""`pos init`: make this machine's store database and record which store and till it is.

Also the one place the CLI turns store errors into a plain message and a non-zero exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click

from pos.store import DEFAULT_TIMEZONE, Store, StoreError, open_store


class StoreProblem(click.ClickException):
    """Printed as "Error: <message>" with exit status 1, never a traceback."""


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn StoreError (damaged, locked, full, missing...) into a clean CLI error."""
    try:
        yield
    except StoreError as exc:
        raise StoreProblem(str(exc)) from exc


@contextlib.contextmanager
def opened_store(path: Path, *, create: bool = False) -> Iterator[Store]:
    with store_errors(), open_store(path, create=create) as store:
        yield store


@click.command()
@click.option("--store-id", required=True, help="This store's id, as HQ knows it.")
@click.option("--device-id", required=True, help="This till's id, unique within the chain.")
@click.option(
    "--timezone",
    default=DEFAULT_TIMEZONE,
    show_default=True,
    help="The store's time zone (business days and receipts follow it).",
)
@click.pass_context
def init(ctx: click.Context, store_id: str, device_id: str, timezone: str) -> None:
    """Create the store database (if missing) and record the store and device ids."""
    db_path: Path = ctx.obj["db_path"]
    with opened_store(db_path, create=True) as store, store_errors():
        identity = store.set_identity(
            store_id, device_id, timezone, now=datetime.now().astimezone()
        )
    click.echo(
        f"Store {identity.store_id}, device {identity.device_id} ({identity.timezone}) "
        f"ready in {db_path}."
    )
