"""The inbox of the real till app synced with the real HQ (in-process): an order submitted by a
platform reaches the till through its sync worker, the staff accept, pick and make it ready,
and hand it over on the customer's pickup QR; HQ's timeline shows each step."""

from __future__ import annotations

from pathlib import Path

import httpx

from hq import admin
from hq import orders as hq_orders
from pos.services.sync import save_hq_settings
from pos.store import open_store, stock
from pos.store import orders as store_orders
from pos.ui.app import PosSettings, build_app
from pos.ui.orders_screen import HandoverModal, OrdersScreen, PickScreen
from pos.ui.sale import SaleScreen
from sync import protocol as p
from tests.sync.faults import FaultyTransport
from tests.sync.orders_support import NEAR
from tests.sync.support import ean_of, make_hq
from tests.ui.conftest import screen_text, wait_for, wedge_burst


async def test_an_order_from_hq_is_answered_picked_and_handed_over_at_the_till(
    tmp_path: Path,
) -> None:
    hq = make_hq(tmp_path)
    hq.seed(["A", "B"], price=500)
    token = admin.add_store(hq.db, "S1", name="S1", device_id="till-1", lat=NEAR[0], lon=NEAR[1])
    assert token is not None
    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.set_identity("S1", "till-1", now=hq.clock())
        save_hq_settings(store, "http://hq.test", token)
        with store.transaction() as conn:
            at = hq.clock().isoformat()
            stock.record(conn, [stock.Movement(s, 5, "receipt", at) for s in ("A", "B")])
    net = FaultyTransport(hq.transport())
    app = build_app(PosSettings(db_path=db, sync_interval_s=3600, sync_transport=lambda: net))
    platform = hq_orders.add_platform(hq.db, "tmall")
    async with (
        httpx.AsyncClient(transport=hq.transport(), base_url="http://hq.test") as client,
        app.run_test(size=(140, 44), notifications=True) as pilot,
    ):
        # the first round loads the catalogue and tells HQ the store's stock
        await wait_for(pilot, lambda: hq.on_hand("S1") == {"A": 5, "B": 5}, "stock at HQ", 30)
        r = await client.post(
            "/orders/v1",
            json={
                "platform_order_id": "TM-1",
                "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
                "delivery": {"type": "pickup", "store_id": "S1"},
                "customer": {"name": "李雷", "phone": "13800000000"},
            },
            headers={"Authorization": f"Bearer {platform}"},
        )
        assert r.status_code == 201, r.text
        order_id, code = r.json()["order_id"], r.json()["pickup_code"]

        await pilot.press("ctrl+s")  # online, HQ's wake-up does this at once
        await wait_for(pilot, lambda: "F6 orders: 1 NEW" in screen_text(app), "badge", 30)
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen), "inbox")
        await wait_for(pilot, lambda: order_id in screen_text(app), "order listed")
        await pilot.press("a")

        def hq_state() -> list[str]:
            return [a["state"] for a in hq_orders.view(hq.db, order_id)["assignments"]]

        await wait_for(pilot, lambda: hq_state() == ["accepted"], "HQ heard the accept", 30)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PickScreen), "pick list")
        for sku in ("A", "B", "A"):
            await wedge_burst(pilot, ean_of(sku))
        await wait_for(pilot, lambda: "all picked" in screen_text(app), "picked")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen), "inbox again")
        await wait_for(pilot, lambda: "picked, to pack" in screen_text(app), "picked shown")
        await pilot.press("k")
        await wait_for(pilot, lambda: hq_state() == ["ready"], "HQ heard ready", 30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "sale screen")

        await wedge_burst(pilot, p.pickup_qr(order_id, code))
        await wait_for(pilot, lambda: isinstance(app.screen, HandoverModal), "handover")
        await wait_for(pilot, lambda: "Give these" in screen_text(app), "order found")
        await pilot.press("enter")
        await wait_for(pilot, lambda: hq_state() == ["completed"], "HQ: completed", 30)
        kinds = [t["kind"] for t in hq_orders.view(hq.db, order_id)["timeline"]]
        assert kinds == [
            "created",
            "assigned",
            "accepted",
            "picked",
            "ready",
            "handed_over",
            "completed",
        ]
        assert hq.on_hand("S1") == {"A": 3, "B": 4}
        order = store_orders.get(app.store, order_id)
        assert order is not None and order.stage == "handed_over"
