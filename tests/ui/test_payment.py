"""Taking payment: several tenders until the total is covered, with change from cash."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input

from pos.ui.app import PosApp
from pos.ui.payment import PaymentModal
from pos.ui.receipt import ReceiptModal
from tests.ui.conftest import Shop, screen_text, type_code, wait_for, wedge_burst

ALIPAY_CODE = "2812345678901234"  # 16 digits starting 25-30


async def enter_amount(pilot, modal: PaymentModal, amount: str) -> None:  # type: ignore[no-untyped-def]
    field = modal.query_one("#amount", Input)
    await wait_for(pilot, lambda: field.selection.end - field.selection.start == len(field.value))
    await pilot.press(*amount, "enter")


async def test_split_payment_card_wallet_then_cash_with_change(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        for code in (shop.cola, shop.cola_cn, shop.chips):
            await type_code(pilot, code)
        await wait_for(pilot, lambda: screen.cart.total == 1200)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal))
        modal = app.screen
        assert isinstance(modal, PaymentModal)

        await pilot.press("f6")  # card
        await enter_amount(pilot, modal, "5")
        await wait_for(pilot, lambda: modal.remaining == 700, "card part taken")
        await wait_for(pilot, lambda: "Due ¥7.00" in screen_text(app))

        await pilot.press("f7")  # wallet: the amount first, then the customer's code
        await enter_amount(pilot, modal, "3")
        await wait_for(pilot, lambda: "payment code first" in screen_text(app), "asks for code")
        assert modal.remaining == 700  # no wallet tender without its code
        await wedge_burst(pilot, ALIPAY_CODE)
        await wait_for(pilot, lambda: modal.remaining == 400, "wallet part taken")

        await pilot.press("f5")  # cash covers the rest, with change
        await enter_amount(pilot, modal, "10")
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "the receipt")
        shown = screen_text(app)
        assert "Change due: ¥6.00" in shown
        assert "Card" in shown and "Wallet" in shown and ALIPAY_CODE in shown

    assert shop.query(
        "SELECT method, amount, tendered, change, reference FROM payments ORDER BY n"
    ) == [
        ("card", 500, None, None, None),
        ("wallet", 300, None, None, ALIPAY_CODE),
        ("cash", 400, 1000, 600, None),
    ]
    assert shop.query("SELECT total FROM sales") == [(1200,)]


async def test_card_cannot_pay_more_than_due_and_escape_keeps_the_cart(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal))
        modal = app.screen
        assert isinstance(modal, PaymentModal)
        await pilot.press("f6")
        await enter_amount(pilot, modal, "50")
        await wait_for(pilot, lambda: "only cash gives change" in screen_text(app))
        assert modal.payments == []
        await enter_amount(pilot, modal, "abc")
        await wait_for(pilot, lambda: "“abc” is not an amount" in screen_text(app))
        assert modal.query_one("#amount", Input).value == "3.50"  # offered again
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to the cart")
        assert screen.cart.count == 1
    assert shop.count("sales") == 0 and shop.count("payments") == 0
