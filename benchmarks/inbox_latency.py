"""How long an order HQ assigns to a connected store takes to reach that store's inbox.

HQ runs its real app under uvicorn on 127.0.0.1 (SQLite file, a thread of this process); the
store is a real store file with the till's own sync worker (its thread, its timer set to an
hour so only wake-ups count) and the wake-up listener on HQ's event stream. A platform submits
orders one after another over HTTP; each is timed from the moment HQ answered 201 (the order is
committed and assigned) until its row is in the store file, where the inbox reads it.

    benchmarks/inbox_latency.py [--orders N] [--quick] [--no-wakeups] [--json]

Figures: orders, inbox_p50_ms, inbox_p99_ms, inbox_max_ms (goal: <= 5000 ms). With
--no-wakeups the store only pulls on a 2-second timer (what a till does when the event stream
is down). With --json the last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from hq import admin, orders  # noqa: E402
from hq.app import create_app  # noqa: E402
from hq.db import Database  # noqa: E402
from hq.dispatch import OrderSettings  # noqa: E402
from pos.services.sync import HQSettings, SyncWorker, save_hq_settings  # noqa: E402
from pos.services.wakeups import WakeupThread  # noqa: E402
from pos.store import open_store, stock  # noqa: E402

STORE = (31.2304, 121.4737)


def serve(db: Database) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = replace(OrderSettings(), tick_seconds=3600)
    app = create_app(db, order_settings=settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


def in_inbox(db: Path, order_id: str) -> bool:
    conn = sqlite3.connect(db)
    try:
        return (
            conn.execute("SELECT 1 FROM online_orders WHERE order_id = ?", (order_id,)).fetchone()
            is not None
        )
    finally:
        conn.close()


def run(n: int, wakeups: bool) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="inbox-latency-"))
    hq_db = Database(str(work / "hq.db"))
    hq_db.create_schema()
    admin.upsert_catalog(
        hq_db, [admin.CatalogItem(sku="A", name="A", tax_rate_bp=1300, barcodes=(), price=100)]
    )
    token = admin.add_store(hq_db, "S1", name="S1", device_id="till-1", lat=STORE[0], lon=STORE[1])
    assert token is not None
    key = orders.add_platform(hq_db, "bench")
    server, thread, url = serve(hq_db)
    store_db = work / "store.db"
    with open_store(store_db) as store:
        store.set_identity("S1", "till-1", now=datetime.now(UTC))
        save_hq_settings(store, url, token)
        with store.transaction() as conn:
            stock.record(
                conn, [stock.Movement("A", 10 * n + 10, "receipt", datetime.now(UTC).isoformat())]
            )
    worker = SyncWorker(store_db, interval_s=3600 if wakeups else 2.0, min_gap_s=0.0)
    worker.start()
    listener = WakeupThread(HQSettings(url, token), worker.sync_now) if wakeups else None
    samples: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while not (worker.rounds >= 1 and worker.status.online):
            if time.monotonic() > deadline:
                raise SystemExit("the store never synced with HQ")
            time.sleep(0.02)
        if listener is not None:
            listener.start()
            while not listener.connected:
                time.sleep(0.02)
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(n):
                r = client.post(
                    "/orders/v1",
                    json={
                        "platform_order_id": f"B-{i}",
                        "lines": [{"sku": "A", "qty": 1}],
                        "delivery": {
                            "type": "delivery",
                            "address": {"text": "x", "lat": STORE[0], "lon": STORE[1]},
                        },
                        "customer": {"name": "c", "phone": "1"},
                    },
                    headers={"Authorization": f"Bearer {key}"},
                )
                assigned = time.perf_counter()
                assert r.status_code == 201, r.text
                order_id = r.json()["order_id"]
                while not in_inbox(store_db, order_id):
                    if time.perf_counter() - assigned > 60:
                        raise SystemExit(f"order {order_id} never reached the store")
                    time.sleep(0.005)
                samples.append((time.perf_counter() - assigned) * 1000)
    finally:
        if listener is not None:
            listener.stop()
        worker.stop()
        server.should_exit = True
        thread.join(timeout=10)
        hq_db.dispose()
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return {
        "orders": n,
        "wakeups": wakeups,
        "inbox_p50_ms": round(statistics.median(samples), 1),
        "inbox_p99_ms": round(p99, 1),
        "inbox_max_ms": round(samples[-1], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 orders")
    ap.add_argument("--no-wakeups", action="store_true", help="timer pull only (every 2 s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = 10 if args.quick else args.orders
    result = run(n, not args.no_wakeups)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:>14}: {value}")


if __name__ == "__main__":
    main()
