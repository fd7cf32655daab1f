"""The sync engine inside the real till app (Textual, run_test + Pilot) against the real HQ app:
the status bar tells online/offline and what waits, "sync now" sends at once, the sync screen
lists what HQ refused with its reason, the end-of-day screen says VERIFIED, and a sale never
waits for the network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Label, Static

from pos.domain.cart import Cart, Payment
from pos.services.sync import save_hq_settings
from pos.store import open_store, outbox
from pos.ui.app import PosApp, PosSettings, build_app
from tests.sync.faults import FaultyTransport
from tests.sync.support import HQ, ean_of, make_hq

SKUS = ["C1", "C2", "C3"]


@pytest.fixture
def hq(tmp_path: Path) -> HQ:
    hq = make_hq(tmp_path)
    hq.seed(SKUS, price=450)
    return hq


def till_file(hq: HQ, tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    token = hq.register("S1", "till-1")
    with open_store(db) as store:
        store.set_identity("S1", "till-1", now=hq.clock())
        save_hq_settings(store, "http://hq.test", token)
    return db


def app_on(db: Path, net: FaultyTransport) -> PosApp:
    return build_app(PosSettings(db_path=db, sync_interval_s=3600, sync_transport=lambda: net))


async def until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened: {what}")


def status_text(app: PosApp) -> str:
    return str(app.screen.query_one("#st-sync", Label).render())


def sell(app: PosApp, sku: str) -> str:
    product = app.service.lookup(ean_of(sku))
    assert product is not None
    cart = Cart().add(product, 2)
    return app.service.complete(cart, [Payment.cash(cart.total)]).sale_id


async def test_the_till_syncs_in_the_background_and_on_demand(hq: HQ, tmp_path: Path) -> None:
    db = till_file(hq, tmp_path)
    net = FaultyTransport(hq.transport())
    app = app_on(db, net)
    async with app.run_test(size=(120, 40)) as pilot:
        # the first round loads HQ's catalogue and the status bar says online
        await until(pilot, lambda: app.service.lookup(ean_of("C2")) is not None, "catalogue")
        await until(pilot, lambda: "online" in status_text(app), "online")

        net.mode = "partition"  # the network goes; selling does not stop
        sale = sell(app, "C2")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "offline" in status_text(app), "offline shown")
        assert outbox.depth(app.store.db) == 1 and hq.sale_ids("S1") == []

        net.mode = "ok"
        await pilot.press("ctrl+s")  # sync now
        await until(pilot, lambda: hq.sale_ids("S1") == [sale], "sale at HQ")
        await until(pilot, lambda: outbox.depth(app.store.db) == 0, "outbox drained")
        await until(pilot, lambda: "online" in status_text(app), "online again")
        await pilot.press("ctrl+q")


async def test_the_sync_screen_lists_what_hq_refused_and_why(hq: HQ, tmp_path: Path) -> None:
    db = till_file(hq, tmp_path)
    net = FaultyTransport(hq.transport())
    app = app_on(db, net)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.service.lookup(ean_of("C1")) is not None, "catalogue")
        sell(app, "C1")
        with app.store.transaction() as conn:
            outbox.append(conn, "stock.counted", {"sku": "C1", "counted": 3}, hq.clock())
        sell(app, "C3")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(hq.sale_ids("S1")) == 2, "both sales at HQ")

        await pilot.press("f10")
        table = app.screen.query_one("#refused", DataTable)
        await until(pilot, lambda: table.row_count == 1, "refused event listed")
        row = table.get_row_at(0)
        assert row[0] == "2" and "unsupported_event_type" in str(row[3])
        status = str(app.screen.query_one("#sync-status", Static).render())
        assert "Refused by HQ:   1 event(s)" in status and "Waiting to send: 0" in status

        await pilot.press("f8")  # end of day from the sync screen
        verdict = lambda: str(app.screen.query_one("#eod-verdict", Static).render())  # noqa: E731
        await until(pilot, lambda: "VERIFIED" in verdict(), "end of day done")
        # HQ refused an event: the day cannot be verified, and the screen says why
        assert "NOT VERIFIED" in verdict()
        report = str(app.screen.query_one("#eod-report", Static).render())
        assert "HQ refused 1 event(s)" in report
        await pilot.press("escape", "escape")
        await pilot.press("ctrl+q")


async def test_end_of_day_is_verified_when_till_and_hq_agree(hq: HQ, tmp_path: Path) -> None:
    db = till_file(hq, tmp_path)
    app = app_on(db, FaultyTransport(hq.transport()))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.service.lookup(ean_of("C1")) is not None, "catalogue")
        sell(app, "C1")
        sell(app, "C2")
        await pilot.press("f10", "f8")
        verdict = lambda: str(app.screen.query_one("#eod-verdict", Static).render())  # noqa: E731
        await until(pilot, lambda: "VERIFIED" in verdict(), "end of day done")
        assert verdict().startswith("VERIFIED")
        report = str(app.screen.query_one("#eod-report", Static).render())
        assert "¥18.00" in report and "0 different" in report
        await pilot.press("escape", "escape", "ctrl+q")
