"""A real store file with a small catalogue, the real app on it, and helpers to drive it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from pos.domain.gtin import check_digit
from pos.store import open_store, stock
from pos.store.catalog import CatalogItem, upsert_products
from pos.ui.app import PosApp, PosSettings, build_app
from pos.ui.payment import PaymentModal

NOW = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai


def ean13(body: str) -> str:
    return body + str(check_digit(body))


@dataclass(frozen=True)
class Shop:
    db_path: Path
    cola: str  # barcodes
    cola_cn: str
    chips: str
    water: str

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Read the store file as HQ or an auditor would: a separate connection."""
        conn = sqlite3.connect(self.db_path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def count(self, table: str) -> int:
        (count,) = self.query(f"SELECT count(*) FROM {table}")[0]
        assert isinstance(count, int)
        return count


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    db_path = tmp_path / "store.db"
    codes = [ean13(body) for body in ("690123456789", "690123456790", "690123456791")]
    water = ean13("690123456792")
    items = [
        CatalogItem("SKU-COLA", "Coca-Cola 330ml can", 350, 1300, (codes[0],)),
        CatalogItem("SKU-COLA-CN", "可口可乐 500ml 瓶装", 450, 1300, (codes[1],)),
        CatalogItem("SKU-CHIPS", "Lay's potato chips 70g", 400, 1300, (codes[2],)),
        CatalogItem("SKU-WATER", "农夫山泉 天然水 550ml", 200, 1300, (water,)),
        CatalogItem("SKU-APPLE", "散装红富士苹果", 300, 900, ()),  # no barcode: found by name
    ]
    with open_store(db_path) as store:
        store.set_identity("S001", "T01", now=NOW)
        upsert_products(store.db, items)
        with store.transaction() as conn:
            stock.record(
                conn,
                [stock.Movement(item.sku, 10, "initial", NOW.isoformat()) for item in items],
            )
    return Shop(db_path, cola=codes[0], cola_cn=codes[1], chips=codes[2], water=water)


@pytest.fixture
def make_app(shop: Shop) -> Callable[..., PosApp]:
    def make(**settings: object) -> PosApp:
        return build_app(PosSettings(db_path=shop.db_path, clock=lambda: NOW, **settings))  # type: ignore[arg-type]

    return make


def screen_text(app: PosApp) -> str:
    """What a person sees: the composed screen (the top screen and what shows through)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], what: str = "", timeout: float = 10
) -> None:
    """Let the app run until `condition()` holds (fails after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"timed out waiting for {what or condition}; screen:\n{screen_text(pilot.app)}"  # type: ignore[arg-type]
            )
        await pilot.pause(0.01)


async def type_code(pilot: Pilot[Any], code: str) -> None:
    """A person typing a code and Enter (Pilot leaves tens of ms between keys)."""
    await pilot.press(*code, "enter")


async def wedge_burst(
    pilot: Pilot[Any], code: str, pause_after: int | None = None, delay: float = 0.0
) -> None:
    """A wedge scanner: the code's keys and Enter arrive back to back, as the terminal reads
    them, 2 ms apart. `pause_after` puts a 100 ms hiccup after that many keys (a Bluetooth
    scanner's radio, a busy machine). `delay` stamps the burst that much later than now."""
    driver = pilot.app._driver
    assert driver is not None
    at = time.monotonic() + delay
    for i, char in enumerate(code):
        if i and i == pause_after:
            at += 0.1
        key = events.Key(char, char)
        key.time = at  # as the terminal reader would have stamped it
        driver.send_message(key)
        at += 0.002
    enter = events.Key("enter", "\r")
    enter.time = at
    driver.send_message(enter)
    await pilot.pause()


async def pay_cash(pilot: Pilot[Any], app: PosApp, handed: str) -> None:
    """F2, then cash: `handed` typed over the amount due, Enter."""
    await pilot.press("f2")
    await wait_for(pilot, lambda: isinstance(app.screen, PaymentModal), "payment modal")
    amount = app.screen.query_one("#amount", Input)
    await wait_for(
        pilot, lambda: amount.selection.end - amount.selection.start == len(amount.value)
    )
    await pilot.press(*handed, "enter")
