"""A small chain for the order tests: three stores (two in Shanghai a few km apart, one in
Beijing), a platform, a movable HQ clock, and tills that speak the order events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from hq import orders
from hq.app import create_app
from hq.db import Database
from sync import protocol as p
from tests.hq.support import T0, Till, register, seed_catalog

NEAR = (31.2304, 121.4737)  # S1, People's Square
FAR = (31.2400, 121.5200)  # S2, about 4.5 km east
BEIJING = (39.9042, 116.4074)  # S3
CUSTOMER = (31.2310, 121.4745)  # next to S1


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


@dataclass
class Chain:
    db: Database
    client: httpx.AsyncClient
    clock: Clock
    tills: dict[str, Till]
    key: str
    cursors: dict[str, int]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def stock(self, store: str, items: list[tuple[str, int]]) -> None:
        till = self.tills[store]
        env = till.movements(items)
        res = await till.push(self.client, [env], device_time=self.clock())
        assert res.results[0].status == "applied", res

    async def touch(self, *stores: str) -> None:
        """A sync contact (an empty push) so HQ sees the store as fresh."""
        for s in stores:
            till = self.tills[s]
            await till.push(self.client, [], device_time=self.clock())

    async def order(
        self,
        lines: list[tuple[str, int]],
        *,
        ref: str | None = None,
        at: tuple[float, float] = CUSTOMER,
        pickup: str | None = None,
        expect: int = 201,
    ) -> dict[str, Any]:
        body = order_body(lines, ref=ref, at=at, pickup=pickup)
        r = await self.client.post("/orders/v1", json=body, headers=self.auth)
        assert r.status_code == expect, r.text
        return dict(r.json())

    async def send(self, store: str, type_: str, payload: dict[str, Any]) -> p.PushResult:
        till = self.tills[store]
        env = till.event(type_, payload)
        res = await till.push(self.client, [env], device_time=self.clock())
        return res.results[0]

    async def rows(self, store: str) -> dict[str, dict[str, Any]]:
        """Pull the store's orders stream to the end; its current rows by order id."""
        till = self.tills[store]
        state = self._state.setdefault(store, {})
        while True:
            res = await till.pull(self.client, {"orders": self.cursors.get(store, 0)})
            page = res.pages["orders"]
            for ch in page.changes:
                state[ch.key] = ch.row
            self.cursors[store] = page.cursor
            if not page.has_more:
                return dict(state)

    def __post_init__(self) -> None:
        self._state: dict[str, dict[str, Any]] = {}

    def view(self, order_id: str) -> dict[str, Any]:
        return orders.view(self.db, order_id)

    def tick(self) -> orders.TickReport:
        return orders.tick(self.db, now=self.clock())


def order_body(
    lines: list[tuple[str, int]],
    *,
    ref: str | None = None,
    at: tuple[float, float] = CUSTOMER,
    pickup: str | None = None,
) -> dict[str, Any]:
    delivery: dict[str, Any] = (
        {"type": "pickup", "store_id": pickup}
        if pickup
        else {
            "type": "delivery",
            "address": {"text": "人民大道 200 号", "lat": at[0], "lon": at[1]},
        }
    )
    return {
        "platform_order_id": ref or f"P-{uuid4().hex[:10]}",
        "lines": [{"sku": s, "qty": q} for s, q in lines],
        "delivery": delivery,
        "customer": {"name": "李雷", "phone": "13800000000"},
        "promised_at": "2026-11-22T12:00:00+00:00",
    }


@asynccontextmanager
async def chain(db: Database, *, skus: tuple[str, ...] = ("A", "B", "C")) -> AsyncIterator[Chain]:
    clock = Clock()
    seed_catalog(db, list(skus))
    tills = {
        "S1": register(db, "S1", lat=NEAR[0], lon=NEAR[1]),
        "S2": register(db, "S2", lat=FAR[0], lon=FAR[1]),
        "S3": register(db, "S3", lat=BEIJING[0], lon=BEIJING[1]),
    }
    key = orders.add_platform(db, "tmall")
    app = create_app(db, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hq.test"
    ) as client:
        c = Chain(db, client, clock, tills, key, {})
        await c.touch("S1", "S2", "S3")
        yield c


def live(view: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(store, epoch, state) of the order's assignments that still expect the store to act."""
    return [
        (a["store_id"], a["epoch"], a["state"])
        for a in view["assignments"]
        if a["state"] in orders.LIVE
    ]


def kinds(view: dict[str, Any]) -> list[str]:
    return [t["kind"] for t in view["timeline"]]


def handover_payload(order_id: str, epoch: int, items: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "epoch": epoch,
        "movements": [
            {"movement_id": str(uuid4()), "sku": s, "delta": -q, "reason": "order"}
            for s, q in items
        ],
    }
