"""HQ's wake-ups reach a store over a real uvicorn socket: the till's sync worker (its own thread
and file connection, timer set to an hour) pulls a newly assigned order within seconds because
the event stream woke it. A refused token stops the listener; an unreachable HQ is retried
with backoff while the till goes on."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from hq import admin, orders
from hq.app import create_app
from hq.dispatch import OrderSettings
from pos.services.sync import HQSettings, SyncWorker, save_hq_settings
from pos.services.wakeups import WakeupThread
from pos.store import open_store, stock
from sync.wakeup import WakeupConfig, WakeupListener
from tests.sync.orders_support import CUSTOMER, NEAR
from tests.sync.support import HQ, make_hq

FAST = WakeupConfig(backoff_initial_s=0.05, backoff_max_s=0.2, backoff_jitter_s=0.0)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HQ, str]]:
    hq = make_hq(tmp_path)
    hq.seed(["A"], price=350)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = replace(OrderSettings(), sse_poll_seconds=1.0, tick_seconds=3600)
    app = create_app(hq.db, order_settings=settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    try:
        yield hq, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def wait_until(condition: object, timeout: float = 10.0) -> float:
    started = time.perf_counter()
    while not condition():  # type: ignore[operator]
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def orders_at(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT order_id FROM online_orders")]
    finally:
        conn.close()


def test_a_new_order_reaches_a_connected_store_within_seconds(
    served: tuple[HQ, str], tmp_path: Path
) -> None:
    hq, url = served
    token = admin.add_store(hq.db, "S1", name="S1", device_id="till-1", lat=NEAR[0], lon=NEAR[1])
    assert token is not None
    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.set_identity("S1", "till-1", now=hq.clock())
        save_hq_settings(store, url, token)
        with store.transaction() as conn:
            stock.record(conn, [stock.Movement("A", 5, "receipt", hq.clock().isoformat())])
    worker = SyncWorker(db, interval_s=3600)
    worker.start()
    wakeups = WakeupThread(HQSettings(url, token), worker.sync_now, config=FAST)
    try:
        wait_until(lambda: worker.rounds >= 1 and worker.status.online)
        wakeups.start()
        wait_until(lambda: wakeups.connected)
        rounds = worker.rounds
        key = orders.add_platform(hq.db, "tmall")
        body = {
            "platform_order_id": "TM-1",
            "lines": [{"sku": "A", "qty": 1}],
            "delivery": {
                "type": "delivery",
                "address": {"text": "x", "lat": CUSTOMER[0], "lon": CUSTOMER[1]},
            },
            "customer": {"name": "李雷", "phone": "138"},
        }
        started = time.perf_counter()
        r = httpx.post(
            f"{url}/orders/v1", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert r.status_code == 201, r.text
        order_id = r.json()["order_id"]
        wait_until(lambda: order_id in orders_at(db), timeout=5.0)
        seconds = time.perf_counter() - started
        print(f"\nassigned order -> in the store's inbox: {seconds * 1000:.0f} ms")
        assert worker.rounds > rounds  # a round the timer (an hour) would not have run
        assert wakeups.listener is not None and wakeups.listener.wakeups >= 2
    finally:
        wakeups.stop()
        worker.stop()
    assert wakeups.listener is not None and not wakeups.listener.connected


async def test_a_refused_token_stops_the_listener(tmp_path: Path) -> None:
    hq = make_hq(tmp_path)
    woke: list[str] = []
    listener = WakeupListener(
        "http://hq.test",
        "not-a-token",
        woke.append,
        transport=httpx.ASGITransport(app=create_app(hq.db)),
        config=FAST,
    )
    await listener.run()  # returns by itself: retrying unchanged would fail again
    assert listener.refused and "401" in (listener.last_error or "")
    assert woke == [] and listener.connects == 0


def test_an_unreachable_hq_is_retried_until_stopped() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there
    thread = WakeupThread(HQSettings(f"http://127.0.0.1:{port}", "t"), lambda: None, config=FAST)
    thread.start()
    try:
        wait_until(lambda: thread.listener is not None and thread.listener.last_error)
        first = thread.listener.last_error if thread.listener else None
        assert first and "ConnectError" in first
        assert not thread.connected
    finally:
        thread.stop(timeout=5)
    assert thread._thread is not None and not thread._thread.is_alive()
