"""The status bar tells the cashier the till's link to HQ, unsent events and the camera."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from pos.ui.app import PosApp
from pos.ui.messages import CameraState, CameraStatusChanged, SyncState, SyncStatusChanged
from tests.ui.conftest import Shop, pay_cash, screen_text, type_code, wait_for


def status_line(app: PosApp) -> str:
    return screen_text(app).splitlines()[0]


async def test_status_bar_shows_sync_camera_and_outbox(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "outbox 0" in status_line(app), "outbox depth")
        line = status_line(app)
        assert "Store S001" in line and "Till T01" in line
        assert "offline" in line and "cam off" in line  # nothing has said otherwise yet

        # the sync engine's worker reports; then a camera worker
        app.post_message(SyncStatusChanged(SyncState(online=True, pending=0, last_sync=None)))
        await wait_for(pilot, lambda: "● online" in status_line(app), "online")
        app.post_message(CameraStatusChanged(CameraState("lost", detail="unplugged")))
        await wait_for(pilot, lambda: "cam lost" in status_line(app), "camera lost")

        app.post_message(
            SyncStatusChanged(
                SyncState(online=False, pending=3, oldest_pending_age=timedelta(minutes=7))
            )
        )
        await wait_for(pilot, lambda: "offline (oldest 7m)" in status_line(app), "backlog age")


async def test_outbox_depth_follows_sales(shop: Shop, make_app: Callable[..., PosApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.sale_screen
        assert screen is not None
        for _ in range(2):
            await type_code(pilot, shop.cola)
            await wait_for(pilot, lambda: not screen.cart.is_empty)
            await pay_cash(pilot, app, "10")
            await wait_for(pilot, lambda: app.screen is not screen, "receipt")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen, "next customer")
        await wait_for(pilot, lambda: "outbox 2" in status_line(app), "two unsent events")


async def test_closing_the_till_with_an_open_sale_is_refused(
    shop: Shop, make_app: Callable[..., PosApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = app.sale_screen
        assert screen is not None
        await type_code(pilot, shop.cola)
        await wait_for(pilot, lambda: not screen.cart.is_empty)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: "A sale is open" in screen_text(app), "the refusal")
        assert app.is_running
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Cancel this sale?" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.cart.is_empty)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the till closed")
