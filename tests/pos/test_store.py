"""Opening the store file: migrations, identity, and the clear refusals a till must give."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pos.store import (
    StoreCorruptError,
    StoreError,
    StoreIdentityError,
    StoreLockedError,
    StoreMissingError,
    StoreNotInitialisedError,
    open_store,
)
from pos.store.schema import SCHEMA_VERSION
from tests.pos.conftest import NOW


def test_a_new_store_is_wal_full_and_migrated(store_path: Path) -> None:
    with open_store(store_path) as store:
        conn = store.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert {"device", "config", "products", "barcodes", "products_fts", "stock_ledger",
                "stock_on_hand", "sales", "sale_lines", "payments", "outbox"} <= tables  # fmt: skip


def test_reopening_keeps_data_and_identity(store_path: Path) -> None:
    with open_store(store_path) as store:
        store.set_identity("STORE-1", "TILL-9", "Asia/Hong_Kong", now=NOW)
        store.set_config("hq_url", "http://hq.local")
    with open_store(store_path, create=False) as store:
        assert (store.identity.store_id, store.identity.device_id) == ("STORE-1", "TILL-9")
        assert store.identity.timezone == "Asia/Hong_Kong"
        assert store.get_config("hq_url") == "http://hq.local"
        assert store.get_config("missing", "x") == "x"


def test_identity_is_required_and_cannot_be_renamed_once_events_exist(store_path: Path) -> None:
    with open_store(store_path) as store:
        with pytest.raises(StoreNotInitialisedError, match="pos init"):
            _ = store.identity
        with pytest.raises(StoreIdentityError, match="time zone"):
            store.set_identity("S", "T", "Mars/Olympus", now=NOW)
        store.set_identity("S", "T", now=NOW)
        store.set_identity("S2", "T2", now=NOW)  # nothing issued yet: allowed
        store.conn.execute("UPDATE device SET next_seq = 5")
        store.set_identity("S2", "T2", "Asia/Shanghai", now=NOW)  # same ids: fine
        with pytest.raises(StoreIdentityError, match="cannot be renamed"):
            store.set_identity("S3", "T2", now=NOW)


def test_missing_file_without_create_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(StoreMissingError, match="pos init"):
        open_store(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_a_second_open_of_the_same_file_is_refused(store_path: Path) -> None:
    first = open_store(store_path)
    with pytest.raises(StoreLockedError, match="already has"):
        open_store(store_path)
    first.close()
    open_store(store_path).close()  # free again once the first till closed


@pytest.mark.parametrize(
    "content",
    [b"this is a spreadsheet, not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000],
)
def test_a_corrupt_file_raises_store_corrupt_error(store_path: Path, content: bytes) -> None:
    store_path.write_bytes(content)
    with pytest.raises(StoreCorruptError, match="damaged or is not a store database"):
        open_store(store_path)
    store_path.write_bytes(content)  # and the lock was released: the same error again
    with pytest.raises(StoreCorruptError):
        open_store(store_path)


def test_a_damaged_page_found_later_is_reported_not_crashed(store_path: Path) -> None:
    with open_store(store_path) as store:
        store.set_identity("S", "T", now=NOW)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(store_path.read_bytes())
    raw[4096 : 4096 * 3] = b"\xa5" * (4096 * 2)  # smash pages 2-3 (schema tables' roots)
    store_path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptError):
        store = open_store(store_path)
        store.set_identity("S", "T", now=NOW)


def test_another_programs_sqlite_file_is_not_taken_over(store_path: Path) -> None:
    conn = sqlite3.connect(store_path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="not a store database"):
        open_store(store_path)


def test_a_folder_or_unreadable_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreCorruptError, match="folder"):
        open_store(tmp_path)


def test_a_newer_schema_is_refused(store_path: Path) -> None:
    open_store(store_path).close()
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        open_store(store_path)


def test_damage_found_during_a_lookup_is_a_store_error_not_a_crash(store_path: Path) -> None:
    from pos.services.demo import demo_codes, load_demo
    from pos.services.sale import SaleService

    with open_store(store_path) as store:
        store.set_identity("S", "T", now=NOW)
        load_demo(store, 3000, seed=9, now=NOW)
        root = store.conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'barcodes_code'"
        ).fetchone()[0]
        page_size = store.conn.execute("PRAGMA page_size").fetchone()[0]
    raw = bytearray(store_path.read_bytes())
    start = (root - 1) * page_size
    raw[start : start + page_size] = b"\x0d" + b"\xee" * (page_size - 1)
    store_path.write_bytes(bytes(raw))

    with open_store(store_path) as store:  # opening reads no table: still fine
        _, code = next(demo_codes(3000, seed=9))
        with pytest.raises(StoreCorruptError, match="damaged"):
            SaleService(store).lookup(code)


def test_bulk_load_of_catalog_items_keeps_flags_and_cursors(store_path: Path) -> None:
    from pos.store.catalog import BulkLoad, CatalogItem, find_by_code, find_by_sku

    with open_store(store_path) as store:
        with BulkLoad(store.conn, replace=True) as load:
            load.add_items(
                [
                    CatalogItem("A", "苹果 Apple", 599, 900, ("6921168509256",), True, "c-9"),
                    CatalogItem("B", "Discontinued", 100, 1300, ("B-1",), False, "c-10"),
                ]
            )
        assert find_by_code(store, "06921168509256") is not None
        assert find_by_sku(store, "B") is None  # inactive: not sold
        assert find_by_sku(store, "B", active_only=False) is not None
        assert (
            store.conn.execute("SELECT updated_cursor FROM products WHERE sku = 'A'").fetchone()[0]
            == "c-9"
        )
