"""HQ pushes a platform's notifications to its webhook: in order, each with its idempotency
key, retried when the platform is down, resumed where it stood; and `hq serve` does it in the
background over real sockets. The platform is a small web app of the test's own."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hq import notify, orders, webhooks
from hq.app import create_app
from hq.db import Database
from hq.dispatch import OrderSettings
from sync import protocol as p
from tests.hq.order_support import NEAR, chain, order_body
from tests.hq.support import register, seed_catalog
from tests.hq.test_orders_cli import run

FAST = webhooks.WebhookSettings(
    poll_s=0.05, wait_initial_s=0.0, wait_max_s=0.0, backoff_s=5.0, attempts=3
)


@dataclass
class Platform:
    """The platform's receiving end: answers ``fail`` 503s first (or ``status`` for ever)."""

    fail: int = 0
    status: int = 200
    tried: list[str] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> JSONResponse:
            key = request.headers.get(webhooks.IDEMPOTENCY_HEADER, "")
            self.tried.append(key)
            if self.fail > 0:
                self.fail -= 1
                return JSONResponse({"busy": True}, status_code=503)
            if self.status != 200:
                return JSONResponse({"no": True}, status_code=self.status)
            if key not in self.keys:  # what a platform does with the key: drop repeats
                self.keys.append(key)
                self.got.append(json.loads(await request.body()))
            return JSONResponse({"ok": True})

        return app


async def test_notifications_go_out_in_order_and_a_platform_that_is_down_gets_them_later(
    db: Database,
) -> None:
    platform = Platform()
    async with (
        chain(db) as c,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform.app()), base_url="http://platform.test"
        ) as out,
    ):
        webhooks.set_url(db, "tmall", "http://platform.test/hook")
        await c.stock("S1", [("A", 5)])
        oid = (await c.order([("A", 1)], pickup="S1"))["order_id"]
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
        await c.send(
            "S1",
            p.ORDER_PICKED,
            {
                "order_id": oid,
                "epoch": 1,
                "lines": [{"line_id": "L1", "sku": "A", "qty_ordered": 1, "qty_picked": 1}],
            },
        )
        await c.send("S1", p.ORDER_READY, {"order_id": oid, "epoch": 1})
        feed = notify.feed(db, "tmall", 0)["notifications"]
        assert [n["kind"] for n in feed] == ["accepted", "ready_for_pickup"]

        platform.fail = 1  # one 503: retried inside the round
        [done] = await webhooks.run_once(db, out, now=c.clock(), settings=FAST)
        assert (done.sent, done.error) == (2, None)
        assert platform.got == feed  # the same JSON, in order
        assert platform.keys == [n["notification_id"] for n in feed]
        assert platform.tried[:2] == [feed[0]["notification_id"]] * 2
        assert await webhooks.run_once(db, out, now=c.clock(), settings=FAST) == []

        # the platform is down for longer: HQ waits and tries again, from where it stood
        platform.fail = 100
        await c.send(
            "S1",
            p.ORDER_HANDED_OVER,
            {
                "order_id": oid,
                "epoch": 1,
                "movements": [
                    {
                        "movement_id": "6f1c7d1e-1111-4a8b-9c3e-000000000001",
                        "sku": "A",
                        "delta": -1,
                        "reason": "order",
                    }
                ],
            },
        )
        [down] = await webhooks.run_once(db, out, now=c.clock(), settings=FAST)
        assert down.sent == 0 and "503" in (down.error or "")
        [w] = webhooks.state(db)
        assert (w["delivered_seq"], w["head"], w["attempts"]) == (2, 3, 1)
        assert await webhooks.run_once(db, out, now=c.clock(), settings=FAST) == []  # not yet
        platform.fail = 0
        c.clock.advance(seconds=6)
        [back] = await webhooks.run_once(db, out, now=c.clock(), settings=FAST)
        assert (back.sent, back.error) == (1, None)
        assert [n["kind"] for n in platform.got] == ["accepted", "ready_for_pickup", "handed_over"]
        assert webhooks.state(db)[0]["attempts"] == 0

        # a 4xx is not retried inside the round, and nothing is skipped
        platform.status = 400
        second = await c.order([("A", 1)])
        await c.send("S1", p.ORDER_ACCEPTED, {"order_id": second["order_id"], "epoch": 1})
        tried = len(platform.tried)
        [refused] = await webhooks.run_once(db, out, now=c.clock(), settings=FAST)
        assert refused.sent == 0 and "400" in (refused.error or "")
        assert len(platform.tried) == tried + 1
        assert webhooks.state(db)[0]["delivered_seq"] == 3

        # HQ process A holds the platform: process B's round does nothing
        assert webhooks._lease(db, "tmall", c.clock() + _later(60), 30) is not None
        platform.status = 200
        assert await webhooks.deliver(db, "tmall", out, now=c.clock() + _later(61)) is None
        assert await webhooks.run_once(db, out, now=c.clock() + _later(120), settings=FAST)
        assert [n["kind"] for n in platform.got][-1] == "accepted"
        assert webhooks.remove(db, "tmall") and webhooks.state(db) == []


def _later(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _serve(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(2000):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    return server, thread, port


async def test_hq_serve_pushes_notifications_in_the_background(db: Database) -> None:
    seed_catalog(db, ["A"])
    s1 = register(db, "S1", lat=NEAR[0], lon=NEAR[1])
    key = orders.add_platform(db, "tmall")
    platform = Platform()
    receiver, receiver_thread, receiver_port = _serve(platform.app())
    run(db, "platform", "webhook", "tmall", f"http://127.0.0.1:{receiver_port}/hook")
    app = create_app(db, order_settings=replace(OrderSettings(), tick_seconds=3600))
    app.state.webhook_settings = FAST
    server, thread, port = _serve(app)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            env = s1.movements([("A", 5)])
            r = await client.post(p.PUSH_PATH, json=s1.push_body([env]), headers=s1.headers)
            assert r.status_code == 200
            r = await client.post(
                "/orders/v1",
                json=order_body([("A", 1)], at=NEAR),
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 201, r.text
            oid = r.json()["order_id"]
            env = s1.event(p.ORDER_ACCEPTED, {"order_id": oid, "epoch": 1})
            r = await client.post(p.PUSH_PATH, json=s1.push_body([env]), headers=s1.headers)
            assert r.status_code == 200
            for _ in range(200):  # received, and HQ recorded it as delivered
                if platform.got and webhooks.state(db)[0]["delivered_seq"] == 1:
                    break
                await asyncio.sleep(0.05)
            assert [(n["kind"], n["order_id"]) for n in platform.got] == [("accepted", oid)]
        listed = run(db, "platform", "webhooks").stdout
        assert "delivered 1 of 1" in listed
    finally:
        server.should_exit = True
        receiver.should_exit = True
        thread.join(10)
        receiver_thread.join(10)
