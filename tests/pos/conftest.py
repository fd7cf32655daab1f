"""A real store file per test, with a small catalogue and a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pos.services.sale import SaleService
from pos.store import Store, open_store
from pos.store.catalog import CatalogItem, upsert_products
from pos.store.stock import Movement, record

NOW = datetime(2026, 3, 14, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai

ITEMS = (
    CatalogItem("SKU-WATER", "农夫山泉饮用天然水 550ml", 200, 1300, ("6921168509256",)),
    CatalogItem("SKU-COLA", "Coca-Cola 330ml can", 350, 1300, ("036000291452", "COLA-1")),
    CatalogItem("SKU-NOODLE", "康师傅红烧牛肉面 五连包", 1290, 900, ("6920152400012",)),
    CatalogItem("SKU-CHIPS", "乐事薯片 原味 70g", 750, 1300, ("6924743915848",)),
    CatalogItem("SKU-BANANA", "香蕉 Banana (per piece)", 150, 900, ()),
)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    s = open_store(store_path)
    s.set_identity("STORE-SH-001", "TILL-1", now=NOW)
    upsert_products(s, ITEMS)
    with s.transaction() as conn:
        record(
            conn,
            [
                Movement(item.sku, 10, "initial", NOW.isoformat())
                for item in ITEMS
                if item.sku != "SKU-BANANA"
            ],
        )
    yield s
    s.close()


@pytest.fixture
def service(store: Store) -> SaleService:
    return SaleService(store, clock=lambda: NOW)


def table_counts(store: Store) -> dict[str, int]:
    return {
        table: store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("sales", "sale_lines", "payments", "stock_ledger", "outbox")
    }
