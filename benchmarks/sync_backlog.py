"""Backlog push: a till that was offline for a day comes back and pushes everything to HQ.

HQ is a real `hq serve` (uvicorn) subprocess on 127.0.0.1 over a SQLite file (or PostgreSQL
with --backend postgresql). The till is a real store file that rang up N sales (1-7 lines,
about 4 on average) while offline. Then its production sync worker starts (its own thread and
SQLite connection, as in the app) and drains the outbox while the cashier goes on ringing up
sales (--rate per second) on the till's own connection; each of those commits is timed.

    benchmarks/sync_backlog.py [--sales 5000] [--rate 20] [--backend sqlite|postgresql]
                               [--quick] [--json]

Keys: events (backlog events), seconds (worker start to the last backlog event acknowledged),
events_per_s, duplicates (event ids HQ holds twice, plus sales HQ has more than once), lost
(till sales HQ does not have after the drain), till_commit_p99_ms_during_push (and p50/p95/max,
the number of sales rung during the push; the same till's p50/p99 with no sync running), lines, requests, mb_sent. Goal: <= 5 s for 5,000
sales, 0 duplicates, 0 lost, till commit p99 <= 10 ms while it runs. With --json the last line
is one JSON object. At the default rate a 2 s push times about 40 sales, so their p99 is their
slowest one: compare several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hqserver import start_hq, stop_hq  # noqa: E402  (beside this script)
from sqlalchemy import func, select  # noqa: E402

from hq import admin  # noqa: E402
from hq.db import Database, events, sales  # noqa: E402
from pos.domain.cart import Cart, Payment, Tender  # noqa: E402
from pos.services.sale import SaleService  # noqa: E402
from pos.services.sync import HQSettings, SyncWorker, make_engine, save_hq_settings  # noqa: E402
from pos.store import open_store, outbox  # noqa: E402
from sync.protocol.catalog_file import check_digit  # noqa: E402

DEFAULT_DSN = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SKUS = 2000


def ean13(i: int) -> str:
    body = f"69{i:010d}"
    return body + str(check_digit(body))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hq_database(args: argparse.Namespace, work: Path) -> tuple[str, object]:
    if args.backend == "sqlite":
        path = Path(args.hq_dir or work) / f"hq_{uuid4().hex[:8]}.db"

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return str(path), remove
    import psycopg

    schema = f"hq_backlog_{uuid4().hex[:10]}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.dsn else "?"

    def drop() -> None:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{args.dsn}{sep}options={quote(f'-csearch_path={schema}')}", drop


def ring_up(service: SaleService, products: list, rng: random.Random) -> tuple[str, int]:  # type: ignore[type-arg]
    cart = Cart()
    for product in rng.sample(products, rng.choice((1, 2, 3, 4, 4, 5, 6, 7))):
        cart = cart.add(product, rng.randint(1, 3))
    kind = rng.random()
    if kind < 0.5:
        pay = Payment.cash(cart.total, cart.total + rng.randint(0, 5000))
    elif kind < 0.8:
        pay = Payment(Tender.WALLET, cart.total, reference=f"WX{rng.randint(0, 10**9)}")
    else:
        pay = Payment(Tender.CARD, cart.total)
    receipt = service.complete(cart, [pay])
    return receipt.sale_id, len(receipt.lines)


async def drain(db_path: Path, url: str, token: str) -> None:
    """Send the sales rung for the idle comparison (so the lost/duplicate check sees all)."""
    store = open_store(db_path)
    engine = make_engine(store, db_path, HQSettings(url, token))
    try:
        report = await engine.sync_once()
        assert report.ok and report.pending == 0, report.error
    finally:
        await engine.client.aclose()
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sales", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=20.0, help="sales per second during the push")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--hq-dir",
        help="folder for HQ's SQLite file (default: beside the till's, on the same disk). In a "
        "chain HQ runs on its own machine; /dev/shm stands in for a disk the till does not share",
    )
    ap.add_argument("--quick", action="store_true", help="500 sales")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sales = 500
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="backlog_"))
    target, drop = hq_database(args, work)
    db = Database(target)
    server = None
    try:
        db.create_schema()
        admin.upsert_catalog(
            db,
            [
                admin.CatalogItem(
                    sku=f"SKU{i:05d}",
                    name=f"商品 Item {i}",
                    tax_rate_bp=1300 if i % 5 else 900,
                    barcodes=(ean13(i),),
                    price=100 + (i * 37) % 9900,
                )
                for i in range(SKUS)
            ],
        )
        token = admin.add_store(db, "BACKLOG", name="Backlog", device_id="till-1") or ""
        server, url = start_hq(target)

        db_path = work / "store.db"
        store = open_store(db_path)
        store.set_identity("BACKLOG", "till-1", now=datetime.now(UTC))
        save_hq_settings(store, url, token)

        async def bootstrap() -> None:
            engine = make_engine(store, db_path, HQSettings(url, token))
            try:
                report = await engine.sync_once()
                assert report.ok, report.error
            finally:
                await engine.client.aclose()

        asyncio.run(bootstrap())
        service = SaleService(store)
        products = [service.lookup(ean13(i)) for i in range(0, SKUS, 7)]
        assert all(products)

        # a day offline
        local: list[str] = []
        lines = 0
        for _ in range(args.sales):
            sale_id, n = ring_up(service, products, rng)
            local.append(sale_id)
            lines += n
        top = outbox.last_seq(store.conn)

        # back online: the worker drains the backlog while the till keeps selling
        worker = SyncWorker(db_path, interval_s=3600, min_gap_s=0.0)
        commits: list[float] = []
        started = time.perf_counter()
        worker.start()
        gap = 1.0 / args.rate if args.rate > 0 else 0.0
        next_sale = started
        while True:
            # one index probe: a count(*) over 5,000 pending rows costs ~0.17 ms of CPU, and
            # this loop polls every ~2 ms beside the till it measures (~8% of a core)
            left = store.conn.execute(
                "SELECT 1 FROM outbox WHERE state = 'pending' AND seq <= ? LIMIT 1", (top,)
            ).fetchone()
            if left is None:
                break
            if time.perf_counter() - started > 600:
                raise SystemExit("the backlog did not drain in 10 minutes")
            now = time.perf_counter()
            if gap and now >= next_sale:
                t0 = time.perf_counter()
                sale_id, _ = ring_up(service, products, rng)
                commits.append((time.perf_counter() - t0) * 1000)
                local.append(sale_id)
                next_sale += gap
            else:
                time.sleep(0.002)
        seconds = time.perf_counter() - started
        worker.sync_now()
        for _ in range(3000):  # let the worker send the sales rung during the push too
            if outbox.depth(store.conn) == 0 and worker.status.pending == 0:
                break
            time.sleep(0.01)
        engine = worker.engine
        requests = engine.client.requests if engine else 0
        sent = engine.client.bytes_sent if engine else 0
        worker.stop()
        # the same till with no sync running, for comparison
        idle: list[float] = []
        for _ in range(max(50, len(commits))):
            t0 = time.perf_counter()
            sale_id, _ = ring_up(service, products, rng)
            idle.append((time.perf_counter() - t0) * 1000)
            local.append(sale_id)
            time.sleep(gap)
        store.close()
        asyncio.run(drain(db_path, url, token))

        with db.read() as conn:
            ids = [r[0] for r in conn.execute(select(events.c.event_id))]
            hq_sales = [r[0] for r in conn.execute(select(sales.c.sale_id))]
            sales_rows = conn.execute(select(func.count()).select_from(sales)).scalar_one()
        duplicates = (len(ids) - len(set(ids))) + (sales_rows - len(set(hq_sales)))
        lost = len(set(local) - set(hq_sales))
        result = {
            "backend": args.backend,
            "events": args.sales,
            "lines": lines,
            "seconds": round(seconds, 2),
            "events_per_s": round(args.sales / seconds),
            "duplicates": duplicates,
            "lost": lost,
            "till_commit_p99_ms_during_push": round(percentile(commits, 0.99), 2),
            "till_commit_p50_ms": round(percentile(commits, 0.50), 2),
            "till_commit_p95_ms": round(percentile(commits, 0.95), 2),
            "till_commit_max_ms": round(max(commits), 2) if commits else 0.0,
            "sales_during_push": len(commits),
            "requests": requests,
            "mb_sent": round(sent / 1e6, 1),
            "mean_commit_ms": round(statistics.fmean(commits), 2) if commits else 0.0,
            "till_commit_p99_ms_idle": round(percentile(idle, 0.99), 2),
            "till_commit_p50_ms_idle": round(percentile(idle, 0.50), 2),
        }
        if not args.json:
            for k, v in result.items():
                print(f"{k:>32}: {v}")
        print(json.dumps(result))
    finally:
        if server is not None:
            stop_hq(server)
        db.dispose()
        drop()  # type: ignore[operator]
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
