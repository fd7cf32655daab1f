"""HQ ingest throughput: many stores pushing sales at once to a real HQ over loopback.

HQ runs as a real `hq serve --quiet` (uvicorn; `--workers` processes: 2 on PostgreSQL, 1 on
SQLite unless told) in a subprocess on 127.0.0.1; the stores are
asyncio clients (httpx) in this process, one task per store, each pushing its own backlog in
batches one after another, all stores at the same time. Every event is a `sale.completed` of
4 lines (one sale, 4 stock movements, 1-2 payments), as the till writes it.

    benchmarks/hq_apply.py --backend postgresql|sqlite [--stores N] [--sales-per-store N]
                           [--batch N] [--concurrency N] [--workers N] [--dsn DSN] [--quick]
                           [--json]

Figures: events_per_s (events applied / wall time from the first push to the last answer),
stores, p50/p99_batch_ms (one push's round trip), and checks: applied, duplicates, lost (events
HQ does not hold after the run). The client, HQ and PostgreSQL share the machine's cores, so the
run also reports the CPU seconds each used while the stores pushed (hq_cpu_s: every HQ process;
pg_cpu_s: HQ's PostgreSQL backends, found by their application_name; client_cpu_s: this load
generator, whose bodies are built before the clock starts) and the load average at the start:
hq_cpu_s / events is HQ's cost per event, which another machine's load disturbs far less than
events_per_s. With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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
from hqserver import start_hq, stop_hq  # noqa: E402  (beside this script)
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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def pg_backends(db: Database, app_name: str | None) -> list[int]:
    """Process ids of the PostgreSQL backends HQ's pool holds (PostgreSQL on this machine)."""
    if app_name is None:
        return []
    from sqlalchemy import text

    with db.read() as conn:
        rows = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": app_name}
        )
        return [int(r[0]) for r in rows]


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
        # the application name finds HQ's own PostgreSQL backends for the CPU figures
        target = (
            f"{args.dsn}{sep}options={quote(f'-csearch_path={schema}')}&application_name={schema}"
        )
        args.app_name = schema

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
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="HQ server processes (default: 2 on PostgreSQL, as hq/README advises; 1 on SQLite)",
    )
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
    if args.workers is None:
        args.workers = 2 if args.backend == "postgresql" else 1

    db, tokens, target, cleanup = prepare(args)
    server, url = start_hq(target, workers=args.workers)
    try:
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
        server_pids = process_tree(server.pid)
        server_cpu0 = cpu_seconds(server_pids)
        client_cpu0 = time.process_time()
        load0 = os.getloadavg()[0]
        pg_cpu0 = cpu_seconds(pg_backends(db, getattr(args, "app_name", None)))
        seconds, latencies, counts = asyncio.run(
            run_clients(url, tokens, bodies, min(args.concurrency, args.stores))
        )
        client_cpu = time.process_time() - client_cpu0
        server_cpu = cpu_seconds(server_pids) - server_cpu0
        # the backends open at the end (HQ's pool keeps them) against those open at the start
        pg_cpu = cpu_seconds(pg_backends(db, getattr(args, "app_name", None))) - pg_cpu0

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
            # CPU seconds used during the run: HQ (all its processes), its PostgreSQL backends
            # (0 on SQLite), and this load generator; the machine's load average at the start
            "hq_cpu_s": round(server_cpu, 2),
            "pg_cpu_s": round(pg_cpu, 2),
            "client_cpu_s": round(client_cpu, 2),
            "loadavg_1m": round(load0, 2),
        }
        if not args.json:
            for k, v in result.items():
                print(f"{k:>16}: {v}")
        print(json.dumps(result))
    finally:
        stop_hq(server)
        db.dispose()
        cleanup()


if __name__ == "__main__":
    main()
