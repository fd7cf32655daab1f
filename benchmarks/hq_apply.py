"""HQ ingest throughput: many stores pushing sales at once to a real HQ over loopback.

HQ runs as a real `hq serve` (uvicorn, one process) in a subprocess on 127.0.0.1; the stores are
asyncio clients (httpx) in this process, one task per store, each pushing its own backlog in
batches one after another, all stores at the same time. Every event is a `sale.completed` of
4 lines (one sale, 4 stock movements, 1-2 payments), as the till writes it.

    benchmarks/hq_apply.py --backend postgresql|sqlite [--stores N] [--sales-per-store N]
                           [--batch N] [--dsn DSN] [--quick] [--json]

Figures: events_per_s (events applied / wall time from the first push to the last answer),
stores, p50/p99_batch_ms (one push's round trip), and checks: applied, duplicates, lost (events
HQ does not hold after the run). With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from hq import admin  # noqa: E402
from hq.db import Database, events, sales, stock_ledger  # noqa: E402
from sync import protocol as p  # noqa: E402

DEFAULT_DSN = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SKUS = [f"SKU{i:05d}" for i in range(2000)]


def sale_event(store_id: str, device_id: str, seq: int, rng_base: int) -> p.EventEnvelope:
    lines = []
    for n in range(1, 5):
        sku = SKUS[(rng_base * 7 + seq * 13 + n * 101) % len(SKUS)]
        qty = 1 + (seq + n) % 3
        price = 100 + (seq * n) % 5000
        total = qty * price
        lines.append(
            {
                "line_no": n,
                "sku": sku,
                "name": f"商品 {sku}",
                "qty": qty,
                "unit_price": price,
                "tax_rate_bp": 1300,
                "line_total": total,
                "tax_amount": (total * 1300 + 5650) // 11300,
                "movement_id": str(uuid4()),
                "code": None,
                "stock_short": False,
            }
        )
    total = sum(line["line_total"] for line in lines)
    pays = (
        [{"method": "cash", "amount": total, "tendered": total, "change": 0, "reference": None}]
        if seq % 2
        else [
            {
                "method": "card",
                "amount": total // 2,
                "tendered": None,
                "change": None,
                "reference": "slip",
            },
            {
                "method": "wallet",
                "amount": total - total // 2,
                "tendered": None,
                "change": None,
                "reference": "w",
            },
        ]
    )
    payload = {
        "sale_id": str(uuid4()),
        "sale_no": seq,
        "short_id": f"{seq:04d}",
        "store_id": store_id,
        "device_id": device_id,
        "business_day": "2026-11-22",
        "completed_at": "2026-11-22T10:00:00+08:00",
        "currency": "CNY",
        "guide_id": None,
        "total": total,
        "tax_total": sum(line["tax_amount"] for line in lines),
        "lines": lines,
        "payments": pays,
    }
    return p.EventEnvelope.build(
        event_id=uuid4(),
        device_id=device_id,
        seq=seq,
        type=p.SALE_COMPLETED,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(args: argparse.Namespace) -> tuple[Database, list[str], str, Any]:
    """A fresh HQ database with the catalogue and the stores; returns (db, tokens, target, cleanup)."""
    if args.backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="hq_apply_")
        target = str(Path(tmp) / "hq.db")

        def cleanup() -> None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    else:
        import psycopg

        schema = f"hq_bench_{uuid4().hex[:10]}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in args.dsn else "?"
        target = f"{args.dsn}{sep}options={quote(f'-csearch_path={schema}')}"

        def cleanup() -> None:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    db = Database(target)
    db.create_schema()
    if args.ledger_event_index:  # weighs an index end of day could use, at ingest
        from sqlalchemy import text

        with db.write() as conn:
            conn.execute(text("CREATE INDEX ix_bench_ledger_event ON stock_ledger (event_id)"))
    admin.upsert_catalog(
        db, [admin.CatalogItem(sku=s, name=f"商品 {s}", tax_rate_bp=1300, price=1000) for s in SKUS]
    )
    tokens = [
        admin.add_store(db, f"S{i:05d}", name=f"Store {i}", device_id="till-1") or ""
        for i in range(args.stores)
    ]
    return db, tokens, target, cleanup


async def store_task(
    client: httpx.AsyncClient,
    token: str,
    bodies: list[bytes],
    latencies: list[float],
    counts: dict[str, int],
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in bodies:
        while True:
            t0 = time.perf_counter()
            r = await client.post(p.PUSH_PATH, content=body, headers=headers)
            if r.status_code == 503:  # HQ busy: back off and resend, as a till would
                counts["retries"] += 1
                await asyncio.sleep(0.05)
                continue
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()
            res = p.PushResponse.model_validate_json(r.content)
            for item in res.results:
                counts[item.status] += 1
            break


async def run_clients(
    url: str, tokens: list[str], bodies: list[list[bytes]], concurrency: int
) -> tuple[float, list[float], dict[str, int]]:
    latencies: list[float] = []
    counts = {"applied": 0, "duplicate": 0, "rejected": 0, "superseded": 0, "retries": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(token: str, b: list[bytes]) -> None:
            async with sem:
                await store_task(client, token, b, latencies, counts)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(t, b) for t, b in zip(tokens, bodies, strict=True)))
        return time.perf_counter() - t0, latencies, counts


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--stores", type=int, default=50)
    ap.add_argument("--sales-per-store", type=int, default=400)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument(
        "--concurrency", type=int, default=16, help="stores pushing at the same instant"
    )
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--workers", type=int, default=1, help="HQ server processes")
    ap.add_argument("--quick", action="store_true", help="small run (10 stores x 60 sales)")
    ap.add_argument(
        "--ledger-event-index",
        action="store_true",
        help="add an index on stock_ledger(event_id) first (what would it cost at ingest?)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.stores, args.sales_per_store = 10, 60

    db, tokens, target, cleanup = prepare(args)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hq.cli import main; main()",
            "--dsn" if "://" in target else "--db",
            target,
            "serve",
            "--quiet",
            "--workers",
            str(args.workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("HQ did not start (run `hq serve` by hand to see why)")

        bodies: list[list[bytes]] = []
        total_events = 0
        for i in range(args.stores):
            env = [
                sale_event(f"S{i:05d}", "till-1", seq, i)
                for seq in range(1, args.sales_per_store + 1)
            ]
            total_events += len(env)
            bodies.append(
                [
                    p.PushRequest(
                        device_time=datetime.now(UTC),
                        batch=env[j : j + args.batch],
                        pending=len(env) - j,
                    )
                    .to_json()
                    .encode()
                    for j in range(0, len(env), args.batch)
                ]
            )
        seconds, latencies, counts = asyncio.run(
            run_clients(url, tokens, bodies, min(args.concurrency, args.stores))
        )

        with db.read() as conn:
            held = conn.execute(select(func.count()).select_from(events)).scalar_one()
            sold = conn.execute(select(func.count()).select_from(sales)).scalar_one()
            moved = conn.execute(select(func.count()).select_from(stock_ledger)).scalar_one()
        lat = sorted(latencies)
        result = {
            "backend": args.backend,
            "server": f"hq serve (uvicorn) subprocess, {args.workers} process(es), loopback",
            "stores": args.stores,
            "concurrency": min(args.concurrency, args.stores),
            "events": total_events,
            "batch": args.batch,
            "seconds": round(seconds, 3),
            "events_per_s": round(counts["applied"] / seconds, 1),
            "p50_batch_ms": round(statistics.median(lat) * 1000, 1),
            "p99_batch_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "applied": counts["applied"],
            "rejected": counts["rejected"],
            "duplicates": max(0, int(held) - total_events) + counts["duplicate"],
            "lost": total_events - int(sold),
            "ledger_rows": int(moved),
            "retries_503": counts["retries"],
        }
        if not args.json:
            for k, v in result.items():
                print(f"{k:>16}: {v}")
        print(json.dumps(result))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        db.dispose()
        cleanup()


if __name__ == "__main__":
    main()
