"""A store's till keeps `GET /sync/v1/events` open over a real uvicorn socket (httpx-sse): an
order assigned to its store wakes it, and the pull that follows brings the order. Also the
fallback for changes made by another HQ process (no in-process announcement): the stream's
own poll of the store's head."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import replace

import httpx
import uvicorn
from httpx_sse import aconnect_sse

from hq import orders
from hq.app import create_app
from hq.db import Database
from hq.dispatch import OrderSettings
from sync import protocol as p
from tests.hq.order_support import NEAR, order_body
from tests.hq.support import T0, register, seed_catalog


def _serve(db: Database, settings: OrderSettings) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(db, order_settings=settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(2000):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    return server, thread, port


async def test_an_assigned_order_wakes_the_store_over_server_sent_events(db: Database) -> None:
    seed_catalog(db, ["A"])
    s1 = register(db, "S1", lat=NEAR[0], lon=NEAR[1])
    s2 = register(db, "S2", lat=NEAR[0] + 1, lon=NEAR[1])
    key = orders.add_platform(db, "tmall")
    settings = replace(OrderSettings(), sse_poll_seconds=0.5, tick_seconds=3600)
    server, thread, port = _serve(db, settings)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            env = s1.movements([("A", 5)])
            r = await client.post(p.PUSH_PATH, json=s1.push_body([env]), headers=s1.headers)
            assert r.status_code == 200
            await client.post(p.PUSH_PATH, json=s2.push_body([]), headers=s2.headers)
            async with aconnect_sse(client, "GET", p.EVENTS_PATH, headers=s1.headers) as sse:
                events = sse.aiter_sse()
                first = await asyncio.wait_for(anext(events), 10)
                assert first.event == "orders"  # at once: pull after every (re)connect
                assert json.loads(first.data)["head"] == 0

                started = time.perf_counter()
                r = await client.post(
                    "/orders/v1",
                    json=order_body([("A", 1)], at=NEAR),
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 201, r.text
                order_id = r.json()["order_id"]
                woke = await asyncio.wait_for(anext(events), 10)
                woke_ms = (time.perf_counter() - started) * 1000
                assert woke.event == "orders" and json.loads(woke.data)["head"] >= 1
                body = p.PullRequest(device_time=T0, cursors={"orders": 0}).to_dict()
                r = await client.post(p.PULL_PATH, json=body, headers=s1.headers)
                page = p.PullResponse.model_validate_json(r.content).pages["orders"]  # type: ignore[index]
                total_ms = (time.perf_counter() - started) * 1000
                assert [c.key for c in page.changes] == [order_id]
                assert p.OrderRow.model_validate(page.changes[0].row).assignment == "assigned"
                print(f"\norder committed -> wake-up {woke_ms:.1f} ms, + pull {total_ms:.1f} ms")

                # another HQ process (here: another engine on the same database) commits a
                # change: nothing is announced in this process, the stream's poll finds it
                other = Database(db.url) if db.is_sqlite else None
                if other is not None:
                    try:
                        orders.reassign(other, order_id)  # not accepted yet: revoked at once
                    finally:
                        other.dispose()
                    started = time.perf_counter()
                    polled = await asyncio.wait_for(anext(events), 10)
                    assert polled.event == "orders"
                    assert (time.perf_counter() - started) < 5
            # the other store never heard of S1's order
            body = p.PullRequest(device_time=T0, cursors={"orders": 0}).to_dict()
            r = await client.post(p.PULL_PATH, json=body, headers=s2.headers)
            page = p.PullResponse.model_validate_json(r.content).pages["orders"]  # type: ignore[index]
            assert order_id not in [c.key for c in page.changes]
            r = await client.get(p.EVENTS_PATH)
            assert r.status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    assert not thread.is_alive()
