"""The online-order inbox in the real till app on a real store file: an order arrives (as the
sync engine's pull writes it), the badge and the bell tell the staff, and it is accepted, picked
by scanning (a wrong item refused), made ready, and handed over on the customer's pickup QR
scanned at the sale screen. Also the cashier's warning when a sale takes held stock, and the
endless-aisle order from the sale screen."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from textual.widgets import Input

from pos.store import open_store, stock
from pos.store import orders as store_orders
from pos.store.catalog import CatalogItem, upsert_products
from pos.ui.app import PosApp
from pos.ui.orders_screen import (
    FormModal,
    HandoverModal,
    OrdersScreen,
    PickScreen,
    order_service,
)
from pos.ui.receipt import ReceiptModal
from pos.ui.sale import SaleScreen
from sync import protocol as p
from tests.ui.conftest import NOW, Shop, pay_cash, screen_text, type_code, wait_for, wedge_burst

CODE = "482913"


def order_row(order_id: str, lines: list[tuple[str, str, int]], **kw: Any) -> dict[str, Any]:
    return p.OrderRow(
        order_id=order_id,
        platform="tmall",
        platform_order_id=f"TM-{order_id}",
        epoch=kw.get("epoch", 1),
        assignment=kw.get("assignment", "assigned"),
        accept_by=NOW + timedelta(minutes=10),
        delivery="pickup",
        customer=p.OrderCustomer(name="李雷", phone="13800000000"),
        lines=[p.OrderRowLine(line_id=i, sku=s, name=n, qty=q) for i, s, q, n in _named(lines)],
        pickup_code_hash=p.pickup_code_hash(CODE),
    ).to_dict()


def _named(lines: list[tuple[str, str, int]]) -> list[tuple[str, str, int, str]]:
    names = {"SKU-COLA": "Coca-Cola 330ml can", "SKU-CHIPS": "Lay's potato chips 70g"}
    return [(i, s, q, names.get(s, s)) for i, s, q in lines]


def arrive(app: PosApp, row: dict[str, Any]) -> None:
    """HQ's row lands in the store file as the sync engine's pull applies it; then the app
    refreshes as it does after every sync round."""
    with app.store.transaction() as conn:
        store_orders.apply_change(conn, "upsert", row["order_id"], row, NOW)
    app.refresh_outbox()


def status_line(app: PosApp) -> str:
    return screen_text(app).splitlines()[0]


def outbox_types(app: PosApp) -> list[str]:
    return [r[0] for r in app.store.conn.execute("SELECT type FROM outbox ORDER BY seq")]


async def test_an_order_arrives_is_picked_by_scanning_and_handed_over_on_its_pickup_qr(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    bells: list[bool] = []
    async with app.run_test(size=(140, 44)) as pilot:
        app.bell = lambda: bells.append(True)  # type: ignore[method-assign]
        arrive(app, order_row("ORD-7", [("L1", "SKU-COLA", 2), ("L2", "SKU-CHIPS", 1)]))
        await wait_for(pilot, lambda: "F6 orders: 1 NEW" in status_line(app), "the badge")
        assert bells, "a new order rings the bell"

        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen), "the inbox")
        await wait_for(pilot, lambda: "ORD-7" in screen_text(app), "the order listed")
        shown = screen_text(app)
        assert "NEW" in shown and "10:00 left" in shown  # the countdown to accept-by
        assert "on hand 10, available 8" in shown  # held from the moment it arrived
        assert store_orders.held(app.store, "SKU-COLA") == 2

        await pilot.press("a")
        await wait_for(pilot, lambda: "to pick" in screen_text(app), "accepted")
        assert store_orders.held(app.store, "SKU-COLA") == 2
        assert "on hand 10, available 8" in screen_text(app)

        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PickScreen), "the pick list")
        await wedge_burst(pilot, shop.water)  # not on the order
        await wait_for(pilot, lambda: "WRONG ITEM" in screen_text(app), "wrong item refused")
        assert "农夫山泉" in screen_text(app)
        for code in (shop.cola, shop.cola, shop.chips):
            await wedge_burst(pilot, code)
        await wait_for(pilot, lambda: "all picked" in screen_text(app), "everything picked")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen), "back in the inbox")
        await wait_for(pilot, lambda: "picked, to pack" in screen_text(app), "picked")
        await pilot.press("k")
        await wait_for(pilot, lambda: "ready for pickup" in screen_text(app), "ready")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "the sale screen")

        # the customer shows the QR at the counter: the sale screen hands it to the handover
        await wedge_burst(pilot, p.pickup_qr("ORD-7", CODE))
        await wait_for(pilot, lambda: isinstance(app.screen, HandoverModal), "handover dialog")
        await wait_for(pilot, lambda: "Give these" in screen_text(app), "the order found")
        assert "Coca-Cola 330ml can x2" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "handed over")

        order = store_orders.get(app.store, "ORD-7")
        assert order is not None and order.stage == "handed_over"
        assert stock.on_hand(app.store, "SKU-COLA") == 8
        assert stock.on_hand(app.store, "SKU-CHIPS") == 9
        assert outbox_types(app) == [
            "order.accepted",
            "order.picked",
            "order.ready",
            "order.handed_over",
        ]

        # the same code again: refused, nothing moves
        await type_code(pilot, "P" + CODE)
        await wait_for(pilot, lambda: "already used" in screen_text(app), "used code refused")
        assert stock.on_hand(app.store, "SKU-COLA") == 8
        await pilot.press("escape")


async def test_a_wrong_typed_pickup_code_is_refused(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        arrive(app, order_row("ORD-8", [("L1", "SKU-COLA", 1)]))
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen), "the inbox")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HandoverModal), "handover dialog")
        await pilot.press(*"123456", "enter")
        await wait_for(pilot, lambda: "No order here has pickup code" in screen_text(app), "no")
        field = app.screen.query_one("#handover-code", Input)
        field.value = ""
        await pilot.press(*CODE, "enter")
        await wait_for(pilot, lambda: "not ready yet" in screen_text(app), "not ready")
        assert outbox_types(app) == []


async def test_a_sale_taking_held_stock_warns_the_cashier(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        arrive(app, order_row("ORD-9", [("L1", "SKU-CHIPS", 8)]))
        await pilot.press("f6")
        await wait_for(pilot, lambda: "ORD-9" in screen_text(app), "listed")
        await pilot.press("a")
        await wait_for(pilot, lambda: "to pick" in screen_text(app), "accepted")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "sale screen")
        for _ in range(3):  # 10 on hand, 8 held: the third bag is somebody's order
            await type_code(pilot, shop.chips)
        await wait_for(pilot, lambda: "2 available here" in screen_text(app), "out of stock hint")
        await pay_cash(pilot, app, "20")
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "receipt")
        await wait_for(pilot, lambda: "Held stock sold" in screen_text(app), "warning")
        risk = app.store.conn.execute(
            "SELECT payload FROM outbox WHERE type = 'order.hold_at_risk'"
        ).fetchone()
        assert json.loads(risk[0])["shortfall"] == 1
        assert store_orders.held(app.store, "SKU-CHIPS") == 7


async def test_endless_aisle_order_from_the_sale_screen(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 44), notifications=True) as pilot:
        with app.store.transaction() as conn:  # the last bottles were broken
            stock.record(conn, [stock.Movement("SKU-WATER", -10, "waste", NOW.isoformat())])
        await type_code(pilot, shop.water)
        await wait_for(pilot, lambda: "0 available here" in screen_text(app), "hint")
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, FormModal), "the form")
        form = app.screen
        assert form.query_one("#f-sku", Input).value == "SKU-WATER"
        for key, value in (
            ("qty", "6"),
            ("name", "韩梅梅"),
            ("phone", "13900000000"),
            ("address", "南京东路 1 号"),
        ):
            form.query_one(f"#f-{key}", Input).value = value
        await pilot.press("f2")
        await wait_for(pilot, lambda: "latitude and longitude" in screen_text(app), "needs a place")
        form.query_one("#f-lat", Input).value = "31.2350"
        form.query_one("#f-lon", Input).value = "121.4800"
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "back to the sale")
        (payload,) = [
            json.loads(r[0])
            for r in app.store.conn.execute(
                "SELECT payload FROM outbox WHERE type = 'order.requested'"
            )
        ]
        assert payload["lines"] == [{"sku": "SKU-WATER", "qty": 6}]
        assert payload["address"] == {"text": "南京东路 1 号", "lat": "31.2350", "lon": "121.4800"}
        assert payload["origin_store"] == "S001"
        assert "Delivery order requested" in screen_text(app)
        # the cart is still there for the rest of the sale
        assert app.sale_screen is not None and app.sale_screen.cart.count == 1


async def test_a_bare_pickup_code_at_the_sale_screen_opens_the_handover_of_its_ready_order(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    """The customer reads out (or shows) the 6-digit code: typed or scanned at the sale
    screen it opens that order's handover when an order ready here has it; otherwise it is a
    product code as before (here, an item whose SKU happens to be the same six digits)."""
    with open_store(shop.db_path) as store:
        upsert_products(store.db, [CatalogItem(CODE, "Gift card 482913", 5000, 0, ())])
    app = make_app()
    async with app.run_test(size=(140, 44), notifications=True) as pilot:
        arrive(app, order_row("ORD-5", [("L1", "SKU-COLA", 1)]))
        orders = order_service(app)
        orders.accept("ORD-5")
        # accepted, not ready yet: the code is still a product code
        await type_code(pilot, CODE)
        await wait_for(pilot, lambda: "Gift card" in screen_text(app), "the item added")
        sale = app.sale_screen
        assert sale is not None and [ln.sku for ln in sale.cart.lines] == [CODE]
        assert not isinstance(app.screen, HandoverModal)

        orders.pick_scan("ORD-5", shop.cola)
        orders.confirm_pick("ORD-5")
        orders.ready("ORD-5")
        await type_code(pilot, CODE)
        await wait_for(pilot, lambda: isinstance(app.screen, HandoverModal), "handover dialog")
        await wait_for(pilot, lambda: "Give these" in screen_text(app), "the order found")
        assert "ORD-5" in screen_text(app) and "Coca-Cola 330ml can x1" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SaleScreen), "handed over")
        order = store_orders.get(app.store, "ORD-5")
        assert order is not None and order.stage == "handed_over"
        assert stock.on_hand(app.store, "SKU-COLA") == 9
        assert [ln.sku for ln in sale.cart.lines] == [CODE]  # the sale in progress is kept
        assert outbox_types(app)[-1] == "order.handed_over"

        # a wedge scan of the same code now: no order is ready with it, so a product again
        await wedge_burst(pilot, CODE)
        await wait_for(pilot, lambda: sale.cart.count == 2, "the item counted again")
        assert not isinstance(app.screen, HandoverModal)
        # an unknown six digits is the usual unknown-code message
        await type_code(pilot, "135790")
        await wait_for(pilot, lambda: "135790 is not in the catalogue" in screen_text(app), "?")


async def test_an_order_another_till_accepted_shows_as_handled_there(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(140, 44), notifications=True) as pilot:
        arrive(app, order_row("ORD-6", [("L1", "SKU-CHIPS", 3)]))
        assert app.service.available("SKU-CHIPS") == 7  # held while nobody has answered
        arrive(app, order_row("ORD-6", [("L1", "SKU-CHIPS", 3)], assignment="accepted"))
        await wait_for(pilot, lambda: "F6 orders" not in status_line(app), "no badge")
        assert app.service.available("SKU-CHIPS") == 10  # the other till holds it, not this one
        await pilot.press("f6")
        await wait_for(pilot, lambda: "ORD-6" in screen_text(app), "listed")
        assert "handled at another till" in screen_text(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: "Not done" in screen_text(app), "refused")
        assert outbox_types(app) == []
