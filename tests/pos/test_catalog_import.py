"""Catalogue import: good rows load, bad rows are reported with their line and skipped."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pos.domain.cart import Cart, Payment
from pos.domain.gtin import is_valid_gtin
from pos.services.catalog_import import ImportReport, import_catalog
from pos.services.demo import create_demo_store, demo_codes, demo_records, load_demo
from pos.services.errors import ImportFileError
from pos.services.sale import SaleService
from pos.store import Store, StoreError, open_store, stock
from pos.store.catalog import BulkLoad, find_by_sku
from tests.pos.conftest import NOW

CSV = (
    "\ufeffsku,name,price,tax_rate,barcodes,initial_stock,colour\n"  # BOM + unknown column
    "A1,农夫山泉 550ml,2.00,13,6921168509256,24,blue\n"  # line 2
    'A2,"Coca-Cola, 330ml",3.5,13,036000291452|4006381333931,12,red\n'  # line 3
    "A3,康师傅红烧牛肉面,abc,13,,5,\n"  # line 4: bad price
    ",no sku,1.00,13,,,\n"  # line 5: missing sku
    "A5,,1.00,13,,,\n"  # line 6: missing name
    "A6,Dup code,1.00,13,0036000291452,,\n"  # line 7: same GTIN as line 3 (other spelling)
    "A7,Bad check,1.00,13,6921168509257,,\n"  # line 8: wrong check digit
    "A1,again,1.00,13,,,\n"  # line 9: SKU already on line 2
    "A10,香蕉 Banana,1.50,9,BANANA-01;,0,\n"  # line 10: internal code, ';' separator
    'A11,"Two-line\nname",1.00,6.5,,-3,\n'  # lines 11-12: negative stock
    "A12,大米 5kg,49.90,9,,7,\n"  # line 13: a good row after a multi-line record
)


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    store = open_store(tmp_path / "store.db")
    store.set_identity("S1", "T1", now=NOW)
    return store


def problems(report: ImportReport) -> dict[int, str]:
    return {p.line: p.message for p in report.problems}


def test_csv_import_loads_good_rows_and_reports_bad_ones_by_line(
    empty_store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV, encoding="utf-8")
    report = import_catalog(empty_store, path, now=NOW)

    assert report.mode == "bulk"
    assert report.loaded == 4
    assert report.skipped == 7
    found = problems(report)
    assert "unknown column 'colour'" in found[1]
    assert "bad price 'abc'" in found[4]
    assert "missing sku" in found[5]
    assert "missing name" in found[6]
    assert "already used on line 3" in found[7]
    assert "check digit is 7, expected 6" in found[8]
    assert "already given on line 2" in found[9]
    assert "initial_stock" in found[11]
    assert [p.line for p in report.problems].count(1) == 1  # unknown column reported once
    assert 13 not in found

    service = SaleService(empty_store, clock=lambda: NOW)
    cola = service.lookup("4006381333931")
    assert cola is not None and cola.name == "Coca-Cola, 330ml" and cola.price == 350
    assert set(cola.barcodes) == {"036000291452", "4006381333931"}
    assert service.lookup("0036000291452") == cola
    assert service.lookup("BANANA-01") is not None
    assert [p.sku for p in service.search("农夫山泉")] == ["A1"]
    assert stock.on_hand(empty_store, "A1") == 24
    reasons = empty_store.conn.execute(
        "SELECT sku, delta, reason FROM stock_ledger ORDER BY sku"
    ).fetchall()
    assert reasons == [("A1", 24, "initial"), ("A12", 7, "initial"), ("A2", 12, "initial")]
    # back to the till's normal durability after the bulk path
    assert empty_store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert empty_store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_jsonl_import_reads_numbers_exactly_and_lists_of_codes(
    empty_store: Store, tmp_path: Path
) -> None:
    rows = [
        {"sku": "J1", "name": "伊利纯牛奶 250ml×12", "price": 39.9, "tax_rate": 9,
         "barcodes": ["6907992100272"], "initial_stock": 3},
        {"sku": "J2", "name": "Oreo", "price": "12.50", "tax_rate": "13", "shelf": "A-3"},
        {"sku": "J3", "name": "Bad", "price": 1.005, "tax_rate": 13},
        {"sku": "J4", "name": "Bad codes", "price": 1, "tax_rate": 13, "barcodes": [1, 2]},
        {"sku": "J5", "name": "No rate", "price": 1},
    ]  # fmt: skip
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(2, "{not json")
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_catalog(empty_store, path, now=NOW)

    assert report.loaded == 2
    found = problems(report)
    assert "unknown column 'shelf'" in found[2]
    assert "not valid JSON" in found[3]
    assert "bad price" in found[4]
    assert "barcodes must be a list" in found[5]
    assert "missing tax_rate" in found[6]
    milk = find_by_sku(empty_store, "J1")
    assert milk is not None and (milk.price, milk.tax_rate_bp, milk.on_hand) == (3990, 900, 3)
    oreo = find_by_sku(empty_store, "J2")
    assert oreo is not None and oreo.price == 1250


def test_import_into_a_catalogue_that_has_products_upserts(
    empty_store: Store, tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    first.write_text(
        "sku,name,price,tax_rate,barcodes,initial_stock\n"
        "A1,Water,2.00,13,6921168509256,10\nA2,Cola,3.50,13,036000291452,4\n",
        encoding="utf-8",
    )
    import_catalog(empty_store, first, now=NOW)
    second = tmp_path / "second.csv"
    second.write_text(
        "sku,name,price,tax_rate,barcodes,initial_stock\n"
        "A1,Water (new price),2.20,13,6921168509256,99\n"  # update: stock ignored
        "A3,Thief,1.00,13,036000291452,1\n"  # a code another product owns
        "A4,New item,5.00,13,,6\n",
        encoding="utf-8",
    )
    report = import_catalog(empty_store, second, now=NOW)
    assert report.mode == "upsert"
    assert report.loaded == 2 and report.stock_ignored == 1
    assert "already belongs to sku A2" in problems(report)[3]
    water = find_by_sku(empty_store, "A1")
    assert water is not None and (water.name, water.price, water.on_hand) == (
        "Water (new price)",
        220,
        10,
    )
    assert stock.on_hand(empty_store, "A4") == 6
    assert SaleService(empty_store).search("new price")[0].sku == "A1"


def test_files_that_cannot_be_read_at_all_raise_a_clear_error(
    empty_store: Store, tmp_path: Path
) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("sku,name,price,tax_rate\nA,Caf\xe9,1,13\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        import_catalog(empty_store, latin)
    headless = tmp_path / "headless.csv"
    headless.write_text("sku,title,price\nA,x,1\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="no name, tax_rate column"):
        import_catalog(empty_store, headless)
    with pytest.raises(ImportFileError, match="Cannot read"):
        import_catalog(empty_store, tmp_path / "missing.csv")
    assert empty_store.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 0


def test_demo_catalogue_is_realistic_and_deterministic() -> None:
    records = list(demo_records(4000, seed=7))
    assert records == list(demo_records(4000, seed=7))
    assert records != list(demo_records(4000, seed=8))
    shapes = Counter(0 if not r[5] else len(r[5].split("|")) for r in records)
    assert 0.03 < shapes[0] / 4000 < 0.07  # about 5 % sold by name only
    assert 0.05 < shapes[2] / 4000 < 0.11  # some with a second barcode
    codes = [c for r in records for c in r[5].split("|") if c]
    assert all(is_valid_gtin(c) and len(c) == 13 and c.startswith("69") for c in codes)
    assert len(codes) == len(set(codes))
    names = [r[2] for r in records]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert any(n.isascii() for n in names)
    assert len({r[3] for r in records}) >= 10  # several price points


def test_demo_load_then_sell_by_code_and_by_name(empty_store: Store) -> None:
    report = load_demo(empty_store, 3000, seed=11, now=NOW)
    assert (report.loaded, report.skipped) == (3000, 0)
    service = SaleService(empty_store, clock=lambda: NOW)
    sku, code = next(demo_codes(3000, seed=11))
    product = service.lookup(code)
    assert product is not None and product.sku == sku
    assert service.lookup("0" + code) == product  # GTIN-14 spelling
    assert service.search("饮用天然水")  # the name index was built after the bulk load
    assert service.search("水")  # and short Chinese queries work too


def test_a_failed_bulk_replace_keeps_the_old_catalogue(empty_store: Store) -> None:
    load_demo(empty_store, 500, seed=1, now=NOW)
    with pytest.raises(RuntimeError), BulkLoad(empty_store.conn, replace=True) as load:
        load.add([("NEW", "new", 100, 1300)])
        raise RuntimeError("interrupted")
    assert find_by_sku(empty_store, "NEW") is None
    assert empty_store.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 500
    assert SaleService(empty_store).search("Water")  # triggers and indexes are back
    with pytest.raises(StoreError, match="already has products"), BulkLoad(empty_store.conn):
        pass


def test_create_demo_store_creates_once_then_reuses(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "store.db"
    first = create_demo_store(path, 1000, seed=3, now=NOW)
    assert first.created and first.skus == 1000
    again = create_demo_store(path, 1000, seed=3, now=NOW)
    assert not again.created
    with open_store(path, create=False) as store:
        assert store.identity.store_id == first.store_id
        assert store.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 1000


def test_the_reader_process_path_gives_the_same_result(tmp_path: Path) -> None:
    """Big imports read and check rows in a second process; small files show it works alike."""
    path = tmp_path / "catalog.csv"
    path.write_text(CSV, encoding="utf-8")
    reports = []
    for parallel in (False, True):
        with open_store(tmp_path / f"store-{parallel}.db") as store:
            report = import_catalog(store, path, now=NOW, parallel=parallel)
            rows = store.conn.execute(
                "SELECT p.sku, p.name, p.price, b.code FROM products p"
                " LEFT JOIN barcodes b ON b.sku = p.sku ORDER BY p.sku, b.code"
            ).fetchall()
            reports.append((report.loaded, problems(report), rows))
    assert reports[0] == reports[1]
    assert reports[1][0] == 4


def test_the_reader_process_reports_an_unreadable_file(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("sku,name,price,tax_rate\nA,Caf\xe9,1,13\n".encode("latin-1"))
    with open_store(tmp_path / "store.db") as store:
        with pytest.raises(ImportFileError, match="not UTF-8"):
            import_catalog(store, latin, parallel=True)
        assert store.conn.execute("SELECT count(*) FROM products").fetchone()[0] == 0
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_demo_load_through_the_reader_process(empty_store: Store) -> None:
    report = load_demo(empty_store, 2000, seed=5, now=NOW, parallel=True)
    assert (report.loaded, report.skipped) == (2000, 0)
    sku, code = next(demo_codes(2000, seed=5))
    product = SaleService(empty_store).lookup(code)
    assert product is not None and product.sku == sku


def test_replacing_the_catalogue_keeps_stock_and_does_not_add_initial_stock_twice(
    empty_store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,name,price,tax_rate,barcodes,initial_stock\nA1,Water,2.00,13,6921168509256,10\n",
        encoding="utf-8",
    )
    import_catalog(empty_store, path, now=NOW)
    service = SaleService(empty_store, clock=lambda: NOW)
    water = service.lookup("6921168509256")
    assert water is not None
    cart = Cart().add(water, 3)
    service.complete(cart, [Payment.cash(cart.total)])
    path.write_text(
        "sku,name,price,tax_rate,barcodes,initial_stock\n"
        "A1,Water 2.0,2.50,13,6921168509256,10\nA2,Tea,5.00,13,,4\n",
        encoding="utf-8",
    )
    report = import_catalog(empty_store, path, replace=True, now=NOW)
    assert (report.loaded, report.stock_ignored) == (2, 1)
    assert stock.on_hand(empty_store, "A1") == 7  # 10 - 3 sold; not 17
    assert stock.on_hand(empty_store, "A2") == 4
    assert empty_store.conn.execute("SELECT count(*) FROM sales").fetchone()[0] == 1
    water = service.lookup("6921168509256")
    assert water is not None and water.price == 250
