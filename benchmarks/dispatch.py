"""HQ dispatch of online orders among many stores with stock, and how fast a connected store
hears of an order assigned to it.

Seeded straight into HQ's tables (bulk COPY on PostgreSQL, executemany on SQLite; the change
log and the stock ledger are not written, only what dispatch reads):

* ``--stores`` stores around 36 Chinese cities (more in the big ones, scattered ~10 km around
  each centre), one till each, all synced a moment ago;
* ``--skus`` products; stock as a chain carries it, not every store every SKU: the 300 most
  popular SKUs at every store (5-30 each), 200 SKUs per store drawn from the next 20,000
  (1-10 each), and every remaining SKU at 3 random stores (1-3 each).

After a vacuum, statistics and a checkpoint (a running HQ is not minutes after a bulk load)
and 200 warm-up orders, ``--orders`` delivery orders are taken one after another through the service call HQ's
intake runs (``hq.orders.submit``: intake + dispatch + assignment + orders-stream row, one
transaction): 1-4 lines, 70 % popular SKUs, 25 % the middle, 5 % the long tail, to a customer
near a city centre. Holds build up as orders are assigned, as in real life. What is timed is
what a platform waits for once its request is parsed: from the call until the order is
assigned and committed (the intake body is built before the clock starts; the client is
this process and does nothing else meanwhile, so it takes no CPU from HQ's work). HTTP
framing and the JSON answer are not in it: the SSE part below goes through ``hq serve``.

Then ``--platforms`` processes (separate connections and CPU, as separate platforms would be)
submit ``--concurrent-orders`` orders between them at once, each timing its own submits:
throughput and latency when orders for different stores overlap.

Last, unless ``--no-sse``: ``hq serve`` (one process) on that database, ``--sse-stores`` tills
with ``GET /sync/v1/events`` open, and one order at a time placed at each till's door through
``POST /orders/v1``: the time from the intake answer to the wake-up event, and to the end of
the pull that brings the order.

    benchmarks/dispatch.py [--stores 10000] [--skus 200000] [--orders N]
                           [--platforms 4] [--concurrent-orders 1000]
                           [--backend postgresql|sqlite] [--dsn DSN] [--quick] [--json]

Figures: stores, skus, stock_rows, orders, dispatch_p50_ms, dispatch_p99_ms, orders_per_s,
split, backordered, seed_s; concurrent_platforms / concurrent_orders_per_s /
concurrent_p50_ms / concurrent_p99_ms; sse_wakeup_p50_ms / sse_pull_p50_ms / sse_pull_max_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from hqserver import start_hq, stop_hq  # noqa: E402  (beside this script)
from sqlalchemy import text  # noqa: E402

from hq import orders  # noqa: E402
from hq.admin import hash_token  # noqa: E402
from hq.db import Database, devices, products, stock_on_hand, stores  # noqa: E402
from sync import protocol as p  # noqa: E402

DEFAULT_DSN = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

CITIES = [  # (lat, lon, weight)
    (31.23, 121.47, 10), (39.90, 116.40, 10), (23.13, 113.26, 8), (22.54, 114.06, 8),
    (30.57, 104.07, 6), (29.56, 106.55, 6), (30.27, 120.15, 6), (30.59, 114.31, 5),
    (34.34, 108.94, 4), (32.06, 118.80, 5), (39.34, 117.36, 4), (28.23, 112.94, 3),
    (34.75, 113.63, 3), (36.07, 120.38, 3), (41.80, 123.43, 3), (31.30, 120.59, 4),
    (24.48, 118.09, 2), (26.08, 119.30, 2), (25.04, 102.71, 2), (26.65, 106.63, 2),
    (22.82, 108.32, 2), (36.65, 117.12, 3), (38.04, 114.51, 2), (37.87, 112.55, 2),
    (43.82, 125.32, 2), (45.80, 126.53, 2), (28.68, 115.86, 2), (31.82, 117.23, 3),
    (29.87, 121.54, 3), (22.27, 113.58, 1), (20.04, 110.34, 1), (36.06, 103.83, 1),
    (43.83, 87.62, 1), (38.49, 106.23, 1), (40.84, 111.75, 1), (23.02, 113.75, 3),
]  # fmt: skip
CORE, MIDDLE = 300, 20_000


def prepare(backend: str, dsn: str) -> tuple[Database, str, Any]:
    if backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="hq_dispatch_")
        target = str(Path(tmp) / "hq.db")

        def cleanup() -> None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    else:
        import psycopg

        schema = f"hq_bench_{uuid4().hex[:10]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in dsn else "?"
        target = f"{dsn}{sep}options={quote(f'-csearch_path={schema}')}"

        def cleanup() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    db = Database(target)
    db.create_schema()
    return db, target, cleanup


def sku(i: int) -> str:
    return f"SKU{i:07d}"


def seed(db: Database, n_stores: int, n_skus: int, rng: random.Random) -> dict[str, Any]:
    now = datetime.now(UTC)
    weights = [w for _, _, w in CITIES]
    chunk = 200_000 if not db.is_sqlite else 100_000

    def put(table: Any, rows: list[dict[str, Any]]) -> None:
        for i in range(0, len(rows), chunk):
            with db.write() as conn:
                db.bulk_insert(conn, table, rows[i : i + chunk])

    put(
        products,
        [
            {
                "sku": sku(i),
                "name": f"商品 {i}",
                "tax_rate_bp": 1300,
                "active": True,
                "row": json.dumps({"sku": sku(i), "name": f"商品 {i}", "tax_rate_bp": 1300}),
            }
            for i in range(n_skus)
        ],
    )
    places: list[tuple[str, float, float]] = []
    for i in range(n_stores):
        lat, lon, _ = rng.choices(CITIES, weights)[0]
        places.append((f"S{i:05d}", lat + rng.gauss(0, 0.09), lon + rng.gauss(0, 0.11)))
    put(
        stores,
        [
            {
                "store_id": s,
                "name": f"Store {s}",
                "lat": la,
                "lon": lo,
                "timezone": "Asia/Shanghai",
                "created_at": now,
            }
            for s, la, lo in places
        ],
    )
    put(
        devices,
        [
            {
                "store_id": s,
                "device_id": "till-1",
                "token_hash": hash_token(f"hqt_bench_{s}"),
                "last_applied_seq": 0,
                "created_at": now,
                "last_seen_at": now + timedelta(days=1),  # fresh for the whole run
            }
            for s, _, _ in places
        ],
    )
    core = min(CORE, n_skus)
    middle = min(MIDDLE, n_skus)
    rows = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal rows, batch
        if batch:
            with db.write() as conn:
                db.bulk_insert(conn, stock_on_hand, batch)
            rows += len(batch)
            batch = []

    for s, _, _ in places:
        for i in range(core):
            batch.append({"store_id": s, "sku": sku(i), "on_hand": rng.randint(5, 30)})
        if middle > core:
            for i in rng.sample(range(core, middle), min(200, middle - core)):
                batch.append({"store_id": s, "sku": sku(i), "on_hand": rng.randint(1, 10)})
        if len(batch) >= chunk:
            flush()
    flush()
    ids = [s for s, _, _ in places]
    for i in range(middle, n_skus):
        for s in rng.sample(ids, min(3, len(ids))):
            batch.append({"store_id": s, "sku": sku(i), "on_hand": rng.randint(1, 3)})
        if len(batch) >= chunk:
            flush()
    flush()
    settle(db)
    return {"stock_rows": rows, "places": places}


def settle(db: Database) -> None:
    """What a running HQ would have done long before orders come: vacuum and statistics of
    the fresh tables, and a checkpoint (otherwise the bulk load's dirty pages are written
    while the orders commit, and the first minutes measure the disk, not dispatch)."""
    if db.is_sqlite:
        with db.write() as conn:
            conn.execute(text("ANALYZE"))
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM (ANALYZE)")
        conn.exec_driver_sql("CHECKPOINT")


def pick_sku(rng: random.Random, n_skus: int) -> str:
    r = rng.random()
    core = min(CORE, n_skus)
    middle = min(MIDDLE, n_skus)
    if r < 0.70 or middle <= core:
        return sku(min(int(rng.paretovariate(1.2)) - 1, core - 1))
    if r < 0.95 or n_skus <= middle:
        return sku(rng.randrange(core, middle))
    return sku(rng.randrange(middle, n_skus))


def intake(rng: random.Random, n_skus: int, n: int, at: tuple[float, float]) -> Any:
    skus = sorted({pick_sku(rng, n_skus) for _ in range(rng.randint(1, 4))})
    return orders.OrderIntake.model_validate(
        {
            "platform_order_id": f"B-{n}",
            "lines": [{"sku": s, "qty": rng.choice((1, 1, 1, 2))} for s in skus],
            "delivery": {
                "type": "delivery",
                "address": {"text": f"bench {n}", "lat": at[0], "lon": at[1]},
            },
            "customer": {"name": "客户", "phone": "13800000000"},
        }
    )


def run_dispatch(db: Database, n_orders: int, n_skus: int, rng: random.Random) -> dict[str, Any]:
    weights = [w for _, _, w in CITIES]
    times: list[float] = []
    split = back = 0
    # warm-up, not counted: connections, prepared plans, the memory of chain-wide SKUs
    for n in range(min(200, n_orders)):
        lat, lon, _ = rng.choices(CITIES, weights)[0]
        orders.submit(db, "bench", intake(rng, n_skus, -1 - n, (lat, lon)))
    settle(db)  # as autovacuum would: the order tables are no longer empty
    started = time.perf_counter()
    for n in range(n_orders):
        lat, lon, _ = rng.choices(CITIES, weights)[0]
        req = intake(rng, n_skus, n, (lat + rng.gauss(0, 0.08), lon + rng.gauss(0, 0.1)))
        t = time.perf_counter()
        order_id, _ = orders.submit(db, "bench", req)
        times.append((time.perf_counter() - t) * 1000)
        if n % 50 == 0:  # sample the outcome without slowing every order
            v = orders.view(db, order_id)
            split += len({a["store_id"] for a in v["assignments"]}) > 1
            back += v["state"] == "backorder"
    wall = time.perf_counter() - started
    times.sort()
    sampled = max(1, (n_orders + 49) // 50)
    return {
        "orders": n_orders,
        "dispatch_p50_ms": round(statistics.median(times), 2),
        "dispatch_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "dispatch_max_ms": round(times[-1], 2),
        "orders_per_s": round(n_orders / wall, 1),
        "split_share": round(split / sampled, 3),
        "backorder_share": round(back / sampled, 3),
    }


def _platform(job: tuple[str, int, int, int, float]) -> tuple[list[float], float]:
    """One platform in its own process (its own connections, its own CPU): submits its orders
    one after another from ``start`` (a wall-clock time shared by all), timing each."""
    target, seed_, n_orders, n_skus, start = job
    rng = random.Random(seed_)
    weights = [w for _, _, w in CITIES]
    db = Database(target)
    try:
        reqs = []
        for n in range(n_orders):
            lat, lon, _ = rng.choices(CITIES, weights)[0]
            at = (lat + rng.gauss(0, 0.08), lon + rng.gauss(0, 0.1))
            reqs.append(intake(rng, n_skus, f"{seed_}-{n}", at))  # type: ignore[arg-type]
        orders.submit(db, "bench", intake(rng, n_skus, f"{seed_}-warm", CITIES[0][:2]))  # type: ignore[arg-type]
        time.sleep(max(0.0, start - time.time()))
        times: list[float] = []
        for req in reqs:
            t = time.perf_counter()
            orders.submit(db, "bench", req)
            times.append((time.perf_counter() - t) * 1000)
        return times, time.time()
    finally:
        db.dispose()


def run_concurrent(target: str, platforms: int, n_orders: int, n_skus: int) -> dict[str, Any]:
    """``platforms`` processes submitting at once: throughput and latency under contention."""
    import multiprocessing

    per = max(1, n_orders // platforms)
    start = time.time() + 5.0  # every process is up, connected and warm by then
    jobs = [(target, 1000 + i, per, n_skus, start) for i in range(platforms)]
    with multiprocessing.get_context("spawn").Pool(platforms) as pool:
        results = pool.map(_platform, jobs)
    times = sorted(t for ts, _ in results for t in ts)
    wall = max(end for _, end in results) - start
    return {
        "concurrent_platforms": platforms,
        "concurrent_orders": len(times),
        "concurrent_orders_per_s": round(len(times) / wall, 1),
        "concurrent_p50_ms": round(statistics.median(times), 2),
        "concurrent_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


async def sse_latency(
    url: str, key: str, places: list[tuple[str, float, float]], n_stores: int
) -> dict[str, Any]:
    from httpx_sse import aconnect_sse

    wake: list[float] = []
    pulled: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i, (store, lat, lon) in enumerate(places[:n_stores]):
            headers = {"Authorization": f"Bearer hqt_bench_{store}"}
            body = p.PullRequest(device_time=datetime.now(UTC), cursors={"orders": 0}).to_dict()
            r = await client.post(p.PULL_PATH, json=body, headers=headers)
            cursor = p.PullResponse.model_validate_json(r.content).pages["orders"].cursor  # type: ignore[index]
            async with aconnect_sse(client, "GET", p.EVENTS_PATH, headers=headers) as sse:
                events = sse.aiter_sse()
                await anext(events)  # the one sent on connect
                order = {
                    "platform_order_id": f"SSE-{i}",
                    "lines": [{"sku": sku(0), "qty": 1}],
                    "delivery": {
                        "type": "delivery",
                        "address": {"text": "at the door", "lat": lat, "lon": lon},
                    },
                    "customer": {"name": "客户", "phone": "13800000000"},
                }
                r = await client.post(
                    "/orders/v1", json=order, headers={"Authorization": f"Bearer {key}"}
                )
                t0 = time.perf_counter()
                assert r.status_code == 201, r.text
                order_id = r.json()["order_id"]
                await asyncio.wait_for(anext(events), 30)
                wake.append((time.perf_counter() - t0) * 1000)
                body = p.PullRequest(
                    device_time=datetime.now(UTC), cursors={"orders": cursor}
                ).to_dict()
                r = await client.post(p.PULL_PATH, json=body, headers=headers)
                page = p.PullResponse.model_validate_json(r.content).pages["orders"]  # type: ignore[index]
                pulled.append((time.perf_counter() - t0) * 1000)
                assert order_id in [c.key for c in page.changes], "the pull missed the order"
    return {
        "sse_orders": len(wake),
        "sse_wakeup_p50_ms": round(statistics.median(wake), 1),
        "sse_pull_p50_ms": round(statistics.median(pulled), 1),
        "sse_pull_max_ms": round(max(pulled), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--stores", type=int, default=10_000)
    ap.add_argument("--skus", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sse-stores", type=int, default=10)
    ap.add_argument("--no-sse", action="store_true")
    ap.add_argument(
        "--platforms",
        type=int,
        default=4,
        help="then this many platforms (processes) submit at once (0: skip)",
    )
    ap.add_argument("--concurrent-orders", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="300 stores x 5,000 SKUs, 200 orders")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.stores, args.skus, args.orders, args.sse_stores = 300, 5000, 200, 3
        args.concurrent_orders = 100
    rng = random.Random(args.seed)
    db, target, cleanup = prepare(args.backend, args.dsn)
    try:
        t = time.perf_counter()
        seeded = seed(db, args.stores, args.skus, rng)
        seed_s = time.perf_counter() - t
        if not args.json:
            print(f"seeded {seeded['stock_rows']:,} stock rows in {seed_s:.0f} s", file=sys.stderr)
        orders.add_platform(db, "bench")
        result: dict[str, Any] = {
            "backend": args.backend,
            "stores": args.stores,
            "skus": args.skus,
            "stock_rows": seeded["stock_rows"],
            "seed_s": round(seed_s, 1),
        }
        result.update(run_dispatch(db, args.orders, args.skus, rng))
        if args.platforms > 0:
            result.update(run_concurrent(target, args.platforms, args.concurrent_orders, args.skus))
        if not args.no_sse:
            key = orders.add_platform(db, "sse")
            server, url = start_hq(target)
            try:
                result.update(asyncio.run(sse_latency(url, key, seeded["places"], args.sse_stores)))
            finally:
                stop_hq(server)
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:>20}: {v}")
    finally:
        db.dispose()
        cleanup()


if __name__ == "__main__":
    main()
