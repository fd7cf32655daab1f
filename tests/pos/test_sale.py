"""Completing sales against a real store file: all or nothing, gap-free, never refused for stock."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pos.domain.cart import Cart, Payment, Tender
from pos.domain.errors import CartError, PaymentError
from pos.services.sale import SaleService
from pos.store import Store, StoreFullError, outbox, stock
from pos.store.catalog import CatalogItem, upsert_products
from sync.protocol import payload_hash
from tests.pos.conftest import table_counts


def three_item_cart(service: SaleService) -> Cart:
    cart = Cart()
    for code in ("6921168509256", "036000291452", "6921168509256"):
        product = service.lookup(code)
        assert product is not None
        cart = cart.add(product, code=code)
    return cart


def test_a_cash_sale_writes_sale_lines_payments_ledger_and_one_event(
    store: Store, service: SaleService
) -> None:
    cart = three_item_cart(service)
    receipt = service.complete(cart, [Payment.cash(cart.total, tendered=1000)])

    assert (receipt.sale_no, receipt.seq, receipt.total, receipt.change_due) == (1, 1, 750, 250)
    assert receipt.business_day == "2026-03-14"
    assert receipt.completed_at.isoformat().endswith("+08:00")
    assert len(receipt.short_id) == 8
    assert table_counts(store) == {
        "sales": 1,
        "sale_lines": 2,
        "payments": 1,
        "stock_ledger": 4 + 2,  # 4 initial + one movement per line
        "outbox": 1,
    }
    assert stock.on_hand(store, "SKU-WATER") == 8
    assert stock.on_hand(store, "SKU-COLA") == 9
    assert stock.ledger_sum(store, "SKU-WATER") == 8

    [event] = outbox.pending(store)
    assert (event.seq, event.type, event.schema_version, event.state) == (
        1,
        "sale.completed",
        1,
        "pending",
    )
    payload: dict[str, Any] = json.loads(event.payload)
    assert payload_hash(payload) == event.payload_hash
    assert set(payload) == {
        "sale_id", "sale_no", "short_id", "store_id", "device_id", "business_day",
        "completed_at", "currency", "guide_id", "total", "tax_total", "lines", "payments",
    }  # fmt: skip
    assert payload["store_id"] == "STORE-SH-001" and payload["device_id"] == "TILL-1"
    assert payload["lines"][0] == {
        "line_no": 1,
        "sku": "SKU-WATER",
        "name": "农夫山泉饮用天然水 550ml",
        "qty": 2,
        "unit_price": 200,
        "tax_rate_bp": 1300,
        "line_total": 400,
        "tax_amount": 46,
        "movement_id": receipt.lines[0].movement_id,
        "code": "6921168509256",
        "stock_short": False,
    }
    assert payload["payments"] == [
        {"method": "cash", "amount": 750, "tendered": 1000, "change": 250, "reference": None}
    ]
    movement_ids = {row[0] for row in store.conn.execute("SELECT movement_id FROM sale_lines")}
    ledger_ids = {
        row[0]
        for row in store.conn.execute(
            "SELECT movement_id FROM stock_ledger WHERE reason = 'sale' AND ref_event_id = ?",
            (event.event_id,),
        )
    }
    assert movement_ids == ledger_ids == {line["movement_id"] for line in payload["lines"]}


def test_split_payment_with_wallet_code_is_recorded(store: Store, service: SaleService) -> None:
    cart = three_item_cart(service)
    receipt = service.complete(
        cart,
        [Payment(Tender.WALLET, 500, reference="2851 0000 1111"), Payment.cash(250, 300)],
        guide_id="G-07",
    )
    rows = store.conn.execute(
        "SELECT n, method, amount, tendered, change, reference FROM payments ORDER BY n"
    ).fetchall()
    assert rows == [
        (1, "wallet", 500, None, None, "2851 0000 1111"),
        (2, "cash", 250, 300, 50, None),
    ]
    assert receipt.change_due == 50
    assert store.conn.execute("SELECT guide_id FROM sales").fetchone() == ("G-07",)


def test_a_sale_that_fails_half_way_leaves_no_row(
    store: Store, service: SaleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = table_counts(store)
    cart = three_item_cart(service)

    def broken_append(*args: object, **kwargs: object) -> tuple[int, str]:
        raise RuntimeError("power cut between statements")

    monkeypatch.setattr(outbox, "append", broken_append)
    with pytest.raises(RuntimeError, match="power cut"):
        service.complete(cart, [Payment.cash(cart.total)])
    assert table_counts(store) == before
    assert stock.on_hand(store, "SKU-WATER") == 10

    monkeypatch.undo()
    receipt = service.complete(cart, [Payment.cash(cart.total)])
    assert (receipt.sale_no, receipt.seq) == (1, 1)  # the failed attempt used no number


def test_failure_after_the_sale_rows_but_before_the_ledger_leaves_no_row(
    store: Store, service: SaleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = table_counts(store)

    def broken_record(*args: object, **kwargs: object) -> list[str]:
        raise OSError("disk unplugged")

    monkeypatch.setattr(stock, "record", broken_record)
    cart = three_item_cart(service)
    with pytest.raises(OSError, match="unplugged"):
        service.complete(cart, [Payment.cash(cart.total)])
    assert table_counts(store) == before


def test_an_abandoned_cart_leaves_nothing(store: Store, service: SaleService) -> None:
    before = table_counts(store)
    cart = three_item_cart(service).set_qty("SKU-COLA", 4).remove("SKU-WATER")
    assert cart.count == 4
    del cart  # the customer walks away
    assert table_counts(store) == before
    assert outbox.depth(store) == 0


def test_seq_and_sale_no_are_gap_free_across_sales_and_failures(
    store: Store, service: SaleService
) -> None:
    cart = three_item_cart(service)
    seqs = [service.complete(cart, [Payment.cash(cart.total)]).seq for _ in range(2)]
    with pytest.raises(PaymentError):
        service.complete(cart, [Payment.cash(cart.total - 1)])
    with pytest.raises(CartError, match="empty"):
        service.complete(Cart(), [Payment.cash(100)])
    seqs.append(service.complete(cart, [Payment.cash(cart.total)]).seq)
    assert seqs == [1, 2, 3]
    assert [r[0] for r in store.conn.execute("SELECT seq FROM outbox ORDER BY seq")] == [1, 2, 3]
    assert [r[0] for r in store.conn.execute("SELECT sale_no FROM sales ORDER BY sale_no")] == [
        1,
        2,
        3,
    ]


def test_stock_may_go_negative_and_such_lines_are_flagged(
    store: Store, service: SaleService
) -> None:
    banana = service.search("Banana")[0]
    water = service.lookup("6921168509256")
    assert banana.on_hand == 0 and water is not None
    cart = Cart().add(banana, 3).add(water, 11)
    receipt = service.complete(cart, [Payment(Tender.CARD, cart.total)])
    assert [line.sku for line in receipt.short_lines] == ["SKU-BANANA", "SKU-WATER"]
    assert stock.on_hand(store, "SKU-BANANA") == -3
    assert stock.on_hand(store, "SKU-WATER") == -1
    assert store.conn.execute(
        "SELECT sku FROM sale_lines WHERE stock_short = 1 ORDER BY line_no"
    ).fetchall() == [("SKU-BANANA",), ("SKU-WATER",)]


def test_on_hand_projection_rebuilds_from_the_ledger(store: Store, service: SaleService) -> None:
    cart = three_item_cart(service)
    service.complete(cart, [Payment.cash(cart.total)])
    before = dict(store.conn.execute("SELECT sku, on_hand FROM stock_on_hand").fetchall())
    store.conn.execute("UPDATE stock_on_hand SET on_hand = 999")  # a damaged cache
    stock.rebuild_on_hand(store)
    assert dict(store.conn.execute("SELECT sku, on_hand FROM stock_on_hand")) == before


@pytest.mark.parametrize("code", ["036000291452", "0036000291452", "00036000291452", "COLA-1"])
def test_lookup_finds_every_spelling_of_a_code(service: SaleService, code: str) -> None:
    product = service.lookup(code)
    assert product is not None and product.sku == "SKU-COLA"
    assert product.on_hand == 10 and product.price == 350


def test_lookup_of_unknown_codes_is_none(service: SaleService) -> None:
    assert service.lookup("4006381333931") is None
    assert service.lookup("") is None
    assert service.lookup("   ") is None
    assert service.lookup("SKU-NOODLE") is not None  # an exact SKU typed by hand also works


@pytest.mark.parametrize(
    ("query", "skus"),
    [
        ("农夫山泉", ["SKU-WATER"]),  # trigram index
        ("薯片", ["SKU-CHIPS"]),  # two Chinese characters: bounded scan
        ("面", ["SKU-NOODLE"]),
        ("cola", ["SKU-COLA"]),  # case-insensitive
        ("牛肉面 五连", ["SKU-NOODLE"]),  # every term must match
        ("330ml can", ["SKU-COLA"]),
        ("ml", ["SKU-WATER", "SKU-COLA"]),
        ("咖啡", []),
        ("", []),
        ("100%", []),
    ],
)
def test_search_by_name_chinese_and_english(
    service: SaleService, query: str, skus: list[str]
) -> None:
    assert [p.sku for p in service.search(query)] == skus


def test_search_respects_limit_and_skips_inactive(store: Store, service: SaleService) -> None:
    upsert_products(store, [CatalogItem("SKU-OLD", "农夫山泉 旧包装", 100, 1300, active=False)])
    assert [p.sku for p in service.search("农夫山泉")] == ["SKU-WATER"]
    assert len(service.search("ml", limit=1)) == 1


def test_full_disk_records_nothing_and_the_same_cart_can_be_retried(
    store: Store, service: SaleService
) -> None:
    # a long name makes the sale need fresh pages; max_page_count makes the file "full"
    long_name = "进口特级初榨橄榄油礼盒装" * 200
    upsert_products(store, [CatalogItem("SKU-OIL", long_name, 19900, 900, ("6901234567892",))])
    oil = service.lookup("6901234567892")
    assert oil is not None
    cart = Cart().add(oil, 1).add(service.lookup("036000291452"), 2)  # type: ignore[arg-type]
    payments = [Payment(Tender.CARD, cart.total, reference="slip-1")]
    before = table_counts(store)
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")

    with pytest.raises(StoreFullError, match="disk is full"):
        service.complete(cart, payments)

    assert table_counts(store) == before
    assert stock.on_hand(store, "SKU-COLA") == 10
    store.conn.execute("PRAGMA max_page_count = 1073741823")
    receipt = service.complete(cart, payments)
    assert (receipt.sale_no, receipt.seq, receipt.total) == (1, 1, 19900 + 700)


def test_checkpoints_happen_off_the_sale_path_and_pause_for_bulk_loads(
    store: Store, service: SaleService
) -> None:
    from pos.store.catalog import BulkLoad

    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    cart = three_item_cart(service)
    service.complete(cart, [Payment.cash(cart.total)])
    checkpointer = store._checkpointer
    assert checkpointer is not None and checkpointer.is_alive()
    busy, wal_pages, copied = store.checkpoint()
    assert busy == 0 and wal_pages == copied

    # a bulk load needs the file alone to leave WAL mode: the checkpointer steps aside
    with BulkLoad(store, replace=True) as load:
        load.add([("NEW-1", "新品 New", 990, 1300)])
    assert load.journal_mode == "delete"
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [p.sku for p in service.search("新品")] == ["NEW-1"]
    assert table_counts(store)["sales"] == 1  # the till's own records survive a replace

    store.close()
    assert not checkpointer.is_alive()


def test_the_checkpointer_waits_for_a_quiet_moment_and_needs_no_sync_engine(
    store: Store, service: SaleService, tmp_path: Path
) -> None:
    """A checkpoint flushes the WAL's pages to the disk; a sale committed meanwhile waits behind
    that flush, so the background checkpointer runs once the till has paused (and, while
    sales never pause, at least every max_delay_s). Nothing here runs a sync engine."""
    checkpointer = fresh_checkpointer(store, quiet_s=2.0, max_delay_s=60.0)
    cart = three_item_cart(service)
    for _ in range(6):  # a busy till: a sale every 0.1 s
        service.complete(cart, [Payment.cash(cart.total)])
        time.sleep(0.1)
        assert checkpointer.checkpoints == 0
    assert wait_for(lambda: checkpointer.checkpoints == 1)
    time.sleep(0.3)
    assert checkpointer.checkpoints == 1  # once: nothing new was committed since
    # the sales are in the database file itself, not only in the WAL
    shutil.copy(store.path, tmp_path / "copy.db")
    copy = sqlite3.connect(tmp_path / "copy.db")
    try:
        assert copy.execute("SELECT count(*) FROM sales").fetchone()[0] == 6
    finally:
        copy.close()

    # commits that never pause still get checkpointed, every max_delay_s
    checkpointer.quiet_s, checkpointer.max_delay_s = 60.0, 0.3
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints < 3 and time.monotonic() < deadline:
        service.complete(cart, [Payment.cash(cart.total)])
        time.sleep(0.05)
    assert checkpointer.checkpoints >= 3


def test_the_checkpointer_sees_the_sync_workers_commits(store: Store, tmp_path: Path) -> None:
    """The sync worker writes through its own connection (it never reports to the Store): the
    checkpointer notices its commits by the WAL changing."""
    from pos.store.sync_state import open_companion

    checkpointer = fresh_checkpointer(store, quiet_s=0.2)
    conn = open_companion(store.path)
    try:
        with conn:
            conn.execute("INSERT INTO sync_cursor (stream, cursor) VALUES ('catalog', 7)")
        assert wait_for(lambda: checkpointer.checkpoints == 1)
    finally:
        conn.close()


def test_a_sale_waits_for_the_sync_workers_transaction_instead_of_polling(
    store: Store, service: SaleService, tmp_path: Path
) -> None:
    """The till and the sync worker take one lock per store file in this process around their
    write transactions: a sale that arrives while the worker marks a batch starts when that
    transaction ends, instead of SQLite's busy handler sleeping 1, 2, 5, 10... ms between
    tries. With SQLite's busy timeout off, only that lock can make the sale wait."""
    from pos.store.sync_state import SqliteSyncState, open_companion

    store.conn.execute("PRAGMA busy_timeout = 0")
    inside, leave = threading.Event(), threading.Event()
    modes: list[int] = []

    def sync_worker() -> None:
        conn = open_companion(store.path)
        try:
            state = SqliteSyncState(conn, tmp_path / "spool")
            modes.append(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            with state._bookkeeping():
                modes.append(conn.execute("PRAGMA synchronous").fetchone()[0])
                conn.execute("INSERT INTO sync_cursor (stream, cursor) VALUES ('orders', 3)")
                inside.set()
                leave.wait(10)
            modes.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        finally:
            conn.close()

    worker = threading.Thread(target=sync_worker)
    worker.start()
    assert inside.wait(10)
    threading.Timer(0.3, leave.set).start()
    cart = three_item_cart(service)
    started = time.monotonic()
    receipt = service.complete(cart, [Payment.cash(cart.total)])
    waited = time.monotonic() - started
    worker.join(10)

    assert receipt.sale_no == 1 and waited >= 0.2
    # the worker's own automatic checkpoints start well before the till's fallback would make
    # a sale pay for one; its bookkeeping commits at NORMAL, its connection is back at FULL after
    assert modes == [5_000, 1, 2]
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # the till: FULL
    assert store.conn.execute("SELECT cursor FROM sync_cursor").fetchall() == [(3,)]


def fresh_checkpointer(store: Store, **timing: float) -> Any:
    """The store's background checkpointer, started anew with short test timings."""
    from pos.store.db import _Checkpointer

    if store._checkpointer is not None:
        store._checkpointer.stop()
    checkpointer = _Checkpointer(store.path, tick_s=0.02, **timing)
    store._checkpointer = checkpointer
    checkpointer.start()
    return checkpointer


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
