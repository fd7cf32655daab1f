"""The end-of-day screen of the real till app on an 80x24 terminal, in a store with two tills
against the real HQ (in-process): it says VERIFIED about this till, says what was compared, and
shows the other till's last sync, all of it on one screen without scrolling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from textual.containers import VerticalScroll

from pos.domain.cart import Cart, Payment
from pos.services.sync import save_hq_settings
from pos.store import open_store, stock
from pos.ui.app import PosApp, PosSettings, build_app
from pos.ui.eod_screen import EodScreen
from tests.sync.faults import FaultyTransport
from tests.sync.support import ean_of, make_hq, make_till
from tests.ui.conftest import screen_text, wait_for


def sell(app: PosApp, sku: str, qty: int) -> None:
    product = app.service.lookup(ean_of(sku))
    assert product is not None
    cart = Cart().add(product, qty)
    app.service.complete(cart, [Payment.cash(cart.total)])


async def test_end_of_day_screen_fits_80x24_and_names_the_other_till(tmp_path: Path) -> None:
    hq = make_hq(tmp_path)
    hq.seed(["C1", "C2"], price=450)
    token = hq.register("S1", "till-1")
    db = tmp_path / "till-1.db"
    with open_store(db) as store:
        store.set_identity("S1", "till-1", now=hq.clock())
        save_hq_settings(store, "http://hq.test", token)

    till2 = make_till(hq, tmp_path, "S1", "till-2")  # the store's other till, its own file
    try:
        assert (await till2.sync()).ok
        till2.sell(("C2", 1))
        assert (await till2.sync()).ok
    finally:
        await till2.aclose()
    hq.clock.now += timedelta(hours=3)  # and then nothing from till-2 for three hours

    net = FaultyTransport(hq.transport())
    app = build_app(PosSettings(db_path=db, sync_interval_s=3600, sync_transport=lambda: net))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.service.lookup(ean_of("C1")) is not None, "catalogue")
        sell(app, "C1", 2)
        await pilot.press("f10", "f8")
        await wait_for(pilot, lambda: isinstance(app.screen, EodScreen), "end-of-day screen")
        await wait_for(pilot, lambda: "VERIFIED" in screen_text(app), "verdict", 30)
        text = screen_text(app)
        assert "VERIFIED: this till and HQ agree on its sales and stock movements." in text
        assert "NOT VERIFIED" not in text
        assert "End of day" in text and "till-1 of S1" in text
        assert "Compared: this till's own sales and stock movements with HQ's." in text
        assert "¥9.00" in text  # this till's sale, at the till and at HQ
        assert "till-2: last synced 3 h ago" in text
        assert "HQ's store-wide totals of the day include them" in text
        # everything is on the one screen: nothing to scroll, nothing cut at the right edge
        scroll = app.screen.query_one(VerticalScroll)
        assert scroll.max_scroll_y == 0 and scroll.max_scroll_x == 0
        assert "Check again" in text  # the footer is still there

        # a receipt naming a SKU HQ never had: HQ quarantines the event, F5 checks again
        with app.store.transaction() as conn:
            stock.record(conn, [stock.Movement("GHOST", 3, "receipt", hq.clock().isoformat())])
        await pilot.press("f5")
        await wait_for(pilot, lambda: "NOT VERIFIED" in screen_text(app), "new verdict", 30)
        await wait_for(pilot, lambda: "GHOST: till 3, HQ 0" in screen_text(app), "listed", 30)
        text = screen_text(app)
        assert "Stock moves 2 SKU(s), all this till moved: 1 different" in text
        assert "Refused by HQ: event 2 (stock.adjusted): unknown_sku" in text
        assert "till-2: last synced 3 h ago" in text  # still shown under the problems
        assert scroll.max_scroll_x == 0  # long sentences wrap, nothing is cut off
        await pilot.press("escape", "escape", "ctrl+q")
