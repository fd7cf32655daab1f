"""A real HQ and real stores for the online-order tests: each store a real SQLite file run by the
production sync engine and the store's order service, with coordinates HQ dispatches by, a
network that can be cut, and a platform that submits orders over HQ's HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from hq import admin, orders
from pos.services.orders import OrderService
from pos.store import stock
from sync import protocol as p
from tests.sync.faults import FaultyTransport
from tests.sync.support import HQ, Clock, Till, ean_of

NEAR = (31.2304, 121.4737)  # S1, People's Square
FAR = (31.2400, 121.5200)  # S2, about 4.5 km east
CUSTOMER = (31.2310, 121.4745)  # next to S1
SKUS = ("A", "B", "C")


@dataclass
class Shop:
    """A store with one till: its file, engine and order service."""

    till: Till
    orders: OrderService = field(init=False)

    def __post_init__(self) -> None:
        self.orders = OrderService(self.till.store, clock=self.till.clock)

    @property
    def store_id(self) -> str:
        return self.till.store_id

    def reopen(self) -> None:
        self.till.reopen()
        self.orders = OrderService(self.till.store, clock=self.till.clock)

    async def sync(self) -> None:
        report = await self.till.sync()
        assert report.ok, report.error

    async def sync_offline(self) -> None:
        report = await self.till.sync()
        assert not report.ok

    def receive(self, items: list[tuple[str, int]]) -> None:
        """Goods received at the store (pushed to HQ with the next sync)."""
        at = self.till.clock().isoformat()
        with self.till.store.transaction() as conn:
            stock.record(conn, [stock.Movement(s, q, "receipt", at) for s, q in items])

    def offline(self) -> None:
        self.till.net.mode = "partition"

    def online(self) -> None:
        self.till.net.mode = "ok"

    def scan(self, order_id: str, sku: str) -> Any:
        return self.orders.pick_scan(order_id, ean_of(sku))

    def outbox_states(self, type_: str) -> list[str]:
        return [r[0] for r in self.till.q("SELECT state FROM outbox WHERE type = ?", type_)]


@dataclass
class Chain:
    hq: HQ
    shops: dict[str, Shop]
    platform_key: str
    client: httpx.AsyncClient

    @property
    def s1(self) -> Shop:
        return self.shops["S1"]

    @property
    def s2(self) -> Shop:
        return self.shops["S2"]

    async def order(
        self,
        lines: list[tuple[str, int]],
        *,
        pickup: str | None = None,
        at: tuple[float, float] = CUSTOMER,
    ) -> dict[str, Any]:
        delivery: dict[str, Any] = (
            {"type": "pickup", "store_id": pickup}
            if pickup
            else {
                "type": "delivery",
                "address": {"text": "人民大道 200 号", "lat": at[0], "lon": at[1]},
            }
        )
        body = {
            "platform_order_id": f"TM-{uuid4().hex[:10]}",
            "lines": [{"sku": s, "qty": q} for s, q in lines],
            "delivery": delivery,
            "customer": {"name": "李雷", "phone": "13800000000"},
        }
        r = await self.client.post(
            "/orders/v1", json=body, headers={"Authorization": f"Bearer {self.platform_key}"}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def view(self, order_id: str) -> dict[str, Any]:
        return orders.view(self.hq.db, order_id)

    def live(self, order_id: str) -> list[tuple[str, int, str]]:
        return [
            (a["store_id"], a["epoch"], a["state"])
            for a in self.view(order_id)["assignments"]
            if a["state"] in orders.LIVE
        ]

    def kinds(self, order_id: str) -> list[str]:
        return [t["kind"] for t in self.view(order_id)["timeline"]]

    def advance(self, **kw: float) -> None:
        self.hq.clock.now += timedelta(**kw)

    def tick(self) -> orders.TickReport:
        return orders.tick(self.hq.db, now=self.hq.clock())

    async def sync(self, *names: str) -> None:
        """A sync round per store, then one more: a store learns what HQ made of its own
        steps on the pull after its push (online, HQ's wake-up triggers that pull at once)."""
        for _ in range(2):
            for name in names or tuple(self.shops):
                await self.shops[name].sync()

    async def aclose(self) -> None:
        await self.client.aclose()
        for shop in self.shops.values():
            await shop.till.aclose()


def store_till(hq: HQ, tmp_path: Path, store_id: str, where: tuple[float, float]) -> Till:
    token = admin.add_store(
        hq.db, store_id, name=f"Store {store_id}", device_id="till-1", lat=where[0], lon=where[1]
    )
    assert token is not None
    return Till(
        hq,
        tmp_path / f"{store_id}.db",
        store_id,
        "till-1",
        token,
        Clock(lambda: hq.clock.now),
        FaultyTransport(hq.transport()),
    )


async def add_till(chain: Chain, tmp_path: Path, store_id: str, device_id: str) -> Shop:
    """Another till of a store (its own file and ledger), synced once; named
    ``"<store>/<device>"`` in ``chain.shops``."""
    token = admin.add_device(chain.hq.db, store_id, device_id)
    till = Till(
        chain.hq,
        tmp_path / f"{store_id}-{device_id}.db",
        store_id,
        device_id,
        token,
        Clock(lambda: chain.hq.clock.now),
        FaultyTransport(chain.hq.transport()),
    )
    shop = chain.shops[f"{store_id}/{device_id}"] = Shop(till)
    await shop.sync()
    return shop


async def make_chain(hq: HQ, tmp_path: Path) -> Chain:
    """S1 near the customers, S2 4.5 km away; both synced (catalogue loaded, seen by HQ)."""
    hq.seed(SKUS, price=500)
    shops = {
        "S1": Shop(store_till(hq, tmp_path, "S1", NEAR)),
        "S2": Shop(store_till(hq, tmp_path, "S2", FAR)),
    }
    key = orders.add_platform(hq.db, "tmall")
    client = httpx.AsyncClient(transport=hq.transport(), base_url="http://hq.test")
    chain = Chain(hq, shops, key, client)
    await chain.sync()
    return chain


def pickup_code(view: dict[str, Any]) -> str:
    code = view["pickup_code"]
    assert isinstance(code, str) and len(code) == 6
    return code


def qr(view: dict[str, Any]) -> str:
    return p.pickup_qr(view["order_id"], pickup_code(view))
