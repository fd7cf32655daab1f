"""The cashier's sale path through the real app on a real store file."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.cells import cell_len
from textual.widgets import Input

from pos.store import open_store
from pos.store.catalog import CatalogItem, upsert_products
from pos.ui.app import PosApp
from pos.ui.receipt import ReceiptModal
from pos.ui.sale import SaleScreen
from pos.ui.widgets import CartTable, ScanField, Totals
from tests.ui.conftest import Shop, pay_cash, screen_text, type_code, wait_for


def sale_screen(app: PosApp) -> SaleScreen:
    assert app.sale_screen is not None
    return app.sale_screen


async def test_three_scans_then_cash_records_the_sale_and_shows_the_receipt(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = sale_screen(app)
        for code in (shop.cola, shop.cola_cn, shop.cola):  # the cola twice: one line, qty 2
            await type_code(pilot, code)
        await type_code(pilot, shop.chips)
        await wait_for(pilot, lambda: screen.cart.count == 4, "four items in the cart")
        await wait_for(pilot, lambda: "TOTAL ¥15.50" in screen_text(app), "the total on screen")

        shown = screen_text(app)
        assert "Coca-Cola 330ml can" in shown and "可口可乐 500ml 瓶装" in shown
        assert "Items 4" in shown  # 2 x 3.50 + 4.50 + 4.00
        assert "Tax incl. ¥1.79" in shown  # 13% included, rounded per line: 0.81 + 0.52 + 0.46

        await pay_cash(pilot, app, "20")
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "receipt")
        receipt = app.screen.query_one("#receipt-text").render()
        receipt_text = str(receipt)
        assert "Sale no. 1" in receipt_text
        assert "TOTAL" in receipt_text and "¥15.50" in receipt_text
        assert "handed over" in receipt_text and "¥20.00" in receipt_text
        assert "CHANGE" in receipt_text and "¥4.50" in receipt_text
        assert "2026-03-01 10:30:00" in receipt_text  # the store's time zone
        assert "Store S001" in receipt_text and "Till T01" in receipt_text
        assert "Change due: ¥4.50" in screen_text(app)

        # what the store recorded, read through a separate connection
        (sale,) = shop.query("SELECT sale_id, sale_no, short_id, total, tax_total FROM sales")
        sale_id, sale_no, short_id, total, tax_total = sale
        assert (sale_no, total, tax_total) == (1, 1550, 179)
        assert f"#{short_id}" in receipt_text
        lines = shop.query(
            "SELECT sku, qty, line_total FROM sale_lines WHERE sale_id = ? ORDER BY line_no",
            sale_id,
        )
        assert lines == [("SKU-COLA", 2, 700), ("SKU-COLA-CN", 1, 450), ("SKU-CHIPS", 1, 400)]
        moves = shop.query("SELECT sku, delta FROM stock_ledger WHERE reason = 'sale' ORDER BY pos")
        assert moves == [("SKU-COLA", -2), ("SKU-COLA-CN", -1), ("SKU-CHIPS", -1)]
        assert shop.query("SELECT on_hand FROM stock_on_hand WHERE sku = 'SKU-COLA'") == [(8,)]
        assert shop.query("SELECT method, amount, tendered, change FROM payments") == [
            ("cash", 1550, 2000, 450)
        ]
        events = shop.query("SELECT seq, type, state, payload FROM outbox")
        assert len(events) == 1
        seq, kind, state, payload = events[0]
        assert (seq, kind, state) == (1, "sale.completed", "pending")
        assert json.loads(str(payload))["sale_id"] == sale_id

        # next customer: the receipt closes, the cart is empty, the status bar counts the event
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, "back to the sale screen")
        assert screen.cart.is_empty
        assert app.focused is screen.scan_field
        await wait_for(pilot, lambda: "outbox 1" in screen_text(app), "outbox depth 1")


async def test_unknown_code_warns_and_changes_nothing(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = sale_screen(app)
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 1)
        before = screen.cart

        await type_code(pilot, "4006381333931")  # a valid EAN-13 this shop does not sell
        await wait_for(pilot, lambda: "not in the catalogue" in screen_text(app), "a warning")
        shown = screen_text(app)
        assert "Unknown code" in shown and "4006381333931" in shown
        assert screen.cart == before
        assert "TOTAL ¥3.50" in shown
        assert app.focused is screen.scan_field and screen.scan_field.value == ""
    assert shop.count("sales") == 0
    assert shop.count("outbox") == 0
    assert shop.query("SELECT count(*) FROM stock_ledger WHERE reason != 'initial'") == [(0,)]


async def test_chinese_names_render_whole_and_columns_stay_aligned(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = sale_screen(app)
        for code in (shop.cola, shop.cola_cn, shop.water):
            await type_code(pilot, code)
        await wait_for(pilot, lambda: screen.cart.count == 3)
        rows = {
            name: line
            for line in screen_text(app).splitlines()
            for name in ("Coca-Cola 330ml can", "可口可乐 500ml 瓶装", "农夫山泉 天然水 550ml")
            if name in line
        }
        assert len(rows) == 3, rows
        # the price column starts in the same terminal cell whatever the name's script
        starts = {cell_len(line[: line.index("¥")]) for line in rows.values()}
        ends = {cell_len(line.rstrip()) for line in rows.values()}
        assert len(starts) == 1 and len(ends) == 1, rows


async def test_plus_minus_and_delete_edit_the_selected_line(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = sale_screen(app)
        await type_code(pilot, shop.cola)
        await type_code(pilot, shop.chips)
        await wait_for(pilot, lambda: screen.cart.count == 2)
        await pilot.press("plus", "plus")  # the last scanned line is selected
        await wait_for(pilot, lambda: screen.cart.count == 4)
        assert screen.cart.line("SKU-CHIPS").qty == 3  # type: ignore[union-attr]
        await pilot.press("minus")
        await wait_for(pilot, lambda: screen.cart.count == 3)
        await pilot.press("up", "delete")
        await wait_for(pilot, lambda: screen.cart.line("SKU-COLA") is None, "cola removed")
        assert "TOTAL ¥8.00" in screen_text(app)
        assert "Coca-Cola" not in screen_text(app)


async def test_abandoned_cart_leaves_no_row(shop: Shop, make_app: Callable[..., PosApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = sale_screen(app)
        await type_code(pilot, shop.cola)
        await type_code(pilot, shop.cola_cn)
        await wait_for(pilot, lambda: screen.cart.count == 2)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Cancel this sale?" in screen_text(app), "confirmation")
        await pilot.press("n")  # kept
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.cart.count == 2
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Cancel this sale?" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.cart.is_empty, "cart emptied")
        assert "TOTAL ¥0.00" in screen_text(app)
    for table in ("sales", "sale_lines", "payments", "outbox"):
        assert shop.count(table) == 0, table
    assert shop.query("SELECT count(*) FROM stock_ledger WHERE reason != 'initial'") == [(0,)]
    assert shop.query("SELECT on_hand FROM stock_on_hand WHERE sku = 'SKU-COLA'") == [(10,)]


async def test_item_without_barcode_is_found_by_chinese_name(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = sale_screen(app)
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.screen is not screen, "search window")
        search = app.screen.query_one("#search-text", Input)
        search.insert_text_at_cursor("苹果")  # an input method delivers composed text
        await wait_for(pilot, lambda: "散装红富士苹果" in screen_text(app), "search result")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.cart.count == 1, "apple added")
        assert screen.cart.lines[0].code is None
        assert "¥3.00" in screen_text(app)


async def test_a_failed_commit_keeps_the_cart_and_records_nothing(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    # an item whose long name makes the sale need fresh pages in the file
    with open_store(shop.db_path) as store:
        upsert_products(
            store.db, [CatalogItem("SKU-OIL", "特级初榨橄榄油礼盒装" * 200, 19900, 900)]
        )
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = sale_screen(app)
        await type_code(pilot, "SKU-OIL")  # a shop code typed by hand: found by SKU
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: screen.cart.count == 2)
        # a full disk, for real: SQLite may not grow the file by a single page
        conn = app.store.conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        await pay_cash(pilot, app, "300")
        await wait_for(pilot, lambda: "Sale not saved" in screen_text(app), "the error")
        assert "disk is full" in screen_text(app)
        assert app.screen is screen and screen.cart.count == 2  # kept for another try
        assert shop.count("sales") == 0 and shop.count("outbox") == 0

        conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        await pay_cash(pilot, app, "300")
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptModal), "receipt")
    assert shop.count("sales") == 1
    assert shop.query("SELECT seq FROM outbox") == [(1,)]


async def test_layout_fits_80_by_24(shop: Shop, make_app: Callable[..., PosApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = sale_screen(app)
        for code in (shop.cola, shop.cola_cn, shop.chips):
            await type_code(pilot, code)
        await wait_for(pilot, lambda: screen.cart.count == 3)
        full = app.screen.region
        for widget in (screen.scan_field, screen.query_one(CartTable), screen.query_one(Totals)):
            region = widget.region
            assert region.area > 0 and full.contains_region(region), widget
        shown = screen_text(app)
        assert "Scan or type a code" in shown
        assert "Lay's potato chips 70g" in shown and "可口可乐 500ml 瓶装" in shown
        assert "TOTAL ¥12.00" in shown
        assert "Store S001" in shown and "offline" in shown
        footer = shown.splitlines()[-1]
        assert "Pay" in footer and "Esc Cancel sale" in footer  # every binding fits
        assert isinstance(app.focused, ScanField)
