"""HQ's per-till end-of-day answer on a big ledger: how long one till waits for its figures.

HQ's tables are filled directly (COPY on PostgreSQL, executemany on SQLite) with the rows a
push writes: per till, ``--events`` stock events of ``--movements`` movements each (events and
stock_ledger rows, one sale per event), for ``--stores`` stores of ``--tills`` tills. Then
``hq.service.device_reconciliation`` (what ``GET /sync/v1/reconciliation/device`` runs, every
page of it) is timed for a few tills, and the old store-wide ``reconciliation`` beside it.
With ``--ledger-index`` the same is measured again after ``CREATE INDEX ... ON
stock_ledger(event_id)``, to weigh that index (its cost at ingest is hq_apply.py's to measure;
PostgreSQL's planner may keep its hash join over the ledger at these sizes all the same).

    benchmarks/eod_device.py --backend postgresql|sqlite [--stores N] [--tills N]
                             [--events N] [--movements N] [--ledger-index] [--quick] [--json]

Figures: ledger_rows, per-till answer p50/max ms (all pages), store-wide answer p50 ms; with
--ledger-index the same with the index. With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from hq import admin  # noqa: E402
from hq.db import Database, devices, events, payments, sales, stock_ledger  # noqa: E402
from hq.ingest import DeviceAuth  # noqa: E402
from hq.service import device_reconciliation, reconciliation  # noqa: E402

DEFAULT_DSN = os.environ.get("POS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DAY = date(2026, 11, 22)
SKUS = [f"SKU{i:05d}" for i in range(5000)]


def seed(db: Database, stores: int, tills: int, n_events: int, movements: int) -> list[DeviceAuth]:
    now = datetime.now(UTC)
    auths: list[DeviceAuth] = []
    for s in range(stores):
        store_id = f"B{s:05d}"
        admin.add_store(db, store_id, name=store_id, device_id="till-1")
        for t in range(2, tills + 1):
            admin.add_device(db, store_id, f"till-{t}")
    with db.read() as conn:
        rows = list(conn.execute(select(devices.c.id, devices.c.store_id, devices.c.device_id)))
    for pk, store_id, device_id in rows:
        auths.append(DeviceAuth(pk=int(pk), store_id=store_id, device_id=device_id))
        ev: list[dict[str, Any]] = []
        led: list[dict[str, Any]] = []
        sal: list[dict[str, Any]] = []
        pay: list[dict[str, Any]] = []
        for seq in range(1, n_events + 1):
            eid = str(uuid4())
            ev.append(
                {
                    "device_pk": pk,
                    "seq": seq,
                    "event_id": eid,
                    "type": "sale.completed",
                    "schema_version": 1,
                    "payload_hash": "0" * 64,
                    "status": "applied",
                    "reason": None,
                    "occurred_at": now,
                    "received_at": now,
                    "payload": "{}",
                }
            )
            for m in range(movements):
                led.append(
                    {
                        "store_id": store_id,
                        "movement_id": str(uuid4()),
                        "sku": SKUS[(pk * 31 + seq * 7 + m * 101) % len(SKUS)],
                        "delta": -1 - (seq + m) % 3,
                        "reason": "sale",
                        "event_id": eid,
                        "recorded_at": now,
                    }
                )
            sid = str(uuid4())
            sal.append(
                {
                    "sale_id": sid,
                    "store_id": store_id,
                    "device_pk": pk,
                    "event_id": eid,
                    "sale_no": seq,
                    "business_day": DAY.isoformat(),
                    "completed_at": now,
                    "total": 1000,
                    "tax_total": 115,
                    "currency": "CNY",
                    "guide_id": None,
                    "lines": movements,
                }
            )
            pay.append(
                {
                    "sale_id": sid,
                    "n": 1,
                    "store_id": store_id,
                    "business_day": DAY.isoformat(),
                    "method": "cash",
                    "amount": 1000,
                    "tendered": None,
                    "change": None,
                    "reference": None,
                }
            )
        with db.write() as conn:
            db.bulk_insert(conn, events, ev)
            db.bulk_insert(conn, stock_ledger, led)
            db.bulk_insert(conn, sales, sal)
            db.bulk_insert(conn, payments, pay)
    with db.write() as conn:
        if db.is_sqlite:
            conn.execute(text("ANALYZE"))
        else:
            for t in ("events", "stock_ledger", "sales", "payments", "devices"):
                conn.execute(text(f"ANALYZE {t}"))
    return auths


def time_answers(db: Database, sample: list[DeviceAuth]) -> dict[str, float]:
    per_till: list[float] = []
    per_store: list[float] = []
    for dev in sample:
        started = time.perf_counter()
        after: str | None = None
        while True:
            page = device_reconciliation(db, dev, DAY, after=after, limit=20000)
            after = page.next_after
            if after is None:
                break
        per_till.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        after = None
        while True:
            old = reconciliation(db, dev, DAY, after=after, limit=5000)
            after = old.next_after
            if after is None:
                break
        per_store.append((time.perf_counter() - started) * 1000)
    return {
        "till_p50_ms": round(statistics.median(per_till), 1),
        "till_max_ms": round(max(per_till), 1),
        "store_p50_ms": round(statistics.median(per_store), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--dsn", default=DEFAULT_DSN)
    ap.add_argument("--stores", type=int, default=200)
    ap.add_argument("--tills", type=int, default=2)
    ap.add_argument("--events", type=int, default=1000, help="stock events per till")
    ap.add_argument("--movements", type=int, default=4, help="movements per event")
    ap.add_argument("--sample", type=int, default=9, help="tills whose answer is timed")
    ap.add_argument("--ledger-index", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.stores, args.events, args.sample = 10, 100, 3

    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            db = Database(str(Path(tmp) / "hq.db"))
        else:
            import psycopg

            from hq.db import database_url

            schema = f"bench_eod_{uuid4().hex[:8]}"
            with psycopg.connect(args.dsn, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA "{schema}"')
            db = Database(database_url(args.dsn), pg_schema=schema, pool_size=4)
        try:
            db.create_schema()
            started = time.perf_counter()
            auths = seed(db, args.stores, args.tills, args.events, args.movements)
            seed_s = time.perf_counter() - started
            with db.read() as conn:
                ledger_rows = int(
                    conn.execute(select(func.count()).select_from(stock_ledger)).scalar_one()
                )
            step = max(1, len(auths) // args.sample)
            sample = auths[::step][: args.sample]
            out: dict[str, Any] = {
                "backend": args.backend,
                "stores": args.stores,
                "tills": len(auths),
                "ledger_rows": ledger_rows,
                "seed_s": round(seed_s, 1),
                "movements_per_till": args.events * args.movements,
            }
            time_answers(db, sample[:1])  # warm the cache once
            out.update(time_answers(db, sample))
            if args.ledger_index:
                with db.write() as conn:
                    conn.execute(
                        text("CREATE INDEX ix_bench_ledger_event ON stock_ledger (event_id)")
                    )
                    conn.execute(text("ANALYZE" if db.is_sqlite else "ANALYZE stock_ledger"))
                time_answers(db, sample[:1])
                out.update({f"indexed_{k}": v for k, v in time_answers(db, sample).items()})
            out["loadavg"] = os.getloadavg()[0]
        finally:
            db.dispose()
            if schema is not None:
                import psycopg

                with psycopg.connect(args.dsn, autocommit=True) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if not args.json:
        for k, v in out.items():
            print(f"{k:>22}: {v}")
    print(json.dumps(out) if args.json else "")


if __name__ == "__main__":
    main()
