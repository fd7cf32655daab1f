"""The cashier's sale path on a big catalogue, on real components (SQLite file, services).

    benchmarks/sale_path.py [--skus N] [--quick] [--json] [--seed S] [--keep DIR]

Builds the demo catalogue as a CSV file in a temporary folder (not timed), loads it with the
real import path (`pos.services.catalog_import.import_catalog`, timed), then measures on that
store:

  load_rows_per_s       rows / seconds of the whole import: parse, validate, insert, indexes,
                        trigram name index, on-hand projection, commit (load_phases splits it)
  scan_to_line_p50/p99  SaleService.lookup(code) + Cart.add for random known codes (ms)
  sale_commit_p50/p99   SaleService.complete() of a 4-line cash sale, synchronous=FULL (ms)
  disk_sync_p50/p99     the disk's own floor for a commit: 80 KB write + fdatasync (ms)
  search_p50/p99        SaleService.search for 2-5 character name fragments (ms)
  store_ready_s         a new Python process: start -> store opened -> first lookup answered
  db_mb                 size of the store file after the load (10^6 bytes)

The app-level figures (cold_start_s: process start to the sale screen ready to scan;
scan_to_render_p99_ms: a scan typed into the running app until its line is on screen) are
measured by the functions in APP_MEASUREMENTS; until they exist these keys are null.

With --json the last line printed is one JSON object. --quick uses 20,000 SKUs unless --skus is
given. The default is the full 2,057,280 SKUs."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pos.domain.cart import Cart, Payment  # noqa: E402
from pos.services.catalog_import import import_catalog  # noqa: E402
from pos.services.demo import MAX_DEMO_SKUS, write_demo_csv  # noqa: E402
from pos.services.sale import SaleService  # noqa: E402
from pos.store import Store, open_store  # noqa: E402

QUICK_SKUS = 20_000
FULL_SCANS, QUICK_SCANS = 20_000, 2_000
FULL_SALES, QUICK_SALES = 300, 60
SEARCHES = 200


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


@dataclass
class Bench:
    """What the measurements share: the catalogue's file, the store, and the results."""

    folder: Path
    db_path: Path
    skus: int
    quick: bool
    seed: int
    rng: random.Random
    results: dict[str, Any] = field(default_factory=dict)
    store: Store | None = None

    def service(self) -> SaleService:
        assert self.store is not None
        return SaleService(self.store)

    def sample_codes(self, count: int) -> list[str]:
        """Random barcodes (as printed) from the loaded catalogue."""
        assert self.store is not None
        conn = self.store.conn
        top = conn.execute("SELECT max(rowid) FROM barcodes").fetchone()[0] or 0
        codes: list[str] = []
        while len(codes) < count and top:
            row = conn.execute(
                "SELECT raw FROM barcodes WHERE rowid = ?", (self.rng.randint(1, top),)
            ).fetchone()
            if row:
                codes.append(row[0])
        return codes


def measure_load(bench: Bench) -> None:
    csv_path = bench.folder / "catalogue.csv"
    started = time.perf_counter()
    write_demo_csv(csv_path, bench.skus, bench.seed)
    bench.results["csv_write_s"] = round(time.perf_counter() - started, 2)
    bench.results["csv_mb"] = round(csv_path.stat().st_size / 1e6, 1)
    store = open_store(bench.db_path)
    store.set_identity("BENCH-STORE", "BENCH-TILL", now=_now())
    report = import_catalog(store, csv_path)
    assert report.loaded == bench.skus and report.skipped == 0, report.problems[:5]
    bench.store = store
    bench.results["skus"] = report.loaded
    bench.results["load_s"] = round(report.seconds, 2)
    bench.results["load_rows_per_s"] = round(report.rows_per_s)
    bench.results["load_phases_s"] = {k: round(v, 2) for k, v in report.timings.items()}
    bench.results["db_mb"] = round(bench.db_path.stat().st_size / 1e6, 1)
    csv_path.unlink()


def measure_scan_to_line(bench: Bench) -> None:
    service = bench.service()
    codes = bench.sample_codes(QUICK_SCANS if bench.quick else FULL_SCANS)
    timings = []
    cart = Cart()
    for code in codes:
        started = time.perf_counter()
        product = service.lookup(code)
        if product is not None:
            cart = cart.add(product, code=code)
        timings.append(time.perf_counter() - started)
        assert product is not None, code
        if len(cart.lines) >= 20:
            cart = Cart()
    bench.results["scan_to_line_p50_ms"] = ms(percentile(timings, 0.50))
    bench.results["scan_to_line_p99_ms"] = ms(percentile(timings, 0.99))
    bench.results["scans"] = len(timings)


def measure_sale_commit(bench: Bench) -> None:
    assert bench.store is not None
    assert bench.store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    service = bench.service()
    sales = QUICK_SALES if bench.quick else FULL_SALES
    codes = bench.sample_codes(sales * 4)
    timings = []
    for i in range(sales):
        cart = Cart()
        for code in codes[i * 4 : i * 4 + 4]:
            product = service.lookup(code)
            assert product is not None
            cart = cart.add(product, code=code)
        payments = [Payment.cash(cart.total, cart.total + 1000)]
        started = time.perf_counter()
        service.complete(cart, payments)
        timings.append(time.perf_counter() - started)
    bench.results["sale_commit_p50_ms"] = ms(percentile(timings, 0.50))
    bench.results["sale_commit_p99_ms"] = ms(percentile(timings, 0.99))
    bench.results["sales"] = len(timings)
    bench.results.update(_disk_floor(bench.folder, sales))


def _disk_floor(folder: Path, count: int) -> dict[str, float]:
    """What the disk alone costs: write 80 KB (about what one sale adds to the WAL) and
    fdatasync, as SQLite does at each commit. A sale cannot commit faster than this."""
    path = folder / "fsync.probe"
    block = b"\0" * 81_920
    timings = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            timings.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return {
        "disk_sync_p50_ms": ms(percentile(timings, 0.50)),
        "disk_sync_p99_ms": ms(percentile(timings, 0.99)),
    }


def measure_search(bench: Bench) -> None:
    assert bench.store is not None
    service = bench.service()
    names = _sample_names(bench)
    timings = []
    for name in names:
        compact = name.replace(" ", "")
        length = bench.rng.randint(2, 5)
        start = bench.rng.randrange(max(1, len(compact) - length))
        fragment = compact[start : start + length]
        started = time.perf_counter()
        service.search(fragment)
        timings.append(time.perf_counter() - started)
    bench.results["search_p50_ms"] = ms(percentile(timings, 0.50))
    bench.results["search_p99_ms"] = ms(percentile(timings, 0.99))


def _sample_names(bench: Bench) -> list[str]:
    assert bench.store is not None
    conn = bench.store.conn
    names = []
    for _ in range(SEARCHES):
        row = conn.execute(
            "SELECT name FROM products WHERE id = ?", (bench.rng.randint(1, bench.skus),)
        ).fetchone()
        if row:
            names.append(row[0])
    return names


STORE_READY = """
import time
from pathlib import Path
from pos.services.sale import SaleService
from pos.store import open_store
store = open_store(Path({path!r}), create=False)
service = SaleService(store)
assert service.lookup({code!r}) is not None
print(time.time())
"""


def measure_store_ready(bench: Bench) -> None:
    """A new process: interpreter start -> store open -> first lookup answered (the service
    part of the till's cold start; the app's own start-up comes on top)."""
    assert bench.store is not None
    code = bench.sample_codes(1)[0]
    bench.store.close()  # the lock: one process per store file
    bench.store = None
    runs = []
    for _ in range(3):
        started = time.time()
        out = subprocess.run(
            [sys.executable, "-c", STORE_READY.format(path=str(bench.db_path), code=code)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]) - started)
    bench.results["store_ready_s"] = round(max(runs), 3)
    bench.store = open_store(bench.db_path, create=False)


# App-level measurements (the sale screen). Each takes the Bench with the store CLOSED
# (bench.db_path is free to open) and writes its keys into bench.results.
APP_MEASUREMENTS: list[Callable[[Bench], None]] = []
APP_KEYS = ("cold_start_s", "scan_to_render_p99_ms")


# -- the sale screen's figures (the till as a cashier starts and uses it) -----------------------

COLD_START_RUNS = 3
FULL_RENDER_SCANS, QUICK_RENDER_SCANS = 1_000, 200
RENDER_LINES_PER_SALE = 20  # the cart is emptied this often, as a sale ends


def _sample_codes_closed(bench: Bench, count: int) -> list[str]:
    """sample_codes() for the app measurements, which run with the store closed."""
    bench.store = open_store(bench.db_path, create=False)
    try:
        return bench.sample_codes(count)
    finally:
        bench.store.close()
        bench.store = None


def _ready_once(db_path: Path, timeout: float = 120.0) -> float:
    """Seconds from spawning `pos run` until it reports ready to scan. The app writes
    READY_MARKER on stdout once the sale screen is mounted with the scan field focused (and then
    quits); its screen goes to a pseudo-terminal, as in a real terminal."""
    import os
    import pty
    import select

    from pos.ui.app import READY_MARKER

    leader, follower = pty.openpty()
    proc: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pos", "--db", str(db_path), "run", "--exit-when-ready"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=follower,  # Textual draws on stderr
            cwd=ROOT,
            env={**os.environ, "TERM": os.environ.get("TERM", "xterm-256color")},
        )
        assert proc.stdout is not None
        out = b""
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([proc.stdout, leader], [], [], 0.5)
            if leader in ready:
                os.read(leader, 65536)  # keep the screen drained so the app never blocks
            if proc.stdout in ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                out += chunk
                if READY_MARKER in out:
                    return time.perf_counter() - started
                if not chunk:
                    break
        raise RuntimeError(f"`pos run` did not become ready: {out!r}")
    finally:
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(leader)
        os.close(follower)


def measure_cold_start(bench: Bench) -> None:
    """`pos run` on the store, process start -> sale screen ready to scan (worst of 3)."""
    runs = [_ready_once(bench.db_path) for _ in range(COLD_START_RUNS)]
    bench.results["cold_start_s"] = round(max(runs), 3)
    bench.results["cold_start_runs_s"] = [round(r, 3) for r in runs]


async def _scan_to_render(db_path: Path, codes: list[str]) -> list[float]:
    import asyncio

    from textual import events

    from pos.ui.app import PosSettings, build_app

    app = build_app(PosSettings(db_path=db_path, outbox_refresh_s=3600))
    timings: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        driver = app._driver
        assert screen is not None and driver is not None
        changed = asyncio.Event()
        screen.watch(screen, "cart", lambda _cart: changed.set(), init=False)
        # start-up settled (scanner loaded, heap frozen); other workers (sync) run on
        deadline = time.perf_counter() + 60
        while not app.settled and time.perf_counter() < deadline:
            await pilot.pause(0.05)
        await pilot.pause()
        for i, code in enumerate(codes):
            if i and i % RENDER_LINES_PER_SALE == 0:
                screen.cart = Cart()  # next customer
                await pilot.pause()
            changed.clear()
            rendered = asyncio.Event()
            started = time.perf_counter()
            # a wedge scanner: the code's keys and Enter as one burst from the terminal
            for char in code:
                driver.send_message(events.Key(char, char))
            driver.send_message(events.Key("enter", "\r"))
            await asyncio.wait_for(changed.wait(), 10)
            app.call_after_refresh(rendered.set)  # called once the screen has been redrawn
            await asyncio.wait_for(rendered.wait(), 10)
            timings.append(time.perf_counter() - started)
    return timings


def measure_scan_to_render(bench: Bench) -> None:
    """Wedge-scanner bursts into the running app (headless, 120x40) until the cart line is on
    screen: key events -> scan routing and parsing -> lookup -> cart -> the redrawn screen,
    including the frame wait of Textual's refresh timer."""
    import asyncio

    scans = QUICK_RENDER_SCANS if bench.quick else FULL_RENDER_SCANS
    codes = _sample_codes_closed(bench, scans + 5)
    timings = asyncio.run(_scan_to_render(bench.db_path, codes))[5:]  # warm-up
    bench.results["scan_to_render_p50_ms"] = ms(percentile(timings, 0.50))
    bench.results["scan_to_render_p99_ms"] = ms(percentile(timings, 0.99))
    bench.results["render_scans"] = len(timings)


APP_MEASUREMENTS.extend([measure_cold_start, measure_scan_to_render])

SERVICE_MEASUREMENTS: list[Callable[[Bench], None]] = [
    measure_load,
    measure_scan_to_line,
    measure_search,
    measure_sale_commit,
    measure_store_ready,
]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def run(skus: int, quick: bool, seed: int, keep: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sale_path_") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        bench = Bench(folder, folder / "store.db", skus, quick, seed, random.Random(seed))
        bench.results.update(dict.fromkeys(APP_KEYS))
        try:
            for measure in SERVICE_MEASUREMENTS:
                measure(bench)
            if bench.store is not None:
                bench.store.close()
                bench.store = None
            for measure in APP_MEASUREMENTS:
                measure(bench)
        finally:
            if bench.store is not None:
                bench.store.close()
        return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=None, help=f"default {MAX_DEMO_SKUS:,}")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SKUS:,} SKUs, fewer runs")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--keep", type=Path, default=None, help="build in DIR and keep it")
    args = parser.parse_args()
    skus = args.skus if args.skus is not None else (QUICK_SKUS if args.quick else MAX_DEMO_SKUS)
    if not 1 <= skus <= MAX_DEMO_SKUS:
        parser.error(f"--skus must be 1..{MAX_DEMO_SKUS:,}")
    results = run(skus, args.quick, args.seed, args.keep)
    for key, value in results.items():
        print(f"{key:>24}: {value}")
    if args.json:
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
