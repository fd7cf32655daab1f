"""Codes from a wedge scanner reach the cart wherever the focus is; badges and payment codes go
where they belong."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input

from pos.ui.app import PosApp
from pos.ui.messages import ScanReceived
from pos.ui.payment import PaymentModal
from pos.ui.receipt import ReceiptModal
from pos.ui.widgets import CartTable
from tests.ui.conftest import Shop, screen_text, type_code, wait_for, wedge_burst

WECHAT_CODE = "134567890123456789"  # 18 digits starting 10-15: a WeChat Pay code


async def test_wedge_burst_with_focus_on_the_cart_is_one_scan(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)

        table = screen.query_one(CartTable)
        table.focus()
        await wait_for(pilot, lambda: app.focused is table, "the cart table focused")
        await wedge_burst(pilot, shop.chips)
        await wait_for(pilot, lambda: screen.cart.count == 2, "the scanned item in the cart")
        assert [line.sku for line in screen.cart.lines] == ["SKU-COLA", "SKU-CHIPS"]
        assert screen.cart.lines[1].code == shop.chips
        assert screen.scan_field.value == ""  # no stray digits anywhere
        await wait_for(pilot, lambda: "TOTAL ¥7.50" in screen_text(app))


async def test_wedge_burst_into_the_scan_field_and_typing_both_work(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    seen: list[ScanReceived] = []

    def hook(message: object) -> None:
        # a message is seen again as it bubbles up to the app: count each one once
        if isinstance(message, ScanReceived) and all(message is not m for m in seen):
            seen.append(message)

    app = make_app()
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await wedge_burst(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        await type_code(pilot, shop.cola)  # a person, tens of ms between keys
        await wait_for(pilot, lambda: screen.cart.count == 2)
        assert screen.cart.lines[0].qty == 2
    assert [message.source for message in seen] == ["wedge", "keyboard"]


async def test_a_hiccup_in_the_middle_of_a_scan_still_gives_the_whole_code(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await wedge_burst(pilot, shop.chips, pause_after=7)
        await wait_for(pilot, lambda: screen.cart.count == 1, "the whole code read")
        assert screen.cart.lines[0].code == shop.chips
        assert "not in the catalogue" not in screen_text(app)


async def test_a_scan_replaces_digits_left_in_the_scan_field(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await pilot.press("1", "2")  # a person starts typing, then picks up the scanner
        await wait_for(pilot, lambda: screen.scan_field.value == "12")
        await wedge_burst(pilot, shop.cola, delay=2.0)
        await wait_for(pilot, lambda: screen.cart.count == 1, "the scanned item")
        assert screen.cart.lines[0].code == shop.cola
        await wait_for(pilot, lambda: screen.scan_field.value == "", "the field cleared")


async def test_wedge_burst_of_a_wallet_code_pays_in_the_payment_window(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await type_code(pilot, shop.cola_cn)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal))
        # the amount field has the focus; the customer's code is scanned anyway
        await wedge_burst(pilot, WECHAT_CODE)
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "the receipt")
        assert WECHAT_CODE in screen_text(app)
    assert shop.query("SELECT method, amount, reference FROM payments") == [
        ("wallet", 450, WECHAT_CODE)
    ]


async def test_wallet_code_scanned_at_the_sale_screen_opens_payment_prefilled(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        await wedge_burst(pilot, WECHAT_CODE)
        await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal), "payment window")
        assert app.screen.query_one("#reference", Input).value == WECHAT_CODE
        assert screen.cart.count == 1  # the code was not taken for an item
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "the receipt")
    assert shop.query("SELECT method, reference FROM payments") == [("wallet", WECHAT_CODE)]


async def test_guide_badge_binds_the_sale_to_the_guide(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await wedge_burst(pilot, "GUIDE:G0042")
        await wait_for(pilot, lambda: "Guide G0042" in screen_text(app), "guide on screen")
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal))
        await pilot.press("enter")  # cash, exact amount
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal))
        assert "Served by" in screen_text(app) and "G0042" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.guide_id is None  # the next sale starts unattributed
    assert shop.query("SELECT guide_id FROM sales") == [("G0042",)]


async def test_code_with_a_wrong_check_digit_is_refused_with_the_reason(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = app.sale_screen
        assert screen is not None
        wrong = shop.cola[:-1] + str((int(shop.cola[-1]) + 1) % 10)
        await type_code(pilot, wrong)
        await wait_for(pilot, lambda: "not accepted" in screen_text(app), "a warning")
        assert screen.cart.is_empty


async def test_camera_scans_arrive_through_the_same_path(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    from scanner import parse_text

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        event = parse_text(shop.water, symbology="EAN-13", source="camera")
        app.post_message(ScanReceived(event.text, "camera", event))  # as the camera worker does
        await wait_for(pilot, lambda: screen.cart.count == 1, "the camera's item in the cart")
        assert screen.cart.lines[0].sku == "SKU-WATER"
