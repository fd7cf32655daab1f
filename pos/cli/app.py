"""`pos run` (the till on a store database) and `pos demo` (a ready-made demo store).

A database that cannot be used (damaged, unreadable, missing, already open in another `pos`) is
reported in one plain sentence with a non-zero exit before any screen is drawn: never a
traceback. The UI modules are imported only once the command runs, so `pos --help` stays quick."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from pos.store.errors import StoreError, StoreLockedError

if TYPE_CHECKING:
    from pos.ui.app import PosSettings

DEFAULT_DEMO_DIR = Path("data") / "demo"
DEFAULT_DEMO_SKUS = 20_000  # built in a few seconds; --skus 2057280 for the full-size catalogue
MAX_DEMO_SKUS = 2_057_280

EXIT_STORE_UNUSABLE = 2
EXIT_STORE_LOCKED = 3


def fail(exc: BaseException) -> NoReturn:
    """Print a store failure for a person and exit non-zero."""
    code = EXIT_STORE_LOCKED if isinstance(exc, StoreLockedError) else EXIT_STORE_UNUSABLE
    click.echo(f"pos: {exc}", err=True)
    sys.exit(code)


def start_till(settings: PosSettings) -> int:
    """Build the app from its settings and run it until the cashier closes it."""
    from pos.ui.app import build_app

    try:
        app = build_app(settings)
    except StoreError as exc:
        fail(exc)
    except OSError as exc:  # e.g. the folder of --db cannot be entered at all
        fail(StoreError(f"Cannot open {settings.db_path}: {exc.strerror or exc}."))
    result = app.run()
    return int(result or 0)


def till_options(function: click.decorators.FC) -> click.decorators.FC:
    """Options every command that starts the till shares."""
    function = click.option(
        "--camera",
        "camera",
        metavar="SPEC",
        default=None,
        help="Also read codes with a camera: an index (0), a device (/dev/video2) or a video "
        "file. Default: the store's 'camera' setting, else no camera (F9 toggles it).",
    )(function)
    function = click.option(
        "--wedge-gap-ms",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Keys at most this far apart, ending with Enter, are one scanner read (0: off). "
        "Raise it for slow Bluetooth scanners.",
    )(function)
    return function


@click.command()
@till_options
@click.option(
    "--exit-when-ready",
    is_flag=True,
    hidden=True,
    help="Print a marker on stdout and quit once the till can scan (start-up benchmark).",
)
@click.pass_context
def run(ctx: click.Context, camera: str | None, wedge_gap_ms: float, exit_when_ready: bool) -> None:
    """Start the till on the store database given by --db."""
    from pos.ui.app import PosSettings

    settings = PosSettings(
        db_path=ctx.obj["db_path"],
        camera=camera,
        wedge_gap_ms=wedge_gap_ms,
        exit_when_ready=exit_when_ready,
    )
    sys.exit(start_till(settings))


def demo_welcome(count: int = 3) -> str:
    """What a newcomer can try first: a few of the demo catalogue's barcodes."""
    from itertools import islice

    from pos.services.demo import demo_codes

    codes = [code for _, code in islice(demo_codes(50), count)]
    return (
        f"Demo store. Type or scan {', '.join(codes)} and Enter. "
        "F3 finds an item by name, F2 takes payment."
    )


def prepare_demo_store(data_dir: Path, skus: int) -> Path:
    """Create the demo store under `data_dir` (identity and catalogue), or reuse it with its
    sales if it is already there. Returns the database path."""
    from pos.services.demo import create_demo_store

    db_path = data_dir / "store.db"
    fresh = not db_path.exists()
    if fresh:
        click.echo(f"Creating a demo store with {skus:,} items in {db_path} ...", err=True)

    def progress(done: int, total: int) -> None:
        click.echo(f"  {done:,} / {total:,} items", err=True)

    demo_store = create_demo_store(db_path, skus, progress=progress if skus >= 100_000 else None)
    if not demo_store.created:
        click.echo(f"Reusing the demo store in {db_path}.", err=True)
    return db_path


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DEMO_DIR,
    show_default=True,
    help="Folder of the demo store (created if missing, reused if present).",
)
@click.option(
    "--skus",
    type=click.IntRange(1, MAX_DEMO_SKUS),
    default=DEFAULT_DEMO_SKUS,
    show_default=True,
    help="Items in the demo catalogue (used only when the store is created).",
)
@click.option(
    "--hq/--no-hq",
    "with_hq",
    default=True,
    show_default=True,
    help="Also run a local HQ on loopback with the demo store registered (the till syncs).",
)
@till_options
def demo(data_dir: Path, skus: int, with_hq: bool, camera: str | None, wedge_gap_ms: float) -> None:
    """Create (or reuse) a demo store with a demo catalogue, and start the till on it."""
    from pos.ui.app import PosSettings

    try:
        db_path = prepare_demo_store(data_dir, skus)
    except StoreError as exc:
        fail(exc)
    # Further demo services (a local HQ, ...) start here, before the till takes the screen.
    local_hq = None
    if with_hq:
        from pos.cli.demo_hq import DemoHQError, start_demo_hq

        try:
            local_hq = start_demo_hq(data_dir, db_path)
        except (DemoHQError, StoreError) as exc:
            click.echo(f"pos: the demo runs without HQ: {exc}", err=True)
    settings = PosSettings(
        db_path=db_path, camera=camera, wedge_gap_ms=wedge_gap_ms, welcome=demo_welcome()
    )
    try:
        code = start_till(settings)
    finally:
        if local_hq is not None:
            local_hq.stop()
    sys.exit(code)
